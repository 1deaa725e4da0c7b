//! Broker configuration.
use std::net::SocketAddr;
use std::path::PathBuf;

/// Settings of one broker instance.
#[derive(Debug, Clone)]
pub struct Config {
    /// Addresses to listen on.
    pub listen: Vec<SocketAddr>,
    /// Data directory.
    pub data_dir: PathBuf,
}

impl Config {
    /// A configuration for tests: loopback, port 0 (any free port), given data dir.
    pub fn for_test(data_dir: PathBuf) -> Self {
        Config { listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))], data_dir }
    }
}
