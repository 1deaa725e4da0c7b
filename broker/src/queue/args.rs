//! Queue arguments (`x-max-priority`, `x-message-ttl`, `x-dead-letter-exchange`, ...): validated as
//! RabbitMQ validates them at queue.declare, with its reply texts, and parsed once into typed values.

use crate::args::{as_int, as_str, type_name};
use crate::error::{AmqpError, AmqpResult};
use crate::message::MAX_EXPIRY;
use amqp_codec::types::{AMQPValue, FieldTable};

/// Highest `x-max-priority`.
pub(super) const MAX_PRIORITY: i128 = 255;

/// One queue argument that RabbitMQ gives a meaning: which queue types take it (the others refuse
/// it at declare), and whether a redeclaration must repeat its value.
struct KnownArg {
    name: &'static str,
    classic: bool,
    quorum: bool,
    /// Checked for equivalence on redeclaration (in this table's order, RabbitMQ's).
    equivalence: bool,
}

const fn arg(name: &'static str, classic: bool, quorum: bool, equivalence: bool) -> KnownArg {
    KnownArg {
        name,
        classic,
        quorum,
        equivalence,
    }
}

/// Every queue argument with a meaning, in one table (arguments not listed are kept as given).
/// Columns: classic queues take it, quorum queues take it, checked for equivalence.
const KNOWN_ARGS: &[KnownArg] = &[
    arg("x-expires", true, true, true),
    arg("x-message-ttl", true, true, true),
    arg("x-dead-letter-exchange", true, true, true),
    arg("x-dead-letter-routing-key", true, true, true),
    arg("x-dead-letter-strategy", false, true, false),
    arg("x-max-length", true, true, true),
    arg("x-max-length-bytes", true, true, true),
    arg("x-max-in-memory-length", true, true, false),
    arg("x-max-in-memory-bytes", true, true, false),
    arg("x-max-priority", true, false, true),
    arg("x-overflow", true, true, true),
    arg("x-queue-mode", true, false, true),
    arg("x-queue-master-locator", true, false, false),
    arg("x-queue-type", true, true, true),
    arg("x-single-active-consumer", true, true, true),
    arg("x-quorum-initial-group-size", false, true, false),
    arg("x-delivery-limit", false, true, true),
    // Stream queues' arguments: refused by both types here (streams are not supported yet).
    arg("x-max-age", false, false, false),
    arg("x-stream-max-segment-size-bytes", false, false, false),
    arg("x-initial-cluster-size", false, false, false),
    arg("x-queue-leader-locator", false, false, false),
];

/// The queue arguments whose values must match on redeclaration, in the order RabbitMQ checks
/// them.
pub(crate) fn equivalence_args() -> impl Iterator<Item = &'static str> {
    KNOWN_ARGS.iter().filter(|a| a.equivalence).map(|a| a.name)
}

/// What happens to a publish into a full queue (`x-overflow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// The oldest messages are dropped (dead-lettered).
    #[default]
    DropHead,
    /// New messages are refused (nack to confirming publishers).
    RejectPublish,
    /// Refused and dead-lettered.
    RejectPublishDlx,
}

/// `x-queue-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueType {
    /// A classic queue.
    #[default]
    Classic,
    /// Served by a durable queue that tracks delivery counts, as quorum queues do.
    Quorum,
}

/// A queue's arguments, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueArgs {
    /// `x-max-priority`: priority levels 0..=max (None: no priorities).
    pub max_priority: Option<u8>,
    /// `x-message-ttl` in ms.
    pub message_ttl: Option<u64>,
    /// `x-expires` in ms: the queue is deleted after this long unused.
    pub expires: Option<u64>,
    /// `x-dead-letter-exchange`.
    pub dlx: Option<String>,
    /// `x-dead-letter-routing-key`.
    pub dlrk: Option<String>,
    /// `x-max-length`: ready messages.
    pub max_length: Option<u64>,
    /// `x-max-length-bytes`: ready message body bytes.
    pub max_length_bytes: Option<u64>,
    /// `x-overflow` (`None`: not given; drop-head unless a policy says otherwise).
    pub overflow: Option<Overflow>,
    /// `x-single-active-consumer`.
    pub single_active_consumer: bool,
    /// `x-delivery-limit`: returns allowed before a message is dead-lettered.
    pub delivery_limit: Option<u64>,
    /// `x-consumer-timeout` (Warren takes it per queue): ms an unacked delivery may stay out.
    pub consumer_timeout: Option<u64>,
    /// `x-queue-type`.
    pub queue_type: QueueType,
}

/// RabbitMQ's `invalid arg` error; `reason` is the Erlang term it prints (`{value_negative,-1}`).
fn invalid(key: &str, what: &str, reason: String) -> AmqpError {
    AmqpError::precondition_failed(format!("invalid arg '{key}' for {what}: {reason}"))
}

fn unacceptable(key: &str, what: &str, v: &AMQPValue) -> AmqpError {
    invalid(key, what, format!("{{unacceptable_type,{}}}", type_name(v)))
}

fn int_arg(key: &str, what: &str, v: &AMQPValue) -> AmqpResult<i128> {
    match v {
        // RabbitMQ's integer argument types.
        AMQPValue::ShortShortInt(_)
        | AMQPValue::ShortShortUInt(_)
        | AMQPValue::ShortInt(_)
        | AMQPValue::ShortUInt(_)
        | AMQPValue::LongInt(_)
        | AMQPValue::LongUInt(_)
        | AMQPValue::LongLongInt(_) => Ok(as_int(v).expect("integer")),
        other => Err(invalid(
            key,
            what,
            format!("\"expected integer, got {}\"", type_name(other)),
        )),
    }
}

fn non_neg(key: &str, what: &str, v: &AMQPValue) -> AmqpResult<u64> {
    let n = int_arg(key, what, v)?;
    if n < 0 {
        return Err(invalid(key, what, format!("{{value_negative,{n}}}")));
    }
    Ok(n as u64)
}

fn expiry(key: &str, what: &str, n: i128) -> AmqpResult<u64> {
    if n < 0 {
        return Err(invalid(key, what, format!("{{value_negative,{n}}}")));
    }
    if n > MAX_EXPIRY {
        return Err(invalid(key, what, format!("{{value_too_large,{n}}}")));
    }
    Ok(n as u64)
}

/// A long string argument (the wire has no other string type for field values).
fn string_arg(key: &str, what: &str, v: &AMQPValue) -> AmqpResult<String> {
    match v {
        AMQPValue::LongString(_) => Ok(as_str(v).expect("string")),
        other => Err(unacceptable(key, what, other)),
    }
}

impl QueueArgs {
    /// Validates and parses declaration arguments. `what` names the queue for reply texts:
    /// `queue 'q' in vhost '/'`. Unknown arguments are ignored, as RabbitMQ ignores them.
    pub fn parse(args: &FieldTable, what: &str) -> AmqpResult<QueueArgs> {
        let t = args.inner();
        let get = |k: &str| t.get(k);
        let mut a = QueueArgs::default();
        // RabbitMQ checks in this order, whatever the order of the table.
        if let Some(v) = get("x-expires") {
            let n = int_arg("x-expires", what, v)?;
            if n == 0 {
                return Err(invalid("x-expires", what, "{value_zero,0}".into()));
            }
            a.expires = Some(expiry("x-expires", what, n)?);
        }
        if let Some(v) = get("x-message-ttl") {
            let n = int_arg("x-message-ttl", what, v)?;
            a.message_ttl = Some(expiry("x-message-ttl", what, n)?);
        }
        if let Some(v) = get("x-dead-letter-exchange") {
            match v {
                AMQPValue::LongString(_) => a.dlx = as_str(v),
                other => {
                    return Err(AmqpError::precondition_failed(format!(
                        "invalid type '{}' for arg 'x-dead-letter-exchange' in {what}",
                        type_name(other)
                    )))
                }
            }
        }
        if let Some(v) = get("x-dead-letter-routing-key") {
            let rk = string_arg("x-dead-letter-routing-key", what, v)?;
            if a.dlx.is_none() {
                return Err(invalid(
                    "x-dead-letter-routing-key",
                    what,
                    "routing_key_but_no_dlx_defined".into(),
                ));
            }
            a.dlrk = Some(rk);
        }
        if let Some(v) = get("x-max-length") {
            a.max_length = Some(non_neg("x-max-length", what, v)?);
        }
        if let Some(v) = get("x-max-length-bytes") {
            a.max_length_bytes = Some(non_neg("x-max-length-bytes", what, v)?);
        }
        if let Some(v) = get("x-max-priority") {
            let n = non_neg("x-max-priority", what, v)? as i128;
            if n > MAX_PRIORITY {
                return Err(invalid(
                    "x-max-priority",
                    what,
                    format!("{{max_value_exceeded,{n}}}"),
                ));
            }
            // x-max-priority 0 declares a queue without priorities, as in RabbitMQ.
            a.max_priority = (n > 0).then_some(n as u8);
        }
        if let Some(v) = get("x-overflow") {
            let s = string_arg("x-overflow", what, v)?;
            a.overflow = Some(match s.as_str() {
                "drop-head" => Overflow::DropHead,
                "reject-publish" => Overflow::RejectPublish,
                "reject-publish-dlx" => Overflow::RejectPublishDlx,
                _ => return Err(invalid("x-overflow", what, "invalid_overflow".into())),
            });
        }
        if let Some(v) = get("x-queue-mode") {
            let s = string_arg("x-queue-mode", what, v)?;
            if s != "default" && s != "lazy" {
                return Err(invalid(
                    "x-queue-mode",
                    what,
                    format!("\"unsupported queue mode '{s}'\""),
                ));
            }
        }
        if let Some(v) = get("x-single-active-consumer") {
            match v {
                AMQPValue::Boolean(b) => a.single_active_consumer = *b,
                other => return Err(unacceptable("x-single-active-consumer", what, other)),
            }
        }
        if let Some(v) = get("x-queue-type") {
            let s = string_arg("x-queue-type", what, v)?;
            a.queue_type = match s.as_str() {
                "classic" => QueueType::Classic,
                "quorum" => QueueType::Quorum,
                // Streams are not served: refused like an unknown type.
                _ => {
                    return Err(invalid(
                        "x-queue-type",
                        what,
                        format!("\"unsupported queue type '{s}'\""),
                    ))
                }
            };
        }
        // Then the arguments that belong to another queue type.
        let type_name = match a.queue_type {
            QueueType::Classic => "rabbit_classic_queue",
            QueueType::Quorum => "rabbit_quorum_queue",
        };
        for key in t.keys() {
            let key = key.as_str();
            let refused = KNOWN_ARGS.iter().any(|k| {
                k.name == key
                    && !match a.queue_type {
                        QueueType::Classic => k.classic,
                        QueueType::Quorum => k.quorum,
                    }
            });
            if refused {
                return Err(AmqpError::precondition_failed(format!(
                    "invalid arg '{key}' for {what} of queue type {type_name}"
                )));
            }
        }
        if let Some(v) = get("x-dead-letter-strategy") {
            let s = string_arg("x-dead-letter-strategy", what, v)?;
            if s != "at-most-once" && s != "at-least-once" {
                return Err(invalid(
                    "x-dead-letter-strategy",
                    what,
                    "invalid_dlx_strategy".into(),
                ));
            }
        }
        // As RabbitMQ's quorum queues: a negative limit acts as 0, a non-integer one is ignored.
        if let Some(n) = get("x-delivery-limit").and_then(as_int) {
            a.delivery_limit = Some(n.max(0) as u64);
        }
        // Warren's own (RabbitMQ 3.10 ignores it): an ill-typed value is ignored too.
        if let Some(n) = get("x-consumer-timeout").and_then(as_int) {
            a.consumer_timeout = u64::try_from(n).ok();
        }
        Ok(a)
    }

    /// Number of priority lanes (1 without priorities).
    pub fn lanes(&self) -> usize {
        self.max_priority.map_or(1, |m| m as usize + 1)
    }

    /// True if deliveries carry `x-delivery-count` (quorum queues; only they take a limit).
    pub fn counts_deliveries(&self) -> bool {
        self.queue_type == QueueType::Quorum
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amqp_codec::types::{LongString, ShortString};

    fn table(k: &str, v: AMQPValue) -> FieldTable {
        let mut t = FieldTable::default();
        t.insert(ShortString::from(k.to_string()), v);
        t
    }

    const Q: &str = "queue 'q' in vhost '/'";

    fn err(k: &str, v: AMQPValue) -> String {
        QueueArgs::parse(&table(k, v), Q).unwrap_err().reply_text()
    }

    #[test]
    fn texts_follow_rabbitmq() {
        assert_eq!(
            err("x-max-length", AMQPValue::LongInt(-1)),
            "PRECONDITION_FAILED - invalid arg 'x-max-length' for queue 'q' in vhost '/': {value_negative,-1}"
        );
        assert_eq!(
            err(
                "x-message-ttl",
                AMQPValue::LongString(LongString::from("10"))
            ),
            "PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue 'q' in vhost '/': \"expected integer, got longstr\""
        );
        assert_eq!(
            err("x-max-priority", AMQPValue::LongInt(256)),
            "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue 'q' in vhost '/': {max_value_exceeded,256}"
        );
        assert_eq!(
            err("x-expires", AMQPValue::LongInt(0)),
            "PRECONDITION_FAILED - invalid arg 'x-expires' for queue 'q' in vhost '/': {value_zero,0}"
        );
    }

    #[test]
    fn parses_values() {
        let a =
            QueueArgs::parse(&table("x-max-priority", AMQPValue::ShortShortUInt(10)), Q).unwrap();
        assert_eq!(a.lanes(), 11);
        let a = QueueArgs::parse(
            &table(
                "x-overflow",
                AMQPValue::LongString(LongString::from("reject-publish")),
            ),
            Q,
        )
        .unwrap();
        assert_eq!(a.overflow, Some(Overflow::RejectPublish));
    }
}
