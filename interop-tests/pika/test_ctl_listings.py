"""The read side of the rabbitmqctl-compatible CLI (CTL: `rabbitmqctl` or `warren ctl`):
list_queues / list_exchanges / list_bindings / list_connections / list_consumers with their
column arguments and `--formatter json`, purge_queue and delete_queue, seen over AMQP.

Differential: RabbitMQ 3.10.8's column names, values and exit codes. RabbitMQ's queue counters
follow its statistics (refreshed within a second or so here), so counts are polled.
"""

import time

import pika

from conftest import ctl, ctl_json, params, uid

DEADLINE = 15.0


def poll(check, what):
    end = time.monotonic() + DEADLINE
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.1)  # bounded polling: RabbitMQ's listings follow its statistics


def row(rows, **match):
    found = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    return found[0] if len(found) == 1 else None


def test_list_queues_with_columns_purge_and_delete():
    qn = uid("lq")
    conn = pika.BlockingConnection(params())
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare(qn, durable=True)
    try:
        for _ in range(2):
            ch.basic_publish("", qn, b"x")
        r = poll(lambda: row(ctl_json("list_queues", "name", "messages", "consumers", "durable"),
                             name=qn, messages=2), "list_queues to show 2 messages")
        assert list(r) == ["name", "messages", "consumers", "durable"]
        assert (r["consumers"], r["durable"]) == (0, True)
        out = ctl("list_queues").stdout
        assert "name\tmessages" in out
        ctl("purge_queue", qn)
        assert ch.queue_declare(qn, passive=True).method.message_count == 0
        ctl("delete_queue", qn)
        ch2 = conn.channel()
        try:
            ch2.queue_declare(qn, passive=True)
            raise AssertionError("the queue is still there")
        except pika.exceptions.ChannelClosedByBroker as e:
            assert e.reply_code == 404
    finally:
        if conn.is_open:
            conn.close()


def test_list_exchanges_and_bindings():
    x, qn = uid("lx"), uid("lbq")
    conn = pika.BlockingConnection(params())
    ch = conn.channel()
    ch.exchange_declare(x, "topic")
    ch.queue_declare(qn, exclusive=True)
    ch.queue_bind(qn, x, "a.#")
    try:
        xs = ctl_json("list_exchanges", "name", "type", "durable")
        assert row(xs, name=x) == {"name": x, "type": "topic", "durable": False}
        assert row(xs, name="amq.fanout")["type"] == "fanout"
        bs = ctl_json("list_bindings", "source_name", "destination_name", "destination_kind",
                      "routing_key")
        assert row(bs, source_name=x, destination_name=qn) == {
            "source_name": x, "destination_name": qn, "destination_kind": "queue",
            "routing_key": "a.#"}
        # the default exchange's implicit binding is listed too
        assert row(bs, source_name="", destination_name=qn)["routing_key"] == qn
    finally:
        ch.exchange_delete(x)
        conn.close()


def test_list_connections_and_consumers():
    qn, tag = uid("lcq"), uid("tag")
    conn = pika.BlockingConnection(params())
    ch = conn.channel()
    ch.queue_declare(qn, exclusive=True)
    ch.basic_qos(prefetch_count=5)
    ch.basic_consume(qn, lambda *a: None, consumer_tag=tag)
    try:
        conns = ctl_json("list_connections", "user", "vhost", "state")
        assert {"user": "guest", "vhost": "/", "state": "running"} in conns
        cs = poll(lambda: row(ctl_json("list_consumers", "queue_name", "consumer_tag",
                                       "ack_required", "prefetch_count"), consumer_tag=tag),
                  "the consumer listed")
        assert cs == {"queue_name": qn, "consumer_tag": tag, "ack_required": True,
                      "prefetch_count": 5}
    finally:
        conn.close()


def test_unknown_queue_and_vhost():
    r = ctl("delete_queue", uid("nosuch"), check=False)
    assert r.returncode == 64 and "Queue not found" in r.stderr
    # an unknown vhost lists nothing, successfully
    assert ctl_json("list_queues", "-p", uid("nosuchvhost")) == []
    r = ctl("list_queues", "name", "bogus", check=False)
    assert r.returncode == 64 and "Info key(s) bogus are not supported" in r.stderr


def test_close_connection_by_its_listed_pid():
    """`list_connections pid client_properties`, then `close_connection PID REASON`: the
    client is closed with 320 and the reason. (rabbitmqctl's pid is an Erlang pid; Warren's is
    the connection's name: a script that lists then closes works on both.)"""
    name = uid("ctl-close")
    p = params()
    p.client_properties = {"connection_name": name}
    conn = pika.BlockingConnection(p)
    try:
        def mine():
            rows = ctl_json("list_connections", "pid", "client_properties")
            return [r for r in rows
                    if ["connection_name", "longstr", name] in r["client_properties"]]
        poll(mine, "the connection listed with its typed client properties")
        # The text listing (what a shell script reads) gives the pid first on the line.
        text = ctl("list_connections", "pid", "client_properties", "--no-table-headers").stdout
        (line,) = [ln for ln in text.splitlines() if name in ln]
        pid = line.split("\t")[0]
        out = ctl("close_connection", pid, "maintenance window")
        assert out.stdout.startswith(f"Closing connection {pid}, reason: maintenance window")
        end = time.monotonic() + DEADLINE
        try:
            while time.monotonic() < end:
                conn.process_data_events(time_limit=0.2)
            raise AssertionError("the connection was not closed")
        except pika.exceptions.ConnectionClosedByBroker as e:
            assert (e.reply_code, e.reply_text) == (320, "CONNECTION_FORCED - maintenance window")
    finally:
        if conn.is_open:
            conn.close()


def test_close_connection_of_an_unknown_pid_fails():
    out = ctl("close_connection", "no-such-connection", "x", check=False)
    assert out.returncode == 69


def test_status_ping_and_await_startup():
    status = ctl("status")
    assert status.stdout.startswith("Status of node ")
    assert "Ping succeeded" in ctl("ping").stdout
    assert ctl("await_startup").returncode == 0
