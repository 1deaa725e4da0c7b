//! RabbitMQ's `rabbitmq.conf` (the "new style" format: one `key = value` per line, `#`
//! comments, numbered or named list entries such as `listeners.tcp.1`), read into a [`Config`] so
//! that a deployment's file moves to Warren unchanged.
//!
//! A line that does not parse, or a value of the wrong kind for a key Warren knows, is an error
//! naming the line. A key Warren does not know (or knows but does not act on yet) is reported back
//! with its line number, once, and otherwise ignored, so a full RabbitMQ file still starts Warren.

use super::Config;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// A `rabbitmq.conf` read into a configuration, with what was ignored.
#[derive(Debug)]
pub(crate) struct Parsed {
    /// The configuration (defaults where the file says nothing).
    pub config: Config,
    /// One line per ignored key: `line N: 'key' ...`.
    pub ignored: Vec<String>,
}

/// Reads `path`.
pub(crate) fn read(path: &Path) -> Result<Parsed, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses the text of a `rabbitmq.conf`.
pub(crate) fn parse(text: &str) -> Result<Parsed, String> {
    let mut config = Config::default();
    let mut ignored = Vec::new();
    let mut tcp: Vec<SocketAddr> = Vec::new();
    let mut tcp_none = false;
    let mut loopback: Option<Vec<String>> = None;
    let mut ssl: Vec<SocketAddr> = Vec::new();
    let mut ssl_none = false;
    let mut tls = crate::tls::TlsSettings::default();
    let mut mechanisms: Vec<String> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {n}: expected 'key = value', got '{line}'"));
        };
        let (key, value) = (key.trim(), unquote(value.trim()));
        if key.is_empty() {
            return Err(format!("line {n}: missing key in '{line}'"));
        }
        let bad = |what: &str| format!("line {n}: '{key}' expects {what}, got '{value}'");
        match key {
            "listeners.tcp" if value == "none" => tcp_none = true,
            _ if key.starts_with("listeners.tcp.") => {
                tcp.extend(listener(value).ok_or_else(|| bad("a port or ip:port"))?)
            }
            "listeners.ssl" if value == "none" => ssl_none = true,
            _ if key.starts_with("listeners.ssl.") => {
                ssl.extend(listener(value).ok_or_else(|| bad("a port or ip:port"))?)
            }
            "ssl_options.certfile" => tls.certfile = value.into(),
            "ssl_options.keyfile" => tls.keyfile = value.into(),
            "ssl_options.cacertfile" => tls.cacertfile = Some(value.into()),
            "ssl_options.verify" => {
                tls.verify_peer = match value {
                    "verify_peer" => true,
                    "verify_none" => false,
                    _ => return Err(bad("verify_peer or verify_none")),
                }
            }
            "ssl_options.fail_if_no_peer_cert" => {
                tls.fail_if_no_peer_cert = boolean(value).ok_or_else(|| bad("true or false"))?
            }
            _ if key.starts_with("ssl_options.versions.") => tls.versions.push(value.into()),
            _ if key.starts_with("auth_mechanisms.") => match value {
                "PLAIN" | "AMQPLAIN" | "EXTERNAL" => mechanisms.push(value.into()),
                _ => return Err(bad("PLAIN, AMQPLAIN or EXTERNAL")),
            },
            "ssl_cert_login_from" => {
                config.cert_login.ssl_cert_login_from =
                    value.parse().map_err(|e: String| bad(&e))?
            }
            "ssl_cert_login_san_type" => {
                config.cert_login.ssl_cert_login_san_type =
                    value.parse().map_err(|e: String| bad(&e))?
            }
            "ssl_cert_login_san_index" => {
                config.cert_login.ssl_cert_login_san_index =
                    value.parse().map_err(|_| bad("an index"))?
            }
            "connection_max" => {
                config.connection_max = match value {
                    "infinity" => None,
                    n => Some(n.parse().map_err(|_| bad("a count or infinity"))?),
                }
            }
            // RabbitMQ's are milliseconds, Warren's seconds.
            "handshake_timeout" => {
                let ms: u64 = value.parse().map_err(|_| bad("milliseconds"))?;
                config.handshake_timeout = ms.div_ceil(1000);
            }
            "ssl_handshake_timeout" => {
                let ms: u64 = value.parse().map_err(|_| bad("milliseconds"))?;
                config.tls_handshake_timeout = ms.div_ceil(1000);
            }
            "management.tcp.port" => {
                config.management_port = Some(value.parse().map_err(|_| bad("a port"))?)
            }
            "management.tcp.ip" => {
                config.management_ip = Some(value.parse().map_err(|_| bad("an IP address"))?)
            }
            "prometheus.tcp.port" => {
                config.prometheus_port = Some(value.parse().map_err(|_| bad("a port"))?)
            }
            "prometheus.tcp.ip" => {
                config.prometheus_ip = Some(value.parse().map_err(|_| bad("an IP address"))?)
            }
            "default_user" => config.default_user = value.into(),
            "default_pass" => config.default_pass = value.into(),
            "default_vhost" => config.default_vhost = value.into(),
            "loopback_users" if value == "none" => loopback = Some(Vec::new()),
            _ if key.starts_with("loopback_users.") => {
                let user = &key["loopback_users.".len()..];
                let list = loopback.get_or_insert_with(Vec::new);
                match boolean(value).ok_or_else(|| bad("true or false"))? {
                    true => list.push(user.into()),
                    false => list.retain(|u| u != user),
                }
            }
            "heartbeat" => config.heartbeat = value.parse().map_err(|_| bad("seconds"))?,
            "frame_max" => config.frame_max = value.parse().map_err(|_| bad("bytes"))?,
            "channel_max" => config.channel_max = value.parse().map_err(|_| bad("a count"))?,
            "max_message_size" => {
                config.max_message_size = bytes(value).ok_or_else(|| bad("bytes"))?
            }
            "consumer_timeout" => {
                config.consumer_timeout = value.parse().map_err(|_| bad("milliseconds"))?
            }
            "disk_free_limit.absolute" => {
                config.disk_free_limit = bytes(value).ok_or_else(|| bad("bytes (50MB, 1GB)"))?
            }
            "vm_memory_high_watermark.relative" => {
                let f: f64 = value.parse().map_err(|_| bad("a fraction"))?;
                config.vm_memory_high_watermark = crate::alarm::Watermark::Relative(f);
            }
            "vm_memory_high_watermark.absolute" => {
                config.vm_memory_high_watermark =
                    crate::alarm::Watermark::Absolute(bytes(value).ok_or_else(|| bad("bytes"))?);
            }
            "disk_free_limit.relative" => {
                let f: f64 = value.parse().map_err(|_| bad("a fraction of memory"))?;
                config.disk_free_limit = crate::alarm::total_memory()
                    .map_or(config.disk_free_limit, |t| (t as f64 * f) as u64);
            }
            "load_definitions" => config.load_definitions = Some(PathBuf::from(value)),
            "log.console.level" | "log.file.level" => {
                config.log_level = match value {
                    "debug" | "info" | "error" => value.into(),
                    "warning" => "warn".into(),
                    "critical" | "alert" | "emergency" => "error".into(),
                    "none" => "off".into(),
                    _ => return Err(bad("a log level")),
                }
            }
            _ => ignored.push(format!(
                "line {n}: '{key}' is not supported by Warren; ignored"
            )),
        }
    }
    if tcp_none {
        config.listeners = Some(Vec::new());
    } else if !tcp.is_empty() {
        config.listeners = Some(tcp);
    }
    if tls != crate::tls::TlsSettings::default() || !ssl.is_empty() {
        if !ssl_none && !ssl.is_empty() {
            config.tls_listeners = Some(ssl);
        }
        if !ssl_none {
            config.tls = Some(tls);
        }
    }
    if let Some(users) = loopback {
        config.loopback_users = Some(users);
    }
    if !mechanisms.is_empty() {
        config.auth_mechanisms = mechanisms;
    }
    Ok(Parsed { config, ignored })
}

fn unquote(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
}

fn boolean(v: &str) -> Option<bool> {
    match v {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// `5672` (every interface, IPv4 and IPv6), `127.0.0.1:5672` or `::1:5672` (IPv6 without
/// brackets, as RabbitMQ writes it) or `[::1]:5672`.
fn listener(v: &str) -> Option<Vec<SocketAddr>> {
    if let Ok(port) = v.parse::<u16>() {
        return Some(
            Config::default()
                .bind
                .into_iter()
                .map(|ip| SocketAddr::new(ip, port))
                .collect(),
        );
    }
    if let Ok(addr) = v.parse::<SocketAddr>() {
        return Some(vec![addr]);
    }
    let (ip, port) = v.rsplit_once(':')?;
    Some(vec![SocketAddr::new(
        ip.parse::<IpAddr>().ok()?,
        port.parse().ok()?,
    )])
}

/// A byte count as RabbitMQ takes one: a number, or a number with a unit (`kB`, `MB`, `GB`
/// are powers of 1000; `KiB`, `MiB`, `GiB` and RabbitMQ's `k`, `M`, `G` powers of 1024).
pub(crate) fn bytes(v: &str) -> Option<u64> {
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" => 1,
        "kB" | "KB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "k" | "K" | "KiB" | "Ki" => 1 << 10,
        "M" | "MiB" | "Mi" => 1 << 20,
        "G" | "GiB" | "Gi" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rabbitmq_conf() {
        let p = parse(
            "# comment\n\
             listeners.tcp.default = 5673\n\
             listeners.tcp.local = 127.0.0.1:5674\n\
             listeners.tcp.v6 = ::1:5675\n\
             default_user = admin\n\
             default_pass = \"s3cret\"\n\
             loopback_users.guest = false\n\
             loopback_users.admin = true\n\
             heartbeat = 30\n\
             disk_free_limit.absolute = 1GB\n\
             max_message_size = 134217728\n\
             consumer_timeout = 900000\n\
             log.console.level = warning\n\
             load_definitions = /etc/rabbitmq/definitions.json\n\
             management.tcp.port = 15672\n\
             cluster_formation.peer_discovery_backend = classic_config\n",
        )
        .unwrap();
        let c = &p.config;
        let listeners = c.listeners.clone().unwrap();
        assert_eq!(listeners.len(), 4, "{listeners:?}");
        assert!(listeners.contains(&"127.0.0.1:5674".parse().unwrap()));
        assert!(listeners.contains(&"[::1]:5675".parse().unwrap()));
        assert_eq!(c.listen_addrs(), listeners);
        assert_eq!(
            (c.default_user.as_str(), c.default_pass.as_str()),
            ("admin", "s3cret")
        );
        assert_eq!(c.loopback_users, Some(vec!["admin".to_string()]));
        assert_eq!(c.heartbeat, 30);
        assert_eq!(c.disk_free_limit, 1_000_000_000);
        assert_eq!(c.consumer_timeout, 900_000);
        assert_eq!(c.log_level, "warn");
        assert_eq!(
            c.load_definitions.as_deref(),
            Some(Path::new("/etc/rabbitmq/definitions.json"))
        );
        assert_eq!(c.management_port, Some(15672));
        assert_eq!(p.ignored.len(), 1, "{:?}", p.ignored);
        assert!(p.ignored[0].starts_with("line 16: 'cluster_formation.peer_discovery_backend'"));
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("heartbeat = 30\nthis is not a setting\n").unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
        let e = parse("\n\nheartbeat = soon\n").unwrap_err();
        assert_eq!(e, "line 3: 'heartbeat' expects seconds, got 'soon'");
        let e = parse("listeners.tcp.1 = nowhere:x\n").unwrap_err();
        assert!(e.starts_with("line 1: 'listeners.tcp.1'"), "{e}");
        assert!(parse("listeners.tcp = none\n").unwrap().config.listeners == Some(vec![]));
        assert!(
            parse("loopback_users = none\n")
                .unwrap()
                .config
                .loopback_users
                == Some(vec![])
        );
    }

    #[test]
    fn tls_settings() {
        let p = parse(
            "listeners.ssl.default = 127.0.0.1:5671\n\
             ssl_options.cacertfile = /etc/ca.pem\n\
             ssl_options.certfile = /etc/server.pem\n\
             ssl_options.keyfile = /etc/server.key\n\
             ssl_options.verify = verify_peer\n\
             ssl_options.fail_if_no_peer_cert = true\n\
             ssl_options.versions.1 = tlsv1.3\n",
        )
        .unwrap();
        let tls = p.config.tls.clone().unwrap();
        assert!(tls.verify_peer && tls.fail_if_no_peer_cert);
        assert_eq!(tls.cacertfile.as_deref(), Some(Path::new("/etc/ca.pem")));
        assert_eq!(tls.versions, vec!["tlsv1.3".to_string()]);
        assert_eq!(
            p.config.tls_listen_addrs(),
            vec!["127.0.0.1:5671".parse().unwrap()]
        );
        assert!(p.ignored.is_empty(), "{:?}", p.ignored);
        assert!(parse("ssl_options.verify = sometimes\n").is_err());
        assert!(parse("heartbeat = 5\n")
            .unwrap()
            .config
            .tls_listen_addrs()
            .is_empty());
    }

    #[test]
    fn authentication_and_admission_keys() {
        let c = parse(
            "auth_mechanisms.1 = EXTERNAL\n\
             auth_mechanisms.2 = PLAIN\n\
             ssl_cert_login_from = subject_alternative_name\n\
             ssl_cert_login_san_type = email\n\
             ssl_cert_login_san_index = 1\n\
             connection_max = 500\n\
             handshake_timeout = 2500\n\
             ssl_handshake_timeout = 5000\n",
        )
        .unwrap()
        .config;
        assert_eq!(c.auth_mechanisms, vec!["EXTERNAL", "PLAIN"]);
        assert_eq!(
            c.cert_login,
            crate::auth::CertLogin {
                ssl_cert_login_from: crate::auth::LoginFrom::SubjectAlternativeName,
                ssl_cert_login_san_type: crate::auth::SanType::Email,
                ssl_cert_login_san_index: 1,
            }
        );
        assert_eq!(c.connection_max, Some(500));
        assert_eq!((c.handshake_timeout, c.tls_handshake_timeout), (3, 5));
        let d = parse("connection_max = infinity\n").unwrap().config;
        assert_eq!(d.connection_max, None);
        assert_eq!(d.auth_mechanisms, vec!["PLAIN", "AMQPLAIN"]);
        assert!(parse("auth_mechanisms.1 = KERBEROS\n").is_err());
        assert!(parse("ssl_cert_login_from = thumbprint\n").is_err());
        assert!(parse("connection_max = lots\n").is_err());
    }

    #[test]
    fn byte_units() {
        assert_eq!(bytes("50MB"), Some(50_000_000));
        assert_eq!(bytes("2GiB"), Some(2 << 30));
        assert_eq!(bytes("1024"), Some(1024));
        assert_eq!(bytes("5 parsecs"), None);
    }
}
