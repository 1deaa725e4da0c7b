"""Quorum queues (x-queue-type), x-delivery-limit and the x-delivery-count header, as in
RabbitMQ 3.10.8.

Observed on RabbitMQ:
* x-queue-type classic and quorum are accepted; quorum needs durable, non-exclusive,
  non-auto-delete queues (406 "invalid property ..." otherwise, checked in that order:
  auto-delete, exclusive-owner, non-durable);
* every redelivery from a quorum queue carries x-delivery-count (long, 'l') = number of
  earlier returns (nack/reject with requeue, or channel close); the first delivery to a
  consumer has no such header, but basic.get adds x-delivery-count 0 even the first time;
  adding the header re-sorts the headers table by key;
* with x-delivery-limit N a message returned for the (N+1)th time is dead-lettered with reason
  delivery_limit (or dropped without a DLX); x-delivery-count is not carried into the
  dead-lettered copy;
* x-delivery-limit on a classic queue is refused.
"""

import pika
import pytest

from conftest import BROKER_VHOST, channel_closed, drain, get_all, wait_for
from ext_helpers import count, poll_get, raw_get, wait_count

V = BROKER_VHOST
QUORUM = {"x-queue-type": "quorum"}


def confirm_channel(conn):
    ch = conn.channel()
    ch.confirm_delivery()
    return ch


def quorum(ch, names, prefix="qq", **args):
    q = names.queue(prefix)
    ch.queue_declare(q, durable=True, arguments={**QUORUM, **args})
    return q


# ---------------------------------------------------------------------------
# declaring
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("qtype", ["classic", "quorum"])
def test_queue_types_are_accepted(conn, names, qtype):
    ch = confirm_channel(conn)
    q = names.queue()
    ch.queue_declare(q, durable=True, arguments={"x-queue-type": qtype})
    ch.basic_publish("", q, b"x")
    assert [b for _, _, b in get_all(ch, q)] == [b"x"]
    # redeclaring with the same type is fine
    ch.queue_declare(q, durable=True, arguments={"x-queue-type": qtype})


def test_classic_type_is_the_default(conn, names):
    q = names.queue()
    conn.channel().queue_declare(q, arguments={"x-queue-type": "classic"})
    conn.channel().queue_declare(q)
    q2 = names.queue()
    conn.channel().queue_declare(q2)
    conn.channel().queue_declare(q2, arguments={"x-queue-type": "classic"})


@pytest.mark.parametrize("qtype", ["stream2", "Quorum", ""])
def test_unknown_queue_type(conn, names, qtype):
    q = names.queue()
    text = (f"PRECONDITION_FAILED - invalid arg 'x-queue-type' for queue '{q}' in vhost '{V}': "
            f"\"unsupported queue type '{qtype}'\"")
    with channel_closed(406) as closed:
        conn.channel().queue_declare(q, durable=True, arguments={"x-queue-type": qtype})
    assert closed.reply_text == text


def test_queue_type_must_be_a_string(conn, names):
    q = names.queue()
    text = (f"PRECONDITION_FAILED - invalid arg 'x-queue-type' for queue '{q}' in vhost '{V}': "
            "{unacceptable_type,signedint}")
    with channel_closed(406) as closed:
        conn.channel().queue_declare(q, durable=True, arguments={"x-queue-type": 1})
    assert closed.reply_text == text


@pytest.mark.parametrize(
    "flags, prop",
    [
        (dict(), "non-durable"),
        (dict(durable=True, exclusive=True), "exclusive-owner"),
        (dict(durable=True, auto_delete=True), "auto-delete"),
        (dict(exclusive=True), "exclusive-owner"),
        (dict(auto_delete=True), "auto-delete"),
        (dict(durable=True, exclusive=True, auto_delete=True), "auto-delete"),
    ],
)
def test_quorum_queue_flag_requirements(conn, names, flags, prop):
    q = names.queue()
    text = f"PRECONDITION_FAILED - invalid property '{prop}' for queue '{q}' in vhost '{V}'"
    with channel_closed(406) as closed:
        conn.channel().queue_declare(q, arguments=QUORUM, **flags)
    assert closed.reply_text == text


def test_redeclare_quorum_queue_needs_the_type(conn, names):
    ch = conn.channel()
    q = quorum(ch, names)
    text = (f"PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '{q}' in vhost '{V}': "
            "received none but current is the value 'quorum' of type 'longstr'")
    with channel_closed(406) as closed:
        conn.channel().queue_declare(q, durable=True)
    assert closed.reply_text == text
    text = (f"PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '{q}' in vhost '{V}': "
            "received 'classic' but current is 'quorum'")
    with channel_closed(406) as closed:
        conn.channel().queue_declare(q, durable=True, arguments={"x-queue-type": "classic"})
    assert closed.reply_text == text
    # passive declare does not care
    conn.channel().queue_declare(q, passive=True)


@pytest.mark.parametrize("arg, value", [("x-max-priority", 5), ("x-queue-mode", "lazy")])
def test_classic_only_arguments_refused_on_quorum(conn, names, arg, value):
    q = names.queue()
    text = (f"PRECONDITION_FAILED - invalid arg '{arg}' for queue '{q}' in vhost '{V}' "
            "of queue type rabbit_quorum_queue")
    with channel_closed(406) as closed:
        conn.channel().queue_declare(q, durable=True, arguments={**QUORUM, arg: value})
    assert closed.reply_text == text


@pytest.mark.parametrize("value", [5, -1, "5"])
def test_delivery_limit_refused_on_classic_queue(conn, names, value):
    q = names.queue()
    text = (f"PRECONDITION_FAILED - invalid arg 'x-delivery-limit' for queue '{q}' in vhost '{V}' "
            "of queue type rabbit_classic_queue")
    with channel_closed(406) as closed:
        conn.channel().queue_declare(q, arguments={"x-delivery-limit": value})
    assert closed.reply_text == text


# ---------------------------------------------------------------------------
# x-delivery-count
# ---------------------------------------------------------------------------


def test_delivery_count_on_redelivery_to_a_consumer(conn, names):
    ch = confirm_channel(conn)
    q = quorum(ch, names)
    seen = []

    def on_msg(c, m, p, b):
        seen.append((m.redelivered, p.headers))
        if len(seen) < 4:
            c.basic_nack(m.delivery_tag, requeue=True) if len(seen) % 2 else c.basic_reject(
                m.delivery_tag, requeue=True)
        else:
            c.basic_ack(m.delivery_tag)

    conn.channel().basic_consume(q, on_msg)
    ch.basic_publish("", q, b"x", pika.BasicProperties(headers={"z": 1}))
    assert wait_for(conn, lambda: len(seen) == 4)
    assert seen == [
        (False, {"z": 1}),  # first delivery: no x-delivery-count
        (True, {"x-delivery-count": 1, "z": 1}),
        (True, {"x-delivery-count": 2, "z": 1}),
        (True, {"x-delivery-count": 3, "z": 1}),
    ]
    assert wait_count(conn, ch, q, 0)


def test_basic_get_adds_delivery_count_zero_on_first_delivery(conn, names):
    ch = confirm_channel(conn)
    q = quorum(ch, names)
    ch.basic_publish("", q, b"x")
    m, p, _ = ch.basic_get(q, auto_ack=False)
    assert (m.redelivered, p.headers) == (False, {"x-delivery-count": 0})
    ch.basic_nack(m.delivery_tag, requeue=True)
    m, p, _ = poll_get(conn, ch, q, auto_ack=False)
    assert (m.redelivered, p.headers) == (True, {"x-delivery-count": 1})
    ch.basic_ack(m.delivery_tag)


def test_delivery_count_wire_type_and_header_order(conn, names):
    ch = confirm_channel(conn)
    q = quorum(ch, names)
    ch.basic_publish("", q, b"x", pika.BasicProperties(headers={"z": 1, "a": "s"}))
    args, p, _ = raw_get(q)
    # a long ('l'), and the headers table re-sorted by key
    assert p["headers"] == [("a", ("S", b"s")), ("x-delivery-count", ("l", 0)), ("z", ("I", 1))]


def test_channel_close_counts_as_a_return(conn, names):
    ch = confirm_channel(conn)
    q = quorum(ch, names)
    ch.basic_publish("", q, b"x")
    taker = conn.channel()
    m, p, _ = taker.basic_get(q, auto_ack=False)
    assert p.headers == {"x-delivery-count": 0}
    taker.close()
    m, p, _ = poll_get(conn, ch, q)
    assert (m.redelivered, p.headers) == (True, {"x-delivery-count": 1})


def test_reject_without_requeue_drops_without_dlx(conn, names):
    ch = confirm_channel(conn)
    q = quorum(ch, names)
    ch.basic_publish("", q, b"x")
    m, _, _ = ch.basic_get(q, auto_ack=False)
    ch.basic_reject(m.delivery_tag, requeue=False)
    assert wait_count(conn, ch, q, 0)
    assert ch.basic_get(q) == (None, None, None)


# ---------------------------------------------------------------------------
# x-delivery-limit
# ---------------------------------------------------------------------------


def test_delivery_limit_dead_letters(conn, names):
    ch = confirm_channel(conn)
    dead = names.queue("dead")
    ch.queue_declare(dead)
    q = quorum(ch, names, **{"x-delivery-limit": 2, "x-dead-letter-exchange": "",
                             "x-dead-letter-routing-key": dead})
    ch.basic_publish("", q, b"poison", pika.BasicProperties(headers={"a": 1}))
    counts = []
    for _ in range(3):  # deliveries with count 0, 1, 2; the third return goes over the limit
        m, p, _ = poll_get(conn, ch, q, auto_ack=False)
        counts.append(p.headers["x-delivery-count"])
        ch.basic_nack(m.delivery_tag, requeue=True)
    assert counts == [0, 1, 2]
    m, p, body = poll_get(conn, ch, dead)
    assert body == b"poison"
    assert "x-delivery-count" not in p.headers
    assert p.headers["a"] == 1
    (death,) = p.headers["x-death"]
    assert (death["reason"], death["queue"], death["count"], death["exchange"], death["routing-keys"]) == (
        "delivery_limit", q, 1, "", [q])
    assert p.headers["x-first-death-reason"] == "delivery_limit"
    assert count(ch, q) == 0


def test_delivery_limit_dead_letter_on_the_wire(conn, names):
    ch = confirm_channel(conn)
    dead = names.queue("dead")
    ch.queue_declare(dead)
    q = quorum(ch, names, **{"x-delivery-limit": 0, "x-dead-letter-exchange": "",
                             "x-dead-letter-routing-key": dead})
    ch.basic_publish("", q, b"x")
    m, _, _ = poll_get(conn, ch, q, auto_ack=False)
    ch.basic_reject(m.delivery_tag, requeue=True)
    assert wait_count(conn, ch, dead, 1)
    _, p, _ = raw_get(dead)
    assert [k for k, _ in p["headers"]] == ["x-death", "x-first-death-exchange",
                                            "x-first-death-queue", "x-first-death-reason"]
    (_, death), = dict(p["headers"])["x-death"][1]
    assert [k for k, _ in death] == ["count", "reason", "queue", "time", "exchange", "routing-keys"]
    assert dict(death)["reason"] == ("S", b"delivery_limit")
    assert dict(death)["count"] == ("l", 1)


def test_delivery_limit_without_dlx_drops(conn, names):
    ch = confirm_channel(conn)
    q = quorum(ch, names, **{"x-delivery-limit": 1})
    ch.basic_publish("", q, b"x")
    for expected in (0, 1):
        m, p, _ = poll_get(conn, ch, q, auto_ack=False)
        assert p.headers["x-delivery-count"] == expected
        ch.basic_nack(m.delivery_tag, requeue=True)
    assert wait_count(conn, ch, q, 0)
    drain(conn, 0.2)
    assert ch.basic_get(q) == (None, None, None)


def test_delivery_limit_with_a_consumer(conn, names):
    ch = confirm_channel(conn)
    dead = names.queue("dead")
    ch.queue_declare(dead)
    q = quorum(ch, names, **{"x-delivery-limit": 3, "x-dead-letter-exchange": "",
                             "x-dead-letter-routing-key": dead})
    seen = []

    def on_msg(c, m, p, b):
        seen.append((p.headers or {}).get("x-delivery-count"))
        c.basic_nack(m.delivery_tag, requeue=True)

    conn.channel().basic_consume(q, on_msg)
    ch.basic_publish("", q, b"x")
    m, p, _ = poll_get(conn, ch, dead)
    assert seen == [None, 1, 2, 3]
    assert p.headers["x-death"][0]["reason"] == "delivery_limit"
