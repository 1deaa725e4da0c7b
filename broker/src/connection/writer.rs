//! The writer task of a connection: drains its [`Outbox`](crate::outbox::Outbox) into the socket.
//!
//! It batches: it blocks only when the outbox is empty, then drains whatever is waiting into one
//! buffer and writes it with one syscall. Frames are encoded here, so deliveries carry only
//! `Arc`s until the last moment.

use crate::outbox::{Out, Outbox};
use amqp_codec::frame::{encode_content, encode_deliver, encode_heartbeat, encode_method};
use amqp_codec::protocol::basic;
use amqp_codec::AMQPClass;
use bytes::BytesMut;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Bytes gathered before a write is issued even if more is waiting.
const MAX_BATCH_BYTES: usize = 256 * 1024;

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
pub(crate) async fn run_writer<W: AsyncWrite + Unpin>(
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
                    outbox.sent.add(buf.len());
                    buf.clear();
                    continue;
                }
            }
        };
        let Some(first) = first else {
            break;
        };
        let frame_max = outbox.frame_max();
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
            outbox.sent.add(buf.len());
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
