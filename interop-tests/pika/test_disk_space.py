"""Disk space comes back after messages are consumed, even with an old message left unacked at
the head of the queue (the case that keeps segment files alive in RabbitMQ and LavinMQ).

Warren only: it looks at the size of the data directory of the Warren under test (WARREN_DATA).
"""

import os
import time

import pika
import pytest

from conftest import params, uid, wait_for

pytestmark = pytest.mark.warren_only

COUNT, SIZE = 30_000, 1024


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(root, f)).st_blocks * 512
            except OSError:
                pass
    return total


# A small old message is stored inline with its key; a large one in a blob file (Warren keeps
# bodies of 512 bytes or more in RocksDB's blob files), which must not keep the file alive.
@pytest.mark.parametrize("old", [b"old", b"o" * 2048], ids=["small-old", "large-old"])
def test_space_of_consumed_messages_comes_back_with_an_old_one_unacked_at_the_head(old):
    data = os.environ.get("WARREN_DATA")
    if not data:
        pytest.skip("needs WARREN_DATA, the data directory of the Warren under test")
    q = uid("space")
    conn = pika.BlockingConnection(params())
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare(q, durable=True)
    ch.basic_publish("", q, old, pika.BasicProperties(delivery_mode=2))
    holder = conn.channel()
    m, _, body = holder.basic_get(q, auto_ack=False)  # stays unacked at the head
    assert body == old
    before = du(data)
    try:
        bulk = conn.channel()  # no confirms: one publish at a time would take long
        for _ in range(COUNT):
            # Random bytes: compression cannot make them small.
            bulk.basic_publish("", q, os.urandom(SIZE), pika.BasicProperties(delivery_mode=2))
        ch.basic_publish("", q, b"last", pika.BasicProperties(delivery_mode=2))  # confirmed
        ch.queue_declare(q, passive=True)
        grown = du(data) - before
        assert grown > COUNT * SIZE // 2, f"the store grew by only {grown} bytes"
        consumer = conn.channel()
        consumer.basic_qos(prefetch_count=500)
        got = []

        def on_message(c, method, props, body):
            got.append(method.delivery_tag)
            if len(got) % 100 == 0 or len(got) == COUNT + 1:
                c.basic_ack(method.delivery_tag, multiple=True)

        consumer.basic_consume(q, on_message)
        assert wait_for(conn, lambda: len(got) == COUNT + 1, timeout=120)
        # The space is back within seconds, not at the next restart (polled, bounded).
        deadline = time.monotonic() + 60
        while du(data) - before > COUNT * SIZE // 4:
            assert time.monotonic() < deadline, f"still {du(data) - before} bytes over"
            conn.process_data_events(time_limit=0.5)
        assert ch.queue_declare(q, passive=True).method.message_count == 0
    finally:
        ch.queue_delete(q)
        conn.close()
