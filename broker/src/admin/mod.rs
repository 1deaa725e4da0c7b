//! Administration: `rabbitmqctl`'s user, vhost and permission subcommands, run against the
//! running broker. `warren ctl ARGS` ([`client`]) sends its arguments over a unix socket in the
//! data directory ([`socket`]; only the broker's OS user, or root, can reach it) and prints the
//! answer as `rabbitmqctl` does. The commands call the same operations (`auth::AccessControl`,
//! `Broker`) that definitions import and the HTTP API will.

pub(crate) mod client;
mod listings;
mod policies;
pub(crate) mod socket;

use crate::auth::{
    parse_limits, AdminError, Credentials, PasswordHash, VHostInfo, USER_LIMITS, VHOST_LIMITS,
};
use crate::broker::Broker;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// What a command answers: the progress line `rabbitmqctl` prints first, then a table or a
/// message, or an error and the exit code `rabbitmqctl` gives it.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Answer {
    /// The progress line (`Listing users ...`).
    pub info: String,
    /// Column names of a listing.
    pub columns: Vec<String>,
    /// Rows of a listing (JSON values, one per column).
    pub rows: Vec<Vec<Value>>,
    /// A message printed after the info line (`Success`).
    pub message: Option<String>,
    /// An error, printed to stderr.
    pub error: Option<String>,
    /// The exit code.
    pub exit: i32,
}

/// `rabbitmqctl`'s exit codes (sysexits).
mod exit {
    pub(super) const USAGE: i32 = 64;
    pub(super) const DATA_ERR: i32 = 65;
    pub(super) const NO_USER: i32 = 67;
    pub(super) const UNAVAILABLE: i32 = 69;
    pub(super) const SOFTWARE: i32 = 70;
}

impl Answer {
    fn info(info: impl Into<String>) -> Self {
        Answer {
            info: info.into(),
            ..Default::default()
        }
    }

    fn message(mut self, m: impl Into<String>) -> Self {
        self.message = Some(m.into());
        self
    }

    fn table(mut self, columns: &[&str], rows: Vec<Vec<Value>>) -> Self {
        self.columns = columns.iter().map(|c| c.to_string()).collect();
        self.rows = rows;
        self
    }

    fn failed(mut self, error: impl Into<String>, exit: i32) -> Self {
        self.error = Some(error.into());
        self.exit = exit;
        self
    }

    /// Turns an operation's result into the answer, with the exit code for its error.
    fn outcome(self, r: Result<(), AdminError>) -> Self {
        match r {
            Ok(()) => self,
            Err(e) => {
                let code = match e {
                    AdminError::UserExists(_) => exit::SOFTWARE,
                    AdminError::NoSuchUser(_) => exit::NO_USER,
                    AdminError::NoSuchVHost(_) => exit::UNAVAILABLE,
                    AdminError::Invalid(_) => exit::UNAVAILABLE,
                };
                self.failed(e.to_string(), code)
            }
        }
    }
}

/// Splits `-p VHOST` (default `/`) out of the arguments.
fn take_vhost(args: &mut Vec<String>) -> String {
    let mut vhost = "/".to_string();
    let mut i = 0;
    while i < args.len() {
        if (args[i] == "-p" || args[i] == "--vhost") && i + 1 < args.len() {
            vhost = args.remove(i + 1);
            args.remove(i);
        } else if let Some(v) = args[i].strip_prefix("--vhost=") {
            vhost = v.to_string();
            args.remove(i);
        } else {
            i += 1;
        }
    }
    vhost
}

fn tags_value(tags: &[String]) -> Value {
    json!(tags)
}

/// Runs one command line (without the program name and output options).
pub(crate) fn execute(broker: &Broker, mut args: Vec<String>) -> Answer {
    let access = &broker.access;
    if args.is_empty() {
        return Answer::default().failed("no command given", exit::USAGE);
    }
    let command = args.remove(0);
    let vhost = take_vhost(&mut args);
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let need = |n: usize| -> Option<Answer> {
        (args.len() < n).then(|| {
            Answer::default().failed(
                format!("Error (argument validation): not enough arguments for {command}"),
                exit::USAGE,
            )
        })
    };
    if let Some(answer) = policies::run(broker, &command, &vhost, &args) {
        return answer;
    }
    if let Some(answer) = listings::run(broker, &command, &vhost, &args) {
        return answer;
    }
    match command.as_str() {
        "add_user" => {
            if let Some(a) = need(2) {
                return a;
            }
            let (user, pass) = (arg(0), arg(1));
            if user.is_empty() {
                return Answer::default().failed(
                    "Error (argument validation): Bad argument: user cannot be an empty string",
                    exit::DATA_ERR,
                );
            }
            Answer::info(format!("Adding user \"{user}\" ..."))
                .message("Done. Don't forget to grant the user permissions to some virtual hosts! See 'rabbitmqctl help set_permissions' to learn more.")
                .outcome(access.add_user(&user, PasswordHash::new(&pass), Vec::new()))
                .drop_message_on_error()
        }
        "delete_user" => {
            if let Some(a) = need(1) {
                return a;
            }
            let user = arg(0);
            Answer::info(format!("Deleting user \"{user}\" ...")).outcome(broker.delete_user(&user))
        }
        "change_password" => {
            if let Some(a) = need(2) {
                return a;
            }
            let user = arg(0);
            Answer::info(format!("Changing password for user \"{user}\" ..."))
                .outcome(access.set_password(&user, PasswordHash::new(&arg(1))))
        }
        "clear_password" => {
            if let Some(a) = need(1) {
                return a;
            }
            let user = arg(0);
            Answer::info(format!("Clearing password for user \"{user}\" ..."))
                .outcome(access.set_password(&user, PasswordHash::none()))
        }
        "set_user_tags" => {
            if let Some(a) = need(1) {
                return a;
            }
            let user = arg(0);
            let tags: Vec<String> = args[1..].to_vec();
            Answer::info(format!(
                "Setting tags for user \"{user}\" to [{}] ...",
                tags.join(", ")
            ))
            .outcome(access.set_tags(&user, tags))
        }
        "list_users" => {
            let rows = access
                .users()
                .into_iter()
                .map(|u| vec![json!(u.name), tags_value(&u.tags)])
                .collect();
            Answer::info("Listing users ...").table(&["user", "tags"], rows)
        }
        "authenticate_user" => {
            if let Some(a) = need(2) {
                return a;
            }
            let user = arg(0);
            let creds = Credentials {
                user: user.clone(),
                password: arg(1),
            };
            let a = Answer::info(format!("Authenticating user \"{user}\" ..."));
            match access.authenticate(&creds, None) {
                Ok(_) => a.message("Success"),
                Err(why) => a.failed(
                    format!("Error: failed to authenticate user \"{user}\"\n{why}"),
                    exit::DATA_ERR,
                ),
            }
        }
        "add_vhost" => {
            if let Some(a) = need(1) {
                return a;
            }
            let name = arg(0);
            let mut info = VHostInfo {
                name: name.clone(),
                created_by: crate::auth::CLI_USER.into(),
                ..Default::default()
            };
            let mut i = 1;
            while i < args.len() {
                match args[i].as_str() {
                    "--description" if i + 1 < args.len() => {
                        info.description = args[i + 1].clone();
                        i += 2;
                    }
                    "--tags" if i + 1 < args.len() => {
                        info.tags = args[i + 1]
                            .split(',')
                            .map(str::trim)
                            .filter(|t| !t.is_empty())
                            .map(String::from)
                            .collect();
                        i += 2;
                    }
                    _ => i += 1,
                }
            }
            let (vhost, created) = broker.add_vhost(info);
            if created {
                vhost.start_delayed();
            }
            Answer::info(format!("Adding vhost \"{name}\" ..."))
        }
        "delete_vhost" => {
            if let Some(a) = need(1) {
                return a;
            }
            let name = arg(0);
            let a = Answer::info(format!("Deleting vhost \"{name}\" ..."));
            match broker.delete_vhost(&name) {
                Ok(()) => a,
                Err(e) => a.failed(e.to_string(), exit::DATA_ERR),
            }
        }
        "list_vhosts" => {
            let rows = access
                .vhosts()
                .into_iter()
                .map(|v| vec![json!(v.name)])
                .collect();
            Answer::info("Listing vhosts ...").table(&["name"], rows)
        }
        "set_permissions" => {
            if let Some(a) = need(4) {
                return a;
            }
            let user = arg(0);
            Answer::info(format!(
                "Setting permissions for user \"{user}\" in vhost \"{vhost}\" ..."
            ))
            .outcome(access.set_permissions(&user, &vhost, &arg(1), &arg(2), &arg(3)))
        }
        "clear_permissions" => {
            if let Some(a) = need(1) {
                return a;
            }
            let user = arg(0);
            Answer::info(format!(
                "Clearing permissions for user \"{user}\" in vhost \"{vhost}\" ..."
            ))
            .outcome(access.clear_permissions(&user, &vhost))
        }
        "list_permissions" => {
            let a = Answer::info(format!("Listing permissions for vhost \"{vhost}\" ..."));
            if !access.has_vhost(&vhost) {
                return a.failed(AdminError::NoSuchVHost(vhost).to_string(), exit::DATA_ERR);
            }
            let rows = access
                .permissions(Some(&vhost), None)
                .into_iter()
                .map(|(u, _, p)| {
                    vec![
                        json!(u),
                        json!(p.configure.as_str()),
                        json!(p.write.as_str()),
                        json!(p.read.as_str()),
                    ]
                })
                .collect();
            a.table(&["user", "configure", "write", "read"], rows)
        }
        "list_user_permissions" => {
            if let Some(a) = need(1) {
                return a;
            }
            let user = arg(0);
            let a = Answer::info(format!("Listing permissions for user \"{user}\" ..."));
            if !access.has_user(&user) {
                return a.failed(format!("{{:no_such_user, \"{user}\"}}"), exit::UNAVAILABLE);
            }
            let rows = access
                .permissions(None, Some(&user))
                .into_iter()
                .map(|(_, v, p)| {
                    vec![
                        json!(v),
                        json!(p.configure.as_str()),
                        json!(p.write.as_str()),
                        json!(p.read.as_str()),
                    ]
                })
                .collect();
            a.table(&["vhost", "configure", "write", "read"], rows)
        }
        "set_topic_permissions" => {
            if let Some(a) = need(4) {
                return a;
            }
            let (user, exchange) = (arg(0), arg(1));
            Answer::info(format!(
                "Setting topic permissions on \"{exchange}\" for user \"{user}\" in vhost \"{vhost}\" ..."
            ))
            .outcome(access.set_topic_permissions(&user, &vhost, &exchange, &arg(2), &arg(3)))
        }
        "clear_topic_permissions" => {
            if let Some(a) = need(1) {
                return a;
            }
            let user = arg(0);
            let exchange = args.get(1).cloned();
            let info = match &exchange {
                Some(x) => format!(
                    "Clearing topic permissions on \"{x}\" for user \"{user}\" in vhost \"{vhost}\" ..."
                ),
                None => {
                    format!("Clearing topic permissions for user \"{user}\" in vhost \"{vhost}\" ...")
                }
            };
            Answer::info(info).outcome(access.clear_topic_permissions(
                &user,
                &vhost,
                exchange.as_deref(),
            ))
        }
        "list_topic_permissions" => {
            let rows = access
                .topic_permissions(Some(&vhost), None)
                .into_iter()
                .map(|(u, _, p)| {
                    vec![
                        json!(u),
                        json!(p.exchange),
                        json!(p.write.as_str()),
                        json!(p.read.as_str()),
                    ]
                })
                .collect();
            Answer::info(format!(
                "Listing topic permissions for vhost \"{vhost}\" ..."
            ))
            .table(&["user", "exchange", "write", "read"], rows)
        }
        "set_vhost_limits" => {
            if let Some(a) = need(1) {
                return a;
            }
            let json = arg(0);
            let a = Answer::info(format!(
                "Setting vhost limits to \"{json}\" for vhost \"{vhost}\" ..."
            ));
            match parse_limits(&json, &VHOST_LIMITS, "limits") {
                Ok(limits) => a.outcome(broker.set_vhost_limits(&vhost, limits)),
                Err(e) => a.failed(format!("Validation failed\n\n{e}\n"), exit::UNAVAILABLE),
            }
        }
        "clear_vhost_limits" => Answer::info(format!("Clearing vhost \"{vhost}\" limits ..."))
            .outcome(broker.set_vhost_limits(&vhost, Default::default())),
        "list_vhost_limits" => {
            let a = Answer::info(format!("Listing limits for vhost \"{vhost}\" ..."));
            if !access.has_vhost(&vhost) {
                return a.failed(AdminError::NoSuchVHost(vhost).to_string(), exit::DATA_ERR);
            }
            let limits = access.vhost_limits(&vhost);
            let text = if limits.is_empty() {
                String::new()
            } else {
                json!(limits).to_string()
            };
            a.message(text)
        }
        "set_user_limits" => {
            if let Some(a) = need(2) {
                return a;
            }
            let (user, json) = (arg(0), arg(1));
            let a = Answer::info(format!(
                "Setting user limits to \"{json}\" for user \"{user}\" ..."
            ));
            match parse_limits(&json, &USER_LIMITS, "user-limits") {
                Ok(limits) => a.outcome(access.set_user_limits(&user, limits)),
                Err(e) => a.failed(e.to_string(), exit::UNAVAILABLE),
            }
        }
        "clear_user_limits" => {
            if let Some(a) = need(2) {
                return a;
            }
            let (user, name) = (arg(0), arg(1));
            Answer::info(format!("Clearing \"{name}\" limit for user \"{user}\" ..."))
                .outcome(access.clear_user_limits(&user, &name))
        }
        "list_user_limits" => {
            let user = match args.iter().position(|a| a == "--user") {
                Some(i) if i + 1 < args.len() => args[i + 1].clone(),
                _ => arg(0),
            };
            let a = Answer::info(format!("Listing limits for user \"{user}\" ..."));
            if !access.has_user(&user) {
                return a.failed(format!("{{:no_such_user, \"{user}\"}}"), exit::UNAVAILABLE);
            }
            a.message(json!(access.user_limits(&user)).to_string())
        }
        "set_vm_memory_high_watermark" => {
            // rabbitmqctl: `set_vm_memory_high_watermark FRACTION` or `... absolute BYTES`.
            let watermark = match (args.first().map(String::as_str), args.get(1)) {
                (Some("absolute"), Some(v)) => {
                    crate::config::rabbitmq_conf::bytes(v).map(crate::alarm::Watermark::Absolute)
                }
                (Some(f), None) => f
                    .parse::<f64>()
                    .ok()
                    .filter(|f| (0.0..=1.0).contains(f))
                    .map(crate::alarm::Watermark::Relative),
                _ => None,
            };
            let Some(w) = watermark else {
                return Answer::default().failed(
                    "Error (argument validation): expected a fraction between 0.0 and 1.0, or absolute BYTES",
                    exit::USAGE,
                );
            };
            broker.alarms.set_memory_limit(w.bytes());
            Answer::info(format!(
                "Setting memory threshold on {} to {} ...",
                "warren",
                args.join(" ")
            ))
        }
        // Warren's own (RabbitMQ 3.10 has none: its operators clear Erlang's PEM cache).
        "reload_tls_certificates" => {
            let a = Answer::info("Reloading TLS certificates ...");
            match broker.tls.get() {
                None => a.failed("TLS is not configured", exit::UNAVAILABLE),
                Some(certs) => match certs.reload() {
                    Ok(()) => {
                        tracing::info!("TLS certificates reloaded (warren ctl)");
                        a
                    }
                    Err(e) => {
                        tracing::error!(
                            "cannot reload TLS certificates, keeping the old ones: {e}"
                        );
                        a.failed(
                            format!("cannot reload, the old certificates stay: {e}"),
                            exit::DATA_ERR,
                        )
                    }
                },
            }
        }
        "export_definitions" => {
            if let Some(a) = need(1) {
                return a;
            }
            let path = arg(0);
            let a = Answer::info(format!(
                "Exporting definitions in JSON to a file at \"{path}\" ..."
            ));
            let written = crate::definitions::export(broker, None, crate::definitions::Layout::Ctl)
                .and_then(|defs| {
                    let text = serde_json::to_string(&defs).map_err(|e| e.to_string())?;
                    if path == "-" {
                        return Ok(Some(text));
                    }
                    std::fs::write(&path, text)
                        .map(|()| None)
                        .map_err(|e| format!("{path}: {e}"))
                });
            match written {
                Ok(Some(text)) => Answer::default().message(text),
                Ok(None) => a,
                Err(e) => a.failed(e, exit::DATA_ERR),
            }
        }
        "import_definitions" => {
            if let Some(a) = need(1) {
                return a;
            }
            let path = arg(0);
            let a = Answer::info(format!(
                "Importing definitions in JSON from a file at \"{path}\" ..."
            ));
            // All or nothing, as through the API: a bad entry refuses the file.
            let read = std::fs::read_to_string(&path)
                .map_err(|e| format!("{path}: {e}"))
                .and_then(|t| {
                    serde_json::from_str::<Value>(&t)
                        .ok()
                        .filter(Value::is_object)
                        .ok_or_else(|| format!("{path}: not a JSON definitions object"))
                });
            match read.map(|defs| crate::definitions::import(broker, &defs, None)) {
                Ok(Ok(_)) => a.message(
                    "Successfully started definition import. This process is asynchronous and can take some time.",
                ),
                Ok(Err(reason)) => {
                    let text = reason.as_str().map_or_else(|| reason.to_string(), str::to_string);
                    a.failed(text, exit::DATA_ERR)
                }
                Err(e) => a.failed(e, exit::DATA_ERR),
            }
        }
        other => Answer::default().failed(
            format!("Error: could not recognise command '{other}'"),
            exit::USAGE,
        ),
    }
}

impl Answer {
    fn drop_message_on_error(mut self) -> Self {
        if self.error.is_some() {
            self.message = None;
        }
        self
    }
}
