//! What a channel's handlers get from the connection that owns it ([`ConnectionContext`]), and
//! what comes back to that connection from elsewhere ([`ConnEvent`]: the store's writer thread
//! finishing a confirm's or a commit's writes, a queue answering a basic.get from the store).

use crate::queue::Queue;
use crate::vhost::VHost;
use std::sync::Arc;

/// Client capabilities from connection.start-ok that change what the server sends.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ClientCapabilities {
    /// basic.cancel may be sent to the client.
    pub consumer_cancel_notify: bool,
    /// Failed logins get connection.close rather than a dropped socket.
    pub authentication_failure_close: bool,
    /// connection.blocked/unblocked may be sent.
    pub connection_blocked: bool,
}

/// Connection-wide facts the channel handlers need.
pub(crate) struct ConnectionContext<'a> {
    /// The vhost this connection opened.
    pub vhost: &'a Arc<VHost>,
    /// This connection's id (owner of exclusive queues).
    pub id: u64,
    /// The authenticated user.
    pub user: &'a str,
    /// This connection as a caller of vhost operations (its id and permissions).
    pub caller: &'a crate::auth::Caller,
    /// Exclusive queues declared on this connection (deleted when it closes).
    pub exclusive_queues: &'a mut Vec<Arc<Queue>>,
    /// The connection's event mailbox (store completions come back through it).
    pub events: &'a EventSender,
    /// Queues published to in this read that asked publishers to slow down (`queue::flow`).
    pub congested: &'a mut Vec<Arc<Queue>>,
}

/// Something that happened elsewhere (on the store's writer thread) that the connection must act on.
#[derive(Debug)]
pub enum ConnEvent {
    /// A publish's store writes finished.
    Confirmed {
        /// Channel number.
        channel: u16,
        /// Channel instance (a reopened channel number is another instance).
        instance: u64,
        /// Publish sequence number.
        seq: u64,
        /// False if a write failed.
        ok: bool,
    },
    /// A basic.get that waited for its queue to read from the store was answered.
    GetAnswered {
        /// Channel number.
        channel: u16,
        /// Channel instance.
        instance: u64,
    },
    /// Close the connection with this error (its user or vhost was deleted).
    Close(crate::error::AmqpError),
    /// A tx.commit's store writes finished.
    Committed {
        /// Channel number.
        channel: u16,
        /// Channel instance.
        instance: u64,
        /// False if a write failed.
        ok: bool,
    },
}

/// The sending side of a connection's event mailbox.
pub type EventSender = tokio::sync::mpsc::UnboundedSender<ConnEvent>;
