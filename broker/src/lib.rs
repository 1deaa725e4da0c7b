//! Warren, an AMQP 0-9-1 message broker that RabbitMQ clients use unchanged.
//!
//! The library's public face is small: [`Server`] (bind, then serve) with its [`Config`], which
//! the `warren` binary and the interop tests use, and [`engine`], the broker's building blocks
//! for benchmarks. Everything else is private to the crate.
//!
//! Layout (see ARCHITECTURE.md): `server` accepts, `connection` runs one task per client
//! connection, `channel` handles methods by class, `vhost` owns exchanges and queues and holds
//! the operations every entry point shares, `exchange` routes, `queue` holds messages and
//! dispatches to consumers through a delivery sink, `persist` builds every store operation,
//! `reply_text` words RabbitMQ's errors, `auth` checks logins.

mod admin;
mod alarm;
mod args;
mod auth;
mod broker;
mod channel;
mod config;
mod connection;
mod connection_info;
mod definitions;
mod delayed;
mod direct_reply;
mod error;
mod exchange;
mod management;
mod message;
mod message_stats;
mod metrics;
mod outbox;
mod persist;
mod policy;
mod queue;
mod recovery;
mod reply_text;
mod server;
mod tls;
mod vhost;

pub use alarm::Watermark;
pub use auth::{CertLogin, LoginFrom, SanType};
pub use config::Config;
pub use server::Server;
pub use tls::TlsSettings;

/// `warren ctl ARGS`: runs a `rabbitmqctl`-style admin command against the broker running on
/// `data_dir` (through its admin socket) and prints the answer; returns the exit code.
pub fn ctl(data_dir: &std::path::Path, args: Vec<String>) -> i32 {
    admin::client::run(data_dir, args)
}

/// The broker's building blocks without sockets: exchanges, queues with their delivery sink and
/// store, messages and a channel's delivery side. For benchmarks (`benches/broker.rs`) and
/// embedding experiments; not a stable interface.
pub mod engine {
    pub use crate::channel::shared::{ChannelLink, ChannelShared};
    pub use crate::channel::{ConnEvent, EventSender};
    pub use crate::error::{AmqpError, AmqpResult};
    pub use crate::exchange::{Destination, Exchange, ExchangeKind};
    pub use crate::message::Message;
    pub use crate::outbox::Outbox;
    pub use crate::persist::{Budget, QueueStore};
    pub use crate::queue::{
        DeadLetter, Delivery, DeliverySink, Overflow, Queue, QueueArgs, QueueOwner, QueueSpec,
        QueueType, Reason, Taken,
    };
}
