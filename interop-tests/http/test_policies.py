"""Differential tests of POLICIES and OPERATOR POLICIES: the management API endpoints
(/api/policies, /api/operator-policies), their validation errors and tag access, how a policy
changes classic queues and exchanges as seen over AMQP (max-length trimming, TTL, dead
lettering, alternate exchanges), the precedence between queue arguments, policies and operator
policies, what GET /api/queues and /api/exchanges report, and policies in the definitions export.

Every expectation was captured from RabbitMQ 3.10.8 (see docs/rabbitmq-policies-observed.md).

Policies are applied asynchronously, and RabbitMQ reports a queue's `policy` and
`effective_policy_definition` from its stats, refreshed every 5 s. Tests that need a policy in
force before they publish therefore poll GET /api/queues/{vhost}/{name} until the expected
effective definition shows (bounded by POLL seconds); tests that wait for an effect poll the
queue's message count. No test sleeps to synchronise.

All objects live in the default vhost under unique names; every policy pattern is anchored to
this test's own names, and everything is deleted at the end of the test.
"""

import time

import pika
import pytest
import requests

from conftest import WAIT, Api, amqp, q, uid

POLL = 30.0
V = q("/")
NOT_FOUND = {"error": "Object Not Found", "reason": "Not Found"}
VHOST_NOT_FOUND = {"error": "not_found", "reason": "vhost_not_found"}
NOT_ADMIN = {"error": "not_authorised", "reason": "Not administrator user"}
NOT_MGMT = {"error": "not_authorised", "reason": "Not management user"}
NOT_OBJECT = {"error": "not_authorised", "reason": "User not authorised to access object"}
NOT_VHOST = {"error": "not_authorised", "reason": "User not authorised to access virtual host"}
POLICY_KEYS = ["vhost", "name", "pattern", "apply-to", "definition", "priority"]
KINDS = ["policies", "operator-policies"]


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
        time.sleep(0.1)


def assert_error(r, status):
    """An error answer: `status`, a JSON object with exactly the keys error and reason."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"] == "application/json", r.headers
    body = r.json()
    assert set(body) == {"error", "reason"}, body
    return body


class Policies:
    """Creates policies and operator policies in the default vhost; deletes them at the end."""

    def __init__(self, api):
        self.api = api
        self.made = []

    def set(self, name, pattern, definition, kind="policies", apply_to="queues", priority=0):
        r = self.api.put(f"/api/{kind}/{V}/{q(name)}",
                         {"pattern": pattern, "definition": definition,
                          "apply-to": apply_to, "priority": priority})
        assert r.status_code in (201, 204), r.text
        self.made.append((kind, name))

    def clear(self, name, kind="policies"):
        r = self.api.delete(f"/api/{kind}/{V}/{q(name)}")
        assert r.status_code == 204, r.text

    def cleanup(self):
        for kind, name in self.made:
            self.api.delete(f"/api/{kind}/{V}/{q(name)}")


@pytest.fixture
def pol(api):
    p = Policies(api)
    yield p
    p.cleanup()


class Broker:
    """One AMQP connection with a plain channel and a publishing channel in confirm mode;
    remembers queues and exchanges to delete at the end.

    Publishing waits for each confirm: RabbitMQ answers a passive queue.declare ahead of
    publishes the queue has not handled yet, so a count read right after unconfirmed publishes
    can be short."""

    def __init__(self):
        self.conn = amqp()
        self.ch = self.conn.channel()
        self.pch = self.conn.channel()
        self.pch.confirm_delivery()
        self.queues = []
        self.exchanges = []

    def queue(self, name=None, arguments=None):
        name = name or uid("pq")
        self.ch.queue_declare(name, arguments=arguments or {})
        self.queues.append(name)
        return name

    def exchange(self, kind="fanout", name=None, arguments=None):
        name = name or uid("px")
        self.ch.exchange_declare(name, kind, arguments=arguments or {})
        self.exchanges.append(name)
        return name

    def sink(self, exchange, routing_key=""):
        """A queue bound to `exchange` with `routing_key`."""
        qn = self.queue()
        self.ch.queue_bind(qn, exchange, routing_key)
        return qn

    def publish(self, queue, n=1, body=None, exchange=""):
        """Publishes n messages (bodies "0", "1", ... unless given), each confirmed; returns
        the indexes of the nacked ones."""
        nacked = []
        for i in range(n):
            try:
                self.pch.basic_publish(exchange, queue,
                                       body if body is not None else str(i).encode())
            except pika.exceptions.NackError:
                nacked.append(i)
        return nacked

    def count(self, queue):
        return self.ch.queue_declare(queue, passive=True).method.message_count

    def wait_count(self, queue, n, what=None):
        return poll(lambda: self.count(queue), lambda c: c == n,
                    what=what or f"{n} messages in {queue}")

    def bodies(self, queue):
        out = []
        while True:
            method, _, body = self.ch.basic_get(queue, auto_ack=True)
            if method is None:
                return out
            out.append(body.decode())

    def reject_all(self, queue):
        while True:
            method, _, _ = self.ch.basic_get(queue)
            if method is None:
                return
            self.ch.basic_reject(method.delivery_tag, requeue=False)

    def close(self):
        try:
            ch = self.conn.channel()
            for qn in self.queues:
                ch.queue_delete(qn)
            for ex in self.exchanges:
                ch.exchange_delete(ex)
        finally:
            if self.conn.is_open:
                self.conn.close()


@pytest.fixture
def broker():
    b = Broker()
    yield b
    b.close()


def queue_info(api, name):
    r = api.get(f"/api/queues/{V}/{q(name)}")
    assert r.status_code == 200, r.text
    return r.json()


def wait_effective(api, queue, definition, policy=..., operator_policy=...):
    """Polls GET /api/queues/%2F/{queue} until its effective_policy_definition is `definition`
    (and `policy` / `operator_policy` are the given names, when given)."""
    def ok(info):
        return (info.get("effective_policy_definition") == definition
                and (policy is ... or info.get("policy", "absent") == policy)
                and (operator_policy is ... or info.get("operator_policy", "absent")
                     == operator_policy))
    return poll(lambda: queue_info(api, queue), ok,
                what=f"{queue} to show effective policy {definition}")


def queue_gone(api, name):
    return api.get(f"/api/queues/{V}/{q(name)}").status_code == 404


# ---------------------------------------------------------------------------------------------
# CRUD

@pytest.mark.parametrize("kind", KINDS)
def test_crud_and_defaults(api, kind):
    name = uid("crud")
    path = f"/api/{kind}/{V}/{q(name)}"
    try:
        r = api.put(path, {"pattern": "^nomatch-crud$", "definition": {"max-length": 5}})
        assert r.status_code == 201, r.text
        assert r.content == b""
        r = api.get(path)
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/json"
        body = r.json()
        # apply-to defaults to "all", priority to 0; this key order
        assert body == {"vhost": "/", "name": name, "pattern": "^nomatch-crud$",
                        "apply-to": "all", "definition": {"max-length": 5}, "priority": 0}
        assert list(body) == POLICY_KEYS

        # update (a full replacement) is 204
        r = api.put(path, {"pattern": "^nomatch-crud2$", "definition": {"max-length": 6},
                           "apply-to": "queues", "priority": 3})
        assert r.status_code == 204, r.text
        assert r.content == b""
        assert api.get(path).json() == {
            "vhost": "/", "name": name, "pattern": "^nomatch-crud2$", "apply-to": "queues",
            "definition": {"max-length": 6}, "priority": 3}

        # it is in the per-vhost list and the global list
        assert api.get(path).json() in api.get(f"/api/{kind}/{V}").json()
        assert api.get(path).json() in api.get(f"/api/{kind}").json()

        r = api.delete(path)
        assert r.status_code == 204
        assert r.content == b""
        assert assert_error(api.get(path), 404) == NOT_FOUND
        assert assert_error(api.delete(path), 404) == NOT_FOUND
        assert all(p["name"] != name for p in api.get(f"/api/{kind}").json())
    finally:
        api.delete(path)


@pytest.mark.parametrize("kind", KINDS)
def test_put_ignores_vhost_and_name_in_body(api, kind):
    name = uid("body")
    path = f"/api/{kind}/{V}/{q(name)}"
    try:
        r = api.put(path, {"pattern": "^nomatch$", "definition": {"max-length": 5},
                           "vhost": "elsewhere", "name": "other", "extra": 1})
        assert r.status_code == 201, r.text
        got = api.get(path).json()
        assert (got["vhost"], got["name"]) == ("/", name)
    finally:
        api.delete(path)


def test_policies_and_operator_policies_are_separate(api, pol):
    name = uid("sep")
    pol.set(name, "^nomatch$", {"max-length": 5})
    assert assert_error(api.get(f"/api/operator-policies/{V}/{q(name)}"), 404) == NOT_FOUND
    assert all(p["name"] != name for p in api.get("/api/operator-policies").json())
    pol.set(name, "^nomatch$", {"max-length": 4}, kind="operator-policies")
    assert api.get(f"/api/policies/{V}/{q(name)}").json()["definition"] == {"max-length": 5}
    assert api.get(f"/api/operator-policies/{V}/{q(name)}").json()["definition"] == {
        "max-length": 4}


def test_name_with_slash_and_space(api, pol):
    name = uid("a b/c")
    pol.set(name, "^nomatch$", {"max-length": 1})
    assert api.get(f"/api/policies/{V}/{q(name)}").json()["name"] == name
    assert name in [p["name"] for p in api.get(f"/api/policies/{V}").json()]


def test_policy_lists_filter_by_vhost(api, scratch, pol):
    vhost = scratch.vhost()
    name = uid("vh")
    r = api.put(f"/api/policies/{q(vhost)}/{q(name)}",
                {"pattern": "^x$", "definition": {"max-length": 1}})
    assert r.status_code == 201, r.text
    assert [p["name"] for p in api.get(f"/api/policies/{q(vhost)}").json()] == [name]
    assert all(p["vhost"] == "/" for p in api.get(f"/api/policies/{V}").json())
    assert {"vhost": vhost, "name": name, "pattern": "^x$", "apply-to": "all",
            "definition": {"max-length": 1}, "priority": 0} in api.get("/api/policies").json()


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_vhost(api, kind):
    # listing or reading in an unknown vhost is "Object Not Found"; only PUT says vhost_not_found
    assert assert_error(api.get(f"/api/{kind}/nosuch-vhost-pol"), 404) == NOT_FOUND
    assert assert_error(api.get(f"/api/{kind}/nosuch-vhost-pol/p"), 404) == NOT_FOUND
    assert assert_error(api.delete(f"/api/{kind}/nosuch-vhost-pol/p"), 404) == NOT_FOUND
    r = api.put(f"/api/{kind}/nosuch-vhost-pol/p",
                {"pattern": "a", "definition": {"max-length": 5}})
    assert assert_error(r, 404) == VHOST_NOT_FOUND


# ---------------------------------------------------------------------------------------------
# validation

# (body, exact reason or None, substring of the reason or None); all are 400 bad_request.
# RabbitMQ HTML-escapes `<` and `>` in the reason for /api/policies (Erlang binaries print as
# <<"...">>), so reasons with those are only checked for a stable substring.
INVALID = {
    "bad-regex": ({"pattern": "[", "definition": {"max-length": 5}}, None,
                  "Validation failed\n\npattern should be regular expression but is invalid"),
    "pattern-not-string": ({"pattern": 5, "definition": {"max-length": 5}},
                           "Validation failed\n\npattern should be a binary but was 5\n", None),
    "missing-pattern": ({"definition": {"max-length": 5}}, "[{key_missing,pattern}]", None),
    "missing-definition": ({"pattern": "a"}, "[{key_missing,definition}]", None),
    "empty-definition": ({"pattern": "a", "definition": {}},
                         "Validation failed\n\nno policy provided\n", None),
    "unknown-key": ({"pattern": "a", "definition": {"foo": 5}}, None,
                    "are not recognised policy settings\n"),
    "x-prefixed-key": ({"pattern": "a", "definition": {"x-message-ttl": 5}}, None,
                       "are not recognised policy settings\n"),
    "ttl-string": ({"pattern": "a", "definition": {"message-ttl": "abc"}}, None,
                   "is not a valid message TTL\n"),
    "ttl-negative": ({"pattern": "a", "definition": {"message-ttl": -1}},
                     "Validation failed\n\n-1 is not a valid message TTL\n", None),
    "ttl-float": ({"pattern": "a", "definition": {"message-ttl": 1.5}},
                  "Validation failed\n\n1.5 is not a valid message TTL\n", None),
    "ttl-null": ({"pattern": "a", "definition": {"message-ttl": None}},
                 "Validation failed\n\nnull is not a valid message TTL\n", None),
    "max-length-negative": ({"pattern": "a", "definition": {"max-length": -1}},
                            "Validation failed\n\n-1 is not a valid maximum length\n", None),
    "max-length-string": ({"pattern": "a", "definition": {"max-length": "5"}}, None,
                          "is not a valid maximum length\n"),
    "max-length-bool": ({"pattern": "a", "definition": {"max-length": True}},
                        "Validation failed\n\ntrue is not a valid maximum length\n", None),
    "max-length-bytes-negative": (
        {"pattern": "a", "definition": {"max-length-bytes": -1}},
        "Validation failed\n\n-1 is not a valid maximum length in bytes\n", None),
    "expires-zero": ({"pattern": "a", "definition": {"expires": 0}},
                     "Validation failed\n\n0 is not a valid queue expiry\n", None),
    "overflow-bogus": ({"pattern": "a", "definition": {"overflow": "bogus"}}, None,
                       "is not a valid overflow value\n"),
    "dlx-number": ({"pattern": "a", "definition": {"dead-letter-exchange": 5}},
                   "Validation failed\n\n5 is not a valid dead letter exchange name\n", None),
    "dlrk-number": ({"pattern": "a", "definition": {"dead-letter-routing-key": 5}},
                    "Validation failed\n\n5 is not a valid dead letter routing key\n", None),
    "ae-number": ({"pattern": "a", "definition": {"alternate-exchange": 5}},
                  "Validation failed\n\n5 is not a valid alternate exchange name\n", None),
    "queue-mode-bogus": ({"pattern": "a", "definition": {"queue-mode": "fast"}}, None,
                         "is not a valid queue-mode value\n"),
    "apply-to-bogus": ({"pattern": "a", "definition": {"max-length": 5}, "apply-to": "bogus"},
                       "Validation failed\n\napply-to 'bogus' unrecognised; should be 'queues',"
                       " 'exchanges' or 'all'\n", None),
    "apply-to-classic-queues": (
        {"pattern": "a", "definition": {"max-length": 5}, "apply-to": "classic_queues"},
        "Validation failed\n\napply-to 'classic_queues' unrecognised; should be 'queues',"
        " 'exchanges' or 'all'\n", None),
    "priority-string": ({"pattern": "a", "definition": {"max-length": 5}, "priority": "3"},
                        None, "Validation failed\n\npriority should be a number, actually was"),
    "priority-null": ({"pattern": "a", "definition": {"max-length": 5}, "priority": None},
                      "Validation failed\n\npriority should be a number, actually was null\n",
                      None),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_policy_validation_errors(api, case):
    body, reason, fragment = INVALID[case]
    name = uid("inv")
    path = f"/api/policies/{V}/{q(name)}"
    try:
        got = assert_error(api.put(path, body), 400)
        assert got["error"] == "bad_request"
        if reason is not None:
            assert got["reason"] == reason
        if fragment is not None:
            assert fragment in got["reason"], got
        assert assert_error(api.get(path), 404) == NOT_FOUND
    finally:
        api.delete(path)


def test_policy_validation_error_lists_every_unknown_key(api):
    name = uid("inv")
    try:
        r = api.put(f"/api/policies/{V}/{q(name)}",
                    {"pattern": "a", "definition": {"max-length": 5, "foo": 1, "bar": 2}})
        reason = assert_error(r, 400)["reason"]
        assert "foo" in reason and "bar" in reason and "max-length" not in reason
    finally:
        api.delete(f"/api/policies/{V}/{q(name)}")


def test_policy_validation_error_for_bad_json(api):
    name = uid("inv")
    for data in (b"notjson", b"[]"):
        r = api.s.put(api.url(f"/api/policies/{V}/{q(name)}"), data=data, auth=api.auth,
                      headers={"content-type": "application/json"}, timeout=WAIT)
        assert assert_error(r, 400) == {"error": "bad_request", "reason": "not_json"}


# accepted although odd: no cross-check between keys and apply-to, empty pattern, float and
# negative priorities, zero limits, keys of other queue types
ACCEPTED = {
    "empty-pattern": {"pattern": "", "definition": {"max-length": 5}},
    "queue-key-on-exchanges": {"pattern": "a", "definition": {"max-length": 5},
                               "apply-to": "exchanges"},
    "exchange-key-on-queues": {"pattern": "a", "definition": {"alternate-exchange": "ae"},
                               "apply-to": "queues"},
    "negative-priority": {"pattern": "a", "definition": {"max-length": 5}, "priority": -3},
    "zero-ttl-and-lengths": {"pattern": "a", "definition": {"message-ttl": 0, "max-length": 0,
                                                            "max-length-bytes": 0}},
    "every-overflow": {"pattern": "a", "definition": {"overflow": "reject-publish-dlx"}},
    "quorum-and-stream-keys": {"pattern": "a", "definition": {"delivery-limit": 3,
                                                              "max-age": "1D",
                                                              "queue-leader-locator": "balanced"}},
}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_policy_accepted_odd_bodies(api, scratch, case):
    # in a vhost of its own: the empty pattern matches everything
    path = f"/api/policies/{q(scratch.vhost())}/{q(uid('ok'))}"
    body = ACCEPTED[case]
    r = api.put(path, body)
    assert r.status_code == 201, r.text
    got = api.get(path).json()
    assert got["pattern"] == body["pattern"]
    assert got["definition"] == body["definition"]
    assert got["priority"] == body.get("priority", 0)
    assert got["apply-to"] == body.get("apply-to", "all")


OPERATOR_KEYS_OK = {"message-ttl": 1000, "expires": 1000, "max-length": 1,
                    "max-length-bytes": 1, "max-in-memory-length": 1, "max-in-memory-bytes": 1,
                    "delivery-limit": 1}
OPERATOR_KEYS_REFUSED = {"overflow": "drop-head", "queue-mode": "lazy",
                         "dead-letter-exchange": "dlx", "dead-letter-routing-key": "rk",
                         "alternate-exchange": "ae", "ha-mode": "all", "queue-version": 2,
                         "foo": 1}


@pytest.mark.parametrize("key", sorted(OPERATOR_KEYS_OK))
def test_operator_policy_accepts_key(api, key):
    name = uid("op")
    path = f"/api/operator-policies/{V}/{q(name)}"
    try:
        r = api.put(path, {"pattern": "^nomatch$", "definition": {key: OPERATOR_KEYS_OK[key]}})
        assert r.status_code == 201, r.text
    finally:
        api.delete(path)


@pytest.mark.parametrize("key", sorted(OPERATOR_KEYS_REFUSED))
def test_operator_policy_refuses_key(api, key):
    name = uid("op")
    path = f"/api/operator-policies/{V}/{q(name)}"
    try:
        # also with an allowed key next to it
        for definition in ({key: OPERATOR_KEYS_REFUSED[key]},
                           {"max-length": 5, key: OPERATOR_KEYS_REFUSED[key]}):
            got = assert_error(api.put(path, {"pattern": "a", "definition": definition}), 400)
            assert got["error"] == "bad_request"
            assert got["reason"].startswith("Validation failed\n\n[{")
            assert got["reason"].endswith("are not recognised policy settings\n")
            assert key in got["reason"]
        assert assert_error(api.get(path), 404) == NOT_FOUND
    finally:
        api.delete(path)


@pytest.mark.parametrize("body,reason", [
    ({"pattern": "a", "definition": {"message-ttl": -1}},
     "Validation failed\n\n-1 is not a valid message TTL\n"),
    ({"pattern": "a", "definition": {}}, "Validation failed\n\nno policy provided\n"),
    ({"pattern": "a"}, "[{key_missing,definition}]"),
    ({"pattern": "a", "definition": {"max-length": 5}, "apply-to": "bogus"},
     "Validation failed\n\napply-to 'bogus' unrecognised; should be 'queues', 'exchanges' or "
     "'all'\n"),
], ids=["ttl-negative", "empty-definition", "missing-definition", "apply-to-bogus"])
def test_operator_policy_validation_errors(api, body, reason):
    name = uid("op")
    path = f"/api/operator-policies/{V}/{q(name)}"
    try:
        assert assert_error(api.put(path, body), 400) == {"error": "bad_request",
                                                          "reason": reason}
    finally:
        api.delete(path)


def test_policies_cannot_be_set_through_parameters(api):
    name = uid("par")
    r = api.put(f"/api/parameters/policy/{V}/{q(name)}",
                {"value": {"pattern": "^z$", "definition": {"max-length": 1}, "priority": 0,
                           "apply-to": "all"}})
    assert assert_error(r, 400) == {"error": "bad_request",
                                    "reason": "policies may not be set using this method"}
    assert assert_error(api.get(f"/api/policies/{V}/{q(name)}"), 404) == NOT_FOUND


# ---------------------------------------------------------------------------------------------
# who may do what

class OneShot(Api):
    """An Api whose every request has a connection of its own: RabbitMQ answers a 401 before
    reading a PUT body and then closes the connection, which breaks a reused one."""

    def _do(self, method, path, body=None):
        return requests.request(method, self.url(path), json=body, auth=self.auth,
                                timeout=WAIT)

    def get(self, path, **kw):
        return self._do("GET", path)

    def put(self, path, body=None, **kw):
        return self._do("PUT", path, body)

    def delete(self, path, **kw):
        return self._do("DELETE", path)


@pytest.fixture(scope="module")
def tagged():
    """A vhost `vhost` where each user has full permissions, a vhost `other` where none has,
    one policy and one operator policy in each; one user per tag."""
    api = Api()
    vhost, other = uid("pv"), uid("po")
    for v in (vhost, other):
        assert api.put(f"/api/vhosts/{q(v)}").status_code in (201, 204)
        assert api.put(f"/api/policies/{q(v)}/pol", {"pattern": "^x$",
                       "definition": {"max-length": 1}}).status_code == 201
        assert api.put(f"/api/operator-policies/{q(v)}/opol", {"pattern": "^x$",
                       "definition": {"max-length": 1}}).status_code == 201
    users = {}
    for tag in ("", "management", "policymaker", "monitoring", "administrator"):
        name, pw = uid(f"ptag{tag[:4]}"), "pw-" + uid()
        assert api.put(f"/api/users/{q(name)}", {"password": pw, "tags": tag}).status_code == 201
        assert api.put(f"/api/permissions/{q(vhost)}/{q(name)}",
                       {"configure": ".*", "write": ".*", "read": ".*"}).status_code == 201
        users[tag or "none"] = OneShot((name, pw))
    yield {"vhost": vhost, "other": other, "users": users, "admin": api}
    for u in users.values():
        api.delete(f"/api/users/{q(u.auth[0])}")
    for v in (vhost, other):
        api.delete(f"/api/vhosts/{q(v)}")


def test_untagged_user_is_refused_everything(tagged):
    u, v = tagged["users"]["none"], q(tagged["vhost"])
    for kind in KINDS:
        for r in (u.get(f"/api/{kind}"), u.get(f"/api/{kind}/{v}"), u.get(f"/api/{kind}/{v}/p"),
                  u.put(f"/api/{kind}/{v}/p", {"pattern": "a", "definition": {"max-length": 1}}),
                  u.delete(f"/api/{kind}/{v}/p")):
            assert assert_error(r, 401) == NOT_MGMT


@pytest.mark.parametrize("tag", ["management", "policymaker", "monitoring", "administrator"])
def test_lists_show_visible_vhosts_only(tagged, tag):
    u, v, o = tagged["users"][tag], tagged["vhost"], tagged["other"]
    for kind in KINDS:
        r = u.get(f"/api/{kind}")
        assert r.status_code == 200, r.text
        seen = {p["vhost"] for p in r.json()}
        assert v in seen
        assert (o in seen) == (tag == "administrator")
        r = u.get(f"/api/{kind}/{q(v)}")
        assert r.status_code == 200
        assert [p["name"] for p in r.json()] == (["pol"] if kind == "policies" else ["opol"])
        r = u.get(f"/api/{kind}/{q(o)}")
        if tag == "administrator":
            assert r.status_code == 200
        else:
            # monitoring users included
            assert assert_error(r, 401) == NOT_VHOST


@pytest.mark.parametrize("tag", ["management", "monitoring"])
def test_management_and_monitoring_cannot_touch_single_policies(tagged, tag):
    u, v = tagged["users"][tag], q(tagged["vhost"])
    assert assert_error(u.get(f"/api/policies/{v}/pol"), 401) == NOT_OBJECT
    r = u.put(f"/api/policies/{v}/new", {"pattern": "a", "definition": {"max-length": 1}})
    assert assert_error(r, 401) == NOT_OBJECT
    assert assert_error(u.delete(f"/api/policies/{v}/pol"), 401) == NOT_OBJECT
    assert tagged["admin"].get(f"/api/policies/{v}/pol").status_code == 200


def test_policymaker_manages_policies_in_its_vhosts(tagged):
    u, v, o = tagged["users"]["policymaker"], q(tagged["vhost"]), q(tagged["other"])
    name = uid("pm")
    try:
        assert u.get(f"/api/policies/{v}/pol").status_code == 200
        assert assert_error(u.get(f"/api/policies/{v}/missing"), 404) == NOT_FOUND
        body = {"pattern": "^nomatch$", "definition": {"max-length": 1}}
        assert u.put(f"/api/policies/{v}/{q(name)}", body).status_code == 201
        assert u.put(f"/api/policies/{v}/{q(name)}", body).status_code == 204
        assert u.delete(f"/api/policies/{v}/{q(name)}").status_code == 204
        # a vhost without a permission record
        assert assert_error(u.get(f"/api/policies/{o}/pol"), 401) == NOT_OBJECT
        assert assert_error(u.put(f"/api/policies/{o}/{q(name)}", body), 401) == NOT_OBJECT
        assert tagged["admin"].get(f"/api/policies/{o}/{q(name)}").status_code == 404
        # validation still applies
        r = u.put(f"/api/policies/{v}/{q(name)}", {"pattern": "a", "definition": {}})
        assert assert_error(r, 400)["reason"] == "Validation failed\n\nno policy provided\n"
    finally:
        tagged["admin"].delete(f"/api/policies/{v}/{q(name)}")


@pytest.mark.parametrize("tag", ["management", "policymaker", "monitoring"])
def test_only_administrators_touch_single_operator_policies(tagged, tag):
    u, v = tagged["users"][tag], q(tagged["vhost"])
    body = {"pattern": "a", "definition": {"max-length": 1}}
    assert assert_error(u.get(f"/api/operator-policies/{v}/opol"), 401) == NOT_ADMIN
    assert assert_error(u.get(f"/api/operator-policies/{v}/missing"), 401) == NOT_ADMIN
    assert assert_error(u.put(f"/api/operator-policies/{v}/new", body), 401) == NOT_ADMIN
    assert assert_error(u.delete(f"/api/operator-policies/{v}/opol"), 401) == NOT_ADMIN
    assert tagged["admin"].get(f"/api/operator-policies/{v}/opol").status_code == 200


def test_administrator_needs_no_permission_record(tagged):
    u, o = tagged["users"]["administrator"], q(tagged["other"])
    name = uid("adm")
    body = {"pattern": "^nomatch$", "definition": {"max-length": 1}}
    try:
        for kind in KINDS:
            assert u.get(f"/api/{kind}/{o}").status_code == 200
            assert u.put(f"/api/{kind}/{o}/{q(name)}", body).status_code == 201
            assert u.delete(f"/api/{kind}/{o}/{q(name)}").status_code == 204
    finally:
        for kind in KINDS:
            tagged["admin"].delete(f"/api/{kind}/{o}/{q(name)}")


# ---------------------------------------------------------------------------------------------
# what the queue and exchange objects report

def test_queue_without_policy_reports_nulls_and_empty_definition(api, broker):
    qn = broker.queue()
    info = wait_effective(api, qn, {})
    assert info["policy"] is None
    assert info["operator_policy"] is None
    assert info["effective_policy_definition"] == {}
    assert info["arguments"] == {}


def test_queue_reports_policy_operator_policy_and_merged_definition(api, broker, pol):
    qn = broker.queue()
    pname, oname = uid("pp"), uid("op")
    pol.set(pname, f"^{qn}$", {"max-length": 3, "message-ttl": 50000,
                               "alternate-exchange": "amq.fanout"})
    pol.set(oname, f"^{qn}$", {"max-length": 2, "expires": 600000}, kind="operator-policies")
    # the effective definition merges both (numeric keys both set: the lower value), and
    # keeps keys that do nothing on a queue
    merged = {"alternate-exchange": "amq.fanout", "expires": 600000, "max-length": 2,
              "message-ttl": 50000}
    info = wait_effective(api, qn, merged, policy=pname, operator_policy=oname)
    assert info["arguments"] == {}
    # the queue list reports the same
    row = next(x for x in api.get(f"/api/queues/{V}").json() if x["name"] == qn)
    assert (row["policy"], row["operator_policy"], row["effective_policy_definition"]) == (
        pname, oname, merged)

    pol.clear(pname)
    wait_effective(api, qn, {"expires": 600000, "max-length": 2}, policy=None,
                   operator_policy=oname)
    pol.clear(oname, kind="operator-policies")
    wait_effective(api, qn, {}, policy=None, operator_policy=None)


def test_exchange_reports_policy_only_when_one_applies(api, broker, pol):
    ex = broker.exchange("direct")
    path = f"/api/exchanges/{V}/{q(ex)}"
    assert "policy" not in api.get(path).json()
    # operator policies are not reported on exchanges
    pol.set(uid("op"), f"^{ex}$", {"max-length": 3}, kind="operator-policies", apply_to="all")
    name = uid("pe")
    pol.set(name, f"^{ex}$", {"alternate-exchange": "amq.fanout"}, apply_to="exchanges")
    got = poll(lambda: api.get(path).json(), lambda e: "policy" in e, what="exchange policy")
    assert got["policy"] == name
    assert "operator_policy" not in got and "effective_policy_definition" not in got
    row = next(x for x in api.get(f"/api/exchanges/{V}").json() if x["name"] == ex)
    assert row["policy"] == name
    pol.clear(name)
    poll(lambda: api.get(path).json(), lambda e: "policy" not in e, what="policy gone")


# ---------------------------------------------------------------------------------------------
# effects over AMQP

def test_max_length_policy_trims_an_existing_queue(api, broker, pol):
    qn = broker.queue()
    broker.publish(qn, 10)
    assert broker.count(qn) == 10
    pol.set(uid("ml"), f"^{qn}$", {"max-length": 3})
    broker.wait_count(qn, 3)
    # the oldest messages were dropped (overflow defaults to drop-head)
    assert broker.bodies(qn) == ["7", "8", "9"]


def test_max_length_bytes_policy_trims_an_existing_queue(api, broker, pol):
    qn = broker.queue()
    broker.publish(qn, 10, body=b"0123456789")
    pol.set(uid("mlb"), f"^{qn}$", {"max-length-bytes": 25})
    broker.wait_count(qn, 2)


def test_reject_publish_policy_also_trims_an_existing_queue(api, broker, pol):
    qn = broker.queue()
    broker.publish(qn, 10)
    pol.set(uid("rp"), f"^{qn}$", {"max-length": 3, "overflow": "reject-publish"})
    broker.wait_count(qn, 3)
    assert broker.bodies(qn) == ["7", "8", "9"]


def test_clearing_a_max_length_policy_lifts_the_limit_for_new_messages(api, broker, pol):
    qn = broker.queue()
    name = uid("ml")
    pol.set(name, f"^{qn}$", {"max-length": 2})
    wait_effective(api, qn, {"max-length": 2})
    broker.publish(qn, 5)
    assert broker.count(qn) == 2
    pol.clear(name)

    def grow():
        broker.publish(qn, 1)
        return broker.count(qn)
    # publish one at a time until the queue holds more than the old limit
    poll(grow, lambda c: c > 2, what="limit lifted")
    # trimmed messages do not come back
    before = broker.count(qn)
    broker.publish(qn, 5)
    assert broker.count(qn) == before + 5


def test_message_ttl_policy_expires_new_messages(api, broker, pol):
    qn = broker.queue()
    pol.set(uid("ttl"), f"^{qn}$", {"message-ttl": 100})
    wait_effective(api, qn, {"message-ttl": 100})
    broker.publish(qn, 3)
    broker.wait_count(qn, 0)


def test_expires_policy_deletes_an_existing_unused_queue(api, broker, pol):
    qn = broker.queue()
    pol.set(uid("exp"), f"^{qn}$", {"expires": 300})
    poll(lambda: queue_gone(api, qn), bool, what=f"{qn} to expire")


def test_dlx_policy_dead_letters_rejected_messages(api, broker, pol):
    dlx = broker.exchange("fanout")
    sink = broker.sink(dlx)
    qn = broker.queue()
    broker.publish(qn, 2)
    pol.set(uid("dlx"), f"^{qn}$", {"dead-letter-exchange": dlx})
    wait_effective(api, qn, {"dead-letter-exchange": dlx})
    broker.reject_all(qn)
    broker.wait_count(sink, 2)
    _, props, _ = broker.ch.basic_get(sink, auto_ack=True)
    assert props.headers["x-first-death-reason"] == "rejected"
    assert props.headers["x-first-death-queue"] == qn
    assert props.headers["x-death"][0]["reason"] == "rejected"


def test_dlx_and_ttl_policy_dead_letters_expired_messages(api, broker, pol):
    dlx = broker.exchange("fanout")
    sink = broker.sink(dlx)
    qn = broker.queue()
    definition = {"dead-letter-exchange": dlx, "message-ttl": 100}
    pol.set(uid("dlt"), f"^{qn}$", definition)
    wait_effective(api, qn, definition)
    broker.publish(qn, 3)
    broker.wait_count(sink, 3)
    assert broker.count(qn) == 0
    _, props, _ = broker.ch.basic_get(sink, auto_ack=True)
    assert props.headers["x-first-death-reason"] == "expired"
    assert props.headers["x-death"][0]["routing-keys"] == [qn]


def test_dlx_and_max_length_policy_dead_letters_dropped_heads(api, broker, pol):
    dlx = broker.exchange("fanout")
    sink = broker.sink(dlx)
    qn = broker.queue()
    definition = {"dead-letter-exchange": dlx, "max-length": 2}
    pol.set(uid("dlm"), f"^{qn}$", definition)
    wait_effective(api, qn, definition)
    broker.publish(qn, 5)
    broker.wait_count(sink, 3)
    assert broker.bodies(qn) == ["3", "4"]
    _, props, body = broker.ch.basic_get(sink, auto_ack=True)
    assert body == b"0"
    assert props.headers["x-first-death-reason"] == "maxlen"


def test_reject_publish_dlx_policy_nacks_and_dead_letters(api, broker, pol):
    dlx = broker.exchange("fanout")
    sink = broker.sink(dlx)
    qn = broker.queue()
    definition = {"dead-letter-exchange": dlx, "max-length": 2,
                  "overflow": "reject-publish-dlx"}
    pol.set(uid("rpd"), f"^{qn}$", definition)
    wait_effective(api, qn, definition)
    assert broker.publish(qn, 5) == [2, 3, 4]
    assert broker.bodies(qn) == ["0", "1"]
    broker.wait_count(sink, 3)
    _, props, body = broker.ch.basic_get(sink, auto_ack=True)
    assert body == b"2"
    assert props.headers["x-first-death-reason"] == "maxlen"


def test_alternate_exchange_policy(api, broker, pol):
    ae = broker.exchange("fanout")
    sink = broker.sink(ae)
    ex = broker.exchange("direct")
    pol.set(uid("ae"), f"^{ex}$", {"alternate-exchange": ae}, apply_to="exchanges")
    poll(lambda: api.get(f"/api/exchanges/{V}/{q(ex)}").json(), lambda e: "policy" in e,
         what="exchange policy")

    def route():
        broker.publish("nowhere", body=b"z", exchange=ex)
        return broker.count(sink)
    poll(route, lambda c: c > 0, what="unroutable message in the alternate exchange's queue")


# ---------------------------------------------------------------------------------------------
# matching: pattern, apply-to, priority

def test_pattern_is_an_unanchored_regex(api, broker, pol):
    base = uid("pat")
    exact, prefixed, infixed = base, base + "-tail", "pre-" + base + "-tail"
    other = uid("pat")
    for qn in (exact, prefixed, infixed, other):
        broker.queue(qn)
        broker.publish(qn, 3)
    pol.set(uid("p"), base, {"max-length": 1})
    for qn in (exact, prefixed, infixed):
        broker.wait_count(qn, 1)
    assert broker.count(other) == 3


def test_anchored_pattern_matches_only_the_exact_name(api, broker, pol):
    base = uid("anc")
    exact, prefixed = broker.queue(base), broker.queue(base + "-tail")
    pname = uid("p")
    pol.set(pname, f"^{base}$", {"max-length": 1})
    wait_effective(api, exact, {"max-length": 1}, policy=pname)
    info = wait_effective(api, prefixed, {})
    assert info["policy"] is None


def test_apply_to_exchanges_does_not_apply_to_queues(api, broker, pol):
    base = uid("at")
    qn, ex = broker.queue(base), broker.exchange("fanout", name=base)
    hi, lo = uid("hi"), uid("lo")
    # the higher-priority policy only applies to exchanges, so the queue gets the lower one
    pol.set(hi, f"^{base}$", {"alternate-exchange": "amq.fanout", "max-length": 9},
            apply_to="exchanges", priority=9)
    pol.set(lo, f"^{base}$", {"max-length": 2}, apply_to="queues", priority=1)
    wait_effective(api, qn, {"max-length": 2}, policy=lo)
    assert api.get(f"/api/exchanges/{V}/{q(ex)}").json()["policy"] == hi


def test_apply_to_queues_does_not_apply_to_exchanges(api, broker, pol):
    base = uid("aq")
    qn, ex = broker.queue(base), broker.exchange("fanout", name=base)
    name = uid("p")
    pol.set(name, f"^{base}$", {"max-length": 2}, apply_to="queues")
    wait_effective(api, qn, {"max-length": 2}, policy=name)
    assert "policy" not in api.get(f"/api/exchanges/{V}/{q(ex)}").json()


def test_apply_to_all_applies_to_both(api, broker, pol):
    base = uid("aa")
    qn, ex = broker.queue(base), broker.exchange("fanout", name=base)
    name = uid("p")
    pol.set(name, f"^{base}$", {"max-length": 2}, apply_to="all")
    wait_effective(api, qn, {"max-length": 2}, policy=name)
    assert api.get(f"/api/exchanges/{V}/{q(ex)}").json()["policy"] == name


def test_higher_priority_wins_wholly(api, broker, pol):
    qn = broker.queue()
    lo, hi = uid("lo"), uid("hi")
    pol.set(lo, f"^{qn}$", {"max-length": 2, "message-ttl": 600000}, priority=1)
    pol.set(hi, f"^{qn}$", {"max-length": 5}, priority=2)
    # definitions are not merged: no message-ttl from the lower one
    wait_effective(api, qn, {"max-length": 5}, policy=hi)
    broker.publish(qn, 10)
    assert broker.count(qn) == 5
    # lowering the winner's priority below the other one swaps them
    pol.set(hi, f"^{qn}$", {"max-length": 5}, priority=0)
    wait_effective(api, qn, {"max-length": 2, "message-ttl": 600000}, policy=lo)
    broker.wait_count(qn, 2)


def test_higher_priority_all_policy_shadows_queue_policy_even_without_queue_keys(
        api, broker, pol):
    qn = broker.queue()
    lo, hi = uid("lo"), uid("hi")
    pol.set(lo, f"^{qn}$", {"max-length": 2}, apply_to="queues", priority=1)
    pol.set(hi, f"^{qn}$", {"alternate-exchange": "amq.fanout"}, apply_to="all", priority=9)
    wait_effective(api, qn, {"alternate-exchange": "amq.fanout"}, policy=hi)
    broker.publish(qn, 5)
    assert broker.count(qn) == 5


def test_highest_priority_operator_policy_is_merged_with_the_policy(api, broker, pol):
    qn = broker.queue()
    o1, o2, p = uid("o1"), uid("o2"), uid("p")
    pol.set(o1, f"^{qn}$", {"max-length": 1}, kind="operator-policies", priority=1)
    pol.set(o2, f"^{qn}$", {"max-length": 3, "message-ttl": 600000},
            kind="operator-policies", priority=5)
    pol.set(p, f"^{qn}$", {"max-length": 4})
    wait_effective(api, qn, {"max-length": 3, "message-ttl": 600000}, policy=p,
                   operator_policy=o2)
    broker.publish(qn, 10)
    assert broker.count(qn) == 3


# ---------------------------------------------------------------------------------------------
# precedence: queue argument vs policy vs operator policy

# Numeric limits: the lowest of argument, policy and operator policy applies.
@pytest.mark.parametrize("arg,policy,operator,expected", [
    (5, 3, None, 3), (3, 5, None, 3), (None, 5, 3, 3), (None, 3, 5, 3),
    (4, None, 2, 2), (2, None, 4, 2), (5, 6, 3, 3), (0, 5, None, 0), (5, 0, None, 0),
])
def test_max_length_lowest_wins(api, broker, pol, arg, policy, operator, expected):
    qn = broker.queue(arguments={"x-max-length": arg} if arg is not None else None)
    effective = {}
    if policy is not None:
        pol.set(uid("p"), f"^{qn}$", {"max-length": policy})
        effective["max-length"] = policy
    if operator is not None:
        pol.set(uid("o"), f"^{qn}$", {"max-length": operator}, kind="operator-policies")
        effective["max-length"] = min(operator, effective.get("max-length", operator))
    wait_effective(api, qn, effective)
    broker.publish(qn, 10)
    assert broker.count(qn) == expected


@pytest.mark.parametrize("arg,policy,operator,expected", [
    (50, 30, None, 3), (30, 50, None, 3), (None, 50, 30, 3), (None, 30, 50, 3),
    (40, None, 20, 2), (20, None, 40, 2),
])
def test_max_length_bytes_lowest_wins(api, broker, pol, arg, policy, operator, expected):
    qn = broker.queue(arguments={"x-max-length-bytes": arg} if arg is not None else None)
    effective = {}
    if policy is not None:
        pol.set(uid("p"), f"^{qn}$", {"max-length-bytes": policy})
        effective["max-length-bytes"] = policy
    if operator is not None:
        pol.set(uid("o"), f"^{qn}$", {"max-length-bytes": operator}, kind="operator-policies")
        effective["max-length-bytes"] = min(operator, effective.get("max-length-bytes", operator))
    wait_effective(api, qn, effective)
    broker.publish(qn, 10, body=b"0123456789")
    assert broker.count(qn) == expected


@pytest.mark.parametrize("arg,policy,operator", [
    (60000, 100, None), (100, 60000, None), (None, 60000, 100), (None, 100, 60000),
    (60000, None, 100), (100, None, 60000),
])
def test_message_ttl_lowest_wins(api, broker, pol, arg, policy, operator):
    qn = broker.queue(arguments={"x-message-ttl": arg} if arg is not None else None)
    effective = {}
    if policy is not None:
        pol.set(uid("p"), f"^{qn}$", {"message-ttl": policy})
        effective["message-ttl"] = policy
    if operator is not None:
        pol.set(uid("o"), f"^{qn}$", {"message-ttl": operator}, kind="operator-policies")
        effective["message-ttl"] = min(operator, effective.get("message-ttl", operator))
    wait_effective(api, qn, effective)
    broker.publish(qn, 2)
    broker.wait_count(qn, 0, what="messages to expire after 100 ms")


def test_message_ttl_without_a_low_value_keeps_messages(api, broker, pol):
    # the control for the test above: every value high, nothing expires
    qn = broker.queue(arguments={"x-message-ttl": 600000})
    pol.set(uid("p"), f"^{qn}$", {"message-ttl": 600000})
    pol.set(uid("o"), f"^{qn}$", {"message-ttl": 600000}, kind="operator-policies")
    wait_effective(api, qn, {"message-ttl": 600000})
    broker.publish(qn, 2)
    assert broker.count(qn) == 2


def test_policy_message_ttl_does_not_apply_to_messages_already_queued(api, broker, pol):
    qn = broker.queue()
    broker.publish(qn, 3)
    pol.set(uid("p"), f"^{qn}$", {"message-ttl": 100})
    wait_effective(api, qn, {"message-ttl": 100})
    assert broker.count(qn) == 3
    assert broker.bodies(qn) == ["0", "1", "2"]


@pytest.mark.parametrize("arg,policy,operator", [
    (600000, 300, None), (None, 600000, 300), (600000, None, 300),
])
def test_expires_lowest_wins(api, broker, pol, arg, policy, operator):
    qn = broker.queue(arguments={"x-expires": arg} if arg is not None else None)
    if policy is not None:
        pol.set(uid("p"), f"^{qn}$", {"expires": policy})
    if operator is not None:
        pol.set(uid("o"), f"^{qn}$", {"expires": operator}, kind="operator-policies")
    poll(lambda: queue_gone(api, qn), bool, what=f"{qn} to expire")


@pytest.mark.parametrize("arg,policy,nacked,kept", [
    ("reject-publish", "drop-head", [2, 3, 4], ["0", "1"]),
    ("drop-head", "reject-publish", [], ["3", "4"]),
    (None, "reject-publish", [2, 3, 4], ["0", "1"]),
])
def test_overflow_argument_wins(api, broker, pol, arg, policy, nacked, kept):
    args = {"x-max-length": 2}
    if arg is not None:
        args["x-overflow"] = arg
    qn = broker.queue(arguments=args)
    pol.set(uid("p"), f"^{qn}$", {"overflow": policy})
    wait_effective(api, qn, {"overflow": policy})
    assert broker.publish(qn, 5) == nacked
    assert broker.bodies(qn) == kept


def _dead_letter_targets(broker):
    """Two direct exchanges A and B, each with sinks for routing keys ra and rb."""
    targets = {}
    for k in "AB":
        ex = broker.exchange("direct")
        targets[k] = (ex, {rk: broker.sink(ex, rk) for rk in ("ra", "rb")})
    return targets


def _where(broker, targets):
    return sorted(f"{k}/{rk}" for k, (_, sinks) in targets.items()
                  for rk, qn in sinks.items() if broker.count(qn))


@pytest.mark.parametrize("args,policy,expected", [
    # argument exchange and key beat the policy's
    ({"x-dead-letter-exchange": "A", "x-dead-letter-routing-key": "ra"},
     {"dead-letter-exchange": "B", "dead-letter-routing-key": "rb"}, "A/ra"),
    # keys are resolved one by one: exchange from the argument, routing key from the policy
    ({"x-dead-letter-exchange": "A"}, {"dead-letter-routing-key": "rb"}, "A/rb"),
    ({"x-dead-letter-exchange": "A", "x-dead-letter-routing-key": "ra"},
     {"dead-letter-exchange": "B"}, "A/ra"),
    ({}, {"dead-letter-exchange": "B", "dead-letter-routing-key": "rb"}, "B/rb"),
], ids=["both-args-win", "arg-dlx-policy-key", "args-vs-policy-dlx", "policy-only"])
def test_dead_letter_arguments_win(api, broker, pol, args, policy, expected):
    targets = _dead_letter_targets(broker)
    name = lambda v: targets[v][0] if v in targets else v  # noqa: E731
    qn = broker.queue(arguments={
        k: (name(v) if k == "x-dead-letter-exchange" else v) for k, v in args.items()})
    definition = {k: (name(v) if k == "dead-letter-exchange" else v) for k, v in policy.items()}
    pol.set(uid("p"), f"^{qn}$", definition)
    wait_effective(api, qn, definition)
    broker.publish(qn, 2)
    broker.reject_all(qn)
    k, rk = expected.split("/")
    broker.wait_count(targets[k][1][rk], 2)
    assert _where(broker, targets) == [expected]


def test_dead_letter_exchange_argument_wins_with_original_routing_key(api, broker, pol):
    ax, bx = broker.exchange("fanout"), broker.exchange("fanout")
    asink, bsink = broker.sink(ax), broker.sink(bx)
    qn = broker.queue(arguments={"x-dead-letter-exchange": ax})
    pol.set(uid("p"), f"^{qn}$", {"dead-letter-exchange": bx})
    wait_effective(api, qn, {"dead-letter-exchange": bx})
    broker.publish(qn, 2)
    broker.reject_all(qn)
    broker.wait_count(asink, 2)
    assert broker.count(bsink) == 0


def test_alternate_exchange_argument_wins(api, broker, pol):
    a, b = broker.exchange("fanout"), broker.exchange("fanout")
    asink, bsink = broker.sink(a), broker.sink(b)
    ex = broker.exchange("direct", arguments={"alternate-exchange": a})
    pol.set(uid("p"), f"^{ex}$", {"alternate-exchange": b}, apply_to="exchanges")
    poll(lambda: api.get(f"/api/exchanges/{V}/{q(ex)}").json(), lambda e: "policy" in e,
         what="exchange policy")
    broker.publish("nowhere", body=b"z", exchange=ex)
    broker.wait_count(asink, 1)
    assert broker.count(bsink) == 0


# ---------------------------------------------------------------------------------------------
# definitions

def test_definitions_export_policies_and_operator_policies(api, pol):
    pname, oname = uid("dp"), uid("dop")
    pol.set(pname, "^dq-nomatch$", {"max-length": 5, "dead-letter-exchange": "x"}, priority=2)
    pol.set(oname, "^dq-nomatch$", {"max-length": 5}, kind="operator-policies", apply_to="all")
    policy_entry = {"vhost": "/", "name": pname, "pattern": "^dq-nomatch$",
                    "apply-to": "queues",
                    "definition": {"dead-letter-exchange": "x", "max-length": 5},
                    "priority": 2}
    # operator policies are not in `policies`: they come out as parameters of component
    # operator_policy
    operator_entry = {"value": {"pattern": "^dq-nomatch$", "definition": {"max-length": 5},
                                "priority": 0, "apply-to": "all"},
                      "vhost": "/", "component": "operator_policy", "name": oname}
    for path in ("/api/definitions", f"/api/definitions/{V}"):
        d = api.get(path).json()
        assert policy_entry in d["policies"], path
        assert all(p["name"] != oname for p in d["policies"])
        assert operator_entry in d["parameters"], path
        assert all(p.get("component") != "policy" for p in d["parameters"])
        assert not any("operator" in k for k in d)


def test_definitions_import_policies(api, pol):
    pname, p2, oname = uid("ip"), uid("ip"), uid("iop")
    pol.made += [("policies", pname), ("policies", p2), ("operator-policies", oname)]
    r = api.post("/api/definitions", {
        "policies": [{"vhost": "/", "name": pname, "pattern": "^z-nomatch$",
                      "definition": {"max-length": 1}},
                     {"vhost": "/", "name": p2, "pattern": "^z-nomatch$", "apply-to": "queues",
                      "priority": 3, "definition": {"max-length": 1}}],
        "parameters": [{"vhost": "/", "component": "operator_policy", "name": oname,
                        "value": {"pattern": "^z-nomatch$", "definition": {"max-length": 1},
                                  "priority": 0, "apply-to": "all"}}]})
    assert r.status_code == 204, r.text
    assert api.get(f"/api/policies/{V}/{q(pname)}").json() == {
        "vhost": "/", "name": pname, "pattern": "^z-nomatch$", "apply-to": "all",
        "definition": {"max-length": 1}, "priority": 0}
    assert api.get(f"/api/policies/{V}/{q(p2)}").json()["priority"] == 3
    assert api.get(f"/api/operator-policies/{V}/{q(oname)}").json() == {
        "vhost": "/", "name": oname, "pattern": "^z-nomatch$", "apply-to": "all",
        "definition": {"max-length": 1}, "priority": 0}


def test_definitions_import_ignores_operator_policies_key(api):
    name = uid("iop")
    try:
        r = api.post("/api/definitions", {"operator_policies": [
            {"vhost": "/", "name": name, "pattern": "^z$", "apply-to": "queues",
             "definition": {"max-length": 1}, "priority": 0}]})
        assert r.status_code == 204, r.text
        assert assert_error(api.get(f"/api/operator-policies/{V}/{q(name)}"), 404) == NOT_FOUND
    finally:
        api.delete(f"/api/operator-policies/{V}/{q(name)}")


def test_definitions_import_validates_policies(api):
    name = uid("ibad")
    try:
        r = api.post("/api/definitions", {"policies": [
            {"vhost": "/", "name": name, "pattern": "^z$", "definition": {"foo": 1}}]})
        got = assert_error(r, 400)
        assert got["error"] == "bad_request"
        assert "are not recognised policy settings" in got["reason"]
        assert assert_error(api.get(f"/api/policies/{V}/{q(name)}"), 404) == NOT_FOUND
    finally:
        api.delete(f"/api/policies/{V}/{q(name)}")
