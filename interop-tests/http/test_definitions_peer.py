"""Definitions round trips between two brokers (issue 13): a RabbitMQ 3.10.8 export imports
into the broker under test, and the broker under test's export imports into RabbitMQ.

A module-scoped fixture starts a private RabbitMQ node with the management plugin, the
"peer" (always RabbitMQ). The broker under test is MGMT_URL/AMQP_URL (Warren in CI; RabbitMQ
when the suite runs against RabbitMQ: both must pass). Each test builds a set of objects through
one broker's HTTP API, exports it (GET /api/definitions), imports the export into the other
broker (POST /api/definitions), exports again there and compares the two exports section by
section, then logs in over AMQP on the importing broker with the user's password (the imported
hash must work) and sends messages through the imported exchanges, bindings and queues.

Only what legitimately differs between two brokers is normalised away: the version and
product keys, the order of entries, and everything that is not the test's own (the default
guest user, the '/' vhost, other tests' vhosts and users on a shared broker,
internal_cluster_id). The file posted is the export restricted the same way: importing another
broker's guest user, '/' vhost or cluster id would rewrite the importing broker's own.

The peer's ports are fixed (PEER_AMQP_PORT, PEER_MGMT_PORT, PEER_DIST_PORT; 5697, 15697,
25697 by default). The module is skipped when rabbitmq-server is not installed.
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid

import pika
import pika.exceptions
import pytest
import requests

from conftest import WAIT, Api, amqp, q, uid

PEER_AMQP_PORT = int(os.environ.get("PEER_AMQP_PORT", "5697"))
PEER_MGMT_PORT = int(os.environ.get("PEER_MGMT_PORT", "15697"))
PEER_DIST_PORT = int(os.environ.get("PEER_DIST_PORT", "25697"))
PEER_ADMIN = ("guest", "guest")
CTL_TIMEOUT = 60.0
START_TIMEOUT = 120.0

SECTIONS = ["users", "vhosts", "permissions", "topic_permissions", "parameters", "policies",
            "queues", "exchanges", "bindings"]
VERSION_KEYS = ["rabbit_version", "rabbitmq_version", "product_name", "product_version"]


# ---------------------------------------------------------------------------------------------
# the peer: a private RabbitMQ node with the management plugin

def _listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


class RabbitNode:
    """A RabbitMQ node of the module's own, started as interop-tests/pika/conftest.py's
    ``start_own_broker`` starts one, with the management plugin on: files in a world-writable
    directory under /var/tmp (the node runs as the rabbitmq OS user), a unique node name,
    ``rabbitmqctl -n NODE await_startup`` to wait and ``rabbitmqctl -n NODE stop`` to stop."""

    def __init__(self, name, amqp_port, mgmt_port, dist_port):
        self.amqp_port, self.mgmt_port, self.dist_port = amqp_port, mgmt_port, dist_port
        self.node = f"{name}-{uuid.uuid4().hex[:8]}@localhost"
        self.ctl_prefix = ["rabbitmqctl", "-n", self.node]
        self.mgmt_url = f"http://127.0.0.1:{mgmt_port}"
        self.base = None
        self.proc = None
        self.out = None
        self.startup_seconds = None

    def start(self):
        if not shutil.which("rabbitmq-server") or not shutil.which("rabbitmqctl"):
            pytest.skip("needs rabbitmq-server and rabbitmqctl to start a RabbitMQ peer")
        busy = [p for p in (self.amqp_port, self.mgmt_port, self.dist_port) if _listening(p)]
        if busy:
            pytest.fail(f"ports {busy} of the RabbitMQ peer are in use (a leftover node?); "
                        "set PEER_AMQP_PORT / PEER_MGMT_PORT / PEER_DIST_PORT", pytrace=False)
        self.base = tempfile.mkdtemp(prefix="warren-defs-peer-", dir="/var/tmp")
        os.chmod(self.base, 0o777)
        conf = os.path.join(self.base, "rabbitmq.conf")
        with open(conf, "w") as f:
            f.write(f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}\n"
                    f"management.tcp.port = {self.mgmt_port}\n"
                    f"management.tcp.ip = 127.0.0.1\n"
                    "loopback_users = none\n")
        plugins = os.path.join(self.base, "enabled_plugins")
        with open(plugins, "w") as f:
            f.write("[rabbitmq_management].\n")
        for d in ("mnesia", "log"):
            os.mkdir(os.path.join(self.base, d))
        for root, dirs, files in os.walk(self.base):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o777)
            for f in files:
                os.chmod(os.path.join(root, f), 0o666)
        env = dict(
            os.environ,
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_PORT=str(self.amqp_port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_CONFIG_FILE=conf,
            RABBITMQ_ADVANCED_CONFIG_FILE=os.path.join(self.base, "advanced.config"),
            RABBITMQ_ENABLED_PLUGINS_FILE=plugins,
            RABBITMQ_MNESIA_BASE=os.path.join(self.base, "mnesia"),
            RABBITMQ_LOG_BASE=os.path.join(self.base, "log"),
        )
        started = time.monotonic()
        # In the foreground (not -detached): a node that fails to boot is seen at once.
        self.out = open(os.path.join(self.base, "server.out"), "wb")
        self.proc = subprocess.Popen(["rabbitmq-server"], env=env, stdin=subprocess.DEVNULL,
                                     stdout=self.out, stderr=subprocess.STDOUT)
        try:
            self._await(started)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started

    def _output(self):
        text = []
        for path in (os.path.join(self.base, "server.out"),
                     os.path.join(self.base, "log", f"{self.node}.log")):
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    text.append(f.read()[-20000:])
            except FileNotFoundError:
                pass
        return "\n".join(text)

    def _alive(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"RabbitMQ node {self.node} exited with {self.proc.returncode}:"
                                 f"\n{self._output()}")

    def _await(self, started):
        deadline = started + START_TIMEOUT
        while True:
            self._alive()
            waited = subprocess.run(self.ctl_prefix + ["await_startup", "--timeout", "10"],
                                    capture_output=True, text=True, timeout=CTL_TIMEOUT)
            if waited.returncode == 0:
                break
            assert time.monotonic() < deadline, (
                f"RabbitMQ node {self.node} did not start: {waited.stdout}{waited.stderr}\n"
                f"{self._output()}")
            time.sleep(0.2)  # polling for the node, bounded by the deadline
        # The management listener: polled until the API answers, bounded by the deadline.
        while True:
            self._alive()
            try:
                r = requests.get(f"{self.mgmt_url}/api/overview", auth=PEER_ADMIN, timeout=WAIT)
                if r.status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, (
                f"RabbitMQ node {self.node}: no management API on {self.mgmt_port}\n"
                f"{self._output()}")
            time.sleep(0.05)  # polling for the listener, bounded by the deadline

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            subprocess.run(self.ctl_prefix + ["stop"], capture_output=True, timeout=CTL_TIMEOUT)
            try:
                self.proc.wait(timeout=CTL_TIMEOUT)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"RabbitMQ node {self.node} did not stop") from None
        if self.out is not None:
            self.out.close()
            self.out = None
        if self.base is not None:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None


class NodeApi(Api):
    """conftest's Api against another management URL."""

    def __init__(self, base_url, auth):
        super().__init__(auth)
        self.base_url = base_url

    def url(self, path):
        return f"{self.base_url}{path}"


@pytest.fixture(scope="module")
def peer():
    node = RabbitNode("warren-defs-peer", PEER_AMQP_PORT, PEER_MGMT_PORT, PEER_DIST_PORT)
    node.start()
    print(f"\nRabbitMQ peer {node.node} started in {node.startup_seconds:.1f}s")
    node.api = NodeApi(node.mgmt_url, PEER_ADMIN)
    yield node
    node.stop()


def peer_amqp(node, user, password, vhost):
    return pika.BlockingConnection(pika.ConnectionParameters(
        host="127.0.0.1", port=node.amqp_port, virtual_host=vhost,
        credentials=pika.PlainCredentials(user, password), connection_attempts=1,
        socket_timeout=WAIT))


# ---------------------------------------------------------------------------------------------
# objects made by a test, deleted at its end on both brokers

class Made:
    def __init__(self):
        self.items = []  # (api, vhost, user)

    def add(self, api, vhost, user):
        self.items.append((api, vhost, user))

    def cleanup(self):
        for api, vhost, user in self.items:
            for path in (f"/api/vhosts/{q(vhost)}", f"/api/users/{q(user)}"):
                try:
                    api.delete(path)
                except requests.RequestException:
                    pass


@pytest.fixture
def made():
    m = Made()
    yield m
    m.cleanup()


def ok(r, *codes):
    assert r.status_code in (codes or (201, 204)), (r.request.method, r.request.url,
                                                   r.status_code, r.text)
    return r


# The set of objects both tests build, in a vhost and for a user of their own. Permission
# patterns allow exactly what the AMQP check does.
CONFIGURE, WRITE, READ = "^q\\.", "^(ex\\.|amq\\.topic$)", "^q\\."
EXCHANGES = [
    ("ex.ae", "fanout", {}),
    ("ex.dlx", "fanout", {}),
    ("ex.direct", "direct", {"alternate-exchange": "ex.ae"}),
    ("ex.topic", "topic", {}),
    ("ex.headers", "headers", {}),
]
QUEUES = [
    ("q.main", {"x-max-length": 10, "x-dead-letter-exchange": "ex.dlx",
                "x-dead-letter-routing-key": "dead", "x-message-ttl": 600000}),
    ("q.second", {"x-expires": 3600000, "x-max-priority": 5}),
    ("q.ae", {"x-max-length-bytes": 1048576, "x-overflow": "reject-publish"}),
    ("q.dead", {}),
]
# (source, destination type, destination, routing key, arguments)
BINDINGS = [
    ("ex.direct", "q", "q.main", "k", {}),
    ("ex.direct", "e", "ex.topic", "rk.fw", {"x-note": "e2e", "n": 1}),
    ("ex.topic", "q", "q.second", "rk.#", {}),
    ("ex.ae", "q", "q.ae", "", {}),
    ("ex.dlx", "q", "q.dead", "", {}),
    ("ex.headers", "q", "q.main", "", {"x-match": "all", "h": "v"}),
]
POLICY = {"pattern": "^q\\.main$", "apply-to": "queues", "priority": 3,
          "definition": {"max-length": 100, "message-ttl": 60000}}
EXCHANGE_POLICY = {"pattern": "^ex\\.topic$", "apply-to": "exchanges", "priority": 1,
                   "definition": {"alternate-exchange": "ex.ae"}}
OPERATOR_POLICY = {"pattern": "^q\\.", "apply-to": "queues", "priority": 2,
                   "definition": {"max-length": 1000, "message-ttl": 3600000}}


def populate(api, made, prefix):
    """Builds the set through ``api``; returns (vhost, user, password)."""
    vhost, user, password = uid(f"{prefix}v"), uid(f"{prefix}u"), "pw-" + uuid.uuid4().hex
    made.add(api, vhost, user)
    # Description and tags are not in RabbitMQ 3.10.8's HTTP export (vhost entries have only
    # their name), so they do not travel; they are set all the same, as a real vhost has them.
    ok(api.put(f"/api/vhosts/{q(vhost)}",
               {"description": "round trip vhost", "tags": "peer,definitions"}))
    ok(api.put(f"/api/users/{q(user)}", {"password": password, "tags": "management,policymaker"}))
    ok(api.put(f"/api/permissions/{q(vhost)}/{q(user)}",
               {"configure": CONFIGURE, "write": WRITE, "read": READ}))
    ok(api.put(f"/api/topic-permissions/{q(vhost)}/{q(user)}",
               {"exchange": "amq.topic", "write": "^rk\\.", "read": ".*"}))
    ok(api.put(f"/api/vhost-limits/{q(vhost)}/max-queues", {"value": 50}))
    ok(api.put(f"/api/vhost-limits/{q(vhost)}/max-connections", {"value": 10}))
    ok(api.put(f"/api/user-limits/{q(user)}/max-channels", {"value": 20}))
    ok(api.put(f"/api/policies/{q(vhost)}/pol-queues", POLICY))
    ok(api.put(f"/api/policies/{q(vhost)}/pol-exchanges", EXCHANGE_POLICY))
    ok(api.put(f"/api/operator-policies/{q(vhost)}/op-queues", OPERATOR_POLICY))
    for name, kind, args in EXCHANGES:
        ok(api.put(f"/api/exchanges/{q(vhost)}/{q(name)}",
                   {"type": kind, "durable": True, "auto_delete": False, "internal": False,
                    "arguments": args}))
    for name, args in QUEUES:
        ok(api.put(f"/api/queues/{q(vhost)}/{q(name)}",
                   {"durable": True, "auto_delete": False, "arguments": args}))
    for source, dtype, dest, key, args in BINDINGS:
        ok(api.post(f"/api/bindings/{q(vhost)}/e/{q(source)}/{dtype}/{q(dest)}",
                    {"routing_key": key, "arguments": args}))
    return vhost, user, password


# ---------------------------------------------------------------------------------------------
# exports

def export(api):
    r = ok(api.get("/api/definitions"), 200)
    d = r.json()
    for k in VERSION_KEYS + SECTIONS:
        assert k in d, (k, sorted(d))
    return d


def _canon(entry):
    return json.dumps(entry, sort_keys=True)


def restrict(defs, vhost, user):
    """The export's entries that are the test's own (the user; the vhost and everything in it),
    each section in a canonical order."""
    out = {"users": [u for u in defs["users"] if u["name"] == user],
           "vhosts": [v for v in defs["vhosts"] if v["name"] == vhost]}
    for k in SECTIONS[2:]:
        out[k] = [e for e in defs[k] if e.get("vhost") == vhost]
    return {k: sorted(v, key=_canon) for k, v in out.items()}


def rest(defs, vhost, user):
    """What ``restrict`` leaves out (for checking that the peer's file is posted whole but for
    its defaults)."""
    mine = restrict(defs, vhost, user)
    return {k: sorted([e for e in defs[k] if e not in mine[k]], key=_canon) for k in SECTIONS}


def import_file(defs, vhost, user):
    """The file to post: the export restricted to the test's own entries, with its version and
    product keys and its global parameters other than internal_cluster_id."""
    body = {k: defs[k] for k in VERSION_KEYS}
    body.update(restrict(defs, vhost, user))
    body["global_parameters"] = [p for p in defs.get("global_parameters", [])
                                 if p.get("name") != "internal_cluster_id"]
    return body


def assert_has_everything(mine, vhost, user, password_hash=None):
    """The source export holds every object made (so that the comparison is not of two empty
    sections)."""
    assert len(mine["users"]) == 1, mine["users"]
    u = mine["users"][0]
    assert sorted(u) == ["hashing_algorithm", "limits", "name", "password_hash", "tags"], u
    assert u["tags"] == ["management", "policymaker"], u
    assert u["hashing_algorithm"] == "rabbit_password_hashing_sha256", u
    assert u["limits"] == {"max-channels": 20}, u
    if password_hash is not None:
        assert u["password_hash"] == password_hash
    assert [v["name"] for v in mine["vhosts"]] == [vhost]
    assert {"user": user, "vhost": vhost, "configure": CONFIGURE, "write": WRITE,
            "read": READ} in mine["permissions"], mine["permissions"]
    assert mine["topic_permissions"] == [
        {"user": user, "vhost": vhost, "exchange": "amq.topic", "write": "^rk\\.", "read": ".*"}]
    limits = [p for p in mine["parameters"] if p["component"] == "vhost-limits"]
    assert limits == [{"value": {"max-queues": 50, "max-connections": 10}, "vhost": vhost,
                       "component": "vhost-limits", "name": "limits"}], mine["parameters"]
    assert sorted(p["name"] for p in mine["policies"]) == ["pol-exchanges", "pol-queues"]
    assert {"vhost": vhost, "name": "pol-queues", **POLICY} in mine["policies"], mine["policies"]
    assert len(mine["queues"]) == len(QUEUES), mine["queues"]
    for name, args in QUEUES:
        assert {"name": name, "vhost": vhost, "durable": True, "auto_delete": False,
                "arguments": args} in mine["queues"], (name, mine["queues"])
    for name, kind, args in EXCHANGES:
        assert {"name": name, "vhost": vhost, "type": kind, "durable": True,
                "auto_delete": False, "internal": False, "arguments": args} in mine["exchanges"]
    assert len(mine["exchanges"]) == len(EXCHANGES), mine["exchanges"]
    assert len(mine["bindings"]) == len(BINDINGS), mine["bindings"]
    for source, dtype, dest, key, args in BINDINGS:
        assert {"source": source, "vhost": vhost, "destination": dest,
                "destination_type": {"q": "queue", "e": "exchange"}[dtype],
                "routing_key": key, "arguments": args} in mine["bindings"], (source, dest)


def operator_policies(api, vhost):
    got = ok(api.get(f"/api/operator-policies/{q(vhost)}"), 200).json()
    return sorted(({k: p[k] for k in ("name", "pattern", "apply-to", "priority", "definition")}
                   for p in got), key=_canon)


def assert_same(source, target):
    """Section by section, so that a failure names the section. Entries are compared as JSON
    values: the order of the keys inside an entry is not compared."""
    for k in SECTIONS:
        assert target[k] == source[k], (
            f"section {k!r} differs\nexported by the source: {json.dumps(source[k], indent=1)}\n"
            f"re-exported by the importer: {json.dumps(target[k], indent=1)}")


# ---------------------------------------------------------------------------------------------
# AMQP on the importing broker

def check_amqp(conn, vhost, user):
    """Messages through each imported exchange and binding into the imported queues; the
    imported permissions and topic permissions hold."""
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish("ex.direct", "k", b"direct", mandatory=True)
        ch.basic_publish("ex.direct", "rk.fw", b"e2e", mandatory=True)  # ex.direct -> ex.topic
        ch.basic_publish("ex.direct", "nowhere", b"ae", mandatory=True)  # alternate exchange
        ch.basic_publish("ex.headers", "", b"headers", mandatory=True,
                         properties=pika.BasicProperties(headers={"h": "v"}))
        ch.basic_publish("amq.topic", "rk.allowed", b"topic-ok")  # no queue bound: dropped

        def bodies(queue):
            out = []
            while True:
                method, _, body = ch.basic_get(queue, auto_ack=True)
                if method is None:
                    return out
                out.append(body)

        assert bodies("q.main") == [b"direct", b"headers"]
        assert bodies("q.second") == [b"e2e"]
        assert bodies("q.ae") == [b"ae"]
        # The imported permission refuses a configure outside ^q\.
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            ch.exchange_declare("not-allowed", "direct")
        assert info.value.reply_code == 403, info.value
        # The imported topic permission refuses a routing key outside ^rk\.
        ch = conn.channel()
        ch.confirm_delivery()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            ch.basic_publish("amq.topic", "other", b"refused")
        assert info.value.reply_code == 403, info.value
        assert f"in vhost '{vhost}' refused for user '{user}'" in info.value.reply_text
    finally:
        if conn.is_open:
            conn.close()


# ---------------------------------------------------------------------------------------------
# the tests

def test_rabbitmq_export_imports_into_broker_under_test(peer, made, api):
    """RabbitMQ -> broker under test."""
    vhost, user, password = populate(peer.api, made, "dp")
    made.add(api, vhost, user)
    source = export(peer.api)
    mine = restrict(source, vhost, user)
    assert_has_everything(mine, vhost, user)
    # The peer is private: all the file leaves out is the node's own defaults.
    left = rest(source, vhost, user)
    assert [u["name"] for u in left["users"]] == ["guest"], left["users"]
    assert left["vhosts"] == [{"name": "/"}], left["vhosts"]
    assert [(p["user"], p["vhost"]) for p in left["permissions"]] == [("guest", "/")], left
    assert all(not left[k] for k in SECTIONS[3:]), left

    ok(api.post("/api/definitions", import_file(source, vhost, user)), 204)
    target = restrict(export(api), vhost, user)
    assert_same(mine, target)
    assert operator_policies(api, vhost) == operator_policies(peer.api, vhost)
    check_amqp(amqp(user, password, vhost), vhost, user)


def test_broker_under_test_export_imports_into_rabbitmq(peer, made, api):
    """Broker under test -> RabbitMQ."""
    vhost, user, password = populate(api, made, "dw")
    made.add(peer.api, vhost, user)
    source = export(api)
    mine = restrict(source, vhost, user)
    assert_has_everything(mine, vhost, user)

    ok(peer.api.post("/api/definitions", import_file(source, vhost, user)), 204)
    target = restrict(export(peer.api), vhost, user)
    assert_same(mine, target)
    assert operator_policies(peer.api, vhost) == operator_policies(api, vhost)
    check_amqp(peer_amqp(peer, user, password, vhost), vhost, user)
