"""Malformed / unusual input on raw sockets (no client library).

Every reply code and text asserted here was recorded from RabbitMQ 3.10.8.
After each test a fresh pika connection must still work.
"""

import re
import socket
import struct

import pika
import pytest

from conftest import (
    BROKER_PASSWORD,
    BROKER_USER,
    BROKER_VHOST,
    FRAME_BODY,
    FRAME_END,
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
    PROTOCOL_HEADER,
    WAIT,
    longstr,
    parse_shortstr,
    params,
    shortstr,
    table,
    uid,
)


@pytest.fixture(autouse=True)
def broker_still_works():
    yield
    c = pika.BlockingConnection(params())
    try:
        ch = c.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("", q, b"alive")
        assert ch.basic_get(q, auto_ack=True)[2] == b"alive"
    finally:
        c.close()


def assert_closed(r, expected_code, expected_text, class_id=0, method_id=0, eof=True):
    """Expect connection.close(code, text, class, method), answer close-ok,
    then expect the server to drop the socket.

    (After a frame-level error RabbitMQ 3.10.8 closes the socket only ~3 s
    after its connection.close, whatever the client answers.)"""
    code, text, c_id, m_id = r.expect_connection_close()
    assert (code, text) == (expected_code, expected_text)
    assert (c_id, m_id) == (class_id, method_id)
    if eof:
        assert r.wait_eof(), "server did not close the socket after close-ok"
    return text


def queue_declare_args(name):
    return struct.pack(">H", 0) + shortstr(name) + b"\x00" + table({})


# ---------------------------------------------------------------------------
# protocol header
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"GARBAGE!",
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"\x00" * 8,
        b"xxAMQP\x00\x00\x09\x01",
    ],
    ids=["garbage", "http", "zeros", "junk-then-header"],
)
def test_garbage_before_protocol_header(raw, data):
    r = raw()
    r.send(data)
    assert r.read_bytes(8) == PROTOCOL_HEADER
    assert r.wait_eof()


@pytest.mark.parametrize(
    "header",
    [
        b"AMQP\x01\x01\x00\x0a",  # AMQP 0-10
        b"AMQP\x00\x00\x0a\x00",
        b"AMQP\x00\x00\x09\x00",  # 0-9-0
        b"AMQP\x00\x00\x09\x02",
        b"AMQP\x00\x01\x00\x00",  # AMQP 1.0 (no 1.0 support enabled)
        b"AMQP\x03\x01\x00\x00",  # AMQP 1.0 SASL
    ],
)
def test_wrong_protocol_header(raw, header):
    r = raw()
    r.send(header)
    assert r.read_bytes(8) == PROTOCOL_HEADER
    assert r.wait_eof()


def test_connection_start_and_tune(raw):
    r = raw().handshake()
    p = r.start_payload
    assert p[:2] == b"\x00\x09"  # version-major 0, version-minor 9
    off = 2
    (tlen,) = struct.unpack(">I", p[off : off + 4])
    off += 4 + tlen
    (mlen,) = struct.unpack(">I", p[off : off + 4])
    mechanisms = p[off + 4 : off + 4 + mlen].decode().split()
    off += 4 + mlen
    (llen,) = struct.unpack(">I", p[off : off + 4])
    locales = p[off + 4 : off + 4 + llen].decode().split()
    assert "PLAIN" in mechanisms and "AMQPLAIN" in mechanisms
    assert locales == ["en_US"]
    assert r.tune == (2047, 131072, 60)


def test_raw_wrong_password(raw):
    r = raw()
    r.send(PROTOCOL_HEADER)
    assert r.read_method()[1:3] == (10, 10)
    r.send_method(
        0, 10, 11,
        table({"capabilities": {"authentication_failure_close": True}})
        + shortstr("PLAIN") + longstr(b"\x00" + BROKER_USER.encode() + b"\x00wrong-" + uid().encode())
        + shortstr("en_US"),
    )
    code, text, c_id, m_id = r.expect_connection_close()
    assert (code, c_id, m_id) == (403, 0, 0)
    assert text == (
        "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. "
        "For details see the broker logfile."
    )


def test_raw_unknown_vhost(raw):
    r = raw()
    r.send(PROTOCOL_HEADER)
    r.read_method()
    r.send_method(0, 10, 11, table({}) + shortstr("PLAIN")
                  + longstr(f"\x00{BROKER_USER}\x00{BROKER_PASSWORD}") + shortstr("en_US"))
    assert r.read_method()[1:3] == (10, 30)
    r.send_method(0, 10, 31, struct.pack(">HIH", 2047, 131072, 0))
    vhost = uid("vhost")
    r.send_method(0, 10, 40, shortstr(vhost) + shortstr("") + b"\x00")
    assert_closed(r, 530, f"NOT_ALLOWED - vhost {vhost} not found", 10, 40)


# ---------------------------------------------------------------------------
# frame level errors
# ---------------------------------------------------------------------------


def test_frame_larger_than_frame_max(raw):
    r = raw().handshake()
    r.open_channel(1)
    r.send_frame(FRAME_METHOD, 1, b"\x00" * (131072 + 100))
    assert_closed(r, 501, "FRAME_ERROR - type 1, all octets = <<>>: {frame_too_large,131172,131064}")


@pytest.mark.parametrize("frame_max", [4096, 131072])
def test_frame_size_limit_boundary(raw, frame_max):
    """RabbitMQ tolerates payloads up to frame_max itself (8 bytes of
    'fudge' over frame_max - 8); frame_max + 1 is rejected, and the text
    reports the limit as frame_max - 8.  Only the 7-byte header plus a few
    payload bytes are sent, so the check is made on the declared size."""
    r = raw().handshake(frame_max=frame_max)
    assert r.tune[1] == 131072
    r.open_channel(1)
    r.send(struct.pack(">BHI", FRAME_BODY, 1, frame_max + 1) + b"x" * 10)
    assert_closed(
        r, 501,
        f"FRAME_ERROR - type 3, all octets = <<>>: {{frame_too_large,{frame_max + 1},{frame_max - 8}}}",
        eof=False,  # (test_frame_larger_than_frame_max waits for the close)
    )


@pytest.mark.parametrize("frame_max", [4096, 131072])
def test_body_frame_of_exactly_frame_max_accepted(raw, frame_max):
    r = raw().handshake(frame_max=frame_max)
    r.open_channel(1)
    q = uid()
    r.send_method(1, 50, 10, struct.pack(">H", 0) + shortstr(q) + b"\x04" + table({}))  # exclusive
    assert r.read_method()[1:3] == (50, 11)
    for size in (frame_max - 8, frame_max):
        body = bytes([size % 251]) * size
        r.publish(1, "", q, body, max_body_frame=size)
        got = r.basic_get(1, q)
        assert got is not None and got[2] == body


def test_bad_frame_end_byte(raw):
    r = raw().handshake()
    r.open_channel(1)
    payload = struct.pack(">HH", 50, 10) + struct.pack(">H", 0) + shortstr("abc") + b"\x00" + table({})
    r.send_frame(FRAME_METHOD, 1, payload, frame_end=0xAB)
    code, text, c_id, m_id = r.expect_connection_close()
    assert (code, c_id, m_id) == (501, 0, 0)
    # RabbitMQ pretty-prints the Erlang term, inserting a line break and
    # indentation; compare modulo whitespace
    assert re.sub(r"\s+", "", text) == (
        "FRAME_ERROR-type1,alloctets=<<0,50,0,10,0,0,3,97,98,99,0,0,0,0,0>>:{invalid_frame_end_marker,171}"
    ), text
    assert text.startswith("FRAME_ERROR - type 1, all octets = <<0,50,0,10,0,0,3,97,98,99,0,0,0,0,0>>: {invalid_frame_end_marker,")
    assert r.wait_eof()


def test_unknown_frame_type(raw):
    r = raw().handshake()
    r.open_channel(1)
    r.send_frame(9, 1, b"abc")
    assert_closed(r, 501, 'FRAME_ERROR - type 9, all octets = <<"abc">>: unknown_frame')


def test_method_frame_too_short(raw):
    r = raw().handshake()
    r.open_channel(1)
    r.send_frame(FRAME_METHOD, 1, b"\x00\x32")
    assert_closed(r, 501, "FRAME_ERROR - type 1, all octets = <<0,50>>: unknown_frame")


def test_truncated_method_arguments(raw):
    r = raw().handshake()
    r.open_channel(1)
    r.send_method(1, 50, 10, struct.pack(">H", 0) + shortstr("x"))
    assert_closed(r, 501, "FRAME_ERROR - cannot decode <<0,0,1,120>>", 50, 10)


@pytest.mark.parametrize("class_id, method_id", [(60, 999), (999, 10)])
def test_unknown_method_drops_connection(raw, class_id, method_id):
    """RabbitMQ 3.10.8's reader crashes on an unknown class/method id and
    drops the TCP connection without sending connection.close.  A broker
    that instead sends connection.close (503 COMMAND_INVALID or 540
    NOT_IMPLEMENTED) is accepted too."""
    r = raw().handshake()
    r.open_channel(1)
    r.send_method(1, class_id, method_id, b"")
    m = r.read_method()
    if m is not None:
        channel, cls, meth, args = m
        assert (channel, cls, meth) == (0, 10, 50), m
        (code,) = struct.unpack(">H", args[:2])
        assert code in (503, 540), m
        r.send_method(0, 10, 51)
    assert r.wait_eof()


# ---------------------------------------------------------------------------
# heartbeats
# ---------------------------------------------------------------------------


def test_heartbeat_on_channel_zero_is_fine(raw):
    r = raw().handshake()
    r.send_frame(FRAME_HEARTBEAT, 0, b"")
    r.open_channel(1)


@pytest.mark.parametrize("open_first", [True, False])
def test_heartbeat_on_nonzero_channel(raw, open_first):
    r = raw().handshake()
    if open_first:
        r.open_channel(3)
    r.send_frame(FRAME_HEARTBEAT, 3, b"")
    assert_closed(r, 505, "UNEXPECTED_FRAME - type 8, all octets = <<>>")


def test_heartbeat_with_payload(raw):
    r = raw().handshake()
    r.send_frame(FRAME_HEARTBEAT, 0, b"abc")
    assert_closed(r, 501, 'FRAME_ERROR - type 8, all octets = <<"abc">>: unknown_frame')


# ---------------------------------------------------------------------------
# channels
# ---------------------------------------------------------------------------


def test_method_on_unopened_channel(raw):
    r = raw().handshake()
    r.send_method(5, 50, 10, queue_declare_args("x"))
    assert_closed(r, 504, "CHANNEL_ERROR - expected 'channel.open'", 50, 10)


def test_method_on_closed_channel(raw):
    r = raw().handshake()
    r.open_channel(1)
    r.send_method(1, 20, 40, struct.pack(">H", 200) + shortstr("bye") + struct.pack(">HH", 0, 0))
    assert r.read_method()[:3] == (1, 20, 41)
    r.send_method(1, 50, 10, queue_declare_args("x"))
    assert_closed(r, 504, "CHANNEL_ERROR - expected 'channel.open'", 50, 10)


def test_channel_open_twice(raw):
    r = raw().handshake()
    r.open_channel(1)
    r.send_method(1, 20, 10, shortstr(""))
    assert_closed(r, 504, "CHANNEL_ERROR - second 'channel.open' seen", 20, 10)


@pytest.mark.parametrize("class_id, method_id, args", [
    (50, 10, queue_declare_args("x")),
    (20, 10, shortstr("")),
    (10, 40, shortstr("/") + shortstr("") + b"\x00"),
])
def test_wrong_method_on_channel_zero(raw, class_id, method_id, args):
    r = raw().handshake()
    r.send_method(0, class_id, method_id, args)
    assert_closed(r, 504, "CHANNEL_ERROR - unexpected method in connection state running", class_id, method_id)


def test_channel_numbers_above_channel_max_are_accepted(raw):
    """RabbitMQ 3.10.8 does not check channel *numbers* against the
    negotiated channel_max (2047): channel.open on 2048 and 65535 succeed."""
    r = raw().handshake()
    assert r.tune[0] == 2047
    for n in (2047, 2048, 65535):
        r.open_channel(n)
    r.send_method(65535, 50, 10, struct.pack(">H", 0) + shortstr("") + b"\x04" + table({}))
    m = r.read_method()
    assert m[:3] == (65535, 50, 11)


def test_channel_count_limited_by_negotiated_channel_max(raw):
    """What RabbitMQ enforces is the *number* of open channels."""
    r = raw().handshake(channel_max=3)
    for n in (1, 100, 65535):
        r.open_channel(n)
    r.send_method(7, 20, 10, shortstr(""))
    assert_closed(r, 530, "NOT_ALLOWED - number of channels opened (3) has reached the negotiated channel_max (3)")


def test_channel_count_limit_frees_on_close(raw):
    r = raw().handshake(channel_max=2)
    r.open_channel(1)
    r.open_channel(2)
    r.send_method(1, 20, 40, struct.pack(">H", 200) + shortstr("") + struct.pack(">HH", 0, 0))
    assert r.read_method()[:3] == (1, 20, 41)
    r.open_channel(3)


def test_server_channel_close_then_methods_ignored_until_close_ok(raw):
    r = raw().handshake()
    r.open_channel(1)
    missing = uid("missing")
    r.send_method(1, 50, 10, struct.pack(">H", 0) + shortstr(missing) + b"\x01" + table({}))  # passive
    m = r.read_method()
    assert m[:3] == (1, 20, 40)
    (code,) = struct.unpack(">H", m[3][:2])
    assert code == 404
    # anything but close-ok is discarded while the channel is closing
    r.send_method(1, 50, 10, queue_declare_args(uid()))
    r.publish(1, "", "nowhere", b"ignored")
    r.send_method(1, 20, 41)
    r.open_channel(1)
    r.send_method(1, 50, 10, struct.pack(">H", 0) + shortstr("") + b"\x04" + table({}))
    m = r.read_method()
    assert m[:3] == (1, 50, 11)


# ---------------------------------------------------------------------------
# content framing
# ---------------------------------------------------------------------------


def test_content_header_without_publish(raw):
    r = raw().handshake()
    r.open_channel(1)
    r.send_frame(FRAME_HEADER, 1, struct.pack(">HHQ", 60, 0, 1) + b"\x00\x00")
    assert_closed(r, 505, "UNEXPECTED_FRAME - expected method frame, got non method frame instead")


def test_body_without_publish(raw):
    r = raw().handshake()
    r.open_channel(1)
    r.send_frame(FRAME_BODY, 1, b"abc")
    assert_closed(r, 505, "UNEXPECTED_FRAME - expected method frame, got non method frame instead")


def test_method_instead_of_content_header(raw):
    r = raw().handshake()
    r.open_channel(1)
    r.send_method(1, 60, 40, struct.pack(">H", 0) + shortstr("") + shortstr("q") + b"\x00")
    r.send_method(1, 50, 10, queue_declare_args("x"))
    assert_closed(
        r, 505, "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame instead", 60, 40
    )


def test_content_header_with_wrong_class(raw):
    r = raw().handshake()
    r.open_channel(1)
    r.send_method(1, 60, 40, struct.pack(">H", 0) + shortstr("") + shortstr("q") + b"\x00")
    r.send_frame(FRAME_HEADER, 1, struct.pack(">HHQ", 50, 0, 1) + b"\x00\x00")
    assert_closed(r, 505, "UNEXPECTED_FRAME - expected content header for class 60, got one for class 50 instead", 60, 40)


def test_publish_immediate_not_implemented(raw):
    r = raw().handshake()
    r.open_channel(1)
    r.publish(1, "amq.direct", "k", b"x", immediate=True)
    assert_closed(r, 540, "NOT_IMPLEMENTED - immediate=true", 60, 40)


def test_zero_length_body_needs_no_body_frame(raw):
    r = raw().handshake()
    r.open_channel(1)
    q = uid()
    r.send_method(1, 50, 10, struct.pack(">H", 0) + shortstr(q) + b"\x04" + table({}))
    r.read_method()
    r.publish(1, "", q, b"")
    got = r.basic_get(1, q)
    assert got is not None and got[2] == b""


def _field(name, tag, raw_value):
    return shortstr(name) + tag + raw_value


ALL_FIELD_TYPES = [
    _field("bool", b"t", b"\x01"),
    _field("i8", b"b", struct.pack(">b", -5)),
    _field("u8", b"B", struct.pack(">B", 250)),
    _field("i16", b"s", struct.pack(">h", -300)),
    _field("u16", b"u", struct.pack(">H", 65000)),
    _field("i32", b"I", struct.pack(">i", -70000)),
    _field("u32", b"i", struct.pack(">I", 4000000000)),
    _field("i64", b"l", struct.pack(">q", -(1 << 40))),
    _field("f32", b"f", struct.pack(">f", 1.5)),
    _field("f64", b"d", struct.pack(">d", 2.25)),
    _field("dec", b"D", struct.pack(">Bi", 2, 12345)),
    _field("str", b"S", longstr(b"hello")),
    _field("bin", b"x", longstr(b"\x00\xff")),
    _field("arr", b"A", struct.pack(">I", 8) + b"I" + struct.pack(">i", 1) + b"V" + b"t\x00"),
    _field("ts", b"T", struct.pack(">Q", 1700000000)),
    _field("tbl", b"F", table({"k": "v"})),
    _field("void", b"V", b""),
]


@pytest.mark.parametrize("xtype", [None, "headers", "topic"])
def test_header_table_bytes_pass_through_unchanged(raw, xtype):
    """Every field type (including float/double and the unsigned ones pika
    cannot encode) comes back byte-for-byte identical."""
    hdr = b"".join(ALL_FIELD_TYPES)
    props = struct.pack(">H", 0x2000) + struct.pack(">I", len(hdr)) + hdr
    r = raw().handshake()
    r.open_channel(1)
    q = uid()
    r.send_method(1, 50, 10, struct.pack(">H", 0) + shortstr(q) + b"\x04" + table({}))
    assert r.read_method()[1:3] == (50, 11)
    x = ""
    if xtype:
        x = uid()
        r.send_method(1, 40, 10, struct.pack(">H", 0) + shortstr(x) + shortstr(xtype) + b"\x04" + table({}))  # auto-delete
        assert r.read_method()[1:3] == (40, 11)
        r.send_method(1, 50, 20, struct.pack(">H", 0) + shortstr(q) + shortstr(x) + shortstr("#") + b"\x00"
                      + table({"x-match": "any", "str": "hello"}))
        assert r.read_method()[1:3] == (50, 21)
    r.publish(1, x, q, b"abc", props=props)
    got = r.basic_get(1, q)
    assert got is not None
    args, got_props, body = got
    assert body == b"abc"
    assert got_props == props


def test_all_properties_bytes_pass_through_unchanged(raw):
    flags = 0xFFFC  # all 14 properties
    plist = (
        shortstr("text/plain") + shortstr("gzip")
        + table({"h": "v"})
        + bytes([2]) + bytes([9])
        + shortstr("corr") + shortstr("reply") + shortstr("60000") + shortstr("mid")
        + struct.pack(">Q", 1700000000)
        + shortstr("type") + shortstr(BROKER_USER) + shortstr("app") + shortstr("cluster")
    )
    props = struct.pack(">H", flags) + plist
    r = raw().handshake()
    r.open_channel(1)
    q = uid()
    r.send_method(1, 50, 10, struct.pack(">H", 0) + shortstr(q) + b"\x04" + table({}))
    r.read_method()
    r.publish(1, "", q, b"p", props=props)
    _, got_props, body = r.basic_get(1, q)
    assert (got_props, body) == (props, b"p")


# ---------------------------------------------------------------------------
# basic.consume details only visible on the wire
# ---------------------------------------------------------------------------


def test_server_generated_consumer_tag(raw):
    r = raw().handshake()
    r.open_channel(1)
    q = uid()
    r.send_method(1, 50, 10, struct.pack(">H", 0) + shortstr(q) + b"\x04" + table({}))
    r.read_method()
    r.consume(1, q, "")
    m = r.read_method()
    assert m[:3] == (1, 60, 21)
    tag = m[3][1 : 1 + m[3][0]].decode()
    assert re.fullmatch(r"amq\.ctag-[A-Za-z0-9_-]{22}", tag), tag


def test_duplicate_consumer_tag_on_same_channel(raw):
    r = raw().handshake()
    r.open_channel(1)
    q = uid()
    r.send_method(1, 50, 10, struct.pack(">H", 0) + shortstr(q) + b"\x04" + table({}))
    r.read_method()
    r.consume(1, q, "dup")
    assert r.read_method()[:3] == (1, 60, 21)
    r.consume(1, q, "dup")
    assert_closed(r, 530, "NOT_ALLOWED - attempt to reuse consumer tag 'dup'", 60, 20)


def test_same_consumer_tag_on_two_channels_is_fine(raw):
    r = raw().handshake()
    r.open_channel(1)
    r.open_channel(2)
    q = uid()
    r.send_method(1, 50, 10, struct.pack(">H", 0) + shortstr(q) + b"\x04" + table({}))
    r.read_method()
    r.consume(1, q, "same")
    assert r.read_method()[:3] == (1, 60, 21)
    r.consume(2, q, "same")
    assert r.read_method()[:3] == (2, 60, 21)


def test_pipelined_confirms_cover_every_publish(raw):
    r = raw().handshake()
    r.open_channel(1)
    q = uid()
    r.send_method(1, 50, 10, struct.pack(">H", 0) + shortstr(q) + b"\x04" + table({}))
    r.read_method()
    r.send_method(1, 85, 10, b"\x00")  # confirm.select
    assert r.read_method()[:3] == (1, 85, 11)
    n = 200
    for i in range(n):
        r.publish(1, "", q, str(i).encode())
    confirmed = 0
    last = 0
    while confirmed < n:
        m = r.read_method()
        assert m is not None and m[:3] == (1, 60, 80), m  # basic.ack
        tag, multiple = struct.unpack(">QB", m[3][:9])
        assert tag > last
        if not multiple:
            assert tag == last + 1
        last = tag
        confirmed = tag
    assert last == n


def test_tune_ok_with_too_small_frame_max_is_silently_dropped(raw):
    """Negotiation failures before connection.open get no connection.close:
    RabbitMQ just closes the socket (after a ~3 s delay).  Observed text in
    the log: "negotiated frame_max = 1000 is lower than the minimum allowed
    value (4096)"."""
    r = raw()
    r.send(PROTOCOL_HEADER)
    r.read_method()
    r.send_method(0, 10, 11, table({}) + shortstr("PLAIN")
                  + longstr(f"\x00{BROKER_USER}\x00{BROKER_PASSWORD}") + shortstr("en_US"))
    r.read_method()
    r.send_method(0, 10, 31, struct.pack(">HIH", 2047, 1000, 0))
    r.send_method(0, 10, 40, shortstr(BROKER_VHOST) + shortstr("") + b"\x00")
    assert r.read_method() is None


# ---------------------------------------------------------------------------
# hostile nesting: a small frame with deeply nested tables must not take the broker down
# (it once overflowed Warren's stack: amq-protocol parses nesting recursively)
# ---------------------------------------------------------------------------


def _nested_arrays_table(levels):
    inner = b"V"
    for _ in range(levels):
        inner = b"A" + struct.pack(">I", len(inner)) + inner
    entry = bytes([1]) + b"k" + inner
    return struct.pack(">I", len(entry)) + entry


def _refused_or_accepted(r, ok_method):
    """The broker either accepts the frame (RabbitMQ parses any depth) or closes the connection
    with a frame error (Warren caps nesting at 64 levels)."""
    m = r.read_method()
    assert m is not None, "connection dropped without a close"
    if m[1:3] == (10, 50):
        (code,) = struct.unpack(">H", m[3][:2])
        assert code == 501, m
        r.send_method(0, 10, 51)
    else:
        assert m[1:3] == ok_method, m


@pytest.mark.parametrize("levels", [5000])
def test_deeply_nested_declare_arguments(raw, names, levels):
    r = raw().handshake()
    r.open_channel(1)
    q = names.queue()
    r.send_method(1, 50, 10, struct.pack(">H", 0) + shortstr(q) + bytes([8]) + _nested_arrays_table(levels))
    _refused_or_accepted(r, (50, 11))
    # Everyone else is still served.
    other = raw().handshake()
    other.open_channel(1)


def test_deeply_nested_message_headers(raw, names):
    r = raw().handshake()
    r.open_channel(1)
    props = struct.pack(">H", 0x2000) + _nested_arrays_table(5000)
    r.publish(1, "", names.queue(), b"x", props=props)
    # A publish has no reply: follow it with a synchronous method to see whether the broker
    # is still talking to us.
    r.send_method(1, 85, 10, b"\x00")  # confirm.select
    m = r.read_method()
    assert m is not None, "connection dropped without a close"
    assert m[1:3] in ((85, 11), (10, 50), (20, 40)), m
    other = raw().handshake()
    other.open_channel(1)


# ---------------------------------------------------------------------------
# SASL mechanisms
# ---------------------------------------------------------------------------


def _amqplain(user, password):
    """AMQPLAIN's response: a field table without its length prefix."""
    return table({"LOGIN": user, "PASSWORD": password})[4:]


def _start_ok(r, mechanism, response):
    r.send(PROTOCOL_HEADER)
    assert r.read_method()[1:3] == (10, 10)
    r.send_method(
        0, 10, 11,
        table({"capabilities": {"authentication_failure_close": True}})
        + shortstr(mechanism) + longstr(response) + shortstr("en_US"),
    )


def test_amqplain_login(raw):
    r = raw()
    _start_ok(r, "AMQPLAIN", _amqplain(BROKER_USER, BROKER_PASSWORD))
    m = r.read_method()
    assert m[1:3] == (10, 30), m  # connection.tune: accepted


def test_amqplain_wrong_password(raw):
    r = raw()
    _start_ok(r, "AMQPLAIN", _amqplain(BROKER_USER, "wrong-" + uid()))
    code, text, c_id, m_id = r.expect_connection_close()
    assert (code, c_id, m_id) == (403, 0, 0)
    assert text == (
        "ACCESS_REFUSED - Login was refused using authentication mechanism AMQPLAIN. "
        "For details see the broker logfile."
    )


def test_unknown_sasl_mechanism(raw):
    """RabbitMQ 3.10.8 drops the socket without a connection.close."""
    r = raw()
    _start_ok(r, "NOSUCHMECH", b"\x00guest\x00guest")
    assert r.read_method() is None
    assert r.wait_eof()


# ---------------------------------------------------------------------------
# closing while the client still has frames in flight
#
# Clients write what they have buffered after (or around) their connection.close or close-ok:
# amqplib queues connection.close on channel 0 and keeps writing channel 1's buffered publishes
# behind it. What RabbitMQ 3.10.8 was seen to do:
#
# * after the client's connection.close it sends close-ok, then keeps reading (and discarding)
#   every frame until the client closes its side; it closes by itself only after the negotiated
#   heartbeat timeout, or 30 s with heartbeats off. Its own close is a reset (its listeners have
#   linger {true, 0}), even with nothing unread: a client that half-closes after close-ok gets RST
#   in answer to its FIN, never a FIN.
# * after a connection error of its own (a method-level one, not a frame error) it sends
#   connection.close and keeps reading and discarding until close-ok (or the same timeout), then
#   closes at once, again with a reset.
# * after a frame error it stops reading: the socket is reset ~3 s later whatever the client sends.
#
# So the client sees no reset before it has read the broker's close-ok (or sent its own), whatever
# it keeps sending; a broker that drops the socket with the client's frames unread resets it
# while the client still writes (EPIPE, ECONNRESET) and may lose the close-ok (amqplib then never
# calls its close callback). The reset RabbitMQ sends once the client is done is accepted.
# ---------------------------------------------------------------------------

CLOSE_PUBLISHES = 2000  # 1 KiB publishes around the close: more than the broker reads at once
AFTER_CLOSE_BYTES = 16 << 20  # sent after close-ok: more than the socket buffers can take unread


def _frame(ftype, channel, payload):
    return struct.pack(">BHI", ftype, channel, len(payload)) + payload + bytes([FRAME_END])


def _method(channel, class_id, method_id, args=b""):
    return _frame(FRAME_METHOD, channel, struct.pack(">HH", class_id, method_id) + args)


def _publishes(channel, count, size, routing_key="warren-test.nowhere"):
    """``count`` basic.publish + header + body frames (to the default exchange, unroutable)."""
    one = (
        _method(channel, 60, 40, struct.pack(">H", 0) + shortstr("") + shortstr(routing_key) + b"\x00")
        + _frame(FRAME_HEADER, channel, struct.pack(">HHQ", 60, 0, size) + b"\x00\x00")
        + _frame(FRAME_BODY, channel, b"p" * size)
    )
    return one * count


CONNECTION_CLOSE = _method(0, 10, 50, struct.pack(">H", 200) + shortstr("bye") + struct.pack(">HH", 0, 0))
CONNECTION_CLOSE_OK = _method(0, 10, 51)


def _in_flight_client(raw):
    """A handshaken raw client with channel 1 open and heartbeats off, whose send buffer is small,
    so that what it sends has to be read by the broker rather than sit in the client's kernel."""
    r = raw().handshake()
    r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    r.open_channel(1)
    return r


def _send(r, data, when):
    try:
        r.send(data)
    except OSError as e:  # EPIPE, ECONNRESET, or a timeout: the broker stopped reading
        pytest.fail(f"{when}: sending {len(data)} bytes failed with {e!r}")


def _read_method(r, when):
    try:
        m = r.read_method()
    except OSError as e:
        pytest.fail(f"{when}: {e!r}")
    assert m is not None, f"{when}: the broker closed or reset the connection"
    return m


def _connection_ends(r):
    """After the client is done, the broker closes within WAIT: EOF, or a reset (RabbitMQ's linger-0
    close). Nothing else may arrive (heartbeats are off)."""
    assert r.buf == b"", r.buf
    r.sock.settimeout(WAIT)
    try:
        data = r.sock.recv(65536)
    except ConnectionResetError:
        return "reset"
    except socket.timeout:
        pytest.fail(f"the broker kept the connection open more than {WAIT} s after the client was done")
    assert data == b"", f"unexpected data after the close: {data[:64]!r}"
    return "eof"


def _after_close_ok(r):
    """Frames the client still sends after reading close-ok are read and discarded, then the
    client closes its side and the broker closes the connection."""
    _send(r, _publishes(1, AFTER_CLOSE_BYTES >> 16, 1 << 16), "after close-ok")
    r.sock.shutdown(socket.SHUT_WR)
    _connection_ends(r)


@pytest.mark.parametrize("before", [CLOSE_PUBLISHES, 0], ids=["publishes-close-publishes", "close-publishes"])
def test_client_close_with_frames_in_flight(raw, before):
    r = _in_flight_client(raw)
    _send(
        r,
        _publishes(1, before, 1024) + CONNECTION_CLOSE + _publishes(1, CLOSE_PUBLISHES, 1024),
        "publishes and connection.close",
    )
    m = _read_method(r, "waiting for close-ok")
    assert m[:3] == (0, 10, 51), m
    _after_close_ok(r)


def test_broker_close_with_frames_in_flight(raw):
    """connection.close from the broker (504 for a queue.declare on channel 0: a method-level
    connection error) while publishes follow the bad method; the client's close-ok comes behind
    more publishes."""
    r = _in_flight_client(raw)
    bad = _method(0, 50, 10, queue_declare_args(uid()))
    _send(r, bad + _publishes(1, CLOSE_PUBLISHES, 1024), "bad method and publishes")
    m = _read_method(r, "waiting for connection.close")
    channel, cls, meth, args = m
    assert (channel, cls, meth) == (0, 10, 50), m
    (code,) = struct.unpack(">H", args[:2])
    text, off = parse_shortstr(args, 2)
    assert (code, text) == (504, "CHANNEL_ERROR - unexpected method in connection state running")
    assert struct.unpack(">HH", args[off : off + 4]) == (50, 10)
    # Until close-ok, whatever the client sends is read and discarded.
    _send(r, _publishes(1, AFTER_CLOSE_BYTES >> 16, 1 << 16), "after the broker's connection.close")
    _send(r, _publishes(1, CLOSE_PUBLISHES, 1024) + CONNECTION_CLOSE_OK, "publishes and close-ok")
    # RabbitMQ closes on close-ok (a reset); the client need not close its side.
    _connection_ends(r)
