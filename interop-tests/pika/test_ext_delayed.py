"""The delayed message exchange (x-delayed-message, RabbitMQ's community plugin
rabbitmq_delayed_message_exchange).

The plugin is not part of Debian's RabbitMQ, so these tests are warren_only and follow the
plugin's README and source: a message with an integer x-delay header > 0 is routed (through the
x-delayed-type exchange logic) x-delay ms after publishing, in due-time order, and is delivered
with x-delay negated; without the header (or with x-delay <= 0) it is routed at once.
"""

import os
import subprocess
import time

import pika
import pika.exceptions
import pytest

from conftest import BROKER_VHOST, channel_closed, get_all, params, uid
from ext_helpers import count, poll_get, wait_count

V = BROKER_VHOST


def confirm_channel(conn):
    ch = conn.channel()
    ch.confirm_delivery()
    return ch

# ---------------------------------------------------------------------------
# delayed message exchange (plugin absent from Debian's RabbitMQ: Warren only)
# ---------------------------------------------------------------------------


def delayed_exchange(ch, names, xtype="direct"):
    x = names.exchange("delayed")
    ch.exchange_declare(x, "x-delayed-message", arguments={"x-delayed-type": xtype})
    return x


# Warren only: rabbitmq_delayed_message_exchange is not installed in the reference RabbitMQ.
@pytest.mark.warren_only
def test_delayed_message_is_routed_after_its_delay(conn, names):
    ch = confirm_channel(conn)
    x, q = delayed_exchange(ch, names), names.queue()
    ch.queue_declare(q)
    ch.queue_bind(q, x, "k")
    start = time.monotonic()
    ch.basic_publish(x, "k", b"later", pika.BasicProperties(headers={"x-delay": 400}))
    n = count(ch, q)
    if time.monotonic() - start < 0.3:
        assert n == 0
    m, p, body = poll_get(conn, ch, q)
    assert time.monotonic() - start >= 0.4 * 0.9
    assert body == b"later"
    assert (m.exchange, m.routing_key) == (x, "k")
    # delivered with the delay negated, so it is not delayed again downstream
    assert p.headers == {"x-delay": -400}


# Warren only: rabbitmq_delayed_message_exchange is not installed in the reference RabbitMQ.
@pytest.mark.warren_only
def test_delayed_messages_arrive_in_due_time_order(conn, names):
    ch = confirm_channel(conn)
    x, q = delayed_exchange(ch, names), names.queue()
    ch.queue_declare(q)
    ch.queue_bind(q, x, "k")
    for body, delay in [("late", 600), ("early", 200), ("middle", 400), ("now", None), ("zero", 0),
                        ("negative", -5)]:
        headers = {"x-delay": delay} if delay is not None else None
        ch.basic_publish(x, "k", body.encode(), pika.BasicProperties(headers=headers))
    assert wait_count(conn, ch, q, 6)
    # no header or x-delay <= 0: routed at once, in publish order; then by due time
    assert [b.decode() for _, _, b in get_all(ch, q)] == [
        "now", "zero", "negative", "early", "middle", "late"]


# Warren only: rabbitmq_delayed_message_exchange is not installed in the reference RabbitMQ.
@pytest.mark.warren_only
def test_delayed_exchange_routes_like_its_delayed_type(conn, names):
    ch = confirm_channel(conn)
    x = delayed_exchange(ch, names, "topic")
    hit, miss = names.queue("hit"), names.queue("miss")
    ch.queue_declare(hit)
    ch.queue_declare(miss)
    ch.queue_bind(hit, x, "a.*")
    ch.queue_bind(miss, x, "b.#")
    ch.basic_publish(x, "a.one", b"1", pika.BasicProperties(headers={"x-delay": 50}))
    ch.basic_publish(x, "a.two", b"2")
    m, p, body = poll_get(conn, ch, hit)
    m2, p2, body2 = poll_get(conn, ch, hit)
    assert [body, body2] == [b"2", b"1"]
    assert count(ch, miss) == 0


# Warren only: rabbitmq_delayed_message_exchange is not installed in the reference RabbitMQ
# (there, declaring type x-delayed-message is a 503 "unknown exchange type" connection error).
@pytest.mark.warren_only
@pytest.mark.parametrize(
    "arguments, text",
    [
        (None, "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must be an existing exchange type"),
        ({"x-delayed-type": 1}, "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must be an existing exchange type"),
        ({"x-delayed-type": "x-delayed-message"},
         "PRECONDITION_FAILED - Invalid argument, 'x-delayed-message' can't be used for 'x-delayed-type'"),
    ],
)
def test_delayed_exchange_needs_a_delayed_type(conn, names, arguments, text):
    x = names.exchange("delayed")
    with channel_closed(406) as closed:
        conn.channel().exchange_declare(x, "x-delayed-message", arguments=arguments)
    assert closed.reply_text == text


# Warren only: rabbitmq_delayed_message_exchange is not installed in the reference RabbitMQ.
@pytest.mark.warren_only
def test_many_delayed_messages_arrive_in_due_order_without_loss(conn, names):
    ch = confirm_channel(conn)
    x, q = delayed_exchange(ch, names), names.queue()
    ch.queue_declare(q)
    ch.queue_bind(q, x, "k")
    n = 2000
    # delays spread over 0.3-0.8 s, published out of order
    delays = [300 + (i * 7919) % 500 for i in range(n)]
    # The broker takes a message's due time when it receives it: after the client sent it and
    # before the confirm came back. So each message's due time is known to lie in a window.
    earliest, latest = [], []
    for i, d in enumerate(delays):
        sent = time.monotonic()
        ch.basic_publish(x, "k", str(i).encode(), pika.BasicProperties(headers={"x-delay": d}))
        confirmed = time.monotonic()
        earliest.append(sent * 1000 + d)
        latest.append(confirmed * 1000 + d)
    assert wait_count(conn, ch, q, n, timeout=30)
    got = [int(b) for _, _, b in get_all(ch, q)]
    assert sorted(got) == list(range(n))
    # Routed in due-time order: no message arrives before one that was surely due earlier (2 ms
    # for the broker's millisecond clock). Until session 4 this assumed the broker received each
    # publish within 20 ms of the client's clock reading; a CI run under load broke that
    # assumption (receive lags differing by 22 and 36 ms) without any routing out of order.
    late = [
        (j, earliest[got[j]] - latest[got[j + 1]])
        for j in range(n - 1)
        if earliest[got[j]] > latest[got[j + 1]] + 2
    ]
    assert not late, late[:10]


# Warren only (plugin absent from the reference RabbitMQ). Delayed messages are kept in the store:
# a confirmed one survives a restart and is routed when due. Needs BROKER_RESTART and/or
# BROKER_KILL_RESTART, like test_restart.py.
@pytest.mark.warren_only
@pytest.mark.parametrize("mode", ["graceful", "kill"])
def test_confirmed_delayed_messages_survive_a_restart(mode):
    command = {"graceful": os.environ.get("BROKER_RESTART"),
               "kill": os.environ.get("BROKER_KILL_RESTART")}[mode]
    if not command:
        pytest.skip(f"no {mode} restart command for this broker")
    x, q = uid("delayed"), uid("q")
    conn = pika.BlockingConnection(params())
    ch = confirm_channel(conn)
    ch.exchange_declare(x, "x-delayed-message", durable=True, arguments={"x-delayed-type": "direct"})
    ch.queue_declare(q, durable=True)
    ch.queue_bind(q, x, "k")
    for i, delay in enumerate([1500, 1000, 2000]):
        ch.basic_publish(x, "k", str(i).encode(),
                         pika.BasicProperties(delivery_mode=2, headers={"x-delay": delay}))
    subprocess.run(command, shell=True, check=True, timeout=180)
    try:
        conn.close()
    except Exception:
        pass
    conn = pika.BlockingConnection(params())
    ch = conn.channel()
    assert wait_count(conn, ch, q, 3, timeout=20)
    assert [b for _, _, b in get_all(ch, q)] == [b"1", b"0", b"2"]
    ch.queue_delete(q)
    ch.exchange_delete(x)
    conn.close()
