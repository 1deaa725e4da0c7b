//! Field tables as raw bytes: reading the entries of an already validated table without building
//! `amq-protocol`'s `BTreeMap` (which loses the order of keys), and writing tables in a chosen order.
//!
//! RabbitMQ keeps the order of table entries in some places (the first `x-death` entry) and sorts
//! them in others; clients that check raw frames see the difference, so the broker writes these
//! tables itself.

/// Size of the value (tag included) at the start of `b`, which must be well formed (checked by
/// [`crate::table::check_table`]).
fn value_len(b: &[u8]) -> usize {
    let fixed = match b[0] {
        b't' | b'b' | b'B' => 1,
        b's' | b'u' | b'U' => 2,
        b'I' | b'i' | b'f' => 4,
        b'l' | b'L' | b'd' | b'T' => 8,
        b'D' => 5,
        b'V' => 0,
        _ => return 5 + u32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize,
    };
    1 + fixed
}

/// The entries of a well-formed table (with its 4-byte length): (key, raw value with its tag).
pub fn entries(table: &[u8]) -> Vec<(&str, &[u8])> {
    iter(table).collect()
}

/// [`entries`] without collecting them (no allocation: for checks on the publish path).
pub fn iter(table: &[u8]) -> impl Iterator<Item = (&str, &[u8])> {
    let end = 4 + u32::from_be_bytes([table[0], table[1], table[2], table[3]]) as usize;
    let mut pos = 4;
    std::iter::from_fn(move || {
        if pos >= end {
            return None;
        }
        let klen = table[pos] as usize;
        let key = std::str::from_utf8(&table[pos + 1..pos + 1 + klen]).unwrap_or("");
        pos += 1 + klen;
        let n = value_len(&table[pos..]);
        let value = &table[pos..pos + n];
        pos += n;
        Some((key, value))
    })
}

/// The items of a raw array value (`A` tag first), each a raw value with its tag.
pub fn array_items(value: &[u8]) -> Vec<&[u8]> {
    if value.first() != Some(&b'A') {
        return Vec::new();
    }
    let end = 5 + u32::from_be_bytes([value[1], value[2], value[3], value[4]]) as usize;
    let mut pos = 5;
    let mut out = Vec::new();
    while pos < end {
        let n = value_len(&value[pos..]);
        out.push(&value[pos..pos + n]);
        pos += n;
    }
    out
}

/// The table inside a raw `F` value (with its length), if it is one.
pub fn table_of(value: &[u8]) -> Option<&[u8]> {
    (value.first() == Some(&b'F')).then(|| &value[1..])
}

/// The text of a raw `S` value.
pub fn str_of(value: &[u8]) -> Option<&str> {
    if value.first() != Some(&b'S') {
        return None;
    }
    std::str::from_utf8(&value[5..]).ok()
}

/// The number in a raw integer value of any width.
pub fn int_of(value: &[u8]) -> Option<i64> {
    let v = &value[1..];
    Some(match value.first()? {
        b'b' => v[0] as i8 as i64,
        b'B' => v[0] as i64,
        b's' => i16::from_be_bytes([v[0], v[1]]) as i64,
        b'u' => u16::from_be_bytes([v[0], v[1]]) as i64,
        b'I' => i32::from_be_bytes([v[0], v[1], v[2], v[3]]) as i64,
        b'i' => u32::from_be_bytes([v[0], v[1], v[2], v[3]]) as i64,
        b'l' | b'L' | b'T' => i64::from_be_bytes(v[..8].try_into().ok()?),
        _ => return None,
    })
}

/// RabbitMQ's name of a raw value's type, as it appears in error texts (`longstr`, `signedint`).
pub fn type_name(value: &[u8]) -> &'static str {
    match value.first() {
        Some(b't') => "bool",
        Some(b'b') => "byte",
        Some(b'B') => "unsignedbyte",
        Some(b's') => "short",
        Some(b'u') => "unsignedshort",
        Some(b'I') => "signedint",
        Some(b'i') => "unsignedint",
        Some(b'l') => "long",
        Some(b'f') => "float",
        Some(b'd') => "double",
        Some(b'D') => "decimal",
        Some(b'S') => "longstr",
        Some(b'A') => "array",
        Some(b'T') => "timestamp",
        Some(b'F') => "table",
        Some(b'x') => "binary",
        Some(b'V') => "void",
        _ => "unknown",
    }
}

/// A raw long string value.
pub fn long_str(s: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(5 + s.len());
    v.push(b'S');
    v.extend_from_slice(&(s.len() as u32).to_be_bytes());
    v.extend_from_slice(s.as_bytes());
    v
}

/// A raw signed 64-bit value (`l`).
pub fn long(n: i64) -> Vec<u8> {
    let mut v = vec![b'l'];
    v.extend_from_slice(&n.to_be_bytes());
    v
}

/// A raw timestamp value (`T`, seconds).
pub fn timestamp(secs: u64) -> Vec<u8> {
    let mut v = vec![b'T'];
    v.extend_from_slice(&secs.to_be_bytes());
    v
}

/// A raw array value of raw items.
pub fn array<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut v = vec![b'A', 0, 0, 0, 0];
    for i in items {
        v.extend_from_slice(i);
    }
    let n = (v.len() - 5) as u32;
    v[1..5].copy_from_slice(&n.to_be_bytes());
    v
}

/// A table (with its length) of raw entries, in the given order.
pub fn table<'a>(entries: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Vec<u8> {
    let mut v = vec![0, 0, 0, 0];
    for (k, val) in entries {
        v.push(k.len().min(255) as u8);
        v.extend_from_slice(&k.as_bytes()[..k.len().min(255)]);
        v.extend_from_slice(val);
    }
    let n = (v.len() - 4) as u32;
    v[0..4].copy_from_slice(&n.to_be_bytes());
    v
}

/// A raw table value (`F` tag first).
pub fn table_value<'a>(entries: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Vec<u8> {
    let mut v = vec![b'F'];
    v.extend(table(entries));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_reads_back_in_order() {
        let s = long_str("v");
        let n = long(7);
        let inner = table_value([("z", &s[..]), ("a", &n[..])]);
        let arr = array([&inner[..], &s[..]]);
        let t = table([("k", &arr[..]), ("b", &n[..])]);
        assert_eq!(crate::table::check_table(&t), Ok(t.len()));
        let e = entries(&t);
        assert_eq!(e.iter().map(|(k, _)| *k).collect::<Vec<_>>(), ["k", "b"]);
        let items = array_items(e[0].1);
        assert_eq!(items.len(), 2);
        let inner_entries = entries(table_of(items[0]).unwrap());
        assert_eq!(inner_entries[0].0, "z");
        assert_eq!(str_of(inner_entries[0].1), Some("v"));
        assert_eq!(int_of(inner_entries[1].1), Some(7));
    }
}
