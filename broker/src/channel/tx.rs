//! tx.select, tx.commit, tx.rollback.
//!
//! In a transaction, publishes and acks/nacks/rejects are held on the channel until tx.commit applies
//! them in order, or tx.rollback drops the publishes and returns the settled deliveries to the unacked
//! list (as RabbitMQ does). tx.commit-ok is sent once the committed persistent messages are in the
//! store; until then the channel holds its later frames, so that replies keep their order.

use super::{Channel, Tx};
use super::{ConnEvent, ConnectionContext};
use crate::error::{AmqpError, AmqpResult};
use crate::persist::ConfirmWait;
use amqp_codec::protocol::tx;
use amqp_codec::{AMQPClass, Frame};

impl Channel {
    pub(super) fn handle_tx_method(
        &mut self,
        ctx: &mut ConnectionContext<'_>,
        m: tx::AMQPMethod,
    ) -> AmqpResult<()> {
        match m {
            tx::AMQPMethod::Select(_) => {
                if self.confirm.is_some() {
                    return Err(AmqpError::precondition_failed(
                        "cannot switch from confirm to tx mode",
                    ));
                }
                if self.tx.is_none() {
                    self.tx = Some(Tx::default());
                    self.shared
                        .mode
                        .transactional
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
                self.send(AMQPClass::Tx(tx::AMQPMethod::SelectOk(tx::SelectOk {})));
            }
            tx::AMQPMethod::Commit(_) => {
                let Some(held) = self.tx.replace(Tx::default()) else {
                    return Err(AmqpError::precondition_failed(
                        "channel is not transactional",
                    ));
                };
                // commit-ok waits until the committed messages are in the store, like a confirm.
                let (events, channel, instance) =
                    (ctx.events.clone(), self.shared.id, self.instance);
                let wait = ConfirmWait::new(move |ok| {
                    let _ = events.send(ConnEvent::Committed {
                        channel,
                        instance,
                        ok,
                    });
                });
                for p in held.publishes {
                    self.route_and_enqueue(ctx, &p.exchange, p.message, p.mandatory, Some(&wait));
                }
                for s in held.settles {
                    self.settle(s.entries, s.outcome);
                }
                match wait.release() {
                    Some(ok) => self.commit_done(ok)?,
                    // Frames for this channel wait until the store answers (see `hold`).
                    None => self.commit_pending = true,
                }
            }
            tx::AMQPMethod::Rollback(_) => {
                let Some(held) = self.tx.replace(Tx::default()) else {
                    return Err(AmqpError::precondition_failed(
                        "channel is not transactional",
                    ));
                };
                let mut d = self.shared.deliveries();
                let mut back: Vec<_> = held.settles.into_iter().flat_map(|s| s.entries).collect();
                back.extend(d.unacked.drain(..));
                back.sort_by_key(|u| u.tag);
                d.unacked = back.into();
                drop(d);
                self.send(AMQPClass::Tx(tx::AMQPMethod::RollbackOk(tx::RollbackOk {})));
            }
            other => {
                return Err(AmqpError::command_invalid(format!(
                    "unexpected tx method {}",
                    AMQPClass::Tx(other).get_amqp_method_id()
                )))
            }
        }
        Ok(())
    }
}

impl Channel {
    /// Answers the commit (ok, or a channel error if a store write failed).
    fn commit_done(&mut self, ok: bool) -> AmqpResult<()> {
        if !ok {
            return Err(
                AmqpError::internal("tx.commit failed: the store could not write")
                    .on_method(90, 20),
            );
        }
        self.send(AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {})));
        Ok(())
    }

    /// The store finished a commit's writes: answers it and returns the frames held meanwhile, to be
    /// handled now in order.
    pub(crate) fn committed(&mut self, instance: u64, ok: bool) -> (AmqpResult<()>, Vec<Frame>) {
        if instance != self.instance || !self.commit_pending {
            return (Ok(()), Vec::new());
        }
        self.commit_pending = false;
        (self.commit_done(ok), std::mem::take(&mut self.held_frames))
    }
}
