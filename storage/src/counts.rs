//! What the `counts` column family holds: a queue's counters, their encoding, and the merge
//! operator that keeps them (the writer merges changes, start-up and readers decode).

/// A queue's counters: message count and body bytes (summed), and the highest sequence ever
/// delivered (maximum). Kept by a merge operator, so updates never read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub count: i64,
    pub bytes: i64,
    pub delivered: u64,
}

impl Counts {
    pub(crate) fn encode(self) -> [u8; 24] {
        let mut v = [0u8; 24];
        v[..8].copy_from_slice(&self.count.to_be_bytes());
        v[8..16].copy_from_slice(&self.bytes.to_be_bytes());
        v[16..].copy_from_slice(&self.delivered.to_be_bytes());
        v
    }

    pub(crate) fn decode(v: &[u8]) -> Counts {
        if v.len() != 24 {
            return Counts::default();
        }
        Counts {
            count: i64::from_be_bytes(v[..8].try_into().expect("8")),
            bytes: i64::from_be_bytes(v[8..16].try_into().expect("8")),
            delivered: u64::from_be_bytes(v[16..].try_into().expect("8")),
        }
    }
}

/// An encoded change of count and bytes (no delivery mark).
pub(crate) fn count_delta(count: i64, bytes: i64) -> [u8; 24] {
    Counts {
        count,
        bytes,
        delivered: 0,
    }
    .encode()
}

/// The `counts` merge operator: sums counts and bytes, keeps the highest delivered mark.
pub(crate) fn merge_counts(
    _key: &[u8],
    existing: Option<&[u8]>,
    operands: &rocksdb::MergeOperands,
) -> Option<Vec<u8>> {
    let mut acc = existing.map(Counts::decode).unwrap_or_default();
    for op in operands {
        let d = Counts::decode(op);
        acc.count += d.count;
        acc.bytes += d.bytes;
        acc.delivered = acc.delivered.max(d.delivered);
    }
    Some(acc.encode().to_vec())
}
