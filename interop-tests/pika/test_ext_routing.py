"""RabbitMQ routing extensions: direct reply-to (amq.rabbitmq.reply-to) and the consistent hash
exchange (x-consistent-hash, plugin rabbitmq_consistent_hash_exchange).

Both are checked against RabbitMQ 3.10.8 (the consistent hash plugin must be enabled:
scripts/rabbitmq-interop.sh does it).
"""

import collections
import re
import time
import uuid

import pika
import pika.exceptions
import pytest

from conftest import BROKER_VHOST, channel_closed, drain, get_all, wait_for
from ext_helpers import count, poll_get, wait_count

V = BROKER_VHOST
REPLY_TO = "amq.rabbitmq.reply-to"


def confirm_channel(conn):
    ch = conn.channel()
    ch.confirm_delivery()
    return ch


# ---------------------------------------------------------------------------
# direct reply-to
# ---------------------------------------------------------------------------


def test_direct_reply_to_rpc(connect, names):
    client, server = connect(), connect()
    service = names.queue("rpc")
    sch = confirm_channel(server)
    sch.queue_declare(service)
    cch = client.channel()
    replies = []
    tag = cch.basic_consume(REPLY_TO, lambda c, m, p, b: replies.append((m, p, b)), auto_ack=True)
    cch.basic_publish("", service, b"request",
                      pika.BasicProperties(reply_to=REPLY_TO, correlation_id="c-1"))
    m, p, body = poll_get(server, sch, service)
    assert body == b"request"
    # the server sees a per-channel address in reply_to
    assert re.fullmatch(r"amq\.rabbitmq\.reply-to\.[A-Za-z0-9+/=._-]+", p.reply_to), p.reply_to
    assert p.correlation_id == "c-1"
    sch.basic_publish("", p.reply_to, b"response",
                      pika.BasicProperties(correlation_id=p.correlation_id, headers={"h": 1}))
    assert wait_for(client, lambda: replies)
    (dm, dp, dbody), = replies
    assert dbody == b"response"
    assert (dm.consumer_tag, dm.exchange, dm.routing_key, dm.redelivered) == (tag, "", p.reply_to, False)
    assert (dp.correlation_id, dp.headers) == ("c-1", {"h": 1})
    # the address is stable for the channel: a second request carries the same one
    cch.basic_publish("", service, b"again", pika.BasicProperties(reply_to=REPLY_TO))
    assert poll_get(server, sch, service)[1].reply_to == p.reply_to


def test_direct_reply_to_address_declares_passively(connect):
    client, other = connect(), connect()
    cch = client.channel()
    cch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    probe = uuid.uuid4().hex
    r = other.channel().queue_declare(REPLY_TO, passive=True)
    assert (r.method.queue, r.method.message_count, r.method.consumer_count) == (REPLY_TO, 0, 1)
    bogus = f"{REPLY_TO}.{probe}"
    with channel_closed(404, f"NOT_FOUND - no queue '{bogus}' in vhost '{V}'"):
        other.channel().queue_declare(bogus, passive=True)


def test_reply_consumer_must_be_no_ack(conn):
    with channel_closed(406, "PRECONDITION_FAILED - reply consumer cannot acknowledge") as closed:
        conn.channel().basic_consume(REPLY_TO, lambda *a: None, auto_ack=False)
    assert closed.reply_text == "PRECONDITION_FAILED - reply consumer cannot acknowledge"


def test_only_one_reply_consumer_per_channel(conn):
    ch = conn.channel()
    ch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    with channel_closed(406) as closed:
        ch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    assert closed.reply_text == "PRECONDITION_FAILED - reply consumer already set"
    # another channel of the same connection may have its own
    conn.channel().basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)


def test_publish_with_reply_to_needs_a_reply_consumer(conn, names):
    q = names.queue()
    conn.channel().queue_declare(q)
    ch = conn.channel()
    with channel_closed(406) as closed:
        ch.basic_publish("", q, b"x", pika.BasicProperties(reply_to=REPLY_TO))
        ch.queue_declare(q, passive=True)
    assert closed.reply_text == "PRECONDITION_FAILED - fast reply consumer does not exist"
    assert count(conn.channel(), q) == 0
    # after the reply consumer is cancelled it is the same
    ch = conn.channel()
    tag = ch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    ch.basic_cancel(tag)
    with channel_closed(406, "PRECONDITION_FAILED - fast reply consumer does not exist"):
        ch.basic_publish("", q, b"x", pika.BasicProperties(reply_to=REPLY_TO))
        ch.queue_declare(q, passive=True)


@pytest.mark.parametrize("reply_to", [f"{REPLY_TO}.mine", f"{REPLY_TO}X", "amq.rabbitmq.reply"])
def test_other_reply_to_values_pass_unchanged(conn, names, reply_to):
    ch = conn.channel()
    ch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    q = names.queue()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"x", pika.BasicProperties(reply_to=reply_to))
    (_, p, _), = get_all(ch, q)
    assert p.reply_to == reply_to


def test_replies_only_through_the_default_exchange(connect, names):
    client, server = connect(), connect()
    service = names.queue("rpc")
    sch = confirm_channel(server)
    sch.queue_declare(service)
    cch = client.channel()
    replies = []
    cch.basic_consume(REPLY_TO, lambda c, m, p, b: replies.append(b), auto_ack=True)
    cch.basic_publish("", service, b"req", pika.BasicProperties(reply_to=REPLY_TO))
    address = poll_get(server, sch, service)[1].reply_to
    with pytest.raises(pika.exceptions.UnroutableError):
        sch.basic_publish("amq.direct", address, b"via-direct", mandatory=True)
    sch.basic_publish("", address, b"via-default")
    assert wait_for(client, lambda: replies)
    drain(client, 0.1)
    assert replies == [b"via-default"]


def test_replies_after_the_requester_left_are_unroutable(connect, names):
    client, server = connect(), connect()
    service = names.queue("rpc")
    sch = confirm_channel(server)
    sch.queue_declare(service)
    cch = client.channel()
    tag = cch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    cch.basic_publish("", service, b"req", pika.BasicProperties(reply_to=REPLY_TO))
    address = poll_get(server, sch, service)[1].reply_to
    cch.basic_cancel(tag)
    with pytest.raises(pika.exceptions.UnroutableError):
        sch.basic_publish("", address, b"late", mandatory=True)
    # a made-up address is unroutable too (not an error)
    with pytest.raises(pika.exceptions.UnroutableError):
        sch.basic_publish("", f"{REPLY_TO}.bogus", b"x", mandatory=True)
    assert sch.is_open


# ---------------------------------------------------------------------------
# consistent hash exchange
# ---------------------------------------------------------------------------


def test_consistent_hash_weights_and_stickiness(conn, names):
    ch = conn.channel()
    x, light, heavy = names.exchange("chx"), names.queue("w1"), names.queue("w3")
    ch.exchange_declare(x, "x-consistent-hash")
    ch.queue_declare(light)
    ch.queue_declare(heavy)
    ch.queue_bind(light, x, "1")
    ch.queue_bind(heavy, x, "3")
    keys = [uuid.uuid4().hex for _ in range(4000)]
    for k in keys:
        ch.basic_publish(x, k, k.encode())
    assert wait_for(conn, lambda: count(ch, light) + count(ch, heavy) == 4000)
    n_light, n_heavy = count(ch, light), count(ch, heavy)
    # expected 1000 : 3000; generous bounds
    assert 600 <= n_light <= 1400, (n_light, n_heavy)
    # the same routing key always lands in the same queue
    sticky = keys[:50]
    for _ in range(3):
        for k in sticky:
            ch.basic_publish(x, k, b"again:" + k.encode())
    assert wait_for(conn, lambda: count(ch, light) + count(ch, heavy) == 4150)
    where = collections.defaultdict(list)
    for q in (light, heavy):
        for _, _, body in get_all(ch, q):
            key = body.decode().split(":")[-1]
            where[key].append(q)
    for k in sticky:
        assert len(set(where[k])) == 1 and len(where[k]) == 4, (k, where[k])


def test_consistent_hash_with_no_bindings_is_unroutable(conn, names):
    ch = confirm_channel(conn)
    x = names.exchange("chx")
    ch.exchange_declare(x, "x-consistent-hash")
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish(x, "k", b"x", mandatory=True)


@pytest.mark.parametrize(
    "key, text",
    [
        ("abc", 'PRECONDITION_FAILED - The binding key must be an integer: <<"abc">>'),
        ("1.5", 'PRECONDITION_FAILED - The binding key must be an integer: <<"1.5">>'),
        ("", "PRECONDITION_FAILED - The binding key must be an integer: <<>>"),
        ("0", "PRECONDITION_FAILED - The binding key must be greater than 0"),
        ("-1", "PRECONDITION_FAILED - The binding key must be greater than 0"),
    ],
)
def test_consistent_hash_binding_key_must_be_a_positive_integer(conn, names, key, text):
    x, q = names.exchange("chx"), names.queue()
    ch = conn.channel()
    ch.exchange_declare(x, "x-consistent-hash")
    ch.queue_declare(q)
    with channel_closed(406) as closed:
        conn.channel().queue_bind(q, x, key)
    assert closed.reply_text == text


def test_consistent_hash_on_a_header(conn, names):
    ch = conn.channel()
    x, a, b = names.exchange("chx"), names.queue("a"), names.queue("b")
    ch.exchange_declare(x, "x-consistent-hash", arguments={"hash-header": "hh"})
    for q in (a, b):
        ch.queue_declare(q)
        ch.queue_bind(q, x, "1")
    for i in range(40):
        ch.basic_publish(x, f"rk{i}", b"same", pika.BasicProperties(headers={"hh": "one-value"}))
    assert wait_for(conn, lambda: count(ch, a) + count(ch, b) == 40)
    # routing keys differ but the hashed header does not: one queue gets everything
    assert sorted([count(ch, a), count(ch, b)]) == [0, 40]
