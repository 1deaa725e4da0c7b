"""Connection and channel level behaviour, as seen through pika."""

import pika
import pika.exceptions
import pytest

from conftest import params, uid


EXPECTED_CAPABILITIES = [
    "publisher_confirms",
    "exchange_exchange_bindings",
    "basic.nack",
    "consumer_cancel_notify",
    "connection.blocked",
    "consumer_priorities",
    "authentication_failure_close",
    "per_consumer_qos",
    "direct_reply_to",
]


def test_server_properties_capabilities(conn):
    props = conn._impl.server_properties
    caps = props["capabilities"]
    for cap in EXPECTED_CAPABILITIES:
        assert caps.get(cap) is True, (cap, caps)
    # the informational fields every RabbitMQ client library logs
    for key in ("product", "version", "platform", "copyright", "information"):
        assert isinstance(props.get(key), str) and props[key], (key, props)
    # Clients switch on these: kombu (Celery) uses RabbitMQ's prefetch semantics only for product
    # "RabbitMQ" 3.3 to 4.0, and stalls behind tasks with a countdown otherwise.
    assert props["product"] == "RabbitMQ", props
    major, minor = (int(x) for x in props["version"].split(".")[:2])
    assert (3, 3) <= (major, minor) < (4, 0), props["version"]
    # pika's convenience accessors agree
    assert conn.publisher_confirms_supported
    assert conn.basic_nack_supported
    assert conn.consumer_cancel_notify_supported
    assert conn.exchange_exchange_bindings_supported


def test_negotiated_tuning(connect):
    proposed = {}

    def heartbeat(_conn, server_value):
        proposed["heartbeat"] = server_value
        return server_value

    # Offer pika's maxima so the negotiated value is whatever the server proposes.
    c = connect(frame_max=pika.spec.FRAME_MAX_SIZE, channel_max=65535, heartbeat=heartbeat)
    assert c._impl.params.frame_max == 131072
    assert c._impl.params.channel_max == 2047
    assert proposed["heartbeat"] == 60
    assert c._impl.params.heartbeat == 60


def test_client_can_lower_frame_max_and_channel_max(connect, names):
    c = connect(frame_max=4096, channel_max=16, heartbeat=0)
    assert c._impl.params.frame_max == 4096
    assert c._impl.params.channel_max == 16
    # a body much larger than frame_max still goes through intact
    ch = c.channel()
    q = names.queue()
    ch.queue_declare(q)
    body = bytes(range(256)) * 200
    ch.basic_publish("", q, body)
    method, _, got = ch.basic_get(q, auto_ack=True)
    assert method is not None and got == body


def test_wrong_password_is_access_refused():
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as info:
        pika.BlockingConnection(params(credentials=pika.PlainCredentials("guest", "wrong-" + uid())))
    text = str(info.value)
    assert "(403)" in text, text
    assert (
        "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. "
        "For details see the broker logfile." in text
    ), text


def test_unknown_user_is_access_refused():
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as info:
        pika.BlockingConnection(params(credentials=pika.PlainCredentials(uid("user"), "x")))
    assert "(403)" in str(info.value)
    assert "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN" in str(info.value)


def test_unknown_vhost_is_not_allowed():
    vhost = uid("vhost")
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as info:
        pika.BlockingConnection(params(virtual_host=vhost))
    text = str(info.value)
    assert "(530)" in text, text
    assert f"NOT_ALLOWED - vhost {vhost} not found" in text, text


def test_connection_open_close_and_reconnect(connect):
    c = connect()
    assert c.is_open
    c.close()
    assert c.is_closed
    c2 = connect()
    assert c2.is_open
    c2.channel().exchange_declare("amq.direct", passive=True)


def test_channel_open_close(conn):
    ch = conn.channel()
    assert ch.is_open
    n = ch.channel_number
    ch.close()
    assert ch.is_closed
    with pytest.raises(pika.exceptions.ChannelWrongStateError):
        ch.queue_declare("", exclusive=True)
    # the channel number can be reused and the connection is unaffected
    ch2 = conn.channel(channel_number=n)
    assert ch2.is_open
    ch2.exchange_declare("amq.direct", passive=True)


def test_many_channels(conn):
    channels = [conn.channel() for _ in range(300)]
    numbers = {c.channel_number for c in channels}
    assert len(numbers) == 300
    for c in channels[::7]:
        r = c.queue_declare("", exclusive=True)
        assert r.method.queue.startswith("amq.gen-")
    for c in channels:
        c.close()
    assert conn.is_open
    conn.channel().exchange_declare("amq.fanout", passive=True)


def test_high_channel_number(connect):
    c = connect(channel_max=2047)
    ch = c.channel(channel_number=2047)
    assert ch.channel_number == 2047
    ch.exchange_declare("amq.direct", passive=True)


def test_channel_error_leaves_connection_and_other_channels_usable(conn):
    a = conn.channel()
    b = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        a.queue_declare(uid("missing"), passive=True)
    assert a.is_closed
    assert b.is_open and conn.is_open
    b.exchange_declare("amq.topic", passive=True)

