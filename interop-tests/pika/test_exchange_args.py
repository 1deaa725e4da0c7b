"""exchange.declare with an `alternate-exchange` argument that is not a string.

RabbitMQ 3.10.8 (rabbit_channel, exchange.declare) checks the type of `alternate-exchange` only
when the exchange does not exist yet: a non-string value is refused with 406 PRECONDITION_FAILED
"invalid type 'TYPE' for arg 'alternate-exchange' in exchange 'X' in vhost 'V'" (TYPE is the
AMQP field type as RabbitMQ names it: pika sends a Python int as 'signedint' when it fits 32
bits, else 'long'; a bool as 'bool'; ...), the channel is closed and no exchange is made. For an
existing exchange there is no type check: the argument goes through the usual equivalence check
(406 "inequivalent arg ..."). A passive declare ignores the arguments.
"""

import datetime
import decimal

import pika
import pika.exceptions
import pytest

from conftest import BROKER_VHOST, channel_closed, uid

V = BROKER_VHOST


def invalid_type(x, type_name):
    return (f"PRECONDITION_FAILED - invalid type '{type_name}' for arg 'alternate-exchange' in "
            f"exchange '{x}' in vhost '{V}'")


def assert_absent(conn, x):
    with channel_closed(404, f"NOT_FOUND - no exchange '{x}' in vhost '{V}'"):
        conn.channel().exchange_declare(x, passive=True)


@pytest.mark.parametrize("value, type_name", [
    (1, "signedint"),
    (-7, "signedint"),
    (2 ** 40, "long"),
    (True, "bool"),
    (False, "bool"),
])
def test_new_exchange_with_int_or_bool_alternate_exchange(conn, names, value, type_name):
    x = names.exchange()
    ch = conn.channel()
    with channel_closed(406) as closed:
        ch.exchange_declare(x, exchange_type="direct", arguments={"alternate-exchange": value})
    assert closed.reply_text == invalid_type(x, type_name)
    assert ch.is_closed and conn.is_open
    assert_absent(conn, x)


@pytest.mark.parametrize("value, type_name", [
    (decimal.Decimal("1.5"), "decimal"),
    (datetime.datetime(2020, 1, 1), "timestamp"),
    (b"bytes", "binary"),
    ({"a": 1}, "table"),
    ([1], "array"),
    (None, "void"),
])
def test_new_exchange_with_other_non_string_alternate_exchange(conn, names, value, type_name):
    x = names.exchange()
    with channel_closed(406) as closed:
        conn.channel().exchange_declare(x, exchange_type="fanout",
                                        arguments={"alternate-exchange": value})
    assert closed.reply_text == invalid_type(x, type_name)
    assert_absent(conn, x)


def test_durable_new_exchange_with_int_alternate_exchange(conn, names):
    x = names.exchange()
    with channel_closed(406) as closed:
        conn.channel().exchange_declare(x, exchange_type="topic", durable=True,
                                        arguments={"alternate-exchange": 5, "other": "ok"})
    assert closed.reply_text == invalid_type(x, "signedint")
    assert_absent(conn, x)


def test_empty_string_alternate_exchange_is_accepted(conn, names):
    x = names.exchange()
    conn.channel().exchange_declare(x, exchange_type="direct", arguments={"alternate-exchange": ""})
    conn.channel().exchange_declare(x, passive=True)


def test_reserved_name_is_refused_before_the_type_check(conn):
    x = "amq." + uid("ae")
    with channel_closed(403, f"ACCESS_REFUSED - exchange name '{x}' contains reserved prefix "
                             "'amq.*'"):
        conn.channel().exchange_declare(x, exchange_type="direct",
                                        arguments={"alternate-exchange": 1})


def test_unknown_type_is_refused_before_the_argument_check(connect, names):
    c = connect()
    x = names.exchange()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        c.channel().exchange_declare(x, exchange_type="x-bogus",
                                     arguments={"alternate-exchange": 1})
    assert info.value.reply_code == 503
    assert info.value.reply_text == "COMMAND_INVALID - unknown exchange type 'x-bogus'"


@pytest.mark.parametrize("value, shown, type_name", [
    (1, "1", "signedint"),
    (True, "true", "bool"),
])
def test_existing_exchange_without_ae_redeclared_with_non_string(conn, names, value, shown,
                                                                 type_name):
    """No type check for an existing exchange: the equivalence check answers instead."""
    x = names.exchange()
    conn.channel().exchange_declare(x, exchange_type="direct")
    with channel_closed(406) as closed:
        conn.channel().exchange_declare(x, exchange_type="direct",
                                        arguments={"alternate-exchange": value})
    assert closed.reply_text == (
        f"PRECONDITION_FAILED - inequivalent arg 'alternate-exchange' for exchange '{x}' in "
        f"vhost '{V}': received the value '{shown}' of type '{type_name}' but current is none")
    conn.channel().exchange_declare(x, passive=True)


@pytest.mark.parametrize("value, shown", [(1, "1"), (True, "true")])
def test_existing_exchange_with_ae_redeclared_with_non_string(conn, names, value, shown):
    x = names.exchange()
    ae = uid("ae")
    conn.channel().exchange_declare(x, exchange_type="direct", arguments={"alternate-exchange": ae})
    with channel_closed(406) as closed:
        conn.channel().exchange_declare(x, exchange_type="direct",
                                        arguments={"alternate-exchange": value})
    assert closed.reply_text == (
        f"PRECONDITION_FAILED - inequivalent arg 'alternate-exchange' for exchange '{x}' in "
        f"vhost '{V}': received '{shown}' but current is '{ae}'")
    # the same string still redeclares fine
    conn.channel().exchange_declare(x, exchange_type="direct", arguments={"alternate-exchange": ae})


def test_passive_declare_ignores_a_non_string_alternate_exchange(conn, names):
    x = names.exchange()
    conn.channel().exchange_declare(x, exchange_type="direct",
                                    arguments={"alternate-exchange": "a"})
    conn.channel().exchange_declare(x, passive=True, arguments={"alternate-exchange": 1})
    missing = uid("missing")
    with channel_closed(404, f"NOT_FOUND - no exchange '{missing}' in vhost '{V}'"):
        conn.channel().exchange_declare(missing, passive=True,
                                        arguments={"alternate-exchange": 1})
