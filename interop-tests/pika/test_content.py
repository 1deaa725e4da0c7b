"""Content pass-through: properties, header tables and bodies."""

import datetime
import decimal
import hashlib
import os

import pika
import pytest

from conftest import BROKER_USER, channel_closed, get_all, wait_for


def all_properties(user_id=BROKER_USER):
    return pika.BasicProperties(
        content_type="application/x-warren-test",
        content_encoding="identity",
        headers={"h1": "v1", "h2": 2},
        delivery_mode=2,
        priority=7,
        correlation_id="corr-123",
        reply_to="reply-queue",
        expiration="600000",
        message_id="msg-456",
        timestamp=1700000000,
        type="test.type",
        user_id=user_id,
        app_id="warren-interop",
        cluster_id="cluster-x",
    )


PROPERTY_NAMES = [
    "content_type", "content_encoding", "headers", "delivery_mode", "priority",
    "correlation_id", "reply_to", "expiration", "message_id", "timestamp",
    "type", "user_id", "app_id", "cluster_id",
]


def assert_same_properties(got, sent):
    for name in PROPERTY_NAMES:
        assert getattr(got, name) == getattr(sent, name), name


def test_all_properties_round_trip_get(ch, names):
    q = names.queue()
    ch.queue_declare(q)
    props = all_properties()
    ch.basic_publish("", q, b"body", props)
    (m, got, body), = get_all(ch, q)
    assert body == b"body"
    assert_same_properties(got, props)


def test_all_properties_round_trip_consume(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q)
    props = all_properties()
    received = []
    ch.basic_consume(q, lambda c, m, p, b: received.append((p, b)), auto_ack=True)
    ch.basic_publish("", q, b"body", props)
    assert wait_for(conn, lambda: received)
    got, body = received[0]
    assert body == b"body"
    assert_same_properties(got, props)


def test_no_properties(ch, names):
    q = names.queue()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"bare")
    (m, got, body), = get_all(ch, q)
    for name in PROPERTY_NAMES:
        assert getattr(got, name) is None, name


def test_user_id_must_match_authenticated_user(conn, names):
    q = names.queue()
    ch = conn.channel()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"x", pika.BasicProperties(user_id="someone-else"))
    with channel_closed(
        406, f"PRECONDITION_FAILED - user_id property set to 'someone-else' but authenticated user was '{BROKER_USER}'"
    ):
        ch.exchange_declare("amq.direct", passive=True)
    assert conn.channel().queue_declare(q, passive=True).method.message_count == 0


HEADER_VALUES = {
    "str": "hello",
    "unicode": "héllo wörld ✓",
    "empty_str": "",
    "bytes": b"\x00\x01\xfe\xff",
    "int_small": 42,
    "int_negative": -7,
    "int32_max": 2**31 - 1,
    "int32_min": -(2**31),
    "int_large": 2**40,
    "int64_max": 2**63 - 1,
    "int_large_negative": -(2**50),
    "true": True,
    "false": False,
    "decimal": decimal.Decimal("3.14"),
    "decimal_int": decimal.Decimal("12"),
    "datetime": datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=datetime.timezone.utc),
    "nested": {"a": 1, "b": {"c": "deep", "d": [1, "two"]}},
    "empty_table": {},
    "list": [1, "two", True, None, {"k": "v"}, [3, 4], b"\xff"],
    "empty_list": [],
    "none": None,
}


def test_header_field_types_round_trip(ch, names):
    q = names.queue()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"h", pika.BasicProperties(headers=HEADER_VALUES))
    (m, got, body), = get_all(ch, q)
    assert got.headers == HEADER_VALUES
    # type fidelity (== would accept 1 for True); pika decodes 64-bit ints
    # as its own int subclass, so compare with isinstance
    for key, value in HEADER_VALUES.items():
        assert isinstance(got.headers[key], type(value)), key
        assert isinstance(got.headers[key], bool) == isinstance(value, bool), key


def test_header_field_types_through_headers_exchange(ch, names):
    x, q = names.exchange(), names.queue()
    ch.exchange_declare(x, exchange_type="headers")
    ch.queue_declare(q)
    ch.queue_bind(q, x, arguments={"x-match": "all", "str": "hello", "int_large": 2**40})
    ch.basic_publish(x, "", b"h", pika.BasicProperties(headers=HEADER_VALUES))
    (m, got, body), = get_all(ch, q)
    assert got.headers == HEADER_VALUES


def _body(n):
    # deterministic, non-repeating-ish content so misplaced chunks are caught
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(i.to_bytes(8, "big")).digest()
        i += 1
    return bytes(out[:n])


BODY_SIZES = [0, 1, 131072 - 8, 131072 - 7, 131072 + 1, 1024 * 1024, 10 * 1024 * 1024]


@pytest.mark.parametrize("size", BODY_SIZES)
def test_body_sizes_get(ch, names, size):
    q = names.queue()
    ch.queue_declare(q)
    body = _body(size)
    ch.basic_publish("", q, body)
    m, props, got = ch.basic_get(q, auto_ack=True)
    assert m is not None
    assert len(got) == size
    assert got == body


@pytest.mark.parametrize("size", [0, 131072 - 8, 3 * 131072 + 5, 1024 * 1024])
def test_body_sizes_consume(conn, ch, names, size):
    q = names.queue()
    ch.queue_declare(q)
    body = _body(size)
    received = []
    ch.basic_consume(q, lambda c, m, p, b: received.append(b), auto_ack=True)
    ch.basic_publish("", q, body)
    ch.basic_publish("", q, b"after")
    assert wait_for(conn, lambda: len(received) == 2)
    assert received[0] == body and received[1] == b"after"


def test_interleaved_large_messages_on_two_channels(conn, names):
    q = names.queue()
    a, b = conn.channel(), conn.channel()
    a.queue_declare(q)
    big_a = os.urandom(400000)
    big_b = os.urandom(300000)
    a.basic_publish("", q, big_a)
    b.basic_publish("", q, big_b)
    got = sorted(x for _, _, x in get_all(a, q))
    assert got == sorted([big_a, big_b])


MAX_MESSAGE_SIZE = 128 * 1024 * 1024  # RabbitMQ 3.10's default max_message_size, and Warren's


def test_message_of_exactly_max_size_is_accepted(ch, names):
    q = names.queue()
    ch.queue_declare(q)
    body = b"m" * MAX_MESSAGE_SIZE
    ch.basic_publish("", q, body)
    got = get_all(ch, q)
    assert len(got) == 1 and got[0][2] == body


def test_message_over_max_size_closes_the_channel(conn, names):
    q = names.queue()
    conn.channel().queue_declare(q)
    ch = conn.channel()
    size = MAX_MESSAGE_SIZE + 1
    with channel_closed(
        406, f"PRECONDITION_FAILED - message size {size} is larger than configured max size {MAX_MESSAGE_SIZE}"
    ):
        ch.basic_publish("", q, b"x" * size)
        # The close is asynchronous to the publish: a synchronous call on the channel waits for it.
        ch.queue_declare(q, passive=True)
    # The connection and the queue are unaffected.
    assert conn.channel().queue_declare(q, passive=True).method.message_count == 0
