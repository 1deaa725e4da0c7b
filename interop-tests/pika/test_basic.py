"""basic.* methods: publish, get, consume, ack/nack/reject, recover, qos."""

import pika
import pika.exceptions
import pytest

from conftest import (
    BROKER_VHOST,
    channel_closed,
    connection_closed,
    drain,
    get_all,
    wait_for,
)

V = BROKER_VHOST

# How long to keep listening when proving that *no further* delivery arrives.
QUIET = 0.3


def sync(ch):
    ch.exchange_declare("amq.direct", passive=True)


def fill(ch, q, n, start=1):
    for i in range(start, start + n):
        ch.basic_publish("", q, str(i).encode())


def bodies(msgs):
    return [b.decode() for _, _, b in msgs]


class Collector:
    """on_message_callback that records deliveries."""

    def __init__(self):
        self.msgs = []

    def __call__(self, ch, method, props, body):
        self.msgs.append((method, props, body))

    def __len__(self):
        return len(self.msgs)

    @property
    def bodies(self):
        return [b.decode() for _, _, b in self.msgs]


# ---------------------------------------------------------------------------
# publish / get
# ---------------------------------------------------------------------------


def test_publish_default_exchange_and_get(ch, names):
    q = names.queue()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"hello")
    ch.basic_publish("", q, b"world")
    m, props, body = ch.basic_get(q, auto_ack=False)
    assert isinstance(m, pika.spec.Basic.GetOk)
    assert (m.delivery_tag, m.redelivered, m.exchange, m.routing_key, m.message_count) == (1, False, "", q, 1)
    assert body == b"hello"
    m2, _, body2 = ch.basic_get(q, auto_ack=True)
    assert (m2.delivery_tag, m2.message_count, body2) == (2, 0, b"world")
    ch.basic_ack(m.delivery_tag)
    assert ch.basic_get(q) == (None, None, None)  # get-empty


def test_get_auto_ack_removes_message(conn, names):
    ch = conn.channel()
    q = names.queue()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"x")
    assert ch.basic_get(q, auto_ack=True)[2] == b"x"
    ch.close()
    assert conn.channel().queue_declare(q, passive=True).method.message_count == 0


def test_unacked_get_requeued_on_channel_close(conn, names):
    ch = conn.channel()
    q = names.queue()
    ch.queue_declare(q)
    fill(ch, q, 3)
    assert bodies([ch.basic_get(q) for _ in range(3)]) == ["1", "2", "3"]
    ch.close()
    ch = conn.channel()
    got = get_all(ch, q)
    assert bodies(got) == ["1", "2", "3"]
    assert all(m.redelivered for m, _, _ in got)


def test_mandatory_unroutable_returned(conn):
    ch = conn.channel()
    returns = []
    ch.add_on_return_callback(lambda _ch, m, p, b: returns.append((m, p, b)))
    props = pika.BasicProperties(message_id="mid-1", headers={"h": "v"})
    ch.basic_publish("amq.direct", "warren-no-such-key", b"ret", props, mandatory=True)
    assert wait_for(conn, lambda: returns)
    (m, p, b), = returns
    assert isinstance(m, pika.spec.Basic.Return)
    assert (m.reply_code, m.reply_text, m.exchange, m.routing_key) == (312, "NO_ROUTE", "amq.direct", "warren-no-such-key")
    assert b == b"ret"
    assert p.message_id == "mid-1" and p.headers == {"h": "v"}


def test_mandatory_unroutable_with_confirms(conn, names):
    ch = conn.channel()
    ch.confirm_delivery()
    q = names.queue()
    with pytest.raises(pika.exceptions.UnroutableError) as info:
        ch.basic_publish("", q, b"ret", mandatory=True)
    (r,) = info.value.messages
    assert (r.method.reply_code, r.method.reply_text, r.method.exchange, r.method.routing_key) == (312, "NO_ROUTE", "", q)
    assert r.body == b"ret"
    # routable mandatory publish: no return
    ch.queue_declare(q)
    ch.basic_publish("", q, b"ok", mandatory=True)
    assert bodies(get_all(ch, q)) == ["ok"]


def test_non_mandatory_unroutable_is_dropped_silently(conn):
    ch = conn.channel()
    returns = []
    ch.add_on_return_callback(lambda *a: returns.append(a))
    ch.confirm_delivery()
    ch.basic_publish("amq.direct", "warren-no-such-key", b"dropped")
    drain(conn, QUIET)
    assert returns == []
    assert ch.is_open


# ---------------------------------------------------------------------------
# consume / cancel
# ---------------------------------------------------------------------------


def test_consume_given_tag_and_delivery_fields(conn, names):
    ch = conn.channel()
    q = names.queue()
    ch.queue_declare(q)
    col = Collector()
    tag = ch.basic_consume(q, col, consumer_tag="my-consumer-tag")
    assert tag == "my-consumer-tag"
    fill(ch, q, 2)
    assert wait_for(conn, lambda: len(col) == 2)
    (m1, _, b1), (m2, _, b2) = col.msgs
    assert isinstance(m1, pika.spec.Basic.Deliver)
    assert (m1.consumer_tag, m1.delivery_tag, m1.redelivered, m1.exchange, m1.routing_key) == (
        "my-consumer-tag", 1, False, "", q)
    assert m2.delivery_tag == 2
    assert (b1, b2) == (b"1", b"2")
    ch.basic_ack(2, multiple=True)


def test_consume_existing_messages_then_new_ones(conn, names):
    ch = conn.channel()
    q = names.queue()
    ch.queue_declare(q)
    fill(ch, q, 3)
    col = Collector()
    ch.basic_consume(q, col, auto_ack=True)
    assert wait_for(conn, lambda: len(col) == 3)
    fill(conn.channel(), q, 2, start=4)
    assert wait_for(conn, lambda: len(col) == 5)
    assert col.bodies == ["1", "2", "3", "4", "5"]


def test_cancel_stops_deliveries(conn, names):
    ch = conn.channel()
    q = names.queue()
    ch.queue_declare(q)
    col = Collector()
    tag = ch.basic_consume(q, col, auto_ack=True)
    fill(ch, q, 1)
    assert wait_for(conn, lambda: len(col) == 1)
    ch.basic_cancel(tag)
    assert ch.consumer_tags == []
    fill(ch, q, 1, start=2)
    drain(conn, QUIET)
    assert col.bodies == ["1"]
    r = conn.channel().queue_declare(q, passive=True).method
    assert (r.message_count, r.consumer_count) == (1, 0)


def test_cancel_requeues_nothing_but_channel_close_requeues_unacked(conn, names):
    ch = conn.channel()
    q = names.queue()
    ch.queue_declare(q)
    col = Collector()
    tag = ch.basic_consume(q, col)
    fill(ch, q, 2)
    assert wait_for(conn, lambda: len(col) == 2)
    ch.basic_cancel(tag)
    # cancelled consumer's unacked messages stay unacked (still ackable)
    assert conn.channel().queue_declare(q, passive=True).method.message_count == 0
    ch.basic_ack(1)
    ch.close()
    got = get_all(conn.channel(), q)
    assert bodies(got) == ["2"] and got[0][0].redelivered


def test_exclusive_consume_refused_when_queue_has_consumer(conn, names):
    q = names.queue()
    conn.channel().queue_declare(q)
    conn.channel().basic_consume(q, lambda *a: None)
    with channel_closed(403, f"ACCESS_REFUSED - queue '{q}' in vhost '{V}' in exclusive use"):
        conn.channel().basic_consume(q, lambda *a: None, exclusive=True)


def test_consume_refused_when_queue_has_exclusive_consumer(conn, names):
    q = names.queue()
    conn.channel().queue_declare(q)
    conn.channel().basic_consume(q, lambda *a: None, exclusive=True)
    with channel_closed(403, f"ACCESS_REFUSED - queue '{q}' in vhost '{V}' in exclusive use"):
        conn.channel().basic_consume(q, lambda *a: None)


def test_consume_missing_queue(conn, names):
    q = names.queue()
    with channel_closed(404, f"NOT_FOUND - no queue '{q}' in vhost '{V}'"):
        conn.channel().basic_consume(q, lambda *a: None)
    with channel_closed(404, f"NOT_FOUND - no queue '{q}' in vhost '{V}'"):
        conn.channel().basic_get(q)


def test_round_robin_between_two_consumers(conn, names):
    q = names.queue()
    conn.channel().queue_declare(q)
    a, b = Collector(), Collector()
    conn.channel().basic_consume(q, a, auto_ack=True)
    conn.channel().basic_consume(q, b, auto_ack=True)
    fill(conn.channel(), q, 10)
    assert wait_for(conn, lambda: len(a) + len(b) == 10)
    assert a.bodies == ["1", "3", "5", "7", "9"]
    assert b.bodies == ["2", "4", "6", "8", "10"]


def test_consumer_priority(conn, names):
    q = names.queue()
    conn.channel().queue_declare(q)
    low, high = Collector(), Collector()
    conn.channel().basic_consume(q, low, auto_ack=True)
    conn.channel().basic_consume(q, high, auto_ack=True, arguments={"x-priority": 10})
    fill(conn.channel(), q, 10)
    assert wait_for(conn, lambda: len(high) == 10)
    drain(conn, QUIET)
    assert len(low) == 0


def test_fifo_order_1000_messages(conn, names):
    q = names.queue()
    pub = conn.channel()
    pub.queue_declare(q)
    for i in range(1000):
        pub.basic_publish("", q, str(i).encode())
    ch = conn.channel()
    ch.basic_qos(prefetch_count=100)
    seen = []

    def on_msg(c, m, p, b):
        seen.append(int(b))
        if len(seen) % 50 == 0:
            c.basic_ack(m.delivery_tag, multiple=True)

    ch.basic_consume(q, on_msg)
    assert wait_for(conn, lambda: len(seen) == 1000, timeout=30)
    assert seen == list(range(1000))


# ---------------------------------------------------------------------------
# ack / nack / reject
# ---------------------------------------------------------------------------


def test_ack_multiple(conn, names):
    ch = conn.channel()
    q = names.queue()
    ch.queue_declare(q)
    fill(ch, q, 5)
    msgs = [ch.basic_get(q) for _ in range(5)]
    ch.basic_ack(msgs[2][0].delivery_tag, multiple=True)  # acks 1..3
    ch.close()
    assert bodies(get_all(conn.channel(), q)) == ["4", "5"]


def test_ack_multiple_zero_acks_everything(conn, names):
    ch = conn.channel()
    q = names.queue()
    ch.queue_declare(q)
    fill(ch, q, 3)
    for _ in range(3):
        ch.basic_get(q)
    ch.basic_ack(0, multiple=True)
    ch.close()
    assert conn.channel().queue_declare(q, passive=True).method.message_count == 0


def test_nack_requeue_restores_original_position(conn, names):
    """Observed on RabbitMQ 3.10.8: requeued messages go back to their
    original position in the queue (ahead of later messages)."""
    ch = conn.channel()
    q = names.queue()
    ch.queue_declare(q)
    fill(ch, q, 5)
    msgs = [ch.basic_get(q) for _ in range(5)]
    assert bodies(msgs) == ["1", "2", "3", "4", "5"]
    ch.basic_nack(msgs[1][0].delivery_tag, requeue=True)
    ch.basic_nack(msgs[3][0].delivery_tag, requeue=True)
    fill(ch, q, 1, start=6)
    col = Collector()
    conn.channel().basic_consume(q, col, auto_ack=True)
    assert wait_for(conn, lambda: len(col) == 3)
    assert col.bodies == ["2", "4", "6"]
    assert [m.redelivered for m, _, _ in col.msgs] == [True, True, False]
    # 1, 3 and 5 are still unacked on the first channel
    ch.basic_ack(5, multiple=True)


def test_reject_requeue_in_reverse_order_restores_queue_order(conn, names):
    ch = conn.channel()
    q = names.queue()
    ch.queue_declare(q)
    fill(ch, q, 5)
    m1, m2 = ch.basic_get(q), ch.basic_get(q)
    ch.basic_reject(m2[0].delivery_tag, requeue=True)
    ch.basic_reject(m1[0].delivery_tag, requeue=True)
    got = get_all(ch, q)
    assert bodies(got) == ["1", "2", "3", "4", "5"]
    assert [m.redelivered for m, _, _ in got] == [True, True, False, False, False]


def test_nack_multiple_requeue(conn, names):
    ch = conn.channel()
    q = names.queue()
    ch.queue_declare(q)
    fill(ch, q, 5)
    msgs = [ch.basic_get(q) for _ in range(5)]
    ch.basic_nack(msgs[2][0].delivery_tag, multiple=True, requeue=True)
    got = get_all(ch, q, auto_ack=False)
    assert bodies(got) == ["1", "2", "3"]
    assert all(m.redelivered for m, _, _ in got)
    assert [m.delivery_tag for m, _, _ in got] == [6, 7, 8]


def test_reject_and_nack_without_requeue_drop(conn, names):
    ch = conn.channel()
    q = names.queue()
    ch.queue_declare(q)
    fill(ch, q, 3)
    msgs = [ch.basic_get(q) for _ in range(3)]
    ch.basic_reject(msgs[0][0].delivery_tag, requeue=False)
    ch.basic_nack(msgs[2][0].delivery_tag, multiple=True, requeue=False)
    ch.close()
    assert conn.channel().queue_declare(q, passive=True).method.message_count == 0


@pytest.mark.parametrize("op", ["ack", "nack", "reject"])
def test_unknown_delivery_tag(conn, op):
    ch = conn.channel()
    getattr(ch, "basic_" + op)(99)
    with channel_closed(406, "PRECONDITION_FAILED - unknown delivery tag 99") as closed:
        sync(ch)
    assert closed.reply_text == "PRECONDITION_FAILED - unknown delivery tag 99"
    assert conn.is_open


def test_ack_tag_zero_without_multiple(conn):
    ch = conn.channel()
    ch.basic_ack(0)
    with channel_closed(406, "PRECONDITION_FAILED - unknown delivery tag 0"):
        sync(ch)


def test_double_ack(conn, names):
    ch = conn.channel()
    q = names.queue()
    ch.queue_declare(q)
    fill(ch, q, 1)
    m, _, _ = ch.basic_get(q)
    ch.basic_ack(m.delivery_tag)
    ch.basic_ack(m.delivery_tag)
    with channel_closed(406, f"PRECONDITION_FAILED - unknown delivery tag {m.delivery_tag}"):
        sync(ch)


def test_delivery_tags_are_per_channel(conn, names):
    q = names.queue()
    a = conn.channel()
    a.queue_declare(q)
    fill(a, q, 2)
    ma, _, _ = a.basic_get(q)
    b = conn.channel()
    mb, _, _ = b.basic_get(q)
    assert ma.delivery_tag == mb.delivery_tag == 1
    b.basic_ack(1)
    b.basic_ack(1)
    with channel_closed(406, "PRECONDITION_FAILED - unknown delivery tag 1"):
        sync(b)
    a.basic_ack(1)
    sync(a)


def test_ack_of_auto_ack_delivery_is_unknown(conn, names):
    ch = conn.channel()
    q = names.queue()
    ch.queue_declare(q)
    fill(ch, q, 1)
    m, _, _ = ch.basic_get(q, auto_ack=True)
    ch.basic_ack(m.delivery_tag)
    with channel_closed(406, f"PRECONDITION_FAILED - unknown delivery tag {m.delivery_tag}"):
        sync(ch)


# ---------------------------------------------------------------------------
# recover
# ---------------------------------------------------------------------------


def test_recover_requeue_with_get(conn, names):
    ch = conn.channel()
    q = names.queue()
    ch.queue_declare(q)
    fill(ch, q, 3)
    for _ in range(3):
        ch.basic_get(q)
    ch.basic_recover(requeue=True)
    got = get_all(ch, q)
    assert bodies(got) == ["1", "2", "3"]
    assert all(m.redelivered for m, _, _ in got)


def test_recover_requeue_redelivers_to_consumer(conn, names):
    ch = conn.channel()
    q = names.queue()
    ch.queue_declare(q)
    col = Collector()
    ch.basic_consume(q, col)
    fill(ch, q, 3)
    assert wait_for(conn, lambda: len(col) == 3)
    ch.basic_recover(requeue=True)
    assert wait_for(conn, lambda: len(col) == 6)
    assert col.bodies == ["1", "2", "3", "1", "2", "3"]
    assert [m.redelivered for m, _, _ in col.msgs] == [False] * 3 + [True] * 3
    assert [m.delivery_tag for m, _, _ in col.msgs] == [1, 2, 3, 4, 5, 6]
    # the old tags are gone, the new ones are valid
    ch.basic_ack(6, multiple=True)
    sync(ch)


def test_recover_without_requeue_not_implemented(conn):
    with connection_closed(540, "NOT_IMPLEMENTED - requeue=false"):
        conn.channel().basic_recover(requeue=False)


# ---------------------------------------------------------------------------
# qos
# ---------------------------------------------------------------------------


def test_prefetch_count_per_consumer(conn, names):
    q = names.queue()
    pub = conn.channel()
    pub.queue_declare(q)
    fill(pub, q, 10)
    ch = conn.channel()
    ch.basic_qos(prefetch_count=3)
    col = Collector()
    ch.basic_consume(q, col)
    assert wait_for(conn, lambda: len(col) == 3)
    drain(conn, QUIET)
    assert len(col) == 3
    ch.basic_ack(col.msgs[0][0].delivery_tag)
    assert wait_for(conn, lambda: len(col) == 4)
    drain(conn, QUIET)
    assert len(col) == 4
    ch.basic_ack(col.msgs[-1][0].delivery_tag, multiple=True)
    assert wait_for(conn, lambda: len(col) == 7)
    drain(conn, QUIET)
    assert len(col) == 7
    assert col.bodies == [str(i) for i in range(1, 8)]


def test_prefetch_count_applies_to_each_consumer(conn, names):
    q1, q2 = names.queue(), names.queue()
    pub = conn.channel()
    for q in (q1, q2):
        pub.queue_declare(q)
        fill(pub, q, 10)
    ch = conn.channel()
    ch.basic_qos(prefetch_count=2)
    c1, c2 = Collector(), Collector()
    ch.basic_consume(q1, c1)
    ch.basic_consume(q2, c2)
    assert wait_for(conn, lambda: len(c1) == 2 and len(c2) == 2)
    drain(conn, QUIET)
    assert (len(c1), len(c2)) == (2, 2)


def test_prefetch_count_global_is_shared_by_channel(conn, names):
    q1, q2 = names.queue(), names.queue()
    pub = conn.channel()
    for q in (q1, q2):
        pub.queue_declare(q)
        fill(pub, q, 10)
    ch = conn.channel()
    ch.basic_qos(prefetch_count=2, global_qos=True)
    c1, c2 = Collector(), Collector()
    ch.basic_consume(q1, c1)
    ch.basic_consume(q2, c2)
    assert wait_for(conn, lambda: len(c1) + len(c2) == 2)
    drain(conn, QUIET)
    assert (len(c1), len(c2)) == (2, 0)
    ch.basic_ack(c1.msgs[0][0].delivery_tag)
    assert wait_for(conn, lambda: len(c1) + len(c2) == 3)
    drain(conn, QUIET)
    assert len(c1) + len(c2) == 3


def test_per_consumer_qos_after_global_clears_global_limit(conn, names):
    """Observed on RabbitMQ 3.10.8: basic.qos(global=false) removes a
    previously set global (per-channel) limit, so only the per-consumer
    limit remains."""
    q1, q2 = names.queue(), names.queue()
    pub = conn.channel()
    for q in (q1, q2):
        pub.queue_declare(q)
        fill(pub, q, 10)
    ch = conn.channel()
    ch.basic_qos(prefetch_count=2, global_qos=True)
    ch.basic_qos(prefetch_count=3, global_qos=False)
    c1, c2 = Collector(), Collector()
    ch.basic_consume(q1, c1)
    ch.basic_consume(q2, c2)
    assert wait_for(conn, lambda: len(c1) == 3 and len(c2) == 3)
    drain(conn, QUIET)
    assert (len(c1), len(c2)) == (3, 3)


def test_global_qos_after_per_consumer_qos_limits_channel(conn, names):
    q1, q2 = names.queue(), names.queue()
    pub = conn.channel()
    for q in (q1, q2):
        pub.queue_declare(q)
        fill(pub, q, 10)
    ch = conn.channel()
    ch.basic_qos(prefetch_count=3, global_qos=False)
    ch.basic_qos(prefetch_count=2, global_qos=True)
    c1, c2 = Collector(), Collector()
    ch.basic_consume(q1, c1)
    ch.basic_consume(q2, c2)
    assert wait_for(conn, lambda: len(c1) + len(c2) == 2)
    drain(conn, QUIET)
    assert (len(c1), len(c2)) == (2, 0)


def test_prefetch_does_not_limit_basic_get(conn, names):
    ch = conn.channel()
    q = names.queue()
    ch.queue_declare(q)
    fill(ch, q, 3)
    ch.basic_qos(prefetch_count=1)
    assert bodies([ch.basic_get(q) for _ in range(3)]) == ["1", "2", "3"]


def test_prefetch_does_not_limit_auto_ack_consumer(conn, names):
    q = names.queue()
    conn.channel().queue_declare(q)
    fill(conn.channel(), q, 20)
    ch = conn.channel()
    ch.basic_qos(prefetch_count=1)
    col = Collector()
    ch.basic_consume(q, col, auto_ack=True)
    assert wait_for(conn, lambda: len(col) == 20)


@pytest.mark.parametrize("global_qos", [False, True])
def test_prefetch_size_not_implemented(conn, global_qos):
    with connection_closed(540, "NOT_IMPLEMENTED - prefetch_size!=0 (1000)") as closed:
        conn.channel().basic_qos(prefetch_size=1000, global_qos=global_qos)
    assert closed.reply_text == "NOT_IMPLEMENTED - prefetch_size!=0 (1000)"
