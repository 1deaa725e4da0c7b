"""A full disk: store writes fail, publishers are blocked, and the broker recovers by itself when
space returns, without losing a confirmed message.

Warren only: it starts its own Warren (WARREN_BIN) with its data directory on a small tmpfs
(mounting one needs root; skipped otherwise) and `disk_free_limit = 0`, so that the disk really
fills up instead of the free-space alarm stopping publishers first (that alarm has its own test,
test_disk_alarm.py). A filler file takes part of the space and is removed to give it back.
"""

import os
import random
import shutil
import socket
import subprocess
import tempfile
import time

import pika
import pytest

from conftest import WAIT, free_port, params, uid, wait_for

pytestmark = pytest.mark.warren_only

SIZE_MB = 64
BODY = 256 * 1024


class Broker:
    def __init__(self, binary, data, config, log):
        self.binary, self.data, self.config, self.log = binary, data, config, log
        self.port = free_port()
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--data-dir", self.data,
             "--config", self.config],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + WAIT
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                assert self.proc.poll() is None, "warren exited"
                assert time.monotonic() < deadline, "warren did not start listening"
                time.sleep(0.05)  # polling for the listener, bounded by the deadline

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def warren_on_small_disk():
    binary = os.environ.get("WARREN_BIN")
    if not binary:
        pytest.skip("needs WARREN_BIN to start a Warren of its own")
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    work = tempfile.mkdtemp(prefix="warren-disk-full-", dir="/var/tmp")
    mnt = os.path.join(work, "disk")
    os.mkdir(mnt)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m", "tmpfs", mnt],
                       capture_output=True)
    if r.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        pytest.skip(f"cannot mount a tmpfs: {r.stderr.decode().strip()}")
    config = os.path.join(work, "warren.toml")
    with open(config, "w") as f:
        f.write("disk_free_limit = 0\n")
    log = open(os.path.join(work, "warren.log"), "ab")
    broker = Broker(binary, os.path.join(mnt, "data"), config, log)
    broker.start()
    try:
        yield broker, mnt
    finally:
        if broker.proc.poll() is None:
            broker.stop()
        log.close()
        with open(os.path.join(work, "warren.log"), "rb") as f:
            tail = f.read()[-3000:].decode(errors="replace")
        print(tail)
        subprocess.run(["umount", mnt])
        shutil.rmtree(work, ignore_errors=True)


def body_of(i):
    # Incompressible: the store compresses message bodies, and a body that compresses to almost
    # nothing would fill the disk only until its log is flushed, so the alarm could clear by itself
    # before space is given back.
    return i.to_bytes(4, "big") + random.Random(i).randbytes(BODY - 4)


def test_a_full_disk_blocks_publishers_and_the_store_recovers_when_space_returns(warren_on_small_disk):
    broker, mnt = warren_on_small_disk
    filler = os.path.join(mnt, "filler")
    with open(filler, "wb") as f:
        f.write(b"\0" * (20 << 20))
    p = params(host="127.0.0.1", port=broker.port, blocked_connection_timeout=None)
    conn = pika.BlockingConnection(p)
    events = []
    conn.add_on_connection_blocked_callback(lambda c, m: events.append("blocked"))
    conn.add_on_connection_unblocked_callback(lambda c, m: events.append("unblocked"))
    ch = conn.channel()
    ch.confirm_delivery()
    q = uid("full")
    ch.queue_declare(q, durable=True)
    confirmed = []
    nacked = None
    # 64 MiB of tmpfs, 20 MiB taken: some 40 MiB of bodies cannot all fit with their log.
    for i in range(1000):
        try:
            ch.basic_publish("", q, body_of(i), pika.BasicProperties(delivery_mode=2))
            confirmed.append(i)
        except pika.exceptions.NackError:
            nacked = i
            break
    assert nacked is not None, "the disk never filled up"
    assert confirmed, "nothing was confirmed before the disk filled up"
    assert wait_for(conn, lambda: "blocked" in events), events

    # Consumers carry on meanwhile.
    reader = pika.BlockingConnection(p)
    m, _, body = reader.channel().basic_get(q, auto_ack=False)
    assert body == body_of(confirmed[0])
    reader.close()  # unacked: back in the queue

    os.remove(filler)
    assert wait_for(conn, lambda: events[-1:] == ["unblocked"], timeout=30), events
    ch.basic_publish("", q, body_of(100000), pika.BasicProperties(delivery_mode=2))
    conn.close()

    # Everything confirmed survives a restart, in order.
    broker.stop()
    broker.start()
    conn = pika.BlockingConnection(params(host="127.0.0.1", port=broker.port))
    ch = conn.channel()
    got = []
    while True:
        m, _, body = ch.basic_get(q, auto_ack=True)
        if m is None:
            break
        got.append(int.from_bytes(body[:4], "big"))
        assert body == body_of(got[-1])
    kept = [i for i in got if i in set(confirmed) | {100000}]
    assert kept == confirmed + [100000], f"lost {sorted(set(confirmed) - set(got))[:10]}"
    assert got == sorted(got), "order broken"
    conn.close()
