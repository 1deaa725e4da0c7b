"""Single active consumer (x-single-active-consumer) and consumer timeouts.

Observed on RabbitMQ 3.10.8 (classic queues): the first registered consumer is the only one
that receives; when it goes (basic.cancel or channel close) the next one in registration order
takes over at once, even while the old one still holds unacknowledged messages (those are
redelivered to the new active consumer only when the old channel closes or rejects them).
All consumers count in declare-ok's consumer_count.  Consumer priorities are ignored.  An
exclusive basic.consume on a single-active-consumer queue is refused (403), even when the queue
has no consumer.  basic.get works as usual.

Consumer priority (x-priority) itself is tested in test_basic.py.
"""

import pika
import pytest

from conftest import BROKER_VHOST, channel_closed, drain, get_all, wait_for
from ext_helpers import count, declare_raw, wait_count

V = BROKER_VHOST
QUIET = 0.2
SAC = {"x-single-active-consumer": True}


class Consumer:
    def __init__(self, conn, q, tag, prefetch=0, auto_ack=True, **kw):
        self.ch = conn.channel()
        if prefetch:
            self.ch.basic_qos(prefetch_count=prefetch)
        self.msgs = []
        self.tag = self.ch.basic_consume(q, self.on_msg, auto_ack=auto_ack, consumer_tag=tag, **kw)

    def on_msg(self, ch, method, props, body):
        self.msgs.append((method, body.decode()))

    @property
    def bodies(self):
        return [b for _, b in self.msgs]

    def __len__(self):
        return len(self.msgs)


def confirm_channel(conn):
    ch = conn.channel()
    ch.confirm_delivery()
    return ch


def fill(ch, q, bodies):
    for b in bodies:
        ch.basic_publish("", q, b.encode())


def test_only_the_first_consumer_receives(conn, names):
    ch = confirm_channel(conn)
    q = names.queue()
    ch.queue_declare(q, arguments=SAC)
    a, b, c = (Consumer(conn, q, t) for t in "abc")
    fill(ch, q, [str(i) for i in range(10)])
    assert wait_for(conn, lambda: len(a) == 10)
    drain(conn, QUIET)
    assert (len(b), len(c)) == (0, 0)
    assert a.bodies == [str(i) for i in range(10)]
    assert ch.queue_declare(q, passive=True).method.consumer_count == 3


def test_without_single_active_consumer_round_robin(conn, names):
    ch = confirm_channel(conn)
    q = names.queue()
    ch.queue_declare(q, arguments={"x-single-active-consumer": False})
    a, b = Consumer(conn, q, "a"), Consumer(conn, q, "b")
    fill(ch, q, [str(i) for i in range(4)])
    assert wait_for(conn, lambda: len(a) + len(b) == 4)
    assert (a.bodies, b.bodies) == (["0", "2"], ["1", "3"])


def test_next_consumer_in_registration_order_takes_over(conn, names):
    ch = confirm_channel(conn)
    q = names.queue()
    ch.queue_declare(q, arguments=SAC)
    a, b, c = (Consumer(conn, q, t) for t in "abc")
    fill(ch, q, ["1"])
    assert wait_for(conn, lambda: len(a) == 1)
    a.ch.basic_cancel(a.tag)
    fill(ch, q, ["2"])
    assert wait_for(conn, lambda: len(b) == 1)
    b.ch.close()
    fill(ch, q, ["3"])
    assert wait_for(conn, lambda: len(c) == 1)
    drain(conn, QUIET)
    assert (a.bodies, b.bodies, c.bodies) == (["1"], ["2"], ["3"])
    # a newcomer waits behind c
    d = Consumer(conn, q, "d")
    fill(ch, q, ["4"])
    assert wait_for(conn, lambda: len(c) == 2)
    drain(conn, QUIET)
    assert len(d) == 0


def test_takeover_while_the_old_consumer_holds_unacked_messages(conn, names):
    """Kept clear of the case where the cancelled consumer was blocked at its prefetch limit
    with messages waiting: RabbitMQ 3.10.8 then does not hand the waiting messages over, and a
    publish at that point crashes the queue process (see the notes)."""
    ch = confirm_channel(conn)
    q = names.queue()
    ch.queue_declare(q, arguments=SAC)
    a = Consumer(conn, q, "a", prefetch=3, auto_ack=False)
    b = Consumer(conn, q, "b", auto_ack=False)
    fill(ch, q, ["1", "2"])
    assert wait_for(conn, lambda: len(a) == 2)
    a.ch.basic_cancel(a.tag)
    # b is active at once, while a still holds "1" and "2"
    fill(ch, q, ["3"])
    assert wait_for(conn, lambda: len(b) == 1)
    assert b.bodies == ["3"]
    # a's unacked messages come back when its channel closes, to b
    a.ch.close()
    assert wait_for(conn, lambda: len(b) == 3)
    assert [(m.redelivered, body) for m, body in b.msgs] == [(False, "3"), (True, "1"), (True, "2")]
    assert a.bodies == ["1", "2"]


def test_basic_get_works_beside_the_active_consumer(conn, names):
    ch = confirm_channel(conn)
    q = names.queue()
    ch.queue_declare(q, arguments=SAC)
    a = Consumer(conn, q, "a", prefetch=1, auto_ack=False)
    fill(ch, q, ["1", "2", "3"])
    assert wait_for(conn, lambda: len(a) == 1)
    assert wait_count(conn, ch, q, 2)
    assert [b.decode() for _, _, b in get_all(ch, q)] == ["2", "3"]


def test_consumer_priority_is_ignored(conn, names):
    ch = confirm_channel(conn)
    q = names.queue()
    ch.queue_declare(q, arguments=SAC)
    low = Consumer(conn, q, "low")
    high = Consumer(conn, q, "high", arguments={"x-priority": 10})
    fill(ch, q, ["1", "2", "3"])
    assert wait_for(conn, lambda: len(low) == 3)
    drain(conn, QUIET)
    assert len(high) == 0


def test_exclusive_consume_is_refused(conn, names):
    q = names.queue()
    conn.channel().queue_declare(q, arguments=SAC)
    text = f"ACCESS_REFUSED - queue '{q}' in vhost '{V}' in exclusive use"
    # even with no consumer at all
    with channel_closed(403) as closed:
        conn.channel().basic_consume(q, lambda *a: None, exclusive=True)
    assert closed.reply_text == text
    Consumer(conn, q, "a")
    with channel_closed(403) as closed:
        conn.channel().basic_consume(q, lambda *a: None, exclusive=True)
    assert closed.reply_text == text


@pytest.mark.parametrize(
    "value, reason",
    [
        ("true", "{unacceptable_type,longstr}"),
        (1, "{unacceptable_type,signedint}"),
    ],
)
def test_invalid_single_active_consumer(conn, names, value, reason):
    q = names.queue()
    text = (f"PRECONDITION_FAILED - invalid arg 'x-single-active-consumer' for queue '{q}' "
            f"in vhost '{V}': {reason}")
    with channel_closed(406) as closed:
        conn.channel().queue_declare(q, arguments={"x-single-active-consumer": value})
    assert closed.reply_text == text


def test_quorum_queue_single_active_consumer(conn, names):
    ch = confirm_channel(conn)
    q = names.queue()
    ch.queue_declare(q, durable=True, arguments={"x-queue-type": "quorum", **SAC})
    a, b = Consumer(conn, q, "a"), Consumer(conn, q, "b")
    fill(ch, q, ["1", "2"])
    assert wait_for(conn, lambda: len(a) == 2)
    a.ch.basic_cancel(a.tag)
    fill(ch, q, ["3"])
    assert wait_for(conn, lambda: len(b) == 1)
    assert b.bodies == ["3"]


# ---------------------------------------------------------------------------
# consumer timeout
# ---------------------------------------------------------------------------


# Warren only: RabbitMQ 3.10 has only a node-wide consumer_timeout (default 30 min), accepts and
# ignores an x-consumer-timeout queue argument, and on timeout closes the whole channel with
# 406 "PRECONDITION_FAILED - delivery acknowledgement on channel N timed out. Timeout value
# used: T ms. ..." (checked on a periodic tick, so late).  Warren takes the timeout per queue and
# cancels just the late consumer (basic.cancel, consumer_cancel_notify), requeueing its messages.
@pytest.mark.warren_only
def test_consumer_timeout_cancels_the_consumer_and_requeues(conn, names):
    ch = confirm_channel(conn)
    q = names.queue()
    ch.queue_declare(q, arguments={"x-consumer-timeout": 500})
    slow_ch = conn.channel()
    cancels = []
    slow_ch.add_on_cancel_callback(lambda frame: cancels.append(frame.method))
    slow = []
    tag = slow_ch.basic_consume(q, lambda c, m, p, b: slow.append(b))  # never acks
    ch.basic_publish("", q, b"late")
    assert wait_for(conn, lambda: slow == [b"late"])
    assert wait_for(conn, lambda: cancels, timeout=5)
    (cancel,) = cancels
    assert isinstance(cancel, pika.spec.Basic.Cancel)
    assert cancel.consumer_tag == tag
    assert slow_ch.is_open
    assert slow_ch.consumer_tags == []
    # the message went back to the queue and reaches the next consumer, redelivered
    other = Consumer(conn, q, "other", auto_ack=True)
    assert wait_for(conn, lambda: len(other) == 1)
    (m, body), = other.msgs
    assert (body, m.redelivered) == ("late", True)
    assert count(ch, q) == 0
    assert slow_ch.is_open and conn.is_open


# Warren only: RabbitMQ 3.10 ignores x-consumer-timeout (its node-wide timeout closes the channel
# the same way). A client that does not take cancel notifications (this raw client advertises none)
# cannot be told its consumer was cancelled, so its channel is closed, as RabbitMQ does, and the
# message goes back to the queue.
@pytest.mark.warren_only
def test_consumer_timeout_closes_the_channel_of_a_client_without_cancel_notifications(raw, conn, names):
    q = names.queue()
    c = raw().handshake()
    c.open_channel(1)
    assert declare_raw(c, 1, q, [("x-consumer-timeout", "I", 300)]) == ("ok", None)
    c.publish(1, "", q, b"held")
    c.consume(1, q, tag="late")
    m = c.read_method()
    assert m[1:3] == (60, 21), m  # consume-ok
    m = c.read_method()
    assert m[1:3] == (60, 60), m  # the delivery, never acked
    c.read_content(1)
    code, text, class_id, method_id = c.expect_channel_close(1)
    assert (code, text) == (406, "PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out. "
                            "Timeout value used: 300 ms. This timeout value can be configured, see "
                            "consumers doc guide to learn more")
    ch = conn.channel()
    m, _, body = ch.basic_get(q, auto_ack=True)
    assert body == b"held" and m.redelivered
