//! The store's settings.

/// Store settings.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Sync the WAL before completing a batch (what makes a confirm mean "on disk").
    pub sync: bool,
    /// Compress stored data with LZ4 (Zstd for the bottom level).
    pub compression: bool,
    /// RocksDB block cache, bytes.
    pub block_cache_bytes: usize,
    /// RocksDB memtable size, bytes.
    pub write_buffer_bytes: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            sync: true,
            compression: true,
            block_cache_bytes: 16 << 20,
            write_buffer_bytes: 8 << 20,
        }
    }
}
