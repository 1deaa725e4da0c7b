//! Model-based routing test: random sequences of topology changes (exchanges of the four
//! built-in types, queues, queue and exchange-to-exchange bindings, unbinds, deletes) and
//! publishes, each publish checked against a small model of RabbitMQ's routing rules:
//!
//! * direct: binding key == routing key; fanout: every binding;
//! * topic: words split on '.', `*` = exactly one word, `#` = zero or more (the empty key
//!   has no words);
//! * headers: over the binding arguments not starting with `x-`, `x-match` `any` = some pair
//!   present with an equal value, otherwise (`all`, or absent) = every pair present and equal;
//! * exchange-to-exchange bindings are followed transitively, each exchange visited at most once
//!   (the one published to included); a queue gets at most one copy;
//! * an exchange none of whose bindings matched passes the message to its alternate exchange
//!   (the `alternate-exchange` argument, if that exchange exists; visited once like the rest);
//! * the default exchange routes to the queue named by the routing key;
//! * with CC (sender-selected distribution, the second test) the routing key and the CC keys
//!   form one key set, and a binding matches if it matches any key of the set, at every exchange.
//!
//! A mandatory publish in confirm mode must come back with 312 NO_ROUTE exactly when the model
//! routes to no queue. After each publish every existing queue is read with basic.get: it must
//! hold the message iff the model routes there, and only once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::util::*;
use interop_tests::*;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, ExchangeKind};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

const EXCHANGES: usize = 3;
const QUEUES: usize = 4;

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Direct,
    Fanout,
    Topic,
    Headers,
}

/// An exchange: its type and its alternate exchange (by index, resolved when routing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct XDef {
    kind: Kind,
    alternate: Option<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Dest {
    Queue(usize),
    Exchange(usize),
}

/// A binding as the broker knows it: (source, destination, key, arguments). Arguments are
/// string pairs (only headers bindings have any).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Binding {
    src: usize,
    dest: Dest,
    key: String,
    args: Vec<(String, String)>,
}

#[derive(Default, Debug)]
struct Model {
    exchanges: BTreeMap<usize, XDef>,
    queues: BTreeSet<usize>,
    bindings: BTreeSet<Binding>,
}

/// The words of a routing key or topic pattern; the empty key has none.
fn words(s: &str) -> Vec<&str> {
    if s.is_empty() {
        vec![]
    } else {
        s.split('.').collect()
    }
}

fn topic_match(pattern: &[&str], key: &[&str]) -> bool {
    match pattern.split_first() {
        None => key.is_empty(),
        Some((&"#", rest)) => (0..=key.len()).any(|i| topic_match(rest, &key[i..])),
        Some((&"*", rest)) => !key.is_empty() && topic_match(rest, &key[1..]),
        Some((w, rest)) => key.first() == Some(w) && topic_match(rest, &key[1..]),
    }
}

fn headers_match(args: &[(String, String)], headers: &[(String, String)]) -> bool {
    let any = args.iter().any(|(k, v)| k == "x-match" && v == "any");
    let present = |(k, v): &(String, String)| headers.iter().any(|(hk, hv)| hk == k && hv == v);
    let mut pattern = args.iter().filter(|(k, _)| !k.starts_with("x-"));
    if any {
        pattern.any(present)
    } else {
        pattern.all(present)
    }
}

impl Model {
    fn matches(&self, b: &Binding, keys: &[String], headers: &[(String, String)]) -> bool {
        match self.exchanges[&b.src].kind {
            Kind::Direct => keys.contains(&b.key),
            Kind::Fanout => true,
            Kind::Topic => keys.iter().any(|k| topic_match(&words(&b.key), &words(k))),
            Kind::Headers => headers_match(&b.args, headers),
        }
    }

    /// The queues a message published to exchange `x` with routing keys `keys` (the routing key
    /// and any CC keys) reaches.
    fn route(&self, x: usize, keys: &[String], headers: &[(String, String)]) -> BTreeSet<usize> {
        let mut visited = BTreeSet::from([x]);
        let mut todo = vec![x];
        let mut queues = BTreeSet::new();
        while let Some(x) = todo.pop() {
            let mut dests: Vec<Dest> = self
                .bindings
                .iter()
                .filter(|b| b.src == x && self.matches(b, keys, headers))
                .map(|b| b.dest.clone())
                .collect();
            if dests.is_empty() {
                let ae = self.exchanges[&x].alternate;
                dests.extend(
                    ae.filter(|a| self.exchanges.contains_key(a))
                        .map(Dest::Exchange),
                );
            }
            for d in dests {
                match d {
                    Dest::Queue(q) => {
                        queues.insert(q);
                    }
                    Dest::Exchange(d) => {
                        if visited.insert(d) {
                            todo.push(d);
                        }
                    }
                }
            }
        }
        queues
    }

    /// The topology, for failure messages.
    fn describe(&self) -> String {
        let xs: Vec<String> = self
            .exchanges
            .iter()
            .map(|(i, d)| match d.alternate {
                Some(a) => format!("x{i} {:?} (alternate x{a})", d.kind),
                None => format!("x{i} {:?}", d.kind),
            })
            .collect();
        let bs: Vec<String> = self
            .bindings
            .iter()
            .map(|b| {
                format!(
                    "x{} -> {:?} key {:?} args {:?}",
                    b.src, b.dest, b.key, b.args
                )
            })
            .collect();
        format!(
            "exchanges [{}], queues {:?}, bindings [{}]",
            xs.join(", "),
            self.queues,
            bs.join("; ")
        )
    }

    fn exists(&self, d: &Dest) -> bool {
        match d {
            Dest::Queue(q) => self.queues.contains(q),
            Dest::Exchange(x) => self.exchanges.contains_key(x),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Operations and their generators
// ---------------------------------------------------------------------------------------------

/// What a bind may use; the source exchange's type picks the key (direct and fanout: `key`,
/// topic: `pattern`) or the arguments (headers, with key "").
#[derive(Clone, Debug)]
struct BindSpec {
    key: String,
    pattern: String,
    args: Vec<(String, String)>,
}

#[derive(Clone, Debug)]
enum Op {
    DeclareExchange(usize, XDef),
    DeclareQueue(usize),
    DeleteExchange(usize),
    DeleteQueue(usize),
    Bind {
        src: usize,
        dest: Dest,
        spec: BindSpec,
    },
    /// Removes the `pick`-th (modulo) existing binding to a queue or to an exchange.
    Unbind {
        to_exchange: bool,
        pick: usize,
    },
    /// To exchange `exchange`, or (None) to the default exchange with the name of queue
    /// `default_queue` as routing key.
    Publish {
        exchange: Option<usize>,
        default_queue: usize,
        key: String,
        headers: Option<Vec<(String, String)>>,
        /// CC keys (used only by the CC variant of the test).
        cc: Vec<String>,
    },
}

fn xdef() -> impl Strategy<Value = XDef> {
    let kind = prop_oneof![
        Just(Kind::Direct),
        Just(Kind::Fanout),
        Just(Kind::Topic),
        Just(Kind::Headers)
    ];
    (kind, prop::option::weighted(0.3, 0..EXCHANGES))
        .prop_map(|(kind, alternate)| XDef { kind, alternate })
}

/// 0 to 3 words from `alphabet`, mostly 1 or 2.
fn dotted(alphabet: &'static [&'static str]) -> impl Strategy<Value = String> {
    let len = prop_oneof![1 => Just(0usize), 4 => Just(1), 4 => Just(2), 1 => Just(3)];
    len.prop_flat_map(move |n| prop::collection::vec(prop::sample::select(alphabet), n))
        .prop_map(|ws| ws.join("."))
}

fn routing_key() -> impl Strategy<Value = String> {
    dotted(&["a", "b", "c"])
}

fn pairs(
    keys: &'static [&'static str],
    max: usize,
) -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::btree_map(
        prop::sample::select(keys),
        prop::sample::select(&["1", "2"][..]),
        0..=max,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    })
}

fn bind_spec() -> impl Strategy<Value = BindSpec> {
    let x_match = prop::option::of(prop::sample::select(&["all", "any"][..]));
    (
        routing_key(),
        dotted(&["a", "b", "c", "*", "#"]),
        x_match,
        // x- keys other than x-match are ignored by the headers exchange
        pairs(&["h1", "h2", "x-h"], 2),
    )
        .prop_map(|(key, pattern, x_match, pattern_pairs)| {
            let mut args: Vec<(String, String)> = x_match
                .map(|m| ("x-match".to_string(), m.to_string()))
                .into_iter()
                .collect();
            args.extend(pattern_pairs);
            args.sort();
            BindSpec { key, pattern, args }
        })
}

fn op() -> impl Strategy<Value = Op> {
    let x = 0..EXCHANGES;
    let q = 0..QUEUES;
    let dest = prop_oneof![
        3 => q.clone().prop_map(Dest::Queue),
        1 => x.clone().prop_map(Dest::Exchange),
    ];
    prop_oneof![
        1 => (x.clone(), xdef()).prop_map(|(i, d)| Op::DeclareExchange(i, d)),
        1 => q.clone().prop_map(Op::DeclareQueue),
        1 => x.clone().prop_map(Op::DeleteExchange),
        1 => q.clone().prop_map(Op::DeleteQueue),
        8 => (x.clone(), dest, bind_spec()).prop_map(|(src, dest, spec)| Op::Bind { src, dest, spec }),
        2 => (any::<bool>(), any::<usize>()).prop_map(|(to_exchange, pick)| Op::Unbind { to_exchange, pick }),
        6 => (
            prop::option::weighted(0.85, x),
            q,
            routing_key(),
            prop::option::of(pairs(&["h1", "h2", "h3", "x-h"], 3)),
            prop::collection::vec(routing_key(), 0..=2),
        )
            .prop_map(|(exchange, default_queue, key, headers, cc)| Op::Publish {
                exchange,
                default_queue,
                key,
                headers,
                cc,
            }),
    ]
}

/// The initial exchange types (every exchange and queue exists at the start) and the steps.
fn scenario() -> impl Strategy<Value = (Vec<XDef>, Vec<Op>)> {
    (
        prop::collection::vec(xdef(), EXCHANGES),
        prop::collection::vec(op(), 20..60),
    )
}

// ---------------------------------------------------------------------------------------------
// Running a scenario against the broker
// ---------------------------------------------------------------------------------------------

fn amqp_kind(k: Kind) -> ExchangeKind {
    match k {
        Kind::Direct => ExchangeKind::Direct,
        Kind::Fanout => ExchangeKind::Fanout,
        Kind::Topic => ExchangeKind::Topic,
        Kind::Headers => ExchangeKind::Headers,
    }
}

fn args_table(args: &[(String, String)]) -> FieldTable {
    table(args.iter().map(|(k, v)| (k.as_str(), lstr(v))).collect())
}

struct Broker {
    ch: Channel,
    prefix: String,
    /// Whether publishes carry their CC keys.
    with_cc: bool,
}

fn fail(step: usize, what: &str, e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(format!("step {step}: {what}: {e}"))
}

impl Broker {
    fn x(&self, i: usize) -> String {
        format!("{}-x{i}", self.prefix)
    }

    fn q(&self, j: usize) -> String {
        format!("{}-q{j}", self.prefix)
    }

    fn dest(&self, d: &Dest) -> String {
        match d {
            Dest::Queue(q) => self.q(*q),
            Dest::Exchange(x) => self.x(*x),
        }
    }

    async fn declare_exchange(&self, i: usize, d: XDef) -> lapin::Result<()> {
        let mut args = FieldTable::default();
        if let Some(ae) = d.alternate {
            args.insert("alternate-exchange".into(), lstr(&self.x(ae)));
        }
        self.ch
            .exchange_declare(
                self.x(i).as_str().into(),
                amqp_kind(d.kind),
                ExchangeDeclareOptions::default(),
                args,
            )
            .await
    }

    async fn declare_queue(&self, j: usize) -> lapin::Result<()> {
        self.ch
            .queue_declare(
                self.q(j).as_str().into(),
                QueueDeclareOptions::exclusive(),
                FieldTable::default(),
            )
            .await
            .map(|_| ())
    }

    async fn bind(&self, b: &Binding) -> lapin::Result<()> {
        let (src, dest) = (self.x(b.src), self.dest(&b.dest));
        let args = args_table(&b.args);
        match b.dest {
            Dest::Queue(_) => {
                self.ch
                    .queue_bind(
                        dest.as_str().into(),
                        src.as_str().into(),
                        b.key.as_str().into(),
                        QueueBindOptions::default(),
                        args,
                    )
                    .await
            }
            Dest::Exchange(_) => {
                self.ch
                    .exchange_bind(
                        dest.as_str().into(),
                        src.as_str().into(),
                        b.key.as_str().into(),
                        ExchangeBindOptions::default(),
                        args,
                    )
                    .await
            }
        }
    }

    async fn unbind(&self, b: &Binding) -> lapin::Result<()> {
        let (src, dest) = (self.x(b.src), self.dest(&b.dest));
        let args = args_table(&b.args);
        match b.dest {
            Dest::Queue(_) => {
                self.ch
                    .queue_unbind(
                        dest.as_str().into(),
                        src.as_str().into(),
                        b.key.as_str().into(),
                        args,
                    )
                    .await
            }
            Dest::Exchange(_) => {
                self.ch
                    .exchange_unbind(
                        dest.as_str().into(),
                        src.as_str().into(),
                        b.key.as_str().into(),
                        ExchangeUnbindOptions::default(),
                        args,
                    )
                    .await
            }
        }
    }

    /// Applies `op` to the broker and the model (skipping ops that would be errors, such as
    /// binding to a missing exchange); checks routing for publishes. Returns, for a publish,
    /// the number of queues it reached.
    async fn step(&self, m: &mut Model, n: usize, op: &Op) -> Result<Option<usize>, TestCaseError> {
        match op {
            Op::DeclareExchange(i, d) => {
                // redeclaring keeps the existing definition (another one would be a 406)
                let d = *m.exchanges.get(i).unwrap_or(d);
                self.declare_exchange(*i, d)
                    .await
                    .map_err(|e| fail(n, "exchange.declare", e))?;
                m.exchanges.insert(*i, d);
            }
            Op::DeclareQueue(j) => {
                self.declare_queue(*j)
                    .await
                    .map_err(|e| fail(n, "queue.declare", e))?;
                m.queues.insert(*j);
            }
            Op::DeleteExchange(i) => {
                if m.exchanges.remove(i).is_some() {
                    self.ch
                        .exchange_delete(
                            self.x(*i).as_str().into(),
                            ExchangeDeleteOptions::default(),
                        )
                        .await
                        .map_err(|e| fail(n, "exchange.delete", e))?;
                    let gone = Dest::Exchange(*i);
                    m.bindings.retain(|b| b.src != *i && b.dest != gone);
                }
            }
            Op::DeleteQueue(j) => {
                if m.queues.remove(j) {
                    self.ch
                        .queue_delete(self.q(*j).as_str().into(), QueueDeleteOptions::default())
                        .await
                        .map_err(|e| fail(n, "queue.delete", e))?;
                    let gone = Dest::Queue(*j);
                    m.bindings.retain(|b| b.dest != gone);
                }
            }
            Op::Bind { src, dest, spec } => {
                let Some(XDef { kind, .. }) = m.exchanges.get(src).copied() else {
                    return Ok(None);
                };
                if !m.exists(dest) {
                    return Ok(None);
                }
                let (key, args) = match kind {
                    Kind::Direct | Kind::Fanout => (spec.key.clone(), vec![]),
                    Kind::Topic => (spec.pattern.clone(), vec![]),
                    Kind::Headers => (String::new(), spec.args.clone()),
                };
                let b = Binding {
                    src: *src,
                    dest: dest.clone(),
                    key,
                    args,
                };
                self.bind(&b).await.map_err(|e| fail(n, "bind", e))?;
                m.bindings.insert(b);
            }
            Op::Unbind { to_exchange, pick } => {
                let candidates: Vec<Binding> = m
                    .bindings
                    .iter()
                    .filter(|b| matches!(b.dest, Dest::Exchange(_)) == *to_exchange)
                    .cloned()
                    .collect();
                if candidates.is_empty() {
                    return Ok(None);
                }
                let b = &candidates[pick % candidates.len()];
                self.unbind(b).await.map_err(|e| fail(n, "unbind", e))?;
                m.bindings.remove(b);
            }
            Op::Publish { .. } => return self.publish(m, n, op).await,
        }
        Ok(None)
    }

    async fn publish(&self, m: &Model, n: usize, op: &Op) -> Result<Option<usize>, TestCaseError> {
        let Op::Publish {
            exchange,
            default_queue,
            key,
            headers,
            cc,
        } = op
        else {
            unreachable!()
        };
        let cc = if self.with_cc { cc.as_slice() } else { &[] };
        let (x, key, expected) = match *exchange {
            Some(i) => {
                if !m.exchanges.contains_key(&i) {
                    return Ok(None);
                }
                let keys: Vec<String> = std::iter::once(key).chain(cc).cloned().collect();
                let hs = headers.clone().unwrap_or_default();
                (self.x(i), key.clone(), m.route(i, &keys, &hs))
            }
            None => {
                // the CC keys (words) never name a queue
                let q = *default_queue;
                let expected = m.queues.iter().copied().filter(|j| *j == q).collect();
                (String::new(), self.q(q), expected)
            }
        };
        let body = format!("m{n}");
        let mut hdrs = headers.as_ref().map(|hs| args_table(hs));
        if !cc.is_empty() {
            let cc = cc.iter().map(|k| lstr(k)).collect::<Vec<_>>();
            hdrs.get_or_insert_with(FieldTable::default)
                .insert("CC".into(), lapin::types::AMQPValue::FieldArray(cc.into()));
        }
        let mut props = BasicProperties::default();
        if let Some(t) = hdrs {
            props = props.with_headers(t);
        }
        let confirm = self
            .ch
            .basic_publish(
                x.as_str().into(),
                key.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                body.as_bytes(),
                props,
            )
            .await
            .map_err(|e| fail(n, "publish", e))?;
        let confirmation = within(10, confirm)
            .await
            .map_err(|e| fail(n, "confirm", e))?;
        match (&confirmation, expected.is_empty()) {
            (Confirmation::Ack(None), false) => {}
            (Confirmation::Ack(Some(r)), true) if r.reply_code == 312 => {}
            (other, _) => {
                let got = match other {
                    Confirmation::Ack(None) => "an ack (routed)".to_string(),
                    Confirmation::Ack(Some(r)) => {
                        format!("a return {} {}", r.reply_code, r.reply_text)
                    }
                    other => format!("{other:?}"),
                };
                return Err(fail(
                    n,
                    "publish",
                    format!(
                        "to {x:?} with key {key:?}, CC {cc:?}, headers {headers:?}: expected \
                         routing to queues {expected:?}, got {got}; {}",
                        m.describe()
                    ),
                ));
            }
        }
        let mut reached = BTreeSet::new();
        for &j in &m.queues {
            let q = self.q(j);
            let mut copies = 0;
            while let Some(got) = self
                .ch
                .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
                .await
                .map_err(|e| fail(n, "basic.get", e))?
            {
                if got.delivery.data != body.as_bytes() {
                    return Err(fail(n, "basic.get", format!("unexpected message in q{j}")));
                }
                copies += 1;
                if copies > 1 || !expected.contains(&j) {
                    break;
                }
            }
            if copies > 1 {
                return Err(fail(n, "routing", format!("q{j} got {copies} copies")));
            }
            if copies == 1 {
                reached.insert(j);
            }
        }
        if reached != expected {
            return Err(fail(
                n,
                "routing",
                format!(
                    "to {x:?} with key {key:?}, CC {cc:?}, headers {headers:?}: reached queues \
                     {reached:?}, the model says {expected:?}; {}",
                    m.describe()
                ),
            ));
        }
        Ok(Some(reached.len()))
    }
}

/// Runs one scenario on a fresh connection with fresh names; returns the number of publishes
/// and of deliveries checked.
async fn run_scenario(
    kinds: &[XDef],
    ops: &[Op],
    with_cc: bool,
) -> Result<(usize, usize), TestCaseError> {
    let conn = within(10, connect()).await;
    let ch = within(10, conn.create_channel()).await.expect("channel");
    within(10, confirm_mode(&ch)).await;
    let broker = Broker {
        ch,
        prefix: unique("model"),
        with_cc,
    };
    let mut model = Model::default();
    let mut result = Ok((0, 0));
    let setup = kinds
        .iter()
        .enumerate()
        .map(|(i, k)| Op::DeclareExchange(i, *k))
        .chain((0..QUEUES).map(Op::DeclareQueue));
    let setup: Vec<Op> = setup.collect();
    for (n, op) in setup.iter().chain(ops).enumerate() {
        let step = tokio::time::timeout(Duration::from_secs(10), broker.step(&mut model, n, op));
        match step
            .await
            .unwrap_or_else(|_| Err(fail(n, "no answer from the broker", format!("{op:?}"))))
        {
            Ok(reached) => {
                if let (Ok((publishes, deliveries)), Some(r)) = (&mut result, reached) {
                    *publishes += 1;
                    *deliveries += r;
                }
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    // clean up also after a failure (shrinking runs many scenarios): a fresh channel, errors
    // ignored; the queues are exclusive and go with the connection
    let cleanup = async {
        if let Ok(ch) = conn.create_channel().await {
            for i in 0..EXCHANGES {
                let _ = ch
                    .exchange_delete(
                        broker.x(i).as_str().into(),
                        ExchangeDeleteOptions::default(),
                    )
                    .await;
            }
            let _ = ch.close(200, "bye".into()).await;
        }
        // channels closed explicitly: lapin closing them on drop could race with the
        // connection close
        let _ = broker.ch.close(200, "bye".into()).await;
        let _ = conn.close(200, "bye".into()).await;
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), cleanup).await;
    result
}

/// Runs `PROPTEST_CASES` (default `default_cases`) random scenarios.
fn check_scenarios(with_cc: bool, default_cases: u32) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_cases);
    let mut runner = TestRunner::new(Config {
        cases,
        max_shrink_iters: 2000,
        failure_persistence: None,
        ..Config::default()
    });
    let totals = std::sync::Mutex::new((0, 0));
    let result = runner.run(&scenario(), |(kinds, ops)| {
        let (p, d) = rt.block_on(run_scenario(&kinds, &ops, with_cc))?;
        let mut t = totals.lock().unwrap();
        *t = (t.0 + p, t.1 + d);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (publishes, deliveries) = totals.into_inner().unwrap();
    eprintln!("routing model: {cases} scenarios, {publishes} publishes, {deliveries} deliveries");
    assert!(
        deliveries > 2 * cases as usize,
        "the scenarios route too little to be useful"
    );
}

#[test]
fn routing_agrees_with_the_model() {
    check_scenarios(false, 32);
}

/// The same with CC keys on publishes. Fails on Warren within ~100 cases; a shrunk example:
/// x0 direct --"a"--> x1 topic --"b"--> q2, publish to x0 with key "b" and CC ["a"]: RabbitMQ
/// routes to q2, Warren returns NO_ROUTE (see also `extensions::cc_bcc`).
#[test]
fn routing_with_cc_agrees_with_the_model() {
    check_scenarios(true, 100);
}
