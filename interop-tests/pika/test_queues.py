"""queue.* methods."""

import re
import time

import pika
import pika.exceptions
import pytest

from conftest import BROKER_VHOST, WAIT, channel_closed, get_all, uid, wait_for

V = BROKER_VHOST


def queue_gone(conn, q, timeout=WAIT):
    """Poll (bounded) with passive declares until the queue no longer exists."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn.channel().queue_declare(q, passive=True)
        except pika.exceptions.ChannelClosedByBroker as e:
            assert e.reply_code == 404, e
            assert e.reply_text == f"NOT_FOUND - no queue '{q}' in vhost '{V}'"
            return True
        conn.process_data_events(time_limit=0.02)
    return False


def test_server_named_queue(ch):
    r = ch.queue_declare("", exclusive=True)
    assert re.fullmatch(r"amq\.gen-[A-Za-z0-9_-]{22}", r.method.queue), r.method.queue
    assert r.method.message_count == 0 and r.method.consumer_count == 0
    r2 = ch.queue_declare("", exclusive=True)
    assert r2.method.queue != r.method.queue
    # usable by name
    ch.basic_publish("", r.method.queue, b"x")
    assert [b for _, _, b in get_all(ch, r.method.queue)] == [b"x"]


def test_server_named_non_exclusive_queue(ch, names):
    r = ch.queue_declare("")
    names.track_queue(r.method.queue)
    assert r.method.queue.startswith("amq.gen-")


def test_declare_reserved_amq_prefix_refused(conn):
    q = "amq." + uid()
    with channel_closed(403, f"ACCESS_REFUSED - queue name '{q}' contains reserved prefix 'amq.*'"):
        conn.channel().queue_declare(q)
    with channel_closed(404, f"NOT_FOUND - no queue '{q}' in vhost '{V}'"):
        conn.channel().queue_declare(q, passive=True)


def test_passive_declare_missing_queue(conn):
    q = uid("missing")
    with channel_closed(404, f"NOT_FOUND - no queue '{q}' in vhost '{V}'") as closed:
        conn.channel().queue_declare(q, passive=True)
    assert closed.reply_text == f"NOT_FOUND - no queue '{q}' in vhost '{V}'"
    assert conn.is_open


def test_passive_declare_empty_name(conn):
    with channel_closed(404, f"NOT_FOUND - no queue '' in vhost '{V}'"):
        conn.channel().queue_declare("", passive=True)


def test_long_reply_text_is_truncated(conn):
    # reply-text is a shortstr: RabbitMQ cuts it to 252 bytes + "..."
    q = "q" * 250
    with channel_closed(404, "NOT_FOUND - no queue 'qqqq") as closed:
        conn.channel().queue_declare(q, passive=True)
    full = f"NOT_FOUND - no queue '{q}' in vhost '{V}'"
    assert closed.reply_text == full[:252] + "..."


def test_exclusive_queue_locked_for_other_connections(connect, names):
    owner = connect()
    other = connect()
    q = names.queue()
    owner.channel().queue_declare(q, exclusive=True)
    prefix = f"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{q}' in vhost '{V}'."
    ops = [
        lambda ch: ch.queue_declare(q),
        lambda ch: ch.queue_declare(q, passive=True),
        lambda ch: ch.queue_declare(q, exclusive=True),
        lambda ch: ch.basic_get(q),
        lambda ch: ch.basic_consume(q, lambda *a: None),
        lambda ch: ch.queue_purge(q),
        lambda ch: ch.queue_delete(q),
        lambda ch: ch.queue_bind(q, "amq.fanout"),
    ]
    for op in ops:
        with channel_closed(405, prefix) as closed:
            op(other.channel())
        assert len(closed.reply_text) <= 255
    # the owner can still use it
    ch = owner.channel()
    ch.basic_publish("", q, b"mine")
    assert [b for _, _, b in get_all(ch, q)] == [b"mine"]


def test_exclusive_queue_full_reply_text(connect):
    owner = connect()
    other = connect()
    q = uid("x")[:40]
    owner.channel().queue_declare(q, exclusive=True)
    full = (
        f"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{q}' in vhost '{V}'. "
        "It could be originally declared on another connection or the exclusive property value "
        "does not match that of the original declaration."
    )
    with channel_closed(405) as closed:
        other.channel().queue_declare(q)
    expected = full if len(full) <= 255 else full[:252] + "..."
    assert closed.reply_text == expected


def test_exclusive_queue_deleted_when_connection_closes(connect, names):
    owner = connect()
    observer = connect()
    q = names.queue()
    owner.channel().queue_declare(q, exclusive=True)
    owner.close()
    assert queue_gone(observer, q)


def test_redeclare_exclusive_flag_mismatch_same_connection(conn, names):
    q = names.queue()
    conn.channel().queue_declare(q)
    with channel_closed(405, f"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{q}' in vhost '{V}'."):
        conn.channel().queue_declare(q, exclusive=True)


def test_auto_delete_after_last_consumer_cancels(conn, names):
    ch = conn.channel()
    q = names.queue()
    ch.queue_declare(q, auto_delete=True)
    # no consumer ever: it stays
    assert conn.channel().queue_declare(q, passive=True).method.consumer_count == 0
    t1 = ch.basic_consume(q, lambda *a: None)
    t2 = ch.basic_consume(q, lambda *a: None)
    ch.basic_cancel(t1)
    assert conn.channel().queue_declare(q, passive=True).method.consumer_count == 1
    ch.basic_cancel(t2)
    assert queue_gone(conn, q)


def test_auto_delete_when_consumer_channel_closes(conn, names):
    q = names.queue()
    ch = conn.channel()
    ch.queue_declare(q, auto_delete=True)
    ch.basic_consume(q, lambda *a: None)
    ch.close()
    assert queue_gone(conn, q)


@pytest.mark.parametrize(
    "change, arg, received, current",
    [
        (dict(durable=True), "durable", "'true'", "'false'"),
        (dict(auto_delete=True), "auto_delete", "'true'", "'false'"),
        (dict(arguments={"x-max-length": 11}), "x-max-length", "'11'", "'10'"),
        (dict(arguments={}), "x-max-length", "none", "the value '10' of type 'signedint'"),
    ],
)
def test_redeclare_with_different_flags_or_args(conn, names, change, arg, received, current):
    q = names.queue()
    conn.channel().queue_declare(q, arguments={"x-max-length": 10})
    kwargs = dict(arguments={"x-max-length": 10})
    kwargs.update(change)
    text = (
        f"PRECONDITION_FAILED - inequivalent arg '{arg}' for queue '{q}' in vhost '{V}': "
        f"received {received} but current is {current}"
    )
    with channel_closed(406, text) as closed:
        conn.channel().queue_declare(q, **kwargs)
    assert closed.reply_text == text
    # identical redeclare still fine
    conn.channel().queue_declare(q, arguments={"x-max-length": 10})


def test_declare_ok_counts(connect, names):
    c = connect()
    q = names.queue()
    ch = c.channel()
    ch.confirm_delivery()
    ch.queue_declare(q)
    for i in range(5):
        ch.basic_publish("", q, str(i).encode())
    r = ch.queue_declare(q)
    assert (r.method.message_count, r.method.consumer_count) == (5, 0)

    got = []
    consumers = []
    for _ in range(2):
        cch = c.channel()
        cch.basic_qos(prefetch_count=1)
        cch.basic_consume(q, lambda _ch, m, p, b: got.append(b))
        consumers.append(cch)
    assert wait_for(c, lambda: len(got) == 2)
    # message_count counts only ready (not unacked) messages
    r = c.channel().queue_declare(q, passive=True)
    assert (r.method.message_count, r.method.consumer_count) == (3, 2)


def test_bind_unbind(conn, names):
    ch = conn.channel()
    ch.confirm_delivery()
    x, q = names.exchange(), names.queue()
    ch.exchange_declare(x, exchange_type="direct")
    ch.queue_declare(q)
    r = ch.queue_bind(q, x, "k")
    assert isinstance(r.method, pika.spec.Queue.BindOk)
    ch.basic_publish(x, "k", b"1", mandatory=True)
    r = ch.queue_unbind(q, x, "k")
    assert isinstance(r.method, pika.spec.Queue.UnbindOk)
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish(x, "k", b"2", mandatory=True)
    assert [b for _, _, b in get_all(ch, q)] == [b"1"]


def test_bind_missing_queue_or_exchange(conn, names):
    q = names.queue()
    conn.channel().queue_declare(q)
    missing = uid("missing")
    with channel_closed(404, f"NOT_FOUND - no exchange '{missing}' in vhost '{V}'"):
        conn.channel().queue_bind(q, missing, "k")
    with channel_closed(404, f"NOT_FOUND - no queue '{missing}' in vhost '{V}'"):
        conn.channel().queue_bind(missing, "amq.direct", "k")


def test_unbind_missing_binding_is_ok(conn, names):
    q = names.queue()
    ch = conn.channel()
    ch.queue_declare(q)
    ch.queue_unbind(q, "amq.direct", "never-bound")
    # RabbitMQ 3.10.8 also answers unbind-ok when the exchange does not exist
    ch.queue_unbind(q, uid("missing"), "k")


def test_purge_returns_count(conn, names):
    ch = conn.channel()
    q = names.queue()
    ch.queue_declare(q)
    for i in range(4):
        ch.basic_publish("", q, b"x")
    m, _, _ = ch.basic_get(q, auto_ack=False)  # one unacked: not purged
    r = ch.queue_purge(q)
    assert r.method.message_count == 3
    assert ch.queue_declare(q, passive=True).method.message_count == 0
    assert conn.channel().queue_purge(q).method.message_count == 0
    ch.close()  # unacked message returns to the queue
    assert conn.channel().queue_declare(q, passive=True).method.message_count == 1


def test_purge_missing_queue(conn):
    q = uid("missing")
    with channel_closed(404, f"NOT_FOUND - no queue '{q}' in vhost '{V}'"):
        conn.channel().queue_purge(q)


def test_delete_returns_count(conn, names):
    ch = conn.channel()
    q = names.queue()
    ch.queue_declare(q)
    for i in range(3):
        ch.basic_publish("", q, b"x")
    r = ch.queue_delete(q)
    assert r.method.message_count == 3
    with channel_closed(404, f"NOT_FOUND - no queue '{q}' in vhost '{V}'"):
        ch.queue_declare(q, passive=True)


def test_delete_missing_queue_is_ok(ch):
    r = ch.queue_delete(uid("missing"))
    assert r.method.message_count == 0


def test_delete_if_empty(conn, names):
    q = names.queue()
    ch = conn.channel()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"x")
    with channel_closed(406, f"PRECONDITION_FAILED - queue '{q}' in vhost '{V}' not empty"):
        conn.channel().queue_delete(q, if_empty=True)
    ch.queue_purge(q)
    assert ch.queue_delete(q, if_empty=True).method.message_count == 0


def test_delete_if_unused(conn, names):
    q = names.queue()
    ch = conn.channel()
    ch.queue_declare(q)
    tag = ch.basic_consume(q, lambda *a: None)
    with channel_closed(406, f"PRECONDITION_FAILED - queue '{q}' in vhost '{V}' in use"):
        conn.channel().queue_delete(q, if_unused=True)
    ch.basic_cancel(tag)
    ch.queue_delete(q, if_unused=True)


def test_delete_queue_cancels_its_consumers(connect, names):
    c = connect()
    q = names.queue()
    ch = c.channel()
    ch.queue_declare(q)
    cancels = []
    ch.add_on_cancel_callback(lambda frame: cancels.append(frame.method))
    tag = ch.basic_consume(q, lambda *a: None)
    other = connect()
    other.channel().queue_delete(q)
    assert wait_for(c, lambda: cancels)
    (cancel,) = cancels
    assert isinstance(cancel, pika.spec.Basic.Cancel)
    assert cancel.consumer_tag == tag
    assert ch.consumer_tags == []
    assert ch.is_open


def test_delete_queue_removes_bindings(conn, names):
    ch = conn.channel()
    ch.confirm_delivery()
    x, q = names.exchange(), names.queue()
    ch.exchange_declare(x, exchange_type="fanout")
    ch.queue_declare(q)
    ch.queue_bind(q, x)
    ch.queue_delete(q)
    ch.queue_declare(q)
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish(x, "", b"x", mandatory=True)
