"""Crash test: the broker is killed with SIGKILL at random moments while a publisher (with confirms)
and a consumer (with manual acks) run. After every restart:

* every message the broker confirmed is still in the queue, or was acked (nothing lost);
* no message whose ack the broker had made durable comes back (nothing resurrected);
* what is left in the queue is in publish order.

Messages are published to a fanout exchange bound to the consumed queue and to a second queue
that nobody consumes, with bodies long enough that Warren stores each body once for both queues:
the second queue must keep every confirmed message, in order, whatever the first one acked.

An ack is known to be durable once a persistent message published afterwards *on the same
connection* was confirmed: the broker handles a connection's frames in order and its store writes in
order. Acks after the last such marker may or may not survive a crash; both are allowed.

Needs BROKER_KILL_RESTART (see test_restart.py); CRASH_ROUNDS sets the number of kills (default 3).
"""
import os
import random
import subprocess
import threading
import time

import pika
import pytest

from conftest import params, uid

KILL = os.environ.get("BROKER_KILL_RESTART")
ROUNDS = int(os.environ.get("CRASH_ROUNDS", "3"))

pytestmark = pytest.mark.skipif(not KILL, reason="no BROKER_KILL_RESTART command for this broker")


def body_of(i):
    return f"{i} ".encode() + b"x" * 200


def id_of(body):
    return int(body.split(b" ", 1)[0])


class Publisher(threading.Thread):
    def __init__(self, exchange, start_id, stop):
        super().__init__(daemon=True)
        self.exchange, self.next_id, self.stop = exchange, start_id, stop
        self.confirmed = []

    def run(self):
        try:
            conn = pika.BlockingConnection(params())
            ch = conn.channel()
            ch.confirm_delivery()
            while not self.stop.is_set():
                i = self.next_id
                ch.basic_publish(self.exchange, "", body_of(i), pika.BasicProperties(delivery_mode=2))
                # basic_publish returned: the broker confirmed it.
                self.confirmed.append(i)
                self.next_id += 1
        except Exception:  # noqa: BLE001 - the broker was killed under us
            pass


class Consumer(threading.Thread):
    def __init__(self, queue, marker_queue, stop):
        super().__init__(daemon=True)
        self.queue, self.marker_queue, self.stop = queue, marker_queue, stop
        self.durably_acked = set()
        self.maybe_acked = set()
        self.seen = []

    def run(self):
        try:
            conn = pika.BlockingConnection(params())
            ch = conn.channel()
            ch.basic_qos(prefetch_count=50)
            marker = conn.channel()
            marker.confirm_delivery()
            while not self.stop.is_set():
                batch = []
                for method, _, body in ch.consume(self.queue, inactivity_timeout=0.05):
                    if method is None:
                        break
                    batch.append((method.delivery_tag, id_of(body)))
                    if len(batch) >= 20:
                        break
                ch.cancel()
                if not batch:
                    continue
                self.seen.extend(i for _, i in batch)
                acked = random.sample(batch, k=len(batch) * 3 // 4)
                for tag, i in acked:
                    ch.basic_ack(tag)
                    self.maybe_acked.add(i)
                # The rest go back to their places in the queue.
                for tag, i in batch:
                    if (tag, i) not in acked:
                        ch.basic_reject(tag, requeue=True)
                marker.basic_publish("", self.marker_queue, b"m", pika.BasicProperties(delivery_mode=2))
                self.durably_acked |= self.maybe_acked
                self.maybe_acked = set()
        except Exception:  # noqa: BLE001 - the broker was killed under us
            pass


def drain(queue):
    conn = pika.BlockingConnection(params())
    ch = conn.channel()
    ids = []
    while True:
        method, _, body = ch.basic_get(queue, auto_ack=False)
        if method is None:
            break
        ids.append(id_of(body))
    conn.close()  # unacked: they all go back
    return ids


def test_nothing_confirmed_is_lost_nothing_acked_comes_back():
    q, markers = uid("crash"), uid("crash-markers")
    x, copy = uid("crash-fanout"), uid("crash-copy")
    conn = pika.BlockingConnection(params())
    ch = conn.channel()
    ch.exchange_declare(x, "fanout", durable=True)
    for name in (q, copy):
        ch.queue_declare(name, durable=True)
        ch.queue_bind(name, x)
    ch.queue_declare(markers, durable=True)
    conn.close()
    confirmed, durably_acked, maybe_acked = set(), set(), set()
    next_id = 0
    checked = 0
    for _ in range(ROUNDS):
        stop = threading.Event()
        pub = Publisher(x, next_id, stop)
        con = Consumer(q, markers, stop)
        pub.start()
        con.start()
        deadline = time.monotonic() + random.uniform(0.5, 2.0)
        # Let them run for a random while, then kill the broker under them.
        while time.monotonic() < deadline and pub.is_alive():
            pub.join(timeout=0.05)
        subprocess.run(KILL, shell=True, check=True, timeout=180)
        stop.set()
        pub.join(timeout=30)
        con.join(timeout=30)
        confirmed |= set(pub.confirmed)
        next_id = pub.next_id + 1
        durably_acked |= con.durably_acked
        maybe_acked |= con.maybe_acked
        remaining = drain(q)
        assert remaining == sorted(remaining), "queue order broken"
        assert not (set(remaining) & durably_acked), "acked messages came back"
        lost = confirmed - set(remaining) - durably_acked - maybe_acked
        assert not lost, f"confirmed messages lost: {sorted(lost)[:20]}"
        copies = drain(copy)
        assert copies == sorted(set(copies)), "order broken or duplicates in the unconsumed copy"
        lost = confirmed - set(copies)
        assert not lost, f"confirmed messages lost from the unconsumed copy: {sorted(lost)[:20]}"
        checked += len(confirmed)
    print(f"crash test: {ROUNDS} kills, {len(confirmed)} confirmed messages checked")
    conn = pika.BlockingConnection(params())
    ch = conn.channel()
    for name in (q, copy, markers):
        ch.queue_delete(name)
    ch.exchange_delete(x)
    conn.close()
