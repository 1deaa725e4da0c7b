//! Access control (issue 12) through lapin: the permission matrix (allowed and refused, with
//! RabbitMQ 3.10.8's codes and texts), vhost access and isolation, permission changes, user and
//! vhost deletion closing connections, topic permissions and vhost limits.
//!
//! Users, vhosts and permissions are set up with `rabbitmqctl`'s subcommands through
//! [`interop_tests::ctl`]: `warren ctl` on the in-process Warren, or the `CTL` command prefix
//! against `AMQP_URL` (`CTL="rabbitmqctl -n NODE"` for RabbitMQ,
//! `CTL="warren ctl --data-dir DIR"` for an external Warren). Without `CTL` against an external
//! broker the tests skip, saying so. Every user and vhost a test creates is deleted at its end.
//! interop-tests/pika/test_access.py has the same cases (and more) with pika.

use std::fmt::Debug;

use interop_tests::*;
use lapin::options::*;
use lapin::protocol::{connection, AMQPClass};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

const LOGIN_REFUSED: &str = "ACCESS_REFUSED - Login was refused using authentication mechanism \
                             PLAIN. For details see the broker logfile.";

/// RabbitMQ 3.10.8's text for a refused configure/write/read check.
fn denied_text(kind: &str, name: &str, vhost: &str, user: &str) -> String {
    format!(
        "ACCESS_REFUSED - access to {kind} '{name}' in vhost '{vhost}' refused for user '{user}'"
    )
}

/// RabbitMQ 3.10.8's text for a refused topic permission check.
fn topic_denied_text(key: &str, exchange: &str, vhost: &str, user: &str) -> String {
    format!(
        "ACCESS_REFUSED - access to topic '{key}' in exchange '{exchange}' in vhost '{vhost}' \
         refused for user '{user}'"
    )
}

/// The 403 for a server-named queue: `amq.gen-` and 22 characters of RFC 4648 base64url.
#[track_caller]
fn assert_generated_queue_denied(text: &str, code_text_prefix: &str, suffix: &str) {
    let name = text
        .strip_prefix(code_text_prefix)
        .and_then(|rest| rest.strip_suffix(suffix))
        .unwrap_or_else(|| panic!("unexpected text {text:?}"));
    let generated = name
        .strip_prefix("amq.gen-")
        .unwrap_or_else(|| panic!("not a generated name in {text:?}"));
    assert!(
        generated.len() == 22
            && generated
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
        "not a generated name in {text:?}"
    );
}

/// Asserts an error with exactly `code` and `text`.
#[track_caller]
fn assert_exact<T: Debug>(r: lapin::Result<T>, code: u16, text: &str) {
    let got = assert_amqp_error(r, code, text);
    assert_eq!(got, text);
}

/// Waits (at most 10 s) for the broker to close the connection whose `events_listener` this
/// is; returns the reply code and text of its connection.close.
async fn closed_by_broker(
    mut events: impl futures::Stream<Item = lapin::Event> + Unpin,
) -> (u16, String) {
    use futures::StreamExt;
    loop {
        match within(10, events.next()).await {
            Some(lapin::Event::Error(e)) => {
                return protocol_error(&e)
                    .unwrap_or_else(|| panic!("connection ended without an AMQP error: {e}"))
            }
            Some(_) => continue,
            None => panic!("the connection's events ended without an error"),
        }
    }
}

/// Like [`closed_by_broker`], but `None` when lapin reports the socket's end instead of the
/// connection.close: RabbitMQ does not always wait for the close-ok after a vhost deletion, and
/// lapin then reports the reset (which wins the race) rather than the close it has read.
async fn closed_or_reset(
    mut events: impl futures::Stream<Item = lapin::Event> + Unpin,
) -> Option<(u16, String)> {
    use futures::StreamExt;
    loop {
        match within(10, events.next()).await {
            Some(lapin::Event::Error(e)) => match e.kind() {
                lapin::ErrorKind::IOError(io) => {
                    eprintln!("lapin reported the socket's end ({io}) instead of the close");
                    return None;
                }
                _ => {
                    return Some(
                        protocol_error(&e).unwrap_or_else(|| panic!("connection ended with {e}")),
                    )
                }
            },
            Some(_) => continue,
            None => panic!("the connection's events ended without an error"),
        }
    }
}

/// A raw-frame connection (no channel) as `account`: it reads the broker's connection.close
/// exactly as sent, whatever the broker does with the socket afterwards.
async fn raw_open_as(account: &Account) -> interop_tests::raw::Raw {
    let addr = interop_tests::broker_addr();
    let (user, pass, vhost) = (&account.user, &account.password, &account.vhost);
    interop_tests::raw::Raw::open_as(&addr, user, pass, vhost)
        .await
        .0
}

/// A lower-case name (permission tests put upper-case letters in names on purpose).
fn short(prefix: &str) -> String {
    format!("wl-{prefix}-{:012x}", rand::random::<u64>() >> 16)
}

/// Users and vhosts a test creates through `ctl`; `cleanup` deletes them (and so does dropping
/// it, when the test failed before `cleanup`).
struct Acl {
    users: Vec<String>,
    vhosts: Vec<String>,
    admin_user: String,
    admin_pass: String,
}

impl Acl {
    /// `None` (after printing why) when users cannot be set up on the broker under test.
    fn new(test: &str) -> Option<Acl> {
        if let Some(reason) = ctl_unavailable() {
            eprintln!("SKIPPED access::{test}: {reason}");
            return None;
        }
        let (admin_user, admin_pass, _) = credentials();
        Some(Acl {
            users: Vec::new(),
            vhosts: Vec::new(),
            admin_user,
            admin_pass,
        })
    }

    async fn ctl(&self, args: &[&str]) {
        if let Err(e) = ctl(args).await {
            panic!("{e}");
        }
    }

    /// A new user; returns (name, password).
    async fn user(&mut self) -> (String, String) {
        let name = short("u");
        let password = format!("pw-{:016x}", rand::random::<u64>());
        self.ctl(&["add_user", &name, &password]).await;
        self.users.push(name.clone());
        (name, password)
    }

    /// A new vhost; with `admin`, the AMQP_URL user gets `.* .* .*` in it.
    async fn vhost(&mut self, admin: bool) -> String {
        let name = short("v");
        self.ctl(&["add_vhost", &name]).await;
        self.vhosts.push(name.clone());
        if admin {
            let user = self.admin_user.clone();
            self.grant(&user, &name, ".*", ".*", ".*").await;
        }
        name
    }

    async fn grant(&self, user: &str, vhost: &str, configure: &str, write: &str, read: &str) {
        self.ctl(&["set_permissions", "-p", vhost, user, configure, write, read])
            .await;
    }

    /// A new vhost (the AMQP_URL user has `.*` there) and a new user with the given
    /// permissions in it.
    async fn setup(&mut self, configure: &str, write: &str, read: &str) -> Account {
        let vhost = self.vhost(true).await;
        let (user, password) = self.user().await;
        self.grant(&user, &vhost, configure, write, read).await;
        Account {
            user,
            password,
            vhost,
        }
    }

    /// The AMQP_URL user on `vhost`.
    fn admin(&self, vhost: &str) -> Account {
        Account {
            user: self.admin_user.clone(),
            password: self.admin_pass.clone(),
            vhost: vhost.to_string(),
        }
    }

    async fn cleanup(mut self) {
        for user in std::mem::take(&mut self.users) {
            let _ = ctl(&["delete_user", &user]).await;
        }
        for vhost in std::mem::take(&mut self.vhosts) {
            let _ = ctl(&["delete_vhost", &vhost]).await;
        }
    }
}

impl Drop for Acl {
    fn drop(&mut self) {
        for user in std::mem::take(&mut self.users) {
            let _ = ctl_blocking(&["delete_user".to_string(), user]);
        }
        for vhost in std::mem::take(&mut self.vhosts) {
            let _ = ctl_blocking(&["delete_vhost".to_string(), vhost]);
        }
    }
}

/// Credentials and vhost to connect with.
#[derive(Clone)]
struct Account {
    user: String,
    password: String,
    vhost: String,
}

impl Account {
    fn url(&self) -> String {
        url_with(&self.user, &self.password, &self.vhost)
    }

    async fn try_connect(&self) -> lapin::Result<Connection> {
        within(
            30,
            Connection::connect(&self.url(), ConnectionProperties::default()),
        )
        .await
    }

    async fn connect(&self) -> Client {
        let conn = self
            .try_connect()
            .await
            .unwrap_or_else(|e| panic!("connect as {} to {}: {e}", self.user, self.vhost));
        Client {
            conn,
            account: self.clone(),
        }
    }

    /// Asserts that connecting fails with `code` and exactly `text`.
    async fn assert_refused(&self, code: u16, text: &str) {
        let r = self.try_connect().await.map(|_| ());
        assert_exact(r, code, text);
    }
}

/// A connection as one account; every operation runs on a channel of its own, so that a
/// refusal (which closes that channel) leaves the others alone.
struct Client {
    conn: Connection,
    account: Account,
}

impl Client {
    async fn ch(&self) -> Channel {
        self.conn.create_channel().await.expect("channel.open")
    }

    /// Asserts a 403 with RabbitMQ's text for `kind` `name`, and that the connection is open.
    #[track_caller]
    fn denied<T: Debug>(&self, r: lapin::Result<T>, kind: &str, name: &str) {
        let text = denied_text(kind, name, &self.account.vhost, &self.account.user);
        assert_exact(r, 403, &text);
        assert!(self.conn.status().connected(), "the connection was closed");
    }

    #[track_caller]
    fn topic_denied<T: Debug>(&self, r: lapin::Result<T>, key: &str, exchange: &str) {
        let text = topic_denied_text(key, exchange, &self.account.vhost, &self.account.user);
        assert_exact(r, 403, &text);
        assert!(self.conn.status().connected(), "the connection was closed");
    }

    async fn declare_x(&self, x: &str, kind: ExchangeKind) -> lapin::Result<()> {
        let opts = ExchangeDeclareOptions::default();
        let ch = self.ch().await;
        ch.exchange_declare(x.into(), kind, opts, FieldTable::default())
            .await
    }

    async fn passive_x(&self, x: &str) -> lapin::Result<()> {
        let opts = ExchangeDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let ch = self.ch().await;
        ch.exchange_declare(x.into(), ExchangeKind::Direct, opts, FieldTable::default())
            .await
    }

    async fn delete_x(&self, x: &str) -> lapin::Result<()> {
        let ch = self.ch().await;
        ch.exchange_delete(x.into(), ExchangeDeleteOptions::default())
            .await
    }

    async fn declare_q_with(&self, q: &str, opts: QueueDeclareOptions) -> lapin::Result<String> {
        let ch = self.ch().await;
        let declared = ch
            .queue_declare(q.into(), opts, FieldTable::default())
            .await?;
        Ok(declared.name().to_string())
    }

    async fn declare_q(&self, q: &str) -> lapin::Result<String> {
        self.declare_q_with(q, QueueDeclareOptions::default()).await
    }

    async fn passive_q(&self, q: &str) -> lapin::Result<String> {
        let opts = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        self.declare_q_with(q, opts).await
    }

    async fn delete_q(&self, q: &str) -> lapin::Result<()> {
        let ch = self.ch().await;
        ch.queue_delete(q.into(), QueueDeleteOptions::default())
            .await
            .map(|_| ())
    }

    async fn purge(&self, q: &str) -> lapin::Result<()> {
        let ch = self.ch().await;
        ch.queue_purge(q.into(), QueuePurgeOptions::default())
            .await
            .map(|_| ())
    }

    /// basic.get (no-ack); the body, if there was a message.
    async fn get(&self, q: &str) -> lapin::Result<Option<Vec<u8>>> {
        let ch = self.ch().await;
        let m = ch
            .basic_get(q.into(), BasicGetOptions { no_ack: true })
            .await?;
        Ok(m.map(|m| m.delivery.data))
    }

    async fn consume(&self, q: &str) -> lapin::Result<()> {
        let ch = self.ch().await;
        ch.basic_consume(
            q.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map(|_| ())
    }

    /// basic.publish on a confirm-mode channel, awaiting the confirm, so that a refusal (an
    /// asynchronous channel.close) comes back as the error.
    async fn publish(&self, x: &str, key: &str, body: &[u8]) -> lapin::Result<()> {
        let ch = self.ch().await;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        let confirm = ch
            .basic_publish(
                x.into(),
                key.into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default(),
            )
            .await?;
        let confirmation = within(10, confirm).await?;
        assert!(confirmation.is_ack(), "publish nacked: {confirmation:?}");
        Ok(())
    }

    async fn bind_q(&self, q: &str, x: &str, key: &str) -> lapin::Result<()> {
        let ch = self.ch().await;
        ch.queue_bind(
            q.into(),
            x.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
    }

    async fn unbind_q(&self, q: &str, x: &str, key: &str) -> lapin::Result<()> {
        let ch = self.ch().await;
        ch.queue_unbind(q.into(), x.into(), key.into(), FieldTable::default())
            .await
    }

    async fn bind_x(&self, destination: &str, source: &str, key: &str) -> lapin::Result<()> {
        let ch = self.ch().await;
        ch.exchange_bind(
            destination.into(),
            source.into(),
            key.into(),
            ExchangeBindOptions::default(),
            FieldTable::default(),
        )
        .await
    }

    async fn unbind_x(&self, destination: &str, source: &str, key: &str) -> lapin::Result<()> {
        let ch = self.ch().await;
        ch.exchange_unbind(
            destination.into(),
            source.into(),
            key.into(),
            ExchangeUnbindOptions::default(),
            FieldTable::default(),
        )
        .await
    }

    /// The connection still serves requests (a passive declare needs no permission).
    async fn assert_usable(&self) {
        assert!(self.conn.status().connected(), "the connection was closed");
        self.passive_x("amq.direct")
            .await
            .expect("the connection still serves requests");
    }

    async fn close(self) {
        crate::util::close(self.conn).await;
    }
}

/// A vhost where the user has configure `C`, write `W`, read `R` (unanchored, case-sensitive),
/// and the AMQP_URL user has everything. Resource names are lower-case but for a suffix naming
/// the permissions they match: `q-<id>-CW` matches configure and write, not read.
struct Matrix {
    acl: Acl,
    admin: Client,
    user: Client,
    base: String,
}

impl Matrix {
    async fn new(test: &str) -> Option<Matrix> {
        let mut acl = Acl::new(test)?;
        let account = acl.setup("C", "W", "R").await;
        let admin = acl.admin(&account.vhost).connect().await;
        let user = account.connect().await;
        let base = format!("{:08x}", rand::random::<u32>());
        Some(Matrix {
            acl,
            admin,
            user,
            base,
        })
    }

    fn name(&self, kind: &str, flags: &str) -> String {
        let flags = if flags.is_empty() { "none" } else { flags };
        format!("{kind}-{}-{flags}", self.base)
    }

    /// An existing queue (declared by the admin).
    async fn q(&self, flags: &str) -> String {
        let name = self.name("q", flags);
        self.admin.declare_q(&name).await.expect("admin declares");
        name
    }

    /// An existing direct exchange (declared by the admin).
    async fn x(&self, flags: &str) -> String {
        let name = self.name("x", flags);
        self.admin
            .declare_x(&name, ExchangeKind::Direct)
            .await
            .expect("admin declares");
        name
    }

    /// A queue name that does not exist yet.
    fn new_q(&self, flags: &str) -> String {
        self.name("nq", flags)
    }

    /// An exchange name that does not exist yet.
    fn new_x(&self, flags: &str) -> String {
        self.name("nx", flags)
    }

    async fn done(self) {
        self.user.assert_usable().await;
        self.user.close().await;
        self.admin.close().await;
        self.acl.cleanup().await;
    }
}

#[tokio::test]
async fn matrix_exchange_declare_and_delete_need_configure() {
    let Some(m) = Matrix::new("matrix_exchange_declare_and_delete_need_configure").await else {
        return;
    };
    let u = &m.user;
    let direct = || ExchangeKind::Direct;
    u.declare_x(&m.x("C").await, direct()).await.unwrap();
    let x = m.x("WR").await;
    u.denied(u.declare_x(&x, direct()).await, "exchange", &x);
    u.declare_x(&m.new_x("C"), direct()).await.unwrap();
    let nx = m.new_x("WR");
    u.denied(u.declare_x(&nx, direct()).await, "exchange", &nx);
    // the refused declare created nothing
    assert_amqp_error(m.admin.passive_x(&nx).await, 404, "NOT_FOUND - no exchange");
    // passive declares need no permission
    u.passive_x(&m.x("").await).await.unwrap();
    u.passive_x("amq.topic").await.unwrap();

    u.delete_x(&m.x("C").await).await.unwrap();
    let x = m.x("WR").await;
    u.denied(u.delete_x(&x).await, "exchange", &x);
    m.admin.passive_x(&x).await.expect("still there");
    m.done().await;
}

#[tokio::test]
async fn matrix_queue_declare_and_delete_need_configure() {
    let Some(m) = Matrix::new("matrix_queue_declare_and_delete_need_configure").await else {
        return;
    };
    let u = &m.user;
    u.declare_q(&m.q("C").await).await.unwrap();
    let q = m.q("WR").await;
    u.denied(u.declare_q(&q).await, "queue", &q);
    u.declare_q(&m.new_q("C")).await.unwrap();
    let nq = m.new_q("WR");
    u.denied(u.declare_q(&nq).await, "queue", &nq);
    assert_amqp_error(m.admin.passive_q(&nq).await, 404, "NOT_FOUND - no queue");
    // passive declares need no permission
    u.passive_q(&m.q("").await).await.unwrap();
    // the reserved prefix is checked before configure
    let reserved = format!("amq.{}", m.base);
    assert_exact(
        u.declare_q(&reserved).await,
        403,
        &format!("ACCESS_REFUSED - queue name '{reserved}' contains reserved prefix 'amq.*'"),
    );

    u.delete_q(&m.q("C").await).await.unwrap();
    let q = m.q("WR").await;
    u.denied(u.delete_q(&q).await, "queue", &q);
    m.admin.passive_q(&q).await.expect("still there");
    m.done().await;
}

#[tokio::test]
async fn matrix_purge_get_and_consume_need_read() {
    let Some(m) = Matrix::new("matrix_purge_get_and_consume_need_read").await else {
        return;
    };
    let u = &m.user;
    let readable = m.q("R").await;
    let unreadable = m.q("CW").await;
    m.admin.publish("", &readable, b"r").await.unwrap();
    m.admin.publish("", &unreadable, b"cw").await.unwrap();

    assert_eq!(u.get(&readable).await.unwrap(), Some(b"r".to_vec()));
    u.denied(u.get(&unreadable).await, "queue", &unreadable);
    u.purge(&readable).await.unwrap();
    u.denied(u.purge(&unreadable).await, "queue", &unreadable);
    u.consume(&readable).await.unwrap();
    u.denied(u.consume(&unreadable).await, "queue", &unreadable);
    // nothing was taken from the refused queue
    assert_eq!(
        m.admin.get(&unreadable).await.unwrap(),
        Some(b"cw".to_vec())
    );
    m.done().await;
}

#[tokio::test]
async fn matrix_publish_needs_write_on_the_exchange() {
    let Some(m) = Matrix::new("matrix_publish_needs_write_on_the_exchange").await else {
        return;
    };
    let u = &m.user;
    let q = m.q("").await;
    let w = m.x("W").await;
    m.admin.bind_q(&q, &w, "k").await.unwrap();
    u.publish(&w, "k", b"via W").await.unwrap();
    assert_eq!(m.admin.get(&q).await.unwrap(), Some(b"via W".to_vec()));

    let cr = m.x("CR").await;
    u.denied(u.publish(&cr, "k", b"m").await, "exchange", &cr);
    // the default exchange is checked as amq.default, whatever the queue's permissions
    let cwr = m.q("CWR").await;
    u.denied(u.publish("", &cwr, b"m").await, "exchange", "amq.default");
    // write is checked before the exchange's existence
    let missing = m.new_x("CR");
    u.denied(u.publish(&missing, "k", b"m").await, "exchange", &missing);
    let missing = m.new_x("W");
    assert_exact(
        u.publish(&missing, "k", b"m").await,
        404,
        &format!(
            "NOT_FOUND - no exchange '{missing}' in vhost '{}'",
            m.user.account.vhost
        ),
    );
    assert_eq!(m.admin.get(&q).await.unwrap(), None);
    m.done().await;
}

#[tokio::test]
async fn matrix_queue_bind_and_unbind_need_write_on_queue_and_read_on_exchange() {
    let Some(m) =
        Matrix::new("matrix_queue_bind_and_unbind_need_write_on_queue_and_read_on_exchange").await
    else {
        return;
    };
    let u = &m.user;
    let (qw, qcr) = (m.q("W").await, m.q("CR").await);
    let (xr, xcw) = (m.x("R").await, m.x("CW").await);
    u.bind_q(&qw, &xr, "k").await.unwrap();
    u.denied(u.bind_q(&qcr, &xr, "k").await, "queue", &qcr);
    u.denied(u.bind_q(&qw, &xcw, "k").await, "exchange", &xcw);
    // the queue is checked first
    u.denied(u.bind_q(&qcr, &xcw, "k").await, "queue", &qcr);

    for (q, x) in [(&qw, &xr), (&qcr, &xr), (&qw, &xcw), (&qcr, &xcw)] {
        m.admin.bind_q(q, x, "k").await.unwrap();
    }
    u.unbind_q(&qw, &xr, "k").await.unwrap();
    u.denied(u.unbind_q(&qcr, &xr, "k").await, "queue", &qcr);
    u.denied(u.unbind_q(&qw, &xcw, "k").await, "exchange", &xcw);
    u.denied(u.unbind_q(&qcr, &xcw, "k").await, "queue", &qcr);
    m.done().await;
}

#[tokio::test]
async fn matrix_exchange_bind_and_unbind_need_write_on_destination_and_read_on_source() {
    let Some(m) =
        Matrix::new("matrix_exchange_bind_and_unbind_need_write_on_destination_and_read_on_source")
            .await
    else {
        return;
    };
    let u = &m.user;
    let (dw, dcr) = (m.x("W").await, m.x("CR").await);
    let (sr, scw) = (m.x("R").await, m.x("CW").await);
    u.bind_x(&dw, &sr, "k").await.unwrap();
    u.denied(u.bind_x(&dcr, &sr, "k").await, "exchange", &dcr);
    u.denied(u.bind_x(&dw, &scw, "k").await, "exchange", &scw);
    // the destination is checked first
    u.denied(u.bind_x(&dcr, &scw, "k").await, "exchange", &dcr);

    for (d, s) in [(&dw, &sr), (&dcr, &sr), (&dw, &scw), (&dcr, &scw)] {
        m.admin.bind_x(d, s, "k").await.unwrap();
    }
    u.unbind_x(&dw, &sr, "k").await.unwrap();
    u.denied(u.unbind_x(&dcr, &sr, "k").await, "exchange", &dcr);
    u.denied(u.unbind_x(&dw, &scw, "k").await, "exchange", &scw);
    u.denied(u.unbind_x(&dcr, &scw, "k").await, "exchange", &dcr);
    m.done().await;
}

#[tokio::test]
async fn empty_patterns_open_the_vhost_but_match_nothing() {
    let Some(mut acl) = Acl::new("empty_patterns_open_the_vhost_but_match_nothing") else {
        return;
    };
    let account = acl.setup("", "", "").await;
    let admin = acl.admin(&account.vhost).connect().await;
    let q = short("q");
    admin.declare_q(&q).await.unwrap();

    let u = account.connect().await;
    assert_eq!(u.passive_q(&q).await.unwrap(), q);
    u.passive_x("amq.direct").await.unwrap();
    u.denied(u.declare_q(&q).await, "queue", &q);
    u.denied(u.get(&q).await, "queue", &q);
    u.denied(u.publish("", &q, b"m").await, "exchange", "amq.default");
    // a server-named queue is checked under the name the server generated
    let text = assert_amqp_error(
        u.declare_q("").await,
        403,
        "ACCESS_REFUSED - access to queue",
    );
    assert_generated_queue_denied(
        &text,
        "ACCESS_REFUSED - access to queue '",
        &format!(
            "' in vhost '{}' refused for user '{}'",
            account.vhost, account.user
        ),
    );
    u.assert_usable().await;
    u.close().await;
    admin.close().await;
    acl.cleanup().await;
}

#[tokio::test]
async fn patterns_are_unanchored_searches_and_server_named_queues_use_the_generated_name() {
    let Some(mut acl) =
        Acl::new("patterns_are_unanchored_searches_and_server_named_queues_use_the_generated_name")
    else {
        return;
    };
    let account = acl.setup("^foo", ".*", ".*").await;
    let u = account.connect().await;
    for exclusive in [false, true] {
        let opts = QueueDeclareOptions {
            exclusive,
            ..Default::default()
        };
        let text = assert_amqp_error(
            u.declare_q_with("", opts).await,
            403,
            "ACCESS_REFUSED - access to queue",
        );
        assert_generated_queue_denied(
            &text,
            "ACCESS_REFUSED - access to queue '",
            &format!(
                "' in vhost '{}' refused for user '{}'",
                account.vhost, account.user
            ),
        );
    }
    u.declare_q("foo").await.unwrap();
    u.declare_q("foobar").await.unwrap();
    u.denied(u.declare_q("xfoo").await, "queue", "xfoo");
    u.assert_usable().await;
    u.close().await;

    // configure '^amq\.gen-' allows server-named queues and nothing else
    let (user, password) = acl.user().await;
    acl.grant(&user, &account.vhost, r"^amq\.gen-", ".*", ".*")
        .await;
    let gen = Account {
        user,
        password,
        vhost: account.vhost.clone(),
    }
    .connect()
    .await;
    let name = gen
        .declare_q_with("", QueueDeclareOptions::exclusive())
        .await
        .unwrap();
    assert!(name.starts_with("amq.gen-"), "{name}");
    gen.denied(gen.declare_q("foo").await, "queue", "foo");
    gen.close().await;
    acl.cleanup().await;
}

#[tokio::test]
async fn default_exchange_is_checked_as_amq_default() {
    let Some(mut acl) = Acl::new("default_exchange_is_checked_as_amq_default") else {
        return;
    };
    let account = acl.setup(".*", r"^amq\.default$", ".*").await;
    let u = account.connect().await;
    let q = u.declare_q("dq").await.unwrap();
    u.publish("", &q, b"hello").await.unwrap();
    assert_eq!(u.get(&q).await.unwrap(), Some(b"hello".to_vec()));
    u.denied(
        u.publish("amq.direct", &q, b"m").await,
        "exchange",
        "amq.direct",
    );
    u.assert_usable().await;
    u.close().await;
    acl.cleanup().await;
}

#[tokio::test]
async fn vhost_without_permissions_is_not_allowed() {
    let Some(mut acl) = Acl::new("vhost_without_permissions_is_not_allowed") else {
        return;
    };
    let vhost = acl.vhost(false).await;
    let (user, password) = acl.user().await;
    let account = Account {
        user: user.clone(),
        password,
        vhost: vhost.clone(),
    };
    account
        .assert_refused(
            530,
            &format!("NOT_ALLOWED - access to vhost '{vhost}' refused for user '{user}'"),
        )
        .await;
    // a permission entry opens it
    acl.grant(&user, &vhost, "", "", "").await;
    account.connect().await.close().await;
    acl.cleanup().await;
}

#[tokio::test]
async fn vhosts_are_isolated() {
    let Some(mut acl) = Acl::new("vhosts_are_isolated") else {
        return;
    };
    let a = acl.setup(".*", ".*", ".*").await;
    let b_vhost = acl.vhost(true).await;
    let in_a = a.connect().await;
    let in_b = acl.admin(&b_vhost).connect().await;

    let (q, x) = (short("q"), short("x"));
    in_a.declare_q(&q).await.unwrap();
    in_a.declare_x(&x, ExchangeKind::Fanout).await.unwrap();
    in_a.bind_q(&q, &x, "").await.unwrap();
    in_a.publish(&x, "", b"in a").await.unwrap();
    // neither the queue nor the exchange exists in the other vhost
    assert_exact(
        in_b.passive_q(&q).await,
        404,
        &format!("NOT_FOUND - no queue '{q}' in vhost '{b_vhost}'"),
    );
    assert_exact(
        in_b.passive_x(&x).await,
        404,
        &format!("NOT_FOUND - no exchange '{x}' in vhost '{b_vhost}'"),
    );
    // the same names in the other vhost are other entities
    in_b.declare_q(&q).await.unwrap();
    in_b.declare_x(&x, ExchangeKind::Fanout).await.unwrap();
    in_b.bind_q(&q, &x, "").await.unwrap();
    in_b.publish(&x, "", b"in b").await.unwrap();
    assert_eq!(in_a.get(&q).await.unwrap(), Some(b"in a".to_vec()));
    assert_eq!(in_a.get(&q).await.unwrap(), None);
    assert_eq!(in_b.get(&q).await.unwrap(), Some(b"in b".to_vec()));
    assert_eq!(in_b.get(&q).await.unwrap(), None);
    // deleting one leaves the other
    in_b.delete_q(&q).await.unwrap();
    in_a.passive_q(&q).await.unwrap();
    // the user's permissions in one vhost open no other
    let elsewhere = Account {
        vhost: b_vhost.clone(),
        ..a.clone()
    };
    elsewhere
        .assert_refused(
            530,
            &format!(
                "NOT_ALLOWED - access to vhost '{b_vhost}' refused for user '{}'",
                a.user
            ),
        )
        .await;
    in_a.close().await;
    in_b.close().await;
    acl.cleanup().await;
}

#[tokio::test]
async fn permission_changes_apply_to_new_channels_without_closing() {
    let Some(mut acl) = Acl::new("permission_changes_apply_to_new_channels_without_closing") else {
        return;
    };
    let account = acl.setup(".*", ".*", ".*").await;
    let u = account.connect().await;
    u.declare_q("pq1").await.unwrap();

    acl.grant(&account.user, &account.vhost, "^nothing$", ".*", ".*")
        .await;
    u.denied(u.declare_q("pq1").await, "queue", "pq1");
    // write and read were left alone
    u.get("pq1").await.unwrap();
    acl.grant(&account.user, &account.vhost, ".*", ".*", ".*")
        .await;
    u.declare_q("pq1").await.unwrap();

    acl.ctl(&["clear_permissions", "-p", &account.vhost, &account.user])
        .await;
    u.denied(u.declare_q("pq1").await, "queue", "pq1");
    u.denied(u.get("pq1").await, "queue", "pq1");
    u.assert_usable().await;
    account
        .assert_refused(
            530,
            &format!(
                "NOT_ALLOWED - access to vhost '{}' refused for user '{}'",
                account.vhost, account.user
            ),
        )
        .await;
    u.close().await;
    acl.cleanup().await;
}

#[tokio::test]
async fn deleting_a_user_closes_its_connections() {
    let Some(mut acl) = Acl::new("deleting_a_user_closes_its_connections") else {
        return;
    };
    let account = acl.setup(".*", ".*", ".*").await;
    let u = account.connect().await;
    u.declare_q("q").await.unwrap();
    let events = u.conn.events_listener();
    let other = acl.admin(&account.vhost).connect().await;

    acl.ctl(&["delete_user", &account.user]).await;
    assert_eq!(
        closed_by_broker(events).await,
        (
            320,
            format!("CONNECTION_FORCED - user '{}' is deleted", account.user)
        )
    );
    other.assert_usable().await;
    account.assert_refused(403, LOGIN_REFUSED).await;
    other.close().await;
    acl.cleanup().await;
}

#[tokio::test]
async fn deleting_a_vhost_closes_its_connections() {
    let Some(mut acl) = Acl::new("deleting_a_vhost_closes_its_connections") else {
        return;
    };
    let account = acl.setup(".*", ".*", ".*").await;
    let other_vhost = acl.vhost(false).await;
    acl.grant(&account.user, &other_vhost, ".*", ".*", ".*")
        .await;
    let u = account.connect().await;
    u.declare_q("q").await.unwrap();
    let events = u.conn.events_listener();
    let elsewhere = Account {
        vhost: other_vhost.clone(),
        ..account.clone()
    };
    let other = elsewhere.connect().await;
    let mut raw = raw_open_as(&account).await;

    acl.ctl(&["delete_vhost", &account.vhost]).await;
    // RabbitMQ sometimes says "is down" (a race in its vhost supervisor)
    let v = &account.vhost;
    let expected = |code: u16, text: &str| {
        code == 320
            && (text == format!("CONNECTION_FORCED - vhost '{v}' is deleted")
                || text == format!("CONNECTION_FORCED - vhost '{v}' is down"))
    };
    // (read without answering: RabbitMQ may already have closed the socket)
    let close = match within(10, raw.read_method()).await {
        Some((0, AMQPClass::Connection(connection::AMQPMethod::Close(c)))) => c,
        other => panic!("expected connection.close, got {other:?}"),
    };
    assert!(
        expected(close.reply_code, close.reply_text.as_str()),
        "{close:?}"
    );
    if let Some((code, text)) = closed_or_reset(events).await {
        assert!(expected(code, &text), "{code} {text}");
    }
    assert!(!u.conn.status().connected());
    other.assert_usable().await;
    account
        .assert_refused(530, &format!("NOT_ALLOWED - vhost {v} not found"))
        .await;
    other.close().await;
    acl.cleanup().await;
}

/// A user with `.*` everywhere in a new vhost, and topic permissions write `^allowed\.`, read
/// `^readok\.` on amq.topic and on amq.direct.
async fn topic_account(acl: &mut Acl) -> Account {
    let vhost = acl.vhost(false).await;
    let (user, password) = acl.user().await;
    acl.grant(&user, &vhost, ".*", ".*", ".*").await;
    for x in ["amq.topic", "amq.direct"] {
        acl.ctl(&[
            "set_topic_permissions",
            "-p",
            &vhost,
            &user,
            x,
            r"^allowed\.",
            r"^readok\.",
        ])
        .await;
    }
    Account {
        user,
        password,
        vhost,
    }
}

#[tokio::test]
async fn topic_publish_checks_the_write_pattern() {
    let Some(mut acl) = Acl::new("topic_publish_checks_the_write_pattern") else {
        return;
    };
    let account = topic_account(&mut acl).await;
    let u = account.connect().await;
    let q = u
        .declare_q_with("", QueueDeclareOptions::exclusive())
        .await
        .unwrap();
    u.bind_q(&q, "amq.topic", "readok.#").await.unwrap();
    u.publish("amq.topic", "allowed.x", b"m").await.unwrap();
    for key in ["denied.x", "xallowed.x", ""] {
        u.topic_denied(u.publish("amq.topic", key, b"m").await, key, "amq.topic");
    }
    u.assert_usable().await;

    // clearing them makes the exchange unrestricted again (on a new channel)
    acl.ctl(&[
        "clear_topic_permissions",
        "-p",
        &account.vhost,
        &account.user,
        "amq.topic",
    ])
    .await;
    u.publish("amq.topic", "denied.x", b"m").await.unwrap();
    u.close().await;
    acl.cleanup().await;
}

#[tokio::test]
async fn topic_bindings_check_the_read_pattern_of_the_source() {
    let Some(mut acl) = Acl::new("topic_bindings_check_the_read_pattern_of_the_source") else {
        return;
    };
    let account = topic_account(&mut acl).await;
    let u = account.connect().await;
    let q = u
        .declare_q_with("", QueueDeclareOptions::exclusive())
        .await
        .unwrap();
    u.bind_q(&q, "amq.topic", "readok.#").await.unwrap();
    u.unbind_q(&q, "amq.topic", "readok.#").await.unwrap();
    let key = "allowed.#";
    u.topic_denied(u.bind_q(&q, "amq.topic", key).await, key, "amq.topic");
    u.topic_denied(u.unbind_q(&q, "amq.topic", key).await, key, "amq.topic");

    let dest = short("xd");
    u.declare_x(&dest, ExchangeKind::Topic).await.unwrap();
    u.topic_denied(u.bind_x(&dest, "amq.topic", key).await, key, "amq.topic");
    u.bind_x(&dest, "amq.topic", "readok.#").await.unwrap();
    // amq.topic as the destination, a source without an entry: allowed
    u.bind_x("amq.topic", &dest, key).await.unwrap();
    u.assert_usable().await;
    u.close().await;
    acl.cleanup().await;
}

#[tokio::test]
async fn topic_permissions_restrict_only_topic_exchanges_with_an_entry() {
    let Some(mut acl) = Acl::new("topic_permissions_restrict_only_topic_exchanges_with_an_entry")
    else {
        return;
    };
    let account = topic_account(&mut acl).await;
    let u = account.connect().await;
    let q = u
        .declare_q_with("", QueueDeclareOptions::exclusive())
        .await
        .unwrap();
    // the entry on amq.direct restricts nothing: it is not a topic exchange
    u.bind_q(&q, "amq.direct", "denied.x").await.unwrap();
    u.publish("amq.direct", "denied.x", b"through")
        .await
        .unwrap();
    assert_eq!(u.get(&q).await.unwrap(), Some(b"through".to_vec()));
    // a topic exchange without an entry for the user is unrestricted
    let x = short("tx");
    u.declare_x(&x, ExchangeKind::Topic).await.unwrap();
    u.bind_q(&q, &x, "denied.#").await.unwrap();
    u.publish(&x, "denied.x", b"free").await.unwrap();
    assert_eq!(u.get(&q).await.unwrap(), Some(b"free".to_vec()));
    u.close().await;
    acl.cleanup().await;
}

#[tokio::test]
async fn vhost_max_connections_refuses_one_more() {
    let Some(mut acl) = Acl::new("vhost_max_connections_refuses_one_more") else {
        return;
    };
    let account = acl.setup(".*", ".*", ".*").await;
    let v = account.vhost.clone();
    acl.ctl(&["set_vhost_limits", "-p", &v, r#"{"max-connections": 1}"#])
        .await;
    let first = account.connect().await;
    let refused = |n: u32| {
        format!(
            "NOT_ALLOWED - access to vhost '{v}' refused for user '{}': connection limit ({n}) \
             is reached",
            account.user
        )
    };
    account.assert_refused(530, &refused(1)).await;
    first.assert_usable().await;
    first.close().await;
    // Room again at once: the broker forgot the closed connection before its close-ok.
    let again = account
        .try_connect()
        .await
        .expect("a connection once the first is closed");
    crate::util::close(again).await;
    acl.ctl(&["set_vhost_limits", "-p", &v, r#"{"max-connections": 0}"#])
        .await;
    account.assert_refused(530, &refused(0)).await;
    acl.cleanup().await;
}

#[tokio::test]
async fn vhost_max_queues_refuses_one_more() {
    let Some(mut acl) = Acl::new("vhost_max_queues_refuses_one_more") else {
        return;
    };
    let account = acl.setup(".*", ".*", ".*").await;
    let v = account.vhost.clone();
    acl.ctl(&["set_vhost_limits", "-p", &v, r#"{"max-queues": 2}"#])
        .await;
    let u = account.connect().await;
    u.declare_q("lq1").await.unwrap();
    u.declare_q("lq2").await.unwrap();
    assert_exact(
        u.declare_q("lq3").await,
        406,
        &format!(
            "PRECONDITION_FAILED - cannot declare queue 'lq3': queue limit in vhost '{v}' (2) is \
             reached"
        ),
    );
    // redeclaring an existing queue and passive declares still work
    u.declare_q("lq1").await.unwrap();
    u.passive_q("lq2").await.unwrap();
    let text = assert_amqp_error(
        u.declare_q_with("", QueueDeclareOptions::exclusive()).await,
        406,
        "PRECONDITION_FAILED - cannot declare queue 'amq.gen-",
    );
    assert_generated_queue_denied(
        &text,
        "PRECONDITION_FAILED - cannot declare queue '",
        &format!("': queue limit in vhost '{v}' (2) is reached"),
    );
    assert!(u.conn.status().connected());
    acl.ctl(&["clear_vhost_limits", "-p", &v]).await;
    u.declare_q("lq3").await.unwrap();
    u.close().await;
    acl.cleanup().await;
}
