//! The consistent-hash exchange (`x-consistent-hash`, RabbitMQ's plugin): each binding's key is a
//! weight; a destination gets that many points on a hash ring, and a message goes to the
//! destination owning the first point at or after the hash of its routing key (or of the header
//! named by the exchange's `hash-header` argument). The same key always lands on the same
//! destination while the bindings stay the same.

use super::Destination;

/// FNV-1a with a final mix, 32 bits: stable across runs and versions (so routing survives
/// restarts).
fn hash(parts: &[&[u8]]) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= *b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    // MurmurHash3's finaliser: FNV alone spreads similar inputs (ring points) poorly.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h as u32
}

/// Parses a binding key as a weight, with RabbitMQ's reply texts.
pub fn weight(key: &str) -> Result<u32, String> {
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

/// The ring of one exchange.
#[derive(Debug, Default)]
pub struct Ring {
    /// (point, destination), sorted by point.
    points: Vec<(u32, Destination)>,
}

impl Ring {
    /// Rebuilds the ring from the bindings, in binding order: (destination, weight). A destination
    /// bound more than once keeps the weight of its first binding, as the plugin does.
    pub fn rebuild<'a>(&mut self, bindings: impl Iterator<Item = (&'a Destination, u32)>) {
        self.points.clear();
        let mut seen: Vec<&Destination> = Vec::new();
        for (dest, w) in bindings {
            if seen.contains(&dest) {
                continue;
            }
            seen.push(dest);
            let (kind, name): (&[u8], &[u8]) = match dest {
                Destination::Queue(n) => (b"q", n.as_bytes()),
                Destination::Exchange(n) => (b"x", n.as_bytes()),
            };
            for i in 0..w.min(100_000) {
                self.points
                    .push((hash(&[kind, name, &i.to_be_bytes()]), dest.clone()));
            }
        }
        self.points.sort_by_key(|(p, _)| *p);
    }

    /// The destination for a hashed value.
    pub fn route(&self, value: &[u8]) -> Option<&Destination> {
        if self.points.is_empty() {
            return None;
        }
        let h = hash(&[value]);
        let i = self.points.partition_point(|(p, _)| *p < h);
        Some(&self.points[i % self.points.len()].1)
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
        r.rebuild([(&a, 10), (&b, 30)].into_iter());
        let mut to_b = 0;
        for i in 0..4000 {
            let k = format!("key-{i}");
            let d = r.route(k.as_bytes()).unwrap();
            assert_eq!(r.route(k.as_bytes()), Some(d));
            to_b += (d == &b) as u32;
        }
        assert!((2400..3600).contains(&to_b), "{to_b}");
    }
}
