"""Disk alarm: while free space on the data directory's filesystem is below `disk_free_limit`,
Warren blocks publishing connections (connection.blocked, socket not read) and unblocks them
(connection.unblocked) once space returns, losing nothing.

Warren only: it starts its own Warren (WARREN_BIN, set by scripts/test.sh) with a limit just
under the current free space, then takes the space away with a file and gives it back.
RabbitMQ's disk alarm behaves the same way but is configured on the node.
"""

import os
import shutil
import tempfile

import pika
import pytest

from conftest import free_port, params, start_own_warren, stop_own_warren, uid, wait_for

pytestmark = pytest.mark.warren_only

MARGIN = 256 << 20  # limit = free space - MARGIN; the filler takes 2 * MARGIN


def fill(path, size):
    with open(path, "wb") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, size)
        except OSError:
            chunk = b"\0" * (8 << 20)
            for _ in range(size // len(chunk)):
                f.write(chunk)
        f.flush()
        os.fsync(f.fileno())


@pytest.fixture
def warren_with_disk_limit():
    work = tempfile.mkdtemp(prefix="warren-disk-alarm-", dir="/var/tmp")
    try:
        free = shutil.disk_usage(work).free
        if free < 8 * MARGIN:
            pytest.skip(f"only {free} bytes free")
        port = free_port()
        config = os.path.join(work, "warren.toml")
        with open(config, "w") as f:
            f.write(f"disk_free_limit = {free - MARGIN}\n")
        proc, log = start_own_warren(work, port, config)
        try:
            yield port, work
        finally:
            stop_own_warren(proc, log)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_publishers_are_blocked_while_disk_space_is_low(warren_with_disk_limit):
    port, work = warren_with_disk_limit
    p = params(host="127.0.0.1", port=port)
    conn = pika.BlockingConnection(p)
    events = []
    conn.add_on_connection_blocked_callback(lambda c, m: events.append(("blocked", m.method.reason)))
    conn.add_on_connection_unblocked_callback(lambda c, m: events.append(("unblocked", None)))
    ch = conn.channel()
    ch.confirm_delivery()
    q = uid("alarm")
    ch.queue_declare(q, durable=True)
    ch.basic_publish("", q, b"before", pika.BasicProperties(delivery_mode=2))

    filler = os.path.join(work, "filler")
    fill(filler, 2 * MARGIN)
    try:
        assert wait_for(conn, lambda: events == [("blocked", "low on disk")]), events
        # A connection that only consumes is not blocked.
        other = pika.BlockingConnection(p)
        m, _, body = other.channel().basic_get(q, auto_ack=False)
        assert body == b"before"
        other.close()
    finally:
        os.remove(filler)
    assert wait_for(conn, lambda: events[-1:] == [("unblocked", None)]), events
    ch.basic_publish("", q, b"after", pika.BasicProperties(delivery_mode=2))
    bodies = []
    while True:
        m, _, body = ch.basic_get(q, auto_ack=True)
        if m is None:
            break
        bodies.append(body)
    assert bodies == [b"before", b"after"]
    ch.queue_delete(q)
    conn.close()
