//! Hand-written decoding of the methods every message brings: basic.publish, basic.ack,
//! basic.nack and basic.reject.
//!
//! Why it exists: `amq-protocol`'s generic nom parsers cost about 1,800 instructions and 3
//! allocations per method (a vector of flags with their names as `String`s, each short string
//! collected into a `Vec` first), 10-13 % of a persistent message's broker cost
//! (`docs/persistent-path-profile.md`, "frame parsing"). These few methods are read with slice
//! patterns instead: no allocation for an ack, nack or reject, and one per non-empty short string
//! for a publish.
//!
//! The contract: [`parse`] returns exactly the [`AMQPClass`] that `amq-protocol`'s `parse_class`
//! returns for the same payload, or `None`. It answers `None` for every other method and for
//! anything it does not fully handle (a short or over-long payload, a short string that is not
//! UTF-8), and the caller then runs the generic path, so errors keep their exact form. It never
//! panics. The property tests below check it against the generic path.

use crate::constants::CLASS_BASIC;
use amq_protocol::protocol::basic::{AMQPMethod, Ack, Nack, Publish, Reject};
use amq_protocol::protocol::AMQPClass;
use amq_protocol::types::ShortString;

/// Decodes `payload` (a whole method frame payload: class id, method id, arguments) if it is a
/// well-formed basic.publish, basic.ack, basic.nack or basic.reject; `None` otherwise.
pub(super) fn parse(payload: &[u8]) -> Option<AMQPClass> {
    let (&[c0, c1, m0, m1], args) = payload.split_first_chunk::<4>()?;
    if u16::from_be_bytes([c0, c1]) != CLASS_BASIC {
        return None;
    }
    let method = match u16::from_be_bytes([m0, m1]) {
        40 => AMQPMethod::Publish(publish(args)?),
        80 => {
            let (delivery_tag, bits) = tag_and_bits(args)?;
            AMQPMethod::Ack(Ack {
                delivery_tag,
                multiple: bits & 1 != 0,
            })
        }
        90 => {
            let (delivery_tag, bits) = tag_and_bits(args)?;
            AMQPMethod::Reject(Reject {
                delivery_tag,
                requeue: bits & 1 != 0,
            })
        }
        120 => {
            let (delivery_tag, bits) = tag_and_bits(args)?;
            AMQPMethod::Nack(Nack {
                delivery_tag,
                multiple: bits & 1 != 0,
                requeue: bits & 2 != 0,
            })
        }
        _ => return None,
    };
    Some(AMQPClass::Basic(method))
}

/// basic.publish arguments: reserved u16 (the ticket, dropped as `amq-protocol` drops it),
/// exchange, routing key, one octet of bits (mandatory = bit 0, immediate = bit 1; the other bits
/// are ignored, as `amq-protocol`'s flag parser ignores them). Nothing may follow.
fn publish(args: &[u8]) -> Option<Publish> {
    let (_ticket, rest) = args.split_first_chunk::<2>()?;
    let (exchange, rest) = short_str(rest)?;
    let (routing_key, rest) = short_str(rest)?;
    let &[bits] = rest else {
        return None;
    };
    // Allocate only once the whole payload is known to be good. `try_new` cannot fail here (a
    // short string is at most 255 bytes), but falling back costs nothing and cannot panic.
    Some(Publish {
        exchange: ShortString::try_new(exchange).ok()?,
        routing_key: ShortString::try_new(routing_key).ok()?,
        mandatory: bits & 1 != 0,
        immediate: bits & 2 != 0,
    })
}

/// A u64 delivery tag and one octet of bits, and nothing after them.
fn tag_and_bits(args: &[u8]) -> Option<(u64, u8)> {
    let (tag, rest) = args.split_first_chunk::<8>()?;
    let &[bits] = rest else {
        return None;
    };
    Some((u64::from_be_bytes(*tag), bits))
}

/// A short string (length octet, then that many bytes) that is valid UTF-8, as `amq-protocol`'s
/// `ShortString` requires; and what follows it.
fn short_str(b: &[u8]) -> Option<(&str, &[u8])> {
    let (&len, rest) = b.split_first()?;
    let (s, rest) = rest.split_at_checked(usize::from(len))?;
    Some((std::str::from_utf8(s).ok()?, rest))
}

#[cfg(test)]
mod tests {
    use super::super::{decode_frame, encode_method, parse_method, parse_method_generic, Frame};
    use super::*;
    use crate::frame::FrameError;
    use bytes::BytesMut;
    use proptest::collection::vec;
    use proptest::prelude::*;

    const HOT: [u16; 4] = [40, 80, 90, 120];

    fn publish_payload(ticket: u16, exchange: &[u8], routing_key: &[u8], bits: u8) -> Vec<u8> {
        let mut p = vec![0, 60, 0, 40];
        p.extend_from_slice(&ticket.to_be_bytes());
        p.push(exchange.len() as u8);
        p.extend_from_slice(exchange);
        p.push(routing_key.len() as u8);
        p.extend_from_slice(routing_key);
        p.push(bits);
        p
    }

    fn tag_payload(method_id: u16, tag: u64, bits: u8) -> Vec<u8> {
        let mut p = vec![0, 60];
        p.extend_from_slice(&method_id.to_be_bytes());
        p.extend_from_slice(&tag.to_be_bytes());
        p.push(bits);
        p
    }

    fn basic(m: AMQPMethod) -> AMQPClass {
        AMQPClass::Basic(m)
    }

    /// The fast path agrees with the generic one: `parse_method` returns exactly what
    /// `parse_method_generic` returns (errors included), and for the hot methods the fast path
    /// itself answers every payload the generic path accepts (so it is really taken), and nothing
    /// else.
    fn check(payload: &[u8]) -> Result<(), TestCaseError> {
        let fast = parse(payload);
        if payload.len() < 4 {
            // decode_frame never calls parse_method on these; the fast path must just not panic.
            prop_assert_eq!(fast, None);
            return Ok(());
        }
        let generic = parse_method_generic(7, payload);
        prop_assert_eq!(parse_method(7, payload), generic.clone());
        let class_id = u16::from_be_bytes([payload[0], payload[1]]);
        let method_id = u16::from_be_bytes([payload[2], payload[3]]);
        if class_id == 60 && HOT.contains(&method_id) {
            prop_assert_eq!(fast, generic.ok());
        } else {
            prop_assert_eq!(fast, None);
        }
        Ok(())
    }

    fn check_ok(payload: &[u8]) {
        if let Err(e) = check(payload) {
            panic!("{e} for payload {payload:?}");
        }
    }

    /// Checks the payload, the payload with each trailing extra, and every truncation of it.
    fn check_variants(payload: &[u8]) {
        for cut in 0..=payload.len() {
            check_ok(&payload[..cut]);
        }
        for extra in [&[0u8][..], &[0xCE], &[1, 2, 3]] {
            let mut p = payload.to_vec();
            p.extend_from_slice(extra);
            check_ok(&p);
        }
    }

    /// Short string contents of length `n`: ASCII, bytes that are never UTF-8, and a run of
    /// two-byte characters cut at `n` (valid UTF-8 only when `n` is even).
    fn contents(n: usize) -> [Vec<u8>; 3] {
        [
            vec![b'a'; n],
            vec![0xFF; n],
            "é".repeat(n.div_ceil(2)).into_bytes()[..n].to_vec(),
        ]
    }

    #[test]
    fn publish_fast_path() {
        let p = publish_payload(0, b"amq.topic", b"a.b.c", 0b01);
        let expected = basic(AMQPMethod::Publish(Publish {
            exchange: "amq.topic".into(),
            routing_key: "a.b.c".into(),
            mandatory: true,
            immediate: false,
        }));
        assert_eq!(parse(&p), Some(expected.clone()));
        assert_eq!(parse_method_generic(1, &p), Ok(expected));
        // The default exchange, both flags, unused bits set, a non-zero ticket.
        let p = publish_payload(0xBEEF, b"", "ключ".as_bytes(), 0xFF);
        assert_eq!(
            parse(&p),
            Some(basic(AMQPMethod::Publish(Publish {
                exchange: "".into(),
                routing_key: "ключ".into(),
                mandatory: true,
                immediate: true,
            })))
        );
        check_variants(&p);
    }

    #[test]
    fn publish_falls_back_on_what_it_does_not_handle() {
        // Not UTF-8: the generic path's error, unchanged.
        let p = publish_payload(0, b"ex", &[0xC3, 0x28], 0);
        assert_eq!(parse(&p), None);
        assert!(matches!(
            parse_method(3, &p),
            Err(FrameError::BadMethod {
                channel: 3,
                class_id: 60,
                method_id: 40,
                ..
            })
        ));
        // A trailing byte, a missing bits octet, a short string running past the end.
        let good = publish_payload(0, b"ex", b"rk", 0);
        let mut long = good.clone();
        long.push(0);
        assert_eq!(parse(&long), None);
        assert_eq!(parse(&good[..good.len() - 1]), None);
        assert_eq!(parse(&[0, 60, 0, 40, 0, 0, 200, b'x']), None);
        check_ok(&long);
    }

    #[test]
    fn ack_fast_path() {
        for (tag, bits, multiple) in [(1, 0, false), (u64::MAX, 1, true), (42, 0xFE, false)] {
            let p = tag_payload(80, tag, bits);
            let expected = basic(AMQPMethod::Ack(Ack {
                delivery_tag: tag,
                multiple,
            }));
            assert_eq!(parse(&p), Some(expected.clone()));
            assert_eq!(parse_method_generic(1, &p), Ok(expected));
            check_variants(&p);
        }
    }

    #[test]
    fn reject_fast_path() {
        for (tag, bits, requeue) in [(0, 0, false), (7, 1, true), (u64::MAX, 0xFE, false)] {
            let p = tag_payload(90, tag, bits);
            let expected = basic(AMQPMethod::Reject(Reject {
                delivery_tag: tag,
                requeue,
            }));
            assert_eq!(parse(&p), Some(expected.clone()));
            assert_eq!(parse_method_generic(1, &p), Ok(expected));
            check_variants(&p);
        }
    }

    #[test]
    fn nack_fast_path() {
        for (tag, bits, multiple, requeue) in [
            (5, 0, false, false),
            (5, 1, true, false),
            (u64::MAX, 2, false, true),
            (1 << 63, 0xFF, true, true),
            (9, 0xFC, false, false),
        ] {
            let p = tag_payload(120, tag, bits);
            let expected = basic(AMQPMethod::Nack(Nack {
                delivery_tag: tag,
                multiple,
                requeue,
            }));
            assert_eq!(parse(&p), Some(expected.clone()));
            assert_eq!(parse_method_generic(1, &p), Ok(expected));
            check_variants(&p);
        }
    }

    #[test]
    fn other_methods_are_left_to_the_generic_path() {
        // basic.qos with a prefetch_size: still refused by the generic path's check.
        let qos = [0, 60, 0, 10, 0, 0, 0, 1, 0, 10, 0];
        assert_eq!(parse(&qos), None);
        assert_eq!(
            parse_method(2, &qos),
            Err(FrameError::PrefetchSize {
                channel: 2,
                size: 1
            })
        );
        // Same method ids in another class, and an unknown basic method.
        assert_eq!(parse(&[0, 50, 0, 40, 0, 0, 0, 0, 0]), None);
        assert_eq!(parse(&tag_payload(81, 1, 0)), None);
        assert!(matches!(
            parse_method(2, &tag_payload(81, 1, 0)),
            Err(FrameError::UnknownMethod {
                class_id: 60,
                method_id: 81,
                ..
            })
        ));
        for short in [&[][..], &[0], &[0, 60], &[0, 60, 0], &[0, 60, 0, 80]] {
            assert_eq!(parse(short), None);
        }
    }

    #[test]
    fn every_short_string_length_and_flag_combination() {
        for n in 0..=255 {
            for s in contents(n) {
                check_variants(&publish_payload(1, &s, b"rk", 0));
                check_variants(&publish_payload(1, b"ex", &s, 3));
                check_ok(&publish_payload(0, &s, &s, 1));
            }
        }
        for bits in 0..=255u8 {
            check_ok(&publish_payload(0, b"ex", b"rk", bits));
            for method_id in HOT {
                check_ok(&tag_payload(method_id, 1 << (bits % 64), bits));
            }
        }
    }

    #[test]
    fn decode_frame_round_trips_the_hot_methods() {
        let methods = [
            AMQPMethod::Publish(Publish {
                exchange: "x".into(),
                routing_key: "k".repeat(255).as_str().into(),
                mandatory: false,
                immediate: true,
            }),
            AMQPMethod::Ack(Ack {
                delivery_tag: 99,
                multiple: true,
            }),
            AMQPMethod::Reject(Reject {
                delivery_tag: 3,
                requeue: true,
            }),
            AMQPMethod::Nack(Nack {
                delivery_tag: u64::MAX,
                multiple: false,
                requeue: true,
            }),
        ];
        for m in methods {
            let m = basic(m);
            let mut buf = BytesMut::new();
            encode_method(&mut buf, 9, &m);
            assert_eq!(parse(&buf[7..buf.len() - 1]), Some(m.clone()));
            assert_eq!(
                decode_frame(&mut buf, 131072).unwrap(),
                Some(Frame::Method(9, m))
            );
        }
    }

    /// Short string bytes: arbitrary (mostly not UTF-8), ASCII of any length up to 255, or
    /// arbitrary characters cut to 255 bytes (sometimes mid-character).
    fn short_string_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            vec(any::<u8>(), 0..=255),
            "[a-zA-Z0-9._-]{0,255}".prop_map(String::into_bytes),
            ".{0,80}".prop_map(|s| {
                let mut b = s.into_bytes();
                b.truncate(255);
                b
            }),
        ]
    }

    /// Extra bytes after the method (none, half of the time), and where to cut it (nowhere, most
    /// of the time).
    fn tail() -> impl Strategy<Value = (Vec<u8>, Option<prop::sample::Index>)> {
        (
            prop_oneof![Just(Vec::new()), vec(any::<u8>(), 1..8)],
            prop::option::weighted(0.3, any::<prop::sample::Index>()),
        )
    }

    fn finish(mut p: Vec<u8>, (extra, cut): (Vec<u8>, Option<prop::sample::Index>)) -> Vec<u8> {
        p.extend_from_slice(&extra);
        if let Some(cut) = cut {
            p.truncate(cut.index(p.len() + 1));
        }
        p
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn arbitrary_payloads_match_the_generic_path(
            head in prop_oneof![
                Just(vec![0u8, 60, 0, 40]),
                Just(vec![0u8, 60, 0, 80]),
                Just(vec![0u8, 60, 0, 90]),
                Just(vec![0u8, 60, 0, 120]),
                vec(any::<u8>(), 4),
                vec(any::<u8>(), 0..4),
            ],
            rest in vec(any::<u8>(), 0..300),
        ) {
            let mut p = head;
            p.extend_from_slice(&rest);
            check(&p)?;
        }

        #[test]
        fn publishes_match_the_generic_path(
            ticket in any::<u16>(),
            exchange in short_string_bytes(),
            routing_key in short_string_bytes(),
            // A length octet that lies about the bytes that follow, now and then.
            lie in prop::option::weighted(0.1, (any::<bool>(), any::<u8>())),
            bits in any::<u8>(),
            tail in tail(),
        ) {
            let mut p = publish_payload(ticket, &exchange, &routing_key, bits);
            if let Some((on_exchange, len)) = lie {
                let at = if on_exchange { 6 } else { 7 + exchange.len() };
                p[at] = len;
            }
            check(&finish(p, tail))?;
        }

        #[test]
        fn tagged_methods_match_the_generic_path(
            method_id in prop::sample::select(HOT.to_vec()),
            tag in prop_oneof![Just(0u64), Just(u64::MAX), Just(1u64 << 63), any::<u64>()],
            bits in any::<u8>(),
            tail in tail(),
        ) {
            check(&finish(tag_payload(method_id, tag, bits), tail))?;
        }
    }
}
