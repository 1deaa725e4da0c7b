//! `warren-perf --sink PORT`: a trivial in-memory AMQP 0-9-1 server, for measuring what a client
//! can do when the broker costs next to nothing (issue 5 asks for the perf client's own ceiling).
//!
//! It keeps no messages: a publish goes straight to a consumer of the queue it names (round-robin;
//! dropped if there is none), confirms are sent for every read's worth of publishes at once, acks
//! are ignored, there is no prefetch and no flow control. Declarations succeed and bindings are
//! remembered (fanout; direct by key; topic only `prefix.#` and exact keys), which is all the
//! scenarios of `warren-perf` use. Not a broker: never point an application at it.

use crate::wire::{self, RawFrame};
use amqp_codec::constants::{FRAME_BODY, FRAME_HEADER, FRAME_METHOD};
use amqp_codec::protocol::{basic, channel, confirm, connection as conn, exchange, queue};
use amqp_codec::types::{FieldTable, LongString};
use amqp_codec::{AMQPClass, PROTOCOL_HEADER};
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// The frame_max the sink offers (and splits bodies to).
const FRAME_MAX: u32 = 131_072;

/// Bytes waiting to be written to one connection, and the writer's wake-up.
#[derive(Default)]
struct Outbox {
    buf: Mutex<BytesMut>,
    ready: Notify,
}

impl Outbox {
    fn push(&self, f: impl FnOnce(&mut BytesMut)) {
        f(&mut self.buf.lock().expect("outbox"));
        self.ready.notify_one();
    }
}

struct Consumer {
    out: Arc<Outbox>,
    channel: u16,
    tag: String,
    /// Delivery tags are per channel; the sink allows one consumer per channel, which is what
    /// the perf client does.
    next_tag: AtomicU64,
}

impl Consumer {
    fn put(&self, buf: &mut BytesMut, exchange: &str, key: &str, props: &[u8], body: &[u8]) {
        let tag = self.next_tag.fetch_add(1, Ordering::Relaxed) + 1;
        amqp_codec::frame::encode_deliver(buf, self.channel, &self.tag, tag, false, exchange, key);
        amqp_codec::frame::encode_content(buf, self.channel, props, body, FRAME_MAX);
    }
}

#[derive(Default)]
struct QueueSlot {
    consumers: Vec<Arc<Consumer>>,
    next: usize,
    /// Messages that came while the queue had no consumer (a consumer may start after its
    /// producer); handed to the first consumer.
    waiting: Vec<(String, String, Bytes, Bytes)>,
}

#[derive(Default)]
struct Hub {
    queues: Mutex<HashMap<String, QueueSlot>>,
    exchanges: Mutex<HashMap<String, Exchange>>,
}

/// An exchange's type and its bindings (binding key, queue).
type Exchange = (String, Vec<(String, String)>);

impl Hub {
    fn targets(&self, exchange: &str, key: &str) -> Vec<String> {
        if exchange.is_empty() {
            return vec![key.to_string()];
        }
        let exchanges = self.exchanges.lock().expect("hub");
        let Some((kind, bindings)) = exchanges.get(exchange) else {
            return Vec::new();
        };
        bindings
            .iter()
            .filter(|(b, _)| match kind.as_str() {
                "fanout" => true,
                "topic" => {
                    b == key
                        || b.strip_suffix(".#").is_some_and(|p| {
                            key == p || key.strip_prefix(p).is_some_and(|r| r.starts_with('.'))
                        })
                }
                _ => b == key,
            })
            .map(|(_, q)| q.clone())
            .collect()
    }

    fn deliver(&self, queue: &str, exchange: &str, key: &str, props: &[u8], body: &[u8]) {
        let consumer = {
            let mut queues = self.queues.lock().expect("hub");
            let Some(slot) = queues.get_mut(queue) else {
                return;
            };
            if slot.consumers.is_empty() {
                let (p, b) = (Bytes::copy_from_slice(props), Bytes::copy_from_slice(body));
                slot.waiting.push((exchange.into(), key.into(), p, b));
                return;
            }
            slot.next = (slot.next + 1) % slot.consumers.len();
            slot.consumers[slot.next].clone()
        };
        consumer
            .out
            .push(|buf| consumer.put(buf, exchange, key, props, body));
    }
}

/// Serves forever on 127.0.0.1:`port`.
pub(crate) async fn serve(port: u16) {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| panic!("cannot listen on {port}: {e}"));
    eprintln!("sink listening on 127.0.0.1:{port}");
    let hub = Arc::new(Hub::default());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let hub = hub.clone();
        tokio::spawn(async move {
            if let Err(why) = connection(stream, hub).await {
                eprintln!("sink: connection ended: {why}");
            }
        });
    }
}

async fn write_loop(mut wr: OwnedWriteHalf, out: Arc<Outbox>) {
    loop {
        out.ready.notified().await;
        let data = out.buf.lock().expect("outbox").split().freeze();
        if !data.is_empty() && wr.write_all(&data).await.is_err() {
            return;
        }
    }
}

/// A publish whose content is arriving.
struct Publishing {
    exchange: String,
    key: String,
    props: Bytes,
    size: u64,
    body: BytesMut,
}

/// Per-channel state: confirm mode and the last publish sequence number.
#[derive(Default)]
struct Chan {
    confirming: bool,
    published: u64,
    confirmed: u64,
    publishing: Option<Publishing>,
}

fn short_str(payload: &[u8], at: &mut usize) -> String {
    let len = payload[*at] as usize;
    let s = String::from_utf8_lossy(&payload[*at + 1..*at + 1 + len]).into_owned();
    *at += 1 + len;
    s
}

async fn connection(stream: TcpStream, hub: Arc<Hub>) -> Result<(), String> {
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (mut rd, wr) = stream.into_split();
    let out = Arc::new(Outbox::default());
    let writer = tokio::spawn(write_loop(wr, out.clone()));
    let mut buf = BytesMut::with_capacity(64 * 1024);
    while buf.len() < 8 {
        if rd.read_buf(&mut buf).await.map_err(|e| e.to_string())? == 0 {
            return Err("closed before the protocol header".into());
        }
    }
    if &buf[..8] != PROTOCOL_HEADER {
        return Err("bad protocol header".into());
    }
    let _ = buf.split_to(8);
    let method = |out: &Outbox, ch: u16, m: AMQPClass| {
        out.push(|b| amqp_codec::frame::encode_method(b, ch, &m))
    };
    method(
        &out,
        0,
        AMQPClass::Connection(conn::AMQPMethod::Start(conn::Start {
            version_major: 0,
            version_minor: 9,
            server_properties: FieldTable::default(),
            mechanisms: LongString::from(b"PLAIN".to_vec()),
            locales: LongString::from(b"en_US".to_vec()),
        })),
    );
    let mut chans: HashMap<u16, Chan> = HashMap::new();
    let mut consumers: Vec<(String, Arc<Consumer>)> = Vec::new();
    'conn: loop {
        while let Some(f) = wire::split_frame(&mut buf) {
            match f.kind {
                FRAME_METHOD => {
                    if wire::method_ids(&f.payload) == (60, 40) {
                        let mut at = 6;
                        let exchange = short_str(&f.payload, &mut at);
                        let key = short_str(&f.payload, &mut at);
                        let ch = chans.entry(f.channel).or_default();
                        ch.publishing = Some(Publishing {
                            exchange,
                            key,
                            props: Bytes::new(),
                            size: 0,
                            body: BytesMut::new(),
                        });
                        continue;
                    }
                    if !control(&f, &hub, &out, &mut chans, &mut consumers, method) {
                        break 'conn;
                    }
                }
                FRAME_HEADER => {
                    let ch = chans.entry(f.channel).or_default();
                    if let Some(p) = ch.publishing.as_mut() {
                        p.size = wire::header_body_size(&f.payload);
                        p.props = f.payload.slice(12..);
                    }
                    if ch.publishing.as_ref().is_some_and(|p| p.size == 0) {
                        complete(&hub, ch);
                    }
                }
                FRAME_BODY => {
                    let ch = chans.entry(f.channel).or_default();
                    if let Some(p) = ch.publishing.as_mut() {
                        p.body.extend_from_slice(&f.payload);
                        if p.body.len() as u64 >= p.size {
                            complete(&hub, ch);
                        }
                    }
                }
                _ => {}
            }
        }
        for (&id, ch) in chans.iter_mut() {
            if ch.confirming && ch.published > ch.confirmed {
                ch.confirmed = ch.published;
                let tag = ch.published;
                out.push(|b| wire::put_ack(b, id, tag, true));
            }
        }
        match rd.read_buf(&mut buf).await {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
    {
        let mut queues = hub.queues.lock().expect("hub");
        for (q, c) in consumers {
            if let Some(slot) = queues.get_mut(&q) {
                slot.consumers.retain(|x| !Arc::ptr_eq(x, &c));
            }
        }
    }
    // Let the writer flush (close-ok) before the socket goes.
    out.ready.notify_one();
    tokio::task::yield_now().await;
    writer.abort();
    Ok(())
}

fn complete(hub: &Hub, ch: &mut Chan) {
    let p = ch.publishing.take().expect("publishing");
    for q in hub.targets(&p.exchange, &p.key) {
        hub.deliver(&q, &p.exchange, &p.key, &p.props, &p.body);
    }
    if ch.confirming {
        ch.published += 1;
    }
}

/// Answers a control method; false once the connection is to end.
fn control(
    f: &RawFrame,
    hub: &Hub,
    out: &Arc<Outbox>,
    chans: &mut HashMap<u16, Chan>,
    consumers: &mut Vec<(String, Arc<Consumer>)>,
    method: impl Fn(&Outbox, u16, AMQPClass),
) -> bool {
    let id = f.channel;
    let reply = match wire::parse_method(f) {
        AMQPClass::Connection(conn::AMQPMethod::StartOk(_)) => {
            AMQPClass::Connection(conn::AMQPMethod::Tune(conn::Tune {
                channel_max: 2047,
                frame_max: FRAME_MAX,
                heartbeat: 0,
            }))
        }
        AMQPClass::Connection(conn::AMQPMethod::TuneOk(_)) => return true,
        AMQPClass::Connection(conn::AMQPMethod::Open(_)) => {
            AMQPClass::Connection(conn::AMQPMethod::OpenOk(conn::OpenOk {}))
        }
        AMQPClass::Connection(conn::AMQPMethod::Close(_)) => {
            method(
                out,
                0,
                AMQPClass::Connection(conn::AMQPMethod::CloseOk(conn::CloseOk {})),
            );
            return false;
        }
        AMQPClass::Channel(channel::AMQPMethod::Open(_)) => {
            chans.insert(id, Chan::default());
            AMQPClass::Channel(channel::AMQPMethod::OpenOk(channel::OpenOk {}))
        }
        AMQPClass::Channel(channel::AMQPMethod::Close(_)) => {
            chans.remove(&id);
            AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {}))
        }
        AMQPClass::Exchange(exchange::AMQPMethod::Declare(d)) => {
            hub.exchanges
                .lock()
                .expect("hub")
                .entry(d.exchange.to_string())
                .or_insert_with(|| (d.kind.to_string(), Vec::new()));
            if d.nowait {
                return true;
            }
            AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(exchange::DeclareOk {}))
        }
        AMQPClass::Exchange(exchange::AMQPMethod::Delete(d)) => {
            hub.exchanges
                .lock()
                .expect("hub")
                .remove(d.exchange.as_str());
            AMQPClass::Exchange(exchange::AMQPMethod::DeleteOk(exchange::DeleteOk {}))
        }
        AMQPClass::Queue(queue::AMQPMethod::Declare(d)) => {
            let mut queues = hub.queues.lock().expect("hub");
            let slot = queues.entry(d.queue.to_string()).or_default();
            AMQPClass::Queue(queue::AMQPMethod::DeclareOk(queue::DeclareOk {
                queue: d.queue,
                message_count: 0,
                consumer_count: slot.consumers.len() as u32,
            }))
        }
        AMQPClass::Queue(queue::AMQPMethod::Bind(b)) => {
            if let Some((_, bindings)) = hub
                .exchanges
                .lock()
                .expect("hub")
                .get_mut(b.exchange.as_str())
            {
                bindings.push((b.routing_key.to_string(), b.queue.to_string()));
            }
            AMQPClass::Queue(queue::AMQPMethod::BindOk(queue::BindOk {}))
        }
        AMQPClass::Queue(queue::AMQPMethod::Purge(_)) => {
            AMQPClass::Queue(queue::AMQPMethod::PurgeOk(queue::PurgeOk {
                message_count: 0,
            }))
        }
        AMQPClass::Queue(queue::AMQPMethod::Delete(d)) => {
            hub.queues.lock().expect("hub").remove(d.queue.as_str());
            AMQPClass::Queue(queue::AMQPMethod::DeleteOk(queue::DeleteOk {
                message_count: 0,
            }))
        }
        AMQPClass::Basic(basic::AMQPMethod::Qos(_)) => {
            AMQPClass::Basic(basic::AMQPMethod::QosOk(basic::QosOk {}))
        }
        AMQPClass::Basic(basic::AMQPMethod::Consume(c)) => {
            let consumer = Arc::new(Consumer {
                out: out.clone(),
                channel: id,
                tag: c.consumer_tag.to_string(),
                next_tag: AtomicU64::new(0),
            });
            // consume-ok must precede the first delivery: queue it before registering.
            method(
                out,
                id,
                AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
                    consumer_tag: c.consumer_tag.clone(),
                })),
            );
            let mut queues = hub.queues.lock().expect("hub");
            let slot = queues.entry(c.queue.to_string()).or_default();
            slot.consumers.push(consumer.clone());
            let waiting = std::mem::take(&mut slot.waiting);
            out.push(|buf| {
                for (x, k, p, b) in &waiting {
                    consumer.put(buf, x, k, p, b);
                }
            });
            drop(queues);
            consumers.push((c.queue.to_string(), consumer));
            return true;
        }
        AMQPClass::Confirm(confirm::AMQPMethod::Select(_)) => {
            chans.entry(id).or_default().confirming = true;
            AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(confirm::SelectOk {}))
        }
        // Acks, nacks, rejects, cancels and anything else: nothing to answer in a sink.
        _ => return true,
    };
    method(out, id, reply);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_bindings_of_the_perf_scenarios_match() {
        let hub = Hub::default();
        hub.exchanges.lock().unwrap().insert(
            "x".into(),
            (
                "topic".into(),
                vec![
                    ("q-0.#".into(), "q-0".into()),
                    ("q-1.#".into(), "q-1".into()),
                ],
            ),
        );
        assert_eq!(hub.targets("x", "q-0.msg"), vec!["q-0".to_string()]);
        assert!(hub.targets("x", "q-2.msg").is_empty());
        assert_eq!(hub.targets("", "q-9"), vec!["q-9".to_string()]);
    }

    #[test]
    fn frame_helpers_agree_with_the_codec() {
        let mut buf = BytesMut::new();
        wire::put_publish(&mut buf, 3, "ex", "key", true, &[7u8; 10], 4096);
        let mut copy = buf.clone();
        let f = wire::split_frame(&mut copy).unwrap();
        assert_eq!(wire::method_ids(&f.payload), (60, 40));
        match amqp_codec::decode_frame(&mut buf, 0).unwrap().unwrap() {
            amqp_codec::Frame::Method(3, AMQPClass::Basic(basic::AMQPMethod::Publish(p))) => {
                assert_eq!((p.exchange.as_str(), p.routing_key.as_str()), ("ex", "key"));
            }
            other => panic!("{other:?}"),
        }
        match amqp_codec::decode_frame(&mut buf, 0).unwrap().unwrap() {
            amqp_codec::Frame::Header(3, h) => {
                assert_eq!(h.body_size, 10);
                let props = amqp_codec::Properties::new(h.properties).unwrap();
                assert_eq!(props.delivery_mode(), 2);
            }
            other => panic!("{other:?}"),
        }
        let mut ack = BytesMut::new();
        wire::put_ack(&mut ack, 1, 42, true);
        match amqp_codec::decode_frame(&mut ack, 0).unwrap().unwrap() {
            amqp_codec::Frame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Ack(a))) => {
                assert_eq!((a.delivery_tag, a.multiple), (42, true));
            }
            other => panic!("{other:?}"),
        }
        let mut d = BytesMut::new();
        amqp_codec::frame::encode_deliver(&mut d, 1, "ctag", 99, true, "", "q");
        let f = wire::split_frame(&mut d).unwrap();
        assert_eq!(wire::parse_deliver(&f.payload), (99, true));
    }
}
