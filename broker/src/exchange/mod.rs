//! Exchanges and their bindings. One matcher per exchange type: direct (hash of keys), fanout (list),
//! topic (a word trie, `topic.rs`), headers (`headers.rs`).
//!
//! Bindings are held by their source exchange behind a `std::sync::RwLock`: routing (every publish) takes
//! read locks only, and no lock is ever held across an await.

pub(crate) mod consistent_hash;
pub(crate) mod headers;
pub(crate) mod topic;

use crate::error::{AmqpError, AmqpResult};
use amq_protocol::frame::WriteContext;
use amq_protocol::types::generation::gen_field_table;
use amq_protocol::types::FieldTable;
use std::collections::HashMap;
use std::sync::RwLock;
use topic::TopicTrie;

/// The exchange types Warren implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeKind {
    /// Routes on exact routing-key equality.
    Direct,
    /// Routes to every binding.
    Fanout,
    /// Routes on dotted patterns with `*` and `#`.
    Topic,
    /// Routes on message headers.
    Headers,
    /// `x-consistent-hash`: spreads keys over destinations by weight, each key always to the same.
    ConsistentHash,
}

impl ExchangeKind {
    /// Parses a declared type name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "direct" => Some(ExchangeKind::Direct),
            "fanout" => Some(ExchangeKind::Fanout),
            "topic" => Some(ExchangeKind::Topic),
            "headers" => Some(ExchangeKind::Headers),
            "x-consistent-hash" => Some(ExchangeKind::ConsistentHash),
            _ => None,
        }
    }

    /// The type's name as declared.
    pub fn name(self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
            ExchangeKind::ConsistentHash => "x-consistent-hash",
        }
    }
}

impl Exchange {
    /// Its type as declared (`x-delayed-message` for a delayed exchange).
    pub fn declared_type(&self) -> &'static str {
        if self.delayed {
            DELAYED_TYPE
        } else {
            self.kind.name()
        }
    }
}

/// The delayed-message exchange's type name.
pub(crate) const DELAYED_TYPE: &str = "x-delayed-message";

/// Parses a declared exchange type with its arguments: (routing kind, delayed). An
/// `x-delayed-message` exchange routes as its `x-delayed-type` argument says (the plugin's texts on
/// errors); an unknown type is a 503, as in RabbitMQ.
pub(crate) fn parse_declared_type(
    name: &str,
    args: &FieldTable,
) -> AmqpResult<(ExchangeKind, bool)> {
    if name != DELAYED_TYPE {
        return ExchangeKind::parse(name)
            .map(|k| (k, false))
            .ok_or_else(|| AmqpError::command_invalid(format!("unknown exchange type '{name}'")));
    }
    let inner = match args.inner().get("x-delayed-type") {
        Some(amq_protocol::types::AMQPValue::LongString(s)) => {
            String::from_utf8_lossy(s.as_bytes()).into_owned()
        }
        _ => String::new(),
    };
    if inner == DELAYED_TYPE {
        return Err(AmqpError::precondition_failed(
            "Invalid argument, 'x-delayed-message' can't be used for 'x-delayed-type'",
        ));
    }
    ExchangeKind::parse(&inner)
        .map(|k| (k, true))
        .ok_or_else(|| {
            AmqpError::precondition_failed(
                "Invalid argument, 'x-delayed-type' must be an existing exchange type",
            )
        })
}

/// Where a binding leads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Destination {
    /// A queue, by name.
    Queue(String),
    /// An exchange, by name (exchange-to-exchange binding).
    Exchange(String),
}

/// An exchange.
#[derive(Debug)]
pub struct Exchange {
    /// Name ("" is the default exchange).
    pub name: String,
    /// Type.
    pub kind: ExchangeKind,
    /// Survives a restart.
    pub durable: bool,
    /// Deleted when its last binding (as a source) goes.
    pub auto_delete: bool,
    /// Clients may not publish to it directly.
    pub internal: bool,
    /// Declared arguments.
    pub arguments: FieldTable,
    /// The `alternate-exchange` argument, if any.
    pub alternate: Option<String>,
    /// The `hash-header` argument of a consistent-hash exchange: hash this header, not the key.
    pub hash_header: Option<String>,
    /// Declared as `x-delayed-message` (then `kind` is its `x-delayed-type`).
    pub delayed: bool,
    bindings: RwLock<Bindings>,
    /// The `alternate-exchange` of the policy that applies, if any (the argument wins over it).
    policy_alternate: std::sync::Mutex<Option<String>>,
    /// Messages clients published to it, and the queue deliveries they made.
    pub counts: crate::message_stats::ExchangeCounts,
    /// The user who declared it (RabbitMQ's `user_who_performed_action`; `rmq-internal` for
    /// what the broker made itself).
    pub declared_by: String,
}

/// Identity of a binding: destination, key, and its arguments (encoded, so that they hash).
type BindingId = (Destination, String, Vec<u8>);

#[derive(Debug, Default)]
struct Bindings {
    all: HashMap<BindingId, FieldTable>,
    /// direct: key -> destinations (a destination appears once per binding; routing dedupes)
    direct: HashMap<String, Vec<Destination>>,
    /// fanout: all destinations (one entry per binding)
    fanout: Vec<Destination>,
    /// topic: (key, dest) pairs counted, so a pair bound with different args is in the trie once
    topic_pairs: HashMap<(String, Destination), u32>,
    topic: TopicTrie<Destination>,
    headers: Vec<(FieldTable, Destination)>,
    /// consistent hash: (destination, weight) in binding order, and the ring built from them.
    weights: Vec<(Destination, u32)>,
    ring: consistent_hash::Ring,
}

/// A field table in AMQP encoding (also what the store keeps).
pub(crate) fn encode_table(t: &FieldTable) -> Vec<u8> {
    let ctx = WriteContext::from(Vec::new());
    gen_field_table(t)(ctx)
        .map(|c| c.into_inner().0)
        .unwrap_or_default()
}

impl Exchange {
    /// A new exchange with no bindings.
    pub fn new(
        name: String,
        kind: ExchangeKind,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: FieldTable,
    ) -> Self {
        let alternate = match arguments.inner().get("alternate-exchange") {
            Some(amq_protocol::types::AMQPValue::LongString(s)) => {
                Some(String::from_utf8_lossy(s.as_bytes()).into_owned())
            }
            Some(amq_protocol::types::AMQPValue::ShortString(s)) => Some(s.as_str().to_string()),
            _ => None,
        };
        let hash_header = arguments
            .inner()
            .get("hash-header")
            .and_then(crate::args::as_str);
        Exchange {
            hash_header,
            delayed: false,
            name,
            kind,
            durable,
            auto_delete,
            internal,
            arguments,
            alternate,
            bindings: RwLock::new(Bindings::default()),
            policy_alternate: std::sync::Mutex::new(None),
            counts: Default::default(),
            declared_by: String::new(),
        }
    }

    /// The alternate exchange in force: the argument's, else the policy's (read only for
    /// unroutable messages).
    pub fn alternate_exchange(&self) -> Option<String> {
        self.alternate.clone().or_else(|| {
            self.policy_alternate
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
        })
    }

    /// Sets the policy's alternate exchange (`None`: no policy names one).
    pub fn set_policy_alternate(&self, ae: Option<String>) {
        *self
            .policy_alternate
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = ae;
    }

    /// The same exchange, declared as `x-delayed-message` routing as its `kind`.
    pub fn with_delay(mut self) -> Self {
        self.delayed = true;
        self
    }

    /// The same exchange, declared by `user`.
    pub fn with_declarer(mut self, user: &str) -> Self {
        self.declared_by = user.to_string();
        self
    }

    /// The type it was declared with.
    pub fn type_name(&self) -> &'static str {
        if self.delayed {
            DELAYED_TYPE
        } else {
            self.kind.name()
        }
    }

    /// True for the nameless default exchange.
    pub fn is_default(&self) -> bool {
        self.name.is_empty()
    }

    /// Adds a binding; binding twice is not an error (RabbitMQ answers bind-ok).
    pub fn bind(&self, dest: Destination, key: &str, args: &FieldTable) -> AmqpResult<()> {
        if self.kind == ExchangeKind::Headers {
            headers::validate_binding_args(args).map_err(AmqpError::precondition_failed)?;
        }
        let weight = match self.kind {
            ExchangeKind::ConsistentHash => {
                consistent_hash::weight(key).map_err(AmqpError::precondition_failed)?
            }
            _ => 0,
        };
        let mut b = self.bindings.write().unwrap_or_else(|e| e.into_inner());
        let id = (dest.clone(), key.to_string(), encode_table(args));
        if b.all.contains_key(&id) {
            return Ok(());
        }
        b.all.insert(id, args.clone());
        match self.kind {
            ExchangeKind::Direct => b.direct.entry(key.to_string()).or_default().push(dest),
            ExchangeKind::Fanout => b.fanout.push(dest),
            ExchangeKind::Topic => {
                let n = b
                    .topic_pairs
                    .entry((key.to_string(), dest.clone()))
                    .or_insert(0);
                *n += 1;
                if *n == 1 {
                    b.topic.insert(key, dest);
                }
            }
            ExchangeKind::Headers => b.headers.push((args.clone(), dest)),
            ExchangeKind::ConsistentHash => {
                b.weights.push((dest, weight));
                b.rebuild_ring();
            }
        }
        Ok(())
    }

    /// Removes a binding; false if there was none.
    pub fn unbind(&self, dest: &Destination, key: &str, args: &FieldTable) -> bool {
        let mut b = self.bindings.write().unwrap_or_else(|e| e.into_inner());
        let id = (dest.clone(), key.to_string(), encode_table(args));
        if b.all.remove(&id).is_none() {
            return false;
        }
        b.remove_matcher(self.kind, dest, key, args);
        true
    }

    /// Removes every binding to `dest`; returns their keys and arguments.
    pub fn unbind_destination(&self, dest: &Destination) -> Vec<(String, FieldTable)> {
        let mut b = self.bindings.write().unwrap_or_else(|e| e.into_inner());
        let gone: Vec<BindingId> = b
            .all
            .keys()
            .filter(|(d, _, _)| d == dest)
            .cloned()
            .collect();
        let mut removed = Vec::with_capacity(gone.len());
        for id in gone {
            if let Some(args) = b.all.remove(&id) {
                b.remove_matcher(self.kind, dest, &id.1, &args);
                removed.push((id.1, args));
            }
        }
        removed
    }

    /// Every binding with this exchange as source: (destination, key, arguments).
    pub fn bindings(&self) -> Vec<(Destination, String, FieldTable)> {
        let b = self.bindings.read().unwrap_or_else(|e| e.into_inner());
        b.all
            .iter()
            .map(|((d, k, _), args)| (d.clone(), k.clone(), args.clone()))
            .collect()
    }

    /// True if a binding with exactly these fields exists.
    pub fn has_binding(&self, dest: &Destination, key: &str, args: &FieldTable) -> bool {
        let b = self.bindings.read().unwrap_or_else(|e| e.into_inner());
        b.all
            .contains_key(&(dest.clone(), key.to_string(), encode_table(args)))
    }

    /// Number of bindings with this exchange as source.
    pub fn binding_count(&self) -> usize {
        self.bindings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .all
            .len()
    }

    /// Calls `f` for each destination matching the message (a destination may be reported more than
    /// once; callers dedupe). `headers` is called at most once, only by headers exchanges.
    pub fn route(
        &self,
        routing_key: &str,
        headers: &mut dyn FnMut() -> Option<FieldTable>,
        f: &mut dyn FnMut(&Destination),
    ) {
        let b = self.bindings.read().unwrap_or_else(|e| e.into_inner());
        match self.kind {
            ExchangeKind::Direct => {
                if let Some(dests) = b.direct.get(routing_key) {
                    dests.iter().for_each(f);
                }
            }
            ExchangeKind::Fanout => b.fanout.iter().for_each(f),
            ExchangeKind::Topic => b.topic.route(routing_key, f),
            ExchangeKind::Headers => {
                if b.headers.is_empty() {
                    return;
                }
                let h = headers();
                for (args, dest) in &b.headers {
                    if headers::headers_match(args, h.as_ref()) {
                        f(dest);
                    }
                }
            }
            ExchangeKind::ConsistentHash => {
                let dest = match &self.hash_header {
                    None => b.ring.route(routing_key.as_bytes()),
                    Some(name) => {
                        let value = headers()
                            .and_then(|h| h.inner().get(name.as_str()).cloned())
                            .map(|v| format!("{v:?}"))
                            .unwrap_or_default();
                        b.ring.route(value.as_bytes())
                    }
                };
                if let Some(d) = dest {
                    f(d);
                }
            }
        }
    }
}

impl Bindings {
    fn rebuild_ring(&mut self) {
        let Bindings { weights, ring, .. } = self;
        ring.rebuild(weights.iter().map(|(d, w)| (d, *w)));
    }

    fn remove_matcher(
        &mut self,
        kind: ExchangeKind,
        dest: &Destination,
        key: &str,
        args: &FieldTable,
    ) {
        match kind {
            ExchangeKind::Direct => {
                if let Some(v) = self.direct.get_mut(key) {
                    if let Some(i) = v.iter().position(|d| d == dest) {
                        v.swap_remove(i);
                    }
                    if v.is_empty() {
                        self.direct.remove(key);
                    }
                }
            }
            ExchangeKind::Fanout => {
                if let Some(i) = self.fanout.iter().position(|d| d == dest) {
                    self.fanout.swap_remove(i);
                }
            }
            ExchangeKind::Topic => {
                let pair = (key.to_string(), dest.clone());
                if let Some(n) = self.topic_pairs.get_mut(&pair) {
                    *n -= 1;
                    if *n == 0 {
                        self.topic_pairs.remove(&pair);
                        self.topic.remove(key, dest);
                    }
                }
            }
            ExchangeKind::Headers => {
                if let Some(i) = self
                    .headers
                    .iter()
                    .position(|(a, d)| d == dest && a == args)
                {
                    self.headers.remove(i);
                }
            }
            ExchangeKind::ConsistentHash => {
                let w = consistent_hash::weight(key).unwrap_or(0);
                if let Some(i) = self.weights.iter().position(|(d, x)| d == dest && *x == w) {
                    self.weights.remove(i);
                    self.rebuild_ring();
                }
            }
        }
    }
}
