"""Differential tests of the Prometheus endpoint (RabbitMQ's `rabbitmq_prometheus` plugin, port
15692 by default): `/metrics` (aggregated), `/metrics/per-object` and `/metrics/detailed`.

Every expectation here was captured from RabbitMQ 3.10.8 (see
docs/rabbitmq-prometheus-observed.md and docs/samples/prometheus/). The endpoint is taken from
PROM_URL (default http://127.0.0.1:15692); the AMQP side from AMQP_URL (conftest).

Values that move (counters, gauges) are compared as deltas around our own traffic and looked up
by our own queue names, so other traffic on the broker does not matter. RabbitMQ refreshes the
per-queue figures on a statistics interval (5 s by default): where a value has to move, the test
polls with a bounded deadline (POLL seconds) rather than sleeping.
"""

import gzip
import os
import time

import pika
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import ADMIN, WAIT, amqp, uid

PROM_URL = os.environ.get("PROM_URL", "http://127.0.0.1:15692").rstrip("/")
POLL = 30.0
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4"

# Every metric family the official Grafana dashboard "RabbitMQ-Overview" (grafana.com id 10991,
# rabbitmq-server v3.10.8 deps/rabbitmq_prometheus/docker/grafana/dashboards/RabbitMQ-Overview.json)
# queries, as exposition names (counters keep their `_total`).
DASHBOARD_FAMILIES = [
    "rabbitmq_build_info",
    "rabbitmq_channel_consumers",
    "rabbitmq_channels",
    "rabbitmq_channels_closed_total",
    "rabbitmq_channels_opened_total",
    "rabbitmq_connections",
    "rabbitmq_connections_closed_total",
    "rabbitmq_connections_opened_total",
    "rabbitmq_consumers",
    "rabbitmq_disk_space_available_bytes",
    "rabbitmq_global_messages_acknowledged_total",
    "rabbitmq_global_messages_confirmed_total",
    "rabbitmq_global_messages_delivered_consume_auto_ack_total",
    "rabbitmq_global_messages_delivered_consume_manual_ack_total",
    "rabbitmq_global_messages_delivered_get_auto_ack_total",
    "rabbitmq_global_messages_delivered_get_manual_ack_total",
    "rabbitmq_global_messages_get_empty_total",
    "rabbitmq_global_messages_received_confirm_total",
    "rabbitmq_global_messages_received_total",
    "rabbitmq_global_messages_redelivered_total",
    "rabbitmq_global_messages_routed_total",
    "rabbitmq_global_messages_unroutable_dropped_total",
    "rabbitmq_global_messages_unroutable_returned_total",
    "rabbitmq_identity_info",
    "rabbitmq_process_max_fds",
    "rabbitmq_process_max_tcp_sockets",
    "rabbitmq_process_open_fds",
    "rabbitmq_process_open_tcp_sockets",
    "rabbitmq_process_resident_memory_bytes",
    "rabbitmq_queue_messages_ready",
    "rabbitmq_queue_messages_unacked",
    "rabbitmq_queues",
    "rabbitmq_queues_created_total",
    "rabbitmq_queues_declared_total",
    "rabbitmq_queues_deleted_total",
    "rabbitmq_resident_memory_limit_bytes",
]

# TYPE and HELP of the key families on /metrics, exactly as RabbitMQ 3.10.8 prints them.
KEY_FAMILIES = {
    "rabbitmq_build_info": ("untyped", "RabbitMQ & Erlang/OTP version info"),
    "rabbitmq_identity_info": ("untyped", "RabbitMQ node & cluster identity info"),
    "rabbitmq_connections": ("gauge", "Connections currently open"),
    "rabbitmq_channels": ("gauge", "Channels currently open"),
    "rabbitmq_consumers": ("gauge", "Consumers currently connected"),
    "rabbitmq_queues": ("gauge", "Queues available"),
    "rabbitmq_connections_opened_total": ("counter", "Total number of connections opened"),
    "rabbitmq_connections_closed_total":
        ("counter", "Total number of connections closed or terminated"),
    "rabbitmq_channels_opened_total": ("counter", "Total number of channels opened"),
    "rabbitmq_channels_closed_total": ("counter", "Total number of channels closed"),
    "rabbitmq_queues_declared_total": ("counter", "Total number of queues declared"),
    "rabbitmq_queues_created_total": ("counter", "Total number of queues created"),
    "rabbitmq_queues_deleted_total": ("counter", "Total number of queues deleted"),
    "rabbitmq_process_open_fds": ("gauge", "Open file descriptors"),
    "rabbitmq_process_open_tcp_sockets": ("gauge", "Open TCP sockets"),
    "rabbitmq_process_resident_memory_bytes": ("gauge", "Memory used in bytes"),
    "rabbitmq_process_max_fds": ("gauge", "Open file descriptors limit"),
    "rabbitmq_process_max_tcp_sockets": ("gauge", "Open TCP sockets limit"),
    "rabbitmq_resident_memory_limit_bytes": ("gauge", "Memory high watermark in bytes"),
    "rabbitmq_disk_space_available_bytes": ("gauge", "Disk space available in bytes"),
    "rabbitmq_disk_space_available_limit_bytes":
        ("gauge", "Free disk space low watermark in bytes"),
    "rabbitmq_alarms_memory_used_watermark":
        ("untyped", "is 1 if VM memory watermark alarm is in effect"),
    "rabbitmq_alarms_free_disk_space_watermark":
        ("untyped", "is 1 if free disk space watermark alarm is in effect"),
    "rabbitmq_alarms_file_descriptor_limit":
        ("untyped", "is 1 if file descriptor limit alarm is in effect"),
    "rabbitmq_queue_messages_ready": ("gauge", "Messages ready to be delivered to consumers"),
    "rabbitmq_queue_messages_unacked":
        ("gauge", "Messages delivered to consumers but not yet acknowledged"),
    "rabbitmq_queue_messages":
        ("gauge", "Sum of ready and unacknowledged messages - total queue depth"),
    "rabbitmq_queue_consumers": ("gauge", "Consumers on a queue"),
    "rabbitmq_queue_messages_published_total":
        ("counter", "Total number of messages published to queues"),
    "rabbitmq_channel_consumers": ("gauge", "Consumers on a channel"),
    "rabbitmq_channel_messages_unacked": ("gauge", "Delivered but not yet acknowledged messages"),
    "rabbitmq_channel_messages_published_total":
        ("counter", "Total number of messages published into an exchange on a channel"),
    "rabbitmq_global_consumers": ("gauge", "Current number of consumers"),
    "rabbitmq_global_publishers": ("gauge", "Current number of publishers"),
    "rabbitmq_global_messages_received_total":
        ("counter", "Total number of messages received from publishers"),
    "rabbitmq_global_messages_received_confirm_total":
        ("counter", "Total number of messages received from publishers expecting confirmations"),
    "rabbitmq_global_messages_routed_total":
        ("counter", "Total number of messages routed to queues or streams"),
    "rabbitmq_global_messages_confirmed_total":
        ("counter", "Total number of messages confirmed to publishers"),
    "rabbitmq_global_messages_unroutable_dropped_total":
        ("counter", "Total number of messages published as non-mandatory into an exchange and "
                    "dropped as unroutable"),
    "rabbitmq_global_messages_unroutable_returned_total":
        ("counter", "Total number of messages published as mandatory into an exchange and "
                    "returned to the publisher as unroutable"),
    "rabbitmq_global_messages_delivered_total":
        ("counter", "Total number of messages delivered to consumers"),
    "rabbitmq_global_messages_delivered_consume_auto_ack_total":
        ("counter", "Total number of messages delivered to consumers using basic.consume with "
                    "automatic acknowledgment"),
    "rabbitmq_global_messages_delivered_consume_manual_ack_total":
        ("counter", "Total number of messages delivered to consumers using basic.consume with "
                    "manual acknowledgment"),
    "rabbitmq_global_messages_delivered_get_auto_ack_total":
        ("counter", "Total number of messages delivered to consumers using basic.get with "
                    "automatic acknowledgment"),
    "rabbitmq_global_messages_delivered_get_manual_ack_total":
        ("counter", "Total number of messages delivered to consumers using basic.get with manual "
                    "acknowledgment"),
    "rabbitmq_global_messages_get_empty_total":
        ("counter", "Total number of times basic.get operations fetched no message"),
    "rabbitmq_global_messages_redelivered_total":
        ("counter", "Total number of messages redelivered to consumers"),
    "rabbitmq_global_messages_acknowledged_total":
        ("counter", "Total number of messages acknowledged by consumers"),
}

# Label names of the families whose series carry labels on /metrics (aggregated).
GLOBAL_LABELS = {
    "rabbitmq_global_consumers": {"protocol"},
    "rabbitmq_global_publishers": {"protocol"},
    "rabbitmq_global_messages_received_total": {"protocol"},
    "rabbitmq_global_messages_received_confirm_total": {"protocol"},
    "rabbitmq_global_messages_routed_total": {"protocol"},
    "rabbitmq_global_messages_confirmed_total": {"protocol"},
    "rabbitmq_global_messages_unroutable_dropped_total": {"protocol"},
    "rabbitmq_global_messages_unroutable_returned_total": {"protocol"},
    "rabbitmq_global_messages_acknowledged_total": {"protocol", "queue_type"},
    "rabbitmq_global_messages_delivered_total": {"protocol", "queue_type"},
    "rabbitmq_global_messages_delivered_consume_auto_ack_total": {"protocol", "queue_type"},
    "rabbitmq_global_messages_delivered_consume_manual_ack_total": {"protocol", "queue_type"},
    "rabbitmq_global_messages_delivered_get_auto_ack_total": {"protocol", "queue_type"},
    "rabbitmq_global_messages_delivered_get_manual_ack_total": {"protocol", "queue_type"},
    "rabbitmq_global_messages_get_empty_total": {"protocol", "queue_type"},
    "rabbitmq_global_messages_redelivered_total": {"protocol", "queue_type"},
}

# Families that are per queue on /metrics/per-object (labels vhost, queue) and one unlabelled
# series (the sum over all queues) on /metrics.
QUEUE_FAMILIES = ["rabbitmq_queue_messages_ready", "rabbitmq_queue_messages_unacked",
                  "rabbitmq_queue_messages", "rabbitmq_queue_consumers"]

DETAILED_QUEUE_COARSE = {
    "rabbitmq_detailed_queue_messages_ready": "gauge",
    "rabbitmq_detailed_queue_messages_unacked": "gauge",
    "rabbitmq_detailed_queue_messages": "gauge",
    "rabbitmq_detailed_queue_process_reductions_total": "counter",
}


# ---------------------------------------------------------------------------------------------
# helpers

def scrape(path="/metrics", **kw):
    r = requests.get(f"{PROM_URL}{path}", timeout=WAIT, **kw)
    assert r.status_code == 200, (path, r.status_code, r.text[:300])
    return r.text


class Exposition:
    """One scrape: the `# TYPE` / `# HELP` lines by exposition name, and the samples."""

    def __init__(self, text):
        self.text = text
        self.types, self.helps, self.samples = {}, {}, []
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, typ = line.split(" ", 3)
                self.types[name] = typ
            elif line.startswith("# HELP "):
                parts = line.split(" ", 3)
                self.helps[parts[2]] = parts[3] if len(parts) > 3 else ""
        # the official parser must accept the whole text; its samples keep exposition names
        for fam in text_string_to_metric_families(text):
            self.samples.extend(fam.samples)

    def series(self, name, **labels):
        return [s for s in self.samples
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]

    def total(self, name, **labels):
        """Sum of the matching series, or None when there is none."""
        found = self.series(name, **labels)
        return sum(s.value for s in found) if found else None


def expo(path="/metrics"):
    return Exposition(scrape(path))


def value(name, path="/metrics", **labels):
    return expo(path).total(name, **labels)


def poll(fetch, cond, what):
    """Calls fetch() until cond(result) holds or POLL seconds pass; returns the result."""
    deadline = time.monotonic() + POLL
    while True:
        got = fetch()
        if cond(got):
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still {got!r} after {POLL} s")
        time.sleep(0.25)


def queue_value(name, queue, path="/metrics/per-object", vhost="/"):
    return value(name, path, queue=queue, vhost=vhost)


@pytest.fixture
def conn():
    c = amqp()
    yield c
    if c.is_open:
        c.close()


def fresh_queue(ch, prefix="prom"):
    name = uid(prefix)
    ch.queue_declare(name, arguments={"x-expires": 120000})
    return name


# ---------------------------------------------------------------------------------------------
# the endpoints

def test_metrics_is_text_exposition_without_auth():
    r = requests.get(f"{PROM_URL}/metrics", timeout=WAIT, headers={"Accept-Encoding": "identity"})
    assert r.status_code == 200
    assert r.headers["Content-Type"] == TEXT_CONTENT_TYPE
    assert r.headers.get("Content-Encoding", "identity") == "identity"
    e = Exposition(r.text)
    assert "rabbitmq_identity_info" in e.types
    # TYPE comes before HELP for each family, as in RabbitMQ's output
    assert r.text.index("# TYPE rabbitmq_connections gauge") < \
        r.text.index("# HELP rabbitmq_connections ")


@pytest.mark.parametrize("path", ["/metrics", "/metrics/per-object"])
def test_gzip_is_offered(path):
    r = requests.get(f"{PROM_URL}{path}", timeout=WAIT, stream=True,
                     headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["Content-Type"] == TEXT_CONTENT_TYPE
    assert r.headers["Content-Encoding"] == "gzip"
    body = gzip.decompress(r.raw.read(decode_content=False)).decode()
    assert "# TYPE rabbitmq_identity_info untyped" in body


def test_prometheus_scrape_accept_header_gets_text():
    # what Prometheus 2.x sends; RabbitMQ 3.10 answers with the text format
    accept = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
              "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
    r = requests.get(f"{PROM_URL}/metrics", timeout=WAIT, headers={"Accept": accept})
    assert r.status_code == 200
    assert r.headers["Content-Type"] == TEXT_CONTENT_TYPE
    Exposition(r.text)


def test_unacceptable_type_is_406():
    r = requests.get(f"{PROM_URL}/metrics", timeout=WAIT, headers={"Accept": "text/html"})
    assert r.status_code == 406


@pytest.mark.parametrize("path", ["/metrics", "/metrics/per-object", "/metrics/detailed",
                                  "/metrics/detailed?family=queue_coarse_metrics&vhost=%2F"])
def test_all_endpoints_parse(path):
    r = requests.get(f"{PROM_URL}{path}", timeout=WAIT)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == TEXT_CONTENT_TYPE
    e = Exposition(r.text)
    assert e.total("rabbitmq_identity_info") == 1


@pytest.mark.parametrize("path", ["/metrics/foo", "/metrics/Detailed", "/metrics/per_object"])
def test_unknown_registry_is_404(path):
    r = requests.get(f"{PROM_URL}{path}", timeout=WAIT)
    assert r.status_code == 404


def test_post_is_405():
    r = requests.post(f"{PROM_URL}/metrics", timeout=WAIT)
    assert r.status_code == 405
    assert {m.strip() for m in r.headers["Allow"].split(",")} == {"HEAD", "GET", "OPTIONS"}


# ---------------------------------------------------------------------------------------------
# families on /metrics

def test_dashboard_families_present():
    e = expo()
    missing = [f for f in DASHBOARD_FAMILIES if f not in e.types]
    assert not missing, missing
    # each of them has at least one series (the dashboard multiplies them by identity_info)
    empty = [f for f in DASHBOARD_FAMILIES if not e.series(f)]
    assert not empty, empty


def test_key_family_types_and_help():
    e = expo()
    wrong = {f: (e.types.get(f), e.helps.get(f)) for f, th in KEY_FAMILIES.items()
             if (e.types.get(f), e.helps.get(f)) != th}
    assert not wrong, wrong


def test_identity_and_build_info():
    e = expo()
    [ident] = e.series("rabbitmq_identity_info")
    assert ident.value == 1
    assert set(ident.labels) == {"rabbitmq_node", "rabbitmq_cluster",
                                 "rabbitmq_cluster_permanent_id"}
    assert ident.labels["rabbitmq_node"] and ident.labels["rabbitmq_cluster"]
    [build] = e.series("rabbitmq_build_info")
    assert build.value == 1
    assert set(build.labels) == {"rabbitmq_version", "prometheus_plugin_version",
                                 "prometheus_client_version", "erlang_version"}


def test_aggregated_families_have_no_object_labels():
    e = expo()
    for fam in QUEUE_FAMILIES + ["rabbitmq_connections", "rabbitmq_channels", "rabbitmq_consumers",
                                 "rabbitmq_queues", "rabbitmq_channel_consumers",
                                 "rabbitmq_process_open_fds",
                                 "rabbitmq_disk_space_available_bytes",
                                 "rabbitmq_resident_memory_limit_bytes"]:
        s = e.series(fam)
        assert len(s) == 1 and s[0].labels == {}, (fam, s)


def test_global_families_labels():
    e = expo()
    for fam, labels in GLOBAL_LABELS.items():
        s = e.series(fam)
        assert s, fam
        assert all(set(x.labels) == labels for x in s), (fam, s)
        assert any(x.labels["protocol"] == "amqp091" for x in s), (fam, s)
        if "queue_type" in labels:
            assert any(x.labels["queue_type"] == "rabbit_classic_queue" for x in s), (fam, s)


def test_alarms_are_zero_when_no_alarm():
    e = expo()
    for fam in ["rabbitmq_alarms_memory_used_watermark",
                "rabbitmq_alarms_free_disk_space_watermark",
                "rabbitmq_alarms_file_descriptor_limit"]:
        [s] = e.series(fam)
        assert s.labels == {} and s.value == 0, (fam, s)


def test_limits_are_positive():
    e = expo()
    for fam in ["rabbitmq_process_max_fds", "rabbitmq_resident_memory_limit_bytes",
                "rabbitmq_disk_space_available_bytes", "rabbitmq_process_resident_memory_bytes",
                "rabbitmq_process_open_fds"]:
        assert e.total(fam) > 0, fam


def test_per_object_has_the_queue_channel_connection_families():
    agg, per = expo("/metrics"), expo("/metrics/per-object")
    for fam, typ in agg.types.items():
        if fam.startswith(("rabbitmq_queue_", "rabbitmq_channel", "rabbitmq_connection",
                           "rabbitmq_global_", "rabbitmq_consumer")):
            assert per.types.get(fam) == typ, fam
            assert per.helps.get(fam) == agg.helps[fam], fam


# ---------------------------------------------------------------------------------------------
# values move with traffic

def test_publish_grows_received_routed_and_confirmed(conn):
    n = 7
    ch = conn.channel()
    qn = fresh_queue(ch)
    ch.confirm_delivery()
    names = ["rabbitmq_global_messages_received_total",
             "rabbitmq_global_messages_received_confirm_total",
             "rabbitmq_global_messages_routed_total",
             "rabbitmq_global_messages_confirmed_total"]
    e0 = expo()
    before = {f: e0.total(f, protocol="amqp091") for f in names}
    for i in range(n):
        ch.basic_publish("", qn, f"m{i}".encode())

    def deltas():
        e = expo()
        return {f: e.total(f, protocol="amqp091") - before[f] for f in names}
    poll(deltas, lambda d: all(v >= n for v in d.values()), "global publish counters")
    ch.queue_delete(qn)


def test_queue_ready_unacked_and_acknowledged(conn):
    n, m = 5, 2
    ch = conn.channel()
    qn = fresh_queue(ch)
    ack0 = value("rabbitmq_global_messages_acknowledged_total", protocol="amqp091",
                 queue_type="rabbit_classic_queue")
    get0 = value("rabbitmq_global_messages_delivered_get_manual_ack_total", protocol="amqp091",
                 queue_type="rabbit_classic_queue")
    for i in range(n):
        ch.basic_publish("", qn, f"m{i}".encode())

    def depth(path="/metrics/per-object", prefix="rabbitmq_"):
        e = expo(path)
        return tuple(e.total(f"{prefix}queue_messages{s}", queue=qn, vhost="/")
                     for s in ("_ready", "_unacked", ""))
    poll(depth, lambda d: d == (n, 0, n), "per-object ready/unacked/messages")
    # the aggregated /metrics sums every queue, ours included
    poll(lambda: value("rabbitmq_queue_messages_ready"), lambda v: v >= n,
         "aggregated rabbitmq_queue_messages_ready")

    tags = []
    for _ in range(m):
        method, _, _ = ch.basic_get(qn, auto_ack=False)
        tags.append(method.delivery_tag)
    poll(depth, lambda d: d == (n - m, m, n), "per-object after basic.get")
    poll(lambda: value("rabbitmq_global_messages_delivered_get_manual_ack_total",
                       protocol="amqp091", queue_type="rabbit_classic_queue") - get0,
         lambda d: d >= m, "delivered_get_manual_ack delta")
    for t in tags:
        ch.basic_ack(t)
    poll(depth, lambda d: d == (n - m, 0, n - m), "per-object after ack")
    poll(lambda: value("rabbitmq_global_messages_acknowledged_total", protocol="amqp091",
                       queue_type="rabbit_classic_queue") - ack0,
         lambda d: d >= m, "acknowledged delta")
    ch.queue_delete(qn)


def test_consume_manual_ack_counters_and_consumer_gauges(conn):
    n = 4
    ch = conn.channel()
    qn = fresh_queue(ch)
    for i in range(n):
        ch.basic_publish("", qn, f"m{i}".encode())
    labels = {"protocol": "amqp091", "queue_type": "rabbit_classic_queue"}
    e0 = expo()
    deliv0 = e0.total("rabbitmq_global_messages_delivered_consume_manual_ack_total", **labels)
    ack0 = e0.total("rabbitmq_global_messages_acknowledged_total", **labels)

    got = []
    ch.basic_qos(prefetch_count=n)
    ch.basic_consume(qn, lambda c, meth, p, b: got.append(meth.delivery_tag), auto_ack=False)
    deadline = time.monotonic() + WAIT
    while len(got) < n and time.monotonic() < deadline:
        conn.process_data_events(0.1)
    assert len(got) == n
    poll(lambda: queue_value("rabbitmq_queue_consumers", qn), lambda v: v == 1,
         "per-object rabbitmq_queue_consumers")
    poll(lambda: value("rabbitmq_consumers"), lambda v: v >= 1, "rabbitmq_consumers")
    poll(lambda: queue_value("rabbitmq_queue_messages_unacked", qn), lambda v: v == n,
         "per-object unacked while consuming")
    for t in got:
        ch.basic_ack(t)

    def deltas():
        e = expo()
        return (e.total("rabbitmq_global_messages_delivered_consume_manual_ack_total", **labels)
                - deliv0,
                e.total("rabbitmq_global_messages_acknowledged_total", **labels) - ack0)
    poll(deltas, lambda d: d[0] >= n and d[1] >= n, "consume_manual_ack / acknowledged deltas")
    poll(lambda: queue_value("rabbitmq_queue_messages", qn), lambda v: v == 0,
         "per-object depth after acks")
    ch.queue_delete(qn)


def test_unroutable_dropped_and_returned(conn):
    ch = conn.channel()
    ch.confirm_delivery()
    nowhere = uid("nowhere")
    e0 = expo()
    dropped0 = e0.total("rabbitmq_global_messages_unroutable_dropped_total", protocol="amqp091")
    returned0 = e0.total("rabbitmq_global_messages_unroutable_returned_total", protocol="amqp091")
    ch.basic_publish("", nowhere, b"dropped")
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish("", nowhere, b"returned", mandatory=True)

    def deltas():
        e = expo()
        return (e.total("rabbitmq_global_messages_unroutable_dropped_total",
                        protocol="amqp091") - dropped0,
                e.total("rabbitmq_global_messages_unroutable_returned_total",
                        protocol="amqp091") - returned0)
    poll(deltas, lambda d: d[0] >= 1 and d[1] >= 1, "unroutable dropped / returned deltas")


def test_get_empty_counter(conn):
    ch = conn.channel()
    qn = fresh_queue(ch)
    before = value("rabbitmq_global_messages_get_empty_total", protocol="amqp091",
                   queue_type="rabbit_classic_queue")
    assert ch.basic_get(qn, auto_ack=True) == (None, None, None)
    poll(lambda: value("rabbitmq_global_messages_get_empty_total", protocol="amqp091",
                       queue_type="rabbit_classic_queue") - before,
         lambda d: d >= 1, "get_empty delta")
    ch.queue_delete(qn)


def test_connections_gauge_counts_open_connection():
    e0 = expo()
    opened0 = e0.total("rabbitmq_connections_opened_total")
    closed0 = e0.total("rabbitmq_connections_closed_total")
    chopened0 = e0.total("rabbitmq_channels_opened_total")
    gauge0 = e0.total("rabbitmq_connections")
    c = amqp()
    try:
        c.channel()
        poll(lambda: value("rabbitmq_connections"), lambda v: v >= gauge0 + 1,
             "rabbitmq_connections with one more connection")
        poll(lambda: value("rabbitmq_channels"), lambda v: v >= 1, "rabbitmq_channels")
        e = expo()
        assert e.total("rabbitmq_connections_opened_total") >= opened0 + 1
        assert e.total("rabbitmq_channels_opened_total") >= chopened0 + 1
    finally:
        c.close()
    poll(lambda: value("rabbitmq_connections_closed_total") - closed0, lambda d: d >= 1,
         "rabbitmq_connections_closed_total delta")


def test_queue_churn_counters(conn):
    ch = conn.channel()
    e0 = expo()
    declared0 = e0.total("rabbitmq_queues_declared_total")
    created0 = e0.total("rabbitmq_queues_created_total")
    deleted0 = e0.total("rabbitmq_queues_deleted_total")
    qn = fresh_queue(ch)
    ch.queue_declare(qn, arguments={"x-expires": 120000})  # a redeclare: declared, not created
    poll(lambda: value("rabbitmq_queues"), lambda v: v >= 1, "rabbitmq_queues")
    e = expo()
    assert e.total("rabbitmq_queues_declared_total") - declared0 >= 2
    assert e.total("rabbitmq_queues_created_total") - created0 >= 1
    ch.queue_delete(qn)
    poll(lambda: value("rabbitmq_queues_deleted_total") - deleted0, lambda d: d >= 1,
         "rabbitmq_queues_deleted_total delta")
    poll(lambda: queue_value("rabbitmq_queue_messages", qn), lambda v: v is None,
         "deleted queue gone from per-object")


def test_per_object_queue_series_labels(conn):
    ch = conn.channel()
    qn = fresh_queue(ch)
    ch.basic_publish("", qn, b"x")
    poll(lambda: queue_value("rabbitmq_queue_messages_ready", qn), lambda v: v == 1,
         "per-object ready")
    e = expo("/metrics/per-object")
    for fam in QUEUE_FAMILIES:
        [s] = e.series(fam, queue=qn)
        assert s.labels == {"vhost": "/", "queue": qn}, (fam, s)
    ch.queue_delete(qn)


# ---------------------------------------------------------------------------------------------
# /metrics/detailed

def detailed_families(e):
    return {f: t for f, t in e.types.items() if f.startswith("rabbitmq_detailed_")}


def test_detailed_without_family_has_no_object_metrics():
    e = expo("/metrics/detailed")
    assert detailed_families(e) == {}
    assert not [f for f in e.types if f.startswith("rabbitmq_cluster_")]
    assert "rabbitmq_queue_messages_ready" not in e.types
    assert e.total("rabbitmq_identity_info") == 1
    assert e.total("rabbitmq_build_info") == 1


@pytest.mark.parametrize("family", ["no_such_family", "QUEUE_COARSE_METRICS",
                                    "queue_coarse_metrics,queue_metrics"])
def test_detailed_unknown_family_is_ignored(family):
    r = requests.get(f"{PROM_URL}/metrics/detailed", params={"family": family}, timeout=WAIT)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == TEXT_CONTENT_TYPE
    e = Exposition(r.text)
    assert detailed_families(e) == {}
    assert e.total("rabbitmq_identity_info") == 1


def test_detailed_queue_coarse_metrics_vhost_filter(conn, scratch):
    ch = conn.channel()
    qn = fresh_queue(ch)
    for _ in range(3):
        ch.basic_publish("", qn, b"x")
    # a queue in another vhost, to be filtered out
    vh = scratch.vhost()
    scratch.grant(ADMIN[0], vh)
    other = amqp(vhost=vh)
    try:
        och = other.channel()
        oq = uid("prom-other")
        och.queue_declare(oq)
        och.basic_publish("", oq, b"y")

        url = "/metrics/detailed?family=queue_coarse_metrics&vhost=%2F"
        poll(lambda: expo(url).total("rabbitmq_detailed_queue_messages_ready", queue=qn),
             lambda v: v == 3, "detailed ready for our queue")
        e = expo(url)
        assert detailed_families(e) == DETAILED_QUEUE_COARSE
        assert not [f for f in e.types if f.startswith("rabbitmq_queue_")]
        for fam in DETAILED_QUEUE_COARSE:
            s = e.series(fam)
            assert s, fam
            assert all(set(x.labels) == {"vhost", "queue"} and x.labels["vhost"] == "/"
                       for x in s), (fam, s)
        assert e.total("rabbitmq_detailed_queue_messages", queue=qn) == 3
        assert e.total("rabbitmq_detailed_queue_messages_unacked", queue=qn) == 0
        assert not e.series("rabbitmq_detailed_queue_messages_ready", queue=oq)
        assert e.total("rabbitmq_identity_info") == 1

        # the other vhost alone; then both (vhost repeats)
        e = poll(lambda: Exposition(scrape("/metrics/detailed", params=[
                     ("family", "queue_coarse_metrics"), ("vhost", vh)])),
                 lambda x: x.total("rabbitmq_detailed_queue_messages_ready", queue=oq) == 1,
                 "detailed ready in the other vhost")
        assert {x.labels["vhost"] for x in e.series("rabbitmq_detailed_queue_messages")} == {vh}
        e = Exposition(scrape("/metrics/detailed", params=[
            ("family", "queue_coarse_metrics"), ("vhost", "/"), ("vhost", vh)]))
        assert e.total("rabbitmq_detailed_queue_messages_ready", queue=qn, vhost="/") == 3
        assert e.total("rabbitmq_detailed_queue_messages_ready", queue=oq, vhost=vh) == 1
        och.queue_delete(oq)
    finally:
        other.close()
    ch.queue_delete(qn)


def test_detailed_queue_consumer_count(conn):
    ch = conn.channel()
    qn = fresh_queue(ch)
    ch.basic_consume(qn, lambda *a: None, auto_ack=True)
    url = "/metrics/detailed?family=queue_consumer_count"
    poll(lambda: expo(url).total("rabbitmq_detailed_queue_consumers", queue=qn, vhost="/"),
         lambda v: v == 1, "detailed consumers")
    assert detailed_families(expo(url)) == {"rabbitmq_detailed_queue_consumers": "gauge"}
    ch.queue_delete(qn)


def test_detailed_two_families():
    e = Exposition(scrape("/metrics/detailed", params=[("family", "queue_coarse_metrics"),
                                                       ("family", "connection_churn_metrics")]))
    assert detailed_families(e) == {
        **DETAILED_QUEUE_COARSE,
        "rabbitmq_detailed_connections_opened_total": "counter",
        "rabbitmq_detailed_connections_closed_total": "counter",
        "rabbitmq_detailed_channels_opened_total": "counter",
        "rabbitmq_detailed_channels_closed_total": "counter",
        "rabbitmq_detailed_queues_declared_total": "counter",
        "rabbitmq_detailed_queues_created_total": "counter",
        "rabbitmq_detailed_queues_deleted_total": "counter",
    }
    assert e.helps["rabbitmq_detailed_queue_messages_ready"] == \
        "Messages ready to be delivered to consumers"
