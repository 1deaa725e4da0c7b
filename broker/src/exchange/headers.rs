//! Headers-exchange matching and binding validation, exactly like
//! RabbitMQ's `rabbit_exchange_type_headers` (3.10 to 3.13).
//!
//! # Matching
//!
//! A binding's arguments are a pattern; `x-match` selects how it is applied:
//!
//! * `all` (also used when `x-match` is absent, or is not one of the four
//!   accepted strings, which binding validation normally prevents): every
//!   pattern entry must match. A pattern with no entries left to compare
//!   matches every message, including one without headers.
//! * `any`: at least one pattern entry must match; with no entries left to
//!   compare, nothing matches.
//! * `all-with-x` / `any-with-x`: as above, but pattern keys starting with
//!   `x-` are compared too. Otherwise every key starting with `x-` (`x-`
//!   itself included) is skipped. The `x-match` entry itself is always
//!   skipped.
//!
//! An entry matches when the message has a header with the same name and:
//!
//! * the pattern value is void (`V`): any value, void included (a presence
//!   test);
//! * otherwise the values are equal by Erlang's `==` on RabbitMQ's decoded
//!   representation. That is, **numbers compare by numeric value whatever
//!   their AMQP type**: a `LongInt` 1 equals a `LongLongInt`,
//!   `ShortShortInt`, `Timestamp` 1, a `Double` 1.0 and a `Float` 1.0
//!   (exactly: a float equals an integer only if it is that integer; a
//!   `Float` is widened to `f64` first, so `Float` 0.1 is not `Double` 0.1).
//!   A `LongString` equals a `ByteArray` with the same bytes; booleans equal
//!   only booleans; decimals equal only decimals with the same scale and
//!   value (`{2,100}` is not `{1,10}`); an empty array equals an empty
//!   table. Inside arrays and tables the element types must also agree
//!   (RabbitMQ keeps them as `{Type, Value}` tuples): `[I 1]` is not
//!   `[l 1]`.
//!
//! Sources: `headers_match/5`, `parse_x_match/1` and `validate_binding/2` in
//! `deps/rabbit/src/rabbit_exchange_type_headers.erl` (3.13, and the same
//! code in the 3.10.8 installed here), `parse_table/1` in
//! `rabbit_binary_parser.erl` for the decoded value representation. Checked
//! with 55 binding/message pairs published through a live RabbitMQ 3.10.8,
//! covering each rule above, and with 100,000 random bindings and messages
//! (every value type, nested arrays and tables) encoded to the wire, decoded
//! by RabbitMQ's own parser and run through its matching and validation
//! code on Erlang: no difference in any match result or reply text.
//!
//! # Known, unavoidable differences
//!
//! [`FieldTable`] is a sorted map, so it cannot represent what RabbitMQ
//! sees on the wire:
//!
//! * RabbitMQ compares nested tables entry by entry in wire order; here
//!   they compare in key order. A nested table sent with different key
//!   orders in the binding and in the message matches here but not in
//!   RabbitMQ (checked live).
//! * With a duplicated header name RabbitMQ's merge uses the first
//!   occurrence; a decoder that builds a map usually keeps the last.
//! * `ShortString` values do not exist in RabbitMQ tables (its `s` is a
//!   short integer); they are treated like `LongString` here.
//! * Non-finite floats cannot be decoded by RabbitMQ at all; here NaN equals
//!   nothing and infinities equal the same infinity.
//!
//! # Design
//!
//! RabbitMQ walks the sorted pattern and header lists in step; here each
//! relevant pattern entry is looked up in the header map, which is the same
//! set semantics, and stops at the first entry deciding the result.
//!
//! [`validate_binding_args`] reproduces RabbitMQ's 406 reply text, which
//! embeds the offending value printed with Erlang's `~p`. The printer
//! (`reply_text::erlang`) follows Erlang/OTP's `io_lib_pretty` layout for the
//! terms a decoded value can be (atoms, numbers, binaries, lists, tuples):
//! which binaries print as strings and their escapes, the float format, and
//! how long terms wrap at 80 columns. It was checked against
//! `io_lib:format` on the Erlang/OTP 25 that runs RabbitMQ 3.10.8 here.

use crate::reply_text::erlang::{erlang_equal, string_bytes, write_term};
use amq_protocol::types::{AMQPValue, FieldTable};

/// The binding argument selecting the match mode.
const X_MATCH: &str = "x-match";

/// True if a message with `headers` matches a headers-exchange binding with `args` (the binding's arguments, including x-match).
///
/// `headers: None` (no `headers` property) behaves like an empty table.
/// See the [module documentation](self) for the rules.
pub(crate) fn headers_match(args: &FieldTable, headers: Option<&FieldTable>) -> bool {
    let mode = args.inner().get(X_MATCH).and_then(string_bytes);
    let (all, with_x) = match mode {
        Some(b"any") => (false, false),
        Some(b"all-with-x") => (true, true),
        Some(b"any-with-x") => (false, true),
        // "all", absent, or anything else (RabbitMQ's legacy default).
        _ => (true, false),
    };
    let headers = headers.map(FieldTable::inner);
    for (key, pattern) in args {
        let key = key.as_str();
        if key == X_MATCH || (!with_x && key.starts_with("x-")) {
            continue;
        }
        let matched = match headers.and_then(|h| h.get(key)) {
            None => false,
            Some(value) => matches!(pattern, AMQPValue::Void) || erlang_equal(pattern, value),
        };
        if all && !matched {
            return false;
        }
        if !all && matched {
            return true;
        }
    }
    all
}

/// Validates a binding's x-match argument as RabbitMQ does: Ok or Err(text) where text is RabbitMQ's 406 reply text for an invalid x-match value.
///
/// `x-match` may be absent, or a `LongString` `all`, `any`, `all-with-x` or
/// `any-with-x`. The error text is RabbitMQ's explanation, without the
/// `PRECONDITION_FAILED - ` prefix of the reply text (which RabbitMQ then
/// cuts to 252 bytes plus `...` when it is over 255 bytes), e.g.
/// `Invalid x-match field value <<"ALL">>; expected all, any, all-with-x, or any-with-x`
/// or `Invalid x-match field type signedint (value 1); expected longstr`.
///
/// These are RabbitMQ 3.10's texts, whose `~p` prints non-ASCII strings as
/// Latin-1 bytes; 3.13 formats with `~tp`, which differs only for non-ASCII
/// values. Where RabbitMQ's bytes would not be valid UTF-8 (Latin-1
/// printable bytes that are not UTF-8) they become U+FFFD here.
pub(crate) fn validate_binding_args(args: &FieldTable) -> Result<(), String> {
    match args.inner().get(X_MATCH).and_then(x_match_error) {
        None => Ok(()),
        Some(text) => Err(match String::from_utf8(text) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }),
    }
}

/// RabbitMQ's explanation for an invalid `x-match` value (`None` if valid).
fn x_match_error(value: &AMQPValue) -> Option<Vec<u8>> {
    let mut text = Vec::new();
    match string_bytes(value) {
        Some(b"all" | b"any" | b"all-with-x" | b"any-with-x") => return None,
        Some(_) => {
            text.extend_from_slice(b"Invalid x-match field value ");
            write_term(&mut text, value);
            text.extend_from_slice(b"; expected all, any, all-with-x, or any-with-x");
        }
        None => {
            text.extend_from_slice(b"Invalid x-match field type ");
            text.extend_from_slice(crate::args::type_name(value).as_bytes());
            text.extend_from_slice(b" (value ");
            write_term(&mut text, value);
            text.extend_from_slice(b"); expected longstr");
        }
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::types::{DecimalValue, FieldArray, LongString};

    fn s(v: &str) -> AMQPValue {
        AMQPValue::LongString(LongString::from(v))
    }

    fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in entries {
            t.insert((*k).into(), v.clone());
        }
        t
    }

    fn with_mode(mode: &str, entries: &[(&str, AMQPValue)]) -> FieldTable {
        let mut t = table(entries);
        t.insert(X_MATCH.into(), s(mode));
        t
    }

    /// Binding {k: pattern} (x-match all) against message {k: value}.
    fn same(pattern: AMQPValue, value: AMQPValue) -> bool {
        headers_match(&table(&[("k", pattern)]), Some(&table(&[("k", value)])))
    }

    fn array(items: &[AMQPValue]) -> AMQPValue {
        AMQPValue::FieldArray(FieldArray::from(items.to_vec()))
    }

    fn nested(entries: &[(&str, AMQPValue)]) -> AMQPValue {
        AMQPValue::FieldTable(table(entries))
    }

    fn dec(scale: u8, value: u32) -> AMQPValue {
        AMQPValue::DecimalValue(DecimalValue { scale, value })
    }

    // Unless noted, each expectation was observed on a live RabbitMQ 3.10.8
    // (binding and publishing with hand-encoded field types) and follows
    // from headers_match/5 in rabbit_exchange_type_headers.erl.

    #[test]
    fn x_match_all_requires_every_entry() {
        use AMQPValue::LongInt as I;
        let b = table(&[("a", I(1)), ("b", I(2))]);
        assert!(headers_match(&b, Some(&table(&[("a", I(1)), ("b", I(2))]))));
        assert!(headers_match(
            &b,
            Some(&table(&[("a", I(1)), ("b", I(2)), ("z", s("q"))]))
        ));
        assert!(!headers_match(&b, Some(&table(&[("a", I(1))]))));
        assert!(!headers_match(
            &b,
            Some(&table(&[("a", I(1)), ("b", I(3))]))
        ));
        assert!(!headers_match(&b, Some(&FieldTable::default())));
        assert!(!headers_match(&b, None));
        // Explicit "all" is the same as the default.
        let b = with_mode("all", &[("a", I(1))]);
        assert!(headers_match(&b, Some(&table(&[("a", I(1))]))));
        assert!(!headers_match(&b, Some(&table(&[("a", I(2))]))));
    }

    #[test]
    fn x_match_any_requires_one_entry() {
        use AMQPValue::LongInt as I;
        let b = with_mode("any", &[("a", I(1)), ("b", I(2))]);
        assert!(headers_match(&b, Some(&table(&[("a", I(1))]))));
        assert!(headers_match(&b, Some(&table(&[("b", I(2)), ("c", I(9))]))));
        assert!(!headers_match(
            &b,
            Some(&table(&[("a", I(2)), ("b", I(1))]))
        ));
        assert!(!headers_match(&b, None));
    }

    #[test]
    fn no_entries_to_compare() {
        // all: matches everything, even a message without headers.
        assert!(headers_match(&FieldTable::default(), None));
        assert!(headers_match(&with_mode("all", &[]), None));
        assert!(headers_match(&with_mode("all-with-x", &[]), None));
        assert!(headers_match(&table(&[("x-foo", s("bar"))]), None));
        // any: matches nothing.
        let h = table(&[("k", s("v")), ("x-foo", s("bar"))]);
        assert!(!headers_match(&with_mode("any", &[]), Some(&h)));
        assert!(!headers_match(&with_mode("any-with-x", &[]), Some(&h)));
        assert!(!headers_match(
            &with_mode("any", &[("x-foo", s("bar"))]),
            Some(&h)
        ));
    }

    #[test]
    fn x_keys_ignored_unless_with_x() {
        let h = table(&[("k", s("v"))]);
        let hx = table(&[("k", s("v")), ("x-foo", s("bar"))]);
        let entries = [("x-foo", s("bar")), ("k", s("v"))];
        assert!(headers_match(&with_mode("all", &entries), Some(&h)));
        assert!(!headers_match(&with_mode("all-with-x", &entries), Some(&h)));
        assert!(headers_match(&with_mode("all-with-x", &entries), Some(&hx)));
        let only_x = [("x-foo", s("bar"))];
        assert!(!headers_match(&with_mode("any", &only_x), Some(&hx)));
        assert!(headers_match(&with_mode("any-with-x", &only_x), Some(&hx)));
        // The key "x-" alone is an x- key.
        assert!(headers_match(
            &table(&[("x-", s("bar"))]),
            Some(&table(&[("y", s("z"))]))
        ));
        // x-match itself is never compared, not even with -with-x.
        let hm = table(&[("x-match", s("zzz"))]);
        assert!(headers_match(&with_mode("all-with-x", &[]), Some(&hm)));
        // Keys are case-sensitive: "X-foo" is an ordinary key.
        assert!(!headers_match(&table(&[("X-foo", s("bar"))]), Some(&h)));
    }

    #[test]
    fn invalid_x_match_is_treated_as_all() {
        // Unreachable through AMQP (validation rejects it) but RabbitMQ's
        // parse_x_match/1 falls back to `all`.
        let b = with_mode("ANY", &[("a", s("1")), ("b", s("2"))]);
        assert!(!headers_match(&b, Some(&table(&[("a", s("1"))]))));
        let mut b = table(&[("a", s("1"))]);
        b.insert(X_MATCH.into(), AMQPValue::LongInt(1));
        assert!(headers_match(&b, Some(&table(&[("a", s("1"))]))));
        // A ShortString "any" is taken as the string it is.
        let mut b = table(&[("a", s("1")), ("b", s("2"))]);
        b.insert(X_MATCH.into(), AMQPValue::ShortString("any".into()));
        assert!(headers_match(&b, Some(&table(&[("a", s("1"))]))));
    }

    #[test]
    fn void_pattern_tests_presence() {
        assert!(same(AMQPValue::Void, s("anything")));
        assert!(same(AMQPValue::Void, AMQPValue::Void));
        assert!(same(AMQPValue::Void, AMQPValue::Boolean(false)));
        let b = table(&[("k", AMQPValue::Void)]);
        assert!(!headers_match(&b, Some(&table(&[("j", s("x"))]))));
        assert!(!headers_match(&b, None));
        // A void header only matches a void pattern.
        assert!(!same(s("a"), AMQPValue::Void));
        assert!(!same(AMQPValue::LongInt(0), AMQPValue::Void));
    }

    #[test]
    fn numbers_compare_by_value_across_types() {
        use AMQPValue::*;
        for v in [
            LongLongInt(1),
            ShortShortInt(1),
            ShortShortUInt(1),
            ShortInt(1),
            ShortUInt(1),
            LongUInt(1),
            Timestamp(1),
            Double(1.0),
            Float(1.0),
        ] {
            assert!(same(LongInt(1), v.clone()), "{v:?}");
            assert!(same(v.clone(), LongInt(1)), "{v:?}");
        }
        assert!(!same(LongInt(1), Double(1.5)));
        assert!(!same(LongInt(1), LongInt(2)));
        assert!(same(LongInt(0), Double(-0.0)));
        assert!(same(LongLongInt(1 << 40), Double((1u64 << 40) as f64)));
        // Exact comparison, not through a lossy conversion to f64.
        assert!(!same(
            LongLongInt((1 << 53) + 1),
            Double((1u64 << 53) as f64)
        ));
        // Float is widened: 0.1f32 is not 0.1f64, but 0.5 is exact in both.
        assert!(!same(Double(0.1), Float(0.1)));
        assert!(same(Float(0.1), Float(0.1)));
        assert!(same(Float(0.5), Double(0.5)));
        // Signedness cannot make -1 equal to 255 or to u64::MAX (not live-tested).
        assert!(!same(ShortShortInt(-1), ShortShortUInt(255)));
        assert!(!same(LongLongInt(-1), Timestamp(u64::MAX)));
        assert!(!same(Timestamp(u64::MAX), Double(u64::MAX as f64)));
        assert!(same(Timestamp(1 << 63), Double((1u64 << 63) as f64)));
        // Not live-tested: non-finite floats cannot reach RabbitMQ.
        assert!(!same(Double(f64::NAN), Double(f64::NAN)));
    }

    #[test]
    fn strings_booleans_decimals() {
        use AMQPValue::*;
        assert!(same(s("abc"), s("abc")));
        assert!(!same(s("abc"), s("abd")));
        assert!(same(s("abc"), ByteArray(b"abc".to_vec().into())));
        assert!(same(s("abc"), ShortString("abc".into())));
        assert!(same(s(""), ByteArray(Vec::new().into())));
        assert!(same(Boolean(true), Boolean(true)));
        assert!(same(Boolean(false), Boolean(false)));
        assert!(!same(Boolean(true), Boolean(false)));
        assert!(!same(Boolean(true), LongInt(1)));
        assert!(!same(s("true"), Boolean(true)));
        assert!(same(dec(2, 100), dec(2, 100)));
        assert!(!same(dec(2, 100), dec(1, 10)));
        assert!(!same(dec(0, 1), LongInt(1)));
    }

    #[test]
    fn arrays_and_tables_compare_types_inside() {
        use AMQPValue::*;
        assert!(same(array(&[]), nested(&[])));
        assert!(same(nested(&[]), array(&[])));
        assert!(same(array(&[LongInt(1)]), array(&[LongInt(1)])));
        assert!(!same(array(&[LongInt(1)]), array(&[LongLongInt(1)])));
        assert!(!same(
            array(&[s("a")]),
            array(&[ByteArray(b"a".to_vec().into())])
        ));
        assert!(!same(array(&[array(&[])]), array(&[nested(&[])])));
        assert!(!same(
            array(&[LongInt(1)]),
            array(&[LongInt(1), LongInt(1)])
        ));
        let t = nested(&[("a", LongInt(1)), ("b", s("x"))]);
        assert!(same(t.clone(), t.clone()));
        assert!(!same(
            nested(&[("a", LongInt(1))]),
            nested(&[("a", LongLongInt(1))])
        ));
        assert!(!same(
            nested(&[("a", LongInt(1))]),
            nested(&[("b", LongInt(1))])
        ));
        assert!(!same(array(&[LongInt(1)]), nested(&[("a", LongInt(1))])));
    }

    /// The complete reply text RabbitMQ sends for a binding with this
    /// x-match: `PRECONDITION_FAILED - ` and the explanation, cut to 252
    /// bytes plus `...` when over 255 (rabbit_binary_generator), so that the
    /// texts captured from RabbitMQ can be compared verbatim.
    fn rejection(value: AMQPValue) -> String {
        let mut t = table(&[("k", s("v"))]);
        t.insert(X_MATCH.into(), value);
        let explanation = validate_binding_args(&t).expect_err("should be rejected");
        let mut reply = format!("PRECONDITION_FAILED - {explanation}").into_bytes();
        if reply.len() > 255 {
            reply.truncate(252);
            reply.extend_from_slice(b"...");
        }
        String::from_utf8_lossy(&reply).into_owned()
    }

    #[test]
    fn validation_accepts_the_four_modes_and_absence() {
        assert_eq!(validate_binding_args(&FieldTable::default()), Ok(()));
        assert_eq!(validate_binding_args(&table(&[("k", s("v"))])), Ok(()));
        for mode in ["all", "any", "all-with-x", "any-with-x"] {
            assert_eq!(
                validate_binding_args(&with_mode(mode, &[("k", s("v"))])),
                Ok(())
            );
        }
    }

    #[test]
    fn validation_error_texts_match_rabbitmq() {
        use AMQPValue::*;
        // Every text below is what RabbitMQ 3.10.8 sent back, live.
        let value_err = |v: &str| {
            format!(
                "PRECONDITION_FAILED - Invalid x-match field value {v}; \
                 expected all, any, all-with-x, or any-with-x"
            )
        };
        let type_err = |t: &str, v: &str| {
            format!("PRECONDITION_FAILED - Invalid x-match field type {t} (value {v}); expected longstr")
        };
        assert_eq!(rejection(s("ALL")), value_err(r#"<<"ALL">>"#));
        assert_eq!(rejection(s("")), value_err("<<>>"));
        assert_eq!(rejection(s("any ")), value_err(r#"<<"any ">>"#));
        assert_eq!(rejection(s("é")), value_err(r#"<<"é">>"#));
        assert_eq!(rejection(s("€")), value_err("<<226,130,172>>"));
        assert_eq!(rejection(LongInt(1)), type_err("signedint", "1"));
        assert_eq!(rejection(LongLongInt(-5)), type_err("long", "-5"));
        assert_eq!(rejection(ShortShortInt(-3)), type_err("byte", "-3"));
        assert_eq!(rejection(ShortUInt(9)), type_err("unsignedshort", "9"));
        assert_eq!(rejection(Timestamp(7)), type_err("timestamp", "7"));
        assert_eq!(
            rejection(ByteArray(b"any".to_vec().into())),
            type_err("binary", r#"<<"any">>"#)
        );
        assert_eq!(rejection(Void), type_err("void", "undefined"));
        assert_eq!(rejection(Boolean(true)), type_err("bool", "true"));
        assert_eq!(rejection(Double(0.1)), type_err("double", "0.1"));
        assert_eq!(
            rejection(Float(0.1)),
            type_err("float", "0.10000000149011612")
        );
        assert_eq!(rejection(Double(1e20)), type_err("double", "1.0e20"));
        assert_eq!(rejection(dec(2, 100)), type_err("decimal", "{2,100}"));
        assert_eq!(
            rejection(array(&[s("a"), LongInt(1)])),
            type_err("array", r#"[{longstr,<<"a">>},{signedint,1}]"#)
        );
        assert_eq!(
            rejection(nested(&[("a", s("b"))])),
            type_err("table", r#"[{<<"a">>,longstr,<<"b">>}]"#)
        );
    }

    #[test]
    fn validation_error_wrapping_and_truncation() {
        // Live RabbitMQ 3.10.8: a long non-printable binary is wrapped at
        // 80 columns, and the reply text is cut to 252 bytes plus "...".
        let bytes: Vec<u8> = (0..=40).collect();
        let got = rejection(AMQPValue::LongString(bytes.into()));
        assert_eq!(
            got,
            "PRECONDITION_FAILED - Invalid x-match field value \
             <<0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,\n                              \
             19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,\n                              \
             35,36,37,38,39,40>>; expected all, any, all..."
        );
        assert_eq!(got.len(), 255);
        // Printable strings are never wrapped.
        let long = "a".repeat(200);
        let got = rejection(s(&long));
        assert_eq!(got.len(), 255);
        assert!(got.ends_with("aaa..."));
        assert!(!got.contains('\n'));
        // Escapes, as io_lib:format("~p") prints them (checked with erl).
        assert_eq!(
            rejection(s("a\"b\\c\n\t")),
            "PRECONDITION_FAILED - Invalid x-match field value <<\"a\\\"b\\\\c\\n\\t\">>; \
             expected all, any, all-with-x, or any-with-x"
        );
        assert_eq!(
            rejection(s("\u{7f}")),
            "PRECONDITION_FAILED - Invalid x-match field value <<127>>; \
             expected all, any, all-with-x, or any-with-x"
        );
    }

    #[test]
    fn nested_values_wrap_like_erlang() {
        use AMQPValue::*;
        // Expected texts produced by io_lib:format/2 on Erlang/OTP 25 (the
        // runtime of RabbitMQ 3.10.8 here) with RabbitMQ's format string.
        let cases = [
            (
                nested(&[("b", LongInt(912095352)), ("x-c", ShortShortUInt(255))]),
                "Invalid x-match field type table (value [{<<\"b\">>,signedint,912095352},\n                                         {<<\"x-c\">>,unsignedbyte,255}]); expected longstr",
            ),
            (
                array(&[ByteArray(b"-zbzycxybcyc-caybazzxbx-yxaa-bzaaxbbcaz--zaz-bbzabbczcbx-".to_vec().into())]),
                "Invalid x-match field type array (value [{binary,\n                                          <<\"-zbzycxybcyc-caybazzxbx-yxaa-bzaaxbbcaz--zaz-bbzabbczcbx-\">>}]); expected longstr",
            ),
            (
                array(&[LongLongInt(1), ByteArray((0..=40).collect::<Vec<u8>>().into()), array(&[Boolean(true), Void])]),
                "Invalid x-match field type array (value [{long,1},\n                                         {binary,\n                                          <<0,1,2,3,4,5,6,7,8,9,10,11,12,13,\n                                            14,15,16,17,18,19,20,21,22,23,24,\n                                            25,26,27,28,29,30,31,32,33,34,35,\n                                            36,37,38,39,40>>},\n                                         {array,\n                                          [{bool,true},{void,undefined}]}]); expected longstr",
            ),
            (
                nested(&[("k", nested(&[("inner", array(&[Double(0.1), dec(2, 100), s("a fairly long string value here")]))]))]),
                "Invalid x-match field type table (value [{<<\"k\">>,table,\n                                          [{<<\"inner\">>,array,\n                                            [{double,0.1},\n                                             {decimal,{2,100}},\n                                             {longstr,\n                                              <<\"a fairly long string value here\">>}]}]}]); expected longstr",
            ),
        ];
        for (value, want) in cases {
            let got = x_match_error(&value).expect("invalid");
            assert_eq!(String::from_utf8(got).unwrap(), want);
        }
    }
}
