"""Long queues of a durable queue: order, content and counts hold however much of the backlog the
broker keeps in memory (Warren's tests run it with a budget of 64 messages per queue, so these
backlogs are mostly read back from its store)."""
import pika

from conftest import get_all, wait_for


def _publish_mixed(ch, q, n):
    ch.confirm_delivery()
    for i in range(n):
        mode = 2 if i % 3 else 1  # every third message is transient
        ch.basic_publish("", q, f"{i}:{'x' * (i % 50)}".encode(), pika.BasicProperties(delivery_mode=mode))


def test_long_durable_queue_keeps_order_and_content(conn, names):
    q = names.queue()
    ch = conn.channel()
    ch.queue_declare(q, durable=True)
    _publish_mixed(ch, q, 3000)
    assert ch.queue_declare(q, durable=True, passive=True).method.message_count == 3000
    got = []
    consumer = conn.channel()
    consumer.basic_qos(prefetch_count=100)

    def on_message(c, method, props, body):
        got.append((body, props.delivery_mode))
        c.basic_ack(method.delivery_tag)

    consumer.basic_consume(q, on_message)
    assert wait_for(conn, lambda: len(got) == 3000, timeout=60)
    assert [b for b, _ in got] == [f"{i}:{'x' * (i % 50)}".encode() for i in range(3000)]
    assert [m for _, m in got] == [2 if i % 3 else 1 for i in range(3000)]


def test_basic_get_and_purge_of_a_long_durable_queue(conn, names):
    q = names.queue()
    ch = conn.channel()
    ch.queue_declare(q, durable=True)
    _publish_mixed(ch, q, 1000)
    first = [ch.basic_get(q, auto_ack=True) for _ in range(10)]
    assert [b for _, _, b in first] == [f"{i}:{'x' * (i % 50)}".encode() for i in range(10)]
    assert first[-1][0].message_count == 990
    assert ch.queue_purge(q).method.message_count == 990
    assert get_all(ch, q) == []
    # The queue works normally after the purge.
    ch.basic_publish("", q, b"after", pika.BasicProperties(delivery_mode=2))
    assert [b for _, _, b in get_all(ch, q)] == [b"after"]


def test_requeued_messages_keep_their_place_in_a_long_queue(conn, names):
    q = names.queue()
    ch = conn.channel()
    ch.queue_declare(q, durable=True)
    _publish_mixed(ch, q, 500)
    taken = [ch.basic_get(q) for _ in range(5)]
    ch.basic_nack(taken[-1][0].delivery_tag, multiple=True, requeue=True)
    bodies = [b for _, _, b in get_all(ch, q)]
    assert bodies == [f"{i}:{'x' * (i % 50)}".encode() for i in range(500)]


def test_long_non_durable_and_exclusive_queues_keep_order_and_content(conn, names):
    """Non-durable and exclusive queues page a backlog out too (in Warren): nothing of it may be
    lost, reordered or turned persistent."""
    ch = conn.channel()
    plain = names.queue()
    ch.queue_declare(plain)
    exclusive = ch.queue_declare("", exclusive=True).method.queue
    for q in (plain, exclusive):
        _publish_mixed(ch, q, 2000)
        assert ch.queue_declare(q, passive=True).method.message_count == 2000
    for q in (plain, exclusive):
        got = get_all(ch, q, auto_ack=False)
        assert [b for _, _, b in got] == [f"{i}:{'x' * (i % 50)}".encode() for i in range(2000)]
        assert [p.delivery_mode for _, p, _ in got] == [2 if i % 3 else 1 for i in range(2000)]
        # requeued, they come back in order, redelivered
        ch.basic_nack(0, multiple=True, requeue=True)
        again = get_all(ch, q)
        assert len(again) == 2000 and all(m.redelivered for m, _, _ in again)
        assert [b for _, _, b in again] == [b for _, _, b in got]
