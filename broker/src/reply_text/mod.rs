//! RabbitMQ's reply texts, built in one place: the words after the reply code that clients show
//! and tests compare (`NOT_FOUND - no queue 'q' in vhost '/'`). Texts that embed a value print it
//! as RabbitMQ's Erlang does ([`erlang`]).
//!
//! The reply-code prefix (`NOT_FOUND - `) is added by [`crate::error::AmqpError`]; these functions
//! return the error with its explanation.

pub(crate) mod erlang;

use crate::error::AmqpError;
use amqp_codec::frame::FrameError;

/// `NOT_FOUND - no queue 'q' in vhost '/'`
pub(crate) fn no_queue(vhost: &str, name: &str) -> AmqpError {
    AmqpError::not_found(format!("no queue '{name}' in vhost '{vhost}'"))
}

/// `NOT_FOUND - no exchange 'x' in vhost '/'`
pub(crate) fn no_exchange(vhost: &str, name: &str) -> AmqpError {
    AmqpError::not_found(format!("no exchange '{name}' in vhost '{vhost}'"))
}

/// `ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the
/// broker logfile.` (connection.close, sent only to clients with `authentication_failure_close`).
pub(crate) fn login_refused(mechanism: &str) -> AmqpError {
    AmqpError::access_refused(format!(
        "Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."
    ))
}

/// `NOT_ALLOWED - vhost v not found` (connection.open; RabbitMQ does not quote the name).
pub(crate) fn vhost_not_found(vhost: &str) -> AmqpError {
    AmqpError::not_allowed(format!("vhost {vhost} not found")).on_method(10, 40)
}

/// `NOT_ALLOWED - access to vhost 'v' refused for user 'u'` (connection.open).
pub(crate) fn vhost_access_refused(vhost: &str, user: &str) -> AmqpError {
    AmqpError::not_allowed(format!(
        "access to vhost '{vhost}' refused for user '{user}'"
    ))
    .on_method(10, 40)
}

/// `ACCESS_REFUSED - access to queue 'q' in vhost 'v' refused for user 'u'` (RabbitMQ 3.10's
/// words; `kind` is `queue` or `exchange`; the default exchange is `amq.default`).
pub(crate) fn access_refused(kind: &str, name: &str, vhost: &str, user: &str) -> AmqpError {
    let name = if name.is_empty() && kind == "exchange" {
        "amq.default"
    } else {
        name
    };
    AmqpError::access_refused(format!(
        "access to {kind} '{name}' in vhost '{vhost}' refused for user '{user}'"
    ))
}

/// `ACCESS_REFUSED - access to topic 'k' in exchange 'x' in vhost 'v' refused for user 'u'`.
pub(crate) fn topic_access_refused(
    key: &str,
    exchange: &str,
    vhost: &str,
    user: &str,
) -> AmqpError {
    AmqpError::access_refused(format!(
        "access to topic '{key}' in exchange '{exchange}' in vhost '{vhost}' refused for user '{user}'"
    ))
}

/// `NOT_ALLOWED - access to vhost 'v' refused for user 'u': connection limit (N) is reached`.
pub(crate) fn vhost_connection_limit(vhost: &str, user: &str, max: u64) -> AmqpError {
    AmqpError::not_allowed(format!(
        "access to vhost '{vhost}' refused for user '{user}': connection limit ({max}) is reached"
    ))
    .on_method(10, 40)
}

/// `NOT_ALLOWED - connection refused for user 'u': user connection limit (N) is reached`.
pub(crate) fn user_connection_limit(user: &str, max: u64) -> AmqpError {
    AmqpError::not_allowed(format!(
        "connection refused for user '{user}': user connection limit ({max}) is reached"
    ))
    .on_method(10, 40)
}

/// `NOT_ALLOWED - number of channels opened for user 'u' has reached the maximum allowed user
/// limit of (N)` (a connection error, class and method 0).
pub(crate) fn user_channel_limit(user: &str, max: u64) -> AmqpError {
    AmqpError::not_allowed(format!(
        "number of channels opened for user '{user}' has reached the maximum allowed user limit of ({max})"
    ))
}

/// `PRECONDITION_FAILED - cannot declare queue 'q': queue limit in vhost 'v' (N) is reached`.
pub(crate) fn queue_limit(name: &str, vhost: &str, max: u64) -> AmqpError {
    AmqpError::precondition_failed(format!(
        "cannot declare queue '{name}': queue limit in vhost '{vhost}' ({max}) is reached"
    ))
}

/// `CONNECTION_FORCED - user 'u' is deleted`.
pub(crate) fn user_deleted(user: &str) -> AmqpError {
    AmqpError::connection_forced(format!("user '{user}' is deleted"))
}

/// `CONNECTION_FORCED - vhost 'v' is deleted` (RabbitMQ 3.10 says "is deleted" or, in a race
/// with the vhost's supervisor, "is down").
pub(crate) fn vhost_deleted(vhost: &str) -> AmqpError {
    AmqpError::connection_forced(format!("vhost '{vhost}' is deleted"))
}

/// `RESOURCE_LOCKED` for a queue that is another connection's exclusive queue.
pub(crate) fn queue_locked(vhost: &str, name: &str) -> AmqpError {
    AmqpError::resource_locked(format!(
        "cannot obtain exclusive access to locked queue '{name}' in vhost '{vhost}'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration."
    ))
}

/// RabbitMQ's reason for a `CC` or `BCC` header that is not an array:
/// `{unacceptable_type_in_header,"CC",longstr}`.
pub(crate) fn unacceptable_type_in_header(header: &str, type_name: &str) -> String {
    format!("{{unacceptable_type_in_header,\"{header}\",{type_name}}}")
}

/// RabbitMQ's reasons for an `expiration` that is no integer in range (`string:to_integer`'s
/// and the range check's terms): `{leftover_string,".5"}`, `{value_negative,-1}`,
/// `{value_too_large,N}`.
pub(crate) mod expiration {
    /// No digits at all.
    pub(crate) const NO_INTEGER: &str = "no_integer";

    /// Digits followed by something else.
    pub(crate) fn leftover_string(rest: &str) -> String {
        format!("{{leftover_string,\"{rest}\"}}")
    }

    /// Below zero.
    pub(crate) fn value_negative(n: i128) -> String {
        format!("{{value_negative,{n}}}")
    }

    /// Beyond the longest expiry.
    pub(crate) fn value_too_large(n: i128) -> String {
        format!("{{value_too_large,{n}}}")
    }
}

/// Formats bytes as Erlang prints a binary, as RabbitMQ's reply texts show them: `<<"text">>` when
/// printable, else `<<1,2,3>>`.
fn erlang_binary(b: &[u8]) -> String {
    if !b.is_empty()
        && b.iter()
            .all(|c| (0x20..0x7f).contains(c) && *c != b'"' && *c != b'\\')
    {
        format!("<<\"{}\">>", String::from_utf8_lossy(b))
    } else {
        let parts: Vec<String> = b.iter().map(|c| c.to_string()).collect();
        format!("<<{}>>", parts.join(","))
    }
}

/// RabbitMQ's description of a frame's payload: all of it up to 16 octets, else the first 16.
fn octets(payload: &[u8]) -> String {
    if payload.len() <= 16 {
        format!("all octets = {}", erlang_binary(payload))
    } else {
        format!("first 16 octets = {}", erlang_binary(&payload[..16]))
    }
}

/// The error for a frame that cannot be taken, worded as RabbitMQ's reader words it:
/// `FRAME_ERROR - type 206, all octets = <<>>: {frame_too_large,140000,131072}`.
pub(crate) fn frame_error(e: &FrameError) -> AmqpError {
    match e {
        FrameError::TooLarge {
            frame_type,
            size,
            max,
            ..
        } => AmqpError::frame_error(format!(
            "type {frame_type}, all octets = <<>>: {{frame_too_large,{size},{max}}}"
        )),
        FrameError::BadFrameEnd {
            frame_type,
            found,
            payload,
            ..
        } => AmqpError::frame_error(format!(
            "type {frame_type}, {}: {{invalid_frame_end_marker,{found}}}",
            octets(payload)
        )),
        FrameError::Unknown {
            frame_type,
            payload,
            ..
        } => AmqpError::frame_error(format!(
            "type {frame_type}, {}: unknown_frame",
            octets(payload)
        )),
        FrameError::UnknownMethod {
            class_id,
            method_id,
            ..
        } => AmqpError::command_invalid(format!("unknown method {class_id}.{method_id}"))
            .on_method(*class_id, *method_id),
        FrameError::BadMethod {
            class_id,
            method_id,
            arguments,
            ..
        } => AmqpError::frame_error(format!("cannot decode {}", erlang_binary(arguments)))
            .on_method(*class_id, *method_id),
        FrameError::BadHeader(_) => AmqpError::frame_error("cannot decode content header"),
        FrameError::PrefetchSize { size, .. } => {
            AmqpError::not_implemented(format!("prefetch_size!=0 ({size})")).on_method(60, 10)
        }
    }
}
