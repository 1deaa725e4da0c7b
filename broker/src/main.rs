//! The `warren` binary: flags and environment, logging, runtime; then [`warren::Server`].

use clap::Parser;
use std::net::IpAddr;
use std::path::PathBuf;
use tracing_subscriber::EnvFilter;
use warren::{Config, Server};

/// mimalloc, not glibc's malloc: every message allocates a few small objects and frees them on
/// another thread, and glibc consolidated its fast bins on each allocation of 1 KiB or more
/// (`malloc_consolidate` plus the rest of malloc took ~8% of the broker's CPU on a 1 KiB
/// persistent backlog, issue 14).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Warren: an AMQP 0-9-1 message broker for RabbitMQ clients.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on (repeatable). Default: all IPv4 and IPv6 interfaces.
    #[arg(long, env = "WARREN_BIND", value_delimiter = ',')]
    bind: Vec<IpAddr>,
    /// AMQP port. Default 5672.
    #[arg(long, env = "WARREN_PORT")]
    port: Option<u16>,
    /// Data directory. Default ./warren-data.
    #[arg(long, env = "WARREN_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Log filter: error, warn, info, debug, trace, or a tracing filter. Default info.
    #[arg(long, env = "WARREN_LOG_LEVEL")]
    log_level: Option<String>,
    /// Configuration file: RabbitMQ's rabbitmq.conf format if it ends in .conf, else TOML (flags
    /// and environment override it).
    #[arg(long, env = "WARREN_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Administer the running broker with rabbitmqctl's subcommands: add_user, delete_user,
    /// change_password, clear_password, set_user_tags, list_users, authenticate_user, add_vhost,
    /// delete_vhost, list_vhosts, set_permissions, clear_permissions, list_permissions,
    /// list_user_permissions, set_topic_permissions, clear_topic_permissions,
    /// list_topic_permissions (`-p VHOST`, `--formatter json`, `-q`, `-s`).
    Ctl {
        /// The subcommand and its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let (mut config, ignored) = match &args.config {
        Some(path) => match Config::from_file(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("warren: cannot read configuration: {e}");
                return std::process::ExitCode::from(2);
            }
        },
        None => (Config::default(), Vec::new()),
    };
    if !args.bind.is_empty() {
        config.bind = args.bind.clone();
    }
    if let Some(p) = args.port {
        config.port = p;
    }
    if let Some(d) = &args.data_dir {
        config.data_dir = d.clone();
    }
    if let Some(Command::Ctl { args }) = args.command {
        let code = warren::ctl(&config.data_dir, args);
        return std::process::ExitCode::from(code.clamp(0, 255) as u8);
    }
    if let Some(l) = &args.log_level {
        config.log_level = l.clone();
    }
    let filter = EnvFilter::try_new(&config.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .init();
    for line in &ignored {
        tracing::warn!(
            "configuration {}: {line}",
            args.config
                .as_deref()
                .unwrap_or(std::path::Path::new(""))
                .display()
        );
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("warren: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        if let Err(e) = std::fs::create_dir_all(&config.data_dir) {
            return Err(format!(
                "cannot create data directory {}: {e}",
                config.data_dir.display()
            ));
        }
        tracing::info!(
            "starting Warren {} (data directory {})",
            env!("CARGO_PKG_VERSION"),
            config.data_dir.display()
        );
        let server = Server::bind(config).await.map_err(|e| e.to_string())?;
        server
            .run(shutdown_signal())
            .await
            .map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("warren: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
        _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
    }
}
