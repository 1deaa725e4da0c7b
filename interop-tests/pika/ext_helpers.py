"""Helpers shared by the test_ext_*.py files (RabbitMQ queue extensions).

Not a test module (pytest only collects test_*.py).  Everything here works over
real sockets, like conftest's helpers:

* ``typed_props``: decode raw basic-properties bytes (as returned by
  ``RawAMQP.basic_get``) keeping the AMQP field-type tag of every header value
  and the order of table entries, which pika's decoder throws away.
* ``poll_get``: bounded polling with basic.get until a message arrives.
* ``count``: ready-message count through a passive queue.declare.
* ``queue_gone_by_publish``: wait (bounded) until a queue no longer exists,
  probing with mandatory publishes in confirm mode, which -- unlike a passive
  declare or basic.get -- do not renew an ``x-expires`` lease.
* ``declare_raw``: queue.declare with a hand-encoded argument table, for the
  integer/float/... field types pika cannot produce.
"""

import select
import struct
import time

import pika
import pika.exceptions

from conftest import WAIT, RawAMQP, shortstr


# --------------------------------------------------------------------------
# typed field-table decoding (RabbitMQ's dialect of AMQP 0-9-1 field types)
# --------------------------------------------------------------------------

_FIXED = {
    "b": ">b",  # byte (signed 8)
    "B": ">B",  # unsignedbyte
    "s": ">h",  # short (signed 16) -- RabbitMQ's "s", not a short string
    "u": ">H",  # unsignedshort
    "I": ">i",  # signedint (signed 32)
    "i": ">I",  # unsignedint
    "l": ">q",  # long (signed 64)
    "f": ">f",
    "d": ">d",
    "T": ">Q",  # timestamp, seconds
}


def _value(buf, off):
    tag = chr(buf[off])
    off += 1
    if tag in _FIXED:
        fmt = _FIXED[tag]
        return (tag, struct.unpack_from(fmt, buf, off)[0]), off + struct.calcsize(fmt)
    if tag in "Sx":
        n = struct.unpack_from(">I", buf, off)[0]
        return (tag, bytes(buf[off + 4 : off + 4 + n])), off + 4 + n
    if tag == "t":
        return (tag, bool(buf[off])), off + 1
    if tag == "D":
        scale, raw = struct.unpack_from(">Bi", buf, off)
        return (tag, (scale, raw)), off + 5
    if tag == "V":
        return (tag, None), off
    if tag == "F":
        v, off = typed_table(buf, off)
        return (tag, v), off
    if tag == "A":
        n = struct.unpack_from(">I", buf, off)[0]
        end = off + 4 + n
        off += 4
        items = []
        while off < end:
            v, off = _value(buf, off)
            items.append(v)
        return (tag, items), off
    raise AssertionError(f"unknown field type {tag!r}")


def typed_table(buf, off=0):
    """Decode a field table into an ordered list of (key, (type, value))."""
    n = struct.unpack_from(">I", buf, off)[0]
    end = off + 4 + n
    off += 4
    out = []
    while off < end:
        klen = buf[off]
        key = bytes(buf[off + 1 : off + 1 + klen]).decode()
        off += 1 + klen
        v, off = _value(buf, off)
        out.append((key, v))
    return out, off


_PROPS = [
    ("content_type", "s"), ("content_encoding", "s"), ("headers", "F"),
    ("delivery_mode", "o"), ("priority", "o"), ("correlation_id", "s"),
    ("reply_to", "s"), ("expiration", "s"), ("message_id", "s"),
    ("timestamp", "T"), ("type", "s"), ("user_id", "s"), ("app_id", "s"),
    ("cluster_id", "s"),
]


def typed_props(raw_props):
    """Decode raw basic properties (flags + list) into a dict; ``headers`` is
    an ordered list of (key, (type, value)); short strings are ``bytes``."""
    flags = struct.unpack_from(">H", raw_props, 0)[0]
    off = 2
    out = {}
    for i, (name, kind) in enumerate(_PROPS):
        if not flags & (1 << (15 - i)):
            continue
        if kind == "s":
            n = raw_props[off]
            out[name] = bytes(raw_props[off + 1 : off + 1 + n])
            off += 1 + n
        elif kind == "F":
            out[name], off = typed_table(raw_props, off)
        elif kind == "o":
            out[name] = raw_props[off]
            off += 1
        else:
            out[name] = struct.unpack_from(">Q", raw_props, off)[0]
            off += 8
    return out


def raw_get(queue, timeout=WAIT):
    """Bounded polling with a raw client's basic.get (no-ack).  Returns
    (get-ok args bytes, typed properties, body); fails at the deadline."""
    raw = RawAMQP().handshake()
    try:
        raw.open_channel(1)
        deadline = time.monotonic() + timeout
        while True:
            got = raw.basic_get(1, queue)
            if got is not None:
                args, props, body = got
                return args, typed_props(props), body
            assert time.monotonic() < deadline, f"nothing arrived in {queue}"
            # pace the loop by waiting on the socket (nothing is expected)
            select.select([raw.sock], [], [], 0.01)
    finally:
        raw.close()


def get_ok_fields(args):
    """(delivery_tag, redelivered, exchange, routing_key, message_count) of a
    raw basic.get-ok."""
    tag, redelivered = struct.unpack_from(">QB", args, 0)
    off = 9
    n = args[off]
    exchange = bytes(args[off + 1 : off + 1 + n]).decode()
    off += 1 + n
    n = args[off]
    rk = bytes(args[off + 1 : off + 1 + n]).decode()
    off += 1 + n
    count = struct.unpack_from(">I", args, off)[0]
    return tag, bool(redelivered), exchange, rk, count


# --------------------------------------------------------------------------
# pika polling helpers
# --------------------------------------------------------------------------


def poll_get(conn, channel, queue, timeout=WAIT, auto_ack=True):
    """basic.get until a message arrives (bounded); returns (method, props, body)."""
    deadline = time.monotonic() + timeout
    while True:
        method, props, body = channel.basic_get(queue, auto_ack=auto_ack)
        if method is not None:
            return method, props, body
        assert time.monotonic() < deadline, f"nothing arrived in {queue}"
        conn.process_data_events(time_limit=0.01)


def count(channel, queue):
    """Ready messages in ``queue`` (passive declare; renews x-expires!)."""
    return channel.queue_declare(queue, passive=True).method.message_count


def wait_count(conn, channel, queue, n, timeout=WAIT):
    """Poll (bounded) until ``queue`` holds exactly ``n`` ready messages."""
    deadline = time.monotonic() + timeout
    while True:
        c = count(channel, queue)
        if c == n:
            return True
        if time.monotonic() >= deadline:
            return False
        conn.process_data_events(time_limit=0.01)


def queue_gone_by_publish(conn, queue, timeout=WAIT):
    """Poll until ``queue`` is gone, with mandatory publishes on a confirm
    channel (a publish does not count as use of the queue for x-expires).
    Returns the seconds it took, or None at the deadline."""
    ch = conn.channel()
    ch.confirm_delivery()
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            ch.basic_publish("", queue, b"probe", mandatory=True)
        except pika.exceptions.UnroutableError:
            return time.monotonic() - start
        conn.process_data_events(time_limit=0.01)
    return None


# --------------------------------------------------------------------------
# raw queue.declare with typed arguments
# --------------------------------------------------------------------------


def encode_field(tag, value):
    if tag in _FIXED:
        return tag.encode() + struct.pack(_FIXED[tag], value)
    if tag in "Sx":
        if isinstance(value, str):
            value = value.encode()
        return tag.encode() + struct.pack(">I", len(value)) + value
    if tag == "t":
        return b"t" + bytes([1 if value else 0])
    if tag == "D":
        scale, raw = value
        return b"D" + struct.pack(">Bi", scale, raw)
    if tag == "V":
        return b"V"
    if tag in "AF":  # empty array / table
        return tag.encode() + struct.pack(">I", 0)
    raise ValueError(tag)


def declare_raw(raw, channel, queue, args, durable=False):
    """Send queue.declare with ``args`` = [(key, tag, value)].  Returns
    ("ok", None) or ("closed", (code, text))."""
    body = b"".join(shortstr(k) + encode_field(t, v) for k, t, v in args)
    raw.send_method(channel, 50, 10, struct.pack(">H", 0) + shortstr(queue)
                    + bytes([durable << 1]) + struct.pack(">I", len(body)) + body)
    m = raw.read_method()
    assert m is not None, "connection closed"
    if m[1:3] == (50, 11):
        return "ok", None
    assert m[1:3] == (20, 40), m
    code = struct.unpack(">H", m[3][:2])[0]
    text = bytes(m[3][3 : 3 + m[3][2]]).decode()
    raw.send_method(channel, 20, 41)
    return "closed", (code, text)

