"""The overview's message statistics (`message_stats` with `*_details.rate`, `queue_totals`): the
node-wide counts move with traffic. RabbitMQ refreshes them on its statistics interval (5 s by
default), so the test polls with a deadline and compares deltas (other traffic only adds).
"""

import time

from conftest import WAIT, amqp, uid

POLL = 30.0


def overview(api):
    r = api.get("/api/overview")
    assert r.status_code == 200
    return r.json()


def poll(fetch, pred, what):
    deadline = time.monotonic() + POLL
    while True:
        last = fetch()
        if pred(last):
            return last
        assert time.monotonic() < deadline, f"timed out waiting for {what}; last: {last!r}"
        time.sleep(0.2)  # bounded polling: RabbitMQ emits statistics every 5 s


def stat(o, key):
    return o.get("message_stats", {}).get(key, 0)


def test_message_stats_count_publishes_deliveries_and_acks(api):
    before = overview(api)
    n = 7
    qn = uid("rates")
    conn = amqp()
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(qn)
        for i in range(n):
            ch.basic_publish("", qn, b"x")
        got = 0
        deadline = time.monotonic() + WAIT
        while got < n and time.monotonic() < deadline:
            method, _, _ = ch.basic_get(qn)
            if method:
                ch.basic_ack(method.delivery_tag)
                got += 1
        assert got == n
        after = poll(lambda: overview(api),
                     lambda o: all(stat(o, k) - stat(before, k) >= n
                                   for k in ("publish", "confirm", "get", "deliver_get", "ack")),
                     "message_stats to count the traffic")
        for k in ("publish", "confirm", "get", "deliver_get", "ack"):
            rate = after["message_stats"][f"{k}_details"]["rate"]
            assert isinstance(rate, (int, float)) and rate >= 0, (k, rate)
        ch.queue_delete(qn)
    finally:
        conn.close()


def test_queue_totals_count_ready_messages(api):
    qn = uid("totals")
    conn = amqp()
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(qn)
        for i in range(3):
            ch.basic_publish("", qn, b"x")
        o = poll(lambda: overview(api),
                 lambda o: o.get("queue_totals", {}).get("messages_ready", 0) >= 3,
                 "queue_totals.messages_ready")
        t = o["queue_totals"]
        assert t["messages"] == t["messages_ready"] + t["messages_unacknowledged"]
        assert "rate" in t["messages_details"]
        ch.queue_delete(qn)
    finally:
        conn.close()
