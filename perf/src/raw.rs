//! The raw client (`--client raw`): producers and consumers that speak AMQP 0-9-1 straight on the
//! socket, with the per-message frames written and read by hand (`wire.rs`).
//!
//! lapin costs several microseconds of CPU per message on each side (a future, a channel hop and a
//! frame object per publish, delivery and ack); on two cores shared with the broker that caps what
//! a benchmark can show (see BENCHMARKS.md, "the client's ceiling"). This client writes a window of
//! publishes with one syscall, reads deliveries in 64 KiB reads and answers each read with one
//! write of all its acks, as fast clients do. Semantics match the lapin client's: one ack per
//! delivery unless `--multi-ack`, at most `--confirm` unconfirmed publishes, `--rate` per producer.

use crate::wire::{self, ClientConn, RawFrame};
use crate::{now_nanos, routing, Args, ConsumerResult};
use amqp_codec::constants::{FRAME_BODY, FRAME_HEADER, FRAME_METHOD};
use amqp_codec::frame::encode_method;
use amqp_codec::protocol::{basic, confirm, connection as conn};
use amqp_codec::types::FieldTable;
use amqp_codec::AMQPClass;
use bytes::BytesMut;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::Notify;

/// What the producer's reading half tells its writing half.
#[derive(Default)]
struct Confirms {
    /// Publishes confirmed (acked or nacked).
    settled: AtomicU64,
    nacked: AtomicU64,
    /// The broker closed the channel or connection, or the socket went.
    closed: AtomicBool,
    changed: Notify,
}

/// Publish sequence numbers confirmed so far: every tag below `base`, plus `singles` above it.
struct Tracker {
    base: u64,
    singles: BTreeSet<u64>,
}

impl Tracker {
    /// Records a confirm; answers how many publishes it settles.
    fn settle(&mut self, tag: u64, multiple: bool) -> u64 {
        let mut n = 0;
        if multiple {
            if tag >= self.base {
                // Singles up to `tag` were counted already; those above it stay.
                let above = self.singles.split_off(&(tag + 1));
                let counted = std::mem::replace(&mut self.singles, above).len() as u64;
                n = tag + 1 - self.base - counted;
                self.base = tag + 1;
            }
        } else if tag >= self.base && self.singles.insert(tag) {
            n = 1;
        }
        while self.singles.remove(&self.base) {
            self.base += 1;
        }
        n
    }
}

async fn read_confirms(mut rd: OwnedReadHalf, mut buf: BytesMut, state: Arc<Confirms>) {
    let mut tracker = Tracker {
        base: 1,
        singles: BTreeSet::new(),
    };
    loop {
        while let Some(f) = wire::split_frame(&mut buf) {
            if f.kind != FRAME_METHOD {
                continue;
            }
            let ids = wire::method_ids(&f.payload);
            match ids {
                (60, 80) | (60, 120) => {
                    let (tag, multiple) = wire::parse_ack(&f.payload);
                    let n = tracker.settle(tag, multiple);
                    state.settled.fetch_add(n, Ordering::Release);
                    if ids.1 == 120 {
                        state.nacked.fetch_add(n, Ordering::Relaxed);
                    }
                    state.changed.notify_one();
                }
                (10, 51) => {
                    // connection.close-ok: our own close went through.
                    state.closed.store(true, Ordering::Release);
                    state.changed.notify_one();
                    return;
                }
                (10, 50) | (20, 40) => {
                    eprintln!("producer: the broker closed: {:?}", wire::parse_method(&f));
                    state.closed.store(true, Ordering::Release);
                    state.changed.notify_one();
                    return;
                }
                _ => {}
            }
        }
        match rd.read_buf(&mut buf).await {
            Ok(n) if n > 0 => {}
            _ => {
                state.closed.store(true, Ordering::Release);
                state.changed.notify_one();
                return;
            }
        }
    }
}

/// Publishes `quota` messages; answers (sent, nacked).
pub(crate) async fn produce(args: Arc<Args>, index: usize, quota: u64) -> (u64, u64) {
    let mut c = ClientConn::open(&args.uri).await;
    if args.confirm > 0 {
        c.send(
            1,
            AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
                nowait: false,
            })),
        )
        .await;
        match c.next_method().await {
            AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_)) => {}
            other => panic!("expected confirm.select-ok, got {other:?}"),
        }
    }
    let (exchange, routing_key) = routing(&args, index);
    let frame_max = c.frame_max;
    let (rd, mut wr) = c.stream.into_split();
    let state = Arc::new(Confirms::default());
    let reader = tokio::spawn(read_confirms(rd, c.buf, state.clone()));
    let size = args.size.max(8);
    let mut body = vec![0u8; size];
    let mut bodies = crate::body::Bodies::new(args.body, size, index as u64 + 1);
    let mut out = BytesMut::with_capacity(64 * 1024);
    let pipeline = args.pipeline.max(1) as u64;
    let window = args.confirm as u64;
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < quota {
        if state.closed.load(Ordering::Acquire) {
            break;
        }
        if window > 0 && sent - state.settled.load(Ordering::Acquire) >= window {
            state.changed.notified().await;
            continue;
        }
        out.clear();
        let mut batch = 0;
        while sent < quota && batch < pipeline && out.len() < 64 * 1024 {
            if window > 0 && sent - state.settled.load(Ordering::Acquire) >= window {
                break;
            }
            if args.rate > 0 {
                if batch > 0 {
                    break;
                }
                let due = started + Duration::from_secs_f64(sent as f64 / args.rate as f64);
                tokio::time::sleep_until(due.into()).await;
            }
            bodies.fill(&mut body);
            body[..8].copy_from_slice(&now_nanos().to_be_bytes());
            wire::put_publish(
                &mut out,
                1,
                &exchange,
                &routing_key,
                args.persistent,
                &body,
                frame_max,
            );
            sent += 1;
            batch += 1;
        }
        if wr.write_all(&out).await.is_err() {
            break;
        }
    }
    while window > 0
        && state.settled.load(Ordering::Acquire) < sent
        && !state.closed.load(Ordering::Acquire)
    {
        state.changed.notified().await;
    }
    let mut out = BytesMut::new();
    encode_method(&mut out, 0, &close_method());
    let _ = wr.write_all(&out).await;
    // Wait for close-ok: closing the socket earlier, with the broker's frames unread, resets the
    // connection, and a broker still working through our publishes (RabbitMQ in `flow`) loses them.
    let _ = tokio::time::timeout(Duration::from_secs(args.time_limit), reader).await;
    // With confirms, a publish never confirmed counts as nacked (as in the lapin client).
    let nacked = if window > 0 {
        state.nacked.load(Ordering::Relaxed)
            + sent.saturating_sub(state.settled.load(Ordering::Relaxed))
    } else {
        0
    };
    (sent, nacked)
}

fn close_method() -> AMQPClass {
    AMQPClass::Connection(conn::AMQPMethod::Close(conn::Close {
        reply_code: 200,
        reply_text: "done".into(),
        class_id: 0,
        method_id: 0,
    }))
}

/// A delivery whose content is still arriving.
struct Incoming {
    tag: u64,
    redelivered: bool,
    /// Body bytes still to come.
    left: u64,
    /// Send time from the body's first 8 bytes, once seen.
    sent_at: Option<u64>,
}

/// Consumes until `expected` messages were received by all consumers together.
pub(crate) async fn consume(
    args: Arc<Args>,
    index: usize,
    received_total: Arc<AtomicU64>,
    expected: u64,
) -> ConsumerResult {
    let mut c = ClientConn::open(&args.uri).await;
    if args.prefetch > 0 {
        c.send(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
                prefetch_count: args.prefetch,
                global: false,
            })),
        )
        .await;
        match c.next_method().await {
            AMQPClass::Basic(basic::AMQPMethod::QosOk(_)) => {}
            other => panic!("expected basic.qos-ok, got {other:?}"),
        }
    }
    let queue = crate::queue_name(&args, index);
    c.send(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
            queue: queue.as_str().into(),
            consumer_tag: format!("perf-{index}").as_str().into(),
            no_local: false,
            no_ack: !args.ack,
            exclusive: false,
            nowait: false,
            arguments: FieldTable::default(),
        })),
    )
    .await;
    match c.next_method().await {
        AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(_)) => {}
        other => panic!("expected basic.consume-ok, got {other:?}"),
    }
    let mut r = ConsumerResult {
        received: 0,
        latencies_us: Vec::new(),
        duplicates: 0,
    };
    let deadline = Instant::now() + Duration::from_secs(args.time_limit);
    let mut buf = std::mem::take(&mut c.buf);
    let mut out = BytesMut::with_capacity(16 * 1024);
    let mut incoming: Option<Incoming> = None;
    let mut unacked = 0u64;
    'read: loop {
        let mut got = 0u64;
        while let Some(f) = wire::split_frame(&mut buf) {
            match f.kind {
                FRAME_METHOD => match wire::method_ids(&f.payload) {
                    (60, 60) => {
                        let (tag, redelivered) = wire::parse_deliver(&f.payload);
                        incoming = Some(Incoming {
                            tag,
                            redelivered,
                            left: 0,
                            sent_at: None,
                        });
                    }
                    (10, 50) | (20, 40) | (60, 30) => {
                        eprintln!("consumer: the broker said {:?}", wire::parse_method(&f));
                        break 'read;
                    }
                    _ => {}
                },
                FRAME_HEADER => {
                    if let Some(d) = incoming.as_mut() {
                        d.left = wire::header_body_size(&f.payload);
                    }
                }
                FRAME_BODY => {
                    if let Some(d) = incoming.as_mut() {
                        if d.sent_at.is_none() && f.payload.len() >= 8 {
                            d.sent_at =
                                Some(u64::from_be_bytes(f.payload[..8].try_into().expect("8")));
                        }
                        d.left = d.left.saturating_sub(f.payload.len() as u64);
                    }
                }
                _ => {}
            }
            // A delivery is complete once its header said how much body follows and it all came.
            let done = matches!(&incoming, Some(d) if d.left == 0 && f.kind != FRAME_METHOD);
            if done {
                let d = incoming.take().expect("some");
                received(&args, &mut r, &d, &mut unacked, &mut out);
                got += 1;
            }
        }
        if !out.is_empty() {
            if c.stream.write_all(&out).await.is_err() {
                break;
            }
            out.clear();
        }
        if got > 0 {
            received_total.fetch_add(got, Ordering::Relaxed);
        }
        if received_total.load(Ordering::Relaxed) >= expected {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match tokio::time::timeout(
            left.min(Duration::from_millis(200)),
            c.stream.read_buf(&mut buf),
        )
        .await
        {
            Ok(Ok(n)) if n > 0 => {}
            Ok(_) => break,
            Err(_) => continue,
        }
    }
    // A multiple ack left pending at the end (count not a multiple of --multi-ack) is not sent:
    // the queue is deleted next, as in the lapin client.
    let _ = finish(&mut c.stream, &mut buf).await;
    r
}

fn received(
    args: &Args,
    r: &mut ConsumerResult,
    d: &Incoming,
    unacked: &mut u64,
    out: &mut BytesMut,
) {
    if d.redelivered {
        r.duplicates += 1;
    }
    if let Some(sent) = d.sent_at {
        r.latencies_us
            .push((now_nanos().saturating_sub(sent) / 1000).min(u32::MAX as u64) as u32);
    }
    r.received += 1;
    if args.ack {
        *unacked += 1;
        if *unacked >= args.multi_ack {
            *unacked = 0;
            wire::put_ack(out, 1, d.tag, args.multi_ack > 1);
        }
    }
}

/// connection.close, then wait (briefly) for close-ok.
async fn finish(stream: &mut tokio::net::TcpStream, buf: &mut BytesMut) -> Option<()> {
    let mut out = BytesMut::new();
    encode_method(&mut out, 0, &close_method());
    stream.write_all(&out).await.ok()?;
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        while let Some(RawFrame { kind, payload, .. }) = wire::split_frame(buf) {
            if kind == FRAME_METHOD && wire::method_ids(&payload) == (10, 51) {
                return Some(());
            }
        }
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read_buf(buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Tracker;
    use std::collections::BTreeSet;

    #[test]
    fn confirms_settle_each_publish_once() {
        let mut t = Tracker {
            base: 1,
            singles: BTreeSet::new(),
        };
        assert_eq!(t.settle(3, false), 1);
        assert_eq!(t.settle(5, false), 1);
        assert_eq!(t.settle(4, true), 3); // 1, 2, 4 (3 was settled)
        assert_eq!(t.base, 6); // 5 joins the contiguous run
        assert_eq!(t.settle(5, false), 0);
        assert_eq!(t.settle(8, true), 3);
        assert_eq!(t.settle(2, true), 0);
    }
}
