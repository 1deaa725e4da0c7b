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
//! embeds the offending value printed with Erlang's `~p`. The printer at the
//! end of this file follows Erlang/OTP's `io_lib_pretty` layout for the
//! terms a decoded value can be (atoms, numbers, binaries, lists, tuples):
//! which binaries print as strings and their escapes, the float format, and
//! how long terms wrap at 80 columns. It was checked against
//! `io_lib:format` on the Erlang/OTP 25 that runs RabbitMQ 3.10.8 here.

use amq_protocol::types::{AMQPValue, FieldTable};

/// The binding argument selecting the match mode.
const X_MATCH: &str = "x-match";

/// True if a message with `headers` matches a headers-exchange binding with `args` (the binding's arguments, including x-match).
///
/// `headers: None` (no `headers` property) behaves like an empty table.
/// See the [module documentation](self) for the rules.
pub fn headers_match(args: &FieldTable, headers: Option<&FieldTable>) -> bool {
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
pub fn validate_binding_args(args: &FieldTable) -> Result<(), String> {
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

/// The bytes of a string value (RabbitMQ's `longstr`).
fn string_bytes(value: &AMQPValue) -> Option<&[u8]> {
    match value {
        AMQPValue::LongString(s) => Some(s.as_bytes()),
        AMQPValue::ShortString(s) => Some(s.as_str().as_bytes()),
        _ => None,
    }
}

#[derive(Clone, Copy)]
enum Number {
    Int(i128),
    Float(f64),
}

fn number(value: &AMQPValue) -> Option<Number> {
    Some(match *value {
        AMQPValue::ShortShortInt(n) => Number::Int(n.into()),
        AMQPValue::ShortShortUInt(n) => Number::Int(n.into()),
        AMQPValue::ShortInt(n) => Number::Int(n.into()),
        AMQPValue::ShortUInt(n) => Number::Int(n.into()),
        AMQPValue::LongInt(n) => Number::Int(n.into()),
        AMQPValue::LongUInt(n) => Number::Int(n.into()),
        AMQPValue::LongLongInt(n) => Number::Int(n.into()),
        AMQPValue::Timestamp(n) => Number::Int(n.into()),
        AMQPValue::Float(f) => Number::Float(f.into()),
        AMQPValue::Double(f) => Number::Float(f),
        _ => return None,
    })
}

/// Erlang's `==` between an integer and a float: exact numeric equality.
fn int_equals_float(i: i128, f: f64) -> bool {
    // `as` saturates, and |i| < 2^65, so a huge `f` cannot compare equal.
    f.fract() == 0.0 && f as i128 == i
}

/// Erlang's `==` between the decoded forms RabbitMQ gives two values
/// (`Value` in `{Name, Type, Value}`); types are ignored at this level.
fn erlang_equal(a: &AMQPValue, b: &AMQPValue) -> bool {
    use AMQPValue as V;
    if let (Some(x), Some(y)) = (number(a), number(b)) {
        return match (x, y) {
            (Number::Int(x), Number::Int(y)) => x == y,
            (Number::Float(x), Number::Float(y)) => x == y,
            (Number::Int(i), Number::Float(f)) | (Number::Float(f), Number::Int(i)) => {
                int_equals_float(i, f)
            }
        };
    }
    if let (Some(x), Some(y)) = (binary_bytes(a), binary_bytes(b)) {
        return x == y;
    }
    match (a, b) {
        (V::Boolean(x), V::Boolean(y)) => x == y,
        (V::Void, V::Void) => true,
        (V::DecimalValue(x), V::DecimalValue(y)) => x.scale == y.scale && x.value == y.value,
        // Arrays are lists of {Type, Value}.
        (V::FieldArray(x), V::FieldArray(y)) => {
            let (x, y) = (x.as_slice(), y.as_slice());
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| typed_equal(x, y))
        }
        // Tables are lists of {Name, Type, Value}.
        (V::FieldTable(x), V::FieldTable(y)) => {
            let (x, y) = (x.inner(), y.inner());
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kx, x), (ky, y))| kx == ky && typed_equal(x, y))
        }
        // Both are Erlang lists: only the empty ones are equal.
        (V::FieldArray(x), V::FieldTable(y)) | (V::FieldTable(y), V::FieldArray(x)) => {
            x.as_slice().is_empty() && y.inner().is_empty()
        }
        _ => false,
    }
}

/// Erlang's `==` between `{Type, Value}` tuples (array elements and table
/// entries).
fn typed_equal(a: &AMQPValue, b: &AMQPValue) -> bool {
    crate::args::type_name(a) == crate::args::type_name(b) && erlang_equal(a, b)
}

/// Values RabbitMQ decodes to an Erlang binary.
fn binary_bytes(value: &AMQPValue) -> Option<&[u8]> {
    match value {
        AMQPValue::ByteArray(b) => Some(b.as_slice()),
        _ => string_bytes(value),
    }
}

// ---------------------------------------------------------------------------
// Erlang `~p` printing of decoded values, for the reply texts.
//
// This follows the layout rules of Erlang/OTP's `io_lib_pretty` (line
// length 80, the column where the term starts, Latin-1 strings) for the few
// kinds of terms a decoded AMQP value is made of: atoms, integers, floats,
// binaries, and lists of tuples.

/// Line length used by `io_lib:format("~p")`.
const LINE: i64 = 80;

/// A term ready for layout, with its one-line length (Erlang's
/// intermediate format from `print_length`).
#[derive(Debug)]
struct Pretty {
    kind: Kind,
    len: i64,
}

#[derive(Debug)]
enum Kind {
    /// Always printed as is: atoms, numbers, `[]`, `<<>>` and binaries
    /// printed as strings.
    Text(Vec<u8>),
    /// A binary printed as byte values, `<<1,2,3>>`, which may wrap.
    Bytes(Vec<String>),
    List(Vec<Pretty>),
    /// `tagged` when the first element is an atom.
    Tuple {
        tagged: bool,
        items: Vec<Pretty>,
    },
}

impl Pretty {
    fn text(s: impl Into<Vec<u8>>) -> Self {
        let s = s.into();
        Pretty {
            len: s.len() as i64,
            kind: Kind::Text(s),
        }
    }

    fn seq(items: &[Pretty]) -> i64 {
        2 + items.iter().map(|p| p.len + 1).sum::<i64>() - 1
    }

    fn list(items: Vec<Pretty>) -> Self {
        if items.is_empty() {
            return Pretty::text("[]");
        }
        Pretty {
            len: Self::seq(&items),
            kind: Kind::List(items),
        }
    }

    fn tuple(tagged: bool, items: Vec<Pretty>) -> Self {
        Pretty {
            len: Self::seq(&items),
            kind: Kind::Tuple { tagged, items },
        }
    }

    fn is_text(&self) -> bool {
        matches!(self.kind, Kind::Text(_))
    }

    /// `Len < Ll - Col - LD, Len + W + LD =< M`: fits on the rest of the line.
    fn fits(&self, col: i64, m: i64, ld: i64, w: i64) -> bool {
        self.len < LINE - col - ld && self.len + w + ld <= m
    }

    /// The condition for writing a further list element on the same line.
    fn fits_after(&self, col: i64, m: i64, ld: i64, w: i64) -> bool {
        let elen = 1 + self.len;
        self.is_text()
            && if ld == 0 {
                elen + 1 < LINE - col && w + elen < m
            } else {
                elen < LINE - col - ld && w + elen + ld <= m
            }
    }
}

/// The decoded form of a value, as RabbitMQ prints it.
fn pretty_value(value: &AMQPValue) -> Pretty {
    match value {
        AMQPValue::Boolean(b) => Pretty::text(if *b { "true" } else { "false" }),
        AMQPValue::Void => Pretty::text("undefined"),
        AMQPValue::DecimalValue(d) => Pretty::tuple(
            false,
            vec![
                Pretty::text(d.scale.to_string()),
                Pretty::text(d.value.to_string()),
            ],
        ),
        AMQPValue::FieldArray(items) => Pretty::list(
            items
                .as_slice()
                .iter()
                .map(|v| {
                    Pretty::tuple(
                        true,
                        vec![Pretty::text(crate::args::type_name(v)), pretty_value(v)],
                    )
                })
                .collect(),
        ),
        AMQPValue::FieldTable(table) => Pretty::list(
            table
                .inner()
                .iter()
                .map(|(k, v)| {
                    let key = pretty_binary(k.as_str().as_bytes());
                    Pretty::tuple(
                        false,
                        vec![
                            key,
                            Pretty::text(crate::args::type_name(v)),
                            pretty_value(v),
                        ],
                    )
                })
                .collect(),
        ),
        _ => match (number(value), binary_bytes(value)) {
            (Some(Number::Int(i)), _) => Pretty::text(i.to_string()),
            (Some(Number::Float(f)), _) => Pretty::text(erlang_float(f)),
            (None, Some(bytes)) => pretty_binary(bytes),
            (None, None) => Pretty::text(""),
        },
    }
}

/// Erlang's `io_lib:printable_latin1_list/1`, for one byte.
fn printable_latin1(b: u8) -> bool {
    matches!(b, 0x20..=0x7e | 0xa0..=0xff | b'\n' | b'\r' | b'\t' | 0x0b | 0x08 | 0x0c | 0x1b)
}

/// A binary: `<<"text">>` (escaped) when every byte is printable Latin-1,
/// else its byte values.
fn pretty_binary(bytes: &[u8]) -> Pretty {
    if bytes.is_empty() {
        return Pretty::text("<<>>");
    }
    if !bytes.iter().all(|&b| printable_latin1(b)) {
        let items: Vec<String> = bytes.iter().map(u8::to_string).collect();
        return Pretty {
            len: 4 + items.iter().map(|s| s.len() as i64 + 1).sum::<i64>() - 1,
            kind: Kind::Bytes(items),
        };
    }
    let mut s = b"<<\"".to_vec();
    for &b in bytes {
        let escaped: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x0b => b"\\v",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x1b => b"\\e",
            _ => std::slice::from_ref(&b),
        };
        s.extend_from_slice(escaped);
    }
    s.extend_from_slice(b"\">>");
    Pretty::text(s)
}

/// Appends `value` printed with `~p`, the term starting at the current
/// column of `out` (which holds one formatted message, no prefix).
fn write_term(out: &mut Vec<u8>, value: &AMQPValue) {
    let p = pretty_value(value);
    let start = out.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    // io_lib_pretty columns are 1-based.
    let col = (out.len() - start) as i64 + 1;
    if p.is_text() || p.len < LINE - col {
        write_flat(out, &p);
        return;
    }
    let m = p.len;
    let tind = [-1, 4]
        .into_iter()
        .find(|&ind| cind(&p, col, m, ind, 0, 0).is_ok())
        .unwrap_or(1);
    pp(out, &p, col, m, tind, col - 1, 0, 0);
}

fn write_flat(out: &mut Vec<u8>, p: &Pretty) {
    match &p.kind {
        Kind::Text(s) => out.extend_from_slice(s),
        Kind::Bytes(items) => {
            out.extend_from_slice(b"<<");
            out.extend_from_slice(items.join(",").as_bytes());
            out.extend_from_slice(b">>");
        }
        Kind::List(items) | Kind::Tuple { items, .. } => {
            let (open, close) = if matches!(p.kind, Kind::List(_)) {
                (b'[', b']')
            } else {
                (b'{', b'}')
            };
            out.push(open);
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_flat(out, item);
            }
            out.push(close);
        }
    }
}

fn last_depth(more: bool, ld: i64) -> i64 {
    if more {
        0
    } else {
        ld + 1
    }
}

/// The term could not be laid out with that tuple indentation
/// (`throw(no_good)` in `cind`).
struct NoGood;

/// `cind/7`: can the term be laid out with tuple indentation `ind`?
fn cind(p: &Pretty, col: i64, m: i64, ind: i64, ld: i64, w: i64) -> Result<(), NoGood> {
    if p.fits(col, m, ld, w) {
        return Ok(());
    }
    match &p.kind {
        Kind::List(items)
        | Kind::Tuple {
            tagged: false,
            items,
        } => cind_list(items, col + 1, m, ind, ld, w + 1),
        Kind::Tuple {
            tagged: true,
            items,
        } => {
            let (tag, rest) = items.split_first().ok_or(NoGood)?;
            let tag_ind = tag.len + 2;
            let tcol = col + tag_ind;
            let w = w + 1;
            if ind > 0 && tag_ind > ind {
                let col1 = col + ind;
                if m + col1 <= LINE || col1 <= LINE / 2 {
                    cind_tail(rest, col1, tcol, m, ind, ld, w + tag.len)
                } else {
                    Err(NoGood)
                }
            } else if m + tcol < LINE || tcol < LINE / 2 {
                cind_list(rest, tcol, m, ind, ld, w + tag.len + 1)
            } else {
                Err(NoGood)
            }
        }
        Kind::Text(_) | Kind::Bytes(_) => Ok(()),
    }
}

fn cind_list(items: &[Pretty], col0: i64, m: i64, ind: i64, ld: i64, w: i64) -> Result<(), NoGood> {
    let Some((first, rest)) = items.split_first() else {
        return Ok(());
    };
    let we = cind_element(first, col0, m, ind, last_depth(!rest.is_empty(), ld), w)?;
    cind_tail(rest, col0, col0 + we, m, ind, ld, w + we)
}

fn cind_tail(
    items: &[Pretty],
    col0: i64,
    mut col: i64,
    m: i64,
    ind: i64,
    ld: i64,
    mut w: i64,
) -> Result<(), NoGood> {
    for (i, e) in items.iter().enumerate() {
        let ld1 = last_depth(i + 1 < items.len(), ld);
        if e.fits_after(col, m, ld1, w) {
            col += 1 + e.len;
            w += 1 + e.len;
        } else {
            let we = cind_element(e, col0, m, ind, ld1, 0)?;
            col = col0 + we;
            w = we;
        }
    }
    Ok(())
}

fn cind_element(e: &Pretty, col: i64, m: i64, ind: i64, ld: i64, w: i64) -> Result<i64, NoGood> {
    if e.is_text() && e.fits(col, m, ld, w) {
        Ok(e.len)
    } else {
        cind(e, col, m, ind, ld, w)?;
        Ok(LINE)
    }
}

/// `pp/8`: lays the term out from column `col`; `ind` is the indentation
/// of continuation lines, `tind` the tuple indentation chosen by `cind`.
#[allow(clippy::too_many_arguments)]
fn pp(out: &mut Vec<u8>, p: &Pretty, col: i64, m: i64, tind: i64, ind: i64, ld: i64, w: i64) {
    if p.fits(col, m, ld, w) {
        write_flat(out, p);
        return;
    }
    match &p.kind {
        Kind::List(items) => {
            out.push(b'[');
            pp_list(out, items, col + 1, m, tind, ind + 1, ld, w + 1);
            out.push(b']');
        }
        Kind::Tuple {
            tagged: false,
            items,
        } => {
            out.push(b'{');
            pp_list(out, items, col + 1, m, tind, ind + 1, ld, w + 1);
            out.push(b'}');
        }
        Kind::Tuple {
            tagged: true,
            items,
        } => {
            out.push(b'{');
            if let Some((tag, rest)) = items.split_first() {
                let tag_ind = tag.len + 2;
                let tcol = col + tag_ind;
                let w = w + 1;
                write_flat(out, tag);
                if tind > 0 && tag_ind > tind {
                    pp_tail(
                        out,
                        rest,
                        col + tind,
                        tcol,
                        m,
                        tind,
                        ind + tind,
                        ld,
                        w + tag.len,
                    );
                } else {
                    out.push(b',');
                    pp_list(out, rest, tcol, m, tind, ind + tag_ind, ld, w + tag.len + 1);
                }
            }
            out.push(b'}');
        }
        Kind::Bytes(items) => pp_bytes(out, items, col + 2, m, ind + 2, ld, w),
        Kind::Text(s) => out.extend_from_slice(s),
    }
}

#[allow(clippy::too_many_arguments)]
fn pp_list(
    out: &mut Vec<u8>,
    items: &[Pretty],
    col0: i64,
    m: i64,
    tind: i64,
    ind: i64,
    ld: i64,
    w: i64,
) {
    let Some((first, rest)) = items.split_first() else {
        return;
    };
    let we = pp_element(
        out,
        first,
        col0,
        m,
        tind,
        ind,
        last_depth(!rest.is_empty(), ld),
        w,
    );
    pp_tail(out, rest, col0, col0 + we, m, tind, ind, ld, w + we);
}

#[allow(clippy::too_many_arguments)]
fn pp_tail(
    out: &mut Vec<u8>,
    items: &[Pretty],
    col0: i64,
    mut col: i64,
    m: i64,
    tind: i64,
    ind: i64,
    ld: i64,
    mut w: i64,
) {
    for (i, e) in items.iter().enumerate() {
        let ld1 = last_depth(i + 1 < items.len(), ld);
        out.push(b',');
        if e.fits_after(col, m, ld1, w) {
            write_flat(out, e);
            col += 1 + e.len;
            w += 1 + e.len;
        } else {
            newline(out, ind);
            let we = pp_element(out, e, col0, m, tind, ind, ld1, 0);
            col = col0 + we;
            w = we;
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn pp_element(
    out: &mut Vec<u8>,
    e: &Pretty,
    col: i64,
    m: i64,
    tind: i64,
    ind: i64,
    ld: i64,
    w: i64,
) -> i64 {
    if e.is_text() && e.fits(col, m, ld, w) {
        write_flat(out, e);
        e.len
    } else {
        pp(out, e, col, m, tind, ind, ld, w);
        LINE
    }
}

/// `pp_binary/7`: byte values filled into lines of at most `n0` columns.
fn pp_bytes(out: &mut Vec<u8>, items: &[String], col: i64, m: i64, ind: i64, ld: i64, w: i64) {
    let n0 = 8.max((LINE - col).min(m - 4 - w) - ld);
    let mut n = n0;
    out.extend_from_slice(b"<<");
    for (i, item) in items.iter().enumerate() {
        let len = item.len() as i64;
        if i + 1 < items.len() {
            if n - (len + 1) < 0 {
                newline(out, ind);
                n = n0 - (len + 1);
            } else {
                n -= len + 1;
            }
            out.extend_from_slice(item.as_bytes());
            out.push(b',');
        } else {
            if len > n {
                newline(out, ind);
            }
            out.extend_from_slice(item.as_bytes());
        }
    }
    out.extend_from_slice(b">>");
}

fn newline(out: &mut Vec<u8>, ind: i64) {
    out.push(b'\n');
    out.resize(out.len() + ind.max(0) as usize, b' ');
}

/// A float as Erlang/OTP prints it (`float_to_list(F, [short])`): the
/// shortest digits that read back to the same value (the closest such, ties
/// to even), in plain or scientific notation, whichever is shorter (plain
/// on a tie), except that a magnitude of 2^53 or more is always scientific:
/// `1.0`, `0.1`, `100.0`, `1.0e3`, `1.0e-5`, `9.007199254740992e15`.
fn erlang_float(f: f64) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    if !f.is_finite() {
        // Not representable in Erlang; RabbitMQ cannot receive these.
        return format!("{f}");
    }
    let (digits, exp) = shortest_digits(f.abs());
    let scientific = {
        let frac = if digits.len() > 1 { &digits[1..] } else { "0" };
        format!("{}.{frac}e{exp}", &digits[..1])
    };
    let plain = if exp >= 0 {
        let int_len = exp as usize + 1;
        if digits.len() > int_len {
            format!("{}.{}", &digits[..int_len], &digits[int_len..])
        } else {
            format!("{digits}{}.0", "0".repeat(int_len - digits.len()))
        }
    } else {
        format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
    };
    let sign = if f < 0.0 { "-" } else { "" };
    if f.abs() >= 9_007_199_254_740_992.0 || scientific.len() < plain.len() {
        format!("{sign}{scientific}")
    } else {
        format!("{sign}{plain}")
    }
}

/// The shortest significant digits identifying a positive finite `f`, and
/// the decimal exponent of the first one. Among candidates of that length,
/// the one closest to `f` wins, ties going to the even digit (Ryu's choice,
/// which Erlang uses; Rust's shortest formatting may round a tie up).
fn shortest_digits(f: f64) -> (String, i32) {
    let split = |s: &str| -> (String, i32) {
        let (mantissa, exp) = s.split_once('e').unwrap_or((s, "0"));
        let digits = mantissa.chars().filter(|c| *c != '.').collect();
        (digits, exp.parse().unwrap_or(0))
    };
    let (digits, exp) = split(&format!("{f:e}"));
    // Rounding exactly to that many digits gives the closest candidate,
    // ties to even; keep it if it still reads back as `f`.
    let exact = format!("{f:.*e}", digits.len() - 1);
    if exact.parse::<f64>() == Ok(f) {
        split(&exact)
    } else {
        (digits, exp)
    }
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

    #[test]
    fn erlang_float_format() {
        // Checked with io_lib:format("~p") on Erlang/OTP 25.
        for (f, want) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (1e20, "1.0e20"),
            (123456789.0, "123456789.0"),
            (1e-5, "1.0e-5"),
            (0.001, "0.001"),
            (0.0001, "0.0001"),
            (3.25, "3.25"),
            (1e15, "1.0e15"),
            (12345678901234567890.0, "1.2345678901234567e19"),
            (-2.5, "-2.5"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.5e300, "1.5e300"),
            (5e-324, "5.0e-324"),
            (100.0, "100.0"),
            (0.001234, "0.001234"),
            (1234567.0, "1234567.0"),
            (0.000123456, "1.23456e-4"),
            (1000.0, "1.0e3"),
            (0.01, "0.01"),
            (123.456, "123.456"),
            (1.7976931348623157e308, "1.7976931348623157e308"),
            (0.30000000000000004, "0.30000000000000004"),
            (256.0, "256.0"),
        ] {
            assert_eq!(erlang_float(f), want, "{f:e}");
        }
    }
}
