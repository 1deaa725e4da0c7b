"""rabbitmqadmin (RabbitMQ's own Python CLI over the management API) against the broker: the
object commands (declare / list / delete queue, exchange and binding, publish, get, purge,
list connections / channels / consumers, close connection).

Outputs and exit codes are those observed with RabbitMQ 3.10.8. rabbitmqadmin prints
"*** Not found: <path>" for any 404 and "*** <reason>" for other errors, on stderr, exit 1.
It sends booleans as the strings "true"/"false" and `count` as a string.
"""

import json
import subprocess
import time
import urllib.parse

import pika
import pytest

from conftest import (ADMIN, AMQP_URL, MGMT_URL, RABBITMQADMIN, WAIT, q, rabbitmqadmin,
                      uid)

POLL = 30.0


def poll(fetch, pred, timeout=POLL, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        last = fetch()
        if pred(last):
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(0.2)


def raw_json(*args):
    r = rabbitmqadmin("-f", "raw_json", *args)
    return json.loads(r.stdout)


def connect(name):
    p = pika.URLParameters(AMQP_URL)
    p.connection_attempts = 1
    p.socket_timeout = WAIT
    p.client_properties = {"connection_name": name}
    return pika.BlockingConnection(p)


class Cleanup:
    def __init__(self, api):
        self.api = api
        self.queues, self.exchanges, self.conns = [], [], []

    def queue(self, name):
        self.queues.append(name)
        return name

    def exchange(self, name):
        self.exchanges.append(name)
        return name

    def conn(self, prefix="ra"):
        name = uid(prefix)
        c = connect(name)
        self.conns.append(c)
        return name, c

    def run(self):
        for c in self.conns:
            try:
                if c.is_open:
                    c.close()
            except Exception:
                pass
        for n in self.queues:
            self.api.delete(f"/api/queues/%2F/{q(n)}")
        for n in self.exchanges:
            self.api.delete(f"/api/exchanges/%2F/{q(n)}")


@pytest.fixture
def tidy(api):
    c = Cleanup(api)
    yield c
    c.run()


def connection_name(api, cname):
    items = poll(lambda: [c for c in api.get("/api/connections").json()
                          if c.get("user_provided_name") == cname],
                 lambda l: len(l) == 1, what=f"connection {cname}")
    return items[0]["name"]


# ---------------------------------------------------------------------------------------------
# queues

def test_declare_list_delete_queue(api, tidy):
    name = tidy.queue(uid("raq"))
    r = rabbitmqadmin("declare", "queue", f"name={name}", "durable=false")
    assert r.stdout.strip() == "queue declared"
    body = api.get(f"/api/queues/%2F/{q(name)}").json()
    assert (body["durable"], body["auto_delete"]) == (False, False)
    items = raw_json("list", "queues", "name", "durable", "auto_delete")
    assert {"auto_delete": False, "durable": False, "name": name} in items
    r = rabbitmqadmin("-f", "tsv", "-q", "list", "queues", "name")
    assert name in r.stdout.splitlines()
    r = rabbitmqadmin("delete", "queue", f"name={name}")
    assert r.stdout.strip() == "queue deleted"
    assert api.get(f"/api/queues/%2F/{q(name)}").status_code == 404
    r = rabbitmqadmin("delete", "queue", f"name={name}", check=False)
    assert r.returncode == 1
    assert r.stderr.strip() == f"*** Not found: /api/queues/%2F/{name}"


def test_declare_queue_defaults_durable(api, tidy):
    name = tidy.queue(uid("raq"))
    rabbitmqadmin("declare", "queue", f"name={name}")
    body = api.get(f"/api/queues/%2F/{q(name)}").json()
    assert (body["durable"], body["auto_delete"], body["arguments"]) == (True, False, {})


def test_declare_queue_with_arguments_and_type(api, tidy):
    name = tidy.queue(uid("raq"))
    rabbitmqadmin("declare", "queue", f"name={name}", "auto_delete=true", "durable=false",
                  'arguments={"x-max-length": 5, "x-message-ttl": 60000}')
    body = api.get(f"/api/queues/%2F/{q(name)}").json()
    assert body["auto_delete"] is True
    assert body["arguments"] == {"x-max-length": 5, "x-message-ttl": 60000}
    qq = tidy.queue(uid("raqq"))
    rabbitmqadmin("declare", "queue", f"name={qq}", "queue_type=quorum")
    (item,) = [i for i in raw_json("list", "queues", "name", "type", "arguments", "durable")
               if i["name"] == qq]
    assert item == {"arguments": {"x-queue-type": "quorum"}, "durable": True, "name": qq,
                    "type": "quorum"}


def test_declare_queue_errors(api, tidy):
    name = tidy.queue(uid("raq"))
    rabbitmqadmin("declare", "queue", f"name={name}", "durable=false")
    r = rabbitmqadmin("declare", "queue", f"name={name}", "durable=true", check=False)
    assert r.returncode == 1
    assert r.stderr.strip() == (f"*** inequivalent arg 'durable' for queue '{name}' in vhost "
                                "'/': received 'true' but current is 'false'")
    other = tidy.queue(uid("raq"))
    r = rabbitmqadmin("declare", "queue", f"name={other}", "durable=maybe", check=False)
    assert (r.returncode, r.stderr.strip()) == (1, "*** ['not_boolean', 'maybe']")
    r = rabbitmqadmin("declare", "queue", f"name={other}", 'arguments={"x-max-length":"bad"}',
                      check=False)
    assert (r.returncode, r.stderr.strip()) == (
        1, f"*** invalid arg 'x-max-length' for queue '{other}' in vhost '/': "
           "\"expected integer, got longstr\"")


def test_list_queues_shows_messages(api, tidy):
    name = tidy.queue(uid("raq"))
    rabbitmqadmin("declare", "queue", f"name={name}")
    for i in range(2):
        rabbitmqadmin("publish", f"routing_key={name}", f"payload=m{i}")
    items = poll(lambda: [i for i in raw_json("list", "queues", "name", "messages")
                          if i["name"] == name],
                 lambda l: l and l[0].get("messages") == 2, what="2 messages")
    assert items == [{"messages": 2, "name": name}]
    r = rabbitmqadmin("list", "queues", "name", "messages")
    line = [ln for ln in r.stdout.splitlines() if f" {name} " in ln]
    assert len(line) == 1 and line[0].split("|")[2].strip() == "2"


def test_list_sort_reverse(api, tidy):
    names = sorted(tidy.queue(uid("raq")) for _ in range(3))
    for n in names:
        rabbitmqadmin("declare", "queue", f"name={n}")
    r = rabbitmqadmin("-f", "tsv", "-q", "--sort", "name", "--sort-reverse", "list", "queues",
                      "name")
    listed = [ln for ln in r.stdout.splitlines() if ln in names]
    assert listed == names[::-1]


def test_purge_queue(api, tidy):
    name = tidy.queue(uid("raq"))
    rabbitmqadmin("declare", "queue", f"name={name}")
    for _ in range(3):
        rabbitmqadmin("publish", f"routing_key={name}", "payload=x")
    r = rabbitmqadmin("purge", "queue", f"name={name}")
    assert r.stdout.strip() == "queue purged"
    assert raw_json("get", f"queue={name}") == []
    r = rabbitmqadmin("get", f"queue={name}")
    assert r.stdout.strip() == "No items"
    r = rabbitmqadmin("purge", "queue", f"name={uid('nq')}", check=False)
    assert r.returncode == 1 and r.stderr.startswith("*** Not found: /api/queues/%2F/")


# ---------------------------------------------------------------------------------------------
# exchanges and bindings

def test_declare_list_delete_exchange(api, tidy):
    name = tidy.exchange(uid("rax"))
    r = rabbitmqadmin("declare", "exchange", f"name={name}", "type=topic")
    assert r.stdout.strip() == "exchange declared"
    body = api.get(f"/api/exchanges/%2F/{q(name)}").json()
    # rabbitmqadmin's defaults: durable=true, auto_delete=false, internal=false
    assert (body["type"], body["durable"], body["auto_delete"], body["internal"]) == (
        "topic", True, False, False)
    assert {"name": name, "type": "topic"} in raw_json("list", "exchanges", "name", "type")
    r = rabbitmqadmin("delete", "exchange", f"name={name}")
    assert r.stdout.strip() == "exchange deleted"
    r = rabbitmqadmin("delete", "exchange", f"name={name}", check=False)
    assert (r.returncode, r.stderr.strip()) == (1, f"*** Not found: /api/exchanges/%2F/{name}")


def test_declare_exchange_unknown_type(api, tidy):
    name = tidy.exchange(uid("rax"))
    t = "x-" + uid("type")
    r = rabbitmqadmin("declare", "exchange", f"name={name}", f"type={t}", check=False)
    assert (r.returncode, r.stderr.strip()) == (1, f"*** unknown exchange type '{t}'")


def test_list_exchanges_default_columns(api):
    r = rabbitmqadmin("list", "exchanges")
    lines = r.stdout.splitlines()
    assert [c.strip() for c in lines[1].split("|")[1:-1]] == ["name", "type"]
    assert any(ln.split("|")[1].strip() == "amq.topic" for ln in lines[3:-1])


def test_declare_list_delete_binding(api, tidy):
    x = tidy.exchange(uid("rax"))
    qu = tidy.queue(uid("raq"))
    rabbitmqadmin("declare", "exchange", f"name={x}", "type=direct")
    rabbitmqadmin("declare", "queue", f"name={qu}")
    r = rabbitmqadmin("declare", "binding", f"source={x}", f"destination={qu}",
                      "routing_key=a b")
    assert r.stdout.strip() == "binding declared"
    mine = [b for b in raw_json("list", "bindings") if b["source"] == x]
    assert mine == [{"source": x, "vhost": "/", "destination": qu,
                     "destination_type": "queue", "routing_key": "a b", "arguments": {},
                     "properties_key": "a+b"}]
    r = rabbitmqadmin("list", "bindings", "source", "destination", "routing_key")
    assert any([c.strip() for c in ln.split("|")[1:-1]] == [x, qu, "a b"]
               for ln in r.stdout.splitlines())
    r = rabbitmqadmin("delete", "binding", f"source={x}", "destination_type=queue",
                      f"destination={qu}", "properties_key=a+b")
    assert r.stdout.strip() == "binding deleted"
    assert [b for b in raw_json("list", "bindings") if b["source"] == x] == []
    r = rabbitmqadmin("delete", "binding", f"source={x}", "destination_type=queue",
                      f"destination={qu}", "properties_key=nope", check=False)
    assert (r.returncode, r.stderr.strip()) == (
        1, f"*** Not found: /api/bindings/%2F/e/{x}/q/{qu}/nope")


def test_declare_exchange_to_exchange_binding(api, tidy):
    a = tidy.exchange(uid("rax"))
    b = tidy.exchange(uid("rax"))
    qu = tidy.queue(uid("raq"))
    rabbitmqadmin("declare", "exchange", f"name={a}", "type=fanout")
    rabbitmqadmin("declare", "exchange", f"name={b}", "type=fanout")
    rabbitmqadmin("declare", "queue", f"name={qu}")
    rabbitmqadmin("declare", "binding", f"source={a}", f"destination={b}",
                  "destination_type=exchange")
    rabbitmqadmin("declare", "binding", f"source={b}", f"destination={qu}")
    r = rabbitmqadmin("publish", f"exchange={a}", "routing_key=any", "payload=chained")
    assert r.stdout.strip() == "Message published"
    (m,) = raw_json("get", f"queue={qu}", "ackmode=ack_requeue_false")
    assert (m["payload"], m["exchange"], m["routing_key"]) == ("chained", a, "any")
    r = rabbitmqadmin("delete", "binding", f"source={a}", "destination_type=exchange",
                      f"destination={b}")
    assert r.stdout.strip() == "binding deleted"


# ---------------------------------------------------------------------------------------------
# publish and get

def test_publish_and_get(api, tidy):
    x = tidy.exchange(uid("rax"))
    qu = tidy.queue(uid("raq"))
    rabbitmqadmin("declare", "exchange", f"name={x}", "type=topic")
    rabbitmqadmin("declare", "queue", f"name={qu}")
    rabbitmqadmin("declare", "binding", f"source={x}", f"destination={qu}", "routing_key=a.*")
    r = rabbitmqadmin("publish", f"exchange={x}", "routing_key=a.x", "payload=hello")
    assert r.stdout.strip() == "Message published"
    r = rabbitmqadmin("publish", f"exchange={x}", "routing_key=zzz", "payload=hello")
    assert r.stdout.strip() == "Message published but NOT routed"
    r = rabbitmqadmin("publish", f"routing_key={qu}", "payload=second",
                      'properties={"content_type":"text/plain","headers":{"h":"v"}}')
    assert r.returncode == 0
    r = rabbitmqadmin("get", f"queue={qu}", "count=5")
    lines = r.stdout.splitlines()
    assert [c.strip() for c in lines[1].split("|")[1:-1]] == [
        "routing_key", "exchange", "message_count", "payload", "payload_bytes",
        "payload_encoding", "properties", "redelivered"]
    rows = [[c.strip() for c in ln.split("|")[1:-1]] for ln in lines[3:-1]]
    assert rows == [["a.x", x, "1", "hello", "5", "string", "", "False"],
                    [qu, "", "0", "second", "6", "string", "", "False"]]
    # default ackmode is ack_requeue_true: both are still there, now redelivered
    msgs = raw_json("get", f"queue={qu}", "count=2")
    assert [(m["payload"], m["redelivered"]) for m in msgs] == [("hello", True),
                                                                ("second", True)]
    assert msgs[1]["properties"] == {"headers": {"h": "v"}, "content_type": "text/plain"}
    assert msgs[0]["properties"] == []
    msgs = raw_json("get", f"queue={qu}", "count=2", "ackmode=ack_requeue_false")
    assert len(msgs) == 2
    assert raw_json("get", f"queue={qu}") == []


def test_publish_from_stdin_and_get_over_amqp(api, tidy):
    # conftest's rabbitmqadmin() gives no stdin: run the CLI directly
    if not RABBITMQADMIN:
        pytest.skip("rabbitmqadmin not found (set RABBITMQADMIN)")
    qu = tidy.queue(uid("raq"))
    rabbitmqadmin("declare", "queue", f"name={qu}")
    u = urllib.parse.urlparse(MGMT_URL)
    r = subprocess.run(["python3", RABBITMQADMIN, "-H", u.hostname, "-P", str(u.port or 15672),
                        "-u", ADMIN[0], "-p", ADMIN[1], "publish", f"routing_key={qu}"],
                       input="from stdin \u00e9", capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout.strip()) == (0, "Message published")
    _, c = tidy.conn()
    method, props, body = c.channel().basic_get(qu, auto_ack=True)
    assert body == "from stdin \u00e9".encode()


def test_get_and_publish_errors(api):
    nq, nx = uid("nq"), uid("nx")
    r = rabbitmqadmin("get", f"queue={nq}", check=False)
    assert (r.returncode, r.stderr.strip()) == (1, f"*** Not found: /api/queues/%2F/{nq}/get")
    r = rabbitmqadmin("publish", f"exchange={nx}", "routing_key=x", "payload=y", check=False)
    assert (r.returncode, r.stderr.strip()) == (
        1, f"*** 404 NOT_FOUND - no exchange '{nx}' in vhost '/'")


# ---------------------------------------------------------------------------------------------
# connections, channels, consumers

def test_list_connections_channels_consumers(api, tidy):
    qu = tidy.queue(uid("raq"))
    rabbitmqadmin("declare", "queue", f"name={qu}")
    cname, c = tidy.conn()
    ch = c.channel()
    ch.basic_qos(prefetch_count=3)
    tag = uid("ratag")
    ch.basic_consume(qu, lambda *a: None, consumer_tag=tag)
    name = connection_name(api, cname)

    conns = raw_json("list", "connections", "name", "user", "user_provided_name")
    assert {"name": name, "user": ADMIN[0], "user_provided_name": cname} in conns
    r = rabbitmqadmin("list", "connections")
    lines = r.stdout.splitlines()
    assert [h.strip() for h in lines[1].split("|")[1:-1]] == ["name", "user", "channels"]
    assert any(ln.split("|")[1].strip() == name for ln in lines[3:-1])

    chans = poll(lambda: raw_json("list", "channels", "name", "user", "number"),
                 lambda l: {"name": f"{name} (1)", "number": 1, "user": ADMIN[0]} in l,
                 what="channel listed")
    assert {"name": f"{name} (1)", "number": 1, "user": ADMIN[0]} in chans
    r = rabbitmqadmin("list", "channels")
    assert [h.strip() for h in r.stdout.splitlines()[1].split("|")[1:-1]] == ["name", "user"]

    # a new consumer is listed with "channel_details": [] until its channel's stats arrive
    cons = poll(lambda: [x for x in raw_json("list", "consumers")
                         if x["queue"]["name"] == qu],
                lambda l: len(l) == 1 and l[0]["channel_details"] != [],
                what="consumer listed")
    (cn,) = cons
    assert (cn["consumer_tag"], cn["prefetch_count"], cn["ack_required"]) == (tag, 3, True)
    assert cn["channel_details"]["connection_name"] == name
    r = rabbitmqadmin("-f", "tsv", "-q", "list", "consumers", "consumer_tag", "prefetch_count",
                      "queue.name")
    assert f"{tag}\t3\t{qu}" in r.stdout.splitlines()
    r = rabbitmqadmin("list", "consumers")
    header = [h.strip() for h in r.stdout.splitlines()[1].split("|")[1:-1]]
    assert header == ["ack_required", "active", "activity_status", "consumer_tag", "exclusive",
                      "prefetch_count"]


def test_close_connection(api, tidy):
    cname, c = tidy.conn()
    c.channel()
    name = connection_name(api, cname)
    r = rabbitmqadmin("close", "connection", f"name={name}")
    assert r.stdout.strip() == "connection closed"
    deadline = time.monotonic() + POLL
    err = None
    while time.monotonic() < deadline and err is None:
        try:
            c.process_data_events(time_limit=0.5)
        except pika.exceptions.ConnectionClosedByBroker as e:
            err = e
    assert err is not None, "the broker did not close the connection"
    assert (err.reply_code, err.reply_text) == (320,
                                                "CONNECTION_FORCED - Closed via management plugin")


def test_close_missing_connection(api):
    name = uid("nc")
    r = rabbitmqadmin("close", "connection", f"name={name}", check=False)
    assert (r.returncode, r.stderr.strip()) == (1, f"*** Not found: /api/connections/{name}")


def test_vhost_option(api, scratch):
    v = scratch.vhost("ra")
    scratch.grant(ADMIN[0], v)
    name = uid("raq")
    rabbitmqadmin("-V", v, "declare", "queue", f"name={name}")
    assert api.get(f"/api/queues/{q(v)}/{q(name)}").status_code == 200
    assert [i["name"] for i in raw_json("-V", v, "list", "queues", "name")] == [name]
    assert name not in [i["name"] for i in raw_json("-V", "/", "list", "queues", "name")]
    assert [i["name"] for i in raw_json("-V", v, "list", "exchanges", "name")] == [
        "", "amq.direct", "amq.fanout", "amq.headers", "amq.match", "amq.rabbitmq.trace",
        "amq.topic"]
    rabbitmqadmin("-V", v, "delete", "queue", f"name={name}")
