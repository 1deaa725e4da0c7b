"""Differential tests of the OBJECTS side of the management HTTP API: exchanges, queues,
bindings, connections, channels and consumers, with their list endpoints' pagination, sorting
and columns, the publish / get / purge actions, and the error bodies for bad input.

Every expectation here was captured from RabbitMQ 3.10.8 (see
docs/rabbitmq-http-api-objects-observed.md). Values that legitimately differ between brokers or
runs (node names, rates, memory, timestamps, ports) are checked for presence and type only.

RabbitMQ refreshes its stats every 5 s: where a counter has to move, the test polls with a
bounded deadline (POLL seconds) rather than sleeping.
"""

import base64
import re
import time

import pika
import pytest

from conftest import ADMIN, AMQP_URL, WAIT, Api, q, uid

POLL = 30.0
NOT_FOUND = {"error": "Object Not Found", "reason": "Not Found"}
ACCESS_REFUSED = {"error": "not_authorised", "reason": "Access refused."}
VHOST_NOT_FOUND = {"error": "not_found", "reason": "vhost_not_found"}
NOT_JSON = {"error": "bad_request", "reason": "not_json"}
BUILTIN_EXCHANGES = ["", "amq.direct", "amq.fanout", "amq.headers", "amq.match",
                     "amq.rabbitmq.trace", "amq.topic"]


# ---------------------------------------------------------------------------------------------
# helpers

def poll(fetch, pred, timeout=POLL, what="condition"):
    """Calls fetch() until pred(value) holds; returns that value, fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = fetch()
        if pred(last):
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(0.2)


def erlang_quote_plus(s):
    """rabbit_http_util:quote_plus/1: keeps [A-Za-z0-9.~_-], space -> '+', the rest %XX (upper)."""
    out = []
    for b in s.encode("utf-8"):
        c = chr(b)
        if c.isascii() and (c.isalnum() or c in ".-~_"):
            out.append(c)
        elif c == " ":
            out.append("+")
        else:
            out.append("%%%02X" % b)
    return "".join(out)


def props_key(routing_key):
    """The properties_key of a binding without arguments, as rabbit_mgmt_format builds it."""
    if routing_key == "":
        return "~"
    return erlang_quote_plus(routing_key).replace("~", "%7E")


def connect(name=None, vhost="/"):
    """A pika connection that announces `name` as its connection_name (user_provided_name)."""
    p = pika.URLParameters(AMQP_URL)
    p.virtual_host = vhost
    p.connection_attempts = 1
    p.socket_timeout = WAIT
    if name is not None:
        p.client_properties = {"connection_name": name}
    return pika.BlockingConnection(p)


def confirmed(conn):
    """A channel in confirm mode: basic_publish returns once the broker has enqueued."""
    ch = conn.channel()
    ch.confirm_delivery()
    return ch


def safe_close(conn):
    try:
        if conn.is_open:
            conn.close()
    except Exception:
        pass


def queue_json(api, name, vhost="/"):
    r = api.get(f"/api/queues/{q(vhost)}/{q(name)}")
    assert r.status_code == 200, r.text
    return r.json()


def wait_queue(api, name, pred, what="queue stats", vhost="/"):
    return poll(lambda: queue_json(api, name, vhost), pred, what=f"{what} of {name}")


def find_connection(api, cname):
    """The /api/connections item whose user_provided_name is cname (waits for it)."""
    items = poll(lambda: [c for c in api.get("/api/connections").json()
                          if c.get("user_provided_name") == cname],
                 lambda l: len(l) == 1, what=f"connection {cname}")
    return items[0]


def consumer_has_channel(queue_body):
    """RabbitMQ lists a new consumer with "channel_details": [] until its channel's stats
    arrive."""
    cds = queue_body.get("consumer_details") or []
    return len(cds) == 1 and isinstance(cds[0].get("channel_details"), dict)


def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def amqp_error_text(exc):
    return exc.args[1] if len(exc.args) > 1 else str(exc)


class Objects:
    """Queues and exchanges of vhost '/' made by a test; deleted at its end."""

    def __init__(self, api):
        self.api = api
        self.queues = []
        self.exchanges = []

    def queue(self, prefix="q", body=None, vhost="/", name=None):
        name = name or uid(prefix)
        r = self.api.put(f"/api/queues/{q(vhost)}/{q(name)}", body if body is not None else {})
        assert r.status_code == 201, r.text
        self.queues.append((vhost, name))
        return name

    def exchange(self, prefix="x", type_="direct", body=None, vhost="/", name=None):
        name = name or uid(prefix)
        r = self.api.put(f"/api/exchanges/{q(vhost)}/{q(name)}",
                         body if body is not None else {"type": type_})
        assert r.status_code == 201, r.text
        self.exchanges.append((vhost, name))
        return name

    def track_queue(self, name, vhost="/"):
        self.queues.append((vhost, name))
        return name

    def track_exchange(self, name, vhost="/"):
        self.exchanges.append((vhost, name))
        return name

    def cleanup(self):
        for v, n in self.queues:
            self.api.delete(f"/api/queues/{q(v)}/{q(n)}")
        for v, n in self.exchanges:
            self.api.delete(f"/api/exchanges/{q(v)}/{q(n)}")


@pytest.fixture
def objs(api):
    o = Objects(api)
    yield o
    o.cleanup()


@pytest.fixture
def conns():
    """Opens named pika connections; closes them at the end."""
    opened = []

    def make(prefix="c", vhost="/"):
        name = uid(prefix)
        c = connect(name, vhost)
        opened.append(c)
        return name, c

    yield make
    for c in opened:
        safe_close(c)


@pytest.fixture
def pvhost(scratch, api):
    """A scratch vhost holding five queues, for deterministic list/pagination answers."""
    v = scratch.vhost("pg")
    scratch.grant(ADMIN[0], v)
    for n in ["pa1", "pa2", "pb3", "Pa4", "x.y"]:
        r = api.put(f"/api/queues/{q(v)}/{q(n)}", {"durable": n != "pa2"})
        assert r.status_code == 201, r.text
    return v


# ---------------------------------------------------------------------------------------------
# queues: declare / get / delete

def test_queue_put_201_then_204_with_empty_body(api, objs):
    name = uid("q")
    r = api.put(f"/api/queues/%2F/{q(name)}", {"durable": True, "auto_delete": False,
                                               "arguments": {}})
    objs.track_queue(name)
    assert r.status_code == 201
    assert r.text == ""
    r = api.put(f"/api/queues/%2F/{q(name)}", {"durable": True, "auto_delete": False,
                                               "arguments": {}})
    assert r.status_code == 204
    assert r.text == ""


def test_queue_put_defaults_are_non_durable_classic(api, objs):
    name = objs.queue(body={})
    body = queue_json(api, name)
    assert body["name"] == name
    assert body["vhost"] == "/"
    assert body["durable"] is False
    assert body["auto_delete"] is False
    assert body["exclusive"] is False
    assert body["arguments"] == {}
    assert body["type"] == "classic"
    assert isinstance(body["node"], str)


@pytest.mark.parametrize("raw", [None, "", "null"])
def test_queue_put_without_body_creates(api, objs, raw):
    name = uid("q")
    kw = {} if raw is None else {"data": raw}
    r = api.s.put(api.url(f"/api/queues/%2F/{q(name)}"), auth=api.auth, timeout=WAIT, **kw)
    objs.track_queue(name)
    assert r.status_code == 201, r.text
    assert queue_json(api, name)["durable"] is False


def test_queue_put_ignores_unknown_fields_and_exclusive(api, objs):
    name = objs.queue(body={"foo": "bar", "exclusive": True, "type": "bogus"})
    body = queue_json(api, name)
    assert body["exclusive"] is False
    assert body["type"] == "classic"


def test_queue_put_accepts_boolean_strings(api, objs):
    name = objs.queue(body={"durable": "true", "auto_delete": "false"})
    body = queue_json(api, name)
    assert body["durable"] is True
    assert body["auto_delete"] is False


def test_queue_get_immediate_keys(api, objs):
    name = objs.queue(body={"durable": True, "arguments": {"x-max-length": 10}})
    body = queue_json(api, name)
    for k in ["arguments", "auto_delete", "durable", "exclusive", "name", "node", "type",
              "vhost", "consumer_details", "deliveries", "incoming"]:
        assert k in body, k
    assert body["arguments"] == {"x-max-length": 10}
    assert body["consumer_details"] == []
    assert body["deliveries"] == []
    assert body["incoming"] == []


IDLE_QUEUE_KEYS = [
    "arguments", "auto_delete", "backing_queue_status", "consumer_capacity",
    "consumer_utilisation", "consumers", "durable", "effective_policy_definition", "exclusive",
    "exclusive_consumer_tag", "garbage_collection", "head_message_timestamp", "memory",
    "message_bytes", "message_bytes_paged_out", "message_bytes_persistent", "message_bytes_ram",
    "message_bytes_ready", "message_bytes_unacknowledged", "messages", "messages_details",
    "messages_paged_out", "messages_persistent", "messages_ram", "messages_ready",
    "messages_ready_details", "messages_ready_ram", "messages_unacknowledged",
    "messages_unacknowledged_details", "messages_unacknowledged_ram", "name", "node",
    "operator_policy", "policy", "recoverable_slaves", "reductions", "reductions_details",
    "single_active_consumer_tag", "state", "type", "vhost",
]


def test_queue_idle_stats_keys_and_types(api, objs):
    name = objs.queue(body={"durable": True})
    # two stats sources fill the object independently: wait for both
    body = wait_queue(api, name, lambda b: all(k in b for k in IDLE_QUEUE_KEYS))
    for k in IDLE_QUEUE_KEYS + ["consumer_details", "deliveries", "incoming"]:
        assert k in body, k
    assert "message_stats" not in body  # appears only after traffic
    for k in ["messages", "messages_ready", "messages_unacknowledged", "consumers",
              "message_bytes", "message_bytes_ready", "message_bytes_unacknowledged",
              "message_bytes_ram", "message_bytes_persistent", "message_bytes_paged_out",
              "messages_ram", "messages_ready_ram", "messages_unacknowledged_ram",
              "messages_persistent", "messages_paged_out"]:
        assert body[k] == 0, k
    for k in ["messages_details", "messages_ready_details", "messages_unacknowledged_details",
              "reductions_details"]:
        assert set(body[k]) == {"rate"} and is_num(body[k]["rate"]), k
    assert is_num(body["consumer_utilisation"]) and is_num(body["consumer_capacity"])
    assert is_num(body["memory"]) and is_num(body["reductions"])
    assert body["state"] == "running"
    assert body["policy"] is None
    assert body["operator_policy"] is None
    assert body["effective_policy_definition"] == {}
    assert body["exclusive_consumer_tag"] is None
    assert body["single_active_consumer_tag"] is None
    assert body["head_message_timestamp"] is None
    assert body["recoverable_slaves"] is None
    assert isinstance(body["garbage_collection"], dict)
    assert isinstance(body["backing_queue_status"], dict)
    if "idle_since" in body:
        assert isinstance(body["idle_since"], str)


def test_queue_stats_with_traffic_and_consumer(api, objs, conns):
    name = objs.queue(body={"durable": True})
    _, c = conns()
    ch = confirmed(c)
    for i in range(5):
        ch.basic_publish("", name, b"m%d" % i,
                         pika.BasicProperties(delivery_mode=2 if i % 2 else 1))
    ch.basic_qos(prefetch_count=2)
    tag = uid("ctag")
    ch.basic_consume(name, lambda *a: None, consumer_tag=tag)
    body = wait_queue(api, name, lambda b: b.get("messages") == 5
                      and b.get("messages_unacknowledged") == 2 and b.get("consumers") == 1
                      and b.get("message_stats", {}).get("deliver_get") == 2
                      and b["message_stats"].get("publish") == 5
                      and b.get("message_bytes") == 10 and b.get("messages_persistent") == 2
                      and b.get("message_bytes_unacknowledged") == 4
                      and consumer_has_channel(b), what="5 messages, 2 unacked, 1 consumer")
    assert body["messages_ready"] == 3
    assert body["messages_persistent"] == 2
    assert body["message_bytes"] == 10
    assert body["message_bytes_unacknowledged"] == 4
    assert body["message_bytes_ready"] == 6
    ms = body["message_stats"]
    for k in ["publish", "deliver", "deliver_get", "deliver_no_ack", "get", "get_no_ack",
              "get_empty", "ack", "redeliver"]:
        assert is_num(ms[k]), k
        assert set(ms[k + "_details"]) == {"rate"}, k
    assert ms["publish"] == 5
    assert ms["deliver"] == 2
    assert ms["get"] == 0 and ms["ack"] == 0
    assert is_num(body["consumer_utilisation"])
    (cd,) = body["consumer_details"]
    assert cd["consumer_tag"] == tag
    assert cd["prefetch_count"] == 2
    assert cd["ack_required"] is True
    assert cd["exclusive"] is False
    assert cd["active"] is True
    assert cd["activity_status"] == "up"
    assert cd["arguments"] == {}
    assert cd["queue"] == {"name": name, "vhost": "/"}
    assert set(cd["channel_details"]) == {"connection_name", "name", "node", "number",
                                          "peer_host", "peer_port", "user"}
    assert cd["channel_details"]["user"] == ADMIN[0]
    assert cd["channel_details"]["number"] == 1


def test_queue_message_stats_only_publish_group_after_publish(api, objs, conns):
    name = objs.queue()
    _, c = conns()
    ch = confirmed(c)
    ch.basic_publish("", name, b"abc")
    ch.basic_publish("", name, b"abcd")
    body = wait_queue(api, name, lambda b: b.get("messages") == 2
                      and b.get("message_stats", {}).get("publish") == 2
                      and b.get("message_bytes") == 7)
    assert set(body["message_stats"]) == {"publish", "publish_details"}
    assert body["message_bytes"] == 7


def test_queue_declared_over_amqp_is_listed_with_messages(api, objs, conns):
    name = objs.track_queue(uid("amqpq"))
    _, c = conns()
    ch = confirmed(c)
    ch.queue_declare(name, durable=False, arguments={"x-max-length": 100})
    for _ in range(3):
        ch.basic_publish("", name, b"x")

    def entry():
        return [e for e in api.get("/api/queues/%2F").json() if e["name"] == name]

    (e,) = poll(entry, lambda l: len(l) == 1 and l[0].get("messages") == 3, what="listed")
    assert e["arguments"] == {"x-max-length": 100}
    assert e["messages_ready"] == 3
    assert any(x["name"] == name and x["vhost"] == "/" for x in api.get("/api/queues").json())
    # list items carry no per-object detail keys
    assert "consumer_details" not in e and "incoming" not in e and "deliveries" not in e


def test_exclusive_queue_shows_owner(api, objs, conns):
    cname, c = conns()
    ch = c.channel()
    name = uid("exq")
    ch.queue_declare(name, exclusive=True)
    ch.basic_consume(name, lambda *a: None, consumer_tag="ex-tag", exclusive=True)
    body = wait_queue(api, name, lambda b: b.get("consumers") == 1
                      and isinstance(b.get("owner_pid_details"), dict)
                      and b.get("exclusive_consumer_tag") == "ex-tag"
                      and consumer_has_channel(b))
    assert body["exclusive"] is True
    assert body["exclusive_consumer_tag"] == "ex-tag"
    assert set(body["owner_pid_details"]) == {"name", "peer_host", "peer_port"}
    assert body["consumer_details"][0]["exclusive"] is True


def test_exclusive_queue_of_other_connection_is_locked(api, conns):
    _, c = conns()
    ch = c.channel()
    name = uid("exq")
    ch.queue_declare(name, exclusive=True)
    locked = (f"cannot obtain exclusive access to locked queue '{name}' in vhost '/'. It could "
              "be originally declared on another connection or the exclusive property value "
              "does not match that of the original declaration.")
    r = api.put(f"/api/queues/%2F/{q(name)}", {})
    assert (r.status_code, r.json()) == (400, {"error": "bad_request", "reason": locked})
    r = api.delete(f"/api/queues/%2F/{q(name)}")
    assert (r.status_code, r.json()) == (400, {"error": "bad_request", "reason": locked})
    r = api.delete(f"/api/queues/%2F/{q(name)}/contents")
    assert (r.status_code, r.json()) == (400, {"error": "bad_request", "reason": locked})
    r = api.post(f"/api/queues/%2F/{q(name)}/get",
                 {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"})
    assert (r.status_code, r.json()) == (400, {"error": "bad_request",
                                               "reason": "405 RESOURCE_LOCKED - " + locked})


# --- queue declare errors

def test_queue_redeclare_durable_mismatch(api, objs):
    name = objs.queue(body={"durable": True})
    r = api.put(f"/api/queues/%2F/{q(name)}", {"durable": False})
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"error": "bad_request", "reason":
                        f"inequivalent arg 'durable' for queue '{name}' in vhost '/': "
                        "received 'false' but current is 'true'"}


def test_queue_redeclare_auto_delete_mismatch(api, objs):
    name = objs.queue(body={"durable": True})
    r = api.put(f"/api/queues/%2F/{q(name)}", {"durable": True, "auto_delete": True})
    assert r.status_code == 400
    assert r.json()["reason"] == (f"inequivalent arg 'auto_delete' for queue '{name}' in vhost "
                                  "'/': received 'true' but current is 'false'")


def test_queue_redeclare_argument_mismatch(api, objs):
    name = objs.queue(body={"durable": True})
    r = api.put(f"/api/queues/%2F/{q(name)}", {"durable": True,
                                               "arguments": {"x-max-length": 10}})
    assert r.status_code == 400
    assert r.json() == {"error": "bad_request", "reason":
                        f"inequivalent arg 'x-max-length' for queue '{name}' in vhost '/': "
                        "received the value '10' of type 'long' but current is none"}


def test_queue_redeclare_same_as_amqp_error_text(api, objs, conns):
    """The API's reason is the AMQP channel.close text without the 'PRECONDITION_FAILED - '."""
    name = objs.queue(body={"durable": False})
    r = api.put(f"/api/queues/%2F/{q(name)}", {"durable": True})
    _, c = conns()
    ch = c.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(name, durable=True)
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == "PRECONDITION_FAILED - " + r.json()["reason"]


def test_queue_argument_of_wrong_type_matches_amqp_406(api, objs, conns):
    name = uid("q")
    objs.track_queue(name)
    r = api.put(f"/api/queues/%2F/{q(name)}", {"arguments": {"x-max-length": "ten"}})
    assert r.status_code == 400
    reason = r.json()["reason"]
    assert reason == (f"invalid arg 'x-max-length' for queue '{name}' in vhost '/': "
                      "\"expected integer, got longstr\"")
    _, c = conns()
    ch = c.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(name, arguments={"x-max-length": "ten"})
    assert (ei.value.reply_code, ei.value.reply_text) == (406, "PRECONDITION_FAILED - " + reason)
    assert api.get(f"/api/queues/%2F/{q(name)}").status_code == 404


@pytest.mark.parametrize("args,tail", [
    ({"x-queue-type": "bogus"}, "x-queue-type' for queue '{n}' in vhost '/': "
                                "\"unsupported queue type 'bogus'\""),
    ({"x-message-ttl": -1}, "x-message-ttl' for queue '{n}' in vhost '/': {{value_negative,-1}}"),
    ({"x-expires": 0}, "x-expires' for queue '{n}' in vhost '/': {{value_zero,0}}"),
    ({"x-max-priority": 300}, "x-max-priority' for queue '{n}' in vhost '/': "
                              "{{max_value_exceeded,300}}"),
    ({"x-overflow": "bogus"}, "x-overflow' for queue '{n}' in vhost '/': invalid_overflow"),
    ({"x-message-ttl": "1000"}, "x-message-ttl' for queue '{n}' in vhost '/': "
                                "\"expected integer, got longstr\""),
    ({"x-max-length-bytes": 1.5}, "x-max-length-bytes' for queue '{n}' in vhost '/': "
                                  "\"expected integer, got double\""),
    ({"x-queue-mode": "bogus"}, "x-queue-mode' for queue '{n}' in vhost '/': "
                                "\"unsupported queue mode 'bogus'\""),
])
def test_queue_invalid_arguments(api, objs, args, tail):
    name = uid("q")
    objs.track_queue(name)
    r = api.put(f"/api/queues/%2F/{q(name)}", {"arguments": args})
    assert r.status_code == 400
    assert r.json() == {"error": "bad_request", "reason": "invalid arg '" + tail.format(n=name)}


def test_queue_argument_wrong_type_for_dlx(api, objs):
    name = uid("q")
    objs.track_queue(name)
    r = api.put(f"/api/queues/%2F/{q(name)}", {"arguments": {"x-dead-letter-exchange": 5}})
    assert r.status_code == 400
    assert r.json()["reason"] == (f"invalid type 'long' for arg 'x-dead-letter-exchange' in "
                                  f"queue '{name}' in vhost '/'")


def test_queue_quorum_must_be_durable(api, objs):
    name = uid("qq")
    objs.track_queue(name)
    r = api.put(f"/api/queues/%2F/{q(name)}", {"durable": False,
                                               "arguments": {"x-queue-type": "quorum"}})
    assert (r.status_code, r.json()) == (400, {
        "error": "bad_request",
        "reason": f"invalid property 'non-durable' for queue '{name}' in vhost '/'"})


def test_queue_put_malformed_json(api, objs):
    name = uid("q")
    objs.track_queue(name)
    r = api.s.put(api.url(f"/api/queues/%2F/{q(name)}"), data="{not json", auth=api.auth,
                  timeout=WAIT)
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/json"
    assert r.json() == NOT_JSON
    for raw in ["[]", "5"]:
        r = api.s.put(api.url(f"/api/queues/%2F/{q(name)}"), data=raw, auth=api.auth,
                      timeout=WAIT)
        assert (r.status_code, r.json()) == (400, NOT_JSON)
    r = api.s.put(api.url(f"/api/queues/%2F/{q(name)}"), data='"str"', auth=api.auth,
                  timeout=WAIT)
    assert (r.status_code, r.json()) == (400, {
        "error": "bad_request",
        "reason": "invalid payload: the request body JSON-decoded to a string. Is the input "
                  "doubly-JSON-encoded?"})
    assert api.get(f"/api/queues/%2F/{q(name)}").status_code == 404


@pytest.mark.parametrize("value", ["yes", 1, "True", None])
def test_queue_put_non_boolean_durable(api, objs, value):
    name = uid("q")
    objs.track_queue(name)
    r = api.put(f"/api/queues/%2F/{q(name)}", {"durable": value})
    assert (r.status_code, r.json()) == (400, {"error": "bad_request",
                                               "reason": ["not_boolean", value]})


def test_queue_put_missing_vhost(api):
    r = api.put(f"/api/queues/{q(uid('novh'))}/x", {})
    assert (r.status_code, r.json()) == (404, VHOST_NOT_FOUND)


def test_queue_404_bodies(api):
    missing_vhost = q(uid("novh"))
    for path in [f"/api/queues/%2F/{q(uid('nq'))}", f"/api/queues/{missing_vhost}/x",
                 f"/api/queues/{missing_vhost}"]:
        r = api.get(path)
        assert r.status_code == 404, path
        assert r.headers["content-type"] == "application/json"
        assert r.json() == NOT_FOUND, path
    r = api.delete(f"/api/queues/%2F/{q(uid('nq'))}")
    assert (r.status_code, r.json()) == (404, NOT_FOUND)


def test_queue_amq_prefix_refused(api, objs):
    name = "amq." + uid("q")
    objs.track_queue(name)
    r = api.put(f"/api/queues/%2F/{q(name)}", {})
    assert (r.status_code, r.json()) == (401, ACCESS_REFUSED)


def test_queue_name_too_long(api, objs):
    name = "a" * 256
    objs.track_queue(name)
    r = api.put(f"/api/queues/%2F/{name}", {})
    assert (r.status_code, r.json()) == (400, {
        "error": "bad_request",
        "reason": "queue should be less than 255 bytes, actually was 256\n"})
    ok = uid("q") + "b" * (255 - len(uid("q")))
    objs.queue(name=ok)


@pytest.mark.parametrize("suffix", ["a/b", "p%c", "sp ace", "ünï", "plus+x", "t~t", "q?x#y",
                                    "x.y"])
def test_queue_names_with_special_characters(api, objs, suffix):
    name = uid("q") + suffix
    objs.queue(name=name)
    r = api.get(f"/api/queues/%2F/{q(name)}?columns=name,vhost")
    assert r.status_code == 200
    assert r.json() == {"name": name, "vhost": "/"}
    assert name in [e["name"] for e in api.get("/api/queues/%2F?columns=name").json()]
    r = api.delete(f"/api/queues/%2F/{q(name)}")
    assert r.status_code == 204


def test_queue_delete_204_then_404(api, objs):
    name = objs.queue()
    r = api.delete(f"/api/queues/%2F/{q(name)}")
    assert (r.status_code, r.text) == (204, "")
    r = api.delete(f"/api/queues/%2F/{q(name)}")
    assert (r.status_code, r.json()) == (404, NOT_FOUND)


def test_queue_delete_if_empty(api, objs, conns):
    name = objs.queue()
    _, c = conns()
    confirmed(c).basic_publish("", name, b"x")
    r = api.delete(f"/api/queues/%2F/{q(name)}?if-empty=true")
    assert (r.status_code, r.json()) == (400, {
        "error": "bad_request", "reason": f"queue '{name}' in vhost '/' not empty"})
    assert api.delete(f"/api/queues/%2F/{q(name)}/contents").status_code == 204
    r = api.delete(f"/api/queues/%2F/{q(name)}?if-empty=true")
    assert r.status_code == 204


def test_queue_delete_if_empty_false_deletes(api, objs, conns):
    name = objs.queue()
    _, c = conns()
    confirmed(c).basic_publish("", name, b"x")
    assert api.delete(f"/api/queues/%2F/{q(name)}?if-empty=false").status_code == 204


def test_queue_delete_if_unused(api, objs, conns):
    name = objs.queue()
    _, c = conns()
    ch = c.channel()
    ch.basic_consume(name, lambda *a: None)
    r = api.delete(f"/api/queues/%2F/{q(name)}?if-unused=true")
    assert (r.status_code, r.json()) == (400, {
        "error": "bad_request", "reason": f"queue '{name}' in vhost '/' in use"})
    # if-empty alone does not look at consumers
    r = api.delete(f"/api/queues/%2F/{q(name)}?if-empty=true")
    assert r.status_code == 204
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        c.channel().queue_declare(name, passive=True)
    assert ei.value.reply_code == 404


def test_queue_purge(api, objs, conns):
    name = objs.queue()
    _, c = conns()
    ch = confirmed(c)
    for _ in range(3):
        ch.basic_publish("", name, b"x")
    assert ch.queue_declare(name, passive=True).method.message_count == 3
    r = api.delete(f"/api/queues/%2F/{q(name)}/contents")
    assert (r.status_code, r.text) == (204, "")
    assert ch.queue_declare(name, passive=True).method.message_count == 0
    wait_queue(api, name, lambda b: b.get("messages") == 0, what="purged")


def test_queue_purge_missing(api):
    r = api.delete(f"/api/queues/%2F/{q(uid('nq'))}/contents")
    assert (r.status_code, r.json()) == (404, NOT_FOUND)
    r = api.delete(f"/api/queues/{q(uid('nv'))}/x/contents")
    assert (r.status_code, r.json()) == (404, NOT_FOUND)


def test_queue_bindings(api, objs):
    name = objs.queue()
    x = objs.exchange(type_="topic")
    assert api.post(f"/api/bindings/%2F/e/{q(x)}/q/{q(name)}",
                    {"routing_key": "a.*", "arguments": {}}).status_code == 201
    r = api.get(f"/api/queues/%2F/{q(name)}/bindings")
    assert r.status_code == 200
    assert r.json() == [
        {"source": "", "vhost": "/", "destination": name, "destination_type": "queue",
         "routing_key": name, "arguments": {}, "properties_key": props_key(name)},
        {"source": x, "vhost": "/", "destination": name, "destination_type": "queue",
         "routing_key": "a.*", "arguments": {}, "properties_key": "a.%2A"},
    ]


def test_queue_actions(api, objs):
    name = objs.queue()
    r = api.post(f"/api/queues/%2F/{q(name)}/actions", {"action": "sync"})
    assert r.status_code == 204
    r = api.post(f"/api/queues/%2F/{q(name)}/actions", {"action": "cancel_sync"})
    assert r.status_code == 204
    r = api.post(f"/api/queues/%2F/{q(name)}/actions", {"action": "bogus"})
    assert (r.status_code, r.json()) == (400, {"error": "bad_request",
                                               "reason": ["unknown", "bogus"]})
    r = api.post(f"/api/queues/%2F/{q(name)}/actions", {})
    assert (r.status_code, r.json()) == (400, {"error": "bad_request",
                                               "reason": "[{key_missing,action}]"})


# ---------------------------------------------------------------------------------------------
# queue get

GET1 = {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}


def test_get_returns_message_published_over_amqp(api, objs, conns):
    name = objs.queue()
    _, c = conns()
    ch = confirmed(c)
    headers = {"h1": "v", "n": 5, "b": True, "l": [1, "x"], "t": {"k": "v"}}
    ch.basic_publish("", name, b"hello", pika.BasicProperties(
        content_type="text/plain", content_encoding="utf-8", headers=headers, delivery_mode=2,
        priority=3, correlation_id="cid", reply_to="rt", expiration="60000", message_id="mid",
        timestamp=1700000000, type="ty", user_id=ADMIN[0], app_id="app"))
    r = api.post(f"/api/queues/%2F/{q(name)}/get", GET1)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    (m,) = r.json()
    assert list(m) == ["payload_bytes", "redelivered", "exchange", "routing_key",
                       "message_count", "properties", "payload", "payload_encoding"]
    assert m["payload"] == "hello"
    assert m["payload_encoding"] == "string"
    assert m["payload_bytes"] == 5
    assert m["redelivered"] is False
    assert m["exchange"] == ""
    assert m["routing_key"] == name
    assert m["message_count"] == 0
    assert m["properties"] == {
        "app_id": "app", "user_id": ADMIN[0], "type": "ty", "timestamp": 1700000000,
        "message_id": "mid", "expiration": "60000", "reply_to": "rt", "correlation_id": "cid",
        "priority": 3, "delivery_mode": 2, "headers": headers, "content_encoding": "utf-8",
        "content_type": "text/plain"}
    # ack_requeue_true put it back, now redelivered
    method, props, body = ch.basic_get(name, auto_ack=True)
    assert body == b"hello" and method.redelivered is True


def test_get_message_without_properties_has_empty_list(api, objs, conns):
    name = objs.queue()
    _, c = conns()
    confirmed(c).basic_publish("", name, b"plain")
    (m,) = api.post(f"/api/queues/%2F/{q(name)}/get", GET1).json()
    assert m["properties"] == []


def test_get_count_and_message_count(api, objs, conns):
    name = objs.queue()
    _, c = conns()
    ch = confirmed(c)
    for i in range(3):
        ch.basic_publish("", name, b"m%d" % i)
    r = api.post(f"/api/queues/%2F/{q(name)}/get",
                 {"count": 5, "ackmode": "ack_requeue_true", "encoding": "auto"})
    msgs = r.json()
    assert [m["payload"] for m in msgs] == ["m0", "m1", "m2"]
    assert [m["message_count"] for m in msgs] == [2, 1, 0]
    assert ch.queue_declare(name, passive=True).method.message_count == 3


def test_get_count_as_string_and_bad_count(api, objs, conns):
    name = objs.queue()
    _, c = conns()
    confirmed(c).basic_publish("", name, b"hello")
    r = api.post(f"/api/queues/%2F/{q(name)}/get", {"count": "2", "ackmode": "ack_requeue_true",
                                                    "encoding": "auto", "truncate": "2"})
    assert r.status_code == 200
    assert [m["payload"] for m in r.json()] == ["he"]
    r = api.post(f"/api/queues/%2F/{q(name)}/get", {"count": "x", "ackmode": "ack_requeue_true",
                                                    "encoding": "auto"})
    assert (r.status_code, r.json()) == (400, {"error": "bad_request",
                                               "reason": ["not_integer", "x"]})


def test_get_ack_requeue_false_removes(api, objs, conns):
    name = objs.queue()
    _, c = conns()
    ch = confirmed(c)
    ch.basic_publish("", name, b"one")
    r = api.post(f"/api/queues/%2F/{q(name)}/get",
                 {"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"})
    assert [m["payload"] for m in r.json()] == ["one"]
    assert ch.queue_declare(name, passive=True).method.message_count == 0


def test_get_reject_requeue_true_redelivers(api, objs, conns):
    name = objs.queue()
    _, c = conns()
    ch = confirmed(c)
    ch.basic_publish("", name, b"one")
    r = api.post(f"/api/queues/%2F/{q(name)}/get",
                 {"count": 1, "ackmode": "reject_requeue_true", "encoding": "auto"})
    assert r.json()[0]["redelivered"] is False
    r = api.post(f"/api/queues/%2F/{q(name)}/get",
                 {"count": 1, "ackmode": "reject_requeue_false", "encoding": "auto"})
    (m,) = r.json()
    assert m["redelivered"] is True
    assert m["payload"] == "one"
    assert ch.queue_declare(name, passive=True).method.message_count == 0


def test_get_binary_payload_and_encodings(api, objs, conns):
    name = objs.queue()
    _, c = conns()
    ch = confirmed(c)
    ch.basic_publish("", name, b"\xff\xfebin")
    ch.basic_publish("", name, b"")
    ch.basic_publish("", name, "é".encode())
    msgs = api.post(f"/api/queues/%2F/{q(name)}/get",
                    {"count": 3, "ackmode": "ack_requeue_true", "encoding": "auto"}).json()
    assert [(m["payload"], m["payload_encoding"], m["payload_bytes"]) for m in msgs] == [
        ("//5iaW4=", "base64", 5), ("", "string", 0), ("é", "string", 2)]
    msgs = api.post(f"/api/queues/%2F/{q(name)}/get",
                    {"count": 3, "ackmode": "ack_requeue_true", "encoding": "base64",
                     "truncate": 3}).json()
    assert [(m["payload"], m["payload_encoding"], m["payload_bytes"]) for m in msgs] == [
        ("//5i", "base64", 5), ("", "base64", 0), (base64.b64encode("é".encode()).decode(),
                                                   "base64", 2)]


def test_get_empty_queue_and_zero_count(api, objs):
    name = objs.queue()
    r = api.post(f"/api/queues/%2F/{q(name)}/get", GET1)
    assert (r.status_code, r.json()) == (200, [])
    r = api.post(f"/api/queues/%2F/{q(name)}/get", dict(GET1, count=0))
    assert (r.status_code, r.json()) == (200, [])


@pytest.mark.parametrize("missing", ["ackmode", "count", "encoding"])
def test_get_missing_key(api, objs, missing):
    name = objs.queue()
    body = {k: v for k, v in GET1.items() if k != missing}
    r = api.post(f"/api/queues/%2F/{q(name)}/get", body)
    assert (r.status_code, r.json()) == (400, {"error": "bad_request",
                                               "reason": f"[{{key_missing,{missing}}}]"})


def test_get_bad_encoding_and_bad_json(api, objs):
    name = objs.queue()
    r = api.post(f"/api/queues/%2F/{q(name)}/get", dict(GET1, encoding="bogus"))
    assert (r.status_code, r.json()) == (400, {
        "error": "bad_request", "reason": "Unsupported encoding. Please use auto or base64."})
    r = api.s.post(api.url(f"/api/queues/%2F/{q(name)}/get"), data="{bad", auth=api.auth,
                   timeout=WAIT)
    assert (r.status_code, r.json()) == (400, NOT_JSON)


def test_get_missing_queue(api):
    name = uid("nq")
    r = api.post(f"/api/queues/%2F/{q(name)}/get", GET1)
    assert (r.status_code, r.json()) == (404, {
        "error": "not_found", "reason": f"NOT_FOUND - no queue '{name}' in vhost '/'"})
    r = api.post(f"/api/queues/{q(uid('nv'))}/x/get", GET1)
    assert (r.status_code, r.json()) == (401, ACCESS_REFUSED)


# ---------------------------------------------------------------------------------------------
# exchanges

EXCHANGE_LIST_KEYS = {"arguments", "auto_delete", "durable", "internal", "name", "type",
                      "user_who_performed_action", "vhost"}


def test_exchange_list_builtins(api, scratch):
    """Built-ins of a vhost made through the API carry its creator as
    user_who_performed_action (those of the boot-time vhost '/' say "rmq-internal")."""
    v = scratch.vhost("x")
    r = api.get(f"/api/exchanges/{q(v)}")
    assert r.status_code == 200
    items = r.json()
    assert [e["name"] for e in items] == BUILTIN_EXCHANGES
    types = {e["name"]: e["type"] for e in items}
    assert types == {"": "direct", "amq.direct": "direct", "amq.fanout": "fanout",
                     "amq.headers": "headers", "amq.match": "headers",
                     "amq.rabbitmq.trace": "topic", "amq.topic": "topic"}
    for e in items:
        assert set(e) == EXCHANGE_LIST_KEYS, e
        assert e["durable"] is True and e["auto_delete"] is False and e["arguments"] == {}
        assert e["internal"] is (e["name"] == "amq.rabbitmq.trace")
        assert e["user_who_performed_action"] == ADMIN[0]
        assert e["vhost"] == v
    all_items = api.get("/api/exchanges").json()
    assert {(e["vhost"], e["name"]) for e in items} <= {(e["vhost"], e["name"])
                                                        for e in all_items}


def test_exchange_put_201_204_and_get(api, objs):
    name = uid("x")
    r = api.put(f"/api/exchanges/%2F/{q(name)}", {"type": "direct"})
    objs.track_exchange(name)
    assert (r.status_code, r.text) == (201, "")
    r = api.put(f"/api/exchanges/%2F/{q(name)}", {"type": "direct"})
    assert (r.status_code, r.text) == (204, "")
    r = api.get(f"/api/exchanges/%2F/{q(name)}")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"arguments": {}, "auto_delete": False, "durable": False,
                        "incoming": [], "internal": False, "name": name, "outgoing": [],
                        "type": "direct", "user_who_performed_action": ADMIN[0], "vhost": "/"}


def test_exchange_put_defaults_to_direct(api, objs):
    name = objs.exchange(body={})
    body = api.get(f"/api/exchanges/%2F/{q(name)}").json()
    assert (body["type"], body["durable"], body["auto_delete"], body["internal"]) == (
        "direct", False, False, False)


def test_exchange_put_all_fields_roundtrip(api, objs):
    args = {"alternate-exchange": "ae", "x-foo": [1, "a", True, {"k": 1.5}]}
    name = objs.exchange(body={"type": "headers", "durable": "true", "auto_delete": True,
                               "internal": True, "arguments": args})
    body = api.get(f"/api/exchanges/%2F/{q(name)}").json()
    assert body["arguments"] == args
    assert (body["type"], body["durable"], body["auto_delete"], body["internal"]) == (
        "headers", True, True, True)


def test_exchange_declared_over_amqp_is_listed(api, objs, conns):
    name = objs.track_exchange(uid("x"))
    _, c = conns()
    c.channel().exchange_declare(name, "topic", durable=True)
    (e,) = [e for e in api.get("/api/exchanges/%2F").json() if e["name"] == name]
    assert (e["type"], e["durable"]) == ("topic", True)


@pytest.mark.parametrize("change,field,received,current", [
    ({"type": "fanout"}, "type", "fanout", "direct"),
    ({"durable": True}, "durable", "true", "false"),
    ({"auto_delete": True}, "auto_delete", "true", "false"),
    ({"internal": True}, "internal", "true", "false"),
])
def test_exchange_redeclare_mismatch(api, objs, change, field, received, current):
    name = objs.exchange(type_="direct")
    r = api.put(f"/api/exchanges/%2F/{q(name)}", dict({"type": "direct"}, **change))
    assert (r.status_code, r.json()) == (400, {
        "error": "bad_request",
        "reason": f"inequivalent arg '{field}' for exchange '{name}' in vhost '/': "
                  f"received '{received}' but current is '{current}'"})


def test_exchange_redeclare_argument_mismatch(api, objs):
    name = objs.exchange(type_="direct")
    r = api.put(f"/api/exchanges/%2F/{q(name)}", {"type": "direct",
                                                  "arguments": {"alternate-exchange": "x"}})
    assert (r.status_code, r.json()) == (400, {
        "error": "bad_request",
        "reason": f"inequivalent arg 'alternate-exchange' for exchange '{name}' in vhost '/': "
                  "received the value 'x' of type 'longstr' but current is none"})


def test_exchange_redeclare_builtin(api):
    r = api.put("/api/exchanges/%2F/amq.direct", {"type": "direct", "durable": True})
    assert r.status_code == 204
    r = api.put("/api/exchanges/%2F/amq.direct", {"type": "fanout", "durable": True})
    assert (r.status_code, r.json()) == (400, {
        "error": "bad_request",
        "reason": "inequivalent arg 'type' for exchange 'amq.direct' in vhost '/': "
                  "received 'fanout' but current is 'direct'"})


def test_exchange_unknown_type(api, objs, conns):
    name = uid("x")
    objs.track_exchange(name)
    t = "x-" + uid("type")
    r = api.put(f"/api/exchanges/%2F/{q(name)}", {"type": t})
    assert (r.status_code, r.json()) == (400, {"error": "bad_request",
                                               "reason": f"unknown exchange type '{t}'"})
    assert api.get(f"/api/exchanges/%2F/{q(name)}").status_code == 404
    _, c = conns()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as ei:
        c.channel().exchange_declare(name, t)
    assert (ei.value.reply_code, ei.value.reply_text) == (
        503, f"COMMAND_INVALID - unknown exchange type '{t}'")


def test_exchange_argument_of_wrong_type(api, objs):
    name = uid("x")
    objs.track_exchange(name)
    r = api.put(f"/api/exchanges/%2F/{q(name)}", {"type": "topic",
                                                  "arguments": {"alternate-exchange": 5}})
    assert (r.status_code, r.json()) == (400, {
        "error": "bad_request",
        "reason": f"invalid type 'long' for arg 'alternate-exchange' in exchange '{name}' in "
                  "vhost '/'"})


def test_exchange_bad_bodies(api, objs):
    name = uid("x")
    objs.track_exchange(name)
    r = api.s.put(api.url(f"/api/exchanges/%2F/{q(name)}"), data="{bad", auth=api.auth,
                  timeout=WAIT)
    assert (r.status_code, r.json()) == (400, NOT_JSON)
    r = api.put(f"/api/exchanges/%2F/{q(name)}", {"type": "topic", "durable": "no"})
    assert (r.status_code, r.json()) == (400, {"error": "bad_request",
                                               "reason": ["not_boolean", "no"]})


def test_exchange_amq_names_refused(api, objs):
    name = "amq." + uid("x")
    objs.track_exchange(name)
    assert (lambda r: (r.status_code, r.json()))(
        api.put(f"/api/exchanges/%2F/{q(name)}", {"type": "topic"})) == (401, ACCESS_REFUSED)
    for n in ["amq.direct", "amq.default"]:
        r = api.delete(f"/api/exchanges/%2F/{n}")
        assert (r.status_code, r.json()) == (401, ACCESS_REFUSED), n
    r = api.put("/api/exchanges/%2F/amq.default", {"type": "direct"})
    assert (r.status_code, r.json()) == (401, ACCESS_REFUSED)


def test_exchange_amq_default_is_the_nameless_exchange(api):
    r = api.get("/api/exchanges/%2F/amq.default")
    assert r.status_code == 200
    body = r.json()
    assert (body["name"], body["type"], body["durable"]) == ("", "direct", True)
    assert body["user_who_performed_action"] == "rmq-internal"
    assert body["incoming"] == [] and body["outgoing"] == []


def test_exchange_404_bodies(api):
    nv = q(uid("nv"))
    for path in [f"/api/exchanges/%2F/{q(uid('nx'))}", f"/api/exchanges/{nv}/x",
                 f"/api/exchanges/{nv}"]:
        r = api.get(path)
        assert (r.status_code, r.json()) == (404, NOT_FOUND), path
    r = api.delete(f"/api/exchanges/%2F/{q(uid('nx'))}")
    assert (r.status_code, r.json()) == (404, NOT_FOUND)
    r = api.put(f"/api/exchanges/{nv}/x", {"type": "topic"})
    assert (r.status_code, r.json()) == (404, VHOST_NOT_FOUND)


def test_exchange_name_with_special_characters(api, objs):
    name = uid("x") + "/ü y%"
    objs.exchange(name=name, type_="fanout")
    r = api.get(f"/api/exchanges/%2F/{q(name)}?columns=name,type")
    assert r.json() == {"name": name, "type": "fanout"}
    assert api.delete(f"/api/exchanges/%2F/{q(name)}").status_code == 204


def test_exchange_delete_if_unused(api, objs):
    src = objs.exchange(type_="fanout")
    dst = objs.exchange(type_="fanout")
    assert api.post(f"/api/bindings/%2F/e/{q(src)}/e/{q(dst)}", {}).status_code == 201
    r = api.delete(f"/api/exchanges/%2F/{q(src)}?if-unused=true")
    assert (r.status_code, r.json()) == (400, {
        "error": "bad_request", "reason": f"exchange '{src}' in vhost '/' in use"})
    # being a binding's destination does not count as "in use"
    r = api.delete(f"/api/exchanges/%2F/{q(dst)}?if-unused=true")
    assert r.status_code == 204
    r = api.delete(f"/api/exchanges/%2F/{q(src)}?if-unused=true")
    assert r.status_code == 204
    r = api.delete(f"/api/exchanges/%2F/{q(src)}")
    assert (r.status_code, r.json()) == (404, NOT_FOUND)


def test_exchange_delete_removes_its_bindings(api, objs):
    x = objs.exchange(type_="fanout")
    qu = objs.queue()
    assert api.post(f"/api/bindings/%2F/e/{q(x)}/q/{q(qu)}", {}).status_code == 201
    assert api.delete(f"/api/exchanges/%2F/{q(x)}?if-unused=false").status_code == 204
    assert [b["source"] for b in api.get(f"/api/queues/%2F/{q(qu)}/bindings").json()] == [""]


def test_exchange_bindings_source_and_destination(api, objs):
    a = objs.exchange(type_="topic")
    b = objs.exchange(type_="fanout")
    qu = objs.queue()
    assert api.post(f"/api/bindings/%2F/e/{q(a)}/e/{q(b)}", {"routing_key": "r"}).status_code \
        == 201
    assert api.post(f"/api/bindings/%2F/e/{q(a)}/q/{q(qu)}", {"routing_key": "k"}).status_code \
        == 201
    src = api.get(f"/api/exchanges/%2F/{q(a)}/bindings/source").json()
    e2e = {"source": a, "vhost": "/", "destination": b, "destination_type": "exchange",
           "routing_key": "r", "arguments": {}, "properties_key": "r"}
    e2q = {"source": a, "vhost": "/", "destination": qu, "destination_type": "queue",
           "routing_key": "k", "arguments": {}, "properties_key": "k"}
    assert sorted(src, key=lambda x: x["destination"]) == sorted([e2e, e2q],
                                                                 key=lambda x: x["destination"])
    assert api.get(f"/api/exchanges/%2F/{q(b)}/bindings/destination").json() == [e2e]
    assert api.get(f"/api/exchanges/%2F/{q(b)}/bindings/source").json() == []
    assert api.get(f"/api/exchanges/%2F/{q(a)}/bindings/destination").json() == []


def test_exchange_bindings_of_missing_exchange_are_empty(api):
    r = api.get(f"/api/exchanges/%2F/{q(uid('nx'))}/bindings/source")
    assert (r.status_code, r.json()) == (200, [])


def test_exchange_message_stats_after_publish(api, objs, conns):
    x = objs.exchange(type_="fanout")
    qu = objs.queue()
    assert api.post(f"/api/bindings/%2F/e/{q(x)}/q/{q(qu)}", {}).status_code == 201
    assert "message_stats" not in api.get(f"/api/exchanges/%2F/{q(x)}").json()
    _, c = conns()
    ch = confirmed(c)
    ch.basic_publish(x, "", b"a")
    ch.basic_publish(x, "", b"b")
    body = poll(lambda: api.get(f"/api/exchanges/%2F/{q(x)}").json(),
                lambda b: b.get("message_stats", {}).get("publish_out") == 2
                and b["message_stats"].get("publish_in") == 2, what="exchange message_stats")
    ms = body["message_stats"]
    assert set(ms) == {"publish_in", "publish_in_details", "publish_out", "publish_out_details"}
    assert ms["publish_in"] == 2
    assert set(ms["publish_in_details"]) == {"rate"}


# ---------------------------------------------------------------------------------------------
# exchange publish

def pub(api, exchange, routing_key, payload="hi", properties=None, encoding="string",
        vhost="/"):
    return api.post(f"/api/exchanges/{q(vhost)}/{q(exchange)}/publish",
                    {"properties": properties or {}, "routing_key": routing_key,
                     "payload": payload, "payload_encoding": encoding})


def test_publish_routed_message_arrives_over_amqp(api, objs, conns):
    name = objs.queue()
    props = {"delivery_mode": 2, "headers": {"a": 1, "b": "x", "c": True, "d": [1, 2],
                                             "e": {"z": 1}, "big": 2 ** 40, "neg": -3},
             "content_type": "application/json", "priority": 1, "timestamp": 123,
             "message_id": "m", "correlation_id": "c", "reply_to": "r", "expiration": "100000",
             "type": "t", "user_id": ADMIN[0], "app_id": "a", "content_encoding": "gzip"}
    r = pub(api, "amq.default", name, "aGVsbG8=", props, "base64")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"routed": True}
    _, c = conns()
    method, p, body = c.channel().basic_get(name, auto_ack=True)
    assert body == b"hello"
    assert method.exchange == "" and method.routing_key == name
    assert p.delivery_mode == 2
    assert p.headers == props["headers"]
    assert (p.content_type, p.content_encoding, p.priority, p.timestamp) == (
        "application/json", "gzip", 1, 123)
    assert (p.message_id, p.correlation_id, p.reply_to, p.expiration) == ("m", "c", "r", "100000")
    assert (p.type, p.user_id, p.app_id) == ("t", ADMIN[0], "a")


def test_publish_then_get_roundtrip(api, objs):
    name = objs.queue()
    assert pub(api, "amq.default", name, "é", {"delivery_mode": 1, "headers": {}}).json() == {
        "routed": True}
    (m,) = api.post(f"/api/queues/%2F/{q(name)}/get",
                    {"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"}).json()
    assert m == {"payload_bytes": 2, "redelivered": False, "exchange": "", "routing_key": name,
                 "message_count": 0, "properties": {"delivery_mode": 1, "headers": {}},
                 "payload": "é", "payload_encoding": "string"}


def test_publish_through_topic_exchange(api, objs, conns):
    x = objs.exchange(type_="topic")
    qu = objs.queue()
    assert api.post(f"/api/bindings/%2F/e/{q(x)}/q/{q(qu)}",
                    {"routing_key": "a.#"}).status_code == 201
    assert pub(api, x, "a.b.c", "yes").json() == {"routed": True}
    assert pub(api, x, "b.a", "no").json() == {"routed": False}
    _, c = conns()
    ch = c.channel()
    method, _, body = ch.basic_get(qu, auto_ack=True)
    assert (body, method.exchange, method.routing_key) == (b"yes", x, "a.b.c")
    assert ch.basic_get(qu, auto_ack=True) == (None, None, None)


def test_publish_unroutable(api):
    assert pub(api, "amq.default", uid("nowhere")).json() == {"routed": False}


@pytest.mark.parametrize("missing", ["properties", "routing_key", "payload", "payload_encoding"])
def test_publish_missing_key(api, missing):
    body = {"properties": {}, "routing_key": "x", "payload": "x", "payload_encoding": "string"}
    del body[missing]
    r = api.post("/api/exchanges/%2F/amq.default/publish", body)
    assert (r.status_code, r.json()) == (400, {"error": "bad_request",
                                               "reason": f"[{{key_missing,{missing}}}]"})


def test_publish_bad_payloads(api):
    r = pub(api, "amq.default", "x", "!!!", encoding="base64")
    assert (r.status_code, r.json()) == (400, {"error": "bad_request",
                                               "reason": ["not_base64", "!!!"]})
    r = pub(api, "amq.default", "x", "x", encoding="bogus")
    assert (r.status_code, r.json()) == (400, {"error": "bad_request",
                                               "reason": ["unsupported_encoding", "bogus"]})
    r = pub(api, "amq.default", "x", 5)
    assert (r.status_code, r.json()) == (400, {"error": "bad_request",
                                               "reason": "payload_not_string"})
    r = api.s.post(api.url("/api/exchanges/%2F/amq.default/publish"), data="{bad",
                   auth=api.auth, timeout=WAIT)
    assert (r.status_code, r.json()) == (400, NOT_JSON)


@pytest.mark.parametrize("props,reason", [
    ({"delivery_mode": "x"}, ["not_int", "delivery_mode"]),
    ({"priority": "1"}, ["not_int", "priority"]),
    ({"timestamp": "x"}, ["not_int", "timestamp"]),
    ({"expiration": 60000}, ["not_string", "expiration"]),
    ({"content_type": 5}, ["not_string", "content_type"]),
    ({"headers": {"g": None}}, "null_not_allowed"),
])
def test_publish_bad_properties(api, props, reason):
    r = pub(api, "amq.default", uid("nowhere"), "x", props)
    assert (r.status_code, r.json()) == (400, {"error": "bad_request", "reason": reason})


def test_publish_unknown_property_is_ignored(api, objs):
    name = objs.queue()
    assert pub(api, "amq.default", name, "x", {"bogus": "x"}).json() == {"routed": True}


def test_publish_user_id_mismatch(api, objs):
    name = objs.queue()
    r = pub(api, "amq.default", name, "x", {"user_id": "other"})
    assert (r.status_code, r.json()) == (400, {
        "error": "bad_request",
        "reason": "406 PRECONDITION_FAILED - user_id property set to 'other' but authenticated "
                  f"user was '{ADMIN[0]}'"})


def test_publish_to_missing_exchange(api):
    x = uid("nx")
    r = pub(api, x, "k")
    assert (r.status_code, r.json()) == (400, {
        "error": "bad_request", "reason": f"404 NOT_FOUND - no exchange '{x}' in vhost '/'"})
    r = pub(api, "amq.default", "k", vhost=uid("nv"))
    assert (r.status_code, r.json()) == (401, ACCESS_REFUSED)


def test_publish_to_internal_exchange(api):
    r = pub(api, "amq.rabbitmq.trace", "k")
    assert (r.status_code, r.json()) == (400, {
        "error": "bad_request",
        "reason": "403 ACCESS_REFUSED - cannot publish to internal exchange "
                  "'amq.rabbitmq.trace' in vhost '/'"})


def test_publish_rejected_by_queue_limit(api, objs):
    name = objs.queue(body={"arguments": {"x-max-length": 1, "x-overflow": "reject-publish"}})
    assert pub(api, "amq.default", name).json() == {"routed": True}
    r = pub(api, "amq.default", name)
    assert (r.status_code, r.json()) == (400, {
        "error": "bad_request",
        "reason": "rejected Unable to publish message. Check queue limits."})


# ---------------------------------------------------------------------------------------------
# bindings

BINDING_KEYS = ["source", "vhost", "destination", "destination_type", "routing_key",
                "arguments", "properties_key"]


def test_binding_post_201_with_location(api, objs):
    x = objs.exchange(type_="topic")
    qu = objs.queue()
    r = api.post(f"/api/bindings/%2F/e/{q(x)}/q/{q(qu)}", {"routing_key": "a.b",
                                                           "arguments": {}})
    assert (r.status_code, r.text) == (201, "")
    assert r.headers["location"] == f"{qu}/a.b"
    # the same binding again is still 201
    r = api.post(f"/api/bindings/%2F/e/{q(x)}/q/{q(qu)}", {"routing_key": "a.b",
                                                           "arguments": {}})
    assert (r.status_code, r.headers["location"]) == (201, f"{qu}/a.b")
    r = api.get(f"/api/bindings/%2F/e/{q(x)}/q/{q(qu)}")
    assert r.status_code == 200
    (b,) = r.json()
    assert list(b) == BINDING_KEYS
    assert b == {"source": x, "vhost": "/", "destination": qu, "destination_type": "queue",
                 "routing_key": "a.b", "arguments": {}, "properties_key": "a.b"}


def test_binding_empty_routing_key_props_is_tilde(api, objs):
    x = objs.exchange(type_="fanout")
    qu = objs.queue()
    for body in [{}, None]:
        r = api.post(f"/api/bindings/%2F/e/{q(x)}/q/{q(qu)}", body)
        assert (r.status_code, r.headers["location"]) == (201, f"{qu}/~")
    r = api.get(f"/api/bindings/%2F/e/{q(x)}/q/{q(qu)}/~")
    assert r.status_code == 200
    assert r.json() == {"source": x, "vhost": "/", "destination": qu,
                        "destination_type": "queue", "routing_key": "", "arguments": {},
                        "properties_key": "~"}


@pytest.mark.parametrize("rk,pk", [
    ("a/b c%~_.", "a%2Fb+c%25%7E_."),
    ("ünï", "%C3%BCn%C3%AF"),
    ("x y", "x+y"),
    ("#", "%23"),
    ("*.a-b", "%2A.a-b"),
])
def test_binding_properties_key_escaping(api, objs, rk, pk):
    assert props_key(rk) == pk
    x = objs.exchange(type_="topic")
    qu = objs.queue()
    r = api.post(f"/api/bindings/%2F/e/{q(x)}/q/{q(qu)}", {"routing_key": rk})
    assert r.status_code == 201
    assert r.headers["location"] == f"{qu}/{erlang_quote_plus(pk)}"
    (b,) = api.get(f"/api/bindings/%2F/e/{q(x)}/q/{q(qu)}").json()
    assert (b["routing_key"], b["properties_key"]) == (rk, pk)
    r = api.get(f"/api/bindings/%2F/e/{q(x)}/q/{q(qu)}/{q(pk)}")
    assert r.status_code == 200 and r.json() == b
    r = api.delete(f"/api/bindings/%2F/e/{q(x)}/q/{q(qu)}/{q(pk)}")
    assert (r.status_code, r.text) == (204, "")
    assert api.get(f"/api/bindings/%2F/e/{q(x)}/q/{q(qu)}").json() == []


def test_binding_props_segment_plus_means_space(api, objs):
    x = objs.exchange(type_="direct")
    qu = objs.queue()
    assert api.post(f"/api/bindings/%2F/e/{q(x)}/q/{q(qu)}",
                    {"routing_key": "x y"}).status_code == 201
    for seg in ["x%2By", "x+y", "x%20y"]:
        r = api.get(f"/api/bindings/%2F/e/{q(x)}/q/{q(qu)}/{seg}")
        assert r.status_code == 200, seg
        assert r.json()["routing_key"] == "x y"


def test_binding_location_quotes_destination_with_plus(api, objs):
    x = objs.exchange(type_="direct")
    qu = objs.queue(name=uid("q") + " sp")
    r = api.post(f"/api/bindings/%2F/e/{q(x)}/q/{q(qu)}", {"routing_key": "k"})
    assert r.status_code == 201
    assert r.headers["location"] == f"{erlang_quote_plus(qu)}/k"


def test_binding_with_arguments(api, objs):
    x = objs.exchange(type_="headers")
    qu = objs.queue()
    args = {"x-match": "any", "b": "s", "n": 1}
    r = api.post(f"/api/bindings/%2F/e/{q(x)}/q/{q(qu)}", {"routing_key": "k",
                                                           "arguments": args})
    assert r.status_code == 201
    loc = r.headers["location"]
    assert re.fullmatch(re.escape(qu) + r"/k~[A-Za-z0-9_-]{6}", loc), loc
    (b,) = api.get(f"/api/bindings/%2F/e/{q(x)}/q/{q(qu)}").json()
    assert b["arguments"] == args
    pk = b["properties_key"]
    assert re.fullmatch(r"k~[A-Za-z0-9_-]{6}", pk), pk
    assert loc == f"{qu}/{erlang_quote_plus(pk)}"
    r = api.get(f"/api/bindings/%2F/e/{q(x)}/q/{q(qu)}/{q(pk)}")
    assert (r.status_code, r.json()) == (200, b)
    # a hash that matches no binding
    r = api.get(f"/api/bindings/%2F/e/{q(x)}/q/{q(qu)}/k~AAAAAA")
    assert (r.status_code, r.json()) == (404, NOT_FOUND)
    # the binding without arguments is a different binding
    r = api.get(f"/api/bindings/%2F/e/{q(x)}/q/{q(qu)}/k")
    assert (r.status_code, r.json()) == (404, NOT_FOUND)
    assert api.delete(f"/api/bindings/%2F/e/{q(x)}/q/{q(qu)}/{q(pk)}").status_code == 204
    assert api.get(f"/api/bindings/%2F/e/{q(x)}/q/{q(qu)}").json() == []


def test_binding_same_key_different_arguments_have_distinct_props_keys(api, objs):
    x = objs.exchange(type_="headers")
    qu = objs.queue()
    for n in [1, 2]:
        assert api.post(f"/api/bindings/%2F/e/{q(x)}/q/{q(qu)}",
                        {"routing_key": "", "arguments": {"n": n}}).status_code == 201
    bs = api.get(f"/api/bindings/%2F/e/{q(x)}/q/{q(qu)}").json()
    assert len(bs) == 2
    pks = [b["properties_key"] for b in bs]
    assert len(set(pks)) == 2
    for b in bs:
        assert b["properties_key"].startswith("~")
        assert api.get(f"/api/bindings/%2F/e/{q(x)}/q/{q(qu)}/"
                       f"{q(b['properties_key'])}").json() == b


def test_binding_delete_then_404(api, objs):
    x = objs.exchange(type_="direct")
    qu = objs.queue()
    api.post(f"/api/bindings/%2F/e/{q(x)}/q/{q(qu)}", {"routing_key": "k"})
    r = api.delete(f"/api/bindings/%2F/e/{q(x)}/q/{q(qu)}/k")
    assert (r.status_code, r.text) == (204, "")
    r = api.delete(f"/api/bindings/%2F/e/{q(x)}/q/{q(qu)}/k")
    assert (r.status_code, r.json()) == (404, NOT_FOUND)
    r = api.get(f"/api/bindings/%2F/e/{q(x)}/q/{q(qu)}/k")
    assert (r.status_code, r.json()) == (404, NOT_FOUND)
    r = api.get(f"/api/bindings/%2F/e/{q(x)}/q/{q(qu)}/a~b~c")
    assert (r.status_code, r.json()) == (404, NOT_FOUND)


def test_binding_routes_over_amqp(api, objs, conns):
    x = objs.exchange(type_="direct")
    qu = objs.queue()
    assert api.post(f"/api/bindings/%2F/e/{q(x)}/q/{q(qu)}",
                    {"routing_key": "rk"}).status_code == 201
    _, c = conns()
    ch = confirmed(c)
    ch.basic_publish(x, "rk", b"via-binding")
    method, _, body = ch.basic_get(qu, auto_ack=True)
    assert body == b"via-binding"
    assert api.delete(f"/api/bindings/%2F/e/{q(x)}/q/{q(qu)}/rk").status_code == 204
    ch.basic_publish(x, "rk", b"dropped")
    ch.basic_publish("", qu, b"marker")
    _, _, body = ch.basic_get(qu, auto_ack=True)
    assert body == b"marker"


def test_binding_exchange_to_exchange(api, objs, conns):
    a = objs.exchange(type_="direct")
    b = objs.exchange(type_="fanout")
    qu = objs.queue()
    r = api.post(f"/api/bindings/%2F/e/{q(a)}/e/{q(b)}", {"routing_key": "r"})
    assert (r.status_code, r.headers["location"]) == (201, f"{b}/r")
    assert api.post(f"/api/bindings/%2F/e/{q(b)}/q/{q(qu)}", {}).status_code == 201
    r = api.get(f"/api/bindings/%2F/e/{q(a)}/e/{q(b)}")
    assert r.json() == [{"source": a, "vhost": "/", "destination": b,
                         "destination_type": "exchange", "routing_key": "r", "arguments": {},
                         "properties_key": "r"}]
    r = api.get(f"/api/bindings/%2F/e/{q(a)}/e/{q(b)}/r")
    assert r.status_code == 200 and r.json()["destination_type"] == "exchange"
    _, c = conns()
    ch = confirmed(c)
    ch.basic_publish(a, "r", b"e2e")
    _, _, body = ch.basic_get(qu, auto_ack=True)
    assert body == b"e2e"
    assert api.delete(f"/api/bindings/%2F/e/{q(a)}/e/{q(b)}/r").status_code == 204
    assert api.get(f"/api/bindings/%2F/e/{q(a)}/e/{q(b)}").json() == []


def test_binding_post_missing_objects(api, objs):
    x = objs.exchange(type_="direct")
    qu = objs.queue()
    nx, nq = uid("nx"), uid("nq")
    r = api.post(f"/api/bindings/%2F/e/{q(nx)}/q/{q(qu)}", {"routing_key": "r"})
    assert (r.status_code, r.json()) == (404, {"error": "not_found",
                                               "reason": f"no exchange '{nx}' in vhost '/'"})
    r = api.post(f"/api/bindings/%2F/e/{q(x)}/q/{q(nq)}", {"routing_key": "r"})
    assert (r.status_code, r.json()) == (404, {"error": "not_found",
                                               "reason": f"no queue '{nq}' in vhost '/'"})
    r = api.post(f"/api/bindings/%2F/e/{q(x)}/e/{q(nx)}", {"routing_key": "r"})
    assert (r.status_code, r.json()) == (404, {"error": "not_found",
                                               "reason": f"no exchange '{nx}' in vhost '/'"})
    r = api.post(f"/api/bindings/{q(uid('nv'))}/e/{q(x)}/q/{q(qu)}", {"routing_key": "r"})
    assert (r.status_code, r.json()) == (404, VHOST_NOT_FOUND)


def test_binding_get_lists_of_missing_objects_are_empty(api):
    nv = q(uid("nv"))
    for path in [f"/api/bindings/%2F/e/{q(uid('nx'))}/q/{q(uid('nq'))}",
                 f"/api/bindings/{nv}/e/x/q/y"]:
        r = api.get(path)
        assert (r.status_code, r.json()) == (200, []), path
    r = api.get(f"/api/bindings/{nv}")
    assert (r.status_code, r.json()) == (404, NOT_FOUND)


def test_binding_default_exchange_refused(api, objs):
    qu = objs.queue()
    for x in ["amq.default", ""]:
        r = api.post(f"/api/bindings/%2F/e/{x}/q/{q(qu)}", {"routing_key": "r"})
        assert (r.status_code, r.json()) == (401, ACCESS_REFUSED), x


def test_binding_invalid_x_match(api, objs):
    qu = objs.queue()
    r = api.post(f"/api/bindings/%2F/e/amq.headers/q/{q(qu)}",
                 {"routing_key": "", "arguments": {"x-match": "bogus"}})
    assert (r.status_code, r.json()) == (400, {
        "error": "bad_request",
        "reason": "Invalid x-match field value <<\"bogus\">>; expected all, any, all-with-x, "
                  "or any-with-x"})


def test_bindings_lists_sorted(api, scratch):
    v = scratch.vhost("b")
    scratch.grant(ADMIN[0], v)
    vq = q(v)
    for n in ["qb", "qa"]:
        assert api.put(f"/api/queues/{vq}/{n}", {}).status_code == 201
    assert api.put(f"/api/exchanges/{vq}/xb", {"type": "direct"}).status_code == 201
    for rk in ["z", "a", ""]:
        assert api.post(f"/api/bindings/{vq}/e/xb/q/qa", {"routing_key": rk}).status_code == 201
    expected = [("", "qa", "qa"), ("", "qb", "qb"), ("xb", "qa", ""), ("xb", "qa", "a"),
                ("xb", "qa", "z")]
    r = api.get(f"/api/bindings/{vq}")
    assert r.status_code == 200
    got = [(b["source"], b["destination"], b["routing_key"]) for b in r.json()]
    assert got == expected
    allb = [(b["source"], b["destination"], b["routing_key"])
            for b in api.get("/api/bindings").json() if b["vhost"] == v]
    assert allb == expected
    r = api.get(f"/api/bindings/{vq}?columns=source,routing_key&sort=routing_key"
                "&sort_reverse=true")
    assert r.json() == [{"source": "xb", "routing_key": "z"},
                        {"source": "", "routing_key": "qb"},
                        {"source": "", "routing_key": "qa"},
                        {"source": "xb", "routing_key": "a"},
                        {"source": "xb", "routing_key": ""}]
    # bindings lists ignore pagination
    r = api.get(f"/api/bindings/{vq}?page=1&page_size=2")
    assert isinstance(r.json(), list) and len(r.json()) == 5


# ---------------------------------------------------------------------------------------------
# connections, channels, consumers

CONNECTION_KEYS = [
    "auth_mechanism", "channel_max", "channels", "client_properties", "connected_at",
    "frame_max", "garbage_collection", "host", "name", "node", "peer_cert_issuer",
    "peer_cert_subject", "peer_cert_validity", "peer_host", "peer_port", "port", "protocol",
    "recv_cnt", "recv_oct", "recv_oct_details", "reductions", "reductions_details", "send_cnt",
    "send_oct", "send_oct_details", "send_pend", "ssl", "ssl_cipher", "ssl_hash",
    "ssl_key_exchange", "ssl_protocol", "state", "timeout", "type", "user",
    "user_provided_name", "user_who_performed_action", "vhost",
]


def check_connection(c, cname):
    for k in CONNECTION_KEYS:
        assert k in c, k
    assert c["user_provided_name"] == cname
    assert c["user"] == ADMIN[0] and c["user_who_performed_action"] == ADMIN[0]
    assert c["vhost"] == "/"
    assert c["protocol"] == "AMQP 0-9-1"
    assert c["type"] == "network"
    assert c["auth_mechanism"] == "PLAIN"
    assert c["ssl"] is False
    assert c["state"] == "running"
    assert isinstance(c["name"], str) and " -> " in c["name"]
    assert isinstance(c["peer_port"], int) and isinstance(c["port"], int)
    assert isinstance(c["peer_host"], str) and isinstance(c["host"], str)
    assert c["name"] == f"{c['peer_host']}:{c['peer_port']} -> {c['host']}:{c['port']}"
    assert isinstance(c["connected_at"], int)
    assert isinstance(c["channels"], int)
    assert c["frame_max"] == 131072 and c["channel_max"] == 2047 and c["timeout"] == 60
    cp = c["client_properties"]
    assert cp["product"] == "Pika Python Client Library"
    assert cp["connection_name"] == cname
    assert cp["capabilities"]["publisher_confirms"] is True
    for k in ["recv_oct_details", "send_oct_details", "reductions_details"]:
        assert set(c[k]) == {"rate"}, k


def test_connection_listed_with_keys(api, conns):
    cname, c = conns()
    c.channel()
    item = find_connection(api, cname)
    check_connection(item, cname)
    for k in ["ssl_protocol", "ssl_cipher", "ssl_hash", "ssl_key_exchange", "peer_cert_issuer",
              "peer_cert_subject", "peer_cert_validity"]:
        assert item[k] is None, k
    vlist = api.get("/api/vhosts/%2F/connections").json()
    assert [x["name"] for x in vlist if x.get("user_provided_name") == cname] == [item["name"]]


def test_connection_get_by_name(api, conns):
    cname, c = conns()
    name = find_connection(api, cname)["name"]
    r = api.get(f"/api/connections/{q(name)}")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    check_connection(r.json(), cname)
    assert r.json()["name"] == name
    # unlike the list (null), the single-connection GET gives "" for the TLS fields
    for k in ["ssl_protocol", "ssl_cipher", "ssl_hash", "ssl_key_exchange", "peer_cert_issuer",
              "peer_cert_subject", "peer_cert_validity"]:
        assert r.json()[k] == "", k


def test_connection_404(api):
    r = api.get(f"/api/connections/{q(uid('nc'))}")
    assert (r.status_code, r.json()) == (404, NOT_FOUND)
    r = api.delete(f"/api/connections/{q(uid('nc'))}")
    assert (r.status_code, r.json()) == (404, NOT_FOUND)
    r = api.get(f"/api/vhosts/{q(uid('nv'))}/connections")
    assert (r.status_code, r.json()) == (404, NOT_FOUND)


def wait_closed(conn):
    """Drives pika until the broker closes the connection; returns the exception."""
    deadline = time.monotonic() + POLL
    while time.monotonic() < deadline:
        try:
            conn.process_data_events(time_limit=0.5)
        except pika.exceptions.ConnectionClosedByBroker as e:
            return e
    raise AssertionError("the broker did not close the connection")


def test_connection_delete_with_x_reason(api, conns):
    cname, c = conns()
    c.channel()
    name = find_connection(api, cname)["name"]
    r = api.delete(f"/api/connections/{q(name)}", headers={"X-Reason": "bye now"})
    assert (r.status_code, r.text) == (204, "")
    e = wait_closed(c)
    assert (e.reply_code, e.reply_text) == (320, "CONNECTION_FORCED - bye now")
    poll(lambda: api.get(f"/api/connections/{q(name)}").status_code, lambda s: s == 404,
         what="connection gone")


def test_connection_delete_default_reason(api, conns):
    cname, c = conns()
    name = find_connection(api, cname)["name"]
    assert api.delete(f"/api/connections/{q(name)}").status_code == 204
    e = wait_closed(c)
    assert (e.reply_code, e.reply_text) == (320,
                                            "CONNECTION_FORCED - Closed via management plugin")


CHANNEL_KEYS = [
    "acks_uncommitted", "confirm", "connection_details", "consumer_count", "garbage_collection",
    "global_prefetch_count", "messages_unacknowledged", "messages_uncommitted",
    "messages_unconfirmed", "name", "node", "number", "pending_raft_commands", "prefetch_count",
    "reductions", "reductions_details", "state", "transactional", "user",
    "user_who_performed_action", "vhost",
]


def test_connection_channels_and_channel_detail(api, conns):
    cname, c = conns()
    ch1 = c.channel()
    c.channel()
    ch1.basic_qos(prefetch_count=7)
    qn = uid("cq")
    ch1.queue_declare(qn, exclusive=True)
    ch1.basic_consume(qn, lambda *a: None, consumer_tag="tagA", arguments={"x-priority": 5})
    ch1.basic_consume(qn, lambda *a: None, consumer_tag="tagB", auto_ack=True)
    name = find_connection(api, cname)["name"]
    chans = poll(lambda: api.get(f"/api/connections/{q(name)}/channels").json(),
                 lambda l: len(l) == 2 and {x.get("consumer_count") for x in l} == {0, 2},
                 what="two channels")
    chans.sort(key=lambda x: x["number"])
    assert [x["number"] for x in chans] == [1, 2]
    assert [x["name"] for x in chans] == [f"{name} (1)", f"{name} (2)"]
    for x in chans:
        for k in CHANNEL_KEYS:
            assert k in x, k
        assert set(x["connection_details"]) == {"name", "peer_host", "peer_port"}
        assert x["connection_details"]["name"] == name
        assert x["user"] == ADMIN[0] and x["vhost"] == "/"
        assert x["state"] == "running"
        assert x["confirm"] is False and x["transactional"] is False
    assert (chans[0]["prefetch_count"], chans[0]["consumer_count"]) == (7, 2)
    assert (chans[1]["prefetch_count"], chans[1]["consumer_count"]) == (0, 0)
    assert chans[0]["global_prefetch_count"] == 0

    r = poll(lambda: api.get(f"/api/channels/{q(name + ' (1)')}"),
             lambda r: r.status_code != 200 or len(r.json().get("consumer_details", [])) == 2,
             what="channel consumer_details")
    assert r.status_code == 200
    d = r.json()
    for k in CHANNEL_KEYS + ["consumer_details", "deliveries", "publishes"]:
        assert k in d, k
    assert sorted(cd["consumer_tag"] for cd in d["consumer_details"]) == ["tagA", "tagB"]
    by_tag = {cd["consumer_tag"]: cd for cd in d["consumer_details"]}
    assert by_tag["tagA"]["arguments"] == {"x-priority": 5}
    assert by_tag["tagA"]["ack_required"] is True and by_tag["tagB"]["ack_required"] is False
    assert by_tag["tagA"]["prefetch_count"] == 7
    assert by_tag["tagA"]["queue"] == {"name": qn, "vhost": "/"}

    vchans = api.get("/api/vhosts/%2F/channels").json()
    assert {x["name"] for x in vchans} >= {f"{name} (1)", f"{name} (2)"}
    allchans = api.get("/api/channels").json()
    assert {x["name"] for x in allchans} >= {f"{name} (1)", f"{name} (2)"}
    poll(lambda: find_connection(api, cname), lambda x: x["channels"] == 2,
         what="connection channel count")


def test_channel_404(api):
    r = api.get(f"/api/channels/{q(uid('nch'))}")
    assert (r.status_code, r.json()) == (404, NOT_FOUND)
    r = api.get(f"/api/vhosts/{q(uid('nv'))}/channels")
    assert (r.status_code, r.json()) == (404, NOT_FOUND)


def test_channel_message_stats_after_publish(api, conns):
    cname, c = conns()
    ch = confirmed(c)
    qn = uid("chq")
    ch.queue_declare(qn, exclusive=True)
    for _ in range(3):
        ch.basic_publish("", qn, b"x")
    ch.basic_get(qn, auto_ack=False)
    name = find_connection(api, cname)["name"]
    (x,) = poll(lambda: api.get(f"/api/connections/{q(name)}/channels").json(),
                lambda l: len(l) == 1 and l[0].get("message_stats", {}).get("get") == 1
                and l[0]["message_stats"].get("publish") == 3
                and l[0].get("messages_unacknowledged") == 1, what="channel message_stats")
    ms = x["message_stats"]
    for k in ["publish", "confirm", "return_unroutable", "drop_unroutable", "deliver",
              "deliver_get", "deliver_no_ack", "get", "get_no_ack", "get_empty", "ack",
              "redeliver"]:
        assert is_num(ms[k]) and set(ms[k + "_details"]) == {"rate"}, k
    assert x["messages_unacknowledged"] == 1


CONSUMER_KEYS = {"arguments", "ack_required", "active", "activity_status", "channel_details",
                 "consumer_tag", "exclusive", "prefetch_count", "queue"}


def test_consumers_listed_with_tags_and_prefetch(api, objs, conns):
    qn = objs.queue()
    cname, c = conns()
    ch = c.channel()
    ch.basic_qos(prefetch_count=3)
    tag = uid("tag")
    ch.basic_consume(qn, lambda *a: None, consumer_tag=tag, arguments={"x-priority": 2})

    def mine(path):
        return [x for x in api.get(path).json() if x["queue"]["name"] == qn]

    # the consumer is listed first with "channel_details": [] until its channel's stats arrive
    (cons,) = poll(lambda: mine("/api/consumers"),
                   lambda l: len(l) == 1 and l[0]["channel_details"] != [], what="consumer")
    assert set(cons) == CONSUMER_KEYS
    assert cons["consumer_tag"] == tag
    assert cons["prefetch_count"] == 3
    assert cons["ack_required"] is True
    assert cons["exclusive"] is False
    assert cons["active"] is True and cons["activity_status"] == "up"
    assert cons["arguments"] == {"x-priority": 2}
    assert cons["queue"] == {"name": qn, "vhost": "/"}
    cd = cons["channel_details"]
    assert set(cd) == {"connection_name", "name", "node", "number", "peer_host", "peer_port",
                       "user"}
    name = find_connection(api, cname)["name"]
    assert (cd["connection_name"], cd["name"], cd["number"], cd["user"]) == (
        name, f"{name} (1)", 1, ADMIN[0])
    assert mine("/api/consumers/%2F") == [cons]
    ch.basic_cancel(tag)
    poll(lambda: mine("/api/consumers"), lambda l: l == [], what="consumer gone")


def test_consumers_unknown_vhost(api):
    r = api.get(f"/api/consumers/{q(uid('nv'))}")
    assert (r.status_code, r.json()) == (404, NOT_FOUND)


def test_consumers_in_other_vhost_not_listed(api, scratch, objs, conns):
    v = scratch.vhost("c")
    scratch.grant(ADMIN[0], v)
    qn = objs.queue()
    _, c = conns()
    c.channel().basic_consume(qn, lambda *a: None)
    poll(lambda: [x for x in api.get("/api/consumers/%2F").json() if x["queue"]["name"] == qn],
         lambda l: len(l) == 1, what="consumer")
    assert api.get(f"/api/consumers/{q(v)}").json() == []
    # consumers lists ignore pagination
    assert isinstance(api.get("/api/consumers?page=1&page_size=1").json(), list)


def test_connections_paginated_shape(api, conns):
    cname, c = conns()
    find_connection(api, cname)
    r = api.get("/api/connections?page=1&page_size=1&columns=name")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"filtered_count", "item_count", "items", "page", "page_count",
                         "page_size", "total_count"}
    assert (body["page"], body["page_size"], body["item_count"]) == (1, 1, 1)
    assert body["total_count"] >= 1 and body["page_count"] == body["filtered_count"]
    assert list(body["items"][0]) == ["name"]


def test_management_user_sees_only_own_connections(api, scratch, conns):
    user, pw = scratch.user(tags="management")
    scratch.grant(user, "/")
    cname, c = conns()
    admin_conn = find_connection(api, cname)["name"]
    p = pika.URLParameters(AMQP_URL)
    p.credentials = pika.PlainCredentials(user, pw)
    p.client_properties = {"connection_name": cname + "-u"}
    uc = pika.BlockingConnection(p)
    try:
        uc.channel()
        find_connection(api, cname + "-u")
        mine = Api((user, pw))
        r = mine.get("/api/connections")
        assert r.status_code == 200
        assert {x["user"] for x in r.json()} == {user}
        assert {x["user"] for x in mine.get("/api/channels").json()} <= {user}
        r = mine.get(f"/api/connections/{q(admin_conn)}")
        assert (r.status_code, r.json()) == (401, {
            "error": "not_authorised", "reason": "User not authorised to access object"})
        r = mine.delete(f"/api/connections/{q(admin_conn)}")
        assert r.status_code == 401
    finally:
        safe_close(uc)


# ---------------------------------------------------------------------------------------------
# list endpoints: pagination, filtering, sorting, columns

PAGE_KEYS = ["filtered_count", "item_count", "items", "page", "page_count", "page_size",
             "total_count"]


def test_queues_pagination(api, pvhost):
    v = q(pvhost)
    r = api.get(f"/api/queues/{v}?page=1&page_size=2")
    assert r.status_code == 200
    body = r.json()
    assert sorted(body) == PAGE_KEYS
    assert {k: body[k] for k in PAGE_KEYS if k != "items"} == {
        "filtered_count": 5, "item_count": 2, "page": 1, "page_count": 3, "page_size": 2,
        "total_count": 5}
    assert [i["name"] for i in body["items"]] == ["Pa4", "pa1"]
    for i in body["items"]:
        assert i["vhost"] == pvhost
    body = api.get(f"/api/queues/{v}?page=3&page_size=2&columns=name").json()
    assert (body["item_count"], body["items"]) == (1, [{"name": "x.y"}])
    body = api.get(f"/api/queues/{v}?page=1&columns=name").json()
    assert (body["page_size"], body["page_count"], body["item_count"]) == (100, 1, 5)
    body = api.get(f"/api/queues/{v}?page=1&page_size=500&columns=name").json()
    assert body["page_size"] == 500


def test_page_size_without_page_is_plain_list(api, pvhost):
    r = api.get(f"/api/queues/{q(pvhost)}?page_size=2&columns=name")
    assert r.json() == [{"name": n} for n in ["Pa4", "pa1", "pa2", "pb3", "x.y"]]


def test_page_out_of_range(api, pvhost):
    r = api.get(f"/api/queues/{q(pvhost)}?page=4&page_size=2")
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"error": "page_out_of_range",
                        "reason": "Page out of range, page: 4 page size: 2, len: 5"}


@pytest.mark.parametrize("qs,body", [
    ("page=0", {"error": "invalid_pagination_parameters",
                "reason": "Invalid pagination parameters: page number 0, page size undefined"}),
    ("page=-1", {"error": "invalid_pagination_parameters",
                 "reason": "Invalid pagination parameters: page number -1, page size undefined"}),
    ("page=1&page_size=0", {"error": "invalid_pagination_parameters",
                            "reason": "Invalid pagination parameters: page number 1, page size 0"}),
    ("page=1&page_size=501", {"error": "invalid_pagination_parameters",
                              "reason": "Invalid pagination parameters: page number 1, page "
                                        "size 501"}),
    ("page=x", {"error": "bad_request", "reason": "Pagination parameters are invalid"}),
    ("page=1&page_size=abc", {"error": "bad_request",
                              "reason": "Pagination parameters are invalid"}),
    ("page=1&name=(&use_regex=true", {"error": "bad_request",
                                      "reason": "Pagination parameters are invalid"}),
])
def test_bad_pagination_parameters(api, pvhost, qs, body):
    r = api.get(f"/api/queues/{q(pvhost)}?{qs}")
    assert (r.status_code, r.json()) == (400, body)


def test_pagination_name_filter(api, pvhost):
    v = q(pvhost)
    for qs in ["name=pa", "name=PA", "name=%5Epa&use_regex=true"]:
        body = api.get(f"/api/queues/{v}?page=1&columns=name&{qs}").json()
        assert (body["filtered_count"], body["total_count"], body["item_count"]) == (3, 5, 3), qs
        assert [i["name"] for i in body["items"]] == ["Pa4", "pa1", "pa2"], qs
    # not a regex unless use_regex=true: '.' is literal
    body = api.get(f"/api/queues/{v}?page=1&columns=name&name=x.y&use_regex=false").json()
    assert [i["name"] for i in body["items"]] == ["x.y"]
    body = api.get(f"/api/queues/{v}?page=1&columns=name&name=a.&use_regex=false").json()
    assert body["items"] == []
    assert (body["filtered_count"], body["item_count"], body["page_count"]) == (0, 0, 0)
    # without page, name is ignored
    assert len(api.get(f"/api/queues/{v}?name=pa").json()) == 5


def test_sorting(api, pvhost):
    v = q(pvhost)
    names = ["Pa4", "pa1", "pa2", "pb3", "x.y"]
    assert [i["name"] for i in api.get(f"/api/queues/{v}?columns=name").json()] == names
    assert [i["name"] for i in api.get(f"/api/queues/{v}?columns=name&sort=name"
                                       "&sort_reverse=true").json()] == names[::-1]
    assert [i["name"] for i in api.get(f"/api/queues/{v}?columns=name"
                                       "&sort_reverse=true").json()] == names[::-1]
    r = api.get(f"/api/queues/{v}?columns=name,durable&sort=durable")
    assert r.json() == [{"durable": False, "name": "pa2"}, {"durable": True, "name": "Pa4"},
                        {"durable": True, "name": "pa1"}, {"durable": True, "name": "pb3"},
                        {"durable": True, "name": "x.y"}]
    # an unknown sort key keeps the default order
    assert [i["name"] for i in api.get(f"/api/queues/{v}?columns=name&sort=nosuch").json()] \
        == names
    body = api.get(f"/api/queues/{v}?page=2&page_size=2&columns=name&sort=name"
                   "&sort_reverse=true").json()
    assert body["items"] == [{"name": "pa2"}, {"name": "pa1"}]


def test_columns(api, pvhost):
    v = q(pvhost)
    r = api.get(f"/api/queues/{v}?columns=name,durable,vhost")
    assert r.json()[0] == {"durable": True, "name": "Pa4", "vhost": pvhost}
    r = api.get(f"/api/queues/{v}/pa2?columns=name,durable")
    assert r.json() == {"durable": False, "name": "pa2"}


def test_disable_stats(api, pvhost):
    v = q(pvhost)
    r = api.get(f"/api/queues/{v}?disable_stats=true")
    assert r.status_code == 200
    items = r.json()
    assert [i["name"] for i in items] == ["Pa4", "pa1", "pa2", "pb3", "x.y"]
    for i in items:
        assert set(i) == {"arguments", "auto_delete", "durable", "exclusive", "name", "node",
                          "state", "type", "vhost"}
        assert i["state"] == "live"
    r = api.get(f"/api/queues/{v}/pa1?disable_stats=true")
    assert set(r.json()) == {"arguments", "auto_delete", "durable", "exclusive", "name", "node",
                             "state", "type", "vhost"}


@pytest.mark.parametrize("path", ["/api/consumers", "/api/consumers/%2F", "/api/channels",
                                  "/api/vhosts/%2F/channels"])
def test_disable_stats_refused_for_consumers_and_channels(api, path):
    r = api.get(path + "?disable_stats=true")
    assert (r.status_code, r.json()) == (400, {
        "error": "bad_request", "reason": "Stats in management UI are disabled on this node"})


def test_disable_stats_exchanges_list_has_no_message_stats(api, objs):
    x = objs.exchange(type_="fanout")
    qu = objs.queue()
    assert api.post(f"/api/bindings/%2F/e/{q(x)}/q/{q(qu)}", {}).status_code == 201
    assert pub(api, x, "").json() == {"routed": True}

    def item(qs):
        return [e for e in api.get(f"/api/exchanges/%2F?{qs}").json() if e["name"] == x][0]

    poll(lambda: item("columns=name,message_stats"), lambda e: "message_stats" in e,
         what="exchange message_stats")
    e = item("disable_stats=true")
    assert set(e) == EXCHANGE_LIST_KEYS


def test_enable_queue_totals(api, pvhost):
    v = q(pvhost)
    items = poll(lambda: api.get(f"/api/queues/{v}?disable_stats=true"
                                 "&enable_queue_totals=true").json(),
                 lambda l: all("messages" in i for i in l), what="queue totals")
    for i in items:
        assert set(i) == {"arguments", "auto_delete", "durable", "exclusive", "messages",
                          "messages_ready", "messages_unacknowledged", "name", "node", "state",
                          "type", "vhost"}
        assert (i["messages"], i["messages_ready"], i["messages_unacknowledged"]) == (0, 0, 0)
        assert i["state"] == "running"
    body = api.get(f"/api/queues/{v}?page=1&page_size=2&disable_stats=true"
                   "&enable_queue_totals=true").json()
    assert (body["total_count"], body["item_count"]) == (5, 2)


def test_exchanges_pagination(api, pvhost):
    r = api.get(f"/api/exchanges/{q(pvhost)}?page=1&page_size=3&columns=name,type")
    body = r.json()
    assert {k: body[k] for k in PAGE_KEYS if k != "items"} == {
        "filtered_count": 7, "item_count": 3, "page": 1, "page_count": 3, "page_size": 3,
        "total_count": 7}
    assert body["items"] == [{"name": "", "type": "direct"},
                             {"name": "amq.direct", "type": "direct"},
                             {"name": "amq.fanout", "type": "fanout"}]
    body = api.get(f"/api/exchanges/{q(pvhost)}?page=1&name=TOPIC&columns=name").json()
    assert body["items"] == [{"name": "amq.topic"}]
    body = api.get(f"/api/exchanges/{q(pvhost)}?page=1&name=amq.t&columns=name").json()
    assert body["items"] == [{"name": "amq.topic"}]


def test_global_queue_list_sorted_by_vhost_then_name(api, pvhost):
    items = [(i["vhost"], i["name"]) for i in api.get("/api/queues?columns=vhost,name").json()]
    assert items == sorted(items, key=lambda t: (t[0].encode(), t[1].encode()))
    assert [n for v, n in items if v == pvhost] == ["Pa4", "pa1", "pa2", "pb3", "x.y"]


# ---------------------------------------------------------------------------------------------
# methods not allowed

@pytest.mark.parametrize("method,path,allow", [
    ("POST", "/api/queues/%2F/Q", "HEAD, GET, PUT, DELETE, OPTIONS"),
    ("PATCH", "/api/queues/%2F/Q", "HEAD, GET, PUT, DELETE, OPTIONS"),
    ("POST", "/api/exchanges/%2F/amq.direct", "HEAD, GET, PUT, DELETE, OPTIONS"),
    ("DELETE", "/api/queues", "HEAD, GET, OPTIONS"),
    ("PUT", "/api/queues/%2F", "HEAD, GET, OPTIONS"),
    ("POST", "/api/exchanges", "HEAD, GET, OPTIONS"),
    ("PUT", "/api/exchanges/%2F", "HEAD, GET, OPTIONS"),
    ("GET", "/api/queues/%2F/Q/get", "POST, OPTIONS"),
    ("GET", "/api/queues/%2F/Q/contents", "DELETE, OPTIONS"),
    ("GET", "/api/queues/%2F/Q/actions", "POST, OPTIONS"),
    ("POST", "/api/queues/%2F/Q/bindings", "HEAD, GET, OPTIONS"),
    ("GET", "/api/exchanges/%2F/amq.direct/publish", "POST, OPTIONS"),
    ("PUT", "/api/exchanges/%2F/amq.direct/bindings/source", "HEAD, GET, OPTIONS"),
    ("PUT", "/api/bindings/%2F/e/amq.direct/q/Q", "HEAD, GET, POST, OPTIONS"),
    ("POST", "/api/bindings/%2F/e/amq.direct/q/Q/~", "HEAD, GET, DELETE, OPTIONS"),
    ("PUT", "/api/bindings/%2F", "HEAD, GET, OPTIONS"),
    ("POST", "/api/bindings", "HEAD, GET, OPTIONS"),
    ("POST", "/api/connections", "HEAD, GET, OPTIONS"),
    ("PUT", "/api/connections/x", "HEAD, GET, DELETE, OPTIONS"),
    ("PUT", "/api/connections/x/channels", "HEAD, GET, OPTIONS"),
    ("POST", "/api/channels", "HEAD, GET, OPTIONS"),
    ("DELETE", "/api/channels/x", "HEAD, GET, OPTIONS"),
    ("DELETE", "/api/consumers", "HEAD, GET, OPTIONS"),
    ("POST", "/api/consumers/%2F", "HEAD, GET, OPTIONS"),
    ("PUT", "/api/vhosts/%2F/connections", "HEAD, GET, OPTIONS"),
    ("PUT", "/api/vhosts/%2F/channels", "HEAD, GET, OPTIONS"),
])
def test_method_not_allowed(api, objs, method, path, allow):
    qn = objs.queue()
    path = path.replace("/Q", "/" + q(qn))
    r = api.s.request(method, api.url(path), auth=api.auth, timeout=WAIT)
    assert r.status_code == 405, path
    assert r.headers["allow"] == allow
    assert r.text == ""


def test_options_and_head(api, objs):
    qn = objs.queue()
    r = api.s.options(api.url(f"/api/queues/%2F/{q(qn)}"), auth=api.auth, timeout=WAIT)
    assert (r.status_code, r.headers["allow"]) == (200, "HEAD, GET, PUT, DELETE, OPTIONS")
    r = api.s.head(api.url(f"/api/queues/%2F/{q(qn)}"), auth=api.auth, timeout=WAIT)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.text == ""
