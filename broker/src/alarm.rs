//! Resource alarms, as RabbitMQ's: while free disk space under the data directory is below
//! `disk_free_limit`, or the broker's memory (resident set) is above `vm_memory_high_watermark`,
//! or after a store write failed, connections that publish are blocked
//! (connection.blocked to clients that support it; their sockets are not read) until the alarm
//! clears. Messages already confirmed are never at risk: a failed write is nacked, and RocksDB's
//! write-ahead log keeps the store consistent.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use storage::Store;
use tokio::sync::watch;
use tracing::{error, info, warn};

/// How often free space is measured (and a failed store is probed).
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The broker's alarms.
#[derive(Debug)]
pub struct Alarms {
    disk: AtomicBool,
    memory: AtomicBool,
    store: AtomicBool,
    /// The memory high watermark in bytes (`u64::MAX`: none), changeable at run time.
    memory_limit: AtomicU64,
    tx: watch::Sender<bool>,
}

impl Default for Alarms {
    fn default() -> Self {
        Alarms {
            disk: AtomicBool::new(false),
            memory: AtomicBool::new(false),
            store: AtomicBool::new(false),
            memory_limit: AtomicU64::new(u64::MAX),
            tx: watch::channel(false).0,
        }
    }
}

impl Alarms {
    /// True while publishers must be blocked.
    pub fn active(&self) -> bool {
        *self.tx.borrow()
    }

    /// Changes of [`Alarms::active`].
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.tx.subscribe()
    }

    /// The reason clients are told in connection.blocked (RabbitMQ's words).
    pub fn reason(&self) -> &'static str {
        if self.memory.load(Ordering::Acquire) {
            "low on memory"
        } else {
            "low on disk"
        }
    }

    /// The alarms in effect, by RabbitMQ's resource names (`disk`, `memory`); a failed store
    /// counts as `disk`.
    pub fn in_effect(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.disk.load(Ordering::Acquire) || self.store.load(Ordering::Acquire) {
            out.push("disk");
        }
        if self.memory.load(Ordering::Acquire) {
            out.push("memory");
        }
        out
    }

    /// The memory high watermark in bytes (`u64::MAX`: none).
    pub fn memory_limit(&self) -> u64 {
        self.memory_limit.load(Ordering::Acquire)
    }

    /// Sets the memory high watermark (bytes); the monitor applies it within a second.
    pub fn set_memory_limit(&self, bytes: u64) {
        self.memory_limit.store(bytes, Ordering::Release);
    }

    fn set(&self, flag: &AtomicBool, on: bool) {
        flag.store(on, Ordering::Release);
        let any = self.disk.load(Ordering::Acquire)
            || self.memory.load(Ordering::Acquire)
            || self.store.load(Ordering::Acquire);
        self.tx.send_if_modified(|cur| {
            let changed = *cur != any;
            *cur = any;
            changed
        });
    }
}

/// The watermark as configured: a fraction of the machine's memory, or bytes.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Watermark {
    /// A fraction of total memory (RabbitMQ's default: 0.4).
    Relative(f64),
    /// Bytes.
    Absolute(u64),
}

impl Watermark {
    /// The limit in bytes on this machine.
    pub fn bytes(self) -> u64 {
        match self {
            Watermark::Absolute(b) => b,
            Watermark::Relative(f) => total_memory().map_or(u64::MAX, |t| (t as f64 * f) as u64),
        }
    }
}

/// The machine's memory in bytes (`MemTotal`).
pub(crate) fn total_memory() -> Option<u64> {
    meminfo_kib("/proc/meminfo", "MemTotal:").map(|k| k * 1024)
}

/// This process's resident memory in bytes (`VmRSS`).
pub(crate) fn resident_memory() -> Option<u64> {
    meminfo_kib("/proc/self/status", "VmRSS:").map(|k| k * 1024)
}

fn meminfo_kib(path: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// Bytes available to unprivileged users on the filesystem holding `path`.
pub(crate) fn free_bytes(path: &Path) -> Option<u64> {
    fs4::available_space(path).ok()
}

/// What the alarm monitor watches.
#[derive(Debug)]
pub(crate) struct Watched {
    /// The alarms it raises and clears (it stops once they are gone with the broker).
    pub alarms: Weak<Alarms>,
    /// The store whose failures it watches.
    pub store: Arc<Store>,
    /// Where free space is measured.
    pub data_dir: PathBuf,
    /// `disk_free_limit` in bytes (0: no disk alarm).
    pub disk_free_limit: u64,
}

/// Watches free disk space and store failures until the broker goes away.
pub(crate) async fn monitor(w: Watched) {
    let mut seen_failures = 0;
    loop {
        let Some(alarms) = w.alarms.upgrade() else {
            return;
        };
        let limit = w.disk_free_limit;
        if limit > 0 {
            if let Some(free) = free_bytes(&w.data_dir) {
                let low = free < limit;
                if low != alarms.disk.load(Ordering::Acquire) {
                    if low {
                        warn!("free disk space is insufficient. Free bytes: {free}. Limit: {limit}; publishers are blocked");
                    } else {
                        info!("free disk space alarm cleared. Free bytes: {free}. Limit: {limit}");
                    }
                    alarms.set(&alarms.disk, low);
                }
            }
        }
        let mem_limit = alarms.memory_limit.load(Ordering::Acquire);
        if let Some(used) = resident_memory() {
            let high = used > mem_limit;
            if high != alarms.memory.load(Ordering::Acquire) {
                if high {
                    warn!("vm_memory_high_watermark set. Memory used:{used} allowed:{mem_limit}; memory resource limit alarm set, publishers are blocked");
                } else {
                    info!("vm_memory_high_watermark clear. Memory used:{used} allowed:{mem_limit}; memory resource limit alarm cleared");
                }
                alarms.set(&alarms.memory, high);
            }
        }
        let failures = w.store.failed_writes();
        if failures != seen_failures && !alarms.store.load(Ordering::Acquire) {
            error!("store writes are failing; publishers are blocked until a write succeeds");
            alarms.set(&alarms.store, true);
        }
        seen_failures = failures;
        if alarms.store.load(Ordering::Acquire) && !alarms.disk.load(Ordering::Acquire) {
            let store = w.store.clone();
            let ok = tokio::task::spawn_blocking(move || store.probe())
                .await
                .unwrap_or(false);
            if ok {
                seen_failures = w.store.failed_writes();
                info!("store writes succeed again; store alarm cleared");
                alarms.set(&alarms.store, false);
            }
        }
        drop(alarms);
        tokio::time::sleep(CHECK_EVERY).await;
    }
}

/// The process's descriptor limit (`Max open files`), 1024 if it cannot be read.
pub(crate) fn max_fds() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(1024)
}

/// The process's open file descriptors.
pub(crate) fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}
