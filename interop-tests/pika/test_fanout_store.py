"""Persistent messages fanned out to several durable queues, across a restart.

Warren stores the body of a message routed to several queues once, with a reference from each
queue's record (issue 3); these tests pin what clients must see whatever the layout: each queue
keeps its own copy byte-for-byte, acks, purges and deletions in one queue leave the others
alone, and nothing acked comes back.  The restart tests pass against RabbitMQ restarted the same
way (BROKER_RESTART / BROKER_KILL_RESTART, see test_ext_restart.py); the disk-space test is
Warren's own.
"""

import os
import subprocess

import pika
import pytest

from conftest import get_all, params, uid

MODES = {
    "graceful": os.environ.get("BROKER_RESTART"),
    "kill": os.environ.get("BROKER_KILL_RESTART"),
}
PERSISTENT = 2
N = 300


def restart(mode):
    subprocess.run(MODES[mode], shell=True, check=True, timeout=180)


def body_of(i):
    # Long enough to be shared (Warren shares bodies of 128 bytes and more), distinct per message.
    return (f"message {i:05d} " * 16).encode() + bytes(range(i % 200))


def props_of(i):
    return pika.BasicProperties(
        delivery_mode=PERSISTENT,
        content_type="application/octet-stream",
        correlation_id=f"c{i}",
        headers={"i": i, "tag": "t" * (i % 7)},
    )


def expect(got, first, redelivered_first=False):
    """`got` is messages first..N-1, byte-for-byte; `redelivered_first=None`: flags not checked."""
    assert [b for _, _, b in got] == [body_of(i) for i in range(first, N)]
    for k, (m, p, _) in enumerate(got):
        i = first + k
        assert (p.delivery_mode, p.content_type, p.correlation_id) == (
            PERSISTENT, "application/octet-stream", f"c{i}")
        assert p.headers == {"i": i, "tag": "t" * (i % 7)}
        if redelivered_first is not None:
            assert m.redelivered == (redelivered_first and k == 0)


@pytest.mark.parametrize("mode", ["graceful", "kill"])
def test_fanout_copies_are_independent_across_a_restart(mode):
    if not MODES[mode]:
        pytest.skip(f"no {mode} restart command for this broker")
    x = uid("fan")
    acked, partly, purged, kept, deleted = (uid(n) for n in ("acked", "partly", "purged", "kept", "deleted"))
    conn = pika.BlockingConnection(params())
    ch = conn.channel()
    ch.confirm_delivery()
    ch.exchange_declare(x, "fanout", durable=True)
    for q in (acked, partly, purged, kept, deleted):
        ch.queue_declare(q, durable=True)
        ch.queue_bind(q, x)
    for i in range(N):
        ch.basic_publish(x, "", body_of(i), props_of(i))
    got = get_all(ch, acked, auto_ack=False)
    assert len(got) == N
    ch.basic_ack(got[-1][0].delivery_tag, multiple=True)
    for _ in range(100):
        m, _, _ = ch.basic_get(partly, auto_ack=False)
        ch.basic_ack(m.delivery_tag)
    taker = conn.channel()
    m, _, body = taker.basic_get(partly, auto_ack=False)  # unacked when the broker goes down
    assert body == body_of(100)
    ch.queue_purge(purged)
    ch.queue_delete(deleted)

    restart(mode)
    try:
        conn.close()
    except Exception:
        pass
    conn = pika.BlockingConnection(params())
    ch = conn.channel()
    try:
        counts = {q: ch.queue_declare(q, durable=True).method.message_count
                  for q in (acked, partly, purged, kept)}
        if mode == "graceful":
            assert counts == {acked: 0, partly: N - 100, purged: 0, kept: N}
            expect(get_all(ch, partly), 100, redelivered_first=True)
            expect(get_all(ch, acked), N)
            expect(get_all(ch, purged), N)
        else:
            # After a SIGKILL, acks and a purge made just before it need not have reached the
            # disk: RabbitMQ 3.10.8 brought back all 100 single acks of `partly`. What was
            # confirmed is all there, in order, byte-for-byte, whatever else came back.
            assert counts[kept] == N
            for q, least in ((acked, 0), (partly, N - 100), (purged, 0)):
                assert least <= counts[q] <= N, (q, counts[q])
                expect(get_all(ch, q), N - counts[q], redelivered_first=None)
            assert counts[purged] in (0, N)
        got = get_all(ch, kept, auto_ack=False)
        expect(got, 0, redelivered_first=False if mode == "graceful" else None)
        ch.basic_ack(got[-1][0].delivery_tag, multiple=True)
        # Nothing acked in one queue is gone from another, and nothing acked comes back.
        counts = {q: ch.queue_declare(q, passive=True).method.message_count
                  for q in (acked, partly, purged, kept)}
        assert counts == {acked: 0, partly: 0, purged: 0, kept: 0}
    finally:
        for q in (acked, partly, purged, kept):
            ch.queue_delete(q)
        ch.exchange_delete(x)
        conn.close()


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


@pytest.mark.warren_only
def test_a_fanout_body_takes_disk_space_once():
    data = os.environ.get("WARREN_DATA")
    if not data:
        pytest.skip("needs WARREN_DATA, the data directory of the Warren under test")
    queues, size, count = 8, 1 << 20, 32
    x = uid("fan")
    conn = pika.BlockingConnection(params())
    ch = conn.channel()
    ch.confirm_delivery()
    ch.exchange_declare(x, "fanout")
    names = [uid("copy") for _ in range(queues)]
    before = du(data)
    try:
        for q in names:
            ch.queue_declare(q, durable=True)
            ch.queue_bind(q, x)
        for _ in range(count):
            # Random bytes: compression cannot hide copies.
            ch.basic_publish(x, "", os.urandom(size), pika.BasicProperties(delivery_mode=PERSISTENT))
        grown = du(data) - before
        # Stored once: 32 MiB (and its copy in the write-ahead log); one per queue would be 256 MiB.
        assert grown < 4 * count * size, f"store grew by {grown >> 20} MiB for {count} MiB of bodies"
        for q in names:
            assert ch.queue_declare(q, passive=True).method.message_count == count
    finally:
        for q in names:
            ch.queue_delete(q)
        ch.exchange_delete(x)
        conn.close()
