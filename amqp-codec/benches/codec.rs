//! Codec hot paths: decoding a publish, encoding a delivery, indexing properties.
//!
//! `cargo bench -p amqp-codec` (well under a minute in all).

// A benchmark, like a test, fails by panicking; criterion's macros generate undocumented items.
#![allow(clippy::unwrap_used, missing_docs)]

use amqp_codec::frame::{decode_frame, encode_content, encode_deliver, encode_method, Frame};
use amqp_codec::protocol::basic::{self, AMQPProperties};
use amqp_codec::types::{AMQPValue, FieldTable, ShortString};
use amqp_codec::{AMQPClass, ContentAssembler, Properties};
use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::time::Duration;

const FRAME_MAX: u32 = 131_072;
const BODY_SIZES: [usize; 2] = [16, 1024];

/// content_type, delivery_mode and a 3-entry headers table: what a typical publisher sends.
fn typical_properties() -> Properties {
    let mut headers = FieldTable::default();
    headers.insert(
        ShortString::from("x-trace-id"),
        AMQPValue::LongString("4bf92f3577b34da6a3ce929d0e0e4736".into()),
    );
    headers.insert(ShortString::from("x-retries"), AMQPValue::LongInt(3));
    headers.insert(
        ShortString::from("x-origin"),
        AMQPValue::LongString("billing".into()),
    );
    Properties::from_basic(
        &AMQPProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_headers(headers),
    )
}

fn publish_wire(body: &[u8]) -> BytesMut {
    let publish = AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
        exchange: "amq.topic".into(),
        routing_key: "orders.eu.created".into(),
        mandatory: false,
        immediate: false,
    }));
    let mut wire = BytesMut::new();
    encode_method(&mut wire, 1, &publish);
    encode_content(&mut wire, 1, typical_properties().raw(), body, FRAME_MAX);
    wire
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode_publish");
    g.throughput(Throughput::Elements(1));
    for size in BODY_SIZES {
        let wire = publish_wire(&vec![b'x'; size]);
        // Splitting the three frames (method parsed, header and body sliced off the buffer).
        g.bench_function(format!("frames/{size}B"), |b| {
            b.iter_batched_ref(
                || wire.clone(),
                |buf| {
                    for _ in 0..3 {
                        black_box(decode_frame(buf, FRAME_MAX).unwrap().unwrap());
                    }
                },
                BatchSize::SmallInput,
            )
        });
        // The same plus what the broker does next: assemble, which validates and indexes the
        // properties. This is the whole per-message decode cost.
        g.bench_function(format!("assembled/{size}B"), |b| {
            b.iter_batched_ref(
                || wire.clone(),
                |buf| {
                    let mut asm = ContentAssembler::default();
                    let mut done = None;
                    while let Some(f) = decode_frame(buf, FRAME_MAX).unwrap() {
                        done = match f {
                            Frame::Method(_, m) => {
                                asm.start(m).unwrap();
                                None
                            }
                            Frame::Header(_, h) => asm.header(h, u64::MAX).unwrap(),
                            Frame::Body(_, b) => asm.body(b).unwrap(),
                            Frame::Heartbeat(_) => None,
                        };
                    }
                    black_box(done.unwrap())
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode_deliver");
    g.throughput(Throughput::Elements(1));
    let props = typical_properties();
    let (ctag, exchange, rkey) = ("amq.ctag-2Jx8M9vZ1qYb", "amq.topic", "orders.eu.created");
    for size in BODY_SIZES {
        let body = vec![b'x'; size];
        let mut buf = BytesMut::with_capacity(4096);
        g.bench_function(format!("hand_written/{size}B"), |b| {
            let mut tag = 0u64;
            b.iter(|| {
                buf.clear();
                tag += 1;
                encode_deliver(&mut buf, 1, ctag, tag, false, exchange, rkey);
                encode_content(&mut buf, 1, props.raw(), &body, FRAME_MAX);
                black_box(&buf);
            })
        });
        // The generic encoder needs an AMQPClass, built per delivery as the broker would have to.
        g.bench_function(format!("generic/{size}B"), |b| {
            let mut tag = 0u64;
            b.iter(|| {
                buf.clear();
                tag += 1;
                let m = AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
                    consumer_tag: ctag.into(),
                    delivery_tag: tag,
                    redelivered: false,
                    exchange: exchange.into(),
                    routing_key: rkey.into(),
                }));
                encode_method(&mut buf, 1, &m);
                encode_content(&mut buf, 1, props.raw(), &body, FRAME_MAX);
                black_box(&buf);
            })
        });
    }
    g.finish();
}

fn properties(c: &mut Criterion) {
    let raw: Bytes = typical_properties().raw().clone();
    let mut g = c.benchmark_group("properties");
    g.throughput(Throughput::Elements(1));
    g.bench_function("new/typical", |b| {
        b.iter(|| black_box(Properties::new(black_box(raw.clone())).unwrap()))
    });
    // The same without the headers table, to show what validating the table costs.
    let plain: Bytes = Properties::from_basic(
        &AMQPProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2),
    )
    .raw()
    .clone();
    g.bench_function("new/no_headers", |b| {
        b.iter(|| black_box(Properties::new(black_box(plain.clone())).unwrap()))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .without_plots()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = decode, encode, properties
}
criterion_main!(benches);
