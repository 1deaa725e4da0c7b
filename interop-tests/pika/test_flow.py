"""Publisher flow control: a publisher a little faster than the queue's consumers is slowed down
to their pace (its connection is not read for a while, so TCP holds it back, as RabbitMQ's credit
flow does), instead of the queue's backlog growing past its memory budget and paging to the store;
but a publisher is never held to the pace of slow consumers (a task queue): the queue takes the
whole batch, as RabbitMQ's does.
"""

import os
import re
import threading
import time

import pika
import pytest

from conftest import WAIT, params, uid

COUNT, SIZE = 3000, 1024


def memory_budget():
    """queue_memory_messages of the Warren under test (from WARREN_CONFIG), or None."""
    path = os.environ.get("WARREN_CONFIG")
    if not path or not os.path.exists(path):
        return None
    m = re.search(r"^\s*queue_memory_messages\s*=\s*(\d+)", open(path).read(), re.M)
    return int(m.group(1)) if m else None


@pytest.mark.warren_only
def test_a_publisher_faster_than_its_consumer_is_held_to_the_consumers_pace():
    """Warren only: RabbitMQ 3.10 lets this queue grow (its credit flow follows the queue
    process's mailbox, not the queue's length). The bound checked is Warren's: the backlog stays
    within a read's worth of messages of the queue's memory budget (`queue_memory_messages`,
    which scripts/test.sh sets to 64), while without flow control it reaches nearly all of the
    messages published."""
    budget = memory_budget()
    if budget is None or budget > 256:
        pytest.skip("needs a Warren with a small queue_memory_messages (scripts/test.sh: 64)")
    q = uid("flow")
    setup = pika.BlockingConnection(params())
    sch = setup.channel()
    sch.queue_declare(q)

    got = []
    consuming = threading.Event()
    errors = []

    def consume():
        try:
            c = pika.BlockingConnection(params())
            ch = c.channel()
            ch.basic_qos(prefetch_count=20)

            def on_message(ch, method, props, body):
                # A consumer that does a little work per message: slower than the publisher.
                time.sleep(0.0005)
                got.append(int(body[:8]))
                ch.basic_ack(method.delivery_tag)

            ch.basic_consume(q, on_message)
            consuming.set()
            deadline = time.monotonic() + 6 * WAIT
            while len(got) < COUNT and time.monotonic() < deadline:
                c.process_data_events(time_limit=0.05)
            c.close()
        except Exception as e:  # reported by the main thread
            errors.append(e)
            consuming.set()

    def publish():
        try:
            c = pika.BlockingConnection(params())
            ch = c.channel()
            for i in range(COUNT):
                ch.basic_publish("", q, b"%08d" % i + b"x" * (SIZE - 8))
            c.close()
        except Exception as e:
            errors.append(e)

    consumer = threading.Thread(target=consume)
    consumer.start()
    assert consuming.wait(WAIT)
    publisher = threading.Thread(target=publish)
    publisher.start()
    # Sample the backlog from a third connection while the messages flow.
    most = 0
    deadline = time.monotonic() + 6 * WAIT
    while consumer.is_alive() and time.monotonic() < deadline:
        n = sch.queue_declare(q, passive=True).method.message_count
        most = max(most, n)
        time.sleep(0.005)  # sampling interval, not synchronisation
    publisher.join(WAIT)
    consumer.join(WAIT)
    sch.queue_delete(q)
    setup.close()
    assert not errors, errors
    assert got == list(range(COUNT)), "every message, once, in order"
    # Within a read's worth (64 KiB: about 60 of these messages) of the budget; without flow
    # control the backlog reaches most of the 3,000.
    assert most <= budget + 200, f"backlog reached {most} messages (budget {budget})"


def test_a_publisher_is_not_held_to_the_pace_of_a_slow_consumer():
    """A task queue whose one worker takes 50 ms per task: the broker takes a batch of 2,000 tasks
    at once (a round trip after the publishes returns) while the worker has done only a few of
    them. On Warren with a small memory budget this is the case where flow control must give up
    (and page to the store) rather than hold the publisher for the 100 s the worker needs."""
    count = 2000
    q = uid("slow")
    conn = pika.BlockingConnection(params())
    ch = conn.channel()
    ch.queue_declare(q)
    done = []
    consuming = threading.Event()
    stop = threading.Event()
    errors = []

    def work():
        try:
            c = pika.BlockingConnection(params())
            wch = c.channel()
            wch.basic_qos(prefetch_count=1)

            def on_task(wch, method, props, body):
                time.sleep(0.05)  # the task's work
                done.append(body)
                wch.basic_ack(method.delivery_tag)

            wch.basic_consume(q, on_task)
            consuming.set()
            while not stop.is_set():
                c.process_data_events(time_limit=0.05)
            c.close()
        except Exception as e:  # reported by the main thread
            errors.append(e)
            consuming.set()

    worker = threading.Thread(target=work)
    worker.start()
    try:
        assert consuming.wait(WAIT)
        for i in range(count):
            ch.basic_publish("", q, b"%08d" % i + b"t" * (SIZE - 8))
        # queue.declare is answered after every publish before it was taken in.
        ready = ch.queue_declare(q, passive=True).method.message_count
        finished = len(done)
    finally:
        stop.set()
        worker.join(WAIT)
    ch.queue_delete(q)
    conn.close()
    assert not errors, errors
    assert finished < count // 4, f"the publisher waited for the worker ({finished} tasks done)"
    # Ready, plus done, plus at most one delivered and unacked: every task is in the queue.
    assert ready + finished + 1 >= count, (ready, finished)
