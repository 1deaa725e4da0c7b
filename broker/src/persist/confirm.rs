//! Publisher confirms that wait for store writes.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use storage::Completion;

/// Called once with `true` if every write succeeded.
type OnDone = Box<dyn FnOnce(bool) + Send>;

/// Counts the store writes one publish waits for.
pub struct ConfirmWait {
    remaining: AtomicUsize,
    failed: AtomicBool,
    on_done: Mutex<Option<OnDone>>,
}

impl std::fmt::Debug for ConfirmWait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfirmWait")
            .field("remaining", &self.remaining)
            .finish()
    }
}

impl ConfirmWait {
    /// A wait held by its creator (released with [`ConfirmWait::release`]).
    pub fn new(on_done: impl FnOnce(bool) + Send + 'static) -> Arc<Self> {
        Arc::new(ConfirmWait {
            remaining: AtomicUsize::new(1),
            failed: AtomicBool::new(false),
            on_done: Mutex::new(Some(Box::new(on_done))),
        })
    }

    /// A completion for one more store write to wait for.
    pub fn completion(self: &Arc<Self>) -> Completion {
        self.remaining.fetch_add(1, Ordering::AcqRel);
        let me = self.clone();
        Box::new(move |r| {
            if r.is_err() {
                me.failed.store(true, Ordering::Release);
            }
            if me.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                me.fire();
            }
        })
    }

    /// Marks the publish as failed (a queue refused it): its confirm will be a nack.
    pub fn fail(&self) {
        self.failed.store(true, Ordering::Release);
    }

    fn fire(&self) {
        let f = self
            .on_done
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(f) = f {
            f(!self.failed.load(Ordering::Acquire));
        }
    }

    /// Drops the creator's hold. `Some(ok)` if nothing is outstanding any more (the callback is then
    /// not called); `None` if writes are still in flight (the callback will say how they went).
    pub fn release(&self) -> Option<bool> {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.on_done
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            Some(!self.failed.load(Ordering::Acquire))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn confirm_wait_fires_once_after_the_last_write() {
        let (tx, rx) = mpsc::channel();
        let w = ConfirmWait::new(move |ok| tx.send(ok).unwrap());
        let a = w.completion();
        let b = w.completion();
        assert_eq!(w.release(), None);
        a(Ok(()));
        assert!(rx.try_recv().is_err());
        b(Err(storage::StoreError::Closed));
        assert_eq!(rx.try_recv(), Ok(false));
    }

    #[test]
    fn confirm_wait_without_writes_is_done_at_release() {
        let w = ConfirmWait::new(|_| panic!("not called when nothing was written"));
        assert_eq!(w.release(), Some(true));
    }
}
