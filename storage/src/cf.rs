//! The column families' names: the one place that every other file takes them from.

/// Format marker.
pub(crate) const CF_META: &str = "meta";
/// Definitions: vhosts, exchanges, queues, bindings.
pub(crate) const CF_DEFS: &str = "defs";
/// Messages that survive a restart, keyed by `(queue id, sequence)`.
pub(crate) const CF_MSGS: &str = "msgs";
/// Records written only to page messages out of memory that do not survive a restart (transient
/// messages, messages of non-durable queues): emptied at start-up, counted nowhere.
pub(crate) const CF_TMSGS: &str = "tmsgs";
/// Per-queue counters, kept by a merge operator.
pub(crate) const CF_COUNTS: &str = "counts";
/// Shared bodies.
pub(crate) const CF_BODIES: &str = "bodies";
/// Reference counts of shared bodies.
pub(crate) const CF_REFS: &str = "refs";
/// Which record points at which shared body.
pub(crate) const CF_QREFS: &str = "qrefs";
/// Every column family.
pub(crate) const ALL_CFS: [&str; 8] = [
    CF_META, CF_DEFS, CF_MSGS, CF_TMSGS, CF_COUNTS, CF_BODIES, CF_REFS, CF_QREFS,
];
