//! Store errors.

use std::path::PathBuf;

/// What can go wrong with the store.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the data directory.
    #[error("data directory {0} is in use by another process (its LOCK file is held)")]
    Locked(PathBuf),
    /// The directory holds a store of another format version, or something that is not a Warren store.
    #[error("data directory {path} holds an incompatible store ({found}); expected {expected}. It was left untouched")]
    Incompatible {
        /// The store directory.
        path: PathBuf,
        /// What was found.
        found: String,
        /// What this version of Warren writes.
        expected: String,
    },
    /// A record that does not decode (corruption or a bug).
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// RocksDB reported an error (I/O, disk full, corruption detected by checksums).
    #[error("storage error: {0}")]
    Db(String),
    /// The writer thread has stopped.
    #[error("the store is closed")]
    Closed,
}

impl From<rocksdb::Error> for StoreError {
    fn from(e: rocksdb::Error) -> Self {
        StoreError::Db(e.into_string())
    }
}
