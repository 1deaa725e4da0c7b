//! SASL responses of connection.start-ok: PLAIN and AMQPLAIN, parsed as RabbitMQ parses them.

use super::AuthError;
use amqp_codec::types::{AMQPValue, FieldTable};

/// A user name and password from a SASL response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
}

/// Parses the response of `mechanism`.
pub(crate) fn parse(mechanism: &str, response: &[u8]) -> Result<Credentials, AuthError> {
    match mechanism {
        "PLAIN" => parse_plain(response),
        "AMQPLAIN" => parse_amqplain(response),
        other => Err(AuthError::UnsupportedMechanism(other.to_string())),
    }
}

/// PLAIN: `authzid \0 user \0 password`. RabbitMQ 3.10 refuses a non-empty authzid.
fn parse_plain(response: &[u8]) -> Result<Credentials, AuthError> {
    let mut parts = response.splitn(3, |&b| b == 0);
    match (parts.next(), parts.next(), parts.next()) {
        (Some([]), Some(u), Some(p)) => Ok(Credentials {
            user: String::from_utf8(u.to_vec()).map_err(|_| AuthError::Malformed)?,
            password: String::from_utf8(p.to_vec()).map_err(|_| AuthError::Malformed)?,
        }),
        _ => Err(AuthError::Malformed),
    }
}

/// AMQPLAIN: a field table without its length prefix, with LOGIN and PASSWORD.
fn parse_amqplain(response: &[u8]) -> Result<Credentials, AuthError> {
    let mut framed = Vec::with_capacity(response.len() + 4);
    framed.extend_from_slice(&(response.len() as u32).to_be_bytes());
    framed.extend_from_slice(response);
    let (_, table): (_, FieldTable) = amqp_codec::types::parsing::parse_field_table(&framed[..])
        .map_err(|_| AuthError::Malformed)?;
    let get = |k: &str| match table.inner().get(k) {
        Some(AMQPValue::LongString(s)) => String::from_utf8(s.as_bytes().to_vec()).ok(),
        Some(AMQPValue::ShortString(s)) => Some(s.as_str().to_string()),
        _ => None,
    };
    match (get("LOGIN"), get("PASSWORD")) {
        (Some(user), Some(password)) => Ok(Credentials { user, password }),
        _ => Err(AuthError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn creds(u: &str, p: &str) -> Credentials {
        Credentials {
            user: u.into(),
            password: p.into(),
        }
    }

    #[test]
    fn plain() {
        assert_eq!(
            parse("PLAIN", b"\0guest\0guest"),
            Ok(creds("guest", "guest"))
        );
        assert_eq!(parse("PLAIN", b"\0u\0p\0q"), Ok(creds("u", "p\0q")));
        assert_eq!(parse("PLAIN", b"garbage"), Err(AuthError::Malformed));
        // RabbitMQ 3.10: `response <<"guest\0guest\0guest">> invalid`.
        assert_eq!(
            parse("PLAIN", b"guest\0guest\0guest"),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            parse("FOO", b""),
            Err(AuthError::UnsupportedMechanism("FOO".into()))
        );
    }

    #[test]
    fn amqplain() {
        // LOGIN S "guest" PASSWORD S "guest"
        let mut r = Vec::new();
        for (k, v) in [("LOGIN", "guest"), ("PASSWORD", "guest")] {
            r.push(k.len() as u8);
            r.extend_from_slice(k.as_bytes());
            r.push(b'S');
            r.extend_from_slice(&(v.len() as u32).to_be_bytes());
            r.extend_from_slice(v.as_bytes());
        }
        assert_eq!(parse("AMQPLAIN", &r), Ok(creds("guest", "guest")));
        assert_eq!(
            parse("AMQPLAIN", &r[..r.len() - 1]),
            Err(AuthError::Malformed)
        );
    }

    proptest! {
        /// No response makes either parser panic.
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse("PLAIN", &bytes);
            let _ = parse("AMQPLAIN", &bytes);
        }
    }
}
