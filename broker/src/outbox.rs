//! A connection's outbox: what any task (the connection's own, a queue delivering, the store's
//! writer thread) pushes frames into, in order, for the connection's writer task
//! (`connection::writer`) to encode and write.
//!
//! Queues deliver by pushing into the consumer's outbox (never by writing to a socket), so a slow
//! socket never blocks a queue. Frames are encoded by the writer, so deliveries carry only `Arc`s
//! until the last moment.
//!
//! Backpressure: each outbox counts the deliveries not yet written. Above a high-water mark a
//! queue stops dispatching to consumers on this connection and registers itself (as a
//! [`Resume`]); the writer calls it back once the backlog falls below the low-water mark.
//!
//! A leaf: it knows messages and frames, nothing of queues, channels or sockets.

use crate::message::Message;
use amqp_codec::AMQPClass;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::mpsc;

/// Deliveries waiting in an outbox above which queues hold off.
const HIGH_WATER: usize = 4096;
/// Deliveries waiting below which held-off queues are resumed.
const LOW_WATER: usize = 1024;

/// Something to send on a connection.
#[derive(Debug)]
pub enum Out {
    /// A method frame without content.
    Method(u16, AMQPClass),
    /// basic.deliver with its content.
    Deliver {
        /// Channel.
        channel: u16,
        /// Consumer tag.
        consumer_tag: Arc<str>,
        /// Delivery tag.
        delivery_tag: u64,
        /// Redelivered flag.
        redelivered: bool,
        /// The message.
        message: Arc<Message>,
    },
    /// basic.get-ok with its content.
    GetOk {
        /// Channel.
        channel: u16,
        /// Delivery tag.
        delivery_tag: u64,
        /// Redelivered flag.
        redelivered: bool,
        /// Ready messages left in the queue.
        message_count: u32,
        /// The message.
        message: Arc<Message>,
    },
    /// basic.return with its content.
    Return {
        /// Channel.
        channel: u16,
        /// Reply code (312 NO_ROUTE, ...).
        reply_code: u16,
        /// Reply text.
        reply_text: &'static str,
        /// The message.
        message: Arc<Message>,
    },
    /// Bytes written as they are (the protocol header sent back to a client we refuse).
    Raw(bytes::Bytes),
    /// Flush everything before this, then close the socket.
    Close,
}

/// Something to call back once an outbox it waited on drains (a queue that held off delivering).
pub trait Resume: Send + Sync {
    /// The outbox drained: deliver again.
    fn resume(self: Arc<Self>);
}

/// The sending side of a connection, shared by its channels and by queues delivering to it.
#[derive(Debug)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Out>,
    pending: AtomicUsize,
    frame_max: AtomicU32,
    waiters: Mutex<Vec<Weak<dyn Resume>>>,
    /// What the writer sent (written by the writer task only).
    pub sent: crate::message_stats::Traffic,
}

impl Outbox {
    /// A new outbox and the receiver its writer drains.
    pub fn new() -> (Arc<Outbox>, mpsc::UnboundedReceiver<Out>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let o = Outbox {
            tx,
            pending: AtomicUsize::new(0),
            frame_max: AtomicU32::new(amqp_codec::constants::FRAME_MIN_SIZE),
            waiters: Mutex::new(Vec::new()),
            sent: Default::default(),
        };
        (Arc::new(o), rx)
    }

    /// Queues a frame; silently dropped if the connection is gone.
    pub fn send(&self, out: Out) {
        if matches!(out, Out::Deliver { .. }) {
            self.pending.fetch_add(1, Ordering::Relaxed);
        }
        let _ = self.tx.send(out);
    }

    /// Queues a method frame.
    pub fn method(&self, channel: u16, method: AMQPClass) {
        self.send(Out::Method(channel, method));
    }

    /// True when queues should stop delivering here for now.
    pub fn is_congested(&self) -> bool {
        self.pending.load(Ordering::Relaxed) >= HIGH_WATER
    }

    /// Asks to have `waiter` resumed once this outbox drains (once, however often it asks).
    pub fn wait_for_drain(&self, waiter: Arc<dyn Resume>) {
        let mut w = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        let me = Arc::as_ptr(&waiter) as *const ();
        if !w.iter().any(|q| q.as_ptr() as *const () == me) {
            w.push(Arc::downgrade(&waiter));
        }
    }

    /// The negotiated frame_max, to split bodies by.
    pub fn frame_max(&self) -> u32 {
        self.frame_max.load(Ordering::Relaxed)
    }

    /// Sets the negotiated frame_max used to split bodies.
    pub fn set_frame_max(&self, frame_max: u32) {
        self.frame_max.store(frame_max, Ordering::Relaxed);
    }

    /// True once the writer has gone (socket closed).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// The writer wrote `deliveries` deliveries: resumes waiters once the backlog is low.
    pub fn written(&self, deliveries: usize) {
        if deliveries == 0 {
            return;
        }
        let before = self.pending.fetch_sub(deliveries, Ordering::Relaxed);
        if before - deliveries < LOW_WATER {
            let waiters =
                std::mem::take(&mut *self.waiters.lock().unwrap_or_else(|e| e.into_inner()));
            for q in waiters.iter().filter_map(Weak::upgrade) {
                q.resume();
            }
        }
    }
}
