//! `warren-perf`: a load generator for AMQP 0-9-1 brokers, in the spirit of RabbitMQ's PerfTest.
//!
//! Producers and consumers each get their own connection (lapin, tokio). Every body starts with the
//! send time, so consumers measure end-to-end latency. The run ends when every published message was
//! consumed (or a time limit passes) and prints one JSON line: rates, latency percentiles, lost and
//! duplicated counts, and the broker's CPU time and RSS when its pid is given.

mod body;
mod raw;
mod sink;
mod wire;

use clap::Parser;
use futures::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Load generator for AMQP 0-9-1 brokers.
#[derive(Debug, Parser, Clone)]
#[command(version, about)]
struct Args {
    /// Broker URL.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2F")]
    uri: String,
    /// Producers (one connection each).
    #[arg(long, default_value_t = 1)]
    producers: usize,
    /// Consumers (one connection each); 0 to only publish (backlog scenarios).
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    /// Messages to publish in all.
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// Body size in bytes (at least 8: the send time).
    #[arg(long, default_value_t = 16)]
    size: usize,
    /// Body contents: `zeros`, or `random` (incompressible, different for every message; use it
    /// for persistent figures, since a broker that compresses stored bodies writes almost nothing
    /// for zeros).
    #[arg(long, value_enum, default_value = "zeros")]
    body: body::BodyKind,
    /// Queues (producer i and consumer i use queue i % queues).
    #[arg(long, default_value_t = 1)]
    queues: usize,
    /// Queue name prefix.
    #[arg(long, default_value = "perf")]
    queue: String,
    /// Declare the queues durable.
    #[arg(long)]
    durable: bool,
    /// Publish persistent messages (delivery mode 2).
    #[arg(long)]
    persistent: bool,
    /// Publisher confirms with at most this many outstanding per producer (0: no confirms).
    #[arg(long, default_value_t = 0)]
    confirm: usize,
    /// Manual acks (default: auto-ack).
    #[arg(long)]
    ack: bool,
    /// Ack with multiple=true every N deliveries.
    #[arg(long, default_value_t = 1)]
    multi_ack: u64,
    /// Prefetch per consumer (0: unlimited).
    #[arg(long, default_value_t = 0)]
    prefetch: u16,
    /// Publishes handed to lapin before waiting for the first of them to be written (1: one at a
    /// time, lapin's ceiling is then one message per socket write).
    #[arg(long, default_value_t = 64)]
    pipeline: usize,
    /// Publish rate per producer, messages per second (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300)]
    time_limit: u64,
    /// The broker's pid, to report its CPU time and RSS.
    #[arg(long)]
    broker_pid: Option<u32>,
    /// Publish through an exchange of this type (`direct`, `fanout`, `topic`) named `<queue>-x`,
    /// every queue bound to it; default: the default exchange, straight to the queue. With
    /// `fanout`, every message goes to every queue.
    #[arg(long)]
    exchange_type: Option<String>,
    /// Idle-connection scenario: open this many connections (one channel each), report the
    /// broker's RSS per connection, close them; no messages.
    #[arg(long, default_value_t = 0)]
    idle_connections: usize,
    /// Label of the run in the JSON line.
    #[arg(long, default_value = "run")]
    label: String,
    /// Keep the queues at the end (default: delete them).
    #[arg(long)]
    keep: bool,
    /// Client for producers and consumers: `raw` (hand-written frames, a window of publishes per
    /// write, a read's acks per write) or `lapin`. Declarations always go through lapin.
    #[arg(long, default_value = "raw")]
    client: String,
    /// CA certificates (PEM) that an `amqps://` broker's certificate is checked against (lapin's
    /// rustls; the raw client speaks plain TCP only).
    #[arg(long)]
    tls_ca: Option<std::path::PathBuf>,
    /// Run as a sink on this port instead: a trivial in-memory server that hands publishes
    /// straight to consumers, to measure a client's own ceiling (see `sink.rs`).
    #[arg(long)]
    sink: Option<u16>,
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// (utime + stime in clock ticks, RSS in KiB) of a process, from /proc.
fn proc_stats(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((ticks, rss))
}

fn exchange_name(args: &Args) -> String {
    format!("{}-x", args.queue)
}

fn queue_name(args: &Args, i: usize) -> String {
    format!("{}-{}", args.queue, i % args.queues)
}

/// (exchange, routing key) producer `index` publishes with.
fn routing(args: &Args, index: usize) -> (String, String) {
    let queue = queue_name(args, index);
    match args.exchange_type.as_deref() {
        None => (String::new(), queue),
        Some("fanout") => (exchange_name(args), String::new()),
        Some("topic") => (exchange_name(args), format!("{queue}.msg")),
        Some(_) => (exchange_name(args), queue),
    }
}

async fn connect(args: &Args) -> Connection {
    let uri = &args.uri;
    let tls = lapin::tcp::OwnedTLSConfig {
        identity: None,
        cert_chain: args.tls_ca.as_ref().map(|path| {
            std::fs::read_to_string(path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        }),
    };
    Connection::connect_with_config(
        uri,
        ConnectionProperties::default(),
        tls,
        lapin::runtime::default_runtime().expect("tokio runtime"),
    )
    .await
    .unwrap_or_else(|e| panic!("cannot connect to {uri}: {e}"))
}

// The in-flight publishes yield lapin's confirm futures on purpose: they are awaited later, up to
// `--confirm` outstanding.
#[allow(clippy::async_yields_async)]
async fn produce(args: Arc<Args>, index: usize, quota: u64) -> (u64, u64) {
    let conn = connect(&args).await;
    let ch = conn.create_channel().await.expect("channel");
    if args.confirm > 0 {
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm.select");
    }
    let (exchange, routing_key) = routing(&args, index);
    let props = if args.persistent {
        BasicProperties::default().with_delivery_mode(2)
    } else {
        BasicProperties::default()
    };
    let size = args.size.max(8);
    let mut bodies = body::Bodies::new(args.body, size, index as u64 + 1);
    let mut outstanding = VecDeque::new();
    // Publishes handed to lapin and not yet written (in order).
    let mut inflight = futures::stream::FuturesOrdered::new();
    let (mut sent, mut nacked) = (0u64, 0u64);
    let started = Instant::now();
    let pipeline = args.pipeline.max(1);
    while sent < quota || !inflight.is_empty() {
        if sent < quota && inflight.len() < pipeline {
            if args.rate > 0 {
                let due = started + Duration::from_secs_f64(sent as f64 / args.rate as f64);
                tokio::time::sleep_until(due.into()).await;
            }
            let mut body = vec![0u8; size];
            bodies.fill(&mut body);
            body[..8].copy_from_slice(&now_nanos().to_be_bytes());
            let (ch, exchange, key, props) = (
                ch.clone(),
                exchange.clone(),
                routing_key.clone(),
                props.clone(),
            );
            inflight.push_back(async move {
                ch.basic_publish(
                    exchange.as_str().into(),
                    key.as_str().into(),
                    BasicPublishOptions::default(),
                    &body,
                    props,
                )
                .await
                .expect("publish")
            });
            sent += 1;
            // Keep filling the window before waiting (lapin writes what is queued together).
            if inflight.len() < pipeline && sent < quota && args.rate == 0 {
                continue;
            }
        }
        let Some(confirm) = inflight.next().await else {
            continue;
        };
        if args.confirm > 0 {
            outstanding.push_back(confirm);
            while outstanding.len() >= args.confirm {
                let c = outstanding.pop_front().expect("non-empty");
                if !c.await.map(|c| c.is_ack()).unwrap_or(false) {
                    nacked += 1;
                }
            }
        }
    }
    for c in outstanding {
        if !c.await.map(|c| c.is_ack()).unwrap_or(false) {
            nacked += 1;
        }
    }
    let _ = conn.close(200, "done".into()).await;
    (sent, nacked)
}

struct ConsumerResult {
    received: u64,
    latencies_us: Vec<u32>,
    duplicates: u64,
}

async fn consume(
    args: Arc<Args>,
    index: usize,
    received_total: Arc<AtomicU64>,
    expected: u64,
) -> ConsumerResult {
    let conn = connect(&args).await;
    let ch = conn.create_channel().await.expect("channel");
    if args.prefetch > 0 {
        ch.basic_qos(args.prefetch, BasicQosOptions::default())
            .await
            .expect("qos");
    }
    let queue = queue_name(&args, index);
    let mut consumer = ch
        .basic_consume(
            queue.as_str().into(),
            format!("perf-{index}").as_str().into(),
            BasicConsumeOptions {
                no_ack: !args.ack,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let mut r = ConsumerResult {
        received: 0,
        latencies_us: Vec::new(),
        duplicates: 0,
    };
    let deadline = Instant::now() + Duration::from_secs(args.time_limit);
    let mut unacked = 0u64;
    // Acks handed to lapin and not yet written: like publishes, a window of them (`--pipeline`)
    // lets lapin write several per syscall instead of one ack per write.
    let mut acks = futures::stream::FuturesUnordered::new();
    loop {
        if received_total.load(Ordering::Relaxed) >= expected {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let next = match tokio::time::timeout(left.min(Duration::from_millis(200)), consumer.next())
            .await
        {
            Ok(Some(Ok(d))) => d,
            Ok(_) => break,
            Err(_) if left.is_zero() => break,
            Err(_) => continue,
        };
        if next.redelivered {
            r.duplicates += 1;
        }
        if next.data.len() >= 8 {
            let sent = u64::from_be_bytes(next.data[..8].try_into().expect("8 bytes"));
            r.latencies_us
                .push((now_nanos().saturating_sub(sent) / 1000).min(u32::MAX as u64) as u32);
        }
        r.received += 1;
        received_total.fetch_add(1, Ordering::Relaxed);
        if args.ack {
            unacked += 1;
            if unacked >= args.multi_ack {
                unacked = 0;
                if args.multi_ack > 1 {
                    // Multiple acks must reach the broker in order: one at a time.
                    next.acker
                        .ack(BasicAckOptions { multiple: true })
                        .await
                        .expect("ack");
                } else {
                    let acker = next.acker.clone();
                    acks.push(
                        async move { acker.ack(BasicAckOptions::default()).await.expect("ack") },
                    );
                    while acks.len() >= args.pipeline.max(1) {
                        acks.next().await;
                    }
                }
            }
        }
    }
    while acks.next().await.is_some() {}
    let _ = conn.close(200, "done".into()).await;
    r
}

/// Opens `--idle-connections` connections with a channel each and reports the broker's RSS growth
/// per connection (needs `--broker-pid`).
async fn idle_connections(args: &Args) {
    let before = args.broker_pid.and_then(proc_stats);
    let mut open = Vec::with_capacity(args.idle_connections);
    for _ in 0..args.idle_connections {
        let conn = connect(args).await;
        let ch = conn.create_channel().await.expect("channel");
        open.push((conn, ch));
    }
    // Let the broker settle (buffers of the handshake released) before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = args.broker_pid.and_then(proc_stats);
    for (conn, _) in &open {
        let _ = conn.close(200, "done".into()).await;
    }
    let (rss_before, rss_during) = match (before, during) {
        (Some((_, a)), Some((_, b))) => (a, b),
        _ => (0, 0),
    };
    let per_conn = rss_during.saturating_sub(rss_before) as f64 / args.idle_connections as f64;
    println!(
        "{{\"label\":\"{}\",\"idle_connections\":{},\"broker_rss_kib_before\":{},\"broker_rss_kib_with_connections\":{},\"rss_kib_per_connection\":{:.1}}}",
        args.label, args.idle_connections, rss_before, rss_during, per_conn
    );
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    let args = Arc::new(Args::parse());
    if let Some(port) = args.sink {
        sink::serve(port).await;
        return;
    }
    let raw = match args.client.as_str() {
        "raw" => true,
        "lapin" => false,
        other => panic!("--client is raw or lapin, not {other}"),
    };
    assert!(
        !(raw && args.uri.starts_with("amqps:")),
        "the raw client speaks plain TCP: use --client lapin for amqps"
    );
    if args.idle_connections > 0 {
        idle_connections(&args).await;
        return;
    }
    {
        let conn = connect(&args).await;
        let ch = conn.create_channel().await.expect("channel");
        if let Some(kind) = &args.exchange_type {
            let kind = match kind.as_str() {
                "fanout" => lapin::ExchangeKind::Fanout,
                "topic" => lapin::ExchangeKind::Topic,
                _ => lapin::ExchangeKind::Direct,
            };
            ch.exchange_declare(
                exchange_name(&args).as_str().into(),
                kind,
                ExchangeDeclareOptions {
                    durable: args.durable,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("exchange.declare");
        }
        for i in 0..args.queues {
            let name = queue_name(&args, i);
            let opts = QueueDeclareOptions {
                durable: args.durable,
                ..Default::default()
            };
            ch.queue_declare(name.as_str().into(), opts, FieldTable::default())
                .await
                .expect("declare");
            if let Some(kind) = &args.exchange_type {
                let key = match kind.as_str() {
                    "fanout" => String::new(),
                    "topic" => format!("{name}.#"),
                    _ => name.clone(),
                };
                ch.queue_bind(
                    name.as_str().into(),
                    exchange_name(&args).as_str().into(),
                    key.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .expect("queue.bind");
            }
            // A drain-only run (no producer) consumes what is already queued.
            if args.producers > 0 {
                ch.queue_purge(name.as_str().into(), QueuePurgeOptions::default())
                    .await
                    .expect("purge");
            }
        }
        let _ = conn.close(200, "setup done".into()).await;
    }
    let before = args.broker_pid.and_then(proc_stats);
    let received = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    // A fanout delivers every message once per queue.
    let copies = if args.exchange_type.as_deref() == Some("fanout") {
        args.queues as u64
    } else {
        1
    };
    let mut consumers = Vec::new();
    for i in 0..args.consumers {
        let (args, received, expected) = (args.clone(), received.clone(), args.count * copies);
        consumers.push(tokio::spawn(async move {
            if raw {
                raw::consume(args, i, received, expected).await
            } else {
                consume(args, i, received, expected).await
            }
        }));
    }
    let mut producers = Vec::new();
    // With no producer, consumers drain `count` messages already queued (backlog scenarios).
    for i in 0..args.producers {
        let quota = args.count / args.producers as u64
            + u64::from((i as u64) < args.count % args.producers as u64);
        let args = args.clone();
        producers.push(tokio::spawn(async move {
            if raw {
                raw::produce(args, i, quota).await
            } else {
                produce(args, i, quota).await
            }
        }));
    }
    let (mut sent, mut nacked) = (0, 0);
    for p in producers {
        let (s, n) = p.await.expect("producer");
        sent += s;
        nacked += n;
    }
    let publish_secs = started.elapsed().as_secs_f64();
    let mid = args.broker_pid.and_then(proc_stats);
    let mut latencies = Vec::new();
    let (mut got, mut duplicates) = (0, 0);
    for c in consumers {
        let r = c.await.expect("consumer");
        got += r.received;
        duplicates += r.duplicates;
        latencies.extend(r.latencies_us);
    }
    let total_secs = started.elapsed().as_secs_f64();
    let after = args.broker_pid.and_then(proc_stats);
    latencies.sort_unstable();
    let ticks_per_sec = 100.0; // USER_HZ on Linux
    let broker_cpu_us_per_msg = match (before, after) {
        (Some((b, _)), Some((a, _))) if got.max(sent) > 0 => {
            (a - b) as f64 / ticks_per_sec * 1e6 / got.max(sent) as f64
        }
        _ => 0.0,
    };
    if !args.keep {
        let conn = connect(&args).await;
        let ch = conn.create_channel().await.expect("channel");
        for i in 0..args.queues {
            let _ = ch
                .queue_delete(
                    queue_name(&args, i).as_str().into(),
                    QueueDeleteOptions::default(),
                )
                .await;
        }
        if args.exchange_type.is_some() {
            let _ = ch
                .exchange_delete(
                    exchange_name(&args).as_str().into(),
                    ExchangeDeleteOptions::default(),
                )
                .await;
        }
        let _ = conn.close(200, "cleanup".into()).await;
    }
    println!(
        "{{\"label\":\"{}\",\"client\":\"{}\",\"producers\":{},\"consumers\":{},\"size\":{},\"body\":\"{}\",\"persistent\":{},\"confirm\":{},\"ack\":{},\"sent\":{},\"nacked\":{},\"received\":{},\"lost\":{},\"duplicates\":{},\"publish_rate\":{:.0},\"consume_rate\":{:.0},\"latency_ms_p50\":{:.3},\"latency_ms_p99\":{:.3},\"broker_cpu_us_per_msg\":{:.2},\"broker_rss_kib_after_publish\":{},\"broker_rss_kib_end\":{}}}",
        args.label,
        args.client,
        args.producers,
        args.consumers,
        args.size,
        args.body,
        args.persistent,
        args.confirm,
        args.ack,
        sent,
        nacked,
        got,
        if args.consumers > 0 { (sent * copies).saturating_sub(got) } else { 0 },
        duplicates,
        sent as f64 / publish_secs,
        if total_secs > 0.0 { got as f64 / total_secs } else { 0.0 },
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        broker_cpu_us_per_msg,
        mid.map_or(0, |m| m.1),
        after.map_or(0, |m| m.1),
    );
}
