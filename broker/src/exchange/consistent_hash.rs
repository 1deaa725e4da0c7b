//! The consistent-hash exchange (`x-consistent-hash`, RabbitMQ's plugin): each binding's key is a
//! weight; a destination owns that many buckets, and a message goes to the owner of the bucket that
//! jump consistent hashing picks for the hash of its routing key (or of the header named by the
//! exchange's `hash-header` argument). The same key always lands on the same destination while
//! the bindings stay the same, and keys spread in proportion to the weights.

use super::Destination;

/// FNV-1a with MurmurHash3's final mix: stable across runs and versions (so routing survives
/// restarts).
fn hash(value: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in value {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

/// Jump consistent hash (Lamping and Veach): a bucket in `0..buckets`, uniform, and stable as
/// buckets are added at the end.
fn jump(mut key: u64, buckets: usize) -> usize {
    let (mut b, mut j): (i64, i64) = (-1, 0);
    while j < buckets as i64 {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b.max(0) as usize
}

/// Parses a binding key as a weight, with RabbitMQ's reply texts.
pub(crate) fn weight(key: &str) -> Result<u32, String> {
    let digits = key.strip_prefix(['+', '-']).unwrap_or(key);
    let n: Option<i64> = (!digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()))
        .then(|| key.parse().ok())
        .flatten();
    match n {
        // Erlang prints an empty binary as <<>>.
        None if key.is_empty() => Err("The binding key must be an integer: <<>>".into()),
        None => Err(format!("The binding key must be an integer: <<\"{key}\">>")),
        Some(n) if n <= 0 => Err("The binding key must be greater than 0".into()),
        Some(n) => Ok(n.min(u32::MAX as i64) as u32),
    }
}

/// The buckets of one exchange.
#[derive(Debug, Default)]
pub(crate) struct Ring {
    /// Bucket i belongs to `buckets[i]`.
    buckets: Vec<Destination>,
}

impl Ring {
    /// Rebuilds the buckets from the bindings, in binding order: (destination, weight). A
    /// destination bound more than once keeps the weight of its first binding, as the plugin does.
    pub(crate) fn rebuild<'a>(&mut self, bindings: impl Iterator<Item = (&'a Destination, u32)>) {
        self.buckets.clear();
        let mut seen: Vec<&Destination> = Vec::new();
        for (dest, w) in bindings {
            if seen.contains(&dest) {
                continue;
            }
            seen.push(dest);
            for _ in 0..w.min(100_000) {
                self.buckets.push(dest.clone());
            }
        }
    }

    /// The destination for a value (routing key or header).
    pub(crate) fn route(&self, value: &[u8]) -> Option<&Destination> {
        if self.buckets.is_empty() {
            return None;
        }
        self.buckets.get(jump(hash(value), self.buckets.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_follow_rabbitmq() {
        assert_eq!(weight("3"), Ok(3));
        assert_eq!(
            weight("abc"),
            Err("The binding key must be an integer: <<\"abc\">>".into())
        );
        assert_eq!(
            weight(" 2"),
            Err("The binding key must be an integer: <<\" 2\">>".into())
        );
        assert_eq!(
            weight("0"),
            Err("The binding key must be greater than 0".into())
        );
    }

    #[test]
    fn spreads_by_weight_and_sticks() {
        let a = Destination::Queue("a".into());
        let b = Destination::Queue("b".into());
        let mut r = Ring::default();
        r.rebuild([(&a, 1), (&b, 3)].into_iter());
        let mut to_b = 0;
        for i in 0..4000 {
            let k = format!("key-{i}");
            let d = r.route(k.as_bytes()).unwrap();
            assert_eq!(r.route(k.as_bytes()), Some(d));
            to_b += (d == &b) as u32;
        }
        assert!((2800..3200).contains(&to_b), "{to_b}");
    }
}
