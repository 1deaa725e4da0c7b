//! The outbound half of a connection: an [`Outbox`] that any task may push frames into, and the writer
//! task that drains it.
//!
//! Queues deliver by pushing into the consumer's outbox (never by writing to a socket), so a slow
//! socket never blocks a queue. The writer batches: it blocks only when the outbox is empty, then drains
//! whatever is waiting into one buffer and writes it with one syscall. Frames are encoded here, in the
//! writer, so deliveries carry only `Arc`s until the last moment.
//!
//! Backpressure: each outbox counts the deliveries not yet written. Above a high-water mark a queue stops
//! dispatching to consumers on this connection and registers itself; the writer calls it back once the
//! backlog falls below the low-water mark.

use crate::message::Message;
use crate::queue::Queue;
use amqp_codec::frame::{encode_content, encode_deliver, encode_heartbeat, encode_method};
use amqp_codec::protocol::basic;
use amqp_codec::AMQPClass;
use bytes::BytesMut;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Deliveries waiting in an outbox above which queues hold off.
const HIGH_WATER: usize = 4096;
/// Deliveries waiting below which held-off queues are resumed.
const LOW_WATER: usize = 1024;
/// Bytes gathered before a write is issued even if more is waiting.
const MAX_BATCH_BYTES: usize = 256 * 1024;

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

/// The sending side of a connection, shared by its channels and by queues delivering to it.
#[derive(Debug)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Out>,
    pending: AtomicUsize,
    frame_max: AtomicU32,
    waiters: Mutex<Vec<Weak<Queue>>>,
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

    /// Asks to have `queue` dispatch again once this outbox drains.
    pub fn wait_for_drain(&self, queue: &Arc<Queue>) {
        let mut w = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        if !w
            .iter()
            .any(|q| std::ptr::eq(q.as_ptr(), Arc::as_ptr(queue)))
        {
            w.push(Arc::downgrade(queue));
        }
    }

    /// Sets the negotiated frame_max used to split bodies.
    pub fn set_frame_max(&self, frame_max: u32) {
        self.frame_max.store(frame_max, Ordering::Relaxed);
    }

    /// True once the writer has gone (socket closed).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    fn written(&self, deliveries: usize) {
        if deliveries == 0 {
            return;
        }
        let before = self.pending.fetch_sub(deliveries, Ordering::Relaxed);
        if before - deliveries < LOW_WATER {
            let waiters =
                std::mem::take(&mut *self.waiters.lock().unwrap_or_else(|e| e.into_inner()));
            for q in waiters.iter().filter_map(Weak::upgrade) {
                q.dispatch();
            }
        }
    }
}

fn encode(buf: &mut BytesMut, out: &Out, frame_max: u32) -> usize {
    match out {
        Out::Method(ch, m) => encode_method(buf, *ch, m),
        Out::Deliver {
            channel,
            consumer_tag,
            delivery_tag,
            redelivered,
            message,
        } => {
            encode_deliver(
                buf,
                *channel,
                consumer_tag,
                *delivery_tag,
                *redelivered,
                &message.exchange,
                &message.routing_key,
            );
            encode_content(
                buf,
                *channel,
                message.properties.raw(),
                &message.body,
                frame_max,
            );
            return 1;
        }
        Out::GetOk {
            channel,
            delivery_tag,
            redelivered,
            message_count,
            message,
        } => {
            let m = AMQPClass::Basic(basic::AMQPMethod::GetOk(basic::GetOk {
                delivery_tag: *delivery_tag,
                redelivered: *redelivered,
                exchange: message.exchange.as_str().into(),
                routing_key: message.routing_key.as_str().into(),
                message_count: *message_count,
            }));
            encode_method(buf, *channel, &m);
            encode_content(
                buf,
                *channel,
                message.properties.raw(),
                &message.body,
                frame_max,
            );
        }
        Out::Return {
            channel,
            reply_code,
            reply_text,
            message,
        } => {
            let m = AMQPClass::Basic(basic::AMQPMethod::Return(basic::Return {
                reply_code: *reply_code,
                reply_text: (*reply_text).into(),
                exchange: message.exchange.as_str().into(),
                routing_key: message.routing_key.as_str().into(),
            }));
            encode_method(buf, *channel, &m);
            encode_content(
                buf,
                *channel,
                message.properties.raw(),
                &message.body,
                frame_max,
            );
        }
        Out::Raw(b) => buf.extend_from_slice(b),
        Out::Close => {}
    }
    0
}

/// Drains `rx` into `socket` until the outbox is closed or an `Out::Close` is written.
/// Sends a heartbeat when nothing else was written for `heartbeat / 2`.
pub async fn run_writer<W: AsyncWrite + Unpin>(
    mut socket: W,
    outbox: Arc<Outbox>,
    mut rx: mpsc::UnboundedReceiver<Out>,
    heartbeat: Arc<AtomicU32>,
) -> std::io::Result<()> {
    // Small at first: an idle connection never needs more (issue 5's S7 counts every KiB); it
    // grows to the size of the batches it writes.
    let mut buf = BytesMut::with_capacity(2048);
    loop {
        let hb = heartbeat.load(Ordering::Relaxed);
        let first = if hb == 0 {
            rx.recv().await
        } else {
            let interval = Duration::from_millis(hb as u64 * 500);
            match tokio::time::timeout(interval, rx.recv()).await {
                Ok(m) => m,
                Err(_) => {
                    encode_heartbeat(&mut buf);
                    socket.write_all(&buf).await?;
                    buf.clear();
                    continue;
                }
            }
        };
        let Some(first) = first else {
            break;
        };
        let frame_max = outbox.frame_max.load(Ordering::Relaxed);
        let mut close = matches!(first, Out::Close);
        let mut deliveries = encode(&mut buf, &first, frame_max);
        while !close && buf.len() < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(out) => {
                    close = matches!(out, Out::Close);
                    deliveries += encode(&mut buf, &out, frame_max);
                }
                Err(_) => break,
            }
        }
        if !buf.is_empty() {
            socket.write_all(&buf).await?;
            if buf.capacity() > 4 * MAX_BATCH_BYTES {
                buf = BytesMut::with_capacity(64 * 1024);
            } else {
                buf.clear();
            }
        }
        outbox.written(deliveries);
        if close {
            break;
        }
    }
    socket.flush().await?;
    let _ = socket.shutdown().await;
    Ok(())
}
