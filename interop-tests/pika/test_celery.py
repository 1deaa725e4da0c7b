"""Celery interop: a real Celery app and worker against the broker.

The app lives in interop-tests/celery/tasks.py (Celery and kombu from PyPI,
pinned in requirements.txt; result backend ``rpc://``, so every result comes
back to this process over AMQP).  A module-scoped fixture starts a real
``celery worker`` subprocess (prefork pool, concurrency 2) on a queue of its
own, waits (bounded) until it has run a first task, and stops it at teardown
(SIGTERM = warm shutdown, bounded wait, then SIGKILL of its process group),
then deletes the task queue and exchange.

``test_celery_500_tasks`` sends 500 tasks of several kinds (a group, single
calls, large multi-frame payloads, failures, retries with a countdown) and
checks every result.

Note that Celery's ``rpc://`` backend does not use RabbitMQ's direct reply-to:
it declares a reply queue per client (named by a UUID; durable, auto-delete,
``x-expires`` = result_expires) and the worker publishes results to it through
the default exchange.  ``test_celery_results_over_direct_reply_to`` therefore
also drives the same worker through ``amq.rabbitmq.reply-to``: the client
consumes the pseudo-queue (no-ack) and publishes its tasks on that channel with
``reply_to='amq.rabbitmq.reply-to'``; the worker's rpc backend answers to the
rewritten ``amq.rabbitmq.reply-to.<suffix>`` address.
"""

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest

from conftest import AMQP_URL, Names, uid

CELERY_DIR = pathlib.Path(__file__).resolve().parents[1] / "celery"
if str(CELERY_DIR) not in sys.path:
    sys.path.insert(0, str(CELERY_DIR))

import celery  # noqa: E402
import celery.exceptions  # noqa: E402
import kombu  # noqa: E402
import tasks  # noqa: E402  (interop-tests/celery/tasks.py)

WORKER_START_TIMEOUT = 30.0
WORKER_STOP_TIMEOUT = 20.0
RESULTS_TIMEOUT = 45.0
N_TASKS = 500


class Worker:
    def __init__(self, proc, log_path, queue, nodename):
        self.proc = proc
        self.log_path = log_path
        self.queue = queue
        self.nodename = nodename

    def output(self, tail=6000):
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "<no worker output>"
        return text[-tail:]

    def fail(self, why):
        pytest.fail(f"{why}\n--- celery worker output (tail) ---\n{self.output()}")

    def check_alive(self):
        rc = self.proc.poll()
        if rc is not None:
            self.fail(f"celery worker exited with code {rc}")

    def wait_ready(self):
        """Bounded wait until the worker has consumed and answered a task."""
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        probe = tasks.add.delay(20, 22)
        while True:
            self.check_alive()
            try:
                value = probe.get(timeout=0.5)
            except celery.exceptions.TimeoutError:
                if time.monotonic() > deadline:
                    self.fail(f"celery worker did not answer a task within {WORKER_START_TIMEOUT}s")
                continue
            assert value == 42
            return

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # warm shutdown
            try:
                self.proc.wait(timeout=WORKER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        # The worker runs in its own session: kill whatever is left of it
        # (the main process if it did not stop, orphaned pool children).
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=WORKER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass


def _close_client():
    """Close this process's Celery connections (result consumer, pools)."""
    consumer = tasks.app.backend.result_consumer
    if consumer._consumer is not None:
        try:
            consumer.stop()
        except Exception:
            pass
        consumer._consumer = None
        consumer._connection = None
    tasks.app.close()


@pytest.fixture(scope="module")
def celery_worker(tmp_path_factory):
    queue = uid("celery")
    tasks.configure(queue)
    nodename = f"warren-{uuid.uuid4().hex[:12]}@{socket.gethostname()}"
    log_path = tmp_path_factory.mktemp("celery") / "worker.log"
    env = dict(
        os.environ,
        AMQP_URL=AMQP_URL,
        WARREN_CELERY_QUEUE=queue,
        PYTHONDONTWRITEBYTECODE="1",
    )
    cmd = [
        sys.executable, "-m", "celery", "-A", "tasks", "worker",
        "--pool=prefork", "--concurrency=2",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
        "--loglevel=WARNING", "-n", nodename, "-Q", queue,
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=CELERY_DIR, env=env, stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    worker = Worker(proc, log_path, queue, nodename)
    try:
        worker.wait_ready()
        yield worker
    finally:
        try:
            _close_client()
        finally:
            worker.stop()
            names = Names()
            names.track_queue(queue)
            names.exchanges.append(queue)
            names.cleanup()


def _remaining(deadline):
    left = deadline - time.monotonic()
    if left <= 0:
        raise AssertionError("results did not all arrive in time")
    return left


def test_celery_control_ping(celery_worker):
    """Remote control (kombu pidbox: fanout broadcast + reply queue)."""
    replies = tasks.app.control.ping([celery_worker.nodename], timeout=10, limit=1)
    assert replies == [{celery_worker.nodename: {"ok": "pong"}}], celery_worker.output()


def test_celery_500_tasks(celery_worker):
    pending = []  # (AsyncResult, kind, expected)

    # 200 adds as one group (GroupResult collected with a native join) ...
    group = celery.group(tasks.add.s(i, i * i) for i in range(200)).apply_async()
    group_expected = [i + i * i for i in range(200)]

    # ... 200 single adds ...
    for i in range(200, 400):
        pending.append((tasks.add.apply_async((i, -3 * i)), "ok", -2 * i))

    # ... 60 echoes of varied JSON payloads, a few bigger than a frame ...
    big = "x" * (300 * 1024)
    for i in range(60):
        if i % 20 == 0:
            payload = {"i": i, "blob": big + str(i)}
        elif i % 3 == 0:
            payload = {"i": i, "nested": {"list": [1, 2.5, None, True, "s"]}, "text": "h\u00e9llo \u2603 \U0001f407"}
        elif i % 3 == 1:
            payload = [i, str(i), {"k": [i] * i}]
        else:
            payload = f"string payload {i}"
        expected = {"payload": payload, "type": type(payload).__name__}
        pending.append((tasks.echo.delay(payload), "echo", expected))

    # ... 20 failures ...
    for i in range(20):
        pending.append((tasks.fail.delay(f"boom {i}"), "fail", f"boom {i}"))

    # ... and 20 tasks that retry 0-2 times (republished with a countdown).
    for i in range(20):
        wanted = i % 3
        pending.append((tasks.retry_then_return.delay(i, wanted), "ok", [i, wanted]))

    assert len(group.results) + len(pending) == N_TASKS
    ids = {r.id for r in group.results} | {r.id for r, _, _ in pending}
    assert len(ids) == N_TASKS

    deadline = time.monotonic() + RESULTS_TIMEOUT
    try:
        assert group.get(timeout=_remaining(deadline)) == group_expected
        for result, kind, expected in pending:
            if kind == "fail":
                with pytest.raises(ValueError) as info:
                    result.get(timeout=_remaining(deadline))
                assert str(info.value) == expected
                assert result.state == "FAILURE"
                continue
            value = result.get(timeout=_remaining(deadline))
            if kind == "echo":
                pid = value.pop("worker_pid")
                assert isinstance(pid, int) and pid != os.getpid()
            assert value == expected, (result.id, kind)
            assert result.state == "SUCCESS"
    except (AssertionError, celery.exceptions.TimeoutError) as exc:
        celery_worker.check_alive()
        celery_worker.fail(f"{type(exc).__name__}: {exc}")


DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"


def test_celery_results_over_direct_reply_to(celery_worker):
    """Celery tasks whose results come back through direct reply-to."""
    replies = {}  # correlation id -> (result meta, delivery routing key)

    def on_reply(body, message):
        replies[message.properties["correlation_id"]] = (
            body, message.delivery_info["routing_key"])

    expected = {}
    with kombu.Connection(AMQP_URL, connect_timeout=5) as conn:
        channel = conn.channel()
        consumer = kombu.Consumer(
            channel, queues=[kombu.Queue(DIRECT_REPLY_TO, no_declare=True)],
            callbacks=[on_reply], no_ack=True, accept=["json"])
        consumer.consume()
        producer = kombu.Producer(channel)
        for i in range(100):
            r = tasks.add.apply_async((i, 1000), producer=producer, reply_to=DIRECT_REPLY_TO)
            expected[r.id] = i + 1000
        probes = set()
        for _ in range(3):
            r = tasks.reply_to.apply_async(producer=producer, reply_to=DIRECT_REPLY_TO)
            probes.add(r.id)

        deadline = time.monotonic() + RESULTS_TIMEOUT
        while len(replies) < len(expected) + len(probes):
            celery_worker.check_alive()
            left = deadline - time.monotonic()
            if left <= 0:
                celery_worker.fail(
                    f"only {len(replies)} of {len(expected) + len(probes)} "
                    "direct reply-to results arrived")
            try:
                conn.drain_events(timeout=min(left, 0.5))
            except socket.timeout:
                pass

    for task_id, value in expected.items():
        meta, routing_key = replies[task_id]
        assert (meta["status"], meta["result"], meta["task_id"]) == ("SUCCESS", value, task_id)
        assert routing_key.startswith(DIRECT_REPLY_TO + "."), routing_key
    for task_id in probes:
        meta, routing_key = replies[task_id]
        assert meta["status"] == "SUCCESS"
        # The worker saw the address the broker rewrote reply_to to, and its
        # reply was routed back to us under that same address.
        assert meta["result"] == routing_key, (meta["result"], routing_key)
        assert routing_key.startswith(DIRECT_REPLY_TO + ".") and routing_key != DIRECT_REPLY_TO + "."
