"""Publisher confirms and AMQP transactions."""

import pika
import pika.exceptions
import pytest

from conftest import channel_closed, drain, get_all, wait_for


def count(conn, q):
    return conn.channel().queue_declare(q, passive=True).method.message_count


def test_confirm_select_and_many_publishes(conn, names):
    ch = conn.channel()
    q = names.queue()
    ch.queue_declare(q)
    ch.confirm_delivery()
    for i in range(500):
        ch.basic_publish("", q, str(i).encode())  # raises on nack / timeout
    assert count(conn, q) == 500


def test_confirm_unroutable_is_still_acked(conn):
    ch = conn.channel()
    ch.confirm_delivery()
    # non-mandatory unroutable message: confirmed (acked), not an error
    ch.basic_publish("amq.direct", "warren-no-such-key", b"x")
    ch.basic_publish("amq.direct", "warren-no-such-key", b"y")
    assert ch.is_open


def test_confirm_after_tx_select_refused(conn):
    ch = conn.channel()
    ch.tx_select()
    with channel_closed(406, "PRECONDITION_FAILED - cannot switch from tx to confirm mode"):
        ch.confirm_delivery()


def test_tx_select_after_confirm_refused(conn):
    ch = conn.channel()
    ch.confirm_delivery()
    with channel_closed(406, "PRECONDITION_FAILED - cannot switch from confirm to tx mode"):
        ch.tx_select()


@pytest.mark.parametrize("op", ["tx_commit", "tx_rollback"])
def test_commit_or_rollback_without_select(conn, op):
    with channel_closed(406, "PRECONDITION_FAILED - channel is not transactional"):
        getattr(conn.channel(), op)()


def test_tx_publish_commit_and_rollback(conn, names):
    q = names.queue()
    ch = conn.channel()
    ch.queue_declare(q)
    r = ch.tx_select()
    assert isinstance(r.method, pika.spec.Tx.SelectOk)
    ch.tx_select()  # idempotent
    ch.basic_publish("", q, b"rolled-back")
    assert count(conn, q) == 0  # not visible before commit
    assert isinstance(ch.tx_rollback().method, pika.spec.Tx.RollbackOk)
    assert count(conn, q) == 0
    ch.basic_publish("", q, b"a")
    ch.basic_publish("", q, b"b")
    assert count(conn, q) == 0
    assert isinstance(ch.tx_commit().method, pika.spec.Tx.CommitOk)
    assert count(conn, q) == 2
    # an empty commit is fine, and the channel stays transactional
    ch.tx_commit()
    ch.basic_publish("", q, b"c")
    ch.tx_rollback()
    assert [b for _, _, b in get_all(conn.channel(), q)] == [b"a", b"b"]


def test_tx_acks_rolled_back_are_not_applied(conn, names):
    q = names.queue()
    setup = conn.channel()
    setup.queue_declare(q)
    for i in range(3):
        setup.basic_publish("", q, str(i).encode())
    ch = conn.channel()
    ch.tx_select()
    msgs = [ch.basic_get(q) for _ in range(3)]
    assert [b for _, _, b in msgs] == [b"0", b"1", b"2"]
    ch.basic_ack(msgs[2][0].delivery_tag, multiple=True)
    ch.tx_rollback()
    # the acks were discarded: the messages are still unacked, so they may be
    # acked again (no "unknown delivery tag")
    ch.basic_ack(msgs[0][0].delivery_tag)
    ch.tx_commit()
    ch.close()  # the two still unacked messages are requeued
    got = get_all(conn.channel(), q)
    assert [b for _, _, b in got] == [b"1", b"2"]
    assert all(m.redelivered for m, _, _ in got)


def test_tx_reject_applied_on_commit(conn, names):
    q = names.queue()
    ch = conn.channel()
    ch.queue_declare(q)
    ch.tx_select()
    ch.basic_publish("", q, b"x")
    ch.tx_commit()
    m, _, _ = ch.basic_get(q)
    ch.basic_reject(m.delivery_tag, requeue=True)
    assert count(conn, q) == 0  # not yet
    ch.tx_commit()
    assert count(conn, q) == 1


def test_tx_mandatory_return_sent_on_commit(conn):
    ch = conn.channel()
    ch.tx_select()
    returns = []
    ch.add_on_return_callback(lambda _c, m, p, b: returns.append((m.reply_code, m.reply_text, b)))
    ch.basic_publish("amq.direct", "warren-no-such-key", b"ret", mandatory=True)
    drain(conn, 0.2)
    assert returns == []  # nothing happens before commit
    ch.tx_commit()
    assert wait_for(conn, lambda: returns)
    assert returns == [(312, "NO_ROUTE", b"ret")]
