"""Priority queues (x-max-priority), as RabbitMQ 3.10.8 implements them (classic queues).

Observed on RabbitMQ: higher priority first, FIFO within a level; a priority above the
maximum counts as the maximum (the property itself is delivered unchanged); no priority
property is priority 0; requeued messages go back to their original place in their level;
x-max-priority 0 is accepted and gives a plain FIFO queue.

Publishers use confirms wherever a count is read: RabbitMQ answers a passive queue.declare
(a prioritised "stat" call in the queue process) possibly before earlier unconfirmed publishes
from the same channel are enqueued.
"""

import pika
import pytest

from conftest import BROKER_VHOST, channel_closed, drain, get_all, wait_for
from ext_helpers import count, wait_count

V = BROKER_VHOST


def pub(ch, q, body, priority=None):
    ch.basic_publish("", q, body.encode(), pika.BasicProperties(priority=priority))


def got(msgs):
    return [b.decode() for _, _, b in msgs]


def test_higher_priority_first_fifo_within_a_level(ch, names):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-priority": 10})
    plan = [("a1", 1), ("b5", 5), ("c9", 9), ("d5", 5), ("e1", 1), ("f9", 9), ("g0", 0), ("h5", 5)]
    for body, p in plan:
        pub(ch, q, body, p)
    msgs = get_all(ch, q)
    assert got(msgs) == ["c9", "f9", "b5", "d5", "h5", "a1", "e1", "g0"]
    # the priority property is delivered as published
    assert [p.priority for _, p, _ in msgs] == [9, 9, 5, 5, 5, 1, 1, 0]


def test_priority_above_max_counts_as_max(ch, names):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-priority": 5})
    plan = [("a0", None), ("b3", 3), ("c10", 10), ("d5", 5), ("e3", 3), ("f0", 0), ("g7", 7), ("h5", 5)]
    for body, p in plan:
        pub(ch, q, body, p)
    msgs = get_all(ch, q)
    # 10, 5, 7 and 5 all land in level 5, in publish order
    assert got(msgs) == ["c10", "d5", "g7", "h5", "b3", "e3", "a0", "f0"]
    assert [p.priority for _, p, _ in msgs] == [10, 5, 7, 5, 3, 3, None, 0]


def test_no_priority_property_is_priority_zero(ch, names):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-priority": 3})
    for body, p in [("none1", None), ("zero", 0), ("one", 1), ("none2", None)]:
        pub(ch, q, body, p)
    assert got(get_all(ch, q)) == ["one", "none1", "zero", "none2"]


def test_max_priority_255(ch, names):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-priority": 255})
    for body, p in [("a0", 0), ("b255", 255), ("c254", 254), ("d1", 1)]:
        pub(ch, q, body, p)
    assert got(get_all(ch, q)) == ["b255", "c254", "d1", "a0"]


def test_max_priority_zero_is_accepted_and_fifo(ch, names):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-priority": 0})
    for body, p in [("a", None), ("b", 3), ("c", 0), ("d", 1)]:
        pub(ch, q, body, p)
    assert got(get_all(ch, q)) == ["a", "b", "c", "d"]


def test_queue_without_max_priority_ignores_priorities(ch, names):
    q = names.queue()
    ch.queue_declare(q)
    for body, p in [("a", 1), ("b", 9), ("c", None)]:
        pub(ch, q, body, p)
    assert got(get_all(ch, q)) == ["a", "b", "c"]


def test_basic_get_message_count_spans_all_levels(ch, names):
    ch.confirm_delivery()
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-priority": 10})
    for body, p in [("a1", 1), ("b9", 9), ("c5", 5)]:
        pub(ch, q, body, p)
    assert count(ch, q) == 3
    msgs = get_all(ch, q)
    assert [(b.decode(), m.message_count) for m, _, b in msgs] == [("b9", 2), ("c5", 1), ("a1", 0)]


def test_nack_requeue_goes_back_in_priority_order(conn, names):
    ch = conn.channel()
    ch.confirm_delivery()
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-priority": 10})
    for body, p in [("a1", 1), ("b5", 5), ("c5", 5), ("d1", 1), ("e9", 9)]:
        pub(ch, q, body, p)
    taker = conn.channel()
    taken = [taker.basic_get(q, auto_ack=False) for _ in range(3)]
    assert got(taken) == ["e9", "b5", "c5"]
    pub(ch, q, "f5", 5)  # published after b5/c5 were taken
    taker.basic_nack(taken[-1][0].delivery_tag, multiple=True, requeue=True)
    assert wait_count(conn, ch, q, 6)
    msgs = get_all(ch, q)
    # requeued b5/c5 return to their original place: ahead of the later f5
    assert [(b.decode(), m.redelivered) for m, _, b in msgs] == [
        ("e9", True), ("b5", True), ("c5", True), ("f5", False), ("a1", False), ("d1", False)]


def test_reject_requeue_in_reverse_order_restores_original_order(conn, names):
    ch = conn.channel()
    ch.confirm_delivery()
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-priority": 10})
    for body, p in [("a1", 1), ("b5", 5), ("c5", 5), ("d1", 1), ("e9", 9)]:
        pub(ch, q, body, p)
    taker = conn.channel()
    taken = [taker.basic_get(q, auto_ack=False) for _ in range(5)]
    for m, _, _ in reversed(taken):
        taker.basic_reject(m.delivery_tag, requeue=True)
    assert wait_count(conn, ch, q, 5)
    assert got(get_all(ch, q)) == ["e9", "b5", "c5", "a1", "d1"]


def test_channel_close_requeues_in_priority_order(conn, names):
    ch = conn.channel()
    ch.confirm_delivery()
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-priority": 10})
    for body, p in [("a1", 1), ("b5", 5), ("c9", 9)]:
        pub(ch, q, body, p)
    taker = conn.channel()
    assert got([taker.basic_get(q, auto_ack=False) for _ in range(2)]) == ["c9", "b5"]
    pub(ch, q, "d9", 9)
    taker.close()
    assert wait_count(conn, ch, q, 4)
    assert got(get_all(ch, q)) == ["c9", "d9", "b5", "a1"]


def test_consumer_with_prefetch_sees_priority_order(conn, names):
    ch = conn.channel()
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-priority": 10})
    plan = [(f"m{i}", (i * 7) % 11) for i in range(30)]  # priorities 0..10, mixed
    for body, p in plan:
        pub(ch, q, body, p)
    expected = [b for b, _ in sorted(plan, key=lambda bp: -bp[1])]  # stable: FIFO per level
    seen = []
    cch = conn.channel()
    cch.basic_qos(prefetch_count=1)

    def on_msg(c, m, p, b):
        seen.append(b.decode())
        c.basic_ack(m.delivery_tag)

    cch.basic_consume(q, on_msg)
    assert wait_for(conn, lambda: len(seen) == len(plan))
    assert seen == expected


def test_messages_waiting_for_a_busy_consumer_are_delivered_by_priority(conn, names):
    ch = conn.channel()
    ch.confirm_delivery()
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-priority": 10})
    seen = []
    cch = conn.channel()
    cch.basic_qos(prefetch_count=2)
    cch.basic_consume(q, lambda c, m, p, b: seen.append((m.delivery_tag, b.decode())))
    pub(ch, q, "first", 0)
    pub(ch, q, "second", 0)
    assert wait_for(conn, lambda: len(seen) == 2)
    # the consumer is at its prefetch limit: these wait in the queue
    for body, p in [("low", 1), ("high", 8), ("mid", 4), ("high2", 8)]:
        pub(ch, q, body, p)
    assert wait_for(conn, lambda: count(ch, q) == 4)
    drain(conn, 0.1)
    assert len(seen) == 2
    cch.basic_ack(seen[1][0], multiple=True)
    assert wait_for(conn, lambda: len(seen) == 4)
    cch.basic_ack(seen[3][0], multiple=True)
    assert wait_for(conn, lambda: len(seen) == 6)
    assert [b for _, b in seen] == ["first", "second", "high", "high2", "mid", "low"]


def test_max_length_drop_head_drops_the_highest_priority(ch, names):
    """Observed on RabbitMQ 3.10.8: the "head" that x-max-length drops in a priority queue is
    the next message to be delivered, i.e. the highest priority one."""
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-priority": 10, "x-max-length": 2})
    for body, p in [("a1", 1), ("b9", 9), ("c5", 5)]:
        pub(ch, q, body, p)
    assert got(get_all(ch, q)) == ["c5", "a1"]


@pytest.mark.parametrize(
    "value, reason",
    [
        (256, "{max_value_exceeded,256}"),
        (2**40, "{max_value_exceeded,1099511627776}"),
        (-1, "{value_negative,-1}"),
        ("5", '"expected integer, got longstr"'),
        (True, '"expected integer, got bool"'),
    ],
)
def test_invalid_max_priority(conn, names, value, reason):
    q = names.queue()
    text = f"PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue '{q}' in vhost '{V}': {reason}"
    with channel_closed(406, text) as closed:
        conn.channel().queue_declare(q, arguments={"x-max-priority": value})
    assert closed.reply_text == text
    with channel_closed(404):
        conn.channel().queue_declare(q, passive=True)


def test_redeclare_with_other_max_priority(conn, names):
    q = names.queue()
    conn.channel().queue_declare(q, arguments={"x-max-priority": 10})
    text = (f"PRECONDITION_FAILED - inequivalent arg 'x-max-priority' for queue '{q}' in vhost '{V}': "
            "received '5' but current is '10'")
    with channel_closed(406) as closed:
        conn.channel().queue_declare(q, arguments={"x-max-priority": 5})
    assert closed.reply_text == text
    text = (f"PRECONDITION_FAILED - inequivalent arg 'x-max-priority' for queue '{q}' in vhost '{V}': "
            "received none but current is the value '10' of type 'signedint'")
    with channel_closed(406) as closed:
        conn.channel().queue_declare(q)
    assert closed.reply_text == text
