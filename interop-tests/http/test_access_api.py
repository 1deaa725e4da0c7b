"""Differential tests of the ACCESS side of the management HTTP API: overview, whoami, nodes,
vhosts, users, permissions, topic permissions, vhost and user limits, health checks,
definitions, and who may call what (authentication, user tags).

Every test passes against RabbitMQ 3.10.8 (see docs/rabbitmq-http-api-access-observed.md).
Values that legitimately differ between brokers (node names, versions, Erlang details, rates,
counters) are checked for presence and type only.
"""

import base64
import hashlib
import json
import time
import urllib.parse

import pika
import pytest
import requests

from conftest import (ADMIN, AMQP_URL, MGMT_URL, WAIT, Api, _is_rabbitmq, amqp, q,
                      rabbitmqadmin, uid)

AMQP_PORT = urllib.parse.urlparse(AMQP_URL).port or 5672
MGMT_PORT = urllib.parse.urlparse(MGMT_URL).port or 15672

NOT_FOUND = {"error": "Object Not Found", "reason": "Not Found"}
LOGIN_FAILED = {"error": "not_authorized", "reason": "Login failed"}
NOT_MGMT = {"error": "not_authorised", "reason": "Not management user"}
NOT_ADMIN = {"error": "not_authorised", "reason": "Not administrator user"}
NOT_MONITOR = {"error": "not_authorised", "reason": "Not monitor user"}
NOT_VHOST = {"error": "not_authorised", "reason": "User not authorised to access virtual host"}
REALM = 'Basic realm="RabbitMQ Management"'

USER_KEYS = {"name", "password_hash", "hashing_algorithm", "tags", "limits"}
VHOST_KEYS = {"name", "description", "tags", "default_queue_type", "metadata", "tracing",
              "cluster_state"}
PERM_KEYS = {"user", "vhost", "configure", "write", "read"}
TOPIC_PERM_KEYS = {"user", "vhost", "exchange", "write", "read"}


# ---------------------------------------------------------------------------------------------
# helpers

def raw(api, method, path, data, content_type="application/json", **kw):
    """A request with a raw body (and a chosen content-type, or none), on a connection of its
    own: a broker may answer before reading the body and then close the connection."""
    headers = dict(kw.pop("headers", {}))
    if content_type is not None:
        headers["content-type"] = content_type
    return requests.request(method, api.url(path), data=data, headers=headers, auth=api.auth,
                            timeout=WAIT, **kw)


def once(api, method, path, body=None):
    """A JSON request on a connection of its own (for answers given before the body is read:
    401s, 404s and 400s about the path, after which the broker may close the connection)."""
    return requests.request(method, api.url(path), json=body, auth=api.auth, timeout=WAIT)


def as_user(name, password):
    return Api((name, password))


def assert_json(r, status):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"] == "application/json", r.headers
    return r.json()


def assert_error(r, status, body):
    got = assert_json(r, status)
    assert got == body, got


def assert_empty(r, status):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.content == b""


def rabbit_hash(password, algorithm="sha256", salt=b"\x01\x02\x03\x04"):
    """A RabbitMQ password hash: base64(salt ++ H(salt ++ password))."""
    h = hashlib.new(algorithm, salt + password.encode()).digest()
    return base64.b64encode(salt + h).decode()


def eventually(fn, timeout=WAIT):
    """Calls fn until it returns a true value (polling a condition, with a deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def wait_closed_by_broker(conn, timeout=WAIT):
    """Pumps a pika connection until the broker closes it; returns the exception."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn.process_data_events(time_limit=0.5)
        except pika.exceptions.ConnectionClosedByBroker as e:
            return e
        if not conn.is_open:
            return None
    raise AssertionError("broker did not close the connection")


def close_quietly(conn):
    try:
        if conn.is_open:
            conn.close()
    except Exception:
        pass


@pytest.fixture(scope="module")
def tagged():
    """One vhost `vhost` where every user below has full permissions, one `other` vhost where
    none has, and one user per tag: none, impersonator, management, policymaker, monitoring,
    administrator. Read-only for the tests that use it."""
    api = Api()
    vhost, other = uid("tv"), uid("to")
    for v in (vhost, other):
        assert api.put(f"/api/vhosts/{q(v)}").status_code in (201, 204)
    users = {}
    for tag in ("", "impersonator", "management", "policymaker", "monitoring", "administrator"):
        name, pw = uid(f"tag{tag[:4]}"), "pw-" + uid()
        assert api.put(f"/api/users/{q(name)}", {"password": pw, "tags": tag}).status_code == 201
        assert api.put(f"/api/permissions/{q(vhost)}/{q(name)}",
                       {"configure": ".*", "write": ".*", "read": ".*"}).status_code == 201
        users[tag or "none"] = (name, pw)
    yield {"vhost": vhost, "other": other, "users": users}
    for name, _ in users.values():
        api.delete(f"/api/users/{q(name)}")
    for v in (vhost, other):
        api.delete(f"/api/vhosts/{q(v)}")


# ---------------------------------------------------------------------------------------------
# authentication

def test_no_credentials_is_401_with_realm_and_empty_body():
    r = requests.get(f"{MGMT_URL}/api/overview", timeout=WAIT)
    assert_empty(r, 401)
    assert r.headers["www-authenticate"] == REALM
    assert "content-type" not in r.headers


def test_wrong_password_is_401_login_failed_with_realm():
    r = as_user(ADMIN[0], ADMIN[1] + "-wrong").get("/api/whoami")
    assert_error(r, 401, LOGIN_FAILED)
    assert r.headers["www-authenticate"] == REALM


def test_unknown_user_is_401_login_failed():
    r = as_user(uid("nobody"), "x").get("/api/whoami")
    assert_error(r, 401, LOGIN_FAILED)
    assert r.headers["www-authenticate"] == REALM


def test_username_is_case_sensitive(scratch):
    name, pw = scratch.user("management")
    assert as_user(name, pw).get("/api/whoami").status_code == 200
    assert_error(as_user(name.upper(), pw).get("/api/whoami"), 401, LOGIN_FAILED)


def test_empty_password_is_login_failed(scratch):
    name, _ = scratch.user("management")
    assert_error(as_user(name, "").get("/api/whoami"), 401, LOGIN_FAILED)


def test_bearer_token_without_oauth_is_login_failed():
    r = requests.get(f"{MGMT_URL}/api/whoami", headers={"Authorization": "Bearer abc"},
                     timeout=WAIT)
    assert_error(r, 401, LOGIN_FAILED)


def test_user_without_tags_is_not_management_user(tagged):
    r = as_user(*tagged["users"]["none"]).get("/api/overview")
    assert_error(r, 401, NOT_MGMT)
    assert "www-authenticate" not in r.headers


def test_impersonator_tag_alone_is_not_management_user(tagged):
    assert_error(as_user(*tagged["users"]["impersonator"]).get("/api/whoami"), 401, NOT_MGMT)


def test_tag_denial_is_401_without_realm(tagged):
    r = as_user(*tagged["users"]["management"]).get("/api/users")
    assert_error(r, 401, NOT_ADMIN)
    assert "www-authenticate" not in r.headers


def test_auth_endpoint_needs_no_credentials():
    r = requests.get(f"{MGMT_URL}/api/auth", timeout=WAIT)
    assert assert_json(r, 200) == {"enable_uaa": False, "uaa_client_id": "", "uaa_location": ""}


def test_options_needs_no_credentials():
    r = requests.options(f"{MGMT_URL}/api/users/{q(uid())}", timeout=WAIT)
    assert r.status_code == 200
    assert r.headers["allow"] == "HEAD, GET, PUT, DELETE, OPTIONS"


# which tag may GET what: (path template, {tag: status}); {V} is a vhost the user has
# permissions in, {O} one it has none in, {U} the management user of the fixture.
ADMIN_ONLY = {"management": 401, "policymaker": 401, "monitoring": 401, "administrator": 200}
ANY_MGMT = {"management": 200, "policymaker": 200, "monitoring": 200, "administrator": 200}
MONITOR = {"management": 401, "policymaker": 401, "monitoring": 200, "administrator": 200}
GET_MATRIX = [
    ("/api/overview", ANY_MGMT),
    ("/api/whoami", ANY_MGMT),
    ("/api/nodes", MONITOR),
    ("/api/vhosts", ANY_MGMT),
    ("/api/vhosts/{V}", ADMIN_ONLY),
    ("/api/users", ADMIN_ONLY),
    ("/api/users/{U}", ADMIN_ONLY),
    ("/api/users/without-permissions", ADMIN_ONLY),
    ("/api/permissions", ADMIN_ONLY),
    ("/api/permissions/{V}/{U}", ADMIN_ONLY),
    ("/api/vhosts/{V}/permissions", ADMIN_ONLY),
    ("/api/users/{U}/permissions", ADMIN_ONLY),
    ("/api/topic-permissions", ADMIN_ONLY),
    ("/api/vhosts/{V}/topic-permissions", ADMIN_ONLY),
    ("/api/users/{U}/topic-permissions", ADMIN_ONLY),
    ("/api/vhost-limits", ANY_MGMT),
    ("/api/vhost-limits/{V}", ANY_MGMT),
    ("/api/vhost-limits/{O}", MONITOR),
    ("/api/user-limits", ANY_MGMT),
    ("/api/user-limits/{U}", ANY_MGMT),
    ("/api/aliveness-test/{V}", ANY_MGMT),
    ("/api/healthchecks/node", ANY_MGMT),
    ("/api/health/checks/alarms", ANY_MGMT),
    ("/api/health/checks/local-alarms", ANY_MGMT),
    ("/api/health/checks/virtual-hosts", ANY_MGMT),
    ("/api/health/checks/node-is-quorum-critical", ANY_MGMT),
    ("/api/health/checks/certificate-expiration/1/months", ANY_MGMT),
    ("/api/health/checks/protocol-listener/amqp", ANY_MGMT),
    ("/api/definitions", ADMIN_ONLY),
    ("/api/definitions/{V}", ADMIN_ONLY),
]


def _fill(path, tagged):
    return path.format(V=q(tagged["vhost"]), O=q(tagged["other"]),
                       U=q(tagged["users"]["management"][0]))


@pytest.mark.parametrize("path,expected", GET_MATRIX, ids=[p for p, _ in GET_MATRIX])
@pytest.mark.parametrize("tag", ["management", "policymaker", "monitoring", "administrator"])
def test_get_matrix(tagged, path, expected, tag):
    r = as_user(*tagged["users"][tag]).get(_fill(path, tagged))
    assert r.status_code == expected[tag], (r.status_code, r.text)
    if r.status_code == 401:
        if path == "/api/vhost-limits/{O}":
            want = NOT_VHOST
        elif expected is MONITOR:
            want = NOT_MONITOR
        else:
            want = NOT_ADMIN
        assert_error(r, 401, want)
        assert "www-authenticate" not in r.headers


@pytest.mark.parametrize("path", [p for p, _ in GET_MATRIX])
def test_get_matrix_untagged_and_anonymous(tagged, path):
    assert_error(as_user(*tagged["users"]["none"]).get(_fill(path, tagged)), 401, NOT_MGMT)
    r = requests.get(MGMT_URL + _fill(path, tagged), timeout=WAIT)
    assert_empty(r, 401)
    assert r.headers["www-authenticate"] == REALM


@pytest.mark.parametrize("tag", ["management", "policymaker", "monitoring"])
def test_non_admins_cannot_change_access(tagged, tag):
    a = as_user(*tagged["users"][tag])
    v, u = q(tagged["vhost"]), q(tagged["users"]["management"][0])
    calls = [
        once(a, "PUT", f"/api/vhosts/{q(uid())}"),
        once(a, "DELETE", f"/api/vhosts/{v}"),
        once(a, "PUT", f"/api/users/{q(uid())}", {"password": "x", "tags": ""}),
        once(a, "DELETE", f"/api/users/{u}"),
        once(a, "POST", "/api/users/bulk-delete", {"users": [uid()]}),
        once(a, "PUT", f"/api/permissions/{v}/{u}", {"configure": "", "write": "", "read": ""}),
        once(a, "DELETE", f"/api/permissions/{v}/{u}"),
        once(a, "PUT", f"/api/topic-permissions/{v}/{u}",
             {"exchange": "x", "write": "", "read": ""}),
        once(a, "PUT", f"/api/vhost-limits/{v}/max-queues", {"value": 1}),
        once(a, "DELETE", f"/api/vhost-limits/{v}/max-queues"),
        once(a, "PUT", f"/api/user-limits/{u}/max-channels", {"value": 1}),
        once(a, "POST", "/api/definitions", {}),
    ]
    for r in calls:
        assert_error(r, 401, NOT_ADMIN)
    assert Api().get(f"/api/vhosts/{v}").status_code == 200


def test_auth_endpoint_is_open_to_every_tag(tagged):
    for user in tagged["users"].values():
        assert as_user(*user).get("/api/auth").status_code == 200


# ---------------------------------------------------------------------------------------------
# whoami, overview, nodes

def test_whoami(api):
    assert assert_json(api.get("/api/whoami"), 200) == {"name": ADMIN[0], "tags": ["administrator"]}


def test_whoami_keeps_tag_order(scratch):
    name, pw = scratch.user("monitoring,management")
    got = assert_json(as_user(name, pw).get("/api/whoami"), 200)
    assert got == {"name": name, "tags": ["monitoring", "management"]}


OVERVIEW_BASE = {"management_version", "rates_mode", "sample_retention_policies",
                 "exchange_types", "product_version", "product_name", "rabbitmq_version",
                 "cluster_name", "erlang_version", "erlang_full_version",
                 "release_series_support_status", "disable_stats", "enable_queue_totals"}
OVERVIEW_STATS = {"message_stats", "churn_rates", "queue_totals", "object_totals",
                  "statistics_db_event_queue"}
OVERVIEW_MONITOR = {"node", "listeners", "contexts"}


def test_overview_admin(api):
    o = assert_json(api.get("/api/overview"), 200)
    assert OVERVIEW_BASE | OVERVIEW_STATS | OVERVIEW_MONITOR <= set(o)
    for k in ("management_version", "product_version", "product_name", "rabbitmq_version",
              "cluster_name", "erlang_version", "erlang_full_version", "node",
              "release_series_support_status"):
        assert isinstance(o[k], str) and o[k], k
    assert o["rates_mode"] == "basic"
    assert o["sample_retention_policies"] == {
        "global": [600, 3600, 28800, 86400], "basic": [600, 3600], "detailed": [600]}
    assert o["disable_stats"] is False and o["enable_queue_totals"] is False
    for k in ("message_stats", "churn_rates", "queue_totals", "object_totals"):
        assert isinstance(o[k], dict)
    assert isinstance(o["statistics_db_event_queue"], int)
    assert isinstance(o["contexts"], list)


def test_overview_exchange_types(api):
    ets = assert_json(api.get("/api/overview"), 200)["exchange_types"]
    names = [e["name"] for e in ets]
    assert names == sorted(names)
    assert {"direct", "fanout", "headers", "topic"} <= set(names)
    for e in ets:
        assert set(e) == {"name", "description", "enabled"}
        assert isinstance(e["description"], str) and e["enabled"] is True


def test_overview_listeners(api):
    ls = assert_json(api.get("/api/overview"), 200)["listeners"]
    for listener in ls:
        assert {"node", "protocol", "ip_address", "port", "socket_opts"} <= set(listener)
    assert {(x["protocol"], x["port"]) for x in ls} >= {("amqp", AMQP_PORT), ("http", MGMT_PORT)}


def test_overview_object_totals_when_stats_are_collected(api):
    def totals():
        t = api.get("/api/overview").json()["object_totals"]
        return t if t else None
    t = eventually(totals)
    assert t and set(t) == {"channels", "connections", "consumers", "exchanges", "queues"}
    assert all(isinstance(v, int) for v in t.values())


def test_overview_management_user_has_no_node_listeners_contexts(tagged):
    o = assert_json(as_user(*tagged["users"]["management"]).get("/api/overview"), 200)
    assert OVERVIEW_BASE | OVERVIEW_STATS <= set(o)
    assert not OVERVIEW_MONITOR & set(o)
    assert set(o["object_totals"]) <= {"channels", "connections", "exchanges", "queues"}


def test_overview_monitoring_user_has_node_listeners_contexts(tagged):
    o = assert_json(as_user(*tagged["users"]["monitoring"]).get("/api/overview"), 200)
    assert OVERVIEW_BASE | OVERVIEW_STATS | OVERVIEW_MONITOR <= set(o)


def test_overview_disable_stats(api):
    o = assert_json(api.get("/api/overview?disable_stats=true"), 200)
    assert OVERVIEW_BASE <= set(o)
    assert o["disable_stats"] is True
    assert set(o) - OVERVIEW_BASE - {"warren_version"} == {"node", "object_totals"}
    assert set(o["object_totals"]) == {"queues", "exchanges", "connections"}


def test_overview_disable_stats_counts_only_visible_vhosts(scratch):
    v = scratch.vhost()
    name, pw = scratch.user("management")
    scratch.grant(name, v)
    a = as_user(name, pw)
    o = assert_json(a.get("/api/overview?disable_stats=true"), 200)
    assert o["object_totals"] == {"queues": 0, "exchanges": 7}
    conn = amqp(name, pw, v)
    try:
        conn.channel().queue_declare(uid("q"), durable=True)
    finally:
        conn.close()
    o = assert_json(a.get("/api/overview?disable_stats=true"), 200)
    assert o["object_totals"] == {"queues": 1, "exchanges": 7}


def test_nodes_list(api):
    nodes = assert_json(api.get("/api/nodes"), 200)
    assert isinstance(nodes, list) and len(nodes) >= 1
    n = nodes[0]
    assert isinstance(n["name"], str) and "@" in n["name"]
    assert n["type"] == "disc" and n["running"] is True


def test_node_by_name(api):
    name = api.get("/api/nodes").json()[0]["name"]
    n = assert_json(api.get(f"/api/nodes/{q(name)}"), 200)
    assert n["name"] == name and n["running"] is True


NODE_STATS = {"mem_used": int, "mem_limit": int, "mem_alarm": bool, "disk_free": int,
              "disk_free_limit": int, "disk_free_alarm": bool, "fd_used": int, "fd_total": int,
              "sockets_used": int, "sockets_total": int, "proc_used": int, "proc_total": int,
              "uptime": int, "processors": int, "run_queue": int, "os_pid": str,
              "rates_mode": str, "partitions": list, "exchange_types": list,
              "auth_mechanisms": list, "applications": list, "contexts": list,
              "log_files": list, "config_files": list, "enabled_plugins": list,
              "net_ticktime": int, "db_dir": str, "mem_used_details": dict,
              "cluster_links": list, "metrics_gc_queue_length": dict}


def test_node_stats_keys(api):
    node = eventually(lambda: next((n for n in api.get("/api/nodes").json()
                                    if "mem_used" in n), None))
    assert node, "no node stats"
    for k, t in NODE_STATS.items():
        assert isinstance(node[k], t), (k, node.get(k))
    assert node["mem_used_details"].keys() == {"rate"}
    for m in node["auth_mechanisms"]:
        assert set(m) == {"name", "description", "enabled"}
    assert "PLAIN" in [m["name"] for m in node["auth_mechanisms"] if m["enabled"]]


def test_nodes_columns(api):
    got = assert_json(api.get("/api/nodes?columns=name"), 200)
    assert all(set(n) == {"name"} for n in got)


# ---------------------------------------------------------------------------------------------
# vhosts

def test_vhost_create_201_update_204(api):
    name = uid("v")
    try:
        r = api.put(f"/api/vhosts/{q(name)}")
        assert_empty(r, 201)
        assert "content-type" not in r.headers
        assert_empty(api.put(f"/api/vhosts/{q(name)}"), 204)
    finally:
        api.delete(f"/api/vhosts/{q(name)}")


def test_vhost_get_defaults(api, scratch):
    v = scratch.vhost()
    got = assert_json(api.get(f"/api/vhosts/{q(v)}"), 200)
    assert VHOST_KEYS <= set(got)
    assert got["name"] == v and got["description"] == "" and got["tags"] == []
    assert got["default_queue_type"] == "undefined"
    assert got["metadata"] == {"description": "", "tags": []}
    assert got["tracing"] is False
    assert list(got["cluster_state"].values()) == ["running"]


def test_vhost_get_disable_stats_has_exactly_the_base_keys(api, scratch):
    v = scratch.vhost()
    got = assert_json(api.get(f"/api/vhosts/{q(v)}?disable_stats=true"), 200)
    assert set(got) == VHOST_KEYS


def test_vhost_description_tags_string_and_tracing(api, scratch):
    v = uid("v")
    scratch.vhosts.append(v)
    r = api.put(f"/api/vhosts/{q(v)}", {"description": "my desc", "tags": "a, b ,c",
                                        "tracing": True})
    assert r.status_code == 201
    got = api.get(f"/api/vhosts/{q(v)}").json()
    assert got["description"] == "my desc" and got["tags"] == ["a", "b", "c"]
    assert got["metadata"] == {"description": "my desc", "tags": ["a", "b", "c"]}
    assert got["tracing"] is True


def test_vhost_tags_as_list(api, scratch):
    v = scratch.vhost()
    assert api.put(f"/api/vhosts/{q(v)}", {"tags": ["x", "y"]}).status_code == 204
    assert api.get(f"/api/vhosts/{q(v)}").json()["tags"] == ["x", "y"]


def test_vhost_update_resets_omitted_description_and_tags(api, scratch):
    v = scratch.vhost()
    api.put(f"/api/vhosts/{q(v)}", {"description": "d", "tags": "t"})
    assert api.put(f"/api/vhosts/{q(v)}", {"tracing": False}).status_code == 204
    got = api.get(f"/api/vhosts/{q(v)}").json()
    assert got["description"] == "" and got["tags"] == []


def test_vhost_update_keeps_tracing_when_omitted(api, scratch):
    v = scratch.vhost()
    api.put(f"/api/vhosts/{q(v)}", {"tracing": True})
    assert api.put(f"/api/vhosts/{q(v)}", {"description": "x"}).status_code == 204
    assert api.get(f"/api/vhosts/{q(v)}").json()["tracing"] is True
    api.put(f"/api/vhosts/{q(v)}", {"tracing": False})
    assert api.get(f"/api/vhosts/{q(v)}").json()["tracing"] is False


def test_vhost_defaultqueuetype_on_create(api, scratch):
    v = uid("v")
    scratch.vhosts.append(v)
    assert api.put(f"/api/vhosts/{q(v)}", {"defaultqueuetype": "quorum"}).status_code == 201
    got = api.get(f"/api/vhosts/{q(v)}").json()
    assert got["default_queue_type"] == "quorum"
    assert got["metadata"] == {"default_queue_type": "quorum", "description": "", "tags": []}


def test_vhost_defaultqueuetype_ignored_on_update(api, scratch):
    v = uid("v")
    scratch.vhosts.append(v)
    api.put(f"/api/vhosts/{q(v)}", {"defaultqueuetype": "quorum"})
    assert api.put(f"/api/vhosts/{q(v)}", {"defaultqueuetype": "classic"}).status_code == 204
    assert api.get(f"/api/vhosts/{q(v)}").json()["default_queue_type"] == "quorum"


def test_vhost_default_queue_type_with_underscores_is_ignored(api, scratch):
    v = uid("v")
    scratch.vhosts.append(v)
    assert api.put(f"/api/vhosts/{q(v)}", {"default_queue_type": "quorum"}).status_code == 201
    assert api.get(f"/api/vhosts/{q(v)}").json()["default_queue_type"] == "undefined"


def test_vhost_invalid_defaultqueuetype_is_500(api, scratch):
    v = uid("v")
    scratch.vhosts.append(v)
    r = api.put(f"/api/vhosts/{q(v)}", {"defaultqueuetype": "bogus"})
    assert assert_json(r, 500)["reason"] == "invalid_queue_type"
    assert_error(api.get(f"/api/vhosts/{q(v)}"), 404, NOT_FOUND)


def test_vhost_tracing_accepts_boolean_strings(api, scratch):
    v = scratch.vhost()
    assert api.put(f"/api/vhosts/{q(v)}", {"tracing": "true"}).status_code == 204
    assert api.get(f"/api/vhosts/{q(v)}").json()["tracing"] is True
    assert api.put(f"/api/vhosts/{q(v)}", {"tracing": "false"}).status_code == 204
    assert api.get(f"/api/vhosts/{q(v)}").json()["tracing"] is False


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_vhost_tracing_not_boolean_is_400(api, scratch, value):
    v = scratch.vhost()
    assert_error(api.put(f"/api/vhosts/{q(v)}", {"tracing": value}), 400,
                 {"error": "bad_request", "reason": ["not_boolean", value]})


@pytest.mark.parametrize("body", ["{bad json", "[1,2]"])
def test_vhost_malformed_json_is_400_not_json(api, scratch, body):
    v = uid("v")
    scratch.vhosts.append(v)
    assert_error(raw(api, "PUT", f"/api/vhosts/{q(v)}", body), 400,
                 {"error": "bad_request", "reason": "not_json"})
    assert api.get(f"/api/vhosts/{q(v)}").status_code == 404


def test_vhost_doubly_encoded_json_is_400(api, scratch):
    v = uid("v")
    scratch.vhosts.append(v)
    assert_error(raw(api, "PUT", f"/api/vhosts/{q(v)}", '"str"'), 400, {
        "error": "bad_request",
        "reason": "invalid payload: the request body JSON-decoded to a string. "
                  "Is the input doubly-JSON-encoded?"})


def test_vhost_unknown_fields_are_ignored(api, scratch):
    v = uid("v")
    scratch.vhosts.append(v)
    assert api.put(f"/api/vhosts/{q(v)}", {"bogus": 1, "description": "d"}).status_code == 201
    assert api.get(f"/api/vhosts/{q(v)}").json()["description"] == "d"


def test_vhost_put_accepts_any_content_type(api, scratch):
    v = uid("v")
    scratch.vhosts.append(v)
    r = raw(api, "PUT", f"/api/vhosts/{q(v)}", '{"description":"d"}', content_type="text/plain")
    assert r.status_code == 201


def test_vhost_delete_204_then_404(api):
    v = uid("v")
    api.put(f"/api/vhosts/{q(v)}")
    r = api.delete(f"/api/vhosts/{q(v)}")
    assert_empty(r, 204)
    assert_error(api.delete(f"/api/vhosts/{q(v)}"), 404, NOT_FOUND)
    assert_error(api.get(f"/api/vhosts/{q(v)}"), 404, NOT_FOUND)


def test_vhost_creator_gets_full_permissions(api, scratch):
    v = scratch.vhost()
    got = assert_json(api.get(f"/api/permissions/{q(v)}/{q(ADMIN[0])}"), 200)
    assert got == {"user": ADMIN[0], "vhost": v, "configure": ".*", "write": ".*", "read": ".*"}


def test_vhost_list_entries(api, scratch):
    v = scratch.vhost()
    vs = assert_json(api.get("/api/vhosts"), 200)
    mine = [x for x in vs if x["name"] == v]
    assert len(mine) == 1 and VHOST_KEYS <= set(mine[0])
    assert "/" in [x["name"] for x in vs]


def test_vhost_list_is_sorted_by_name(api, scratch):
    a, b = scratch.vhost("a"), scratch.vhost("b")
    names = [x["name"] for x in api.get("/api/vhosts").json()]
    assert names.index(a) < names.index(b)
    names = [x["name"] for x in api.get("/api/vhosts?sort=name&sort_reverse=true").json()]
    assert names.index(b) < names.index(a)


def test_vhost_list_columns(api):
    got = assert_json(api.get("/api/vhosts?columns=name,tracing"), 200)
    assert all(set(x) == {"name", "tracing"} for x in got)


def test_vhost_list_pagination(api, scratch):
    scratch.vhost()
    scratch.vhost()
    got = assert_json(api.get("/api/vhosts?page=1&page_size=2"), 200)
    assert set(got) == {"filtered_count", "item_count", "items", "page", "page_count",
                        "page_size", "total_count"}
    assert got["page"] == 1 and got["page_size"] == 2 and got["item_count"] == 2
    assert len(got["items"]) == 2 and got["total_count"] >= 3


def test_vhost_list_management_user_sees_only_permitted(scratch):
    v, other = scratch.vhost(), scratch.vhost()
    name, pw = scratch.user("management")
    scratch.grant(name, v, "", "", "")
    names = [x["name"] for x in assert_json(as_user(name, pw).get("/api/vhosts"), 200)]
    assert names == [v]


def test_vhost_list_monitoring_user_sees_all(scratch):
    v = scratch.vhost()
    name, pw = scratch.user("monitoring")
    names = [x["name"] for x in as_user(name, pw).get("/api/vhosts").json()]
    assert v in names and "/" in names


def test_vhost_trailing_slash(api, scratch):
    v = scratch.vhost()
    assert assert_json(api.get(f"/api/vhosts/{q(v)}/"), 200)["name"] == v
    assert isinstance(assert_json(api.get("/api/vhosts/"), 200), list)


def test_default_vhost_percent_encoded(api):
    assert assert_json(api.get("/api/vhosts/%2F"), 200)["name"] == "/"
    assert assert_json(api.get("/api/vhosts/%2f"), 200)["name"] == "/"


def test_vhost_delete_removes_its_queues_and_closes_connections(api, scratch):
    v = scratch.vhost()
    qname = uid("q")
    conn = amqp(ADMIN[0], ADMIN[1], v)
    try:
        conn.channel().queue_declare(qname, durable=True)
        assert api.get(f"/api/queues/{q(v)}/{q(qname)}").status_code == 200
        assert api.delete(f"/api/vhosts/{q(v)}").status_code == 204
        e = wait_closed_by_broker(conn)
        assert e is not None and e.reply_code == 320
        # RabbitMQ says "is deleted", or "is down" when the vhost's processes stop first
        assert e.reply_text in (f"CONNECTION_FORCED - vhost '{v}' is deleted",
                                f"CONNECTION_FORCED - vhost '{v}' is down")
    finally:
        close_quietly(conn)
    api.put(f"/api/vhosts/{q(v)}")
    assert api.get(f"/api/queues/{q(v)}/{q(qname)}").status_code == 404


def test_vhost_delete_removes_permissions_and_limits(api, scratch):
    v = scratch.vhost()
    name, _ = scratch.user()
    scratch.grant(name, v)
    api.put(f"/api/vhost-limits/{q(v)}/max-queues", {"value": 3})
    api.delete(f"/api/vhosts/{q(v)}")
    api.put(f"/api/vhosts/{q(v)}")
    assert api.get(f"/api/permissions/{q(v)}/{q(name)}").status_code == 404
    assert api.get(f"/api/vhost-limits/{q(v)}").json() == []


def test_vhost_new_one_is_usable_over_amqp(scratch):
    v = scratch.vhost()
    conn = amqp(ADMIN[0], ADMIN[1], v)
    try:
        ok = conn.channel().queue_declare("", exclusive=True)
        assert ok.method.queue.startswith("amq.gen-")
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# users

def test_user_create_201_update_204(api):
    name = uid("u")
    try:
        assert_empty(api.put(f"/api/users/{q(name)}", {"password": "p", "tags": ""}), 201)
        assert_empty(api.put(f"/api/users/{q(name)}", {"password": "p", "tags": ""}), 204)
    finally:
        api.delete(f"/api/users/{q(name)}")


def test_user_get_keys_and_defaults(api, scratch):
    name, _ = scratch.user()
    got = assert_json(api.get(f"/api/users/{q(name)}"), 200)
    assert set(got) == USER_KEYS
    assert got["name"] == name and got["tags"] == [] and got["limits"] == {}
    assert got["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    assert len(base64.b64decode(got["password_hash"])) == 4 + 32


def test_user_tags_comma_string_is_trimmed_and_empties_dropped(api, scratch):
    name, _ = scratch.user("administrator, monitoring,,foo")
    assert api.get(f"/api/users/{q(name)}").json()["tags"] == ["administrator", "monitoring", "foo"]


def test_user_tags_as_list(api, scratch):
    name, _ = scratch.user()
    assert api.put(f"/api/users/{q(name)}", {"password": "p", "tags": ["management", "x"]}
                   ).status_code == 204
    assert api.get(f"/api/users/{q(name)}").json()["tags"] == ["management", "x"]


@pytest.mark.parametrize("body", [{"password": "p"}, {}, None])
def test_user_put_without_tags_is_400(api, scratch, body):
    name = uid("u")
    scratch.users.append(name)
    assert_error(api.put(f"/api/users/{q(name)}", body), 400,
                 {"error": "bad_request", "reason": "tags_not_present"})
    assert_error(api.get(f"/api/users/{q(name)}"), 404, NOT_FOUND)


def test_user_legacy_administrator_field_replaces_tags(api, scratch):
    name = uid("u")
    scratch.users.append(name)
    assert api.put(f"/api/users/{q(name)}", {"password": "p", "administrator": "true"}
                   ).status_code == 201
    assert api.get(f"/api/users/{q(name)}").json()["tags"] == ["administrator"]


def test_user_created_without_password_cannot_log_in(api, scratch):
    name = uid("u")
    scratch.users.append(name)
    assert api.put(f"/api/users/{q(name)}", {"tags": "management"}).status_code == 201
    got = api.get(f"/api/users/{q(name)}").json()
    assert got["password_hash"] != ""
    assert_error(as_user(name, "").get("/api/whoami"), 401, LOGIN_FAILED)


def test_user_update_without_password_clears_it(api, scratch):
    name, pw = scratch.user("management")
    assert as_user(name, pw).get("/api/whoami").status_code == 200
    assert api.put(f"/api/users/{q(name)}", {"tags": "management"}).status_code == 204
    assert api.get(f"/api/users/{q(name)}").json()["password_hash"] == ""
    assert_error(as_user(name, pw).get("/api/whoami"), 401, LOGIN_FAILED)


def test_user_password_change_takes_effect(api, scratch):
    name, pw = scratch.user("management")
    api.put(f"/api/users/{q(name)}", {"password": "new-pw", "tags": "management"})
    assert_error(as_user(name, pw).get("/api/whoami"), 401, LOGIN_FAILED)
    assert as_user(name, "new-pw").get("/api/whoami").status_code == 200


def test_user_password_hash_sha256_logs_in_over_amqp(api, scratch):
    name = uid("u")
    scratch.users.append(name)
    h = rabbit_hash("s3cret")
    assert api.put(f"/api/users/{q(name)}", {"password_hash": h, "tags": ""}).status_code == 201
    got = api.get(f"/api/users/{q(name)}").json()
    assert got["password_hash"] == h
    assert got["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    api.put(f"/api/permissions/%2F/{q(name)}", {"configure": ".*", "write": ".*", "read": ".*"})
    amqp(name, "s3cret").close()


def test_user_password_hash_md5(api, scratch):
    name = uid("u")
    scratch.users.append(name)
    h = rabbit_hash("s3cret", "md5")
    assert api.put(f"/api/users/{q(name)}", {
        "password_hash": h, "hashing_algorithm": "rabbit_password_hashing_md5",
        "tags": "management"}).status_code == 201
    assert api.get(f"/api/users/{q(name)}").json()["hashing_algorithm"] == \
        "rabbit_password_hashing_md5"
    assert as_user(name, "s3cret").get("/api/whoami").status_code == 200


def test_user_password_hash_update_resets_algorithm_to_default(api, scratch):
    name = uid("u")
    scratch.users.append(name)
    api.put(f"/api/users/{q(name)}", {"password_hash": rabbit_hash("a", "md5"),
                                      "hashing_algorithm": "rabbit_password_hashing_md5",
                                      "tags": ""})
    assert api.put(f"/api/users/{q(name)}", {"password_hash": rabbit_hash("a"), "tags": ""}
                   ).status_code == 204
    assert api.get(f"/api/users/{q(name)}").json()["hashing_algorithm"] == \
        "rabbit_password_hashing_sha256"


def test_user_empty_password_hash_cannot_log_in(api, scratch):
    name = uid("u")
    scratch.users.append(name)
    assert api.put(f"/api/users/{q(name)}", {"password_hash": "", "tags": "management"}
                   ).status_code == 201
    assert api.get(f"/api/users/{q(name)}").json()["password_hash"] == ""
    assert_error(as_user(name, "").get("/api/whoami"), 401, LOGIN_FAILED)


def test_user_password_and_hash_together_is_400(api, scratch):
    name = uid("u")
    scratch.users.append(name)
    assert_error(api.put(f"/api/users/{q(name)}", {"password": "x", "password_hash": rabbit_hash("x"),
                                                   "tags": ""}), 400,
                 {"error": "bad_request", "reason": "both_password_and_password_hash_are_provided"})
    assert api.get(f"/api/users/{q(name)}").status_code == 404


def test_user_password_hash_not_base64_is_400(api, scratch):
    name = uid("u")
    scratch.users.append(name)
    assert_error(api.put(f"/api/users/{q(name)}", {"password_hash": "not base64!!", "tags": ""}),
                 400, {"error": "bad_request", "reason": ["not_base64", "not base64!!"]})
    assert api.get(f"/api/users/{q(name)}").status_code == 404


def test_user_unknown_fields_are_ignored(api, scratch):
    name = uid("u")
    scratch.users.append(name)
    assert api.put(f"/api/users/{q(name)}", {"password": "x", "tags": "", "bogus": 1}
                   ).status_code == 201


def test_user_malformed_json_is_400(api, scratch):
    name = uid("u")
    scratch.users.append(name)
    assert_error(raw(api, "PUT", f"/api/users/{q(name)}", "{bad"), 400,
                 {"error": "bad_request", "reason": "not_json"})


def test_user_put_with_limits(api, scratch):
    name = uid("u")
    scratch.users.append(name)
    assert api.put(f"/api/users/{q(name)}", {"password": "x", "tags": "",
                                             "limits": {"max-connections": 3}}).status_code == 201
    assert api.get(f"/api/users/{q(name)}").json()["limits"] == {"max-connections": 3}
    assert api.get(f"/api/user-limits/{q(name)}").json() == [
        {"user": name, "value": {"max-connections": 3}}]


def test_user_delete_204_then_404(api):
    name = uid("u")
    api.put(f"/api/users/{q(name)}", {"password": "x", "tags": ""})
    assert_empty(api.delete(f"/api/users/{q(name)}"), 204)
    assert_error(api.delete(f"/api/users/{q(name)}"), 404, NOT_FOUND)
    assert_error(api.get(f"/api/users/{q(name)}"), 404, NOT_FOUND)


def test_user_name_with_space_and_slash(api, scratch):
    name = uid("u") + " a/b"
    scratch.users.append(name)
    assert api.put(f"/api/users/{q(name)}", {"password": "x", "tags": ""}).status_code == 201
    assert api.get(f"/api/users/{q(name)}").json()["name"] == name


def test_user_delete_removes_permissions(api, scratch):
    v = scratch.vhost()
    name, _ = scratch.user()
    scratch.grant(name, v)
    api.delete(f"/api/users/{q(name)}")
    users = [p["user"] for p in api.get(f"/api/vhosts/{q(v)}/permissions").json()]
    assert name not in users


def test_user_made_through_api_logs_in_over_amqp(scratch):
    v = scratch.vhost()
    name, pw = scratch.user()  # no tags needed for AMQP
    scratch.grant(name, v)
    conn = amqp(name, pw, v)
    try:
        assert conn.channel().queue_declare("", exclusive=True).method.queue
    finally:
        conn.close()


def test_user_wrong_password_refused_over_amqp(scratch):
    name, pw = scratch.user()
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as e:
        amqp(name, pw + "x")
    assert "403" in str(e.value) and "ACCESS_REFUSED" in str(e.value)


def test_user_delete_closes_amqp_connections(api, scratch):
    name, pw = scratch.user()
    scratch.grant(name, "/")
    conn = amqp(name, pw)
    try:
        assert api.delete(f"/api/users/{q(name)}").status_code == 204
        e = wait_closed_by_broker(conn)
        assert e is not None and e.reply_code == 320
        assert e.reply_text == f"CONNECTION_FORCED - user '{name}' is deleted"
    finally:
        close_quietly(conn)


def test_users_list(api, scratch):
    name, _ = scratch.user("monitoring")
    users = assert_json(api.get("/api/users"), 200)
    mine = [u for u in users if u["name"] == name]
    assert len(mine) == 1 and set(mine[0]) == USER_KEYS and mine[0]["tags"] == ["monitoring"]
    names = [u["name"] for u in users]
    assert names == sorted(names)


def test_users_list_columns(api):
    got = assert_json(api.get("/api/users?columns=name,tags"), 200)
    assert all(set(u) == {"name", "tags"} for u in got)


def test_users_without_permissions(api, scratch):
    v = scratch.vhost()
    bare, _ = scratch.user()
    granted, _ = scratch.user()
    scratch.grant(granted, v)
    got = assert_json(api.get("/api/users/without-permissions"), 200)
    names = [u["name"] for u in got]
    assert bare in names and granted not in names and ADMIN[0] not in names
    assert all(set(u) == USER_KEYS for u in got)


def test_users_bulk_delete(api, scratch):
    a, _ = scratch.user()
    b, _ = scratch.user()
    r = api.post("/api/users/bulk-delete", {"users": [a, b]})
    assert_empty(r, 204)
    assert api.get(f"/api/users/{q(a)}").status_code == 404
    assert api.get(f"/api/users/{q(b)}").status_code == 404


def test_users_bulk_delete_empty_list(api):
    assert_empty(api.post("/api/users/bulk-delete", {"users": []}), 204)


def test_users_bulk_delete_without_users_key_is_400(api):
    assert_error(api.post("/api/users/bulk-delete", {}), 400,
                 {"error": "bad_request", "reason": "[{key_missing,users}]"})


def test_users_bulk_delete_unknown_user_is_400_after_deleting_the_others(api, scratch):
    a, _ = scratch.user()
    missing = uid("nobody")
    assert_error(api.post("/api/users/bulk-delete", {"users": [a, missing]}), 400,
                 {"error": "bad_request", "reason": ["no_such_user", missing]})
    assert api.get(f"/api/users/{q(a)}").status_code == 404


def test_users_bulk_delete_only_post(api):
    r = api.get("/api/users/bulk-delete")
    assert_empty(r, 405)
    assert r.headers["allow"] == "POST, OPTIONS"


# ---------------------------------------------------------------------------------------------
# permissions

def test_permission_create_201_update_204_and_get(api, scratch):
    v = scratch.vhost()
    name, _ = scratch.user()
    path = f"/api/permissions/{q(v)}/{q(name)}"
    assert_empty(api.put(path, {"configure": "^a", "write": "", "read": "b.*"}), 201)
    assert_empty(api.put(path, {"configure": "^c", "write": "", "read": ""}), 204)
    got = assert_json(api.get(path), 200)
    assert got == {"user": name, "vhost": v, "configure": "^c", "write": "", "read": ""}
    assert list(got) == ["user", "vhost", "configure", "write", "read"]


def test_permission_get_missing_is_404(api, scratch):
    v = scratch.vhost()
    name, _ = scratch.user()
    assert_error(api.get(f"/api/permissions/{q(v)}/{q(name)}"), 404, NOT_FOUND)
    assert_error(api.get(f"/api/permissions/{q(uid())}/{q(name)}"), 404, NOT_FOUND)
    assert_error(api.get(f"/api/permissions/{q(v)}/{q(uid())}"), 404, NOT_FOUND)


@pytest.mark.parametrize("body,reason", [
    ({"configure": "^a"}, "[{key_missing,write},{key_missing,read}]"),
    ({}, "[{key_missing,configure},{key_missing,write},{key_missing,read}]"),
    (None, "[{key_missing,configure},{key_missing,write},{key_missing,read}]"),
])
def test_permission_missing_keys_is_400(api, scratch, body, reason):
    v = scratch.vhost()
    name, _ = scratch.user()
    assert_error(api.put(f"/api/permissions/{q(v)}/{q(name)}", body), 400,
                 {"error": "bad_request", "reason": reason})


@pytest.mark.parametrize("field", ["configure", "write", "read"])
def test_permission_invalid_regex_is_400(api, scratch, field):
    v = scratch.vhost()
    name, _ = scratch.user()
    body = {"configure": "", "write": "", "read": ""}
    body[field] = "("
    r = api.put(f"/api/permissions/{q(v)}/{q(name)}", body)
    got = assert_json(r, 400)
    assert got["error"] == "bad_request" and got["reason"][0] == "invalid_regexp"
    assert api.get(f"/api/permissions/{q(v)}/{q(name)}").status_code == 404


def test_permission_unknown_vhost_or_user_is_400(api, scratch):
    v = scratch.vhost()
    name, _ = scratch.user()
    body = {"configure": "", "write": "", "read": ""}
    err = {"error": "bad_request", "reason": "vhost_or_user_not_found"}
    assert_error(once(api, "PUT", f"/api/permissions/{q(uid())}/{q(name)}", body), 400, err)
    assert_error(once(api, "PUT", f"/api/permissions/{q(v)}/{q(uid())}", body), 400, err)


def test_permission_unknown_fields_are_ignored(api, scratch):
    v = scratch.vhost()
    name, _ = scratch.user()
    assert api.put(f"/api/permissions/{q(v)}/{q(name)}",
                   {"configure": "", "write": "", "read": "", "extra": 1}).status_code == 201


def test_permission_delete_204_then_404(api, scratch):
    v = scratch.vhost()
    name, _ = scratch.user()
    scratch.grant(name, v)
    assert_empty(api.delete(f"/api/permissions/{q(v)}/{q(name)}"), 204)
    assert_error(api.delete(f"/api/permissions/{q(v)}/{q(name)}"), 404, NOT_FOUND)


def test_permissions_lists(api, scratch):
    v = scratch.vhost()
    name, _ = scratch.user()
    scratch.grant(name, v, "c", "w", "r")
    want = {"user": name, "vhost": v, "configure": "c", "write": "w", "read": "r"}
    all_perms = assert_json(api.get("/api/permissions"), 200)
    assert want in all_perms and all(set(p) == PERM_KEYS for p in all_perms)
    by_vhost = assert_json(api.get(f"/api/vhosts/{q(v)}/permissions"), 200)
    assert sorted(p["user"] for p in by_vhost) == sorted([ADMIN[0], name])
    assert want in by_vhost
    assert assert_json(api.get(f"/api/users/{q(name)}/permissions"), 200) == [want]


def test_permissions_lists_unknown_is_404(api):
    assert_error(api.get(f"/api/vhosts/{q(uid())}/permissions"), 404, NOT_FOUND)
    assert_error(api.get(f"/api/users/{q(uid())}/permissions"), 404, NOT_FOUND)


def test_permission_configure_enforced_over_amqp(scratch):
    v = scratch.vhost()
    name, pw = scratch.user()
    scratch.grant(name, v, configure="^allowed-", write=".*", read=".*")
    conn = amqp(name, pw, v)
    try:
        ch = conn.channel()
        ch.queue_declare("allowed-" + uid(), exclusive=True)
        denied = "denied-" + uid()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.queue_declare(denied)
        assert e.value.reply_code == 403
        assert e.value.reply_text == (f"ACCESS_REFUSED - access to queue '{denied}' in vhost "
                                      f"'{v}' refused for user '{name}'")
    finally:
        close_quietly(conn)


def test_permission_write_enforced_over_amqp(scratch):
    v = scratch.vhost()
    name, pw = scratch.user()
    scratch.grant(name, v, configure=".*", write="^$", read=".*")
    conn = amqp(name, pw, v)
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.basic_publish("amq.fanout", "", b"x")
        assert e.value.reply_code == 403
    finally:
        close_quietly(conn)


def test_no_permission_on_vhost_refuses_amqp_connection(scratch):
    v = scratch.vhost()
    name, pw = scratch.user()
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as e:
        amqp(name, pw, v)
    assert "530" in str(e.value)
    assert f"access to vhost '{v}' refused for user '{name}'" in str(e.value)


def test_empty_permissions_still_allow_the_vhost(scratch):
    v = scratch.vhost()
    name, pw = scratch.user()
    scratch.grant(name, v, "", "", "")
    conn = amqp(name, pw, v)
    try:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            conn.channel().queue_declare("", exclusive=True)
        assert e.value.reply_code == 403
    finally:
        close_quietly(conn)


def test_permission_revocation_applies_to_open_connection(api, scratch):
    v = scratch.vhost()
    name, pw = scratch.user()
    scratch.grant(name, v)
    conn = amqp(name, pw, v)
    try:
        ch = conn.channel()
        api.delete(f"/api/permissions/{q(v)}/{q(name)}")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.queue_declare(uid("q"))
        assert e.value.reply_code == 403
    finally:
        close_quietly(conn)


# ---------------------------------------------------------------------------------------------
# topic permissions

def test_topic_permission_201_first_then_204(api, scratch):
    v = scratch.vhost()
    name, _ = scratch.user()
    path = f"/api/topic-permissions/{q(v)}/{q(name)}"
    assert_empty(api.put(path, {"exchange": "amq.topic", "write": "^a", "read": ".*"}), 201)
    assert_empty(api.put(path, {"exchange": "amq.topic", "write": "^b", "read": ".*"}), 204)
    # a second exchange for the same user and vhost is also an update (204)
    assert_empty(api.put(path, {"exchange": "other", "write": "", "read": ""}), 204)


def test_topic_permission_get_is_a_list(api, scratch):
    v = scratch.vhost()
    name, _ = scratch.user()
    path = f"/api/topic-permissions/{q(v)}/{q(name)}"
    api.put(path, {"exchange": "amq.topic", "write": "^a", "read": ".*"})
    api.put(path, {"exchange": "other", "write": "w", "read": "r"})
    got = sorted(assert_json(api.get(path), 200), key=lambda p: p["exchange"])
    assert got == [
        {"user": name, "vhost": v, "exchange": "amq.topic", "write": "^a", "read": ".*"},
        {"user": name, "vhost": v, "exchange": "other", "write": "w", "read": "r"}]


def test_topic_permission_missing_is_404(api, scratch):
    v = scratch.vhost()
    name, _ = scratch.user()
    assert_error(api.get(f"/api/topic-permissions/{q(v)}/{q(name)}"), 404, NOT_FOUND)
    assert_error(api.delete(f"/api/topic-permissions/{q(v)}/{q(name)}"), 404, NOT_FOUND)


@pytest.mark.parametrize("body,reason", [
    ({"write": "", "read": ""}, "[{key_missing,exchange}]"),
    ({"exchange": "x"}, "[{key_missing,write},{key_missing,read}]"),
])
def test_topic_permission_missing_keys_is_400(api, scratch, body, reason):
    v = scratch.vhost()
    name, _ = scratch.user()
    assert_error(api.put(f"/api/topic-permissions/{q(v)}/{q(name)}", body), 400,
                 {"error": "bad_request", "reason": reason})


def test_topic_permission_invalid_regex_is_400(api, scratch):
    v = scratch.vhost()
    name, _ = scratch.user()
    got = assert_json(api.put(f"/api/topic-permissions/{q(v)}/{q(name)}",
                              {"exchange": "x", "write": "(", "read": ""}), 400)
    assert got["error"] == "bad_request"
    assert got["reason"][:2] == ["invalid_regexp", "("]


def test_topic_permission_unknown_vhost_or_user_is_400(api, scratch):
    v = scratch.vhost()
    name, _ = scratch.user()
    body = {"exchange": "x", "write": "", "read": ""}
    err = {"error": "bad_request", "reason": "vhost_or_user_not_found"}
    assert_error(once(api, "PUT", f"/api/topic-permissions/{q(uid())}/{q(name)}", body), 400,
                 err)
    assert_error(once(api, "PUT", f"/api/topic-permissions/{q(v)}/{q(uid())}", body), 400, err)


def test_topic_permission_delete_one_exchange(api, scratch):
    v = scratch.vhost()
    name, _ = scratch.user()
    path = f"/api/topic-permissions/{q(v)}/{q(name)}"
    api.put(path, {"exchange": "amq.topic", "write": "", "read": ""})
    api.put(path, {"exchange": "other", "write": "", "read": ""})
    assert_empty(api.delete(path + "/other"), 204)
    assert [p["exchange"] for p in api.get(path).json()] == ["amq.topic"]
    assert_empty(api.delete(path + "/" + uid("nosuch")), 204)


def test_topic_permission_delete_all(api, scratch):
    v = scratch.vhost()
    name, _ = scratch.user()
    path = f"/api/topic-permissions/{q(v)}/{q(name)}"
    api.put(path, {"exchange": "amq.topic", "write": "", "read": ""})
    api.put(path, {"exchange": "other", "write": "", "read": ""})
    assert_empty(api.delete(path), 204)
    assert_error(api.get(path), 404, NOT_FOUND)


def test_topic_permissions_lists(api, scratch):
    v = scratch.vhost()
    name, _ = scratch.user()
    api.put(f"/api/topic-permissions/{q(v)}/{q(name)}",
            {"exchange": "amq.topic", "write": "w", "read": "r"})
    want = {"user": name, "vhost": v, "exchange": "amq.topic", "write": "w", "read": "r"}
    everything = assert_json(api.get("/api/topic-permissions"), 200)
    assert want in everything and all(set(p) == TOPIC_PERM_KEYS for p in everything)
    assert assert_json(api.get(f"/api/vhosts/{q(v)}/topic-permissions"), 200) == [want]
    assert assert_json(api.get(f"/api/users/{q(name)}/topic-permissions"), 200) == [want]
    assert_error(api.get(f"/api/vhosts/{q(uid())}/topic-permissions"), 404, NOT_FOUND)
    assert_error(api.get(f"/api/users/{q(uid())}/topic-permissions"), 404, NOT_FOUND)


def test_topic_permission_enforced_over_amqp(api, scratch):
    v = scratch.vhost()
    name, pw = scratch.user()
    scratch.grant(name, v)
    api.put(f"/api/topic-permissions/{q(v)}/{q(name)}",
            {"exchange": "amq.topic", "write": "^ok\\.", "read": ".*"})
    conn = amqp(name, pw, v)
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish("amq.topic", "ok.1", b"x")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.basic_publish("amq.topic", "no.1", b"x")
        assert e.value.reply_code == 403
        assert e.value.reply_text == (f"ACCESS_REFUSED - access to topic 'no.1' in exchange "
                                      f"'amq.topic' in vhost '{v}' refused for user '{name}'")
    finally:
        close_quietly(conn)


# ---------------------------------------------------------------------------------------------
# vhost limits

def test_vhost_limit_put_204_and_list(api, scratch):
    v = scratch.vhost()
    assert_empty(api.put(f"/api/vhost-limits/{q(v)}/max-connections", {"value": 10}), 204)
    assert_empty(api.put(f"/api/vhost-limits/{q(v)}/max-connections", {"value": 11}), 204)
    assert_empty(api.put(f"/api/vhost-limits/{q(v)}/max-queues", {"value": -1}), 204)
    want = [{"vhost": v, "value": {"max-connections": 11, "max-queues": -1}}]
    assert assert_json(api.get(f"/api/vhost-limits/{q(v)}"), 200) == want
    assert want[0] in assert_json(api.get("/api/vhost-limits"), 200)


def test_vhost_limits_empty_is_empty_list(api, scratch):
    v = scratch.vhost()
    assert assert_json(api.get(f"/api/vhost-limits/{q(v)}"), 200) == []


def test_vhost_limits_unknown_vhost_is_404(api):
    assert_error(api.get(f"/api/vhost-limits/{q(uid())}"), 404, NOT_FOUND)


def test_vhost_limit_unknown_vhost_put_is_404(api):
    assert_error(once(api, "PUT", f"/api/vhost-limits/{q(uid())}/max-connections",
                      {"value": 1}), 404,
                 {"error": "not_found", "reason": "vhost_not_found"})


def test_vhost_limit_unknown_name_is_400(api, scratch):
    v = scratch.vhost()
    assert_error(api.put(f"/api/vhost-limits/{q(v)}/bogus", {"value": 1}), 400, {
        "error": "bad_request",
        "reason": "Validation failed\n\nUnrecognised terms [{<<\"bogus\">>,1}] in limits\n"})


@pytest.mark.parametrize("value,shown", [("x", '<<"x">>'), (1.5, "1.5")])
def test_vhost_limit_non_integer_is_400(api, scratch, value, shown):
    v = scratch.vhost()
    assert_error(api.put(f"/api/vhost-limits/{q(v)}/max-connections", {"value": value}), 400, {
        "error": "bad_request",
        "reason": f"Validation failed\n\nmax-connections should be a number, actually was {shown}\n"})


def test_vhost_limit_missing_value_is_400(api, scratch):
    v = scratch.vhost()
    assert_error(api.put(f"/api/vhost-limits/{q(v)}/max-connections", {"val": 1}), 400,
                 {"error": "bad_request", "reason": "[{key_missing,value}]"})


def test_vhost_limit_needs_json_content_type(api, scratch):
    v = scratch.vhost()
    r = raw(api, "PUT", f"/api/vhost-limits/{q(v)}/max-connections", '{"value":3}',
            content_type="text/plain")
    assert_empty(r, 415)
    r = raw(api, "PUT", f"/api/vhost-limits/{q(v)}/max-connections", '{"value":3}',
            content_type=None)
    assert_empty(r, 415)
    assert api.get(f"/api/vhost-limits/{q(v)}").json() == []


def test_vhost_limit_malformed_json_is_400(api, scratch):
    v = scratch.vhost()
    assert_error(raw(api, "PUT", f"/api/vhost-limits/{q(v)}/max-connections", "{x"), 400,
                 {"error": "bad_request", "reason": "not_json"})


def test_vhost_limit_single_cannot_be_read(api, scratch):
    v = scratch.vhost()
    api.put(f"/api/vhost-limits/{q(v)}/max-queues", {"value": 1})
    r = api.get(f"/api/vhost-limits/{q(v)}/max-queues")
    assert_empty(r, 405)
    assert r.headers["allow"] == "PUT, DELETE, OPTIONS"


def test_vhost_limit_delete_is_idempotent(api, scratch):
    v = scratch.vhost()
    api.put(f"/api/vhost-limits/{q(v)}/max-queues", {"value": 1})
    assert_empty(api.delete(f"/api/vhost-limits/{q(v)}/max-queues"), 204)
    assert_empty(api.delete(f"/api/vhost-limits/{q(v)}/max-queues"), 204)
    assert_empty(api.delete(f"/api/vhost-limits/{q(v)}/bogus"), 204)
    assert api.get(f"/api/vhost-limits/{q(v)}").json() == []


def test_vhost_limits_visible_to_management_user_only_for_permitted_vhosts(api, scratch):
    v, other = scratch.vhost(), scratch.vhost()
    name, pw = scratch.user("management")
    scratch.grant(name, v)
    api.put(f"/api/vhost-limits/{q(v)}/max-queues", {"value": 5})
    api.put(f"/api/vhost-limits/{q(other)}/max-queues", {"value": 6})
    got = [x["vhost"] for x in assert_json(as_user(name, pw).get("/api/vhost-limits"), 200)]
    assert v in got and other not in got
    assert_error(as_user(name, pw).get(f"/api/vhost-limits/{q(other)}"), 401, NOT_VHOST)


def test_vhost_limit_max_connections_enforced_over_amqp(api, scratch):
    v = scratch.vhost()
    api.put(f"/api/vhost-limits/{q(v)}/max-connections", {"value": 0})
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as e:
        amqp(ADMIN[0], ADMIN[1], v)
    assert "530" in str(e.value) and "connection limit (0) is reached" in str(e.value)
    api.delete(f"/api/vhost-limits/{q(v)}/max-connections")
    amqp(ADMIN[0], ADMIN[1], v).close()


def test_vhost_limit_max_queues_enforced_over_amqp(api, scratch):
    v = scratch.vhost()
    api.put(f"/api/vhost-limits/{q(v)}/max-queues", {"value": 1})
    conn = amqp(ADMIN[0], ADMIN[1], v)
    try:
        ch = conn.channel()
        ch.queue_declare(uid("q"))
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.queue_declare(uid("q"))
        assert e.value.reply_code == 406
    finally:
        close_quietly(conn)


# ---------------------------------------------------------------------------------------------
# user limits

def test_user_limit_put_204_and_reflected_in_user(api, scratch):
    name, _ = scratch.user()
    assert_empty(api.put(f"/api/user-limits/{q(name)}/max-connections", {"value": 10}), 204)
    assert_empty(api.put(f"/api/user-limits/{q(name)}/max-channels", {"value": 5}), 204)
    want = {"max-channels": 5, "max-connections": 10}
    assert assert_json(api.get(f"/api/user-limits/{q(name)}"), 200) == [
        {"user": name, "value": want}]
    assert {"user": name, "value": want} in api.get("/api/user-limits").json()
    assert api.get(f"/api/users/{q(name)}").json()["limits"] == want


def test_user_limits_empty_and_unknown(api, scratch):
    name, _ = scratch.user()
    assert assert_json(api.get(f"/api/user-limits/{q(name)}"), 200) == []
    assert_error(api.get(f"/api/user-limits/{q(uid())}"), 404, NOT_FOUND)


def test_user_limit_unknown_name_is_400(api, scratch):
    name, _ = scratch.user()
    assert_error(api.put(f"/api/user-limits/{q(name)}/max-queues", {"value": 1}), 400, {
        "error": "bad_request",
        "reason": "Unrecognised terms [{<<\"max-queues\">>,1}] in user-limits"})


def test_user_limit_non_integer_is_400(api, scratch):
    name, _ = scratch.user()
    assert_error(api.put(f"/api/user-limits/{q(name)}/max-channels", {"value": "x"}), 400, {
        "error": "bad_request", "reason": "max-channels should be a number, actually was <<\"x\">>"})


def test_user_limit_missing_value_is_400(api, scratch):
    name, _ = scratch.user()
    assert_error(api.put(f"/api/user-limits/{q(name)}/max-channels", {}), 400,
                 {"error": "bad_request", "reason": "[{key_missing,value}]"})


def test_user_limit_unknown_user_is_400(api):
    missing = uid("nobody")
    assert_error(once(api, "PUT", f"/api/user-limits/{q(missing)}/max-channels", {"value": 1}),
                 400,
                 {"error": "bad_request", "reason": ["no_such_user", missing]})


def test_user_limit_delete_is_idempotent(api, scratch):
    name, _ = scratch.user()
    api.put(f"/api/user-limits/{q(name)}/max-channels", {"value": 1})
    assert_empty(api.delete(f"/api/user-limits/{q(name)}/max-channels"), 204)
    assert_empty(api.delete(f"/api/user-limits/{q(name)}/max-channels"), 204)
    assert api.get(f"/api/user-limits/{q(name)}").json() == []
    assert api.get(f"/api/users/{q(name)}").json()["limits"] == {}


def test_user_limit_needs_json_content_type(api, scratch):
    name, _ = scratch.user()
    r = raw(api, "PUT", f"/api/user-limits/{q(name)}/max-channels", '{"value":3}',
            content_type="text/plain")
    assert_empty(r, 415)


def test_user_limits_visible_to_management_user_for_every_user(api, scratch):
    target, _ = scratch.user()
    viewer, pw = scratch.user("management")
    api.put(f"/api/user-limits/{q(target)}/max-connections", {"value": 4})
    got = assert_json(as_user(viewer, pw).get("/api/user-limits"), 200)
    assert {"user": target, "value": {"max-connections": 4}} in got
    assert as_user(viewer, pw).get(f"/api/user-limits/{q(target)}").status_code == 200


def test_user_limit_max_connections_enforced_over_amqp(api, scratch):
    name, pw = scratch.user()
    scratch.grant(name, "/")
    api.put(f"/api/user-limits/{q(name)}/max-connections", {"value": 0})
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as e:
        amqp(name, pw)
    assert "530" in str(e.value) and "user connection limit (0) is reached" in str(e.value)


def test_user_limit_max_channels_enforced_over_amqp(api, scratch):
    name, pw = scratch.user()
    scratch.grant(name, "/")
    api.put(f"/api/user-limits/{q(name)}/max-channels", {"value": 1})
    conn = amqp(name, pw)
    try:
        conn.channel()
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
            conn.channel()
        assert e.value.reply_code == 530
        assert "has reached the maximum allowed user limit of (1)" in e.value.reply_text
    finally:
        close_quietly(conn)


# ---------------------------------------------------------------------------------------------
# health checks

def test_aliveness_test_ok_leaves_its_queue(api, scratch):
    v = scratch.vhost()
    r = api.get(f"/api/aliveness-test/{q(v)}")
    assert assert_json(r, 200) == {"status": "ok"}
    assert r.headers["cache-control"] == "no-cache"
    got = api.get(f"/api/queues/{q(v)}/aliveness-test").json()
    assert got["durable"] is False and got["auto_delete"] is False
    assert got.get("messages", 0) == 0


def test_aliveness_test_default_vhost(api):
    existed = api.get("/api/queues/%2F/aliveness-test").status_code == 200
    try:
        assert assert_json(api.get("/api/aliveness-test/%2F"), 200) == {"status": "ok"}
    finally:
        if not existed:
            api.delete("/api/queues/%2F/aliveness-test")


def test_aliveness_test_unknown_vhost_is_404(api):
    assert_error(api.get(f"/api/aliveness-test/{q(uid())}"), 404, NOT_FOUND)


def test_aliveness_test_management_user_without_vhost_permissions(scratch):
    v = scratch.vhost()
    name, pw = scratch.user("management")
    assert_error(as_user(name, pw).get(f"/api/aliveness-test/{q(v)}"), 401, NOT_VHOST)


def test_aliveness_test_monitoring_user_without_vhost_permissions(scratch):
    v = scratch.vhost()
    name, pw = scratch.user("monitoring")
    assert_error(as_user(name, pw).get(f"/api/aliveness-test/{q(v)}"), 401, NOT_VHOST)


def test_aliveness_test_admin_without_vhost_permissions_is_access_refused(scratch):
    v = scratch.vhost()
    name, pw = scratch.user("administrator")
    assert_error(as_user(name, pw).get(f"/api/aliveness-test/{q(v)}"), 401,
                 {"error": "not_authorised", "reason": "Access refused."})


def test_aliveness_test_runs_with_the_callers_permissions(scratch):
    v = scratch.vhost()
    name, pw = scratch.user("management")
    scratch.grant(name, v, "", "", "")
    assert_error(as_user(name, pw).get(f"/api/aliveness-test/{q(v)}"), 401, {
        "error": "not_authorised",
        "reason": f"ACCESS_REFUSED - access to queue 'aliveness-test' in vhost '{v}' "
                  f"refused for user '{name}'"})


@pytest.mark.parametrize("path", ["/api/healthchecks/node", "/api/health/checks/alarms",
                                  "/api/health/checks/local-alarms",
                                  "/api/health/checks/virtual-hosts",
                                  "/api/health/checks/certificate-expiration/1/months",
                                  "/api/health/checks/certificate-expiration/2/weeks",
                                  "/api/health/checks/certificate-expiration/3/days",
                                  "/api/health/checks/certificate-expiration/1/years"])
def test_health_check_ok(api, path):
    r = api.get(path)
    assert assert_json(r, 200) == {"status": "ok"}
    assert r.headers["cache-control"] == "no-cache"


def test_healthchecks_node_by_name(api):
    node = api.get("/api/overview").json()["node"]
    assert assert_json(api.get(f"/api/healthchecks/node/{q(node)}"), 200) == {"status": "ok"}
    assert_error(api.get("/api/healthchecks/node/nosuch@nohost"), 404, NOT_FOUND)


def test_health_check_node_is_quorum_critical_single_node(api):
    assert assert_json(api.get("/api/health/checks/node-is-quorum-critical"), 200) == {
        "status": "ok", "reason": "single node cluster"}


def test_health_check_port_listener(api):
    assert assert_json(api.get(f"/api/health/checks/port-listener/{AMQP_PORT}"), 200) == {
        "status": "ok", "port": AMQP_PORT}
    assert assert_json(api.get(f"/api/health/checks/port-listener/{MGMT_PORT}"), 200) == {
        "status": "ok", "port": MGMT_PORT}


def test_health_check_port_listener_missing_is_503(api):
    got = assert_json(api.get("/api/health/checks/port-listener/1"), 503)
    assert set(got) == {"status", "reason", "missing", "ports"}
    assert got["status"] == "failed" and got["reason"] == "No active listener"
    assert got["missing"] == 1
    assert {AMQP_PORT, MGMT_PORT} <= set(got["ports"])


def test_health_check_port_listener_invalid_is_400(api):
    assert_error(api.get("/api/health/checks/port-listener/abc"), 400,
                 {"error": "bad_request", "reason": "Invalid port"})


@pytest.mark.parametrize("proto,shown", [("amqp", "amqp"), ("amqp091", "amqp"),
                                         ("AMQP0-9-1", "amqp"), ("http", "http"),
                                         ("management", "http")])
def test_health_check_protocol_listener(api, proto, shown):
    assert assert_json(api.get(f"/api/health/checks/protocol-listener/{proto}"), 200) == {
        "status": "ok", "protocol": shown}


def test_health_check_protocol_listener_missing_is_503(api):
    got = assert_json(api.get("/api/health/checks/protocol-listener/bogus"), 503)
    assert set(got) == {"status", "reason", "missing", "protocols"}
    assert got["status"] == "failed" and got["reason"] == "No active listener"
    assert got["missing"] == "bogus"
    assert {"amqp", "http"} <= set(got["protocols"])


def test_health_check_certificate_expiration_bad_input(api):
    assert_error(api.get("/api/health/checks/certificate-expiration/x/months"), 400,
                 {"error": "bad_request", "reason": "Invalid expiration value."})
    assert_error(api.get("/api/health/checks/certificate-expiration/1/fortnights"), 400, {
        "error": "bad_request",
        "reason": "Time unit not recognised. Supported units: days, weeks, months, years."})


# ---------------------------------------------------------------------------------------------
# definitions

DEF_TOP = ["rabbit_version", "rabbitmq_version", "product_name", "product_version", "users",
           "vhosts", "permissions", "topic_permissions", "parameters", "global_parameters",
           "policies", "queues", "exchanges", "bindings"]


def _populate(api, scratch):
    """A vhost with a user, permissions, a topic permission, a limit, a policy, a durable
    queue, an exclusive queue, an exchange and bindings."""
    v = scratch.vhost()
    name, pw = scratch.user("management")
    scratch.grant(name, v, "c", "w", "r")
    api.put(f"/api/topic-permissions/{q(v)}/{q(name)}",
            {"exchange": "amq.topic", "write": "tw", "read": "tr"})
    api.put(f"/api/vhost-limits/{q(v)}/max-queues", {"value": 50})
    api.put(f"/api/policies/{q(v)}/pol", {"pattern": "^dq$", "definition": {"max-length": 5},
                                          "priority": 1, "apply-to": "queues"})
    conn = amqp(ADMIN[0], ADMIN[1], v)
    ch = conn.channel()
    ch.exchange_declare("dx", "topic", durable=True)
    ch.queue_declare("dq", durable=True, arguments={"x-max-length": 10})
    ch.queue_declare("excl", exclusive=True)
    ch.queue_bind("dq", "dx", "rk.#")
    ch.queue_bind("excl", "dx", "e")
    return v, name, conn


def test_definitions_export_shape(api, scratch):
    v, name, conn = _populate(api, scratch)
    try:
        r = api.get("/api/definitions")
        d = assert_json(r, 200)
    finally:
        conn.close()
    assert list(d) == DEF_TOP
    for k in DEF_TOP[:4]:
        assert isinstance(d[k], str)
    user = next(u for u in d["users"] if u["name"] == name)
    assert list(user) == ["name", "password_hash", "hashing_algorithm", "tags", "limits"]
    assert user["tags"] == ["management"]
    assert {"name": v} in d["vhosts"]
    assert {"user": name, "vhost": v, "configure": "c", "write": "w", "read": "r"} in d["permissions"]
    assert {"user": name, "vhost": v, "exchange": "amq.topic", "write": "tw",
            "read": "tr"} in d["topic_permissions"]
    assert {"value": {"max-queues": 50}, "vhost": v, "component": "vhost-limits",
            "name": "limits"} in d["parameters"]
    assert {"vhost": v, "name": "pol", "pattern": "^dq$", "apply-to": "queues",
            "definition": {"max-length": 5}, "priority": 1} in d["policies"]
    assert {"name": "dq", "vhost": v, "durable": True, "auto_delete": False,
            "arguments": {"x-max-length": 10}} in d["queues"]
    assert {"name": "dx", "vhost": v, "type": "topic", "durable": True, "auto_delete": False,
            "internal": False, "arguments": {}} in d["exchanges"]
    assert [b for b in d["bindings"] if b["vhost"] == v] == [
        {"source": "dx", "vhost": v, "destination": "dq", "destination_type": "queue",
         "routing_key": "rk.#", "arguments": {}}]
    # keys in RabbitMQ's order (vhost second), as tools that diff export files see them
    dq = next(x for x in d["queues"] if x["vhost"] == v and x["name"] == "dq")
    assert list(dq) == ["name", "vhost", "durable", "auto_delete", "arguments"]
    dx = next(x for x in d["exchanges"] if x["vhost"] == v and x["name"] == "dx")
    assert list(dx) == ["name", "vhost", "type", "durable", "auto_delete", "internal",
                        "arguments"]
    b = next(b for b in d["bindings"] if b["vhost"] == v)
    assert list(b) == ["source", "vhost", "destination", "destination_type", "routing_key",
                       "arguments"]
    # exclusive queues, default and amq.* exchanges are not exported
    assert not [x for x in d["queues"] if x["vhost"] == v and x["name"] == "excl"]
    assert not [x for x in d["exchanges"] if x["name"] == "" or x["name"].startswith("amq.")]


def test_definitions_vhost_export_strips_vhost(api, scratch):
    v, name, conn = _populate(api, scratch)
    try:
        d = assert_json(api.get(f"/api/definitions/{q(v)}"), 200)
    finally:
        conn.close()
    assert list(d) == ["rabbit_version", "parameters", "policies", "queues", "exchanges",
                       "bindings"]
    assert d["queues"] == [{"name": "dq", "durable": True, "auto_delete": False,
                            "arguments": {"x-max-length": 10}}]
    assert d["exchanges"] == [{"name": "dx", "type": "topic", "durable": True,
                               "auto_delete": False, "internal": False, "arguments": {}}]
    assert d["bindings"] == [{"source": "dx", "destination": "dq", "destination_type": "queue",
                              "routing_key": "rk.#", "arguments": {}}]
    # policies and parameters keep their vhost
    assert d["policies"][0]["vhost"] == v
    assert d["parameters"] == [{"value": {"max-queues": 50}, "vhost": v,
                                "component": "vhost-limits", "name": "limits"}]


def test_definitions_export_unknown_vhost_is_400(api):
    assert_error(api.get(f"/api/definitions/{q(uid())}"), 400,
                 {"error": "bad_request", "reason": "vhost_not_found"})


def test_definitions_download_sets_content_disposition(api, scratch):
    v = scratch.vhost()
    r = api.get("/api/definitions?download=defs.json")
    assert r.status_code == 200 and r.headers["content-disposition"] == \
        "attachment; filename=defs.json"
    r = api.get(f"/api/definitions/{q(v)}?download=v.json")
    assert r.headers["content-disposition"] == "attachment; filename=v.json"


def test_definitions_auth_query_parameter(scratch):
    name, pw = scratch.user("administrator")
    token = base64.b64encode(f"{name}:{pw}".encode()).decode()
    r = requests.get(f"{MGMT_URL}/api/definitions", params={"auth": token}, timeout=WAIT)
    assert assert_json(r, 200)["rabbit_version"]
    mname, mpw = scratch.user("management")
    token = base64.b64encode(f"{mname}:{mpw}".encode()).decode()
    r = requests.get(f"{MGMT_URL}/api/definitions", params={"auth": token}, timeout=WAIT)
    assert_error(r, 401, NOT_ADMIN)


def test_definitions_import_creates_everything(api, scratch):
    v, name, qn = uid("iv"), uid("iu"), uid("iq")
    scratch.vhosts.append(v)
    scratch.users.append(name)
    h = rabbit_hash("imported")
    r = api.post("/api/definitions", {
        "vhosts": [{"name": v, "description": "d", "tags": ["t"]}],
        "users": [{"name": name, "password_hash": h,
                   "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": "management"}],
        "permissions": [{"user": name, "vhost": v, "configure": ".*", "write": ".*",
                         "read": ".*"}],
        "topic_permissions": [{"user": name, "vhost": v, "exchange": "amq.topic", "write": "w",
                               "read": "r"}],
        "queues": [{"name": qn, "vhost": v, "durable": True, "auto_delete": False,
                    "arguments": {}}],
        "exchanges": [{"name": "ix", "vhost": v, "type": "direct", "durable": True,
                       "auto_delete": False, "internal": False, "arguments": {}}],
        "bindings": [{"source": "ix", "vhost": v, "destination": qn, "destination_type": "queue",
                      "routing_key": "k", "arguments": {}}]})
    assert_empty(r, 204)
    got = api.get(f"/api/vhosts/{q(v)}").json()
    assert got["description"] == "d" and got["tags"] == ["t"]
    assert api.get(f"/api/users/{q(name)}").json()["password_hash"] == h
    assert api.get(f"/api/topic-permissions/{q(v)}/{q(name)}").status_code == 200
    assert as_user(name, "imported").get("/api/whoami").json()["tags"] == ["management"]
    d = api.get(f"/api/definitions/{q(v)}").json()
    assert d["bindings"] == [{"source": "ix", "destination": qn, "destination_type": "queue",
                              "routing_key": "k", "arguments": {}}]
    conn = amqp(name, "imported", v)
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish("ix", "k", b"hello", mandatory=True)
        method, _, body = ch.basic_get(qn, auto_ack=True)
        assert body == b"hello"
    finally:
        conn.close()


def test_definitions_import_user_with_cleartext_password(api, scratch):
    name = uid("iu")
    scratch.users.append(name)
    assert api.post("/api/definitions", {"users": [{"name": name, "password": "clear",
                                                    "tags": "management"}]}).status_code == 204
    assert as_user(name, "clear").get("/api/whoami").status_code == 200


def test_definitions_import_empty_and_unknown_keys(api):
    assert_empty(api.post("/api/definitions", {}), 204)
    assert_empty(api.post("/api/definitions", {"bogus_key": 1}), 204)


@pytest.mark.parametrize("body", ["{bad", "[]"])
def test_definitions_import_malformed_is_400(api, body):
    assert_error(raw(api, "POST", "/api/definitions", body), 400,
                 {"error": "bad_request", "reason": "failed_to_parse_json"})


def test_definitions_import_needs_json_content_type(api):
    assert_empty(raw(api, "POST", "/api/definitions", "{}", content_type="text/plain"), 415)
    assert_empty(raw(api, "POST", "/api/definitions", "{}", content_type=None), 415)


def test_definitions_import_with_a_bad_entry(api, scratch):
    """Both brokers refuse the file with the same reason. RabbitMQ has applied the entries
    before the bad one (its users); Warren applies nothing, as issue 13 asks (an import is
    all-or-nothing): the one assertion that differs by design."""
    name, missing = uid("iu"), uid("nosuchvhost")
    scratch.users.append(name)
    r = api.post("/api/definitions", {
        "users": [{"name": name, "password": "x", "tags": ""}],
        "queues": [{"name": "q", "vhost": missing, "durable": True, "auto_delete": False,
                    "arguments": {}}]})
    assert_error(r, 400, {"error": "bad_request", "reason": ["no_such_vhost", missing]})
    applied = api.get(f"/api/users/{q(name)}").status_code
    assert applied == (200 if _is_rabbitmq() else 404)


def test_definitions_import_errors(api, scratch):
    v = scratch.vhost()
    missing = uid("nobody")
    r = api.post("/api/definitions", {"permissions": [
        {"user": missing, "vhost": v, "configure": "", "write": "", "read": ""}]})
    assert_error(r, 400, {"error": "bad_request", "reason": ["no_such_user", missing]})
    r = api.post("/api/definitions", {"permissions": [
        {"user": ADMIN[0], "vhost": v, "configure": "(", "write": "", "read": ""}]})
    got = assert_json(r, 400)
    assert got["reason"][0] == "invalid_regexp"
    r = api.post("/api/definitions", {"queues": [
        {"name": "bad", "vhost": v, "durable": True, "auto_delete": False,
         "arguments": {"x-max-length": "abc"}}]})
    got = assert_json(r, 400)
    assert got["reason"][:2] == ["amqp_error", "precondition_failed"]


def test_definitions_import_vhost_name_only_resets_description(api, scratch):
    v = uid("v")
    scratch.vhosts.append(v)
    api.put(f"/api/vhosts/{q(v)}", {"description": "keep", "tags": "a"})
    assert api.post("/api/definitions", {"vhosts": [{"name": v}]}).status_code == 204
    got = api.get(f"/api/vhosts/{q(v)}").json()
    assert got["description"] == "" and got["tags"] == []


def test_definitions_import_vhost_metadata_default_queue_type(api, scratch):
    v = uid("v")
    scratch.vhosts.append(v)
    assert api.post("/api/definitions", {"vhosts": [{"name": v, "metadata": {
        "description": "md", "tags": ["mt"], "default_queue_type": "quorum"}}]}).status_code == 204
    got = api.get(f"/api/vhosts/{q(v)}").json()
    assert (got["description"], got["tags"], got["default_queue_type"]) == ("md", ["mt"], "quorum")


def test_definitions_import_into_vhost(api, scratch):
    v = scratch.vhost()
    ignored_user = uid("iu")
    scratch.users.append(ignored_user)
    r = api.post(f"/api/definitions/{q(v)}", {
        "queues": [{"name": "vq", "vhost": "some-other-vhost", "durable": True,
                    "auto_delete": False, "arguments": {}}],
        "exchanges": [{"name": "vx", "type": "fanout", "durable": True, "auto_delete": False,
                       "internal": False, "arguments": {}}],
        "bindings": [{"source": "vx", "destination": "vq", "destination_type": "queue",
                      "routing_key": "", "arguments": {}}],
        "users": [{"name": ignored_user, "password": "x", "tags": ""}]})
    assert_empty(r, 204)
    assert api.get(f"/api/queues/{q(v)}/vq").status_code == 200
    assert api.get(f"/api/exchanges/{q(v)}/vx").status_code == 200
    assert api.get(f"/api/users/{q(ignored_user)}").status_code == 404


def test_definitions_import_into_unknown_vhost_is_404(api):
    assert_error(once(api, "POST", f"/api/definitions/{q(uid())}", {"queues": []}), 404,
                 {"error": "not_found", "reason": "vhost_not_found"})


def test_definitions_import_multipart(api, scratch):
    name = uid("iu")
    scratch.users.append(name)
    body = json.dumps({"users": [{"name": name, "password": "x", "tags": ""}]})
    r = api.s.post(api.url("/api/definitions"), auth=api.auth, timeout=WAIT,
                   files={"file": ("defs.json", body, "application/json")},
                   allow_redirects=False)
    assert r.status_code == 204
    assert api.get(f"/api/users/{q(name)}").status_code == 200


def test_definitions_import_multipart_redirect_is_303(api, scratch):
    name = uid("iu")
    scratch.users.append(name)
    body = json.dumps({"users": [{"name": name, "password": "x", "tags": ""}]})
    r = api.s.post(api.url("/api/definitions"), auth=api.auth, timeout=WAIT,
                   files={"file": ("defs.json", body, "application/json"),
                          "redirect": (None, "../../#/")},
                   allow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "../../#/"


def test_definitions_round_trip_of_one_vhost(api, scratch):
    v, name, conn = _populate(api, scratch)
    conn.close()
    exported = api.get(f"/api/definitions/{q(v)}").json()
    target = scratch.vhost()
    assert api.post(f"/api/definitions/{q(target)}", exported).status_code == 204
    again = api.get(f"/api/definitions/{q(target)}").json()
    for k in ("queues", "exchanges", "bindings"):
        assert again[k] == exported[k], k
    assert [p["name"] for p in again["policies"]] == ["pol"]


# ---------------------------------------------------------------------------------------------
# HTTP details

def test_unknown_path_is_404_json(api):
    assert_error(api.get("/api/no-such-thing"), 404, NOT_FOUND)


def test_unknown_path_without_credentials_is_404_too():
    r = requests.get(f"{MGMT_URL}/api/no-such-thing", timeout=WAIT)
    assert_error(r, 404, NOT_FOUND)


@pytest.mark.parametrize("method,path,allow", [
    ("POST", "/api/overview", "HEAD, GET, OPTIONS"),
    ("DELETE", "/api/users", "HEAD, GET, OPTIONS"),
    ("POST", "/api/vhosts/%2F", "HEAD, GET, PUT, DELETE, OPTIONS"),
    ("PATCH", "/api/users/guest", "HEAD, GET, PUT, DELETE, OPTIONS"),
    ("POST", "/api/auth", "HEAD, GET, OPTIONS"),
    ("POST", "/api/aliveness-test/%2F", "HEAD, GET, OPTIONS"),
])
def test_wrong_method_is_405_with_allow(api, method, path, allow):
    r = api.s.request(method, api.url(path), auth=api.auth, timeout=WAIT)
    assert_empty(r, 405)
    assert r.headers["allow"] == allow


def test_json_responses_have_no_cache(api):
    r = api.get("/api/whoami")
    assert r.headers["content-type"] == "application/json"
    assert r.headers["cache-control"] == "no-cache"


def test_head_returns_headers_only(api):
    r = api.s.head(api.url("/api/whoami"), auth=api.auth, timeout=WAIT)
    assert r.status_code == 200 and r.content == b""
    assert r.headers["content-type"] == "application/json"


def test_accept_html_only_is_406(api):
    r = api.get("/api/whoami", headers={"accept": "text/html"})
    assert_empty(r, 406)


def test_collection_trailing_slash(api):
    assert isinstance(assert_json(api.get("/api/users/"), 200), list)
    assert assert_json(api.get("/api/whoami/"), 200)["name"] == ADMIN[0]


def test_body_over_the_limit_is_400(api, scratch):
    v = uid("v")
    scratch.vhosts.append(v)
    # the broker may close the connection after answering without reading the whole body,
    # so the big request goes on a connection of its own
    r = once(api, "PUT", f"/api/vhosts/{q(v)}", {"description": "x" * 9_000_000})
    assert_error(r, 400, {"error": "bad_request",
                          "reason": "Exceeded HTTP request body size limit"})
    assert api.get(f"/api/vhosts/{q(v)}").status_code == 404


def test_body_of_one_megabyte_is_accepted(api, scratch):
    v = uid("v")
    scratch.vhosts.append(v)
    assert api.put(f"/api/vhosts/{q(v)}", {"description": "x" * 1_000_000}).status_code == 201
    assert len(api.get(f"/api/vhosts/{q(v)}").json()["description"]) == 1_000_000


# ---------------------------------------------------------------------------------------------
# rabbitmqadmin

def test_rabbitmqadmin_list_users(scratch):
    name, _ = scratch.user("monitoring")
    out = rabbitmqadmin("-f", "raw_json", "list", "users", "name", "tags").stdout
    assert {"name": name, "tags": ["monitoring"]} in json.loads(out)


def test_rabbitmqadmin_list_vhosts(scratch):
    v = scratch.vhost()
    out = rabbitmqadmin("-f", "tsv", "-q", "list", "vhosts", "name").stdout
    assert v in out.split("\n") and "/" in out.split("\n")


def test_rabbitmqadmin_declare_user_and_permission(api, scratch):
    v = scratch.vhost()
    name = uid("ra")
    scratch.users.append(name)
    r = rabbitmqadmin("declare", "user", f"name={name}", "password=secret", "tags=management")
    assert r.stdout.strip() == "user declared"
    r = rabbitmqadmin("declare", "permission", f"vhost={v}", f"user={name}", "configure=.*",
                      "write=.*", "read=")
    assert r.stdout.strip() == "permission declared"
    assert api.get(f"/api/permissions/{q(v)}/{q(name)}").json() == {
        "user": name, "vhost": v, "configure": ".*", "write": ".*", "read": ""}
    assert as_user(name, "secret").get("/api/whoami").json() == {"name": name,
                                                                 "tags": ["management"]}
    amqp(name, "secret", v).close()


def test_rabbitmqadmin_declare_and_delete_vhost(api):
    v = uid("rv")
    try:
        assert rabbitmqadmin("declare", "vhost", f"name={v}").stdout.strip() == "vhost declared"
        assert api.get(f"/api/vhosts/{q(v)}").status_code == 200
        assert rabbitmqadmin("delete", "vhost", f"name={v}").stdout.strip() == "vhost deleted"
        assert api.get(f"/api/vhosts/{q(v)}").status_code == 404
    finally:
        api.delete(f"/api/vhosts/{q(v)}")


def test_rabbitmqadmin_delete_unknown_user_fails(api):
    r = rabbitmqadmin("delete", "user", f"name={uid()}", check=False)
    assert r.returncode != 0 and "Not found" in r.stdout + r.stderr


def test_rabbitmqadmin_non_admin_is_refused(scratch):
    name, pw = scratch.user("management")
    r = rabbitmqadmin("list", "users", user=name, password=pw, check=False)
    assert r.returncode != 0 and "Access refused" in r.stdout + r.stderr


def test_rabbitmqadmin_export(tmp_path, scratch):
    v = scratch.vhost()
    f = tmp_path / "defs.json"
    r = rabbitmqadmin("export", str(f))
    assert "Exported definitions" in r.stdout
    d = json.loads(f.read_text())
    assert list(d) == DEF_TOP and {"name": v} in d["vhosts"]


def test_rabbitmqadmin_import(api, tmp_path, scratch):
    v, name = uid("rv"), uid("ru")
    scratch.vhosts.append(v)
    scratch.users.append(name)
    f = tmp_path / "defs.json"
    f.write_text(json.dumps({
        "vhosts": [{"name": v}],
        "users": [{"name": name, "password_hash": rabbit_hash("pw"), "tags": ""}],
        "permissions": [{"user": name, "vhost": v, "configure": ".*", "write": ".*",
                         "read": ".*"}]}))
    r = rabbitmqadmin("import", str(f))
    assert "Uploaded definitions" in r.stdout
    assert api.get(f"/api/permissions/{q(v)}/{q(name)}").status_code == 200
    amqp(name, "pw", v).close()


def test_rabbitmqadmin_vhost_export_import(api, tmp_path, scratch):
    v, name, conn = _populate(api, scratch)
    conn.close()
    target = scratch.vhost()
    f = tmp_path / "v.json"
    rabbitmqadmin("-V", v, "export", str(f))
    rabbitmqadmin("-V", target, "import", str(f))
    assert api.get(f"/api/queues/{q(target)}/dq").status_code == 200
    assert api.get(f"/api/exchanges/{q(target)}/dx").status_code == 200
