//! AMQP 0-9-1 pieces shared by the raw client (`raw.rs`) and the sink (`sink.rs`): frame splitting,
//! the hot-path frames written by hand (publish, ack, deliver), and a client handshake.
//!
//! Control methods (handshake, declare, consume, close) go through `amqp_codec`'s generic encoder and
//! parser; only what happens once per message is hand-written, so that the client costs little per
//! message and stays out of the way of the broker under test.

use amqp_codec::constants::{CLASS_BASIC, FRAME_BODY, FRAME_END, FRAME_HEADER, FRAME_METHOD};
use amqp_codec::protocol::{channel, connection as conn};
use amqp_codec::types::{AMQPValue, FieldTable, LongString};
use amqp_codec::{decode_frame, AMQPClass, Frame, PROTOCOL_HEADER};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One frame as it came off the wire: type, channel, payload (no copy of the payload).
pub(crate) struct RawFrame {
    pub kind: u8,
    pub channel: u16,
    pub payload: Bytes,
}

/// Splits one frame off the front of `buf`; `None` until a whole frame is there.
pub(crate) fn split_frame(buf: &mut BytesMut) -> Option<RawFrame> {
    if buf.len() < 7 {
        return None;
    }
    let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]) as usize;
    if buf.len() < size + 8 {
        buf.reserve(size + 8 - buf.len());
        return None;
    }
    assert_eq!(buf[size + 7], FRAME_END, "frame end octet missing");
    let kind = buf[0];
    let channel = u16::from_be_bytes([buf[1], buf[2]]);
    let mut frame = buf.split_to(size + 8);
    frame.advance(7);
    frame.truncate(size);
    Some(RawFrame {
        kind,
        channel,
        payload: frame.freeze(),
    })
}

/// Class and method ids of a method frame's payload.
pub(crate) fn method_ids(payload: &[u8]) -> (u16, u16) {
    if payload.len() < 4 {
        return (0, 0);
    }
    (
        u16::from_be_bytes([payload[0], payload[1]]),
        u16::from_be_bytes([payload[2], payload[3]]),
    )
}

/// Parses a whole method frame's payload with the generic parser (control path only).
pub(crate) fn parse_method(frame: &RawFrame) -> AMQPClass {
    let mut buf = BytesMut::with_capacity(frame.payload.len() + 8);
    buf.put_u8(FRAME_METHOD);
    buf.put_u16(frame.channel);
    buf.put_u32(frame.payload.len() as u32);
    buf.extend_from_slice(&frame.payload);
    buf.put_u8(FRAME_END);
    match decode_frame(&mut buf, 0) {
        Ok(Some(Frame::Method(_, m))) => m,
        other => panic!("unparsable method frame: {other:?}"),
    }
}

fn put_short_str(buf: &mut BytesMut, s: &str) {
    buf.put_u8(s.len() as u8);
    buf.extend_from_slice(s.as_bytes());
}

fn frame_start(buf: &mut BytesMut, kind: u8, channel: u16) -> usize {
    buf.put_u8(kind);
    buf.put_u16(channel);
    buf.put_u32(0);
    buf.len()
}

fn frame_end(buf: &mut BytesMut, start: usize) {
    let size = (buf.len() - start) as u32;
    buf[start - 4..start].copy_from_slice(&size.to_be_bytes());
    buf.put_u8(FRAME_END);
}

/// Appends basic.publish, its content header (delivery-mode 2 when `persistent`, no other
/// property) and the body in frames of at most `frame_max`.
pub(crate) fn put_publish(
    buf: &mut BytesMut,
    channel: u16,
    exchange: &str,
    routing_key: &str,
    persistent: bool,
    body: &[u8],
    frame_max: u32,
) {
    let start = frame_start(buf, FRAME_METHOD, channel);
    buf.put_u16(CLASS_BASIC);
    buf.put_u16(40);
    buf.put_u16(0);
    put_short_str(buf, exchange);
    put_short_str(buf, routing_key);
    buf.put_u8(0);
    frame_end(buf, start);
    let start = frame_start(buf, FRAME_HEADER, channel);
    buf.put_u16(CLASS_BASIC);
    buf.put_u16(0);
    buf.put_u64(body.len() as u64);
    if persistent {
        buf.put_u16(0x1000); // delivery-mode present
        buf.put_u8(2);
    } else {
        buf.put_u16(0);
    }
    frame_end(buf, start);
    for part in body.chunks((frame_max as usize).saturating_sub(8).max(1)) {
        let start = frame_start(buf, FRAME_BODY, channel);
        buf.extend_from_slice(part);
        frame_end(buf, start);
    }
}

/// Appends basic.ack.
pub(crate) fn put_ack(buf: &mut BytesMut, channel: u16, delivery_tag: u64, multiple: bool) {
    let start = frame_start(buf, FRAME_METHOD, channel);
    buf.put_u16(CLASS_BASIC);
    buf.put_u16(80);
    buf.put_u64(delivery_tag);
    buf.put_u8(multiple as u8);
    frame_end(buf, start);
}

/// (delivery tag, multiple) of a basic.ack or basic.nack payload.
pub(crate) fn parse_ack(payload: &[u8]) -> (u64, bool) {
    let tag = u64::from_be_bytes(payload[4..12].try_into().expect("8 bytes"));
    (tag, payload[12] & 1 != 0)
}

/// (delivery tag, redelivered) of a basic.deliver payload.
pub(crate) fn parse_deliver(payload: &[u8]) -> (u64, bool) {
    let tag_len = payload[4] as usize;
    let at = 5 + tag_len;
    let tag = u64::from_be_bytes(payload[at..at + 8].try_into().expect("8 bytes"));
    (tag, payload[at + 8] & 1 != 0)
}

/// Body size announced by a content header payload.
pub(crate) fn header_body_size(payload: &[u8]) -> u64 {
    u64::from_be_bytes(payload[4..12].try_into().expect("8 bytes"))
}

/// A client connection with channel 1 open, before the hot path takes the socket over.
pub(crate) struct ClientConn {
    pub stream: TcpStream,
    /// Bytes read past the last method handled.
    pub buf: BytesMut,
    pub frame_max: u32,
}

impl ClientConn {
    /// Connects, authenticates (PLAIN), tunes (no heartbeats) and opens channel 1.
    pub(crate) async fn open(uri: &str) -> ClientConn {
        // amq-protocol's parser (through lapin): percent-decoding, default port and vhost.
        let ep: lapin::uri::AMQPUri = uri.parse().unwrap_or_else(|e| panic!("bad URL {uri}: {e}"));
        let addr = format!("{}:{}", ep.authority.host, ep.authority.port);
        let stream = TcpStream::connect(&addr)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
        stream.set_nodelay(true).expect("nodelay");
        let mut c = ClientConn {
            stream,
            buf: BytesMut::with_capacity(64 * 1024),
            frame_max: 4096,
        };
        c.stream
            .write_all(PROTOCOL_HEADER)
            .await
            .expect("write header");
        match c.next_method().await {
            AMQPClass::Connection(conn::AMQPMethod::Start(_)) => {}
            other => panic!("expected connection.start, got {other:?}"),
        }
        let mut caps = FieldTable::default();
        for cap in ["publisher_confirms", "basic.nack", "consumer_cancel_notify"] {
            caps.insert(cap.into(), AMQPValue::Boolean(true));
        }
        let mut props = FieldTable::default();
        props.insert(
            "product".into(),
            AMQPValue::LongString(LongString::from(b"warren-perf".to_vec())),
        );
        props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
        let user = &ep.authority.userinfo;
        let response = format!("\0{}\0{}", user.username, user.password);
        c.send(
            0,
            AMQPClass::Connection(conn::AMQPMethod::StartOk(conn::StartOk {
                client_properties: props,
                mechanism: "PLAIN".into(),
                response: LongString::from(response.into_bytes()),
                locale: "en_US".into(),
            })),
        )
        .await;
        let tune = match c.next_method().await {
            AMQPClass::Connection(conn::AMQPMethod::Tune(t)) => t,
            other => panic!("expected connection.tune (wrong credentials?), got {other:?}"),
        };
        c.frame_max = if tune.frame_max == 0 {
            131_072
        } else {
            tune.frame_max.min(131_072)
        };
        c.send(
            0,
            AMQPClass::Connection(conn::AMQPMethod::TuneOk(conn::TuneOk {
                channel_max: tune.channel_max,
                frame_max: c.frame_max,
                heartbeat: 0,
            })),
        )
        .await;
        c.send(
            0,
            AMQPClass::Connection(conn::AMQPMethod::Open(conn::Open {
                virtual_host: ep.vhost.as_str().into(),
            })),
        )
        .await;
        match c.next_method().await {
            AMQPClass::Connection(conn::AMQPMethod::OpenOk(_)) => {}
            other => panic!("expected connection.open-ok, got {other:?}"),
        }
        c.send(
            1,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        )
        .await;
        match c.next_method().await {
            AMQPClass::Channel(channel::AMQPMethod::OpenOk(_)) => {}
            other => panic!("expected channel.open-ok, got {other:?}"),
        }
        c
    }

    /// Sends one method frame.
    pub(crate) async fn send(&mut self, channel: u16, method: AMQPClass) {
        let mut out = BytesMut::new();
        amqp_codec::frame::encode_method(&mut out, channel, &method);
        self.stream.write_all(&out).await.expect("write");
    }

    /// The next method frame (heartbeats skipped); panics on a close from the broker.
    pub(crate) async fn next_method(&mut self) -> AMQPClass {
        loop {
            while let Some(f) = split_frame(&mut self.buf) {
                if f.kind == FRAME_METHOD {
                    return parse_method(&f);
                }
            }
            let n = self.stream.read_buf(&mut self.buf).await.expect("read");
            assert!(n > 0, "the broker closed the connection");
        }
    }
}
