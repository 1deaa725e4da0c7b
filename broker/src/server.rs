//! Accept loop and shutdown.
use crate::Config;
use std::future::Future;
use std::io;
use std::net::SocketAddr;

/// A bound, not yet running broker.
pub struct Server {
    listener: tokio::net::TcpListener,
    #[allow(dead_code)]
    config: Config,
}

impl Server {
    /// Bind the listeners named in `config`.
    pub async fn bind(config: Config) -> io::Result<Server> {
        let listener = tokio::net::TcpListener::bind(config.listen[0]).await?;
        Ok(Server { listener, config })
    }
    /// The first listener's address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap()
    }
    /// Serve until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        shutdown.await;
        Ok(())
    }
}
