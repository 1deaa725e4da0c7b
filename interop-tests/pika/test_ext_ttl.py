"""Message TTL (x-message-ttl, the expiration property) and queue expiry (x-expires), as in
RabbitMQ 3.10.8.

Timing: TTLs are small and every wait is bounded polling (basic.get, passive declare, or
mandatory publishes) against a deadline; ``drain`` only proves that nothing else arrives.
Publishers use confirms wherever a count is read right after publishing (RabbitMQ answers a
passive declare possibly ahead of earlier unconfirmed publishes).
"""

import time

import pika
import pika.exceptions
import pytest

from conftest import BROKER_VHOST, WAIT, channel_closed, drain, get_all, wait_for
from ext_helpers import count, poll_get, queue_gone_by_publish, wait_count

V = BROKER_VHOST


def props(expiration=None, **kw):
    return pika.BasicProperties(expiration=expiration, **kw)


def bodies(msgs):
    return [b.decode() for _, _, b in msgs]


def confirm_channel(conn):
    ch = conn.channel()
    ch.confirm_delivery()
    return ch


# ---------------------------------------------------------------------------
# x-message-ttl and expiration
# ---------------------------------------------------------------------------


def test_queue_ttl_expires_messages(conn, names):
    ch = confirm_channel(conn)
    q = names.queue()
    ch.queue_declare(q, arguments={"x-message-ttl": 100})
    start = time.monotonic()
    ch.basic_publish("", q, b"short-lived")
    n = count(ch, q)
    if time.monotonic() - start < 0.08:  # only meaningful while the TTL cannot have passed
        assert n == 1
    assert wait_count(conn, ch, q, 0)
    assert ch.basic_get(q) == (None, None, None)


def test_per_message_expiration(conn, names):
    ch = confirm_channel(conn)
    q = names.queue()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"keep")
    ch.basic_publish("", q, b"short", props("50"))
    ch.basic_publish("", q, b"keep2", props("600000"))
    m, _, body = ch.basic_get(q, auto_ack=True)
    assert body == b"keep"
    # "short" is now at the head and expires on its own
    assert wait_count(conn, ch, q, 1)
    (m, p, body), = get_all(ch, q)
    assert (body, p.expiration) == (b"keep2", "600000")


def test_expired_message_at_head_is_dropped_and_never_delivered(conn, names):
    ch = confirm_channel(conn)
    q = names.queue()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"doomed", props("30"))
    ch.basic_publish("", q, b"keep")
    # the head expires on its own: the count goes to 1 without anyone fetching
    assert wait_count(conn, ch, q, 1)
    assert bodies(get_all(ch, q)) == ["keep"]


@pytest.mark.parametrize(
    "queue_ttl, expiration",
    [(600000, "50"), (50, "600000")],
    ids=["message-ttl-smaller", "queue-ttl-smaller"],
)
def test_smaller_of_queue_ttl_and_expiration_applies(conn, names, queue_ttl, expiration):
    ch = confirm_channel(conn)
    q = names.queue()
    ch.queue_declare(q, arguments={"x-message-ttl": queue_ttl})
    ch.basic_publish("", q, b"x", props(expiration))
    assert wait_count(conn, ch, q, 0)
    # a message with neither a short queue TTL nor a short expiration stays
    q2 = names.queue()
    ch.queue_declare(q2, arguments={"x-message-ttl": 600000})
    ch.basic_publish("", q2, b"stays", props("600000"))
    assert bodies(get_all(ch, q2)) == ["stays"]


def test_expired_messages_are_not_delivered_to_a_consumer(conn, names):
    ch = confirm_channel(conn)
    q = names.queue()
    ch.queue_declare(q)
    seen = []
    cch = conn.channel()
    cch.basic_qos(prefetch_count=1)
    cch.basic_consume(q, lambda c, m, p, b: seen.append((m.delivery_tag, b.decode())))
    ch.basic_publish("", q, b"busy")
    assert wait_for(conn, lambda: len(seen) == 1)
    # the consumer is at its prefetch limit; this one expires while waiting
    ch.basic_publish("", q, b"doomed", props("30"))
    ch.basic_publish("", q, b"later")
    assert wait_count(conn, ch, q, 1)
    cch.basic_ack(seen[0][0])
    assert wait_for(conn, lambda: len(seen) == 2)
    drain(conn, 0.1)
    assert [b for _, b in seen] == ["busy", "later"]


def test_expiration_property_is_delivered_unchanged(ch, names):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-message-ttl": 600000})
    ch.basic_publish("", q, b"a", props("500000"))
    ch.basic_publish("", q, b"b")
    msgs = get_all(ch, q)
    # the queue TTL does not add an expiration property
    assert [p.expiration for _, p, _ in msgs] == ["500000", None]


def test_unacked_message_whose_ttl_passed_expires_when_requeued(conn, names):
    ch = confirm_channel(conn)
    dead, q = names.queue("dead"), names.queue()
    ch.queue_declare(dead)
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead})
    ch.basic_publish("", q, b"held", props("100"))
    taker = conn.channel()
    m, _, body = taker.basic_get(q, auto_ack=False)
    assert body == b"held"
    # while unacked the message does not expire: wait until its TTL is certainly over
    published = time.monotonic()
    assert wait_for(conn, lambda: time.monotonic() - published > 0.25)
    assert count(ch, dead) == 0
    taker.basic_nack(m.delivery_tag, requeue=True)
    m, p, body = poll_get(conn, ch, dead)
    assert body == b"held"
    assert p.headers["x-death"][0]["reason"] == "expired"
    assert count(ch, q) == 0


# ---------------------------------------------------------------------------
# TTL 0
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["queue", "message"])
def test_ttl_zero_without_consumer_is_dropped_at_once(ch, names, where):
    q = names.queue()
    args = {"x-message-ttl": 0} if where == "queue" else None
    ch.queue_declare(q, arguments=args)
    ch.basic_publish("", q, b"x", props("0" if where == "message" else None))
    # basic.get is ordered after the publish: the message was already expired
    assert ch.basic_get(q) == (None, None, None)


@pytest.mark.parametrize("where", ["queue", "message"])
def test_ttl_zero_is_delivered_to_a_ready_consumer(conn, names, where):
    ch = conn.channel()
    q = names.queue()
    ch.queue_declare(q, arguments={"x-message-ttl": 0} if where == "queue" else None)
    seen = []
    conn.channel().basic_consume(q, lambda c, m, p, b: seen.append((b, p.expiration)), auto_ack=True)
    exp = "0" if where == "message" else None
    for i in range(5):
        ch.basic_publish("", q, str(i).encode(), props(exp))
    assert wait_for(conn, lambda: len(seen) == 5)
    assert seen == [(str(i).encode(), exp) for i in range(5)]


def test_ttl_zero_with_a_saturated_consumer_dead_letters(conn, names):
    ch = confirm_channel(conn)
    dead, q = names.queue("dead"), names.queue()
    ch.queue_declare(dead)
    ch.queue_declare(q, arguments={
        "x-message-ttl": 0, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead})
    seen = []
    cch = conn.channel()
    cch.basic_qos(prefetch_count=1)
    cch.basic_consume(q, lambda c, m, p, b: seen.append(b.decode()))
    for i in range(3):
        ch.basic_publish("", q, str(i).encode())
    assert wait_count(conn, ch, dead, 2)
    assert wait_for(conn, lambda: seen == ["0"])
    assert count(ch, q) == 0
    assert bodies(get_all(ch, dead)) == ["1", "2"]


# ---------------------------------------------------------------------------
# invalid expiration on publish
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expiration, reason",
    [
        ("abc", "no_integer"),
        ("", "no_integer"),
        (" 100", "no_integer"),
        ("-1", "{value_negative,-1}"),
        ("1.5", '{leftover_string,".5"}'),
        ("100 ", '{leftover_string," "}'),
        ("1e3", '{leftover_string,"e3"}'),
        ("315360000001", "{value_too_large,315360000001}"),
    ],
)
def test_invalid_expiration_closes_the_channel(conn, names, expiration, reason):
    q = names.queue()
    conn.channel().queue_declare(q)
    text = f"PRECONDITION_FAILED - invalid expiration '{expiration}': {reason}"
    ch = conn.channel()
    with channel_closed(406, text) as closed:
        ch.basic_publish("", q, b"x", props(expiration))
        ch.queue_declare(q, passive=True)  # wait for the broker's answer
    assert closed.reply_text == text
    assert conn.is_open
    assert count(conn.channel(), q) == 0


def test_invalid_expiration_is_checked_even_if_unroutable(conn):
    ch = conn.channel()
    text = "PRECONDITION_FAILED - invalid expiration 'abc': no_integer"
    with channel_closed(406, text):
        ch.basic_publish("", "warren-test.no-such-queue", b"x", props("abc"))
        ch.exchange_declare("amq.direct", passive=True)


@pytest.mark.parametrize("expiration", ["+100000", "0100000", "315360000000"])
def test_unusual_but_valid_expirations_are_kept_verbatim(ch, names, expiration):
    q = names.queue()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"x", props(expiration))
    (m, p, _), = get_all(ch, q)
    assert p.expiration == expiration


# ---------------------------------------------------------------------------
# x-expires
# ---------------------------------------------------------------------------


def test_unused_queue_expires(conn, names):
    q = names.queue()
    declared = time.monotonic()
    conn.channel().queue_declare(q, arguments={"x-expires": 200})
    took = queue_gone_by_publish(conn, q)
    assert took is not None
    assert time.monotonic() - declared >= 0.2 * 0.9
    text = f"NOT_FOUND - no queue '{q}' in vhost '{V}'"
    with channel_closed(404, text):
        conn.channel().queue_declare(q, passive=True)


def test_messages_do_not_keep_a_queue_alive(conn, names):
    ch = confirm_channel(conn)
    q = names.queue()
    ch.queue_declare(q, arguments={"x-expires": 200})
    for _ in range(3):
        ch.basic_publish("", q, b"x")
    assert queue_gone_by_publish(conn, q) is not None


def test_queue_with_a_consumer_does_not_expire(conn, names):
    q = names.queue()
    ch = conn.channel()
    ch.queue_declare(q, arguments={"x-expires": 100})
    tag = ch.basic_consume(q, lambda *a: None)
    drain(conn, 0.5)
    # still there (checked without renewing the lease: a mandatory publish is routed)
    probe = confirm_channel(conn)
    probe.basic_publish("", q, b"routed", mandatory=True)
    ch.basic_cancel(tag)
    assert queue_gone_by_publish(conn, q) is not None


@pytest.mark.parametrize("use", ["passive-declare", "declare", "basic-get"])
def test_declare_and_get_renew_the_lease(conn, names, use):
    q = names.queue()
    args = {"x-expires": 300}
    conn.channel().queue_declare(q, arguments=args)
    ch = conn.channel()
    ops = {
        "passive-declare": lambda: ch.queue_declare(q, passive=True),
        "declare": lambda: ch.queue_declare(q, arguments=args),
        "basic-get": lambda: ch.basic_get(q),
    }
    start = time.monotonic()
    while time.monotonic() - start < 1.0:  # > 3 x-expires periods
        ops[use]()  # raises 404 if the queue expired meanwhile
        conn.process_data_events(time_limit=0.05)
    assert queue_gone_by_publish(conn, q) is not None


# ---------------------------------------------------------------------------
# invalid TTL arguments (the full table is in test_ext_args.py)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arg, value, reason",
    [
        ("x-message-ttl", -1, "{value_negative,-1}"),
        ("x-message-ttl", "100", '"expected integer, got longstr"'),
        ("x-message-ttl", 315360000001, "{value_too_large,315360000001}"),
        ("x-expires", 0, "{value_zero,0}"),
        ("x-expires", -1, "{value_negative,-1}"),
        ("x-expires", 315360000001, "{value_too_large,315360000001}"),
    ],
)
def test_invalid_ttl_arguments(conn, names, arg, value, reason):
    q = names.queue()
    text = f"PRECONDITION_FAILED - invalid arg '{arg}' for queue '{q}' in vhost '{V}': {reason}"
    with channel_closed(406) as closed:
        conn.channel().queue_declare(q, arguments={arg: value})
    assert closed.reply_text == text


@pytest.mark.parametrize("arg, value", [("x-message-ttl", 0), ("x-message-ttl", 315360000000),
                                        ("x-expires", 1), ("x-expires", 315360000000)])
def test_ttl_argument_bounds_accepted(conn, names, arg, value):
    q = names.queue()
    conn.channel().queue_declare(q, arguments={arg: value})


# ---------------------------------------------------------------------------
# Warren only
# ---------------------------------------------------------------------------


# Warren only: RabbitMQ 3.10 expires (and dead-letters) messages only when they reach the head of
# the queue, so a short-TTL message behind a long-TTL one waits for the head to go.  Warren
# expires each message when its own TTL runs out.
@pytest.mark.warren_only
def test_short_ttl_behind_a_long_ttl_message_expires_promptly(conn, names):
    ch = confirm_channel(conn)
    dead, q = names.queue("dead"), names.queue()
    ch.queue_declare(dead)
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead})
    ch.basic_publish("", q, b"long", props("600000"))
    ch.basic_publish("", q, b"short", props("50"))
    m, p, body = poll_get(conn, ch, dead, timeout=WAIT)
    assert body == b"short"
    assert p.headers["x-death"][0]["reason"] == "expired"
    assert count(ch, q) == 1
    assert bodies(get_all(ch, q)) == ["long"]


def test_a_long_queue_without_consumers_expires_all_of_its_messages(conn, names):
    """A retry queue (TTL, dead-lettering, no consumer) with a long backlog: every message expires
    and is dead-lettered (in Warren, most of this backlog lives in the store: the suites run it with
    a 64-message memory budget)."""
    ch = conn.channel()
    ch.confirm_delivery()
    dead, q = names.queue("dead"), names.queue()
    ch.queue_declare(dead)
    ch.queue_declare(q, arguments={"x-message-ttl": 300, "x-dead-letter-exchange": "",
                                   "x-dead-letter-routing-key": dead})
    for i in range(600):
        ch.basic_publish("", q, str(i).encode())
    assert wait_count(conn, ch, dead, 600, timeout=30)
    assert count(ch, q) == 0
    assert [b for _, _, b in get_all(ch, dead)] == [str(i).encode() for i in range(600)]
