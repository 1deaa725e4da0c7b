//! The opening handshake: protocol header, start/start-ok (SASL), tune/tune-ok, open/open-ok.
//! Frames here are limited to the minimum frame size, as RabbitMQ does before tuning.

use crate::auth::AuthError;
use crate::broker::Broker;
use crate::channel::ClientCapabilities;
use crate::error::AmqpError;
use crate::outbox::{Out, Outbox};
use crate::vhost::VHost;
use amqp_codec::constants::FRAME_MIN_SIZE;
use amqp_codec::protocol::connection as conn;
use amqp_codec::types::{AMQPValue, FieldTable, LongString, ShortString};
use amqp_codec::{decode_frame, AMQPClass, Frame, PROTOCOL_HEADER};
use bytes::{Bytes, BytesMut};
use rustls::pki_types::CertificateDer;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use tracing::debug;

/// A finished handshake.
pub(super) struct Done {
    /// What the broker lists of the connection (registered on admission).
    pub info: Arc<crate::connection_info::ConnectionInfo>,
    pub vhost: Arc<VHost>,
    pub grant: crate::auth::Grant,
    pub user: String,
    pub caps: ClientCapabilities,
    pub frame_max: u32,
    pub channel_max: u16,
    pub heartbeat: u16,
}

/// How a handshake failed.
pub(super) enum Failed {
    /// Close the socket without a word (bad header already answered, timeout, peer gone).
    Silent(String),
    /// Send connection.close with this error first.
    Close(AmqpError, String),
}

pub(super) struct Handshake<'a> {
    /// The connection's id.
    pub id: u64,
    /// Its event mailbox (registered with the broker on admission).
    pub events: &'a crate::channel::EventSender,
    /// Its open-channel count (registered too).
    pub channel_count: &'a Arc<std::sync::atomic::AtomicUsize>,
    pub broker: &'a Broker,
    pub reader: super::Reader,
    pub buf: BytesMut,
    pub outbox: &'a Arc<Outbox>,
    pub peer: SocketAddr,
    /// The listener's address.
    pub local: SocketAddr,
    /// None on plain TCP; on TLS, the client's certificate if it presented one.
    pub peer_certificate: Option<Option<&'a CertificateDer<'static>>>,
}

/// The RabbitMQ release whose client-visible behaviour Warren follows (advertised as `version`).
pub(crate) const RABBITMQ_VERSION: &str = "3.10.8";

fn bool_value(b: bool) -> AMQPValue {
    AMQPValue::Boolean(b)
}

fn server_properties() -> FieldTable {
    let mut caps = FieldTable::default();
    for cap in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "consumer_priorities",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
    ] {
        caps.insert(ShortString::from(cap), bool_value(true));
    }
    let mut p = FieldTable::default();
    let s = |v: &str| AMQPValue::LongString(LongString::from(v.as_bytes().to_vec()));
    p.insert("capabilities".into(), AMQPValue::FieldTable(caps));
    p.insert("cluster_name".into(), s("warren"));
    p.insert("copyright".into(), s("Copyright (c) the Warren authors"));
    p.insert(
        "information".into(),
        s("Licensed under the Apache License 2.0"),
    );
    // Clients switch behaviour on the product name (kombu, hence Celery, uses RabbitMQ's prefetch
    // semantics only for product "RabbitMQ" 3.3 to 4.0, and stalls behind delayed tasks
    // otherwise). Warren implements RabbitMQ 3.10's semantics, so it says so; what it really is goes
    // in `platform` and `warren_version`.
    p.insert(
        "platform".into(),
        s(concat!("Warren ", env!("CARGO_PKG_VERSION"), " (Rust)")),
    );
    p.insert("product".into(), s("RabbitMQ"));
    p.insert("version".into(), s(RABBITMQ_VERSION));
    p.insert("warren_version".into(), s(env!("CARGO_PKG_VERSION")));
    p
}

fn client_capabilities(props: &FieldTable) -> ClientCapabilities {
    let mut caps = ClientCapabilities::default();
    if let Some(AMQPValue::FieldTable(t)) = props.inner().get("capabilities") {
        let on = |k: &str| matches!(t.inner().get(k), Some(AMQPValue::Boolean(true)));
        caps.consumer_cancel_notify = on("consumer_cancel_notify");
        caps.authentication_failure_close = on("authentication_failure_close");
        caps.connection_blocked = on("connection.blocked");
    }
    caps
}

impl Handshake<'_> {
    /// The SASL mechanisms offered: the configured ones, EXTERNAL only on TLS (with or without
    /// a client certificate: RabbitMQ offers it to say why a login without one fails).
    fn mechanisms(&self) -> Vec<&str> {
        let tls = self.peer_certificate.is_some();
        self.broker
            .config
            .auth_mechanisms
            .iter()
            .map(String::as_str)
            .filter(|m| *m != "EXTERNAL" || tls)
            .collect()
    }

    /// Logs the client in with `mechanism` (one of those offered) and its SASL response.
    fn authenticate(&self, mechanism: &str, response: &[u8]) -> Result<String, AuthError> {
        if !self.mechanisms().contains(&mechanism) {
            return Err(match mechanism {
                "PLAIN" | "AMQPLAIN" | "EXTERNAL" => AuthError::NotOffered(mechanism.into()),
                _ => AuthError::UnsupportedMechanism(mechanism.into()),
            });
        }
        let access = &self.broker.access;
        let peer = Some(self.peer.ip());
        if mechanism == "EXTERNAL" {
            let Some(Some(cert)) = self.peer_certificate else {
                return Err(AuthError::NoPeerCertificate);
            };
            let user = self
                .broker
                .config
                .cert_login
                .user_name(cert)
                .map_err(|why| {
                    debug!("EXTERNAL: {why}");
                    AuthError::NoNameFound
                })?;
            return access.authenticate_external(&user, peer);
        }
        let creds = crate::auth::parse_sasl(mechanism, response)?;
        access.authenticate(&creds, peer)
    }

    async fn fill(&mut self) -> Result<(), Failed> {
        match self.reader.read_buf(&mut self.buf).await {
            Ok(0) => Err(Failed::Silent(
                "client closed the connection during the handshake".into(),
            )),
            Ok(_) => Ok(()),
            Err(e) => Err(Failed::Silent(format!(
                "socket error during the handshake: {e}"
            ))),
        }
    }

    async fn next_method(&mut self) -> Result<AMQPClass, Failed> {
        loop {
            match decode_frame(&mut self.buf, FRAME_MIN_SIZE) {
                Ok(Some(Frame::Method(0, m))) => return Ok(m),
                Ok(Some(Frame::Heartbeat(0))) => continue,
                Ok(Some(_)) => {
                    return Err(Failed::Close(
                        AmqpError::command_invalid(
                            "only channel 0 methods are allowed during the handshake",
                        ),
                        "unexpected frame during the handshake".into(),
                    ))
                }
                Ok(None) => self.fill().await?,
                Err(e) => {
                    let err = crate::reply_text::frame_error(&e);
                    return Err(Failed::Close(
                        err,
                        format!("frame error during the handshake: {e}"),
                    ));
                }
            }
        }
    }

    pub(super) async fn run(&mut self) -> Result<Done, Failed> {
        while self.buf.len() < 8 {
            self.fill().await?;
        }
        if &self.buf[..8] != PROTOCOL_HEADER {
            // As RabbitMQ: answer with the version we speak and close.
            self.outbox
                .send(Out::Raw(Bytes::from_static(PROTOCOL_HEADER)));
            return Err(Failed::Silent(format!(
                "bad protocol header {:?}",
                String::from_utf8_lossy(&self.buf[..8])
            )));
        }
        let _ = self.buf.split_to(8);
        self.outbox.method(
            0,
            AMQPClass::Connection(conn::AMQPMethod::Start(conn::Start {
                version_major: 0,
                version_minor: 9,
                server_properties: server_properties(),
                mechanisms: LongString::from(self.mechanisms().join(" ").into_bytes()),
                locales: LongString::from(b"en_US".to_vec()),
            })),
        );
        let start_ok = match self.next_method().await? {
            AMQPClass::Connection(conn::AMQPMethod::StartOk(s)) => s,
            other => return Err(unexpected(other, "connection.start-ok")),
        };
        let caps = client_capabilities(&start_ok.client_properties);
        let mechanism = start_ok.mechanism.as_str().to_string();
        let user = match self.authenticate(&mechanism, start_ok.response.as_bytes()) {
            Ok(u) => {
                crate::metrics::COUNTERS.auth_attempts.inc();
                crate::metrics::COUNTERS.auth_succeeded.inc();
                u
            }
            Err(why @ (AuthError::UnsupportedMechanism(_) | AuthError::NotOffered(_))) => {
                // RabbitMQ drops the socket without a connection.close here.
                return Err(Failed::Silent(why.to_string()));
            }
            Err(why) => {
                // Counted as RabbitMQ counts a refused login: an attempt that failed, and a
                // connection closed that was never opened.
                let c = &crate::metrics::COUNTERS;
                c.auth_attempts.inc();
                c.auth_failed.inc();
                c.connections_closed.inc();
                // The log says why, as RabbitMQ's does; the client learns only "refused".
                let reason = format!("{mechanism} login refused: {why}");
                if why == AuthError::Malformed {
                    return Err(Failed::Silent(reason));
                }
                return Err(if caps.authentication_failure_close {
                    Failed::Close(crate::reply_text::login_refused(&mechanism), reason)
                } else {
                    Failed::Silent(reason)
                });
            }
        };
        let cfg = &self.broker.config;
        self.outbox.method(
            0,
            AMQPClass::Connection(conn::AMQPMethod::Tune(conn::Tune {
                channel_max: cfg.channel_max,
                frame_max: cfg.frame_max,
                heartbeat: cfg.heartbeat,
            })),
        );
        let tune_ok = match self.next_method().await? {
            AMQPClass::Connection(conn::AMQPMethod::TuneOk(t)) => t,
            other => return Err(unexpected(other, "connection.tune-ok")),
        };
        let frame_max = tune_ok.frame_max;
        if frame_max < FRAME_MIN_SIZE {
            return Err(refuse_tuning(format!(
                "negotiated frame_max = {frame_max} is lower than the minimum allowed value ({FRAME_MIN_SIZE})"
            )));
        }
        if frame_max > cfg.frame_max {
            return Err(refuse_tuning(format!(
                "negotiated frame_max = {frame_max} is higher than the maximum allowed value ({})",
                cfg.frame_max
            )));
        }
        let channel_max = match tune_ok.channel_max {
            0 => cfg.channel_max,
            n if n > cfg.channel_max => {
                return Err(refuse_tuning(format!(
                    "negotiated channel_max = {n} is higher than the maximum allowed value ({})",
                    cfg.channel_max
                )))
            }
            n => n,
        };
        let open = match self.next_method().await? {
            AMQPClass::Connection(conn::AMQPMethod::Open(o)) => o,
            other => return Err(unexpected(other, "connection.open")),
        };
        let vhost_name = open.virtual_host.as_str();
        let found = self
            .broker
            .access
            .grant(&user, vhost_name)
            .and_then(|grant| match self.broker.vhost(vhost_name) {
                Some(vhost) => Ok((grant, vhost)),
                None => Err(crate::reply_text::vhost_not_found(vhost_name)),
            });
        let info = Arc::new(crate::connection_info::ConnectionInfo::new(
            self.id,
            self.peer,
            self.local,
            user.clone(),
            vhost_name.to_string(),
            self.peer_certificate.is_some(),
            mechanism.clone(),
            start_ok.client_properties.clone(),
            (frame_max, channel_max, tune_ok.heartbeat),
            self.outbox.clone(),
        ));
        let found = found.and_then(|(grant, vhost)| {
            self.broker
                .admit(
                    info.clone(),
                    self.events.clone(),
                    self.channel_count.clone(),
                )
                .map(|()| (grant, vhost))
        });
        let (grant, vhost) = match found {
            Ok(found) => found,
            Err(e) => {
                let reason = e.explanation.clone();
                return Err(Failed::Close(e, reason));
            }
        };
        self.outbox.method(
            0,
            AMQPClass::Connection(conn::AMQPMethod::OpenOk(conn::OpenOk {})),
        );
        Ok(Done {
            info,
            vhost,
            grant,
            user,
            caps,
            frame_max,
            channel_max,
            heartbeat: tune_ok.heartbeat,
        })
    }
}

/// A tune-ok out of bounds: RabbitMQ closes the socket without a connection.close, and so do we.
fn refuse_tuning(text: String) -> Failed {
    Failed::Silent(text)
}

fn unexpected(m: AMQPClass, expected: &str) -> Failed {
    let (c, id) = (m.get_amqp_class_id(), m.get_amqp_method_id());
    Failed::Close(
        AmqpError::command_invalid(format!("expected {expected}, got method {c}.{id}"))
            .on_method(c, id),
        format!("expected {expected} during the handshake"),
    )
}
