//! Warren, an AMQP 0-9-1 broker.
pub mod config;
pub mod server;
pub use config::Config;
pub use server::Server;
