"""Access control: authentication, vhost access, resource permissions, topic
permissions and the rabbitmqctl-compatible command line (``CTL``).

Users, vhosts and permissions are set up through ``ctl`` (see conftest.py);
every user and vhost a test creates is deleted at teardown.  All reply codes
and texts below are what RabbitMQ 3.10.8 sends.
"""

import json
import os
import shutil
import tempfile
import re
import time
import uuid

import pika
import pika.exceptions
import pytest

from conftest import (
    BROKER_USER,
    WAIT,
    access_params,
    channel_closed,
    ctl,
    ctl_json,
    short_uid,
    uid,
)

LOGIN_REFUSED = (
    "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. "
    "For details see the broker logfile."
)
AUTH_ERRORS = (
    pika.exceptions.ProbableAuthenticationError,
    pika.exceptions.AuthenticationError,
)


def denied_text(kind, name, vhost, user):
    return f"ACCESS_REFUSED - access to {kind} '{name}' in vhost '{vhost}' refused for user '{user}'"


def topic_denied_text(key, exchange, vhost, user):
    return (
        f"ACCESS_REFUSED - access to topic '{key}' in exchange '{exchange}' "
        f"in vhost '{vhost}' refused for user '{user}'"
    )


def assert_login_refused(user, password, vhost):
    with pytest.raises(AUTH_ERRORS) as info:
        pika.BlockingConnection(access_params(user, password, vhost))
    text = str(info.value)
    assert "(403)" in text and LOGIN_REFUSED in text, text


def assert_vhost_refused(user, password, vhost, expected):
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as info:
        pika.BlockingConnection(access_params(user, password, vhost))
    text = str(info.value)
    assert "(530)" in text and expected in text, text


def wait_closed_by_broker(conn, timeout=WAIT):
    """Drive the I/O loop (bounded) until the broker closes ``conn``; returns
    the ConnectionClosedByBroker exception."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn.process_data_events(time_limit=0.05)
        except pika.exceptions.ConnectionClosedByBroker as e:
            return e
    raise AssertionError("the broker did not close the connection within %.0f s" % timeout)


def publish_confirmed(ch, exchange, routing_key, body=b"m"):
    """basic.publish on a confirm-mode channel, so that an asynchronous
    channel.close (403/404) is observed as ChannelClosedByBroker."""
    ch.confirm_delivery()
    ch.basic_publish(exchange, routing_key, body)


# --------------------------------------------------------------------------
# 1. login
# --------------------------------------------------------------------------


def test_login_wrong_password_refused(access):
    """RabbitMQ: a wrong password gets connection.close 403 ACCESS_REFUSED
    "Login was refused using authentication mechanism PLAIN ..." (pika sets the
    authentication_failure_close capability)."""
    user, password, vhost = access.setup()
    access.connect(user, password, vhost).close()  # the right password works
    assert_login_refused(user, "wrong-" + password, vhost)


def test_login_unknown_user_refused():
    """RabbitMQ: an unknown user gets the same 403 as a wrong password."""
    assert_login_refused(short_uid("nouser"), "whatever", "/")


def test_login_after_clear_password_refused(access):
    """RabbitMQ: after clear_password the user cannot log in with the old
    password nor with an empty one (same 403 text)."""
    user, password, vhost = access.setup()
    access.connect(user, password, vhost).close()
    ctl("clear_password", user)
    assert_login_refused(user, password, vhost)
    assert_login_refused(user, "", vhost)


def test_change_password(access):
    """RabbitMQ: change_password does not close open connections; new logins
    need the new password."""
    user, password, vhost = access.setup()
    conn = access.connect(user, password, vhost)
    conn.channel().queue_declare("q")
    ctl("change_password", user, "new-" + password)
    # still open and usable: a round trip on a new channel
    conn.channel().queue_declare("q", passive=True)
    assert conn.is_open
    assert_login_refused(user, password, vhost)
    access.connect(user, "new-" + password, vhost).close()


# --------------------------------------------------------------------------
# 2. vhost access at connection.open
# --------------------------------------------------------------------------


def test_missing_vhost_not_allowed(access):
    """RabbitMQ: connection.close 530 "NOT_ALLOWED - vhost X not found" (name
    not quoted)."""
    user, password, _ = access.setup(admin=False)
    missing = short_uid("nosuch")
    assert_vhost_refused(user, password, missing, f"NOT_ALLOWED - vhost {missing} not found")


def test_vhost_without_permission_entry_not_allowed(access):
    """RabbitMQ: a user without a permission entry in the vhost gets 530
    "NOT_ALLOWED - access to vhost 'V' refused for user 'U'"."""
    vhost = access.vhost(admin=False)
    user, password = access.user()
    assert_vhost_refused(
        user, password, vhost, f"NOT_ALLOWED - access to vhost '{vhost}' refused for user '{user}'"
    )


def test_empty_patterns_connect_but_match_nothing(access):
    """RabbitMQ: a permission entry with '' '' '' grants vhost access (the
    connection opens) but an empty pattern matches nothing: every configure/
    write/read check is refused, including amq.default and server-named
    queues; passive declares need no permission."""
    user, password, vhost = access.setup("", "", "")
    admin = access.admin(vhost)
    q = "q-existing"
    admin.channel().queue_declare(q)

    conn = access.connect(user, password, vhost)
    ch = conn.channel()
    assert ch.queue_declare(q, passive=True).method.queue == q
    ch.exchange_declare("amq.direct", passive=True)

    with channel_closed(403) as closed:
        conn.channel().queue_declare(q)
    assert closed.reply_text == denied_text("queue", q, vhost, user)
    with channel_closed(403) as closed:
        conn.channel().basic_get(q)
    assert closed.reply_text == denied_text("queue", q, vhost, user)
    with channel_closed(403) as closed:
        publish_confirmed(conn.channel(), "", q)
    assert closed.reply_text == denied_text("exchange", "amq.default", vhost, user)
    with channel_closed(403) as closed:
        conn.channel().queue_declare("")
    assert re.fullmatch(
        re.escape("ACCESS_REFUSED - access to queue '")
        + r"amq\.gen-[A-Za-z0-9_-]{22}"
        + re.escape(f"' in vhost '{vhost}' refused for user '{user}'"),
        closed.reply_text,
    ), closed.reply_text
    assert conn.is_open


# --------------------------------------------------------------------------
# 3. permission matrix
# --------------------------------------------------------------------------
#
# The user has configure "C", write "W", read "R" (unanchored, case-sensitive
# regexes).  Resource names are lower-case except for a suffix naming the
# permissions they match: "q-<id>-CW" matches configure and write, not read.


@pytest.fixture(scope="module")
def cwr(access_module):
    """(user, password, vhost) with permissions C / W / R; the AMQP_URL user
    has .* .* .* in the vhost."""
    return access_module.setup("C", "W", "R")


class Resources:
    """Queues/exchanges pre-created by the admin user, named by flags."""

    def __init__(self, admin_conn, user, vhost):
        self.ch = admin_conn.channel()
        self.user = user
        self.vhost = vhost
        self.base = uuid.uuid4().hex[:8]
        self.made = {}

    def _name(self, kind, flags):
        return f"{kind}-{self.base}-{flags or 'none'}"

    def q(self, flags):
        """An existing queue."""
        name = self._name("q", flags)
        if name not in self.made:
            self.ch.queue_declare(name)
            self.made[name] = True
        return name

    def x(self, flags, type="direct"):
        """An existing exchange."""
        name = self._name("x", flags)
        if name not in self.made:
            self.ch.exchange_declare(name, type)
            self.made[name] = True
        return name

    def new_q(self, flags):
        """A queue name that does not exist yet."""
        return self._name("nq", flags)

    def new_x(self, flags):
        """An exchange name that does not exist yet."""
        return self._name("nx", flags)

    def bind(self, queue, exchange, key="k"):
        self.ch.queue_bind(queue, exchange, routing_key=key)

    def xbind(self, destination, source, key="k"):
        self.ch.exchange_bind(destination, source, routing_key=key)

    def exists_q(self, name):
        try:
            self.ch.queue_declare(name, passive=True)
            return True
        except pika.exceptions.ChannelClosedByBroker as e:
            assert e.reply_code == 404, e
            self.ch = self.ch.connection.channel()
            return False


def denied(kind, name_of):
    """Expected 403 for the resource ``name_of(r)`` (a callable on Resources or a literal)."""

    def expect(r):
        name = name_of(r) if callable(name_of) else name_of
        return 403, denied_text(kind, name, r.vhost, r.user)

    return expect


def Q(flags):
    return lambda r: r.q(flags)


def X(flags):
    return lambda r: r.x(flags)


def _unbind(ch, r, qf, xf):
    r.bind(r.q(qf), r.x(xf))
    ch.queue_unbind(r.q(qf), r.x(xf), routing_key="k")


def _xunbind(ch, r, df, sf):
    r.xbind(r.x(df), r.x(sf))
    ch.exchange_unbind(destination=r.x(df), source=r.x(sf), routing_key="k")


MATRIX = [
    # exchange.declare: configure on the exchange; passive needs nothing
    ("exchange.declare/C", lambda ch, r: ch.exchange_declare(r.x("C"), "direct"), None),
    ("exchange.declare/WR", lambda ch, r: ch.exchange_declare(r.x("WR"), "direct"),
     denied("exchange", X("WR"))),
    ("exchange.declare-new/C", lambda ch, r: ch.exchange_declare(r.new_x("C"), "direct"), None),
    ("exchange.declare-new/WR", lambda ch, r: ch.exchange_declare(r.new_x("WR"), "direct"),
     denied("exchange", lambda r: r.new_x("WR"))),
    ("exchange.declare-passive/none",
     lambda ch, r: ch.exchange_declare(r.x(""), passive=True), None),
    # exchange.delete: configure
    ("exchange.delete/C", lambda ch, r: ch.exchange_delete(r.x("C")), None),
    ("exchange.delete/WR", lambda ch, r: ch.exchange_delete(r.x("WR")), denied("exchange", X("WR"))),
    ("exchange.delete-missing/C", lambda ch, r: ch.exchange_delete(r.new_x("C")), None),
    # queue.declare: configure; passive needs nothing; reserved prefix before configure
    ("queue.declare/C", lambda ch, r: ch.queue_declare(r.q("C")), None),
    ("queue.declare/WR", lambda ch, r: ch.queue_declare(r.q("WR")), denied("queue", Q("WR"))),
    ("queue.declare-new/C", lambda ch, r: ch.queue_declare(r.new_q("C")), None),
    ("queue.declare-new/WR", lambda ch, r: ch.queue_declare(r.new_q("WR")),
     denied("queue", lambda r: r.new_q("WR"))),
    ("queue.declare-passive/none", lambda ch, r: ch.queue_declare(r.q(""), passive=True), None),
    ("queue.declare-reserved/none", lambda ch, r: ch.queue_declare("amq." + r.base),
     lambda r: (403, f"ACCESS_REFUSED - queue name 'amq.{r.base}' contains reserved prefix 'amq.*'")),
    # queue.delete: configure
    ("queue.delete/C", lambda ch, r: ch.queue_delete(r.q("C")), None),
    ("queue.delete/WR", lambda ch, r: ch.queue_delete(r.q("WR")), denied("queue", Q("WR"))),
    # queue.purge, basic.get, basic.consume: read on the queue
    ("queue.purge/R", lambda ch, r: ch.queue_purge(r.q("R")), None),
    ("queue.purge/CW", lambda ch, r: ch.queue_purge(r.q("CW")), denied("queue", Q("CW"))),
    ("basic.get/R", lambda ch, r: ch.basic_get(r.q("R")), None),
    ("basic.get/CW", lambda ch, r: ch.basic_get(r.q("CW")), denied("queue", Q("CW"))),
    ("basic.consume/R", lambda ch, r: ch.basic_consume(r.q("R"), lambda *a: None), None),
    ("basic.consume/CW", lambda ch, r: ch.basic_consume(r.q("CW"), lambda *a: None),
     denied("queue", Q("CW"))),
    # basic.publish: write on the exchange ("" is amq.default), before existence
    ("basic.publish/W", lambda ch, r: publish_confirmed(ch, r.x("W"), "k"), None),
    ("basic.publish/CR", lambda ch, r: publish_confirmed(ch, r.x("CR"), "k"),
     denied("exchange", X("CR"))),
    ("basic.publish-default", lambda ch, r: publish_confirmed(ch, "", r.q("CWR")),
     denied("exchange", "amq.default")),
    ("basic.publish-missing/CR", lambda ch, r: publish_confirmed(ch, r.new_x("CR"), "k"),
     denied("exchange", lambda r: r.new_x("CR"))),
    ("basic.publish-missing/W", lambda ch, r: publish_confirmed(ch, r.new_x("W"), "k"),
     lambda r: (404, f"NOT_FOUND - no exchange '{r.new_x('W')}' in vhost '{r.vhost}'")),
    # queue.bind / queue.unbind: write on the queue, then read on the exchange
    ("queue.bind/qW-xR", lambda ch, r: ch.queue_bind(r.q("W"), r.x("R"), "k"), None),
    ("queue.bind/qCR-xR", lambda ch, r: ch.queue_bind(r.q("CR"), r.x("R"), "k"),
     denied("queue", Q("CR"))),
    ("queue.bind/qW-xCW", lambda ch, r: ch.queue_bind(r.q("W"), r.x("CW"), "k"),
     denied("exchange", X("CW"))),
    ("queue.bind/qCR-xCW", lambda ch, r: ch.queue_bind(r.q("CR"), r.x("CW"), "k"),
     denied("queue", Q("CR"))),
    ("queue.unbind/qW-xR", lambda ch, r: _unbind(ch, r, "W", "R"), None),
    ("queue.unbind/qCR-xR", lambda ch, r: _unbind(ch, r, "CR", "R"), denied("queue", Q("CR"))),
    ("queue.unbind/qW-xCW", lambda ch, r: _unbind(ch, r, "W", "CW"), denied("exchange", X("CW"))),
    ("queue.unbind/qCR-xCW", lambda ch, r: _unbind(ch, r, "CR", "CW"), denied("queue", Q("CR"))),
    # exchange.bind / exchange.unbind: write on the destination, then read on the source
    ("exchange.bind/dW-sR",
     lambda ch, r: ch.exchange_bind(destination=r.x("W"), source=r.x("R"), routing_key="k"), None),
    ("exchange.bind/dCR-sR",
     lambda ch, r: ch.exchange_bind(destination=r.x("CR"), source=r.x("R"), routing_key="k"),
     denied("exchange", X("CR"))),
    ("exchange.bind/dW-sCW",
     lambda ch, r: ch.exchange_bind(destination=r.x("W"), source=r.x("CW"), routing_key="k"),
     denied("exchange", X("CW"))),
    ("exchange.bind/dCR-sCW",
     lambda ch, r: ch.exchange_bind(destination=r.x("CR"), source=r.x("CW"), routing_key="k"),
     denied("exchange", X("CR"))),
    ("exchange.unbind/dW-sR", lambda ch, r: _xunbind(ch, r, "W", "R"), None),
    ("exchange.unbind/dCR-sR", lambda ch, r: _xunbind(ch, r, "CR", "R"), denied("exchange", X("CR"))),
    ("exchange.unbind/dW-sCW", lambda ch, r: _xunbind(ch, r, "W", "CW"), denied("exchange", X("CW"))),
    ("exchange.unbind/dCR-sCW", lambda ch, r: _xunbind(ch, r, "CR", "CW"),
     denied("exchange", X("CR"))),
    # x-dead-letter-exchange on a NEW queue: read on the queue, then write on the DLX
    ("dlx/qC-xW", lambda ch, r: ch.queue_declare(
        r.new_q("C"), arguments={"x-dead-letter-exchange": r.x("W")}),
     denied("queue", lambda r: r.new_q("C"))),
    ("dlx/qCR-xW", lambda ch, r: ch.queue_declare(
        r.new_q("CR"), arguments={"x-dead-letter-exchange": r.x("W")}), None),
    ("dlx/qCR-xR", lambda ch, r: ch.queue_declare(
        r.new_q("CR"), arguments={"x-dead-letter-exchange": r.x("R")}),
     denied("exchange", X("R"))),
    ("dlx/qCR-default", lambda ch, r: ch.queue_declare(
        r.new_q("CR"), arguments={"x-dead-letter-exchange": ""}),
     denied("exchange", "amq.default")),
    ("dlx/qCR-missingW", lambda ch, r: ch.queue_declare(
        r.new_q("CR"), arguments={"x-dead-letter-exchange": r.new_x("W")}), None),
    ("dlx/qCR-missingR", lambda ch, r: ch.queue_declare(
        r.new_q("CR"), arguments={"x-dead-letter-exchange": r.new_x("R")}),
     denied("exchange", lambda r: r.new_x("R"))),
    # an EXISTING queue re-declared with a DLX: equivalence (406), no DLX check
    ("dlx/existing-qC-xR", lambda ch, r: ch.queue_declare(
        r.q("C"), arguments={"x-dead-letter-exchange": r.x("R")}),
     lambda r: (406, f"PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-exchange' for queue "
                     f"'{r.q('C')}' in vhost '{r.vhost}': received the value '{r.x('R')}' of type "
                     "'longstr' but current is none")),
    # alternate-exchange on a NEW exchange: configure + read on it, then write on the AE
    ("ae/xC-aeW", lambda ch, r: ch.exchange_declare(
        r.new_x("C"), "direct", arguments={"alternate-exchange": r.x("W")}),
     denied("exchange", lambda r: r.new_x("C"))),
    ("ae/xCW-aeW", lambda ch, r: ch.exchange_declare(
        r.new_x("CW"), "direct", arguments={"alternate-exchange": r.x("W")}),
     denied("exchange", lambda r: r.new_x("CW"))),
    ("ae/xCR-aeW", lambda ch, r: ch.exchange_declare(
        r.new_x("CR"), "direct", arguments={"alternate-exchange": r.x("W")}), None),
    ("ae/xCR-aeR", lambda ch, r: ch.exchange_declare(
        r.new_x("CR"), "direct", arguments={"alternate-exchange": r.x("R")}),
     denied("exchange", X("R"))),
    ("ae/xCR-missingW", lambda ch, r: ch.exchange_declare(
        r.new_x("CR"), "direct", arguments={"alternate-exchange": r.new_x("W")}), None),
]


@pytest.mark.parametrize("op, expect", [c[1:] for c in MATRIX], ids=[c[0] for c in MATRIX])
def test_permission_matrix(access, cwr, op, expect):
    """RabbitMQ checks configure/write/read as listed per case (see MATRIX);
    a refusal is channel.close 403 "ACCESS_REFUSED - access to <queue|
    exchange> '<name>' in vhost '<v>' refused for user '<u>'" and leaves the
    connection open."""
    user, password, vhost = cwr
    r = Resources(access.admin(vhost), user, vhost)
    conn = access.connect(user, password, vhost)
    ch = conn.channel()
    if expect is None:
        op(ch, r)
        assert ch.is_open
    else:
        code, text = expect(r)
        with channel_closed(code) as closed:
            op(ch, r)
        assert closed.reply_text == text
        assert conn.is_open
        # the connection is still usable
        conn.channel().queue_declare(r.q("none"), passive=True)


def test_refused_declare_creates_nothing(access, cwr):
    """RabbitMQ: a queue.declare refused for configure (or for read on the
    queue when a DLX is given) does not create the queue."""
    user, password, vhost = cwr
    r = Resources(access.admin(vhost), user, vhost)
    conn = access.connect(user, password, vhost)
    with channel_closed(403):
        conn.channel().queue_declare(r.new_q("WR"))
    with channel_closed(403):
        conn.channel().queue_declare(r.new_q("C"), arguments={"x-dead-letter-exchange": r.x("W")})
    assert not r.exists_q(r.new_q("WR"))
    assert not r.exists_q(r.new_q("C"))


def test_server_named_queue_checked_against_generated_name(access):
    """RabbitMQ generates amq.gen-<22 chars> first and checks configure against
    that name: with configure '^foo' a server-named declare is refused with the
    generated name in the text (exclusive or not), while 'foo' and 'foobar'
    are allowed and 'xfoo' is refused (patterns are unanchored searches)."""
    user, password, vhost = access.setup("^foo", ".*", ".*")
    conn = access.connect(user, password, vhost)
    pattern = (
        re.escape("ACCESS_REFUSED - access to queue '")
        + r"amq\.gen-[A-Za-z0-9_-]{22}"
        + re.escape(f"' in vhost '{vhost}' refused for user '{user}'")
    )
    for exclusive in (False, True):
        with channel_closed(403) as closed:
            conn.channel().queue_declare("", exclusive=exclusive)
        assert re.fullmatch(pattern, closed.reply_text), closed.reply_text
    ch = conn.channel()
    ch.queue_declare("foo")
    ch.queue_declare("foobar")
    with channel_closed(403) as closed:
        ch.queue_declare("xfoo")
    assert closed.reply_text == denied_text("queue", "xfoo", vhost, user)


def test_server_named_queue_allowed_by_amq_gen_pattern(access):
    """RabbitMQ: configure '^amq\\.gen-' allows server-named queues and
    nothing else."""
    user, password, vhost = access.setup(r"^amq\.gen-", ".*", ".*")
    conn = access.connect(user, password, vhost)
    name = conn.channel().queue_declare("", exclusive=True).method.queue
    assert re.fullmatch(r"amq\.gen-[A-Za-z0-9_-]{22}", name), name
    with channel_closed(403) as closed:
        conn.channel().queue_declare("foo")
    assert closed.reply_text == denied_text("queue", "foo", vhost, user)


def test_default_exchange_write_pattern(access):
    """RabbitMQ checks the default exchange as the resource 'amq.default':
    write '^amq\\.default$' allows publishing to "" but not to amq.direct."""
    user, password, vhost = access.setup(".*", r"^amq\.default$", ".*")
    conn = access.connect(user, password, vhost)
    ch = conn.channel()
    ch.queue_declare("dq")
    publish_confirmed(ch, "", "dq", b"hello")
    method, _, body = ch.basic_get("dq", auto_ack=True)
    assert method is not None and body == b"hello"
    with channel_closed(403) as closed:
        publish_confirmed(conn.channel(), "amq.direct", "dq")
    assert closed.reply_text == denied_text("exchange", "amq.direct", vhost, user)


# --------------------------------------------------------------------------
# 4. permission changes on a live connection
# --------------------------------------------------------------------------


def test_tightened_permissions_apply_to_new_channel(access):
    """RabbitMQ: set_permissions closes nothing; checks on a new channel use
    the new permissions at once, both when tightening and when loosening.
    (Old channels may keep cached successful checks for a while, so they are
    not asserted on.)"""
    user, password, vhost = access.setup()
    conn = access.connect(user, password, vhost)
    conn.channel().queue_declare("pq1")

    ctl("set_permissions", "-p", vhost, user, "^nothing$", ".*", ".*")
    with channel_closed(403) as closed:
        conn.channel().queue_declare("pq1")
    assert closed.reply_text == denied_text("queue", "pq1", vhost, user)
    assert conn.is_open
    # write/read were left alone
    conn.channel().basic_get("pq1")

    ctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    conn.channel().queue_declare("pq1")
    assert conn.is_open


def test_clear_permissions_keeps_connection_open(access):
    """RabbitMQ: clear_permissions does not close the user's connection, but
    every new check is refused (403 on a new channel) and a new connection
    gets 530 "access to vhost 'V' refused"."""
    user, password, vhost = access.setup()
    conn = access.connect(user, password, vhost)
    conn.channel().queue_declare("pq1")

    ctl("clear_permissions", "-p", vhost, user)
    with channel_closed(403) as closed:
        conn.channel().queue_declare("pq1")
    assert closed.reply_text == denied_text("queue", "pq1", vhost, user)
    # the connection is open and usable (passive declare needs no permission)
    conn.channel().queue_declare("pq1", passive=True)
    assert conn.is_open
    assert_vhost_refused(
        user, password, vhost, f"NOT_ALLOWED - access to vhost '{vhost}' refused for user '{user}'"
    )


# --------------------------------------------------------------------------
# 5. deleting a user or a vhost closes connections
# --------------------------------------------------------------------------


def test_delete_user_closes_its_connections(access):
    """RabbitMQ: delete_user closes the user's connections with
    connection.close 320 "CONNECTION_FORCED - user 'U' is deleted"; other
    users' connections stay open."""
    user, password, vhost = access.setup()
    conn = access.connect(user, password, vhost)
    other = access.admin(vhost)
    conn.channel()
    ctl("delete_user", user)
    exc = wait_closed_by_broker(conn)
    assert exc.reply_code == 320, exc
    assert exc.reply_text == f"CONNECTION_FORCED - user '{user}' is deleted", exc
    assert other.is_open
    other.channel().exchange_declare("amq.direct", passive=True)
    assert_login_refused(user, password, vhost)


def test_delete_vhost_closes_its_connections(access):
    """RabbitMQ: delete_vhost closes connections to it with connection.close
    320 "CONNECTION_FORCED - vhost 'V' is deleted" (RabbitMQ sometimes says
    "is down" instead: a race in its vhost supervisor); connections to other
    vhosts stay open."""
    user, password, vhost = access.setup()
    other_vhost = access.vhost()
    access.grant(user, other_vhost)
    conn = access.connect(user, password, vhost)
    conn.channel().queue_declare("q")
    other = access.connect(user, password, other_vhost)
    ctl("delete_vhost", vhost)
    exc = wait_closed_by_broker(conn)
    assert exc.reply_code == 320, exc
    assert exc.reply_text in (
        f"CONNECTION_FORCED - vhost '{vhost}' is deleted",
        f"CONNECTION_FORCED - vhost '{vhost}' is down",
    ), exc
    assert other.is_open
    other.channel().exchange_declare("amq.direct", passive=True)
    assert_vhost_refused(user, password, vhost, f"NOT_ALLOWED - vhost {vhost} not found")


# --------------------------------------------------------------------------
# 6. topic permissions
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def topic_user(access_module):
    """(user, password, vhost): .* everywhere, plus topic permissions
    write '^allowed\\.' read '^readok\\.' on amq.topic and on amq.direct."""
    user, password, vhost = access_module.setup(admin=False)
    for x in ("amq.topic", "amq.direct"):
        ctl("set_topic_permissions", "-p", vhost, user, x, r"^allowed\.", r"^readok\.")
    return user, password, vhost


def test_topic_publish_checks_write_pattern(access, topic_user):
    """RabbitMQ: publishing to a topic exchange checks the routing key against
    the topic write pattern; a refusal is channel.close 403 "ACCESS_REFUSED -
    access to topic 'K' in exchange 'amq.topic' in vhost 'V' refused for user
    'U'"; an empty key is checked as '' and refused."""
    user, password, vhost = topic_user
    conn = access.connect(user, password, vhost)
    publish_confirmed(conn.channel(), "amq.topic", "allowed.x")
    for key in ("denied.x", "xallowed.x", ""):
        with channel_closed(403) as closed:
            publish_confirmed(conn.channel(), "amq.topic", key)
        assert closed.reply_text == topic_denied_text(key, "amq.topic", vhost, user)
    assert conn.is_open


def test_topic_bind_checks_read_pattern(access, topic_user):
    """RabbitMQ: queue.bind and queue.unbind from a topic exchange check the
    binding key against the source exchange's topic read pattern."""
    user, password, vhost = topic_user
    conn = access.connect(user, password, vhost)
    q = conn.channel().queue_declare("", exclusive=True).method.queue
    conn.channel().queue_bind(q, "amq.topic", "readok.#")
    conn.channel().queue_unbind(q, "amq.topic", "readok.#")
    with channel_closed(403) as closed:
        conn.channel().queue_bind(q, "amq.topic", "allowed.#")
    assert closed.reply_text == topic_denied_text("allowed.#", "amq.topic", vhost, user)
    with channel_closed(403) as closed:
        conn.channel().queue_unbind(q, "amq.topic", "allowed.#")
    assert closed.reply_text == topic_denied_text("allowed.#", "amq.topic", vhost, user)


def test_topic_exchange_bind_checks_source_read_pattern(access, topic_user):
    """RabbitMQ: exchange.bind checks the binding key against the topic read
    pattern of the SOURCE exchange (no entry for the source: allowed)."""
    user, password, vhost = topic_user
    conn = access.connect(user, password, vhost)
    ch = conn.channel()
    dest = short_uid("xd")
    ch.exchange_declare(dest, "topic")
    with channel_closed(403) as closed:
        conn.channel().exchange_bind(destination=dest, source="amq.topic", routing_key="allowed.#")
    assert closed.reply_text == topic_denied_text("allowed.#", "amq.topic", vhost, user)
    conn.channel().exchange_bind(destination=dest, source="amq.topic", routing_key="readok.#")
    # amq.topic as destination, source without an entry: allowed
    conn.channel().exchange_bind(destination="amq.topic", source=dest, routing_key="allowed.#")


def test_topic_permissions_ignored_for_direct_exchange(access, topic_user):
    """RabbitMQ applies topic permissions only to topic exchanges: the same
    entry on amq.direct restricts nothing."""
    user, password, vhost = topic_user
    conn = access.connect(user, password, vhost)
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, "amq.direct", "denied.x")
    publish_confirmed(ch, "amq.direct", "denied.x", b"through")
    method, _, body = ch.basic_get(q, auto_ack=True)
    assert method is not None and body == b"through"


def test_topic_exchange_without_entry_unrestricted(access, topic_user):
    """RabbitMQ: a topic exchange with no topic-permission entry for the user
    is unrestricted."""
    user, password, vhost = topic_user
    conn = access.connect(user, password, vhost)
    ch = conn.channel()
    x = short_uid("tx")
    ch.exchange_declare(x, "topic")
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, x, "denied.#")
    publish_confirmed(ch, x, "denied.x", b"free")
    method, _, body = ch.basic_get(q, auto_ack=True)
    assert method is not None and body == b"free"


def test_clear_topic_permissions(access):
    """RabbitMQ: after clear_topic_permissions the exchange is unrestricted
    again (checked on a new channel)."""
    user, password, vhost = access.setup(admin=False)
    ctl("set_topic_permissions", "-p", vhost, user, "amq.topic", r"^allowed\.", r"^readok\.")
    conn = access.connect(user, password, vhost)
    with channel_closed(403) as closed:
        publish_confirmed(conn.channel(), "amq.topic", "denied.x")
    assert closed.reply_text == topic_denied_text("denied.x", "amq.topic", vhost, user)
    ctl("clear_topic_permissions", "-p", vhost, user, "amq.topic")
    publish_confirmed(conn.channel(), "amq.topic", "denied.x")
    assert conn.is_open


# --------------------------------------------------------------------------
# 7. password hashes from RabbitMQ definitions
# --------------------------------------------------------------------------


# ``hashu``/``test12`` as RabbitMQ 3.10.8 exported it (rabbitmqctl export_definitions):
# base64 of a 4-byte salt and SHA-256(salt + password).
EXPORTED_HASH = "A2vETqt7Ft1gbYgnVDnQZ+f+QGFdOFBflu4N696NkPTPkptq"
EXPORTED_PASSWORD = "test12"


def test_rabbitmq_password_hash_logs_in(access):
    """import_definitions with a user whose rabbit_password_hashing_sha256 hash RabbitMQ
    exported: the user logs in with the password, and the imported vhost, permissions,
    exchange, queue and binding work; importing the same file again changes nothing."""
    user, vhost = short_uid("imp"), short_uid("impv")
    access.users.append(user)
    access.vhosts.append(vhost)
    defs = {
        "rabbit_version": "3.10.8",
        "users": [
            {
                "name": user,
                "password_hash": EXPORTED_HASH,
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": ["monitoring"],
                "limits": {},
            }
        ],
        "vhosts": [{"name": vhost, "limits": [], "metadata": {"description": "imported", "tags": []}}],
        "permissions": [
            {"user": user, "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"}
        ],
        "topic_permissions": [],
        "parameters": [],
        "global_parameters": [],
        "policies": [],
        "exchanges": [
            {"name": "imp-x", "vhost": vhost, "type": "topic", "durable": True,
             "auto_delete": False, "internal": False, "arguments": {}}
        ],
        "queues": [
            {"name": "imp-q", "vhost": vhost, "durable": True, "auto_delete": False,
             "arguments": {"x-max-length": 10}}
        ],
        "bindings": [
            {"source": "imp-x", "vhost": vhost, "destination": "imp-q",
             "destination_type": "queue", "routing_key": "a.#", "arguments": {}}
        ],
    }
    # rabbitmqctl reads the file as the rabbitmq user: not under pytest's private tmp_path.
    d = tempfile.mkdtemp(prefix="warren-defs-")
    os.chmod(d, 0o755)
    path = os.path.join(d, "defs.json")
    with open(path, "w") as f:
        f.write(json.dumps(defs))
    os.chmod(path, 0o644)
    ctl("import_definitions", path)
    assert_login_refused(user, "not-" + EXPORTED_PASSWORD, vhost)
    conn = access.connect(user, EXPORTED_PASSWORD, vhost)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish("imp-x", "a.b", b"routed", mandatory=True)
    method, _, body = ch.basic_get("imp-q", auto_ack=True)
    assert body == b"routed", method
    # The queue's arguments came through as RabbitMQ's import types them (a long).
    ch.queue_declare("imp-q", durable=True, arguments={"x-max-length": 10})
    users = {u["user"]: u["tags"] for u in ctl_json("list_users")}
    assert users[user] == ["monitoring"]
    ctl("import_definitions", path)
    os.remove(path)
    os.rmdir(d)
    assert conn.is_open
    ch.queue_declare("imp-q", passive=True)


def test_export_definitions_round_trips(access):
    """export_definitions FILE writes RabbitMQ's format: the user with its hash, the vhost by
    name, the permission, the durable queue with its arguments, the exchange and the binding
    (not the default or amq.* exchanges); importing that file back changes nothing."""
    user, password = access.user()
    vhost = access.vhost()
    access.grant(user, vhost, ".*", ".*", ".*")
    conn = access.connect(user, password, vhost)
    ch = conn.channel()
    ch.exchange_declare("exp-x", "direct", durable=True)
    ch.queue_declare("exp-q", durable=True, arguments={"x-max-length": 7})
    ch.queue_bind("exp-q", "exp-x", "rk")
    d = tempfile.mkdtemp(prefix="warren-export-", dir="/var/tmp")
    os.chmod(d, 0o777)  # rabbitmqctl writes it as the rabbitmq user
    path = os.path.join(d, "defs.json")
    try:
        ctl("export_definitions", path)
        with open(path) as f:
            defs = json.load(f)
        for key in ("users", "vhosts", "permissions", "topic_permissions", "parameters",
                    "policies", "queues", "exchanges", "bindings"):
            assert isinstance(defs[key], list), key
        exported = {u["name"]: u for u in defs["users"]}[user]
        assert exported["hashing_algorithm"] == "rabbit_password_hashing_sha256"
        assert len(exported["password_hash"]) == 48
        # rabbitmqctl's export gives vhosts their limits and metadata as well (the HTTP API's
        # gives only names).
        exported_vhost = {v["name"]: v for v in defs["vhosts"]}[vhost]
        assert exported_vhost["limits"] == []
        assert exported_vhost["metadata"]["description"] == ""
        assert {"user": user, "vhost": vhost, "configure": ".*", "write": ".*",
                "read": ".*"} in defs["permissions"]
        queue = {(x["vhost"], x["name"]): x for x in defs["queues"]}[(vhost, "exp-q")]
        # rabbitmqctl's export names the queue type (the HTTP API's does not).
        assert queue == {"name": "exp-q", "vhost": vhost, "durable": True, "auto_delete": False,
                         "type": "classic", "arguments": {"x-max-length": 7}}, queue
        exchange = {(x["vhost"], x["name"]): x for x in defs["exchanges"]}[(vhost, "exp-x")]
        # ... and leaves out `internal` (3.10.8, observed).
        assert exchange == {"name": "exp-x", "vhost": vhost, "type": "direct", "durable": True,
                            "auto_delete": False, "arguments": {}}, exchange
        binding = [b for b in defs["bindings"] if b["vhost"] == vhost]
        assert binding == [{"source": "exp-x", "vhost": vhost, "destination": "exp-q",
                            "destination_type": "queue", "routing_key": "rk",
                            "arguments": {}}], binding
        assert not [x for x in defs["exchanges"]
                    if x["vhost"] == vhost and (x["name"] == "" or x["name"].startswith("amq."))]
        os.chmod(path, 0o644)
        ctl("import_definitions", path)
        assert conn.is_open
        ch.basic_publish("exp-x", "rk", b"still bound")
        method, _, body = ch.basic_get("exp-q", auto_ack=True)
        assert body == b"still bound", method
    finally:
        shutil.rmtree(d, ignore_errors=True)
        conn.close()


# --------------------------------------------------------------------------
# 8. ctl listings and authenticate_user
# --------------------------------------------------------------------------


def test_ctl_list_users_and_vhosts(access):
    """rabbitmqctl list_users / list_vhosts --formatter json: a JSON array of
    {"user", "tags"} / {"name"} objects; deleted users disappear."""
    user, _ = access.user(tags=("monitoring", "policymaker"))
    plain, _ = access.user()
    vhost = access.vhost(admin=False)

    users = {u["user"]: u for u in ctl_json("list_users")}
    assert users[user] == {"user": user, "tags": ["monitoring", "policymaker"]}
    assert users[plain] == {"user": plain, "tags": []}
    assert BROKER_USER in users

    vhosts = ctl_json("list_vhosts")
    assert {"name": vhost} in vhosts
    assert {"name": "/"} in vhosts

    ctl("delete_user", plain)
    assert plain not in {u["user"] for u in ctl_json("list_users")}


def test_ctl_list_permissions(access):
    """rabbitmqctl list_permissions -p V / list_user_permissions U /
    list_topic_permissions -p V --formatter json; clear_permissions removes
    the entry."""
    user, _ = access.user()
    vhost = access.vhost()
    access.grant(user, vhost, "C", r"^amq\.default$", "")
    ctl("set_topic_permissions", "-p", vhost, user, "amq.topic", r"^allowed\.", r"^readok\.")

    perms = ctl_json("list_permissions", "-p", vhost)
    assert {"user": user, "configure": "C", "write": r"^amq\.default$", "read": ""} in perms
    assert {"user": BROKER_USER, "configure": ".*", "write": ".*", "read": ".*"} in perms
    assert ctl_json("list_user_permissions", user) == [
        {"vhost": vhost, "configure": "C", "write": r"^amq\.default$", "read": ""}
    ]
    assert ctl_json("list_topic_permissions", "-p", vhost) == [
        {"user": user, "exchange": "amq.topic", "write": r"^allowed\.", "read": r"^readok\."}
    ]
    # The keys come in the table's column order, as rabbitmqctl prints them (scripts that
    # compare the text, not the parsed JSON, see the same lines).
    text = ctl("list_user_permissions", user, "--formatter", "json").stdout
    assert json.dumps(
        {"vhost": vhost, "configure": "C", "write": r"^amq\.default$", "read": ""},
        separators=(",", ":")) in text, text

    ctl("clear_permissions", "-p", vhost, user)
    assert user not in {p["user"] for p in ctl_json("list_permissions", "-p", vhost)}
    assert ctl_json("list_user_permissions", user) == []
    ctl("clear_topic_permissions", "-p", vhost, user)
    assert ctl_json("list_topic_permissions", "-p", vhost) == []


def test_ctl_authenticate_user(access):
    """rabbitmqctl authenticate_user exits 0 for the right password and
    non-zero (65) for a wrong one or an unknown user."""
    user, password = access.user()
    ok = ctl("authenticate_user", user, password, check=False)
    assert ok.returncode == 0, (ok.stdout, ok.stderr)
    bad = ctl("authenticate_user", user, "wrong-" + password, check=False)
    assert bad.returncode != 0, (bad.stdout, bad.stderr)
    unknown = ctl("authenticate_user", uid("nouser"), "x", check=False)
    assert unknown.returncode != 0, (unknown.stdout, unknown.stderr)


def test_ctl_errors_exit_non_zero(access):
    """rabbitmqctl: adding an existing user, deleting a missing user or vhost,
    and setting permissions for a missing user or in a missing vhost fail
    (non-zero exit); add_vhost of an existing vhost succeeds (idempotent)."""
    user, _ = access.user()
    vhost = access.vhost(admin=False)
    assert ctl("add_user", user, "x", check=False).returncode != 0
    assert ctl("delete_user", short_uid("nouser"), check=False).returncode != 0
    assert ctl("delete_vhost", short_uid("novhost"), check=False).returncode != 0
    assert ctl("set_permissions", "-p", short_uid("novhost"), user, ".*", ".*", ".*",
               check=False).returncode != 0
    assert ctl("set_permissions", "-p", vhost, short_uid("nouser"), ".*", ".*", ".*",
               check=False).returncode != 0
    assert ctl("add_vhost", vhost, check=False).returncode == 0


# --------------------------------------------------------------------------
# limits (set_vhost_limits, set_user_limits)
# --------------------------------------------------------------------------


def test_vhost_max_connections(access):
    """RabbitMQ: with max-connections N reached, connection.open to the vhost gets
    530 "NOT_ALLOWED - access to vhost 'V' refused for user 'U': connection limit
    (N) is reached"; closing one makes room again."""
    user, password, vhost = access.setup()
    ctl("set_vhost_limits", "-p", vhost, '{"max-connections": 1}')
    first = access.connect(user, password, vhost)
    assert_vhost_refused(
        user,
        password,
        vhost,
        f"NOT_ALLOWED - access to vhost '{vhost}' refused for user '{user}': "
        "connection limit (1) is reached",
    )
    first.close()
    access.connect(user, password, vhost).close()
    ctl("set_vhost_limits", "-p", vhost, '{"max-connections": 0}')
    assert_vhost_refused(user, password, vhost, "connection limit (0) is reached")


def test_vhost_max_connections_room_again_once_closed(access):
    """A connection closed (close-ok received) no longer counts: reconnecting at once under
    max-connections 1 is admitted, cycle after cycle (Warren released the place only after its
    connection task ended, a moment after close-ok, and a quick reconnect was sometimes
    refused)."""
    user, password, vhost = access.setup()
    ctl("set_vhost_limits", "-p", vhost, '{"max-connections": 1}')
    for _ in range(40):
        conn = access.connect(user, password, vhost)
        conn.channel()
        conn.close()


def test_vhost_max_queues(access):
    """RabbitMQ: a new queue beyond max-queues gets channel.close 406
    "PRECONDITION_FAILED - cannot declare queue 'Q': queue limit in vhost 'V' (N)
    is reached" (server-named ones too); redeclaring an existing queue and passive
    declares still work."""
    user, password, vhost = access.setup()
    ctl("set_vhost_limits", "-p", vhost, '{"max-queues": 2}')
    conn = access.connect(user, password, vhost)
    ch = conn.channel()
    ch.queue_declare("lq1")
    ch.queue_declare("lq2")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch.queue_declare("lq3")
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - cannot declare queue 'lq3': queue limit in vhost '{vhost}' (2) is reached"
    )
    ch = conn.channel()
    ch.queue_declare("lq1")
    ch.queue_declare("lq2", passive=True)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch.queue_declare("", exclusive=True)
    assert re.fullmatch(
        rf"PRECONDITION_FAILED - cannot declare queue 'amq\.gen-[A-Za-z0-9_-]{{22}}': "
        rf"queue limit in vhost '{re.escape(vhost)}' \(2\) is reached",
        info.value.reply_text,
    ), info.value.reply_text
    ctl("clear_vhost_limits", "-p", vhost)
    conn.channel().queue_declare("lq3")


def test_user_max_connections(access):
    """RabbitMQ: a user's max-connections reached, connection.open gets 530
    "NOT_ALLOWED - connection refused for user 'U': user connection limit (N) is
    reached"."""
    user, password, vhost = access.setup()
    ctl("set_user_limits", user, '{"max-connections": 1}')
    access.connect(user, password, vhost)
    assert_vhost_refused(
        user,
        password,
        vhost,
        f"NOT_ALLOWED - connection refused for user '{user}': user connection limit (1) is reached",
    )
    ctl("clear_user_limits", user, "max-connections")
    access.connect(user, password, vhost)


def test_user_max_channels_counts_all_connections(access):
    """RabbitMQ: max-channels counts the user's channels over all their
    connections; one more channel.open closes that connection with 530 "NOT_ALLOWED
    - number of channels opened for user 'U' has reached the maximum allowed user
    limit of (N)"."""
    user, password, vhost = access.setup()
    ctl("set_user_limits", user, '{"max-channels": 1}')
    first = access.connect(user, password, vhost)
    first.channel()
    second = access.connect(user, password, vhost)
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        second.channel()
    assert info.value.reply_code == 530
    assert info.value.reply_text == (
        f"NOT_ALLOWED - number of channels opened for user '{user}' has reached "
        "the maximum allowed user limit of (1)"
    )
    assert first.is_open


def test_ctl_limits_listing_and_validation(access):
    """rabbitmqctl: list_vhost_limits prints the limits as JSON; unknown limit
    names are refused (non-zero exit)."""
    user, _, vhost = access.setup()
    ctl("set_vhost_limits", "-p", vhost, '{"max-connections": 5, "max-queues": 10}')
    out = ctl("list_vhost_limits", "-p", vhost, "-q").stdout.strip()
    assert json.loads(out) == {"max-connections": 5, "max-queues": 10}
    assert ctl("set_vhost_limits", "-p", vhost, '{"bogus": 1}', check=False).returncode != 0
    assert ctl("set_user_limits", user, '{"bogus": 1}', check=False).returncode != 0
    ctl("set_user_limits", user, '{"max-channels": 4}')
    out = ctl("list_user_limits", "--user", user, "-q").stdout.strip()
    assert json.loads(out) == {"max-channels": 4}


def test_user_id_needs_impersonator_tag(access):
    """RabbitMQ: a user_id property naming someone else is refused (406 PRECONDITION_FAILED
    "user_id property set to 'X' but authenticated user was 'U'") unless the publisher is
    tagged impersonator. Tags count from the next login: RabbitMQ 3.10.8 still refuses on a
    connection opened before set_user_tags."""
    user, password, vhost = access.setup()
    conn = access.connect(user, password, vhost)
    ch = conn.channel()
    ch.confirm_delivery()
    q = ch.queue_declare("", exclusive=True).method.queue
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch.basic_publish("", q, b"m", pika.BasicProperties(user_id="someone-else"))
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - user_id property set to 'someone-else' but authenticated user was '{user}'"
    )
    ctl("set_user_tags", user, "impersonator")
    ch = conn.channel()
    ch.confirm_delivery()
    q = ch.queue_declare("", exclusive=True).method.queue
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch.basic_publish("", q, b"m", pika.BasicProperties(user_id="someone-else"))
    assert info.value.reply_code == 406
    ch = access.connect(user, password, vhost).channel()
    ch.confirm_delivery()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"m", pika.BasicProperties(user_id="someone-else"))
    _, props, body = ch.basic_get(q, auto_ack=True)
    assert (body, props.user_id) == (b"m", "someone-else")
