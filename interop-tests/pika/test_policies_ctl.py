"""Policies through the rabbitmqctl-compatible CLI (CTL: `rabbitmqctl` or `warren ctl`), their
effect seen over AMQP, and their survival across a restart (BROKER_RESTART).

Differential: the outputs and exit codes are RabbitMQ 3.10.8's (docs/rabbitmq-policies-observed.md
section 2). RabbitMQ applies a policy to existing queues within milliseconds, not synchronously,
so effects are polled with a deadline.
"""

import os
import subprocess
import time

import pika

from conftest import ctl, ctl_json, params, uid

DEADLINE = 10.0


def ready(ch, queue):
    return ch.queue_declare(queue, passive=True).method.message_count


def poll(check, what):
    end = time.monotonic() + DEADLINE
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)  # bounded polling: policies apply asynchronously on RabbitMQ


def test_set_policy_trims_an_existing_queue_and_clear_lifts_it():
    name, qn = uid("ctlpol"), uid("ctlq")
    conn = pika.BlockingConnection(params())
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare(qn)
    try:
        for i in range(10):
            ch.basic_publish("", qn, str(i).encode())
        r = ctl("set_policy", "--priority", "1", "--apply-to", "queues", name, f"^{qn}$",
                '{"max-length":3}')
        assert (f'Setting policy "{name}" for pattern "^{qn}$" to "{{"max-length":3}}" '
                'with priority "1" for vhost "/" ...') in r.stdout
        poll(lambda: ready(ch, qn) == 3, "the queue trimmed to 3")
        assert [ch.basic_get(qn, auto_ack=True)[2] for _ in range(3)] == [b"7", b"8", b"9"]
        rows = [p for p in ctl_json("list_policies") if p["name"] == name]
        assert rows == [{"vhost": "/", "name": name, "pattern": f"^{qn}$",
                         "apply-to": "queues", "definition": '{"max-length":3}',
                         "priority": 1}]
        r = ctl("clear_policy", name)
        assert f'Clearing policy "{name}" on vhost "/" ...' in r.stdout
        for i in range(5):
            ch.basic_publish("", qn, b"after")
        poll(lambda: ready(ch, qn) == 5, "the limit lifted")
    finally:
        ctl("clear_policy", name, check=False)
        ch.queue_delete(qn)
        conn.close()


def test_ctl_errors_and_exit_codes():
    name = uid("ctlbad")
    r = ctl("set_policy", name, "^x$", '{"foo":1}', check=False)
    assert r.returncode == 69
    assert '[{<<"foo">>,1}] are not recognised policy settings' in r.stderr
    r = ctl("clear_policy", name, check=False)
    assert r.returncode == 69 and "Parameter does not exist" in r.stderr
    r = ctl("set_policy", "-p", uid("nosuchvhost"), name, "^x$", '{"max-length":1}',
            check=False)
    assert r.returncode == 65 and "does not exist" in r.stderr
    r = ctl("set_policy", "--priority", "x", name, "^x$", '{"max-length":1}', check=False)
    assert r.returncode == 64


def test_operator_policy_caps_a_queue_argument():
    name, qn = uid("ctlop"), uid("ctlopq")
    conn = pika.BlockingConnection(params())
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare(qn, arguments={"x-max-length": 5})
    try:
        r = ctl("set_operator_policy", name, f"^{qn}$", '{"max-length":2}')
        assert f'Setting operator policy override "{name}"' in r.stdout
        for i in range(4):
            ch.basic_publish("", qn, str(i).encode())
        poll(lambda: ready(ch, qn) == 2, "the operator policy's lower limit")
        assert [p["name"] for p in ctl_json("list_operator_policies")].count(name) == 1
    finally:
        ctl("clear_operator_policy", name, check=False)
        ch.queue_delete(qn)
        conn.close()


def test_policy_survives_a_restart():
    restart = os.environ.get("BROKER_RESTART")
    if not restart:
        import pytest
        pytest.skip("needs BROKER_RESTART")
    name, qn = uid("ctlkeep"), uid("ctlkeepq")
    conn = pika.BlockingConnection(params())
    ch = conn.channel()
    ch.queue_declare(qn, durable=True)
    conn.close()
    ctl("set_policy", "--apply-to", "queues", name, f"^{qn}$", '{"max-length":1}')
    try:
        subprocess.run(restart, shell=True, check=True, timeout=180)
        assert [p["name"] for p in ctl_json("list_policies")].count(name) == 1
        conn = pika.BlockingConnection(params())
        ch = conn.channel()
        ch.confirm_delivery()
        for i in range(3):
            ch.basic_publish("", qn, str(i).encode(), pika.BasicProperties(delivery_mode=2))
        poll(lambda: ready(ch, qn) == 1, "the stored policy applied after the restart")
        ch.queue_delete(qn)
        conn.close()
    finally:
        ctl("clear_policy", name, check=False)
