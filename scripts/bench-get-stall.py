#!/usr/bin/env python3
"""How much a basic.get loop on a deep, paged queue delays another connection.

Connection A fills a queue with N messages (the broker should keep few in memory: run it with a
small `queue_memory_messages`, so that most of the backlog is in the store), then takes them all
with basic.get. Meanwhile connection B, in another process, times round trips
(queue.declare passive on a queue of its own) and reports their percentiles and maximum, and the
same with no get loop running, for comparison.

    scripts/bench-get-stall.py --url amqp://guest:guest@127.0.0.1:5681/%2F --messages 200000

Measures; asserts nothing. Python and pika are the clients (the interop venv has pika).
"""

import argparse
import multiprocessing as mp
import statistics
import time
import uuid

import pika


def pinger(url, stop, out):
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    lat = []
    while not stop.is_set():
        t = time.perf_counter()
        ch.queue_declare(q, passive=True)
        lat.append(time.perf_counter() - t)
    conn.close()
    out.put(lat)


def summary(lat):
    lat = sorted(lat)
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
    return (
        f"{len(lat)} round trips: p50 {pct(0.50):.2f} ms, p99 {pct(0.99):.2f} ms, "
        f"p99.9 {pct(0.999):.2f} ms, max {lat[-1] * 1000:.2f} ms, mean {statistics.mean(lat) * 1000:.2f} ms"
    )


def timed_pings(url, seconds=None, during=None):
    stop, out = mp.Event(), mp.Queue()
    p = mp.Process(target=pinger, args=(url, stop, out))
    p.start()
    time.sleep(0.5)  # the pinger's connection is up (measurement start, not synchronisation)
    t = time.perf_counter()
    if during:
        during()
    else:
        time.sleep(seconds)
    elapsed = time.perf_counter() - t
    stop.set()
    lat = out.get()
    p.join()
    return lat, elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--size", type=int, default=1024)
    a = ap.parse_args()

    conn = pika.BlockingConnection(pika.URLParameters(a.url))
    ch = conn.channel()
    q = f"get-stall-{uuid.uuid4().hex[:8]}"
    ch.queue_declare(q, auto_delete=False)
    body = b"x" * a.size
    for _ in range(a.messages):
        ch.basic_publish("", q, body)
    ch.queue_declare(q, passive=True)  # a round trip: every publish before it was handled

    lat, _ = timed_pings(a.url, seconds=5)
    print("idle:           ", summary(lat))

    got = 0

    def drain():
        nonlocal got
        while True:
            m, _, _ = ch.basic_get(q, auto_ack=True)
            if m is None:
                return
            got += 1

    lat, elapsed = timed_pings(a.url, during=drain)
    print("during the gets:", summary(lat))
    print(f"basic.get: {got} messages in {elapsed:.1f} s ({got / elapsed:,.0f}/s)")
    ch.queue_delete(q)
    conn.close()


if __name__ == "__main__":
    main()
