//! tx.select, tx.commit, tx.rollback.
//!
//! In a transaction, publishes and acks/nacks/rejects are held on the channel until tx.commit applies
//! them in order, or tx.rollback drops the publishes and returns the settled deliveries to the unacked
//! list (as RabbitMQ does).

use super::{Channel, Tx};
use crate::connection::ConnectionContext;
use crate::error::{AmqpError, AmqpResult};
use amqp_codec::protocol::tx;
use amqp_codec::AMQPClass;

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
                }
                self.send(AMQPClass::Tx(tx::AMQPMethod::SelectOk(tx::SelectOk {})));
            }
            tx::AMQPMethod::Commit(_) => {
                let Some(held) = self.tx.replace(Tx::default()) else {
                    return Err(AmqpError::precondition_failed(
                        "channel is not transactional",
                    ));
                };
                for p in held.publishes {
                    self.route_and_enqueue(ctx, &p.exchange, p.message, p.mandatory, None);
                }
                for s in held.settles {
                    self.settle(s.entries, s.outcome);
                }
                self.send(AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {})));
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
