//! Users and SASL authentication (PLAIN and AMQPLAIN).

use amqp_codec::types::{AMQPValue, FieldTable};
use std::collections::HashMap;
use std::net::IpAddr;

/// A user account.
#[derive(Debug, Clone)]
pub struct User {
    /// Name.
    pub name: String,
    /// Password (plain; the default guest/guest account, as RabbitMQ's).
    pub password: String,
    /// May only connect from a loopback address (RabbitMQ's rule for guest).
    pub loopback_only: bool,
}

/// Why a login was refused (the client only ever learns "ACCESS_REFUSED").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// The mechanism is not PLAIN or AMQPLAIN.
    UnsupportedMechanism(String),
    /// The SASL response does not parse.
    Malformed,
    /// Unknown user or wrong password.
    InvalidCredentials(String),
    /// The user may only connect from loopback.
    LoopbackOnly(String),
}

/// The broker's users.
#[derive(Debug, Clone, Default)]
pub struct Users {
    users: HashMap<String, User>,
}

impl Users {
    /// Adds or replaces a user.
    pub fn add(&mut self, user: User) {
        self.users.insert(user.name.clone(), user);
    }

    /// Checks a connection.start-ok's mechanism and response; returns the user name.
    pub fn authenticate(
        &self,
        mechanism: &str,
        response: &[u8],
        peer: IpAddr,
    ) -> Result<String, AuthError> {
        let (name, password) = match mechanism {
            "PLAIN" => parse_plain(response)?,
            "AMQPLAIN" => parse_amqplain(response)?,
            other => return Err(AuthError::UnsupportedMechanism(other.to_string())),
        };
        let user = self
            .users
            .get(&name)
            .ok_or_else(|| AuthError::InvalidCredentials(name.clone()))?;
        if user.password != password {
            return Err(AuthError::InvalidCredentials(name));
        }
        if user.loopback_only && !is_loopback(peer) {
            return Err(AuthError::LoopbackOnly(name));
        }
        Ok(name)
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// PLAIN: `authzid \0 user \0 password`.
fn parse_plain(response: &[u8]) -> Result<(String, String), AuthError> {
    let mut parts = response.splitn(3, |&b| b == 0);
    let (_authz, user, pass) = (parts.next(), parts.next(), parts.next());
    match (user, pass) {
        (Some(u), Some(p)) => Ok((
            String::from_utf8(u.to_vec()).map_err(|_| AuthError::Malformed)?,
            String::from_utf8(p.to_vec()).map_err(|_| AuthError::Malformed)?,
        )),
        _ => Err(AuthError::Malformed),
    }
}

/// AMQPLAIN: a field table without its length prefix, with LOGIN and PASSWORD.
fn parse_amqplain(response: &[u8]) -> Result<(String, String), AuthError> {
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
        (Some(u), Some(p)) => Ok((u, p)),
        _ => Err(AuthError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> Users {
        let mut u = Users::default();
        u.add(User {
            name: "guest".into(),
            password: "guest".into(),
            loopback_only: true,
        });
        u
    }

    #[test]
    fn plain_and_loopback_rule() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let remote: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(
            users().authenticate("PLAIN", b"\0guest\0guest", lo),
            Ok("guest".into())
        );
        assert_eq!(
            users().authenticate("PLAIN", b"\0guest\0nope", lo),
            Err(AuthError::InvalidCredentials("guest".into()))
        );
        assert_eq!(
            users().authenticate("PLAIN", b"\0guest\0guest", remote),
            Err(AuthError::LoopbackOnly("guest".into()))
        );
        assert_eq!(
            users().authenticate("PLAIN", b"garbage", lo),
            Err(AuthError::Malformed)
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
        let lo: IpAddr = "::1".parse().unwrap();
        assert_eq!(users().authenticate("AMQPLAIN", &r, lo), Ok("guest".into()));
    }
}
