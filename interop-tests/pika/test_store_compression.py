"""Warren's ``store_compression`` setting (TOML): persistent bodies are stored without compression
when it is off, and a store keeps every message when the setting changes between restarts.

Warren only (RabbitMQ has no such setting): each test starts a Warren of its own (WARREN_BIN).
"""

import glob
import os
import shutil
import tempfile

import pika
import pytest

from conftest import WAIT, free_port, start_own_warren, stop_own_warren

pytestmark = pytest.mark.warren_only

COUNT = 200
BODY = 1500  # stored in a blob file (512 bytes or more), and compresses well


@pytest.fixture
def work():
    d = tempfile.mkdtemp(prefix="warren-compression-", dir="/var/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def body(i):
    return b"%04d-" % i + b"x" * BODY


def blob_bytes(work):
    files = glob.glob(os.path.join(work, "warren-data", "store", "*.blob"))
    return sum(os.path.getsize(p) for p in files)


class Broker:
    """A Warren of the test's own on one data directory, restarted with other settings."""

    def __init__(self, work):
        self.work, self.port, self.proc = work, free_port(), None

    def start(self, compression):
        path = os.path.join(self.work, "warren.toml")
        with open(path, "w") as f:
            f.write(f"store_compression = {'true' if compression else 'false'}\n")
        self.proc, self.log = start_own_warren(self.work, self.port, path)

    def stop(self):
        stop_own_warren(self.proc, self.log)
        assert self.proc.returncode == 0, open(self.log.name).read()

    def connect(self):
        return pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", self.port, connection_attempts=1, socket_timeout=WAIT))


def publish(broker, first, last):
    conn = broker.connect()
    ch = conn.channel()
    ch.queue_declare("compression-q", durable=True)
    ch.confirm_delivery()
    for i in range(first, last + 1):
        ch.basic_publish("", "compression-q", body(i), pika.BasicProperties(delivery_mode=2))
    conn.close()


def consume_all(broker):
    conn = broker.connect()
    ch = conn.channel()
    got = []
    while True:
        method, _, b = ch.basic_get("compression-q", auto_ack=True)
        if method is None:
            break
        got.append(b)
    conn.close()
    return got


def test_bodies_are_stored_as_they_are_without_compression_and_survive_switching(work):
    broker = Broker(work)
    broker.start(compression=False)
    try:
        publish(broker, 1, COUNT // 2)
    finally:
        broker.stop()
    # A start replays the store's log and flushes it into blob files with the settings it has.
    broker.start(compression=False)
    try:
        plain = blob_bytes(work)
        assert plain >= COUNT // 2 * BODY, f"{COUNT // 2} bodies of {BODY} bytes in {plain} bytes"
        publish(broker, COUNT // 2 + 1, COUNT)
    finally:
        broker.stop()
    broker.start(compression=True)
    try:
        added = blob_bytes(work) - plain
        assert added < COUNT // 2 * BODY // 4, f"{COUNT // 2} compressed bodies took {added} bytes"
        got = consume_all(broker)
        assert got == [body(i) for i in range(1, COUNT + 1)], f"{len(got)} messages back"
    finally:
        broker.stop()
