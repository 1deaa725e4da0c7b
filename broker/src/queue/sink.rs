//! The seams between a queue and the rest of the broker.
//!
//! * [`DeliverySink`]: where a queue's messages go. A channel implements it today (credit,
//!   delivery tags, unacked deliveries and frames are the channel's business); a stream reader
//!   or a cluster proxy consumer will be other implementations. The queue decides *which*
//!   message goes to *which* consumer; the sink decides whether it has room and how to send.
//! * [`QueueOwner`]: what a queue asks of its vhost (routing its dead letters, deleting it when
//!   `x-expires` says so), so that a queue knows no vhost.
//!
//! Sinks are called with the queue locked (so that delivery tags reach the socket in the order
//! the queue chose); they take only their own short locks, never a queue's.

use super::{Consumer, DeadLetter, Queue};
use crate::message::Message;
use std::fmt::Debug;
use std::sync::Arc;

/// A message that left the ready list for a consumer or a basic.get, as the queue needs to know
/// it again when it is settled (ack, reject, requeue).
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Its position in the queue (its place if requeued).
    pub seq: u64,
    /// The message as stored (without a delivery-count header).
    pub message: Arc<Message>,
    /// A copy is in the store.
    pub stored: bool,
    /// When it expires if returned (ms since the epoch; `queue::NEVER` if it does not).
    pub expires_at: u64,
    /// Times it was returned before this delivery.
    pub delivery_count: u32,
}

/// What a sink receives when it takes a message.
#[derive(Debug)]
pub struct Taken {
    /// The queue's record of the delivery (the sink keeps it until the delivery is settled).
    pub delivery: Delivery,
    /// The message as it goes out (with `x-delivery-count` where the queue counts deliveries).
    pub outgoing: Arc<Message>,
    /// Delivered before.
    pub redelivered: bool,
    /// Ready messages left in the queue (for a basic.get; 0 for a consumer's delivery).
    pub remaining: u32,
}

/// Takes the next message for a sink that has room: `None` if there is none after all.
pub(crate) type Take<'a> = dyn FnMut() -> Option<Taken> + 'a;

/// Where a queue's deliveries go (see the module's doc).
pub trait DeliverySink: Send + Sync + Debug {
    /// A consumer was attached (queue locked): the sink registers it and, if `announce`, sends
    /// consume-ok now, so that it precedes the first delivery.
    fn attached(&self, consumer: &Arc<Consumer>, announce: bool);

    /// Offers `consumer` a message (queue locked). If the sink has room (flow on, socket not
    /// backed up, channel-wide prefetch), it calls `take` and sends what that returns. True if
    /// a message went out. A sink that is backed up arranges for `consumer.queue` to be
    /// dispatched again once it drains.
    fn offer(&self, consumer: &Arc<Consumer>, take: &mut Take<'_>) -> bool;

    /// Answers a basic.get (queue locked): calls `take` and sends get-ok with what it returns,
    /// or get-empty. `deferred` if the get had to wait for a read from the store (the sink's
    /// channel holds its later methods until then). A sink that is gone (channel closed) takes
    /// nothing.
    fn answer_get(&self, queue: &Arc<Queue>, no_ack: bool, take: &mut Take<'_>, deferred: bool);

    /// The queue dropped the consumer (the queue was deleted).
    fn cancelled(&self, consumer: &Arc<Consumer>);
}

/// What a queue asks of whoever owns it (its vhost).
pub trait QueueOwner: Send + Sync + Debug {
    /// Routes dead letters the queue made (never called with a queue locked).
    fn dead_letters(&self, letters: Vec<DeadLetter>);

    /// The queue went unused past its `x-expires`: delete it.
    fn expire(&self, queue: &Arc<Queue>);
}

impl AsRef<Delivery> for Delivery {
    fn as_ref(&self) -> &Delivery {
        self
    }
}
