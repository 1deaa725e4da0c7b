//! confirm.select and publisher confirms.
//!
//! Every publish on a channel in confirm mode gets the next sequence number. A publish that wrote
//! nothing to the store is confirmed at once; one that did is `pending` until the store's completion
//! comes back as a connection event. After each batch of work the channel announces the longest run
//! of settled sequence numbers with one `basic.ack(multiple)`; a write that failed gets a `basic.nack`.

use super::Channel;
use super::{ConnEvent, EventSender};
use crate::error::{AmqpError, AmqpResult};
use crate::persist::ConfirmWait;
use amqp_codec::protocol::{basic as b, confirm};
use amqp_codec::AMQPClass;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

static INSTANCES: AtomicU64 = AtomicU64::new(1);

/// A unique id for a channel instance.
pub(super) fn next_instance() -> u64 {
    INSTANCES.fetch_add(1, Ordering::Relaxed)
}

/// Confirm bookkeeping of a channel.
#[derive(Debug, Default)]
pub(crate) struct Confirms {
    /// Sequence number of the last publish.
    last: u64,
    /// Every sequence up to this one was announced.
    announced: u64,
    /// Publishes waiting for the store.
    pending: BTreeSet<u64>,
    /// Publishes whose store write failed (to be nacked).
    failed: BTreeSet<u64>,
}

impl Channel {
    pub(super) fn handle_confirm_method(&mut self, m: confirm::AMQPMethod) -> AmqpResult<()> {
        match m {
            confirm::AMQPMethod::Select(s) => {
                if self.tx.is_some() {
                    return Err(AmqpError::precondition_failed(
                        "cannot switch from tx to confirm mode",
                    ));
                }
                if self.confirm.is_none() {
                    self.confirm = Some(Confirms::default());
                    self.shared
                        .mode
                        .confirm
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
                if !s.nowait {
                    self.send(AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(
                        confirm::SelectOk {},
                    )));
                }
                Ok(())
            }
            confirm::AMQPMethod::SelectOk(_) => {
                Err(AmqpError::command_invalid("unexpected confirm.select-ok"))
            }
        }
    }

    /// In confirm mode: the next publish's sequence number and the wait its store writes report to.
    pub(super) fn start_confirm(
        &mut self,
        events: &EventSender,
    ) -> Option<(u64, Arc<ConfirmWait>)> {
        let c = self.confirm.as_mut()?;
        c.last += 1;
        let seq = c.last;
        let (events, channel, instance) = (events.clone(), self.shared.id, self.instance);
        let wait = ConfirmWait::new(move |ok| {
            let _ = events.send(ConnEvent::Confirmed {
                channel,
                instance,
                seq,
                ok,
            });
        });
        Some((seq, wait))
    }

    /// The publish with this sequence was routed; its writes, if any, are in flight.
    pub(super) fn finish_confirm(&mut self, seq: u64, wait: Arc<ConfirmWait>) {
        let Some(c) = self.confirm.as_mut() else {
            return;
        };
        match wait.release() {
            Some(true) => {}
            Some(false) => {
                c.failed.insert(seq);
            }
            None => {
                c.pending.insert(seq);
            }
        }
    }

    /// The store finished a publish's writes.
    pub(crate) fn confirmed(&mut self, instance: u64, seq: u64, ok: bool) {
        if instance != self.instance {
            return;
        }
        if let Some(c) = self.confirm.as_mut() {
            c.pending.remove(&seq);
            if !ok {
                c.failed.insert(seq);
            }
        }
    }

    /// Announces every publish settled so far: one basic.ack(multiple) for a run, individual acks and
    /// nacks when a write failed in it.
    pub(crate) fn flush_confirms(&mut self) {
        let Some(c) = self.confirm.as_mut() else {
            return;
        };
        let frontier = c.pending.first().map(|p| p - 1).unwrap_or(c.last);
        if frontier <= c.announced {
            return;
        }
        let from = c.announced + 1;
        c.announced = frontier;
        let mut out = Vec::new();
        let nacked = c.failed.range(from..=frontier).count() as u64;
        let acked = frontier - from + 1 - nacked;
        crate::metrics::COUNTERS.confirmed.add(acked);
        self.shared.publishes.confirm.add(acked);
        if nacked == 0 {
            out.push(b::AMQPMethod::Ack(b::Ack {
                delivery_tag: frontier,
                multiple: true,
            }));
        } else {
            for seq in from..=frontier {
                out.push(if c.failed.remove(&seq) {
                    b::AMQPMethod::Nack(b::Nack {
                        delivery_tag: seq,
                        multiple: false,
                        requeue: false,
                    })
                } else {
                    b::AMQPMethod::Ack(b::Ack {
                        delivery_tag: seq,
                        multiple: false,
                    })
                });
            }
        }
        for m in out {
            self.send(AMQPClass::Basic(m));
        }
    }
}
