//! Permissions as RabbitMQ defines them: per user and vhost, three regular expressions
//! (configure, write, read) matched against resource names; per user, vhost and topic exchange,
//! two more (write, read) matched against routing keys.
//!
//! Matching follows RabbitMQ (checked on 3.10.8): a pattern is an unanchored search (`foo`
//! matches `xfoox`), an empty pattern matches nothing, the default exchange is named
//! `amq.default`. Patterns are compiled once, when they are set.

use regex::Regex;

/// One permission pattern, compiled.
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    /// `None` for the empty pattern, which matches nothing.
    regex: Option<Regex>,
}

impl Pattern {
    /// Compiles `source`; the error is RabbitMQ's word for it.
    pub fn new(source: &str) -> Result<Self, String> {
        let regex = if source.is_empty() {
            None
        } else {
            Some(
                regex::RegexBuilder::new(source)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| format!("invalid_regexp '{source}': {e}"))?,
            )
        };
        Ok(Pattern {
            source: source.to_string(),
            regex,
        })
    }

    /// True if the pattern matches somewhere in `name`.
    pub fn matches(&self, name: &str) -> bool {
        self.regex.as_ref().is_some_and(|r| r.is_match(name))
    }

    /// The pattern as it was set.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

/// What an operation needs on a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Create or delete it (declare, delete).
    Configure,
    /// Put messages into it (publish to an exchange, bind to a queue or exchange).
    Write,
    /// Take messages from it (consume, get, purge; bind from an exchange).
    Read,
}

/// A user's permissions in one vhost.
#[derive(Debug, Clone)]
pub struct Permission {
    /// Configure pattern.
    pub configure: Pattern,
    /// Write pattern.
    pub write: Pattern,
    /// Read pattern.
    pub read: Pattern,
}

impl Permission {
    /// Compiles three patterns.
    pub fn new(configure: &str, write: &str, read: &str) -> Result<Self, String> {
        Ok(Permission {
            configure: Pattern::new(configure)?,
            write: Pattern::new(write)?,
            read: Pattern::new(read)?,
        })
    }

    /// True if `access` to the resource `name` is allowed (`""` is the default exchange,
    /// matched as `amq.default`).
    pub fn allows(&self, access: Access, name: &str) -> bool {
        let name = if name.is_empty() { "amq.default" } else { name };
        match access {
            Access::Configure => self.configure.matches(name),
            Access::Write => self.write.matches(name),
            Access::Read => self.read.matches(name),
        }
    }
}

/// A user's topic permissions on one exchange of a vhost: patterns on routing keys.
#[derive(Debug, Clone)]
pub struct TopicPermission {
    /// The exchange.
    pub exchange: String,
    /// Publishing: the routing key must match.
    pub write: Pattern,
    /// Binding from the exchange: the binding key must match.
    pub read: Pattern,
}

impl TopicPermission {
    /// Compiles the patterns for `user` in `vhost`: `{username}` and `{vhost}` are replaced
    /// first, as RabbitMQ does; `{client_id}` stays literal text (RabbitMQ fills it only for
    /// MQTT connections).
    pub fn new(
        exchange: &str,
        write: &str,
        read: &str,
        user: &str,
        vhost: &str,
    ) -> Result<Self, String> {
        let expand = |p: &str| {
            p.replace("{username}", user)
                .replace("{vhost}", vhost)
                .replace("{client_id}", r"\{client_id\}")
        };
        Ok(TopicPermission {
            exchange: exchange.to_string(),
            write: Pattern::new_keeping(&expand(write), write)?,
            read: Pattern::new_keeping(&expand(read), read)?,
        })
    }
}

impl Pattern {
    /// Compiles `expanded` but remembers `source` (what was set, for listing).
    fn new_keeping(expanded: &str, source: &str) -> Result<Self, String> {
        let mut p = Pattern::new(expanded)?;
        p.source = source.to_string();
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rabbitmq_semantics() {
        let p = Permission::new("C", "^amq\\.default$", "").unwrap();
        assert!(p.allows(Access::Configure, "x-CWR"), "unanchored search");
        assert!(!p.allows(Access::Configure, "x-WR"));
        assert!(
            p.allows(Access::Write, ""),
            "default exchange is amq.default"
        );
        assert!(!p.allows(Access::Write, "amq.direct"));
        assert!(!p.allows(Access::Read, "anything"), "empty matches nothing");
        assert!(!p.allows(Access::Read, ""));
        let all = Permission::new(".*", ".*", ".*").unwrap();
        assert!(all.allows(Access::Read, "") && all.allows(Access::Configure, "q"));
        assert!(Permission::new("(", ".*", ".*").is_err());
    }

    #[test]
    fn topic_patterns_expand_user_and_vhost_not_client_id() {
        let t = TopicPermission::new(
            "amq.topic",
            "^{username}\\.{vhost}\\.{client_id}$",
            "^{client_id}\\.",
            "tuser",
            "v1",
        )
        .unwrap();
        assert!(t.write.matches("tuser.v1.{client_id}"));
        assert!(!t.write.matches("tuser.v1.cid1"));
        assert!(t.read.matches("{client_id}.#") && !t.read.matches("cid1.#"));
        assert_eq!(t.write.as_str(), "^{username}\\.{vhost}\\.{client_id}$");
    }

    proptest! {
        /// Any pattern text either compiles or is refused; matching never panics.
        #[test]
        fn patterns_never_panic(p in ".{0,40}", name in ".{0,40}") {
            if let Ok(p) = Pattern::new(&p) {
                let _ = p.matches(&name);
            }
        }
    }
}
