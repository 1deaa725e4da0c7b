//! exchange.declare, exchange.delete, exchange.bind, exchange.unbind.

use super::Channel;
use crate::connection::ConnectionContext;
use crate::error::{AmqpError, AmqpResult};
use crate::exchange::Destination;
use amqp_codec::protocol::exchange as x;
use amqp_codec::AMQPClass;

fn default_exchange_refused() -> AmqpError {
    AmqpError::access_refused("operation not permitted on the default exchange")
}

impl Channel {
    pub(super) fn handle_exchange_method(
        &mut self,
        ctx: &mut ConnectionContext<'_>,
        m: x::AMQPMethod,
    ) -> AmqpResult<()> {
        match m {
            x::AMQPMethod::Declare(d) => {
                let name = d.exchange.as_str();
                if d.passive {
                    if name.is_empty() {
                        // The default exchange always exists.
                    } else {
                        ctx.vhost.get_exchange(name)?;
                    }
                } else {
                    let kind = crate::exchange::parse_declared_type(d.kind.as_str(), &d.arguments)?;
                    if name.is_empty() {
                        return Err(default_exchange_refused());
                    }
                    if ctx.vhost.exchange(name).is_none() && name.starts_with("amq.") {
                        return Err(AmqpError::access_refused(format!(
                            "exchange name '{name}' contains reserved prefix 'amq.*'"
                        )));
                    }
                    ctx.vhost.declare_exchange(
                        name,
                        kind,
                        d.durable,
                        d.auto_delete,
                        d.internal,
                        &d.arguments,
                    )?;
                }
                if !d.nowait {
                    self.send(AMQPClass::Exchange(x::AMQPMethod::DeclareOk(
                        x::DeclareOk {},
                    )));
                }
            }
            x::AMQPMethod::Delete(d) => {
                let name = d.exchange.as_str();
                if name.is_empty() {
                    return Err(default_exchange_refused());
                }
                if name.starts_with("amq.") {
                    return Err(AmqpError::access_refused(format!(
                        "deletion of system exchange '{name}' in vhost '{}' not allowed",
                        ctx.vhost.name
                    )));
                }
                ctx.vhost.delete_exchange(name, d.if_unused)?;
                if !d.nowait {
                    self.send(AMQPClass::Exchange(x::AMQPMethod::DeleteOk(x::DeleteOk {})));
                }
            }
            x::AMQPMethod::Bind(bnd) => {
                let (dst, src) = (bnd.destination.as_str(), bnd.source.as_str());
                if dst.is_empty() || src.is_empty() {
                    return Err(default_exchange_refused());
                }
                let source = ctx.vhost.get_exchange(src)?;
                ctx.vhost.get_exchange(dst)?;
                ctx.vhost.bind(
                    &source,
                    Destination::Exchange(dst.to_string()),
                    bnd.routing_key.as_str(),
                    &bnd.arguments,
                )?;
                if !bnd.nowait {
                    self.send(AMQPClass::Exchange(x::AMQPMethod::BindOk(x::BindOk {})));
                }
            }
            x::AMQPMethod::Unbind(u) => {
                let (dst, src) = (u.destination.as_str(), u.source.as_str());
                if dst.is_empty() || src.is_empty() {
                    return Err(default_exchange_refused());
                }
                let source = ctx.vhost.get_exchange(src)?;
                ctx.vhost.get_exchange(dst)?;
                ctx.vhost.unbind(
                    &source,
                    &Destination::Exchange(dst.to_string()),
                    u.routing_key.as_str(),
                    &u.arguments,
                );
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
