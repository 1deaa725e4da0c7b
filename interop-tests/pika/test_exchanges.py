"""exchange.* methods and exchange-level routing features."""

import uuid

import pika
import pika.exceptions
import pytest

from conftest import BROKER_VHOST, channel_closed, connection_closed, get_all, uid

V = BROKER_VHOST


def sync(ch):
    """A harmless synchronous round trip, to surface an asynchronous error
    (e.g. the channel.close provoked by a basic.publish)."""
    ch.exchange_declare("amq.direct", passive=True)


@pytest.mark.parametrize("xtype", ["direct", "fanout", "topic", "headers"])
def test_declare_each_type_and_passive(ch, names, xtype):
    x = names.exchange()
    r = ch.exchange_declare(x, exchange_type=xtype)
    assert isinstance(r.method, pika.spec.Exchange.DeclareOk)
    # identical redeclare is fine, passive finds it
    ch.exchange_declare(x, exchange_type=xtype)
    ch.exchange_declare(x, passive=True)
    # passive ignores the other flags
    ch.exchange_declare(x, exchange_type="fanout" if xtype != "fanout" else "direct", passive=True, durable=True)


def test_passive_declare_missing_exchange(conn, ch):
    x = uid("missing")
    with channel_closed(404, f"NOT_FOUND - no exchange '{x}' in vhost '{V}'"):
        ch.exchange_declare(x, passive=True)
    assert ch.is_closed and conn.is_open


@pytest.mark.parametrize(
    "change, arg, received, current",
    [
        (dict(exchange_type="fanout"), "type", "fanout", "direct"),
        (dict(durable=True), "durable", "true", "false"),
        (dict(auto_delete=True), "auto_delete", "true", "false"),
        (dict(internal=True), "internal", "true", "false"),
    ],
)
def test_redeclare_with_different_properties(conn, names, change, arg, received, current):
    x = names.exchange()
    conn.channel().exchange_declare(x, exchange_type="direct")
    kwargs = dict(exchange_type="direct")
    kwargs.update(change)
    with channel_closed(
        406,
        f"PRECONDITION_FAILED - inequivalent arg '{arg}' for exchange '{x}' in vhost '{V}': "
        f"received '{received}' but current is '{current}'",
    ):
        conn.channel().exchange_declare(x, **kwargs)


def test_redeclare_with_different_arguments(conn, names):
    x = names.exchange()
    conn.channel().exchange_declare(x, exchange_type="direct")
    with channel_closed(
        406,
        f"PRECONDITION_FAILED - inequivalent arg 'alternate-exchange' for exchange '{x}' in vhost '{V}': "
        "received the value 'ae' of type 'longstr' but current is none",
    ):
        conn.channel().exchange_declare(x, exchange_type="direct", arguments={"alternate-exchange": "ae"})


def test_declare_reserved_amq_prefix_refused(conn):
    x = "amq." + uid()
    with channel_closed(403, f"ACCESS_REFUSED - exchange name '{x}' contains reserved prefix 'amq.*'"):
        conn.channel().exchange_declare(x, exchange_type="direct")
    # passive lookup of such a name is just "not found"
    with channel_closed(404, f"NOT_FOUND - no exchange '{x}' in vhost '{V}'"):
        conn.channel().exchange_declare(x, passive=True)


@pytest.mark.parametrize(
    "name, xtype",
    [
        ("amq.direct", "direct"),
        ("amq.fanout", "fanout"),
        ("amq.topic", "topic"),
        ("amq.headers", "headers"),
        ("amq.match", "headers"),
    ],
)
def test_predeclared_exchanges(conn, name, xtype):
    ch = conn.channel()
    ch.exchange_declare(name, passive=True)
    # an equivalent (durable) redeclare of a predeclared exchange is accepted
    ch.exchange_declare(name, exchange_type=xtype, durable=True)
    other = "fanout" if xtype != "fanout" else "direct"
    with channel_closed(
        406,
        f"PRECONDITION_FAILED - inequivalent arg 'type' for exchange '{name}' in vhost '{V}': "
        f"received '{other}' but current is '{xtype}'",
    ):
        conn.channel().exchange_declare(name, exchange_type=other, durable=True)


def test_predeclared_exchange_cannot_be_deleted(conn):
    with channel_closed(403, f"ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '{V}' not allowed"):
        conn.channel().exchange_delete("amq.direct")
    conn.channel().exchange_declare("amq.direct", passive=True)


def test_default_exchange_is_off_limits(conn):
    msg = "ACCESS_REFUSED - operation not permitted on the default exchange"
    with channel_closed(403, msg):
        conn.channel().exchange_declare("", exchange_type="direct")
    with channel_closed(403, msg):
        conn.channel().exchange_delete("")
    q = conn.channel().queue_declare("", exclusive=True).method.queue
    with channel_closed(403, msg):
        conn.channel().queue_bind(q, "", routing_key="k")
    with channel_closed(403, msg):
        conn.channel().queue_unbind(q, "", routing_key=q)


@pytest.mark.parametrize("prefix", ["x-warren-", "warren"])
def test_unknown_exchange_type_closes_connection(conn, names, prefix):
    # Observed on RabbitMQ 3.10.8: an unknown exchange type is a *connection*
    # error: 503 "COMMAND_INVALID - unknown exchange type 'T'".
    # (Quirk: RabbitMQ answers "invalid exchange type 'T'" instead when T
    # happens to be an existing Erlang atom that is not an exchange type,
    # e.g. 'foo'; a fresh random name is always "unknown".)
    xtype = prefix + uuid.uuid4().hex
    reply = f"COMMAND_INVALID - unknown exchange type '{xtype}'"
    x = names.exchange()
    with connection_closed(503, reply) as closed:
        conn.channel().exchange_declare(x, exchange_type=xtype)
    assert closed.reply_text == reply
    assert conn.is_closed


def test_delete_exchange(conn, names):
    ch = conn.channel()
    x = names.exchange()
    ch.exchange_declare(x, exchange_type="fanout")
    r = ch.exchange_delete(x)
    assert isinstance(r.method, pika.spec.Exchange.DeleteOk)
    with channel_closed(404, f"NOT_FOUND - no exchange '{x}' in vhost '{V}'"):
        ch.exchange_declare(x, passive=True)


def test_delete_missing_exchange_is_ok(ch):
    # RabbitMQ: deleting an exchange that does not exist succeeds
    r = ch.exchange_delete(uid("missing"))
    assert isinstance(r.method, pika.spec.Exchange.DeleteOk)


def test_delete_if_unused(conn, names):
    ch = conn.channel()
    x = names.exchange()
    q = names.queue()
    ch.exchange_declare(x, exchange_type="direct")
    ch.queue_declare(q)
    ch.queue_bind(q, x, "k")
    with channel_closed(406, f"PRECONDITION_FAILED - exchange '{x}' in vhost '{V}' in use"):
        conn.channel().exchange_delete(x, if_unused=True)
    ch = conn.channel()
    ch.exchange_declare(x, passive=True)  # still there
    ch.queue_unbind(q, x, "k")
    ch.exchange_delete(x, if_unused=True)
    with channel_closed(404):
        ch.exchange_declare(x, passive=True)


def test_delete_if_unused_with_exchange_binding_as_source(conn, names):
    ch = conn.channel()
    src, dst = names.exchange(), names.exchange()
    ch.exchange_declare(src, exchange_type="topic")
    ch.exchange_declare(dst, exchange_type="fanout")
    ch.exchange_bind(dst, src, "a.#")
    with channel_closed(406, f"PRECONDITION_FAILED - exchange '{src}' in vhost '{V}' in use"):
        conn.channel().exchange_delete(src, if_unused=True)


def test_delete_exchange_removes_its_bindings(conn, names):
    ch = conn.channel()
    x, q = names.exchange(), names.queue()
    ch.exchange_declare(x, exchange_type="fanout")
    ch.queue_declare(q)
    ch.queue_bind(q, x)
    ch.exchange_delete(x)
    ch.exchange_declare(x, exchange_type="fanout")  # recreate: binding must be gone
    ch.confirm_delivery()
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish(x, "", b"m", mandatory=True)
    assert ch.queue_declare(q, passive=True).method.message_count == 0


def test_exchange_to_exchange_binding(conn, names):
    ch = conn.channel()
    src, dst, q = names.exchange(), names.exchange(), names.queue()
    ch.exchange_declare(src, exchange_type="topic")
    ch.exchange_declare(dst, exchange_type="fanout")
    ch.queue_declare(q)
    ch.queue_bind(q, dst)
    r = ch.exchange_bind(dst, src, "a.*")
    assert isinstance(r.method, pika.spec.Exchange.BindOk)
    ch.basic_publish(src, "a.b", b"yes")
    ch.basic_publish(src, "b.b", b"no")
    got = get_all(ch, q)
    assert [(m.exchange, m.routing_key, b) for m, _, b in got] == [(src, "a.b", b"yes")]

    r = ch.exchange_unbind(dst, src, "a.*")
    assert isinstance(r.method, pika.spec.Exchange.UnbindOk)
    ch.confirm_delivery()
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish(src, "a.b", b"gone", mandatory=True)
    assert get_all(ch, q) == []


def test_exchange_binding_cycle_delivers_once(conn, names):
    ch = conn.channel()
    a, b, q = names.exchange(), names.exchange(), names.queue()
    ch.exchange_declare(a, exchange_type="topic")
    ch.exchange_declare(b, exchange_type="fanout")
    ch.exchange_bind(b, a, "#")
    ch.exchange_bind(a, b, "")
    ch.queue_declare(q)
    ch.queue_bind(q, a, "#")
    ch.queue_bind(q, b)
    ch.basic_publish(a, "z", b"once")
    got = get_all(ch, q)
    assert [b for _, _, b in got] == [b"once"]


def test_exchange_bind_missing_source_or_destination(conn, names):
    x = names.exchange()
    conn.channel().exchange_declare(x, exchange_type="fanout")
    missing = uid("missing")
    with channel_closed(404, f"NOT_FOUND - no exchange '{missing}' in vhost '{V}'"):
        conn.channel().exchange_bind(missing, x, "k")
    with channel_closed(404, f"NOT_FOUND - no exchange '{missing}' in vhost '{V}'"):
        conn.channel().exchange_bind(x, missing, "k")


def test_exchange_unbind_missing_binding_is_ok(conn, names):
    a, b = names.exchange(), names.exchange()
    ch = conn.channel()
    ch.exchange_declare(a, exchange_type="direct")
    ch.exchange_declare(b, exchange_type="direct")
    r = ch.exchange_unbind(b, a, "never-bound")
    assert isinstance(r.method, pika.spec.Exchange.UnbindOk)


def test_internal_exchange_cannot_be_published_to(conn, names):
    ch = conn.channel()
    ix = names.exchange()
    ch.exchange_declare(ix, exchange_type="fanout", internal=True)
    ch.basic_publish(ix, "", b"nope")
    with channel_closed(403, f"ACCESS_REFUSED - cannot publish to internal exchange '{ix}' in vhost '{V}'"):
        sync(ch)


def test_internal_exchange_reachable_through_exchange_binding(conn, names):
    ch = conn.channel()
    src, ix, q = names.exchange(), names.exchange(), names.queue()
    ch.exchange_declare(src, exchange_type="direct")
    ch.exchange_declare(ix, exchange_type="fanout", internal=True)
    ch.exchange_bind(ix, src, "k")
    ch.queue_declare(q)
    ch.queue_bind(q, ix)
    ch.basic_publish(src, "k", b"via-internal")
    assert [b for _, _, b in get_all(ch, q)] == [b"via-internal"]


def test_alternate_exchange(conn, names):
    ch = conn.channel()
    ae, x, aq, q = names.exchange(), names.exchange(), names.queue(), names.queue()
    ch.exchange_declare(ae, exchange_type="fanout")
    ch.exchange_declare(x, exchange_type="direct", arguments={"alternate-exchange": ae})
    ch.queue_declare(aq)
    ch.queue_bind(aq, ae)
    ch.queue_declare(q)
    ch.queue_bind(q, x, "routed")
    ch.confirm_delivery()
    # unroutable in x -> goes to the AE, so mandatory does not trigger a return
    ch.basic_publish(x, "unrouted", b"to-ae", mandatory=True)
    ch.basic_publish(x, "routed", b"direct", mandatory=True)
    got_ae = get_all(ch, aq)
    assert [(m.exchange, m.routing_key, b) for m, _, b in got_ae] == [(x, "unrouted", b"to-ae")]
    assert [b for _, _, b in get_all(ch, q)] == [b"direct"]


def test_alternate_exchange_missing_means_unroutable(conn, names):
    ch = conn.channel()
    x = names.exchange()
    ch.exchange_declare(x, exchange_type="direct", arguments={"alternate-exchange": uid("missing-ae")})
    ch.confirm_delivery()
    with pytest.raises(pika.exceptions.UnroutableError) as info:
        ch.basic_publish(x, "k", b"lost", mandatory=True)
    (returned,) = info.value.messages
    assert returned.method.reply_code == 312 and returned.method.reply_text == "NO_ROUTE"


def test_publish_to_missing_exchange_closes_channel(conn):
    ch = conn.channel()
    x = uid("missing")
    ch.basic_publish(x, "k", b"m")
    with channel_closed(404, f"NOT_FOUND - no exchange '{x}' in vhost '{V}'"):
        sync(ch)
    assert conn.is_open


def test_publish_to_missing_exchange_in_confirm_mode(conn):
    ch = conn.channel()
    ch.confirm_delivery()
    x = uid("missing")
    with channel_closed(404, f"NOT_FOUND - no exchange '{x}' in vhost '{V}'"):
        ch.basic_publish(x, "k", b"m")


def test_auto_delete_exchange(conn, names):
    ch = conn.channel()
    x, q = names.exchange(), names.queue()
    ch.exchange_declare(x, exchange_type="fanout", auto_delete=True)
    # never bound: stays
    ch.exchange_declare(x, passive=True)
    ch.queue_declare(q)
    ch.queue_bind(q, x)
    ch.exchange_declare(x, passive=True)
    # last binding removed: deleted
    ch.queue_unbind(q, x)
    with channel_closed(404, f"NOT_FOUND - no exchange '{x}' in vhost '{V}'"):
        ch.exchange_declare(x, passive=True)


def test_auto_delete_exchange_deleted_with_last_bound_queue(conn, names):
    ch = conn.channel()
    x, q = names.exchange(), names.queue()
    ch.exchange_declare(x, exchange_type="fanout", auto_delete=True)
    ch.queue_declare(q)
    ch.queue_bind(q, x)
    ch.queue_delete(q)
    with channel_closed(404, f"NOT_FOUND - no exchange '{x}' in vhost '{V}'"):
        ch.exchange_declare(x, passive=True)
