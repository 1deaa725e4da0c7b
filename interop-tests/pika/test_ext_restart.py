"""What RabbitMQ 3.10.8 keeps of the queue extensions across a broker restart: a durable priority
queue keeps its x-max-priority and its persistent messages in priority order (an unacked one
comes back redelivered, in its place); a quorum queue keeps each message's delivery count and
its x-delivery-limit; x-death headers of a dead-lettered persistent message survive.

Like test_restart.py these need BROKER_RESTART (graceful) and/or BROKER_KILL_RESTART (SIGKILL)
and are skipped without them.  For RabbitMQ:
  BROKER_RESTART="rabbitmqctl -q stop_app && rabbitmqctl -q start_app && rabbitmqctl -q await_startup"
"""

import os
import subprocess

import pika
import pytest

from conftest import get_all, params, uid
from ext_helpers import poll_get, raw_get

MODES = {
    "graceful": os.environ.get("BROKER_RESTART"),
    "kill": os.environ.get("BROKER_KILL_RESTART"),
}
PERSISTENT = 2


def restart(mode):
    subprocess.run(MODES[mode], shell=True, check=True, timeout=180)


def reconnect(old):
    try:
        old.close()
    except Exception:
        pass
    conn = pika.BlockingConnection(params())
    return conn


def need(mode):
    if not MODES[mode]:
        pytest.skip(f"no {mode} restart command for this broker")


@pytest.mark.parametrize("mode", ["graceful", "kill"])
def test_durable_priority_queue_keeps_priority_order(mode):
    need(mode)
    q = uid("prio")
    conn = pika.BlockingConnection(params())
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare(q, durable=True, arguments={"x-max-priority": 10})
    plan = [("a1", 1), ("b5", 5), ("c9", 9), ("d5", 5), ("e0", None), ("f9", 9)]
    for body, p in plan:
        ch.basic_publish("", q, body.encode(), pika.BasicProperties(priority=p, delivery_mode=PERSISTENT))
    taker = conn.channel()
    m, _, body = taker.basic_get(q, auto_ack=False)
    assert body == b"c9"  # left unacknowledged when the broker goes down

    restart(mode)
    conn = reconnect(conn)
    ch = conn.channel()
    ch.confirm_delivery()
    try:
        r = ch.queue_declare(q, durable=True, arguments={"x-max-priority": 10})
        assert r.method.message_count == 6
        # x-max-priority still in force for new messages
        ch.basic_publish("", q, b"g7", pika.BasicProperties(priority=7, delivery_mode=PERSISTENT))
        got = [(b.decode(), m.redelivered) for m, _, b in get_all(ch, q)]
        assert got == [("c9", True), ("f9", False), ("g7", False), ("b5", False), ("d5", False),
                       ("a1", False), ("e0", False)]
    finally:
        ch.queue_delete(q)
        conn.close()


@pytest.mark.parametrize("mode", ["graceful", "kill"])
def test_quorum_delivery_count_and_limit_survive(mode):
    need(mode)
    q, dead = uid("qq"), uid("dead")
    conn = pika.BlockingConnection(params())
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare(dead, durable=True)
    ch.queue_declare(q, durable=True, arguments={
        "x-queue-type": "quorum", "x-delivery-limit": 2,
        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead})
    ch.basic_publish("", q, b"poison", pika.BasicProperties(delivery_mode=PERSISTENT))
    for expected in (0, 1):
        m, p, _ = poll_get(conn, ch, q, auto_ack=False)
        assert p.headers["x-delivery-count"] == expected
        ch.basic_nack(m.delivery_tag, requeue=True)
    ch.queue_declare(dead, passive=True)

    restart(mode)
    conn = reconnect(conn)
    ch = conn.channel()
    try:
        m, p, _ = poll_get(conn, ch, q, auto_ack=False)
        assert (m.redelivered, p.headers["x-delivery-count"]) == (True, 2)
        ch.basic_nack(m.delivery_tag, requeue=True)  # the third return: over the limit
        m, p, body = poll_get(conn, ch, dead)
        assert body == b"poison"
        assert p.headers["x-death"][0]["reason"] == "delivery_limit"
    finally:
        ch.queue_delete(q)
        ch.queue_delete(dead)
        conn.close()


@pytest.mark.parametrize("mode", ["graceful", "kill"])
def test_x_death_headers_survive(mode):
    need(mode)
    src, dead = uid("src"), uid("dead")
    conn = pika.BlockingConnection(params())
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare(dead, durable=True)
    ch.queue_declare(src, durable=True, arguments={
        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead})
    ch.basic_publish("", src, b"dl", pika.BasicProperties(
        delivery_mode=PERSISTENT, expiration="600000", headers={"h": "v"}))
    m, _, _ = ch.basic_get(src, auto_ack=False)
    ch.basic_reject(m.delivery_tag, requeue=False)
    poll_get(conn, ch, dead, auto_ack=False)  # it arrived (left unacked: back after the restart)
    ch.queue_declare(dead, passive=True)

    restart(mode)
    conn = reconnect(conn)
    ch = conn.channel()
    try:
        _, p, body = raw_get(dead)
        assert body == b"dl"
        assert p["delivery_mode"] == PERSISTENT
        assert "expiration" not in p
        hdrs = dict(p["headers"])
        assert hdrs["h"] == ("S", b"v")
        (_, death), = hdrs["x-death"][1]
        d = dict(death)
        assert [k for k, _ in death] == ["count", "reason", "queue", "time", "exchange",
                                         "routing-keys", "original-expiration"]
        assert (d["count"], d["reason"], d["queue"]) == (("l", 1), ("S", b"rejected"), ("S", src.encode()))
        assert d["time"][0] == "T"
        assert d["original-expiration"] == ("S", b"600000")
        assert hdrs["x-first-death-queue"] == ("S", src.encode())
    finally:
        ch.queue_delete(src)
        ch.queue_delete(dead)
        conn.close()
