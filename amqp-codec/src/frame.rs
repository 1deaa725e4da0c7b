//! Frames: splitting a byte stream into frames, and writing frames.
//!
//! Decoding is check-then-parse: [`decode_frame`] looks at the 7-byte frame header first, refuses a size
//! above `frame_max` before any payload is buffered, and answers `Ok(None)` ("read more") until the
//! whole frame is there. Body payloads are `split_to` off the read buffer and frozen, so a body is never
//! copied on its way in.

use crate::constants::*;
use amq_protocol::frame::WriteContext;
use amq_protocol::protocol::{gen_class, parse_class, AMQPClass};
use bytes::{Buf, BufMut, Bytes, BytesMut};

mod hot_methods;

/// The protocol header a 0-9-1 client sends first, and that the server sends back when it refuses
/// another header.
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";

/// One decoded frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A method frame.
    Method(u16, AMQPClass),
    /// A content header frame: properties kept raw (see [`crate::Properties`]).
    Header(u16, ContentHeader),
    /// A content body frame.
    Body(u16, Bytes),
    /// A heartbeat frame (the channel should be 0).
    Heartbeat(u16),
}

impl Frame {
    /// The channel the frame belongs to.
    pub fn channel(&self) -> u16 {
        match self {
            Frame::Method(c, _) | Frame::Header(c, _) | Frame::Body(c, _) | Frame::Heartbeat(c) => {
                *c
            }
        }
    }
}

/// A content header frame's payload.
#[derive(Debug, Clone, PartialEq)]
pub struct ContentHeader {
    /// The content class (60 for basic).
    pub class_id: u16,
    /// Total size of the body that follows in body frames.
    pub body_size: u64,
    /// Property flags and property list, exactly as received.
    pub properties: Bytes,
}

/// Why a byte stream is not a valid frame sequence. All of these are connection errors
/// (501 FRAME_ERROR, or 505/540 where noted by the caller).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame's size exceeds the negotiated frame_max.
    #[error("frame size {size} exceeds frame_max {max}")]
    TooLarge {
        /// The frame type octet.
        frame_type: u8,
        /// The channel.
        channel: u16,
        /// Payload size announced by the header.
        size: u32,
        /// The largest payload allowed.
        max: u32,
    },
    /// The octet after the payload is not 0xCE.
    #[error("bad frame end marker {found:#04x}")]
    BadFrameEnd {
        /// The frame type octet.
        frame_type: u8,
        /// The channel.
        channel: u16,
        /// The octet found instead of 0xCE.
        found: u8,
        /// The frame's payload (for the error text).
        payload: Bytes,
    },
    /// What RabbitMQ calls `unknown_frame`: an unknown frame type, a method payload too short to
    /// name a method, or a heartbeat with a payload.
    #[error("unknown frame of type {frame_type}")]
    Unknown {
        /// The frame type octet.
        frame_type: u8,
        /// The channel.
        channel: u16,
        /// The frame's payload (for the error text).
        payload: Bytes,
    },
    /// A method frame naming a class and method that AMQP 0-9-1 does not have.
    #[error("unknown method {class_id}.{method_id}")]
    UnknownMethod {
        /// The channel.
        channel: u16,
        /// Class id.
        class_id: u16,
        /// Method id.
        method_id: u16,
    },
    /// A method payload that does not parse.
    #[error("cannot parse method frame payload on channel {channel}")]
    BadMethod {
        /// The channel.
        channel: u16,
        /// Class id, if the payload had one.
        class_id: u16,
        /// Method id, if the payload had one.
        method_id: u16,
        /// The method's arguments as received (for the error text).
        arguments: Bytes,
    },
    /// basic.qos with a non-zero prefetch_size, which RabbitMQ refuses (540 NOT_IMPLEMENTED).
    /// Reported here because `amq-protocol`'s `Qos` drops the field.
    #[error("prefetch_size!=0 ({size})")]
    PrefetchSize {
        /// The channel.
        channel: u16,
        /// The prefetch_size sent.
        size: u32,
    },
    /// A content header payload that does not parse.
    #[error("malformed content header on channel {0}")]
    BadHeader(u16),
}

/// Decodes one frame from the front of `buf`, whose payload may be at most `frame_max` bytes
/// (0 means no limit; see the comment on the check for why not `frame_max - 8`). `Ok(None)` means more bytes are needed.
pub fn decode_frame(buf: &mut BytesMut, frame_max: u32) -> Result<Option<Frame>, FrameError> {
    if buf.len() < 7 {
        return Ok(None);
    }
    let frame_type = buf[0];
    let channel = u16::from_be_bytes([buf[1], buf[2]]);
    let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]);
    // RabbitMQ accepts a payload of up to frame_max bytes (8 more than the spec allows) and reports the
    // limit as frame_max - 8 when it refuses one; we do the same, so clients see the same thing.
    let limit = if frame_max == 0 { u32::MAX } else { frame_max };
    if size > limit {
        let max = limit.saturating_sub(FRAME_OVERHEAD as u32);
        return Err(FrameError::TooLarge {
            frame_type,
            channel,
            size,
            max,
        });
    }
    let total = size as usize + FRAME_OVERHEAD;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    let end = buf[total - 1];
    if end != FRAME_END {
        let payload = Bytes::copy_from_slice(&buf[7..total - 1]);
        return Err(FrameError::BadFrameEnd {
            frame_type,
            channel,
            found: end,
            payload,
        });
    }
    let mut frame = buf.split_to(total);
    frame.advance(7);
    frame.truncate(size as usize);
    let payload = frame.freeze();
    Ok(Some(match frame_type {
        FRAME_METHOD if payload.len() >= 4 => {
            Frame::Method(channel, parse_method(channel, &payload)?)
        }
        FRAME_HEADER => Frame::Header(channel, parse_header(channel, payload)?),
        FRAME_BODY => Frame::Body(channel, payload),
        FRAME_HEARTBEAT if payload.is_empty() => Frame::Heartbeat(channel),
        _ => {
            return Err(FrameError::Unknown {
                frame_type,
                channel,
                payload,
            })
        }
    }))
}

/// Parses a method frame's payload (at least 4 bytes: class and method ids).
///
/// The methods of every message (basic.publish, basic.ack, basic.nack, basic.reject) are tried on
/// the hand-written [`hot_methods::parse`] first; anything it does not fully handle, including every
/// malformed payload, goes to [`parse_method_generic`], so errors keep their form.
fn parse_method(channel: u16, payload: &[u8]) -> Result<AMQPClass, FrameError> {
    if let Some(method) = hot_methods::parse(payload) {
        return Ok(method);
    }
    parse_method_generic(channel, payload)
}

/// Parses a method frame's payload with `amq-protocol`'s generic parsers, after the checks they lack
/// (basic.qos's prefetch_size, field tables without recursion). `payload` must be at least 4 bytes.
fn parse_method_generic(channel: u16, payload: &[u8]) -> Result<AMQPClass, FrameError> {
    if payload.len() >= 8 && payload[..4] == [0, 60, 0, 10] {
        let size = u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
        if size != 0 {
            return Err(FrameError::PrefetchSize { channel, size });
        }
    }
    // Tables are checked without recursion first: parse_class recurses into nested tables.
    let tables_ok = crate::table::check_method_tables(
        u16::from_be_bytes([payload[0], payload[1]]),
        u16::from_be_bytes([payload[2], payload[3]]),
        &payload[4..],
    )
    .is_ok();
    let parsed = if tables_ok {
        parse_class(payload).ok()
    } else {
        None
    };
    match parsed {
        Some(([], method)) => Ok(method),
        _ => {
            let class_id = u16::from_be_bytes([payload[0], payload[1]]);
            let method_id = u16::from_be_bytes([payload[2], payload[3]]);
            if !is_known_method(class_id, method_id) {
                return Err(FrameError::UnknownMethod {
                    channel,
                    class_id,
                    method_id,
                });
            }
            Err(FrameError::BadMethod {
                channel,
                class_id,
                method_id,
                arguments: Bytes::copy_from_slice(payload.get(4..).unwrap_or_default()),
            })
        }
    }
}

/// True if AMQP 0-9-1 (with RabbitMQ's extensions) defines this class and method.
pub fn is_known_method(class_id: u16, method_id: u16) -> bool {
    let methods: &[u16] = match class_id {
        10 => &[10, 11, 20, 21, 30, 31, 40, 41, 50, 51, 60, 61, 70, 71],
        20 => &[10, 11, 20, 21, 40, 41],
        30 => &[10, 11],
        40 => &[10, 11, 20, 21, 30, 31, 40, 51],
        50 => &[10, 11, 20, 21, 30, 31, 40, 41, 50, 51],
        60 => &[
            10, 11, 20, 21, 30, 31, 40, 50, 60, 70, 71, 72, 80, 90, 100, 110, 111, 120,
        ],
        85 => &[10, 11],
        90 => &[10, 11, 20, 21, 30, 31],
        _ => &[],
    };
    methods.contains(&method_id)
}

fn parse_header(channel: u16, mut payload: Bytes) -> Result<ContentHeader, FrameError> {
    if payload.len() < 14 {
        return Err(FrameError::BadHeader(channel));
    }
    let class_id = payload.get_u16();
    let _weight = payload.get_u16();
    let body_size = payload.get_u64();
    // Properties are validated by the content assembler, which indexes them in the same pass.
    Ok(ContentHeader {
        class_id,
        body_size,
        properties: payload,
    })
}

/// Appends a method frame.
pub fn encode_method(buf: &mut BytesMut, channel: u16, method: &AMQPClass) {
    let start = buf.len();
    buf.put_u8(FRAME_METHOD);
    buf.put_u16(channel);
    buf.put_u32(0); // patched below
    let ctx = WriteContext::from(Vec::with_capacity(64));
    // Generating into a Vec cannot fail for a well-formed AMQPClass.
    let (payload, _) = gen_class(method)(ctx)
        .expect("method serialisation")
        .into_inner();
    buf.extend_from_slice(&payload);
    let size = (buf.len() - start - 7) as u32;
    buf[start + 3..start + 7].copy_from_slice(&size.to_be_bytes());
    buf.put_u8(FRAME_END);
}

fn put_short_str(buf: &mut BytesMut, s: &str) {
    let b = s.as_bytes();
    let len = b.len().min(255);
    buf.put_u8(len as u8);
    buf.extend_from_slice(&b[..len]);
}

/// Appends a basic.deliver method frame. Hand-written because it is on the hot path of every
/// delivery (measured in `benches/codec.rs` against the generic encoder).
pub fn encode_deliver(
    buf: &mut BytesMut,
    channel: u16,
    consumer_tag: &str,
    delivery_tag: u64,
    redelivered: bool,
    exchange: &str,
    routing_key: &str,
) {
    let size = 4
        + 1
        + consumer_tag.len().min(255)
        + 8
        + 1
        + 1
        + exchange.len().min(255)
        + 1
        + routing_key.len().min(255);
    buf.reserve(size + FRAME_OVERHEAD);
    buf.put_u8(FRAME_METHOD);
    buf.put_u16(channel);
    buf.put_u32(size as u32);
    buf.put_u16(CLASS_BASIC);
    buf.put_u16(60);
    put_short_str(buf, consumer_tag);
    buf.put_u64(delivery_tag);
    buf.put_u8(redelivered as u8);
    put_short_str(buf, exchange);
    put_short_str(buf, routing_key);
    buf.put_u8(FRAME_END);
}

/// Appends a content header frame and the body frames, splitting the body so that no frame exceeds
/// `frame_max` (0: no limit).
pub fn encode_content(
    buf: &mut BytesMut,
    channel: u16,
    properties: &[u8],
    body: &[u8],
    frame_max: u32,
) {
    let chunk = if frame_max == 0 {
        usize::MAX
    } else {
        frame_max as usize - FRAME_OVERHEAD
    };
    let frames = if body.is_empty() {
        0
    } else {
        body.len().div_ceil(chunk)
    };
    buf.reserve(22 + properties.len() + body.len() + frames * FRAME_OVERHEAD);
    buf.put_u8(FRAME_HEADER);
    buf.put_u16(channel);
    buf.put_u32(12 + properties.len() as u32);
    buf.put_u16(CLASS_BASIC);
    buf.put_u16(0);
    buf.put_u64(body.len() as u64);
    buf.extend_from_slice(properties);
    buf.put_u8(FRAME_END);
    for part in body.chunks(chunk) {
        buf.put_u8(FRAME_BODY);
        buf.put_u16(channel);
        buf.put_u32(part.len() as u32);
        buf.extend_from_slice(part);
        buf.put_u8(FRAME_END);
    }
}

/// Appends a heartbeat frame.
pub fn encode_heartbeat(buf: &mut BytesMut) {
    buf.extend_from_slice(&[FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, FRAME_END]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::protocol::{basic, queue};

    #[test]
    fn round_trips_a_method() {
        let m = AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: "q".into(),
            passive: false,
            durable: true,
            exclusive: false,
            auto_delete: false,
            nowait: false,
            arguments: Default::default(),
        }));
        let mut buf = BytesMut::new();
        encode_method(&mut buf, 3, &m);
        assert_eq!(
            decode_frame(&mut buf, 131072).unwrap(),
            Some(Frame::Method(3, m))
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn incomplete_means_read_more() {
        let mut buf = BytesMut::new();
        encode_heartbeat(&mut buf);
        let mut part = BytesMut::from(&buf[..5]);
        assert_eq!(decode_frame(&mut part, 131072).unwrap(), None);
        assert_eq!(
            decode_frame(&mut buf, 131072).unwrap(),
            Some(Frame::Heartbeat(0))
        );
    }

    #[test]
    fn refuses_oversized_frame_from_its_header_alone() {
        let mut buf = BytesMut::from(&[3u8, 0, 1, 0, 2, 0, 1][..]);
        assert!(matches!(
            decode_frame(&mut buf, 131072),
            Err(FrameError::TooLarge {
                size: 131073,
                max: 131064,
                ..
            })
        ));
    }

    #[test]
    fn deeply_nested_method_arguments_are_refused_without_recursion() {
        // queue.declare whose arguments nest 5000 arrays: ~25 KB, which once overflowed the stack.
        let mut inner = b"V".to_vec();
        for _ in 0..5000 {
            let mut next = vec![b'A'];
            next.extend_from_slice(&(inner.len() as u32).to_be_bytes());
            next.extend_from_slice(&inner);
            inner = next;
        }
        let mut payload = vec![0, 50, 0, 10, 0, 0, 1, b'q', 0];
        payload.extend_from_slice(&((2 + inner.len()) as u32).to_be_bytes());
        payload.extend_from_slice(&[1, b'k']);
        payload.extend_from_slice(&inner);
        let mut buf = BytesMut::new();
        buf.put_u8(FRAME_METHOD);
        buf.put_u16(1);
        buf.put_u32(payload.len() as u32);
        buf.extend_from_slice(&payload);
        buf.put_u8(FRAME_END);
        assert!(matches!(
            decode_frame(&mut buf, 131072),
            Err(FrameError::BadMethod {
                class_id: 50,
                method_id: 10,
                ..
            })
        ));
    }

    #[test]
    fn refuses_bad_frame_end() {
        let mut buf = BytesMut::from(&[8u8, 0, 0, 0, 0, 0, 0, 0xCD][..]);
        assert!(matches!(
            decode_frame(&mut buf, 131072),
            Err(FrameError::BadFrameEnd { .. })
        ));
    }

    #[test]
    fn deliver_fast_path_matches_generic_encoder() {
        let m = AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
            consumer_tag: "ctag".into(),
            delivery_tag: 42,
            redelivered: true,
            exchange: "ex".into(),
            routing_key: "a.b".into(),
        }));
        let mut generic = BytesMut::new();
        encode_method(&mut generic, 7, &m);
        let mut fast = BytesMut::new();
        encode_deliver(&mut fast, 7, "ctag", 42, true, "ex", "a.b");
        assert_eq!(generic, fast);
    }

    #[test]
    fn splits_bodies_to_frame_max() {
        let body = vec![7u8; 10_000];
        let mut buf = BytesMut::new();
        encode_content(&mut buf, 1, &[0, 0], &body, 4096);
        let mut got = Vec::new();
        let header = decode_frame(&mut buf, 4096).unwrap().unwrap();
        assert!(matches!(
            header,
            Frame::Header(
                1,
                ContentHeader {
                    body_size: 10_000,
                    ..
                }
            )
        ));
        while let Some(f) = decode_frame(&mut buf, 4096).unwrap() {
            match f {
                Frame::Body(1, b) => {
                    assert!(b.len() <= 4088);
                    got.extend_from_slice(&b)
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(got, body);
    }
}
