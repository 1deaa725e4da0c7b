"""Routing: direct, fanout, default, topic and headers exchanges.

The topic and headers truth tables below were recorded from RabbitMQ 3.10.8.
"""

import pika
import pika.exceptions
import pytest

from conftest import BROKER_VHOST, channel_closed, get_all, params, uid


class Router:
    """One exchange with one exclusive queue per binding, on a private
    connection shared by a module's parametrized cases."""

    def __init__(self, xtype, bindings):
        self.conn = pika.BlockingConnection(params())
        self.ch = self.conn.channel()
        self.ch.confirm_delivery()
        self.x = uid(xtype)
        self.ch.exchange_declare(self.x, exchange_type=xtype, auto_delete=False)
        self.queues = []
        for key, args in bindings:
            q = self.ch.queue_declare("", exclusive=True).method.queue
            self.ch.queue_bind(q, self.x, routing_key=key, arguments=args)
            self.queues.append(q)

    def route(self, routing_key="", headers=None):
        """Publish once; return the indexes of the bindings whose queue got it."""
        props = pika.BasicProperties(headers=headers)
        try:
            self.ch.basic_publish(self.x, routing_key, b"m", properties=props, mandatory=True)
        except pika.exceptions.UnroutableError:
            pass
        hits = []
        for i, q in enumerate(self.queues):
            n = len(get_all(self.ch, q))
            assert n <= 1, "a message was delivered twice to one queue"
            if n:
                hits.append(i)
        return hits

    def close(self):
        try:
            self.ch.exchange_delete(self.x)
        finally:
            self.conn.close()


# ---------------------------------------------------------------------------
# topic
# ---------------------------------------------------------------------------

TOPIC_PATTERNS = [
    "*", "#", "#.#", "a.*", "a.#", "*.#", "#.*", "a..b", "a.", ".a", "",
    "a.*.c", "a.#.c", "#.c", "*.*", "a.b", "a.#.#.b", "#.a.#", "*.*.#",
]

# routing key -> patterns that match it (RabbitMQ 3.10.8)
TOPIC_TABLE = {
    "": ["#", "#.#", ""],
    "a": ["*", "#", "#.#", "a.#", "*.#", "#.*", "#.a.#"],
    "a.b": ["#", "#.#", "a.*", "a.#", "*.#", "#.*", "*.*", "a.b", "a.#.#.b", "#.a.#", "*.*.#"],
    "a.b.c": ["#", "#.#", "a.#", "*.#", "#.*", "a.*.c", "a.#.c", "#.c", "#.a.#", "*.*.#"],
    "a..b": ["#", "#.#", "a.#", "*.#", "#.*", "a..b", "a.#.#.b", "#.a.#", "*.*.#"],
    "a.": ["#", "#.#", "a.*", "a.#", "*.#", "#.*", "a.", "*.*", "#.a.#", "*.*.#"],
    ".a": ["#", "#.#", "*.#", "#.*", ".a", "*.*", "#.a.#", "*.*.#"],
    ".": ["#", "#.#", "*.#", "#.*", "*.*", "*.*.#"],
    "..": ["#", "#.#", "*.#", "#.*", "*.*.#"],
    "c": ["*", "#", "#.#", "*.#", "#.*", "#.c"],
    "a.c": ["#", "#.#", "a.*", "a.#", "*.#", "#.*", "a.#.c", "#.c", "*.*", "#.a.#", "*.*.#"],
    "x.a.y": ["#", "#.#", "*.#", "#.*", "#.a.#", "*.*.#"],
    "a.x.y.c": ["#", "#.#", "a.#", "*.#", "#.*", "a.#.c", "#.c", "#.a.#", "*.*.#"],
    # '#' and '*' in a routing key are plain words, not wildcards
    "#": ["*", "#", "#.#", "*.#", "#.*"],
    "*": ["*", "#", "#.#", "*.#", "#.*"],
    "a.b.b": ["#", "#.#", "a.#", "*.#", "#.*", "a.#.#.b", "#.a.#", "*.*.#"],
}


@pytest.fixture(scope="module")
def topic_router():
    r = Router("topic", [(p, None) for p in TOPIC_PATTERNS])
    yield r
    r.close()


@pytest.mark.parametrize("key", list(TOPIC_TABLE))
def test_topic_matching(topic_router, key):
    got = sorted(TOPIC_PATTERNS[i] for i in topic_router.route(routing_key=key))
    assert got == sorted(TOPIC_TABLE[key]), key


def test_topic_literal_star_and_hash_words(conn, names):
    """A routing key word 'x*' or 'x#' is literal text."""
    ch = conn.channel()
    x, q = names.exchange(), names.queue()
    ch.exchange_declare(x, exchange_type="topic")
    ch.queue_declare(q)
    ch.queue_bind(q, x, "a.b*")
    ch.basic_publish(x, "a.bc", b"no")
    ch.basic_publish(x, "a.b*", b"yes")
    assert [b for _, _, b in get_all(ch, q)] == [b"yes"]


# ---------------------------------------------------------------------------
# headers
# ---------------------------------------------------------------------------

HEADER_BINDINGS = [
    {"x-match": "all", "a": 1, "b": "x"},                 # 0
    {"x-match": "any", "a": 1, "b": "x"},                 # 1
    {"a": 1},                                             # 2  (x-match defaults to all)
    {"x-match": "all"},                                   # 3  (matches everything)
    {"x-match": "any"},                                   # 4  (matches nothing)
    {"x-match": "all-with-x", "x-foo": "bar"},            # 5
    {"x-match": "any-with-x", "x-foo": "bar"},            # 6
    {"x-match": "all", "x-foo": "bar"},                   # 7  (x- keys ignored)
    {"x-match": "any", "x-foo": "bar", "a": 2},           # 8
    {"x-match": "all", "a": "1"},                         # 9  (string, not int)
    {"x-match": "all", "f": True},                        # 10
    {"x-match": "all", "a": None},                        # 11 (void: header present)
    {"x-match": "any-with-x", "x-foo": "bar", "b": "y"},  # 12
    {"x-match": "all-with-x", "x-foo": "bar", "a": 1},    # 13
]

HEADER_CASES = [
    ({"a": 1, "b": "x"}, [0, 1, 2, 3, 7, 11]),
    ({"a": 1}, [1, 2, 3, 7, 11]),
    ({"b": "x"}, [1, 3, 7]),
    ({}, [3, 7]),
    (None, [3, 7]),
    ({"x-foo": "bar"}, [3, 5, 6, 7, 12]),
    ({"a": "1"}, [3, 7, 9, 11]),
    ({"a": 1, "b": "y"}, [1, 2, 3, 7, 11, 12]),
    ({"f": True}, [3, 7, 10]),
    ({"f": 1}, [3, 7]),
    ({"a": None}, [3, 7, 11]),
    ({"a": 2}, [3, 7, 8, 11]),
    ({"x-foo": "bar", "a": 1, "b": "x"}, [0, 1, 2, 3, 5, 6, 7, 11, 12, 13]),
    ({"x-foo": "baz", "a": 1}, [1, 2, 3, 7, 11]),
    ({"a": 1 << 40}, [3, 7, 11]),  # long 2^40 is not int 1
    ({"a": 1, "x-foo": "bar"}, [1, 2, 3, 5, 6, 7, 11, 12, 13]),
]


@pytest.fixture(scope="module")
def headers_router():
    r = Router("headers", [("", b) for b in HEADER_BINDINGS])
    yield r
    r.close()


@pytest.mark.parametrize("headers, expected", HEADER_CASES, ids=[repr(h) for h, _ in HEADER_CASES])
def test_headers_matching(headers_router, headers, expected):
    assert headers_router.route(headers=headers) == expected


def test_headers_routing_key_is_ignored(conn, names):
    ch = conn.channel()
    x, q = names.exchange(), names.queue()
    ch.exchange_declare(x, exchange_type="headers")
    ch.queue_declare(q)
    ch.queue_bind(q, x, routing_key="some-key", arguments={"x-match": "all", "k": "v"})
    ch.basic_publish(x, "other-key", b"yes", pika.BasicProperties(headers={"k": "v"}))
    assert [b for _, _, b in get_all(ch, q)] == [b"yes"]


def test_amq_match_is_a_headers_exchange(conn):
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    k = uid("hdr")
    ch.queue_bind(q, "amq.match", arguments={"x-match": "any", "key": k})
    ch.basic_publish("amq.match", "", b"m", pika.BasicProperties(headers={"key": k}))
    assert [b for _, _, b in get_all(ch, q)] == [b"m"]
    ch.queue_unbind(q, "amq.match", arguments={"x-match": "any", "key": k})


@pytest.mark.parametrize(
    "value, text",
    [
        ("foo", 'PRECONDITION_FAILED - Invalid x-match field value <<"foo">>; expected all, any, all-with-x, or any-with-x'),
        ("ALL", 'PRECONDITION_FAILED - Invalid x-match field value <<"ALL">>; expected all, any, all-with-x, or any-with-x'),
        (1, "PRECONDITION_FAILED - Invalid x-match field type signedint (value 1); expected longstr"),
    ],
)
def test_headers_invalid_x_match(conn, names, value, text):
    x = names.exchange()
    conn.channel().exchange_declare(x, exchange_type="headers")
    q = conn.channel().queue_declare("", exclusive=True).method.queue
    with channel_closed(406, text) as closed:
        conn.channel().queue_bind(q, x, arguments={"x-match": value})
    assert closed.reply_text == text


# ---------------------------------------------------------------------------
# direct / fanout / default
# ---------------------------------------------------------------------------


def test_direct_exchange(conn, names):
    ch = conn.channel()
    x = names.exchange()
    q1, q2, q3 = names.queue(), names.queue(), names.queue()
    ch.exchange_declare(x, exchange_type="direct")
    for q in (q1, q2, q3):
        ch.queue_declare(q)
    ch.queue_bind(q1, x, "red")
    ch.queue_bind(q2, x, "red")
    ch.queue_bind(q2, x, "green")
    ch.queue_bind(q3, x, "")
    ch.basic_publish(x, "red", b"r")
    ch.basic_publish(x, "green", b"g")
    ch.basic_publish(x, "", b"empty")
    ch.basic_publish(x, "RED", b"case-sensitive")
    assert [b for _, _, b in get_all(ch, q1)] == [b"r"]
    assert [b for _, _, b in get_all(ch, q2)] == [b"r", b"g"]
    assert [b for _, _, b in get_all(ch, q3)] == [b"empty"]


def test_queue_bound_twice_gets_one_copy(conn, names):
    ch = conn.channel()
    x, q = names.exchange(), names.queue()
    ch.exchange_declare(x, exchange_type="topic")
    ch.queue_declare(q)
    ch.queue_bind(q, x, "a.*")
    ch.queue_bind(q, x, "*.b")
    ch.queue_bind(q, x, "a.*")  # duplicate binding is a no-op
    ch.basic_publish(x, "a.b", b"once")
    assert [b for _, _, b in get_all(ch, q)] == [b"once"]
    ch.queue_unbind(q, x, "a.*")
    ch.basic_publish(x, "a.b", b"still-via-*.b")
    ch.basic_publish(x, "a.c", b"no")
    assert [b for _, _, b in get_all(ch, q)] == [b"still-via-*.b"]


def test_fanout_ignores_routing_key(conn, names):
    ch = conn.channel()
    x, q1, q2 = names.exchange(), names.queue(), names.queue()
    ch.exchange_declare(x, exchange_type="fanout")
    ch.queue_declare(q1)
    ch.queue_declare(q2)
    ch.queue_bind(q1, x, "ignored")
    ch.queue_bind(q2, x)
    ch.basic_publish(x, "whatever", b"all")
    for q in (q1, q2):
        got = get_all(ch, q)
        assert [(m.exchange, m.routing_key, b) for m, _, b in got] == [(x, "whatever", b"all")]


def test_default_exchange_routes_by_queue_name(conn, names):
    ch = conn.channel()
    q = names.queue()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"direct-to-queue")
    got = get_all(ch, q)
    assert [(m.exchange, m.routing_key, b) for m, _, b in got] == [("", q, b"direct-to-queue")]
    ch.confirm_delivery()
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish("", q + ".nope", b"x", mandatory=True)


def test_amq_default_is_not_an_alias(conn):
    """RabbitMQ 3.10.8: 'amq.default' does not name the default exchange,
    neither for passive declare nor for publish."""
    text = f"NOT_FOUND - no exchange 'amq.default' in vhost '{BROKER_VHOST}'"
    with channel_closed(404, text):
        conn.channel().exchange_declare("amq.default", passive=True)
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("amq.default", q, b"m")
    with channel_closed(404, text):
        ch.exchange_declare("amq.direct", passive=True)
