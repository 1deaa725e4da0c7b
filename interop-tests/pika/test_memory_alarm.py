"""Memory alarm: while the broker's memory is above vm_memory_high_watermark, connections that
publish are blocked (connection.blocked "low on memory") and unblocked once it is raised again.

The watermark is changed at run time with ``set_vm_memory_high_watermark`` (rabbitmqctl, or
warren ctl: CTL), to a fraction so small that any broker is above it.
"""

import pika

from conftest import ctl, params, uid, wait_for


def test_publishers_are_blocked_while_memory_is_high():
    conn = pika.BlockingConnection(params())
    events = []
    conn.add_on_connection_blocked_callback(lambda c, m: events.append(("blocked", m.method.reason)))
    conn.add_on_connection_unblocked_callback(lambda c, m: events.append(("unblocked", None)))
    ch = conn.channel()
    q = uid("memalarm")
    ch.queue_declare(q, auto_delete=False)
    ch.basic_publish("", q, b"before")
    try:
        ctl("set_vm_memory_high_watermark", "0.0000001")
        # A publish while the alarm is on: the connection is blocked (not read any more).
        ch.basic_publish("", q, b"during")
        assert wait_for(conn, lambda: ("blocked", "low on memory") in events), events
    finally:
        ctl("set_vm_memory_high_watermark", "0.4")
    assert wait_for(conn, lambda: events[-1:] == [("unblocked", None)]), events
    bodies = []
    while True:
        m, _, body = ch.basic_get(q, auto_ack=True)
        if m is None:
            break
        bodies.append(body)
    assert bodies == [b"before", b"during"], bodies
    ch.queue_delete(q)
    conn.close()
