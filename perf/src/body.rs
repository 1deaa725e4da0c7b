//! Message bodies: zeros (the default, as in earlier runs) or incompressible bytes.
//!
//! A broker that compresses what it stores (Warren's blob files do) writes almost nothing for a
//! body of zeros, so persistent figures taken with zeros flatter it against brokers that do not
//! compress. `--body random` gives every message different, incompressible bytes: a window into
//! a pool of pseudo-random bytes made once, at an offset that moves with each message, so that
//! building a body costs one copy and no generator work per message.

/// What a body is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum BodyKind {
    /// All zeros (after the 8-byte send time).
    Zeros,
    /// Pseudo-random bytes, different for each message.
    Random,
}

impl std::fmt::Display for BodyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BodyKind::Zeros => "zeros",
            BodyKind::Random => "random",
        })
    }
}

/// Bytes in the random pool beyond one body: the span the window moves over.
const POOL_SPAN: usize = 1 << 20;
/// How far the window moves per message: odd, so offsets do not repeat for POOL_SPAN messages.
const STEP: usize = 4099;

/// Makes the bodies of one producer.
pub(crate) struct Bodies {
    kind: BodyKind,
    pool: Vec<u8>,
    n: usize,
}

impl Bodies {
    /// Bodies of `size` bytes; `seed` makes producers' pools differ.
    pub(crate) fn new(kind: BodyKind, size: usize, seed: u64) -> Bodies {
        let pool = match kind {
            BodyKind::Zeros => Vec::new(),
            BodyKind::Random => {
                // xorshift64*: plenty for incompressible bytes, no dependency.
                let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                let mut pool = Vec::with_capacity(size + POOL_SPAN + 8);
                while pool.len() < size + POOL_SPAN {
                    x ^= x >> 12;
                    x ^= x << 25;
                    x ^= x >> 27;
                    pool.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
                }
                pool
            }
        };
        Bodies { kind, pool, n: 0 }
    }

    /// Fills `body` (its length is the body size) for the next message.
    pub(crate) fn fill(&mut self, body: &mut [u8]) {
        if self.kind == BodyKind::Random {
            let off = (self.n * STEP) % POOL_SPAN;
            body.copy_from_slice(&self.pool[off..off + body.len()]);
            self.n += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bodies_differ_from_message_to_message_and_zeros_stay_zero() {
        let mut r = Bodies::new(BodyKind::Random, 1024, 1);
        let (mut a, mut b) = (vec![0u8; 1024], vec![0u8; 1024]);
        r.fill(&mut a);
        r.fill(&mut b);
        assert_ne!(a, b);
        assert!(a.iter().filter(|&&x| x == 0).count() < 32);
        let mut z = Bodies::new(BodyKind::Zeros, 1024, 1);
        let mut c = vec![0u8; 1024];
        z.fill(&mut c);
        assert!(c.iter().all(|&x| x == 0));
    }
}
