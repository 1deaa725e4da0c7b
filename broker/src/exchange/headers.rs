//! Temporary headers matcher (replaced by the full one).
use amq_protocol::types::{AMQPValue, FieldTable};

/// True if headers match the binding args.
pub fn headers_match(args: &FieldTable, headers: Option<&FieldTable>) -> bool {
    let any = matches!(args.inner().get("x-match"), Some(AMQPValue::LongString(s)) if s.as_bytes().starts_with(b"any"));
    let empty = FieldTable::default();
    let h = headers.unwrap_or(&empty);
    let mut pairs = args
        .inner()
        .iter()
        .filter(|(k, _)| !k.as_str().starts_with("x-"));
    if any {
        pairs.any(|(k, v)| h.inner().get(k) == Some(v))
    } else {
        pairs.all(|(k, v)| h.inner().get(k) == Some(v))
    }
}

/// Validates x-match.
pub fn validate_binding_args(_args: &FieldTable) -> Result<(), String> {
    Ok(())
}
