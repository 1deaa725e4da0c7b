//! A non-recursive structural check of field tables, run on client bytes before `amq-protocol`
//! parses them.
//!
//! `amq-protocol` parses nested tables and arrays recursively, at about 1.3 KiB of stack per level,
//! so a 10 KB frame of nested arrays would overflow a 2 MiB task stack and abort the whole broker.
//! This walker uses an explicit stack and refuses nesting deeper than [`MAX_DEPTH`]; it also checks
//! every length and type tag, so what it accepts is well formed.

/// Deepest nesting of tables and arrays accepted (RabbitMQ clients use two or three levels).
pub const MAX_DEPTH: usize = 64;

/// The bytes are not a well-formed field table within the nesting limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed or too deeply nested field table")]
pub struct TableError;

fn take(b: &[u8], pos: &mut usize, n: usize, end: usize) -> Result<(), TableError> {
    let next = pos.checked_add(n).ok_or(TableError)?;
    if next > end || next > b.len() {
        return Err(TableError);
    }
    *pos = next;
    Ok(())
}

fn read_u32(b: &[u8], pos: &mut usize, end: usize) -> Result<usize, TableError> {
    let at = *pos;
    take(b, pos, 4, end)?;
    Ok(u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize)
}

/// Checks the field table (with its 4-byte length) at the start of `b`; returns its encoded length.
pub fn check_table(b: &[u8]) -> Result<usize, TableError> {
    let mut pos = 0;
    let len = read_u32(b, &mut pos, b.len())?;
    let end = pos
        .checked_add(len)
        .filter(|&e| e <= b.len())
        .ok_or(TableError)?;
    // (end of the enclosing table or array, whether it is an array)
    let mut stack: Vec<(usize, bool)> = vec![(end, false)];
    while let Some(&(end, is_array)) = stack.last() {
        if pos == end {
            stack.pop();
            continue;
        }
        if !is_array {
            let at = pos;
            take(b, &mut pos, 1, end)?;
            let key_len = b[at] as usize;
            take(b, &mut pos, key_len, end)?;
            // amq-protocol (and so our later parse of the headers) needs UTF-8 keys.
            std::str::from_utf8(&b[at + 1..pos]).map_err(|_| TableError)?;
        }
        let at = pos;
        take(b, &mut pos, 1, end)?;
        match b[at] {
            b't' | b'b' | b'B' => take(b, &mut pos, 1, end)?,
            b's' | b'u' | b'U' => take(b, &mut pos, 2, end)?,
            b'I' | b'i' | b'f' => take(b, &mut pos, 4, end)?,
            b'l' | b'L' | b'd' | b'T' => take(b, &mut pos, 8, end)?,
            b'D' => take(b, &mut pos, 5, end)?,
            b'V' => {}
            b'S' | b'x' => {
                let n = read_u32(b, &mut pos, end)?;
                take(b, &mut pos, n, end)?;
            }
            tag @ (b'F' | b'A') => {
                let n = read_u32(b, &mut pos, end)?;
                let inner_end = pos.checked_add(n).filter(|&e| e <= end).ok_or(TableError)?;
                if stack.len() >= MAX_DEPTH {
                    return Err(TableError);
                }
                stack.push((inner_end, tag == b'A'));
            }
            _ => return Err(TableError),
        }
    }
    Ok(end)
}

/// For the methods a server receives that carry a field table, checks that table. The layouts are
/// the fields before the table: `u16` ticket, short strings, and a bits octet.
pub fn check_method_tables(class_id: u16, method_id: u16, args: &[u8]) -> Result<(), TableError> {
    // Each field before the table: 2 = u16, 1 = bits octet, 0 = short string.
    let layout: &[u8] = match (class_id, method_id) {
        (10, 11) => &[],           // connection.start-ok: client-properties first
        (40, 10) => &[2, 0, 0, 1], // exchange.declare
        (40, 30) | (40, 40) => &[2, 0, 0, 0, 1], // exchange.bind / unbind
        (50, 10) => &[2, 0, 1],    // queue.declare
        (50, 20) => &[2, 0, 0, 0, 1], // queue.bind
        (50, 50) => &[2, 0, 0, 0], // queue.unbind
        (60, 20) => &[2, 0, 0, 1], // basic.consume
        _ => return Ok(()),
    };
    let mut pos = 0;
    for field in layout {
        match field {
            0 => {
                let at = pos;
                take(args, &mut pos, 1, args.len())?;
                take(args, &mut pos, args[at] as usize, args.len())?;
            }
            n => take(args, &mut pos, *n as usize, args.len())?,
        }
    }
    check_table(&args[pos..]).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested_arrays(levels: usize) -> Vec<u8> {
        let mut inner = b"V".to_vec();
        for _ in 0..levels {
            let mut next = vec![b'A'];
            next.extend_from_slice(&(inner.len() as u32).to_be_bytes());
            next.extend_from_slice(&inner);
            inner = next;
        }
        let mut t = ((2 + inner.len()) as u32).to_be_bytes().to_vec();
        t.extend_from_slice(&[1, b'k']);
        t.extend_from_slice(&inner);
        t
    }

    #[test]
    fn accepts_shallow_and_refuses_deep_nesting_without_recursion() {
        assert_eq!(check_table(&nested_arrays(10)).map(|_| ()), Ok(()));
        assert_eq!(check_table(&nested_arrays(MAX_DEPTH + 1)), Err(TableError));
        // Far deeper than any stack could take recursively.
        assert_eq!(check_table(&nested_arrays(20_000)), Err(TableError));
    }

    #[test]
    fn refuses_bad_lengths_and_tags() {
        assert_eq!(check_table(&[0, 0, 0, 5, 1]), Err(TableError));
        assert_eq!(check_table(&[0, 0, 0, 3, 1, b'k', b'?']), Err(TableError));
        assert_eq!(check_table(&[0, 0, 0, 0]), Ok(4));
    }
}
