"""Queue length limits (x-max-length, x-max-length-bytes) and x-overflow, as in RabbitMQ 3.10.8.

Observed on RabbitMQ:
* only ready messages count (not unacked ones); x-max-length-bytes counts body bytes only;
* drop-head (default) drops -- and dead-letters with reason maxlen -- from the head, after the
  new message is enqueued, so a message bigger than the byte limit drops itself;
* reject-publish refuses the new message: basic.nack to a confirming publisher (also when the
  message reached other queues), silently dropped otherwise, never a basic.return even with
  mandatory, never dead-lettered; requeued messages are not refused and may exceed the limit;
* reject-publish-dlx is reject-publish plus dead-lettering of the refused message (maxlen).
"""

import struct

import pika
import pika.exceptions
import pytest

from conftest import BROKER_VHOST, channel_closed, drain, get_all, shortstr
from ext_helpers import count, poll_get, wait_count

V = BROKER_VHOST


def confirm_channel(conn):
    ch = conn.channel()
    ch.confirm_delivery()
    return ch


def publish(ch, q, body, exchange="", **kw):
    """Publish on a confirm channel: 'ack' or 'nack'."""
    try:
        ch.basic_publish(exchange, q, body if isinstance(body, bytes) else body.encode(), **kw)
        return "ack"
    except pika.exceptions.NackError:
        return "nack"


def bodies(msgs):
    return [b.decode() for _, _, b in msgs]


def with_dlx(ch, names, **args):
    dead, q = names.queue("dead"), names.queue()
    ch.queue_declare(dead)
    a = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead}
    a.update(args)
    ch.queue_declare(q, arguments=a)
    return dead, q


# ---------------------------------------------------------------------------
# drop-head
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("overflow", [None, "drop-head"])
def test_max_length_drops_from_the_head(conn, names, overflow):
    ch = confirm_channel(conn)
    q = names.queue()
    args = {"x-max-length": 3}
    if overflow:
        args["x-overflow"] = overflow
    ch.queue_declare(q, arguments=args)
    assert [publish(ch, q, str(i)) for i in range(5)] == ["ack"] * 5
    assert count(ch, q) == 3
    assert bodies(get_all(ch, q)) == ["2", "3", "4"]


def test_drop_head_dead_letters_with_reason_maxlen(conn, names):
    ch = confirm_channel(conn)
    dead, q = with_dlx(ch, names, **{"x-max-length": 2})
    for i in range(4):
        publish(ch, q, str(i))
    assert wait_count(conn, ch, dead, 2)
    msgs = get_all(ch, dead)
    assert bodies(msgs) == ["0", "1"]
    for _, p, _ in msgs:
        (death,) = p.headers["x-death"]
        assert (death["reason"], death["queue"], death["count"]) == ("maxlen", q, 1)
        assert p.headers["x-first-death-reason"] == "maxlen"
    assert bodies(get_all(ch, q)) == ["2", "3"]


def test_max_length_zero_drops_everything(conn, names):
    ch = confirm_channel(conn)
    dead, q = with_dlx(ch, names, **{"x-max-length": 0})
    assert publish(ch, q, "a") == "ack"
    assert count(ch, q) == 0
    assert poll_get(conn, ch, dead)[2] == b"a"


def test_max_length_bytes_counts_body_bytes(conn, names):
    ch = confirm_channel(conn)
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-length-bytes": 10})
    for body in ["aaaa", "bbbb", "cccc"]:
        assert publish(ch, q, body) == "ack"
    assert bodies(get_all(ch, q)) == ["bbbb", "cccc"]
    # headers and properties do not count
    big = pika.BasicProperties(headers={"h": "x" * 1000}, content_type="y" * 200)
    publish(ch, q, "dddd", properties=big)
    publish(ch, q, "eeeee", properties=big)
    assert bodies(get_all(ch, q)) == ["dddd", "eeeee"]


def test_message_larger_than_max_length_bytes_drops_itself(conn, names):
    ch = confirm_channel(conn)
    dead, q = with_dlx(ch, names, **{"x-max-length-bytes": 10})
    assert publish(ch, q, "small") == "ack"
    assert publish(ch, q, "x" * 20) == "ack"
    m, p, body = poll_get(conn, ch, dead)
    # the head went first (it did not make room), then the big one itself
    assert wait_count(conn, ch, dead, 1)
    rest = get_all(ch, dead)
    assert [body] + [b for _, _, b in rest] == [b"small", b"x" * 20]
    assert count(ch, q) == 0


def test_unacked_messages_do_not_count(conn, names):
    ch = confirm_channel(conn)
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-length": 2})
    publish(ch, q, "1")
    publish(ch, q, "2")
    taker = conn.channel()
    taken = [taker.basic_get(q, auto_ack=False) for _ in range(2)]
    assert bodies(taken) == ["1", "2"]
    publish(ch, q, "3")
    publish(ch, q, "4")
    assert count(ch, q) == 2
    # requeued messages go back to the head ... where drop-head drops them
    taker.basic_nack(taken[-1][0].delivery_tag, multiple=True, requeue=True)
    # sync: a confirmed publish from the same channel is handled after the requeue
    taker.confirm_delivery()
    assert publish(taker, q, "5") == "ack"
    assert bodies(get_all(ch, q)) == ["4", "5"]


# ---------------------------------------------------------------------------
# reject-publish / reject-publish-dlx
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("overflow", ["reject-publish", "reject-publish-dlx"])
def test_reject_publish_nacks_the_new_message(conn, names, overflow):
    ch = confirm_channel(conn)
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-length": 2, "x-overflow": overflow})
    assert [publish(ch, q, str(i)) for i in range(4)] == ["ack", "ack", "nack", "nack"]
    assert bodies(get_all(ch, q)) == ["0", "1"]
    # room again
    assert publish(ch, q, "4") == "ack"


def test_reject_publish_with_mandatory_nacks_without_basic_return(conn, names):
    ch = confirm_channel(conn)
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    assert publish(ch, q, "fits", mandatory=True) == "ack"
    # pika attaches a basic.return that came before the nack to NackError.messages
    with pytest.raises(pika.exceptions.NackError) as info:
        ch.basic_publish("", q, b"refused", mandatory=True)
    assert info.value.messages == []


def test_reject_publish_mandatory_on_the_wire(raw, names):
    """Frame by frame: confirm.select, then a mandatory publish into a full reject-publish
    queue is answered by basic.nack only (no basic.return)."""
    q = names.queue()
    c = raw().handshake()
    c.open_channel(1)
    args = (shortstr("x-max-length") + b"I" + struct.pack(">i", 0)
            + shortstr("x-overflow") + b"S" + struct.pack(">I", 14) + b"reject-publish")
    c.send_method(1, 50, 10, struct.pack(">H", 0) + shortstr(q) + bytes([0])
                  + struct.pack(">I", len(args)) + args)
    assert c.read_method()[1:3] == (50, 11)
    c.send_method(1, 85, 10, bytes([0]))  # confirm.select
    assert c.read_method()[1:3] == (85, 11)
    c.publish(1, "", q, b"refused", mandatory=True)
    m = c.read_method()
    assert m[1:3] == (60, 120), m  # basic.nack, nothing before it
    # RabbitMQ 3.10.8 sends it as nack(delivery-tag=1, multiple=1, requeue=1); only the tag
    # matters here (multiple over tag 1 is the same set, requeue means nothing to a publisher)
    tag, bits = struct.unpack(">QB", m[3][:9])
    assert tag == 1
    # for comparison, an unroutable mandatory publish: basic.return, then basic.ack
    c.publish(1, "", "warren-test.no-such-queue", b"unroutable", mandatory=True)
    m = c.read_method()
    assert m[1:3] == (60, 50), m
    c.read_content(1)
    m = c.read_method()
    assert m[1:3] == (60, 80), m
    assert struct.unpack(">Q", m[3][:8])[0] == 2


def test_reject_publish_without_confirms_drops_silently(conn, names):
    ch = conn.channel()
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    for body in [b"1", b"2", b"3"]:
        ch.basic_publish("", q, body)
    assert bodies(get_all(ch, q)) == ["1"]
    assert ch.is_open


def test_reject_publish_nacks_even_if_other_queues_took_it(conn, names):
    ch = confirm_channel(conn)
    fan, full, other = names.exchange(), names.queue("full"), names.queue("other")
    ch.exchange_declare(fan, "fanout")
    ch.queue_declare(full, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    ch.queue_declare(other)
    ch.queue_bind(full, fan)
    ch.queue_bind(other, fan)
    assert publish(ch, "", "first", exchange=fan) == "ack"
    assert publish(ch, "", "second", exchange=fan) == "nack"
    assert bodies(get_all(ch, full)) == ["first"]
    assert bodies(get_all(ch, other)) == ["first", "second"]


def test_reject_publish_does_not_dead_letter(conn, names):
    ch = confirm_channel(conn)
    dead, q = with_dlx(ch, names, **{"x-max-length": 1, "x-overflow": "reject-publish"})
    assert [publish(ch, q, "a"), publish(ch, q, "b")] == ["ack", "nack"]
    drain(conn, 0.2)
    assert count(ch, dead) == 0


def test_reject_publish_dlx_dead_letters_the_refused_message(conn, names):
    ch = confirm_channel(conn)
    dead, q = with_dlx(ch, names, **{"x-max-length": 1, "x-overflow": "reject-publish-dlx"})
    assert [publish(ch, q, "kept"), publish(ch, q, "refused")] == ["ack", "nack"]
    m, p, body = poll_get(conn, ch, dead)
    assert body == b"refused"
    (death,) = p.headers["x-death"]
    assert (death["reason"], death["queue"], death["count"]) == ("maxlen", q, 1)
    assert bodies(get_all(ch, q)) == ["kept"]


def test_reject_publish_bytes(conn, names):
    ch = confirm_channel(conn)
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-length-bytes": 10, "x-overflow": "reject-publish"})
    # a message that would take the total over the limit is refused; a smaller one fits
    assert [publish(ch, q, "a" * 6), publish(ch, q, "b" * 6), publish(ch, q, "c" * 4)] == ["ack", "nack", "ack"]
    assert bodies(get_all(ch, q)) == ["a" * 6, "c" * 4]
    # alone bigger than the limit: refused even into an empty queue
    assert publish(ch, q, "x" * 11) == "nack"
    assert publish(ch, q, "x" * 10) == "ack"


def test_reject_publish_max_length_zero(conn, names):
    ch = confirm_channel(conn)
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    assert publish(ch, q, "a") == "nack"
    assert count(ch, q) == 0


def test_reject_publish_lets_requeued_messages_exceed_the_limit(conn, names):
    ch = confirm_channel(conn)
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-length": 2, "x-overflow": "reject-publish"})
    publish(ch, q, "1")
    publish(ch, q, "2")
    taker = conn.channel()
    taken = [taker.basic_get(q, auto_ack=False) for _ in range(2)]
    assert [publish(ch, q, "3"), publish(ch, q, "4"), publish(ch, q, "5")] == ["ack", "ack", "nack"]
    taker.basic_nack(taken[-1][0].delivery_tag, multiple=True, requeue=True)
    assert wait_count(conn, ch, q, 4)
    assert bodies(get_all(ch, q)) == ["1", "2", "3", "4"]


# ---------------------------------------------------------------------------
# invalid values (the full table is in test_ext_args.py)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, key, reason",
    [
        ({"x-overflow": "bad"}, "x-overflow", "invalid_overflow"),
        ({"x-overflow": "Drop-Head"}, "x-overflow", "invalid_overflow"),
        ({"x-overflow": 1}, "x-overflow", "{unacceptable_type,signedint}"),
        ({"x-max-length": -1}, "x-max-length", "{value_negative,-1}"),
        ({"x-max-length": "10"}, "x-max-length", '"expected integer, got longstr"'),
        ({"x-max-length-bytes": -1}, "x-max-length-bytes", "{value_negative,-1}"),
        ({"x-max-length-bytes": "1"}, "x-max-length-bytes", '"expected integer, got longstr"'),
    ],
)
def test_invalid_length_arguments(conn, names, args, key, reason):
    q = names.queue()
    text = f"PRECONDITION_FAILED - invalid arg '{key}' for queue '{q}' in vhost '{V}': {reason}"
    with channel_closed(406) as closed:
        conn.channel().queue_declare(q, arguments=args)
    assert closed.reply_text == text
