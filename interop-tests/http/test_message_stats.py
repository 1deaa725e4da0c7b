"""Per-object message statistics: `message_stats` of queues, exchanges and channels (exact counts
after a known traffic pattern, `*_details.rate` present), the byte / packet counters of
/api/connections (`recv_oct`, `send_oct`, ...), the per-object Prometheus channel and connection
families, and `user_who_performed_action` of exchanges.

Every expectation here was captured from RabbitMQ 3.10.8 (management + prometheus plugins).
RabbitMQ emits channel, queue and connection statistics on its statistics interval (5 s by
default): every check polls with a bounded deadline (POLL seconds) rather than sleeping. Rates
depend on timing and are only checked to be numbers.

Notable RabbitMQ behaviours pinned here:
* a queue's `publish` and an exchange's `publish_in` / `publish_out` are counted by the
  publishing channel; `publish_out` counts queue deliveries (a fanout to 2 queues counts 2 per
  message);
* dead-lettered messages are NOT counted: neither as `publish` on the dead-letter queue nor as
  `publish_in` / `publish_out` on the dead-letter exchange (a DLQ that only received dead
  letters has no `message_stats` at all); deliveries out of the DLQ are counted as usual;
* `ack` does not count nacks or rejects; `redeliver` counts a requeued message fetched again;
  `get_empty` is counted on the queue that was empty.

On /metrics/per-object RabbitMQ labels the channel families `{channel, vhost, exchange}` or
`{channel, vhost, queue}` (channel = the channel process pid), Warren `{channel}` only: the
Prometheus tests sum a family over every series and compare two scrapes.
"""

import os
import time

import pika
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import ADMIN, AMQP_URL, WAIT, Api, amqp, q, uid

POLL = 30.0
PROM_URL = os.environ.get("PROM_URL", "http://127.0.0.1:15692").rstrip("/")

PUBLISH_GROUP = {"publish", "confirm", "return_unroutable", "drop_unroutable"}
DELIVER_GROUP = {"deliver", "deliver_no_ack", "get", "get_no_ack", "get_empty", "ack",
                 "redeliver", "deliver_get"}
QUEUE_DELIVER_GROUP = DELIVER_GROUP  # a queue's delivery group has the same counters


# ---------------------------------------------------------------------------------------------
# helpers

def poll(fetch, pred, timeout=POLL, what="condition"):
    """Calls fetch() until pred(value) holds; returns that value, fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        last = fetch()
        if pred(last):
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(0.2)  # bounded polling: RabbitMQ emits statistics every 5 s


def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def connect(name):
    """A pika connection announcing `name` as its connection_name."""
    p = pika.URLParameters(AMQP_URL)
    p.connection_attempts = 1
    p.socket_timeout = WAIT
    p.client_properties = {"connection_name": name}
    return pika.BlockingConnection(p)


def safe_close(conn):
    try:
        if conn.is_open:
            conn.close()
    except Exception:
        pass


def get_json(api, path):
    r = api.get(path)
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.json()


def stats_of(body):
    return (body or {}).get("message_stats") or {}


def matches(expected):
    """A predicate: the body's message_stats has every expected count."""
    return lambda body: all(stats_of(body).get(k) == v for k, v in expected.items())


def check_counts(body, expected, keys):
    """message_stats has exactly the counters `keys` (each with `_details.rate` a number), with
    the expected values (the others in `keys` must be 0)."""
    ms = stats_of(body)
    want_keys = set(keys) | {k + "_details" for k in keys}
    assert set(ms) == want_keys, sorted(set(ms) ^ want_keys)
    for k in keys:
        assert is_num(ms[k]), (k, ms[k])
        assert set(ms[k + "_details"]) == {"rate"}, (k, ms[k + "_details"])
        assert is_num(ms[k + "_details"]["rate"]), (k, ms[k + "_details"])
    got = {k: ms[k] for k in keys}
    want = {k: expected.get(k, 0) for k in keys}
    assert got == want


def find_connection(api, cname):
    """The /api/connections item whose user_provided_name is cname (waits for it)."""
    items = poll(lambda: [c for c in get_json(api, "/api/connections")
                          if c.get("user_provided_name") == cname],
                 lambda l: len(l) == 1, what=f"connection {cname}")
    return items[0]


@pytest.fixture
def conns():
    """Opens named pika connections (returns (name, connection)); closes them at the end."""
    opened = []

    def make(prefix="ms-c"):
        name = uid(prefix)
        c = connect(name)
        opened.append(c)
        return name, c

    yield make
    for c in opened:
        safe_close(c)


def declare_queue(api, name, arguments=None):
    r = api.put(f"/api/queues/%2F/{q(name)}", {"arguments": arguments or {}})
    assert r.status_code == 201, r.text


# ---------------------------------------------------------------------------------------------
# one run of known traffic, shared by the message_stats tests below

class Traffic:
    """Names of the objects the `traffic` fixture made, and its connection's name."""


@pytest.fixture(scope="module")
def traffic():
    """Runs a known traffic pattern on one connection (kept open, so its channels stay listed):

    channel P (confirm mode): publishes 5 to queue Q through the default exchange.
    channel C: basic.qos 3, consumes Q with manual ack, receives 3, cancels; acks 2, nacks the
        third with requeue; basic.get no-ack on Q fetches it again (redelivered); basic.get on
        the empty queue E (get_empty).
    channel F (confirm mode): publishes 3 to fanout exchange FX bound to queues F1 and F2.
    channel U (confirm mode): publishes 1 mandatory (returned) and 1 non-mandatory (dropped)
        message to direct exchange DX that has no bindings.
    channel N (no confirms): publishes 2 to queue NQ.
    channel D (confirm mode): dead-letters into DLX (fanout, bound to DLQ): 2 messages of SRC
        (x-dead-letter-exchange DLX) rejected without requeue, 1 message published to TTLQ
        (x-dead-letter-exchange DLX, x-message-ttl 0) that expires at once; then publishes 1
        message straight to DLX, and basic.get no-ack fetches all 4 messages of DLQ.
    """
    api = Api()
    t = Traffic()
    t.q, t.e = uid("ms-q"), uid("ms-empty")
    t.fx, t.f1, t.f2 = uid("ms-fx"), uid("ms-f1"), uid("ms-f2")
    t.dx = uid("ms-dx")
    t.nq = uid("ms-nq")
    t.dlx, t.dlq, t.src, t.ttlq = uid("ms-dlx"), uid("ms-dlq"), uid("ms-src"), uid("ms-ttl")
    queues = [t.q, t.e, t.f1, t.f2, t.nq, t.dlq, t.src, t.ttlq]
    exchanges = [t.fx, t.dx, t.dlx]
    t.cname = uid("ms-conn")
    conn = connect(t.cname)
    try:
        for n in (t.q, t.e, t.f1, t.f2, t.nq, t.dlq):
            declare_queue(api, n)
        declare_queue(api, t.src, {"x-dead-letter-exchange": t.dlx})
        declare_queue(api, t.ttlq, {"x-dead-letter-exchange": t.dlx, "x-message-ttl": 0})
        for x, typ in ((t.fx, "fanout"), (t.dx, "direct"), (t.dlx, "fanout")):
            r = api.put(f"/api/exchanges/%2F/{q(x)}", {"type": typ})
            assert r.status_code == 201, r.text
        for x, qn in ((t.fx, t.f1), (t.fx, t.f2), (t.dlx, t.dlq)):
            r = api.post(f"/api/bindings/%2F/e/{q(x)}/q/{q(qn)}", {})
            assert r.status_code == 201, r.text

        # P: 5 confirmed publishes to Q
        p = conn.channel()
        p.confirm_delivery()
        for i in range(5):
            p.basic_publish("", t.q, b"m%d" % i)

        # C: consume 3 (manual ack), ack 2, nack 1 with requeue, get it again without ack,
        # get_empty on E
        c = conn.channel()
        c.basic_qos(prefetch_count=3)
        got = []
        c.basic_consume(t.q, lambda ch, m, props, body: got.append(m), consumer_tag="ms-ctag")
        deadline = time.monotonic() + WAIT
        while len(got) < 3:
            assert time.monotonic() < deadline, f"only {len(got)} deliveries"
            conn.process_data_events(time_limit=0.1)
        c.basic_cancel("ms-ctag")
        assert len(got) == 3
        c.basic_ack(got[0].delivery_tag)
        c.basic_ack(got[1].delivery_tag)
        c.basic_nack(got[2].delivery_tag, requeue=True)
        m, _, body = c.basic_get(t.q, auto_ack=True)
        assert m is not None and m.redelivered is True and body == b"m2"
        m, _, _ = c.basic_get(t.e, auto_ack=True)
        assert m is None

        # F: 3 confirmed publishes into the fanout (2 queues)
        f = conn.channel()
        f.confirm_delivery()
        for _ in range(3):
            f.basic_publish(t.fx, "", b"fan")

        # U: 1 mandatory unroutable (returned), 1 non-mandatory unroutable (dropped)
        u = conn.channel()
        u.confirm_delivery()
        with pytest.raises(pika.exceptions.UnroutableError):
            u.basic_publish(t.dx, "nowhere", b"ret", mandatory=True)
        u.basic_publish(t.dx, "nowhere", b"drop")

        # N: 2 publishes without confirms
        n = conn.channel()
        n.basic_publish("", t.nq, b"n1")
        n.basic_publish("", t.nq, b"n2")

        # D: dead-lettering, then 1 direct publish into the DLX, then drain the DLQ
        d = conn.channel()
        d.confirm_delivery()
        d.basic_publish("", t.src, b"s1")
        d.basic_publish("", t.src, b"s2")
        d.basic_publish("", t.ttlq, b"t1")
        for _ in range(2):
            m, _, _ = d.basic_get(t.src, auto_ack=False)
            assert m is not None
            d.basic_reject(m.delivery_tag, requeue=False)
        poll(lambda: get_json(api, f"/api/queues/%2F/{q(t.dlq)}"),
             lambda b: b.get("messages") == 3, what="3 dead letters in the DLQ")
        d.basic_publish(t.dlx, "", b"direct")
        bodies = []
        deadline = time.monotonic() + WAIT
        while len(bodies) < 4:
            assert time.monotonic() < deadline, f"only {bodies} from the DLQ"
            m, _, body = d.basic_get(t.dlq, auto_ack=True)
            if m is not None:
                bodies.append(body)
        assert sorted(bodies) == [b"direct", b"s1", b"s2", b"t1"]

        t.channels = {"P": p.channel_number, "C": c.channel_number, "F": f.channel_number,
                      "U": u.channel_number, "N": n.channel_number, "D": d.channel_number}
        t.api = api
        yield t
    finally:
        safe_close(conn)
        for n in queues:
            api.delete(f"/api/queues/%2F/{q(n)}")
        for x in exchanges:
            api.delete(f"/api/exchanges/%2F/{q(x)}")


def queue_body(api, name):
    return get_json(api, f"/api/queues/%2F/{q(name)}")


def exchange_body(api, name):
    return get_json(api, f"/api/exchanges/%2F/{q(name)}")


def wait_queue(t, name, expected):
    return poll(lambda: queue_body(t.api, name), matches(expected),
                what=f"message_stats {expected} of queue {name}")


def wait_exchange(t, name, expected):
    return poll(lambda: exchange_body(t.api, name), matches(expected),
                what=f"message_stats {expected} of exchange {name}")


def channel_list(t):
    conn_name = find_connection(t.api, t.cname)["name"]
    return get_json(t.api, f"/api/connections/{q(conn_name)}/channels")


def wait_channel(t, key, expected):
    """The channel `key` of the traffic connection, from /api/connections/NAME/channels, once its
    message_stats show `expected`; also checks GET /api/channels/NAME agrees."""
    number = t.channels[key]

    def fetch():
        return [c for c in channel_list(t) if c.get("number") == number]
    (listed,) = poll(fetch, lambda l: len(l) == 1 and matches(expected)(l[0]),
                     what=f"message_stats {expected} of channel {key} ({number})")
    single = get_json(t.api, f"/api/channels/{q(listed['name'])}")
    assert single["name"] == listed["name"] and single["number"] == number
    return listed, single


# ---------------------------------------------------------------------------------------------
# queues

def test_queue_counts_publish_deliver_ack_get_and_redeliver(traffic):
    expected = {"publish": 5, "deliver": 3, "ack": 2, "get_no_ack": 1, "redeliver": 1,
                "deliver_get": 4, "get": 0, "deliver_no_ack": 0, "get_empty": 0}
    body = wait_queue(traffic, traffic.q, expected)
    check_counts(body, expected, {"publish"} | QUEUE_DELIVER_GROUP)
    assert body["messages"] == 2 and body["messages_ready"] == 2
    assert body["messages_unacknowledged"] == 0


def test_queue_get_empty_counted_on_the_empty_queue(traffic):
    body = wait_queue(traffic, traffic.e, {"get_empty": 1})
    # nothing was published to it: only the delivery group
    check_counts(body, {"get_empty": 1}, QUEUE_DELIVER_GROUP)


def test_queue_published_without_confirms(traffic):
    body = wait_queue(traffic, traffic.nq, {"publish": 2})
    check_counts(body, {"publish": 2}, {"publish"})


# ---------------------------------------------------------------------------------------------
# channels

def test_channel_of_confirmed_publisher(traffic):
    expected = {"publish": 5, "confirm": 5, "return_unroutable": 0, "drop_unroutable": 0}
    listed, single = wait_channel(traffic, "P", expected)
    check_counts(listed, expected, PUBLISH_GROUP)
    check_counts(single, expected, PUBLISH_GROUP)
    assert single["confirm"] is True


def test_channel_of_consumer_counts_deliver_ack_get_redeliver_get_empty(traffic):
    expected = {"deliver": 3, "ack": 2, "get_no_ack": 1, "redeliver": 1, "get_empty": 1,
                "deliver_get": 4, "get": 0, "deliver_no_ack": 0}
    listed, single = wait_channel(traffic, "C", expected)
    check_counts(listed, expected, DELIVER_GROUP)
    check_counts(single, expected, DELIVER_GROUP)
    assert listed["messages_unacknowledged"] == 0


def test_channel_counts_returned_and_dropped_unroutable(traffic):
    expected = {"publish": 2, "confirm": 2, "return_unroutable": 1, "drop_unroutable": 1}
    listed, single = wait_channel(traffic, "U", expected)
    check_counts(listed, expected, PUBLISH_GROUP)
    check_counts(single, expected, PUBLISH_GROUP)


def test_channel_without_confirms_counts_no_confirm(traffic):
    expected = {"publish": 2, "confirm": 0}
    listed, single = wait_channel(traffic, "N", expected)
    check_counts(listed, expected, PUBLISH_GROUP)
    assert single["confirm"] is False


def test_channel_of_fanout_publisher_counts_messages_not_queue_deliveries(traffic):
    expected = {"publish": 3, "confirm": 3}
    listed, _ = wait_channel(traffic, "F", expected)
    check_counts(listed, expected, PUBLISH_GROUP)


# ---------------------------------------------------------------------------------------------
# exchanges

def test_fanout_exchange_publish_out_counts_each_queue(traffic):
    body = wait_exchange(traffic, traffic.fx, {"publish_in": 3, "publish_out": 6})
    check_counts(body, {"publish_in": 3, "publish_out": 6}, {"publish_in", "publish_out"})
    for qn in (traffic.f1, traffic.f2):
        qb = wait_queue(traffic, qn, {"publish": 3})
        check_counts(qb, {"publish": 3}, {"publish"})


def test_exchange_without_route_has_only_publish_in(traffic):
    body = wait_exchange(traffic, traffic.dx, {"publish_in": 2})
    check_counts(body, {"publish_in": 2}, {"publish_in"})


def test_default_exchange_counts_publish_out_to_a_missing_queue(api, conns):
    """RabbitMQ's default exchange routes to the queue named by the routing key without looking
    it up, and the channel counts that route in the exchange's `publish_out` even when no such
    queue exists (the message itself is dropped or returned: drop_unroutable /
    return_unroutable on the channel). So every publish through the default exchange counts
    once in both publish_in and publish_out. amq.default is shared: compare deltas."""
    def default_stats():
        return stats_of(exchange_body(api, "amq.default"))
    before = default_stats()
    cname, conn = conns()
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish("", uid("ms-missing"), b"x")
    ch.basic_publish("", uid("ms-missing"), b"x")
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish("", uid("ms-missing"), b"x", mandatory=True)
    n = 3

    def deltas():
        s = default_stats()
        return {k: s.get(k, 0) - before.get(k, 0) for k in ("publish_in", "publish_out")}
    poll(deltas, lambda d: d["publish_in"] >= n and d["publish_out"] >= n,
         what=f"amq.default publish_in and publish_out to grow by {n}")
    expected = {"publish": 3, "confirm": 3, "drop_unroutable": 2, "return_unroutable": 1}
    conn_name = find_connection(api, cname)["name"]
    (listed,) = poll(lambda: get_json(api, f"/api/connections/{q(conn_name)}/channels"),
                     lambda l: len(l) == 1 and matches(expected)(l[0]),
                     what=f"channel message_stats {expected}")
    check_counts(listed, expected, PUBLISH_GROUP)


# ---------------------------------------------------------------------------------------------
# dead letters

def test_dead_letters_are_not_counted_as_publishes(traffic):
    # the channel that published the 3 messages counted them once, on their first queue
    src = wait_queue(traffic, traffic.src, {"publish": 2, "get": 2})
    check_counts(src, {"publish": 2, "get": 2, "deliver_get": 2}, {"publish"} | DELIVER_GROUP)
    ttl = wait_queue(traffic, traffic.ttlq, {"publish": 1})
    check_counts(ttl, {"publish": 1}, {"publish"})
    # the DLQ received 3 dead letters and 1 message published through the DLX; only that one
    # counts as `publish`, while all 4 deliveries out of it count
    dlq = wait_queue(traffic, traffic.dlq, {"publish": 1, "get_no_ack": 4})
    check_counts(dlq, {"publish": 1, "get_no_ack": 4, "deliver_get": 4},
                 {"publish"} | DELIVER_GROUP)
    dlx = wait_exchange(traffic, traffic.dlx, {"publish_in": 1, "publish_out": 1})
    check_counts(dlx, {"publish_in": 1, "publish_out": 1}, {"publish_in", "publish_out"})
    # and the dead-lettering channel published 4 messages itself (3 + 1 into the DLX)
    listed, _ = wait_channel(traffic, "D", {"publish": 4, "confirm": 4})
    assert stats_of(listed)["get"] == 2 and stats_of(listed)["ack"] == 0


def test_dlq_of_dead_letters_only_has_no_message_stats(api):
    """A DLQ that only ever received dead letters: RabbitMQ shows no message_stats on it (nor on
    the DLX) once the source queue's statistics (emitted by the same channel) are in."""
    dlx, dlq, src = uid("ms-dlx"), uid("ms-dlq"), uid("ms-src")
    declare_queue(api, dlq)
    declare_queue(api, src, {"x-dead-letter-exchange": dlx})
    conn = amqp()
    try:
        assert api.put(f"/api/exchanges/%2F/{q(dlx)}", {"type": "fanout"}).status_code == 201
        assert api.post(f"/api/bindings/%2F/e/{q(dlx)}/q/{q(dlq)}", {}).status_code == 201
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish("", src, b"x")
        m, _, _ = ch.basic_get(src, auto_ack=False)
        ch.basic_reject(m.delivery_tag, requeue=False)
        poll(lambda: queue_body(api, src), matches({"publish": 1, "get": 1}),
             what="source queue statistics")
        body = poll(lambda: queue_body(api, dlq), lambda b: b.get("messages") == 1,
                    what="the dead letter in the DLQ")
        assert "message_stats" not in body
        assert "message_stats" not in exchange_body(api, dlx)
    finally:
        safe_close(conn)
        for n in (dlq, src):
            api.delete(f"/api/queues/%2F/{q(n)}")
        api.delete(f"/api/exchanges/%2F/{q(dlx)}")


# ---------------------------------------------------------------------------------------------
# connection byte and packet counters

OCTETS = ("recv_oct", "send_oct", "recv_cnt", "send_cnt")


def test_connection_octets_grow_with_traffic(api):
    cname = uid("ms-oct")
    conn = connect(cname)
    qn = uid("ms-octq")
    size = 10 * 1024
    try:
        before = poll(lambda: find_connection(api, cname),
                      lambda c: all(is_num(c.get(k)) for k in OCTETS),
                      what="connection byte counters")
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(qn, exclusive=True)
        ch.basic_publish("", qn, b"\x00" * size)
        m, _, body = ch.basic_get(qn, auto_ack=True)
        assert m is not None and len(body) == size
        after = poll(lambda: find_connection(api, cname),
                     lambda c: c["recv_oct"] >= before["recv_oct"] + size
                     and c["send_oct"] >= before["send_oct"] + size
                     and c["recv_cnt"] > before["recv_cnt"]
                     and c["send_cnt"] > before["send_cnt"],
                     what=f"recv_oct/send_oct to grow by {size}")
        for k in ("recv_oct_details", "send_oct_details"):
            assert set(after[k]) == {"rate"} and is_num(after[k]["rate"]), (k, after[k])
    finally:
        safe_close(conn)


# ---------------------------------------------------------------------------------------------
# Prometheus per-object channel and connection families

def scrape(path="/metrics/per-object"):
    r = requests.get(f"{PROM_URL}{path}", timeout=WAIT)
    assert r.status_code == 200, (path, r.status_code, r.text[:300])
    series = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            series[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return series


def grown(before, after, name):
    """How much family `name` grew between two scrapes: the sum over its series in `after` of
    (value - value in `before`, 0 for a new series). Series that vanished (closed channels,
    collected by the broker) do not count, so other connections closing cannot shrink it."""
    return sum(v - before.get(key, 0) for key, v in after.items() if key[0] == name)


def test_prometheus_channel_and_connection_totals_grow(api):
    n_pub, n_consume, n_get, size = 6, 3, 2, 1000
    before = scrape()
    cname = uid("ms-prom")
    conn = connect(cname)
    qn = uid("ms-promq")
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(qn, exclusive=True)
        for _ in range(n_pub):
            ch.basic_publish("", qn, b"p" * size)
        for _ in range(n_get):
            m, _, _ = ch.basic_get(qn, auto_ack=False)
            assert m is not None
            ch.basic_ack(m.delivery_tag)
        got = []
        ch.basic_qos(prefetch_count=n_consume)
        ch.basic_consume(qn, lambda c, m, p, b: got.append(m))
        deadline = time.monotonic() + WAIT
        while len(got) < n_consume:
            assert time.monotonic() < deadline, f"only {len(got)} deliveries"
            conn.process_data_events(time_limit=0.1)
        for m in got:
            ch.basic_ack(m.delivery_tag)
        want = {
            "rabbitmq_channel_messages_published_total": n_pub,
            "rabbitmq_queue_messages_published_total": n_pub,
            "rabbitmq_channel_messages_confirmed_total": n_pub,
            "rabbitmq_channel_get_ack_total": n_get,
            "rabbitmq_channel_messages_delivered_ack_total": n_consume,
            "rabbitmq_channel_messages_acked_total": n_get + n_consume,
            "rabbitmq_connection_incoming_bytes_total": n_pub * size,
            "rabbitmq_connection_outgoing_bytes_total": (n_get + n_consume) * size,
        }

        def deltas():
            after = scrape()
            return {name: grown(before, after, name) for name in want}
        poll(deltas, lambda d: all(d[k] >= v for k, v in want.items()),
             what=f"per-object totals to grow by at least {want}")
    finally:
        safe_close(conn)


# ---------------------------------------------------------------------------------------------
# user_who_performed_action of exchanges

def test_exchange_declared_over_amqp_records_the_amqp_user(api):
    x = uid("ms-uwpa")
    conn = amqp()
    try:
        conn.channel().exchange_declare(x, exchange_type="direct")
        body = exchange_body(api, x)
        assert body["user_who_performed_action"] == ADMIN[0]
        (listed,) = [e for e in get_json(api, "/api/exchanges/%2F") if e["name"] == x]
        assert listed["user_who_performed_action"] == ADMIN[0]
    finally:
        safe_close(conn)
        api.delete(f"/api/exchanges/%2F/{q(x)}")


def test_exchange_declared_over_amqp_by_another_user(api, scratch):
    user, password = scratch.user(tags="")
    scratch.grant(user, "/")
    x = uid("ms-uwpa")
    conn = amqp(user, password)
    try:
        conn.channel().exchange_declare(x, exchange_type="fanout")
        assert exchange_body(api, x)["user_who_performed_action"] == user
    finally:
        safe_close(conn)
        api.delete(f"/api/exchanges/%2F/{q(x)}")


def test_exchange_declared_through_the_api_records_the_api_user(api, scratch):
    user, password = scratch.user(tags="administrator")
    scratch.grant(user, "/")
    x = uid("ms-uwpa")
    try:
        r = Api((user, password)).put(f"/api/exchanges/%2F/{q(x)}", {"type": "topic"})
        assert r.status_code == 201, r.text
        assert exchange_body(api, x)["user_who_performed_action"] == user
        # redeclaring (204) as another user does not change it
        r = api.put(f"/api/exchanges/%2F/{q(x)}", {"type": "topic"})
        assert r.status_code == 204, r.text
        assert exchange_body(api, x)["user_who_performed_action"] == user
    finally:
        api.delete(f"/api/exchanges/%2F/{q(x)}")
