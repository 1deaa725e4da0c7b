//! exchange.declare, exchange.delete, exchange.bind, exchange.unbind: translations of the methods
//! into the vhost's exchange operations (`vhost/exchanges.rs`), which hold the rules.

use super::Channel;
use super::ConnectionContext;
use crate::error::{AmqpError, AmqpResult};
use crate::exchange::Destination;
use crate::vhost::{BindingSpec, ExchangeSpec};
use amqp_codec::protocol::exchange as x;
use amqp_codec::AMQPClass;

impl Channel {
    pub(super) fn handle_exchange_method(
        &mut self,
        ctx: &mut ConnectionContext<'_>,
        m: x::AMQPMethod,
    ) -> AmqpResult<()> {
        match m {
            x::AMQPMethod::Declare(d) => {
                if d.passive {
                    ctx.vhost.check_exchange(d.exchange.as_str())?;
                } else {
                    let spec = ExchangeSpec {
                        name: d.exchange.as_str().to_string(),
                        kind: d.kind.as_str().to_string(),
                        durable: d.durable,
                        auto_delete: d.auto_delete,
                        internal: d.internal,
                        arguments: d.arguments,
                        declared_by: ctx.user.to_string(),
                    };
                    ctx.vhost.declare_exchange(&spec, ctx.caller)?;
                }
                if !d.nowait {
                    self.send(AMQPClass::Exchange(x::AMQPMethod::DeclareOk(
                        x::DeclareOk {},
                    )));
                }
            }
            x::AMQPMethod::Delete(d) => {
                ctx.vhost
                    .delete_exchange_named(d.exchange.as_str(), d.if_unused, ctx.caller)?;
                if !d.nowait {
                    self.send(AMQPClass::Exchange(x::AMQPMethod::DeleteOk(x::DeleteOk {})));
                }
            }
            x::AMQPMethod::Bind(bnd) => {
                let spec = BindingSpec {
                    source: bnd.source.as_str().to_string(),
                    destination: Destination::Exchange(bnd.destination.as_str().to_string()),
                    routing_key: bnd.routing_key.as_str().to_string(),
                    arguments: bnd.arguments,
                };
                ctx.vhost.bind(&spec, ctx.caller)?;
                if !bnd.nowait {
                    self.send(AMQPClass::Exchange(x::AMQPMethod::BindOk(x::BindOk {})));
                }
            }
            x::AMQPMethod::Unbind(u) => {
                let spec = BindingSpec {
                    source: u.source.as_str().to_string(),
                    destination: Destination::Exchange(u.destination.as_str().to_string()),
                    routing_key: u.routing_key.as_str().to_string(),
                    arguments: u.arguments,
                };
                ctx.vhost.unbind(&spec, ctx.caller)?;
                if !u.nowait {
                    self.send(AMQPClass::Exchange(x::AMQPMethod::UnbindOk(x::UnbindOk {})));
                }
            }
            other => {
                return Err(AmqpError::command_invalid(format!(
                    "unexpected exchange method {}",
                    AMQPClass::Exchange(other).get_amqp_method_id()
                )))
            }
        }
        Ok(())
    }
}
