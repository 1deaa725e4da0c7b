"""queue.declare argument validation: every RabbitMQ 3.10.8 reply text, observed.

All failures close the channel with 406 PRECONDITION_FAILED and the queue is not created.
Texts (Q = queue 'name' in vhost 'v'):
  invalid arg 'A' for Q: REASON                 (most arguments)
  invalid type 'T' for arg 'x-dead-letter-exchange' in Q     (only that argument)
  invalid arg 'A' for Q of queue type rabbit_classic_queue    (argument of another queue type)
Integer arguments accept every AMQP integer type (b B s u I i l) and refuse the others with
"expected integer, got <type>" (in double quotes); string arguments want a longstr; booleans
a bool.  Arguments are checked in a fixed order, not in table order (see
test_validation_order).  Unknown x- arguments are accepted and ignored.
"""

import decimal
import uuid

import pytest

from conftest import BROKER_VHOST, channel_closed
from ext_helpers import declare_raw

V = BROKER_VHOST


def arg_text(arg, q, reason):
    return f"PRECONDITION_FAILED - invalid arg '{arg}' for queue '{q}' in vhost '{V}': {reason}"


CASES = [
    # (id, arguments, declare flags, expected text with {q})
    ("max-priority-256", {"x-max-priority": 256}, {}, arg_text("x-max-priority", "{q}", "{{max_value_exceeded,256}}")),
    ("max-priority-negative", {"x-max-priority": -1}, {}, arg_text("x-max-priority", "{q}", "{{value_negative,-1}}")),
    ("max-priority-string", {"x-max-priority": "5"}, {}, arg_text("x-max-priority", "{q}", '"expected integer, got longstr"')),
    ("max-priority-bool", {"x-max-priority": True}, {}, arg_text("x-max-priority", "{q}", '"expected integer, got bool"')),
    ("max-priority-decimal", {"x-max-priority": decimal.Decimal("5.5")}, {}, arg_text("x-max-priority", "{q}", '"expected integer, got decimal"')),
    ("message-ttl-negative", {"x-message-ttl": -1}, {}, arg_text("x-message-ttl", "{q}", "{{value_negative,-1}}")),
    ("message-ttl-string", {"x-message-ttl": "100"}, {}, arg_text("x-message-ttl", "{q}", '"expected integer, got longstr"')),
    ("message-ttl-too-large", {"x-message-ttl": 315360000001}, {}, arg_text("x-message-ttl", "{q}", "{{value_too_large,315360000001}}")),
    ("expires-zero", {"x-expires": 0}, {}, arg_text("x-expires", "{q}", "{{value_zero,0}}")),
    ("expires-negative", {"x-expires": -5}, {}, arg_text("x-expires", "{q}", "{{value_negative,-5}}")),
    ("expires-string", {"x-expires": "100"}, {}, arg_text("x-expires", "{q}", '"expected integer, got longstr"')),
    ("expires-too-large", {"x-expires": 315360000001}, {}, arg_text("x-expires", "{q}", "{{value_too_large,315360000001}}")),
    ("max-length-negative", {"x-max-length": -1}, {}, arg_text("x-max-length", "{q}", "{{value_negative,-1}}")),
    ("max-length-string", {"x-max-length": "10"}, {}, arg_text("x-max-length", "{q}", '"expected integer, got longstr"')),
    ("max-length-bytes-negative", {"x-max-length-bytes": -1}, {}, arg_text("x-max-length-bytes", "{q}", "{{value_negative,-1}}")),
    ("max-length-bytes-string", {"x-max-length-bytes": "1"}, {}, arg_text("x-max-length-bytes", "{q}", '"expected integer, got longstr"')),
    ("dlrk-without-dlx", {"x-dead-letter-routing-key": "k"}, {}, arg_text("x-dead-letter-routing-key", "{q}", "routing_key_but_no_dlx_defined")),
    ("dlrk-not-a-string", {"x-dead-letter-exchange": "x", "x-dead-letter-routing-key": 5}, {}, arg_text("x-dead-letter-routing-key", "{q}", "{{unacceptable_type,signedint}}")),
    ("dlx-not-a-string", {"x-dead-letter-exchange": 5}, {}, "PRECONDITION_FAILED - invalid type 'signedint' for arg 'x-dead-letter-exchange' in queue '{q}' in vhost '" + V + "'"),
    ("sac-string", {"x-single-active-consumer": "true"}, {}, arg_text("x-single-active-consumer", "{q}", "{{unacceptable_type,longstr}}")),
    ("sac-int", {"x-single-active-consumer": 1}, {}, arg_text("x-single-active-consumer", "{q}", "{{unacceptable_type,signedint}}")),
    ("overflow-bad", {"x-overflow": "bad"}, {}, arg_text("x-overflow", "{q}", "invalid_overflow")),
    ("overflow-int", {"x-overflow": 1}, {}, arg_text("x-overflow", "{q}", "{{unacceptable_type,signedint}}")),
    ("queue-mode-bad", {"x-queue-mode": "bad"}, {}, arg_text("x-queue-mode", "{q}", "\"unsupported queue mode 'bad'\"")),
    ("queue-mode-int", {"x-queue-mode": 1}, {}, arg_text("x-queue-mode", "{q}", "{{unacceptable_type,signedint}}")),
    ("queue-type-bad", {"x-queue-type": "stream2"}, {}, arg_text("x-queue-type", "{q}", "\"unsupported queue type 'stream2'\"")),
    ("queue-type-int", {"x-queue-type": 1}, {}, arg_text("x-queue-type", "{q}", "{{unacceptable_type,signedint}}")),
    ("delivery-limit-on-classic", {"x-delivery-limit": 5}, {},
     "PRECONDITION_FAILED - invalid arg 'x-delivery-limit' for queue '{q}' in vhost '" + V + "' of queue type rabbit_classic_queue"),
    ("quorum-size-on-classic", {"x-quorum-initial-group-size": 3}, {},
     "PRECONDITION_FAILED - invalid arg 'x-quorum-initial-group-size' for queue '{q}' in vhost '" + V + "' of queue type rabbit_classic_queue"),
    ("max-priority-on-quorum", {"x-queue-type": "quorum", "x-max-priority": 5}, {"durable": True},
     "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue '{q}' in vhost '" + V + "' of queue type rabbit_quorum_queue"),
    ("dead-letter-strategy-bad", {"x-queue-type": "quorum", "x-dead-letter-strategy": "bad"}, {"durable": True},
     arg_text("x-dead-letter-strategy", "{q}", "invalid_dlx_strategy")),
    ("quorum-non-durable", {"x-queue-type": "quorum"}, {}, "PRECONDITION_FAILED - invalid property 'non-durable' for queue '{q}' in vhost '" + V + "'"),
]


@pytest.mark.parametrize("args, flags, text", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_argument(conn, names, args, flags, text):
    q = names.queue()
    expected = text.format(q=q)
    with channel_closed(406) as closed:
        conn.channel().queue_declare(q, arguments=args, **flags)
    assert closed.reply_text == expected
    assert conn.is_open
    with channel_closed(404):
        conn.channel().queue_declare(q, passive=True)


ACCEPTED = [
    {"x-max-priority": 0}, {"x-max-priority": 1}, {"x-max-priority": 255},
    {"x-message-ttl": 0}, {"x-message-ttl": 315360000000},
    {"x-expires": 1}, {"x-expires": 315360000000},
    {"x-max-length": 0}, {"x-max-length": 2**40}, {"x-max-length-bytes": 0},
    {"x-dead-letter-exchange": ""}, {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": ""},
    {"x-dead-letter-exchange": "warren-test.no-such-exchange"},
    {"x-single-active-consumer": True}, {"x-single-active-consumer": False},
    {"x-overflow": "drop-head"}, {"x-overflow": "reject-publish"}, {"x-overflow": "reject-publish-dlx"},
    {"x-queue-mode": "default"}, {"x-queue-mode": "lazy"},
    {"x-queue-type": "classic"},
    {"x-unknown-argument": "whatever"}, {"x-consumer-timeout": 500}, {"not-x-prefixed": 1},
]


@pytest.mark.parametrize("args", ACCEPTED, ids=lambda a: ",".join(f"{k}={v}" for k, v in a.items()))
def test_accepted_arguments(conn, names, args):
    q = names.queue()
    ch = conn.channel()
    ch.queue_declare(q, arguments=args)
    # and an identical redeclare is fine
    ch.queue_declare(q, arguments=args)


@pytest.mark.parametrize(
    "args, culprit",
    [
        ({"x-max-priority": 256, "x-max-length": -1, "x-message-ttl": -1, "x-expires": 0}, "x-expires"),
        ({"x-max-priority": 256, "x-max-length": -1, "x-message-ttl": -1}, "x-message-ttl"),
        ({"x-max-priority": 256, "x-max-length": -1}, "x-max-length"),
        ({"x-overflow": "bad", "x-max-priority": 256}, "x-max-priority"),
        ({"x-single-active-consumer": 1, "x-queue-mode": "bad", "x-overflow": "bad"}, "x-overflow"),
        ({"x-single-active-consumer": 1, "x-queue-mode": "bad"}, "x-queue-mode"),
        ({"x-delivery-limit": 1, "x-max-length": -1}, "x-max-length"),
    ],
)
def test_validation_order(conn, names, args, culprit):
    """RabbitMQ checks x-expires, x-message-ttl, x-dead-letter-*, x-max-length(-bytes),
    x-max-priority, x-overflow, x-queue-mode, x-single-active-consumer, x-queue-type in that
    order, whatever the table order; arguments of another queue type come after."""
    q = names.queue()
    with channel_closed(406) as closed:
        conn.channel().queue_declare(q, arguments=args)
    assert closed.reply_text.startswith(
        f"PRECONDITION_FAILED - invalid arg '{culprit}' for queue '{q}' in vhost '{V}'"), closed.reply_text


INT_TYPES = [("b", 5), ("B", 5), ("s", 5), ("u", 5), ("I", 5), ("i", 5), ("l", 5)]
NON_INT_TYPES = [
    ("f", 5.0, "float"), ("d", 5.0, "double"), ("D", (1, 55), "decimal"), ("T", 5, "timestamp"),
    ("x", b"5", "binary"), ("V", None, "void"), ("A", None, "array"), ("F", None, "table"),
    ("t", True, "bool"), ("S", "5", "longstr"),
]


def raw_declare(raw, args):
    c = raw().handshake()
    c.open_channel(1)
    q = f"warren-test.raw.{uuid.uuid4().hex}"
    result = declare_raw(c, 1, q, args)
    if result[0] == "ok":
        c.send_method(1, 50, 40, b"\x00\x00" + bytes([len(q)]) + q.encode() + b"\x00")  # queue.delete
        c.read_method()
    return q, result


@pytest.mark.parametrize("arg", ["x-max-priority", "x-message-ttl", "x-expires", "x-max-length",
                                 "x-max-length-bytes"])
@pytest.mark.parametrize("tag, value", INT_TYPES, ids=[t for t, _ in INT_TYPES])
def test_integer_arguments_accept_every_integer_type(raw, arg, tag, value):
    q, result = raw_declare(raw, [(arg, tag, value)])
    assert result == ("ok", None)


@pytest.mark.parametrize("arg", ["x-max-priority", "x-message-ttl", "x-max-length"])
@pytest.mark.parametrize("tag, value, name", NON_INT_TYPES, ids=[t for t, _, _ in NON_INT_TYPES])
def test_integer_arguments_refuse_other_types(raw, arg, tag, value, name):
    q, result = raw_declare(raw, [(arg, tag, value)])
    assert result == ("closed", (406, arg_text(arg, q, f'"expected integer, got {name}"')))


RAW_TYPE_NAMES = [
    ("b", 5, "byte"), ("B", 5, "unsignedbyte"), ("s", 5, "short"), ("u", 5, "unsignedshort"),
    ("I", 5, "signedint"), ("i", 5, "unsignedint"), ("l", 5, "long"), ("f", 5.0, "float"),
    ("d", 5.0, "double"), ("D", (1, 55), "decimal"), ("T", 5, "timestamp"), ("x", b"v", "binary"),
    ("V", None, "void"), ("A", None, "array"), ("F", None, "table"),
]


@pytest.mark.parametrize("tag, value, name", RAW_TYPE_NAMES, ids=[t for t, _, _ in RAW_TYPE_NAMES])
def test_type_names_in_unacceptable_type(raw, tag, value, name):
    q, result = raw_declare(raw, [("x-overflow", tag, value)])
    assert result == ("closed", (406, arg_text("x-overflow", q, f"{{unacceptable_type,{name}}}")))
    q, result = raw_declare(raw, [("x-single-active-consumer", tag, value)])
    assert result == ("closed", (406, arg_text("x-single-active-consumer", q, f"{{unacceptable_type,{name}}}")))
    q, result = raw_declare(raw, [("x-dead-letter-exchange", tag, value)])
    assert result == ("closed", (406, f"PRECONDITION_FAILED - invalid type '{name}' for arg "
                                      f"'x-dead-letter-exchange' in queue '{q}' in vhost '{V}'"))


def test_binary_is_not_a_string_argument(raw):
    q, result = raw_declare(raw, [("x-overflow", "x", b"reject-publish")])
    assert result == ("closed", (406, arg_text("x-overflow", q, "{unacceptable_type,binary}")))
    q, result = raw_declare(raw, [("x-queue-mode", "x", b"lazy")])
    assert result == ("closed", (406, arg_text("x-queue-mode", q, "{unacceptable_type,binary}")))
