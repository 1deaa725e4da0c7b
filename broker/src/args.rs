//! Declaration arguments (field tables): equivalence checks with RabbitMQ's reply texts.

use crate::error::{AmqpError, AmqpResult};
use amqp_codec::types::{AMQPValue, FieldTable};

/// RabbitMQ's name for a field type, as it appears in reply texts.
pub(crate) fn type_name(v: &AMQPValue) -> &'static str {
    match v {
        AMQPValue::Boolean(_) => "bool",
        AMQPValue::ShortShortInt(_) => "byte",
        AMQPValue::ShortShortUInt(_) => "unsignedbyte",
        AMQPValue::ShortInt(_) => "short",
        AMQPValue::ShortUInt(_) => "unsignedshort",
        AMQPValue::LongInt(_) => "signedint",
        AMQPValue::LongUInt(_) => "unsignedint",
        AMQPValue::LongLongInt(_) => "long",
        AMQPValue::Float(_) => "float",
        AMQPValue::Double(_) => "double",
        AMQPValue::DecimalValue(_) => "decimal",
        AMQPValue::ShortString(_) | AMQPValue::LongString(_) => "longstr",
        AMQPValue::FieldArray(_) => "array",
        AMQPValue::Timestamp(_) => "timestamp",
        AMQPValue::FieldTable(_) => "table",
        AMQPValue::ByteArray(_) => "binary",
        AMQPValue::Void => "void",
    }
}

/// An integer value of any integer type.
pub(crate) fn as_int(v: &AMQPValue) -> Option<i128> {
    Some(match v {
        AMQPValue::ShortShortInt(n) => *n as i128,
        AMQPValue::ShortShortUInt(n) => *n as i128,
        AMQPValue::ShortInt(n) => *n as i128,
        AMQPValue::ShortUInt(n) => *n as i128,
        AMQPValue::LongInt(n) => *n as i128,
        AMQPValue::LongUInt(n) => *n as i128,
        AMQPValue::LongLongInt(n) => *n as i128,
        AMQPValue::Timestamp(n) => *n as i128,
        _ => return None,
    })
}

/// A string value (short or long string).
pub(crate) fn as_str(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

fn value_text(v: &AMQPValue) -> String {
    match v {
        AMQPValue::Boolean(b) => b.to_string(),
        other => as_str(other)
            .or_else(|| as_int(other).map(|n| n.to_string()))
            .unwrap_or_else(|| format!("{other:?}")),
    }
}

fn equivalent(a: &AMQPValue, b: &AMQPValue) -> bool {
    match (as_int(a), as_int(b)) {
        (Some(x), Some(y)) => x == y,
        _ => match (as_str(a), as_str(b)) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
    }
}

/// Checks that `new` agrees with `current` on `keys`, as RabbitMQ's `assert_args_equivalence` does:
/// `inequivalent arg 'K' for queue 'q' in vhost '/': received '11' but current is '10'` when both
/// are present, `... received none but current is the value '10' of type 'signedint'` when one is not.
/// `what` names the entity: `queue 'q' in vhost '/'`.
pub(crate) fn check_equivalence<'a>(
    what: &str,
    current: &FieldTable,
    new: &FieldTable,
    keys: impl IntoIterator<Item = &'a str>,
) -> AmqpResult<()> {
    for key in keys {
        let (cur, got) = (current.inner().get(key), new.inner().get(key));
        let text = match (cur, got) {
            (None, None) => continue,
            (Some(a), Some(b)) if equivalent(a, b) => continue,
            (Some(a), Some(b)) => format!(
                "received '{}' but current is '{}'",
                value_text(b),
                value_text(a)
            ),
            (a, b) => {
                let describe = |v: Option<&AMQPValue>| match v {
                    None => "none".to_string(),
                    Some(v) => format!("the value '{}' of type '{}'", value_text(v), type_name(v)),
                };
                format!("received {} but current is {}", describe(b), describe(a))
            }
        };
        return Err(AmqpError::precondition_failed(format!(
            "inequivalent arg '{key}' for {what}: {text}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(k: &str, v: AMQPValue) -> FieldTable {
        let mut t = FieldTable::default();
        t.insert(k.into(), v);
        t
    }

    #[test]
    fn texts_match_rabbitmq() {
        let ten = table("x-max-length", AMQPValue::LongInt(10));
        let what = "queue 'q' in vhost '/'";
        let keys = ["x-max-length"];
        assert!(check_equivalence(
            what,
            &ten,
            &table("x-max-length", AMQPValue::LongLongInt(10)),
            keys
        )
        .is_ok());
        let e = check_equivalence(
            what,
            &ten,
            &table("x-max-length", AMQPValue::LongInt(11)),
            keys,
        )
        .unwrap_err();
        assert_eq!(
            e.reply_text(),
            "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue 'q' in vhost '/': received '11' but current is '10'"
        );
        let e = check_equivalence(what, &ten, &FieldTable::default(), keys).unwrap_err();
        assert!(e
            .reply_text()
            .ends_with("received none but current is the value '10' of type 'signedint'"));
    }
}
