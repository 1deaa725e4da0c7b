"""Sender-selected distribution (RabbitMQ extension): the CC and BCC headers (arrays of strings)
add routing keys; BCC is removed before delivery; a CC or BCC that is not an array closes the
channel with 406."""

import pika
import pytest

from conftest import channel_closed, get_all


def test_cc_and_bcc_route_to_more_queues_and_bcc_is_hidden(conn, names):
    ch = conn.channel()
    ch.confirm_delivery()
    qs = {k: names.queue(k) for k in ("k", "cc1", "cc2", "bcc1")}
    for key, q in qs.items():
        ch.queue_declare(q)
        ch.queue_bind(q, "amq.direct", key)
    headers = {"CC": ["cc1", "cc2", "cc1"], "BCC": ["bcc1", "k"], "other": "kept"}
    ch.basic_publish("amq.direct", "k", b"m", pika.BasicProperties(headers=headers))
    for key, q in qs.items():
        got = get_all(ch, q)
        assert [b for _, _, b in got] == [b"m"], key  # once per queue
        m, p, _ = got[0]
        assert m.routing_key == "k"
        assert p.headers == {"CC": ["cc1", "cc2", "cc1"], "other": "kept"}


def test_cc_keys_match_together_at_each_exchange(conn, names):
    """The whole key set is matched at every hop (an exchange-to-exchange binding on a CC key,
    then a queue binding on the routing key)."""
    ch = conn.channel()
    ch.confirm_delivery()
    x1, x2, q = names.exchange(), names.exchange(), names.queue()
    ch.exchange_declare(x1, "direct")
    ch.exchange_declare(x2, "direct")
    ch.exchange_bind(x2, x1, "cc1")
    ch.queue_declare(q)
    ch.queue_bind(q, x2, "k")
    ch.basic_publish(x1, "k", b"m", pika.BasicProperties(headers={"CC": ["cc1"]}), mandatory=True)
    assert [b for _, _, b in get_all(ch, q)] == [b"m"]


@pytest.mark.parametrize("header, value, kind", [("CC", "k", "longstr"), ("BCC", 5, "signedint"),
                                                 ("CC", True, "bool")])
def test_cc_that_is_not_an_array_closes_the_channel(conn, names, header, value, kind):
    q = names.queue()
    conn.channel().queue_declare(q)
    text = f'PRECONDITION_FAILED - invalid message: {{unacceptable_type_in_header,"{header}",{kind}}}'
    with channel_closed(406) as closed:
        ch = conn.channel()
        ch.basic_publish("", q, b"m", pika.BasicProperties(headers={header: value}))
        ch.queue_declare(q, passive=True)  # a round trip, so the close arrives
    assert closed.reply_text == text
