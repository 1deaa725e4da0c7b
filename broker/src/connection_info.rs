//! What the broker shows of an open connection (the management API's `/api/connections` and
//! `/api/channels`, `warren ctl list_connections`): who it is, what it negotiated, and its open
//! channels. Made by the handshake when the connection is admitted, registered with the broker
//! while it runs; the connection adds a channel on channel.open and removes it where the channel
//! ends (`Connection::channel_outcome`).

use crate::channel::shared::ChannelShared;
use crate::message_stats::Traffic;
use crate::outbox::Outbox;
use amqp_codec::types::FieldTable;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// An open connection, as listed.
#[derive(Debug)]
pub struct ConnectionInfo {
    /// The broker's id of the connection.
    pub id: u64,
    /// RabbitMQ's connection name: `peer -> local`.
    pub name: String,
    /// The client's address.
    pub peer: SocketAddr,
    /// The listener's address it came in on.
    pub local: SocketAddr,
    /// The logged-in user.
    pub user: String,
    /// The vhost.
    pub vhost: String,
    /// Over TLS.
    pub tls: bool,
    /// The SASL mechanism it logged in with.
    pub auth_mechanism: String,
    /// What the client said of itself in connection.start-ok.
    pub client_properties: FieldTable,
    /// When it connected (ms since the Unix epoch).
    pub connected_at: u64,
    /// Negotiated frame_max.
    pub frame_max: u32,
    /// Negotiated channel_max.
    pub channel_max: u16,
    /// Negotiated heartbeat (s).
    pub heartbeat: u16,
    /// Where its frames go out (and what was sent).
    pub outbox: Arc<Outbox>,
    /// What was read from the client since the handshake (written by the connection's task).
    pub received: Traffic,
    channels: Mutex<BTreeMap<u16, Arc<ChannelShared>>>,
}

impl ConnectionInfo {
    /// A connection's facts, with no channel yet.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: u64,
        peer: SocketAddr,
        local: SocketAddr,
        user: String,
        vhost: String,
        tls: bool,
        auth_mechanism: String,
        client_properties: FieldTable,
        negotiated: (u32, u16, u16),
        outbox: Arc<Outbox>,
    ) -> Self {
        let (frame_max, channel_max, heartbeat) = negotiated;
        ConnectionInfo {
            id,
            name: format!("{peer} -> {local}"),
            peer,
            local,
            user,
            vhost,
            tls,
            auth_mechanism,
            client_properties,
            connected_at: crate::message::now_ms(),
            frame_max,
            channel_max,
            heartbeat,
            outbox,
            received: Traffic::default(),
            channels: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u16, Arc<ChannelShared>>> {
        self.channels.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A channel was opened.
    pub(crate) fn add_channel(&self, shared: Arc<ChannelShared>) {
        self.lock().insert(shared.id, shared);
    }

    /// A channel ended.
    pub(crate) fn remove_channel(&self, id: u16) {
        self.lock().remove(&id);
    }

    /// The open channels, by number.
    pub fn channels(&self) -> Vec<Arc<ChannelShared>> {
        self.lock().values().cloned().collect()
    }
}
