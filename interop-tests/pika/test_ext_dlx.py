"""Dead-lettering (x-dead-letter-exchange / x-dead-letter-routing-key), as in RabbitMQ 3.10.8.

The x-death header is checked at the wire level (field types and table order) with a raw
client, since pika's decoder loses both.  Observed on RabbitMQ:

* first death: headers gain x-death = array of one table
  [count (l), reason (S), queue (S), time (T), exchange (S), routing-keys (A of S),
  original-expiration (S, only if the message had an expiration)] in that order, plus
  x-first-death-reason/-queue/-exchange (S); the whole headers table is re-sorted by key;
* later deaths: the entry for the same (queue, reason) is moved to the front with count+1
  (its other fields unchanged), or a new entry is prepended; entries written at a later death
  have their keys sorted (count, exchange, original-expiration, queue, reason, routing-keys,
  time); the x-first-death-* headers never change;
* the expiration property is removed; delivery mode, priority and the other properties stay;
* a cycle is dropped unless some death along it is a rejection.
"""

import time

import pika
import pika.exceptions
import pytest

from conftest import drain, get_all
from ext_helpers import count, get_ok_fields, poll_get, raw_get, wait_count


def confirm_channel(conn):
    ch = conn.channel()
    ch.confirm_delivery()
    return ch


def dead_letter_setup(ch, names, xtype="fanout", **queue_args):
    """A DLX of type ``xtype`` with a catch-all queue, and a source queue using it."""
    dlx, dead, src = names.exchange("dlx"), names.queue("dead"), names.queue("src")
    ch.exchange_declare(dlx, xtype)
    ch.queue_declare(dead)
    ch.queue_bind(dead, dlx, "#" if xtype == "topic" else "")
    args = {"x-dead-letter-exchange": dlx}
    args.update(queue_args)
    ch.queue_declare(src, arguments=args)
    return dlx, dead, src


def reject_one(conn, ch, q, how="reject"):
    m, _, _ = poll_get(conn, ch, q, auto_ack=False)
    if how == "reject":
        ch.basic_reject(m.delivery_tag, requeue=False)
    else:
        ch.basic_nack(m.delivery_tag, requeue=False)


def S(s):
    return ("S", s.encode())


def header(hdrs, key):
    (v,) = [v for k, v in hdrs if k == key]
    return v


# ---------------------------------------------------------------------------
# reasons and the x-death structure
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["reject", "nack"])
def test_rejected_message_is_dead_lettered_with_x_death(conn, names, how):
    ch = confirm_channel(conn)
    dlx, dead, src = dead_letter_setup(ch, names, "topic")
    ch.queue_bind(src, "amq.direct", "rk1")
    props = pika.BasicProperties(
        content_type="text/plain", delivery_mode=2, priority=3, correlation_id="cid",
        reply_to="rt", message_id="mid", timestamp=1234, type="ty", app_id="app",
        user_id="guest", headers={"z": 1, "a": "s"})
    before = int(time.time())
    ch.basic_publish("amq.direct", "rk1", b"body", props)
    reject_one(conn, ch, src, how)
    args, p, body = raw_get(dead)
    after = int(time.time())
    assert body == b"body"
    _, redelivered, exchange, rk, _ = get_ok_fields(args)
    # delivered through the DLX with the original routing key, not as a redelivery
    assert (redelivered, exchange, rk) == (False, dlx, "rk1")
    hdrs = p.pop("headers")
    assert p == {"content_type": b"text/plain", "delivery_mode": 2, "priority": 3,
                 "correlation_id": b"cid", "reply_to": b"rt", "message_id": b"mid",
                 "timestamp": 1234, "type": b"ty", "app_id": b"app", "user_id": b"guest"}
    # headers come back sorted by key
    assert [k for k, _ in hdrs] == ["a", "x-death", "x-first-death-exchange",
                                    "x-first-death-queue", "x-first-death-reason", "z"]
    assert header(hdrs, "a") == S("s")
    assert header(hdrs, "z") == ("I", 1)
    kind, deaths = header(hdrs, "x-death")
    assert kind == "A" and len(deaths) == 1
    kind, death = deaths[0]
    assert kind == "F"
    assert [k for k, _ in death] == ["count", "reason", "queue", "time", "exchange", "routing-keys"]
    d = dict(death)
    assert d["count"] == ("l", 1)
    assert d["reason"] == S("rejected")
    assert d["queue"] == S(src)
    assert d["time"][0] == "T" and before <= d["time"][1] <= after
    assert d["exchange"] == S("amq.direct")
    assert d["routing-keys"] == ("A", [S("rk1")])
    assert header(hdrs, "x-first-death-exchange") == S("amq.direct")
    assert header(hdrs, "x-first-death-queue") == S(src)
    assert header(hdrs, "x-first-death-reason") == S("rejected")


def test_pika_view_of_x_death(conn, names):
    """The same header as pika decodes it: count is an int, time a datetime, strings str."""
    ch = confirm_channel(conn)
    dlx, dead, src = dead_letter_setup(ch, names)
    ch.basic_publish("", src, b"x")
    reject_one(conn, ch, src)
    m, p, _ = poll_get(conn, ch, dead)
    (death,) = p.headers["x-death"]
    assert set(death) == {"count", "reason", "queue", "time", "exchange", "routing-keys"}
    assert (death["count"], death["reason"], death["queue"], death["exchange"], death["routing-keys"]) == (
        1, "rejected", src, "", [src])
    assert death["time"].tzinfo is not None
    assert p.headers["x-first-death-reason"] == "rejected"
    assert p.headers["x-first-death-queue"] == src
    assert p.headers["x-first-death-exchange"] == ""
    assert (m.exchange, m.routing_key) == (dlx, src)


def test_multiple_nack_dead_letters_each_message(conn, names):
    ch = confirm_channel(conn)
    dlx, dead, src = dead_letter_setup(ch, names)
    for i in range(3):
        ch.basic_publish("", src, str(i).encode())
    taken = [ch.basic_get(src, auto_ack=False) for _ in range(3)]
    ch.basic_nack(taken[-1][0].delivery_tag, multiple=True, requeue=False)
    assert wait_count(conn, ch, dead, 3)
    assert [b for _, _, b in get_all(ch, dead)] == [b"0", b"1", b"2"]
    assert count(ch, src) == 0


def test_reject_with_requeue_does_not_dead_letter(conn, names):
    ch = confirm_channel(conn)
    dlx, dead, src = dead_letter_setup(ch, names)
    ch.basic_publish("", src, b"x")
    m, _, _ = ch.basic_get(src, auto_ack=False)
    ch.basic_reject(m.delivery_tag, requeue=True)
    m, _, body = poll_get(conn, ch, src)
    assert (body, m.redelivered) == (b"x", True)
    assert count(ch, dead) == 0


def test_purge_and_delete_do_not_dead_letter(conn, names):
    ch = confirm_channel(conn)
    dlx, dead, src = dead_letter_setup(ch, names)
    ch.basic_publish("", src, b"purged")
    assert ch.queue_purge(src).method.message_count == 1
    ch.basic_publish("", src, b"deleted")
    assert ch.queue_delete(src).method.message_count == 1
    drain(conn, 0.2)
    assert count(ch, dead) == 0


def test_dead_letter_routing_key_replaces_the_routing_key(conn, names):
    ch = confirm_channel(conn)
    dlx, dead, src = names.exchange("dlx"), names.queue("dead"), names.queue("src")
    ch.exchange_declare(dlx, "direct")
    ch.queue_declare(dead)
    ch.queue_bind(dead, dlx, "dl-key")
    ch.queue_declare(src, arguments={"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dl-key"})
    ch.basic_publish("", src, b"x")
    reject_one(conn, ch, src)
    m, p, _ = poll_get(conn, ch, dead)
    assert (m.exchange, m.routing_key) == (dlx, "dl-key")
    # x-death still records the original routing key
    assert p.headers["x-death"][0]["routing-keys"] == [src]


def test_default_exchange_as_dlx(conn, names):
    ch = confirm_channel(conn)
    dead, src = names.queue("dead"), names.queue("src")
    ch.queue_declare(dead)
    ch.queue_declare(src, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead})
    ch.basic_publish("", src, b"x")
    reject_one(conn, ch, src)
    m, p, body = poll_get(conn, ch, dead)
    assert (m.exchange, m.routing_key, body) == ("", dead, b"x")
    assert p.headers["x-death"][0]["exchange"] == ""


def test_expired_message_loses_expiration_and_records_original_expiration(conn, names):
    ch = confirm_channel(conn)
    dlx, dead, src = dead_letter_setup(ch, names)
    ch.basic_publish("", src, b"e", pika.BasicProperties(expiration="50", headers={"h": 1}, priority=2))
    assert wait_count(conn, ch, dead, 1)
    args, p, body = raw_get(dead)
    assert body == b"e"
    assert "expiration" not in p
    assert p["priority"] == 2
    hdrs = p["headers"]
    assert [k for k, _ in hdrs] == ["h", "x-death", "x-first-death-exchange",
                                    "x-first-death-queue", "x-first-death-reason"]
    (_, death), = header(hdrs, "x-death")[1]
    assert [k for k, _ in death] == ["count", "reason", "queue", "time", "exchange",
                                     "routing-keys", "original-expiration"]
    d = dict(death)
    assert d["reason"] == S("expired")
    assert d["original-expiration"] == S("50")
    assert header(hdrs, "x-first-death-reason") == S("expired")


def test_queue_ttl_expiry_has_no_original_expiration(conn, names):
    ch = confirm_channel(conn)
    dlx, dead, src = dead_letter_setup(ch, names, **{"x-message-ttl": 30})
    ch.basic_publish("", src, b"q")
    m, p, _ = poll_get(conn, ch, dead)
    (death,) = p.headers["x-death"]
    assert death["reason"] == "expired"
    assert "original-expiration" not in death
    assert p.expiration is None


def test_queue_ttl_expiry_of_a_message_with_expiration_records_it(conn, names):
    ch = confirm_channel(conn)
    dlx, dead, src = dead_letter_setup(ch, names, **{"x-message-ttl": 30})
    ch.basic_publish("", src, b"q", pika.BasicProperties(expiration="600000"))
    m, p, _ = poll_get(conn, ch, dead)
    (death,) = p.headers["x-death"]
    assert (death["reason"], death["original-expiration"]) == ("expired", "600000")
    assert p.expiration is None


def test_rejected_message_with_expiration_records_original_expiration(conn, names):
    ch = confirm_channel(conn)
    dlx, dead, src = dead_letter_setup(ch, names)
    ch.basic_publish("", src, b"r", pika.BasicProperties(expiration="600000"))
    reject_one(conn, ch, src)
    m, p, _ = poll_get(conn, ch, dead)
    (death,) = p.headers["x-death"]
    assert (death["reason"], death["original-expiration"]) == ("rejected", "600000")
    assert p.expiration is None


def test_maxlen_reason(conn, names):
    ch = confirm_channel(conn)
    dlx, dead, src = dead_letter_setup(ch, names, **{"x-max-length": 1})
    ch.basic_publish("", src, b"first")
    ch.basic_publish("", src, b"second")
    m, p, body = poll_get(conn, ch, dead)
    assert body == b"first"
    assert p.headers["x-death"][0]["reason"] == "maxlen"
    assert p.headers["x-first-death-reason"] == "maxlen"


# ---------------------------------------------------------------------------
# several deaths
# ---------------------------------------------------------------------------


def test_second_death_in_another_queue_prepends_a_sorted_entry(conn, names):
    ch = confirm_channel(conn)
    dead, mid, src = names.queue("dead"), names.queue("mid"), names.queue("src")
    ch.queue_declare(dead)
    ch.queue_declare(mid, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead})
    ch.queue_declare(src, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": mid})
    ch.basic_publish("", src, b"twice", pika.BasicProperties(expiration="600000"))
    reject_one(conn, ch, src)
    reject_one(conn, ch, mid, "nack")
    assert wait_count(conn, ch, dead, 1)
    args, p, _ = raw_get(dead)
    hdrs = p["headers"]
    kind, deaths = header(hdrs, "x-death")
    assert kind == "A" and len(deaths) == 2
    newest, oldest = (dict(e[1]) for e in deaths)
    # the entry added at the second death has its keys sorted ...
    assert [k for k, _ in deaths[0][1]] == ["count", "exchange", "queue", "reason", "routing-keys", "time"]
    # ... the first one keeps its original order (and original-expiration)
    assert [k for k, _ in deaths[1][1]] == ["count", "reason", "queue", "time", "exchange",
                                            "routing-keys", "original-expiration"]
    assert (newest["queue"], newest["reason"], newest["count"], newest["exchange"]) == (
        S(mid), S("rejected"), ("l", 1), S(""))
    assert newest["routing-keys"] == ("A", [S(mid)])
    assert (oldest["queue"], oldest["reason"], oldest["original-expiration"]) == (
        S(src), S("rejected"), S("600000"))
    # x-first-death-* still describe the first death
    assert header(hdrs, "x-first-death-queue") == S(src)
    assert header(hdrs, "x-first-death-reason") == S("rejected")
    assert header(hdrs, "x-first-death-exchange") == S("")


def test_retry_loop_counts_deaths_per_queue_and_reason(conn, names):
    """work --reject--> retry --(ttl) expired--> work --reject--> ...: a cycle with a rejection
    in it goes on, and each (queue, reason) entry counts its deaths."""
    ch = confirm_channel(conn)
    work, retry = names.queue("work"), names.queue("retry")
    ch.queue_declare(work, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": retry})
    ch.queue_declare(retry, arguments={
        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": work, "x-message-ttl": 20})
    ch.basic_publish("", work, b"job", pika.BasicProperties(headers={"orig": "y"}))
    seen = []
    for _ in range(3):
        m, p, body = poll_get(conn, ch, work, auto_ack=False)
        assert (body, m.redelivered) == (b"job", False)
        seen.append(p.headers)
        ch.basic_reject(m.delivery_tag, requeue=False)
    assert seen[0] == {"orig": "y"}
    for n, hdrs in enumerate(seen[1:], start=1):
        assert hdrs["orig"] == "y"
        deaths = [(d["queue"], d["reason"], d["count"]) for d in hdrs["x-death"]]
        # most recent death first
        assert deaths == [(retry, "expired", n), (work, "rejected", n)]
        assert (hdrs["x-first-death-queue"], hdrs["x-first-death-reason"]) == (work, "rejected")
    # the third rejection is sitting in retry and comes back once more
    m, p, body = poll_get(conn, ch, work)
    assert [(d["queue"], d["count"]) for d in p.headers["x-death"]] == [(retry, 3), (work, 3)]


def test_repeated_death_keeps_the_first_time(conn, names):
    """A repeated death only bumps count: time (and exchange, routing-keys) stay as first
    written.  Needs the clock to pass a whole second between the deaths."""
    ch = confirm_channel(conn)
    q = names.queue()
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": q})
    ch.basic_publish("", q, b"again")
    reject_one(conn, ch, q)
    m, p, _ = poll_get(conn, ch, q, auto_ack=False)
    (first,) = p.headers["x-death"]
    assert (first["queue"], first["reason"], first["count"]) == (q, "rejected", 1)
    first_time = first["time"].timestamp()
    # wait (bounded) until the broker's clock must have moved on to a later second
    deadline = time.monotonic() + 3
    while time.time() < first_time + 1.05:
        assert time.monotonic() < deadline
        conn.process_data_events(time_limit=0.05)
    ch.basic_reject(m.delivery_tag, requeue=False)
    m, p, _ = poll_get(conn, ch, q)
    (again,) = p.headers["x-death"]
    assert again["count"] == 2
    assert again["time"] == first["time"]


def test_self_dead_lettering_on_reject_continues(conn, names):
    ch = confirm_channel(conn)
    q = names.queue()
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": q})
    ch.basic_publish("", q, b"loop")
    for n in range(1, 4):
        reject_one(conn, ch, q)
        m, p, _ = poll_get(conn, ch, q, auto_ack=False)
        assert [(d["queue"], d["reason"], d["count"]) for d in p.headers["x-death"]] == [(q, "rejected", n)]
        ch.basic_nack(m.delivery_tag, requeue=True)


def test_expiry_cycle_is_dropped(conn, names):
    """q1 --expired--> q2 --expired--> fanout(q1, observer): the copy for q1 would close a
    cycle made only of expiries, so RabbitMQ drops it; the observer gets its copy."""
    ch = confirm_channel(conn)
    q1, q2, observer, fan = names.queue("q1"), names.queue("q2"), names.queue("obs"), names.exchange("fan")
    ch.exchange_declare(fan, "fanout")
    ch.queue_declare(q1, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": q2,
                                    "x-message-ttl": 20})
    ch.queue_declare(q2, arguments={"x-dead-letter-exchange": fan, "x-message-ttl": 20})
    ch.queue_declare(observer)
    ch.queue_bind(q1, fan)
    ch.queue_bind(observer, fan)
    ch.basic_publish("", q1, b"cycle")
    assert wait_count(conn, ch, observer, 1)
    # had q1 got a copy, it would expire into q2 and on to the observer again within ~40 ms
    drain(conn, 0.4)
    assert count(ch, observer) == 1
    assert count(ch, q1) == 0 and count(ch, q2) == 0
    m, p, _ = ch.basic_get(observer, auto_ack=True)
    assert [(d["queue"], d["reason"]) for d in p.headers["x-death"]] == [(q2, "expired"), (q1, "expired")]


def test_expiry_into_itself_is_dropped(conn, names):
    ch = confirm_channel(conn)
    q, observer, fan = names.queue(), names.queue("obs"), names.exchange("fan")
    ch.exchange_declare(fan, "fanout")
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": fan, "x-message-ttl": 20})
    ch.queue_declare(observer)
    ch.queue_bind(q, fan)
    ch.queue_bind(observer, fan)
    ch.basic_publish("", q, b"self")
    assert wait_count(conn, ch, observer, 1)
    drain(conn, 0.3)
    assert count(ch, observer) == 1 and count(ch, q) == 0


def test_dead_letter_to_missing_exchange_drops_silently(conn, names):
    ch = confirm_channel(conn)
    missing = names.exchange("missing")  # never declared (until later)
    src = names.queue("src")
    ch.queue_declare(src, arguments={"x-dead-letter-exchange": missing})
    ch.basic_publish("", src, b"lost")
    reject_one(conn, ch, src)
    ch.basic_publish("", src, b"lost-too", pika.BasicProperties(expiration="10"))
    assert wait_count(conn, ch, src, 0)
    assert ch.is_open and conn.is_open
    # the messages are gone for good, not parked until the exchange appears
    dead = names.queue("dead")
    ch.exchange_declare(missing, "fanout")
    ch.queue_declare(dead)
    ch.queue_bind(dead, missing)
    drain(conn, 0.2)
    assert count(ch, dead) == 0
    # from now on dead-lettering works
    ch.basic_publish("", src, b"found")
    reject_one(conn, ch, src)
    assert poll_get(conn, ch, dead)[2] == b"found"


# ---------------------------------------------------------------------------
# CC / BCC
# ---------------------------------------------------------------------------


def test_cc_keys_are_kept_without_a_dead_letter_routing_key(conn, names):
    ch = confirm_channel(conn)
    dlx, src = names.exchange("dlx"), names.queue("src")
    by_key = {k: names.queue(k) for k in ("k1", "cc1", "bcc1")}
    ch.exchange_declare(dlx, "direct")
    for k, q in by_key.items():
        ch.queue_declare(q)
        ch.queue_bind(q, dlx, k)
    ch.queue_declare(src, arguments={"x-dead-letter-exchange": dlx})
    for k in by_key:
        ch.queue_bind(src, "amq.direct", k)
    ch.basic_publish("amq.direct", "k1", b"cc", pika.BasicProperties(headers={"CC": ["cc1"], "BCC": ["bcc1"]}))
    m, p, _ = poll_get(conn, ch, src, auto_ack=False)
    assert p.headers == {"CC": ["cc1"]}  # BCC is stripped at publish
    ch.basic_reject(m.delivery_tag, requeue=False)
    for k, q in by_key.items():
        m, p, _ = poll_get(conn, ch, q)
        # routed again with the original key and the CC and BCC keys
        assert (m.exchange, m.routing_key) == (dlx, "k1")
        assert p.headers["CC"] == ["cc1"]
        assert "BCC" not in p.headers
        # x-death records the routing key and the CC keys (not the BCC ones)
        assert p.headers["x-death"][0]["routing-keys"] == ["k1", "cc1"]


def test_cc_header_is_removed_with_a_dead_letter_routing_key(conn, names):
    ch = confirm_channel(conn)
    dlx, src = names.exchange("dlx"), names.queue("src")
    by_key = {k: names.queue(k) for k in ("k1", "cc1", "dl")}
    ch.exchange_declare(dlx, "direct")
    for k, q in by_key.items():
        ch.queue_declare(q)
        ch.queue_bind(q, dlx, k)
    ch.queue_declare(src, arguments={"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dl"})
    ch.queue_bind(src, "amq.direct", "k1")
    ch.basic_publish("amq.direct", "k1", b"cc", pika.BasicProperties(headers={"CC": ["cc1"]}))
    reject_one(conn, ch, src)
    m, p, _ = poll_get(conn, ch, by_key["dl"])
    assert (m.exchange, m.routing_key) == (dlx, "dl")
    assert "CC" not in p.headers
    assert p.headers["x-death"][0]["routing-keys"] == ["k1", "cc1"]
    assert count(ch, by_key["k1"]) == 0 and count(ch, by_key["cc1"]) == 0
