//! Interop tests through lapin (one test binary; modules by area).
//!
//! Every test here passes against RabbitMQ 3.10.8 (`AMQP_URL=amqp://guest:guest@localhost:5672/%2F`);
//! that is the specification Warren follows.

// Test code: helpers fail the test by panicking, as the tests themselves do.
#![allow(clippy::unwrap_used)]

mod access;
mod acks;
mod bad_input;
mod basic;
mod config_file;
mod confirms_tx;
mod connection;
mod content;
mod definitions;
mod exchanges;
mod extensions;
mod qos;
mod queues;
mod restart;
mod routing;
mod routing_model;
mod shutdown;
mod smoke;
mod tls;
mod util;
