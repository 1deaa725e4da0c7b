//! Warren, an AMQP 0-9-1 message broker that RabbitMQ clients use unchanged.
//!
//! Layout (see ARCHITECTURE.md): [`server`] accepts, [`connection`] runs one task per client
//! connection, [`channel`] handles methods by class, [`exchange`] routes, [`queue`] holds messages and
//! dispatches to consumers, [`vhost`] owns exchanges and queues, [`auth`] checks logins.

pub mod alarm;
pub mod args;
pub mod auth;
pub mod broker;
pub mod channel;
pub mod config;
pub mod connection;
pub mod delayed;
pub mod direct_reply;
pub mod error;
pub mod exchange;
pub mod message;
pub mod outbox;
pub mod persist;
pub mod queue;
pub mod recovery;
pub mod reply_text;
pub mod server;
pub mod vhost;

pub use config::Config;
pub use server::Server;
