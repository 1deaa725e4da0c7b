"""The users' reference programs in examples/pika, run verbatim.

They hard-code ``pika.ConnectionParameters('localhost')`` (port 5672,
guest/guest, vhost '/'), so the end-to-end test only runs when AMQP_URL
points at exactly that broker.  To run them against a broker in isolation
(its own network namespace, so nothing else can be on localhost:5672) use
``interop-tests/run-examples.sh BROKER_CMD...``.
"""

import os
import pathlib
import queue
import subprocess
import sys
import threading
import time

import pika
import pytest

from conftest import (
    BROKER_HOST,
    BROKER_PASSWORD,
    BROKER_PORT,
    BROKER_USER,
    BROKER_VHOST,
    params,
)

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples" / "pika"
PRODUCER = EXAMPLES / "producer.py"
CONSUMER = EXAMPLES / "consumer.py"
QUEUE = "train_tasks"
TASK = "model_train_001"

targets_script_defaults = (
    BROKER_HOST in ("localhost", "127.0.0.1", "::1")
    and BROKER_PORT == 5672
    and (BROKER_USER, BROKER_PASSWORD, BROKER_VHOST) == ("guest", "guest", "/")
)


def test_example_scripts_compile():
    for path in (PRODUCER, CONSUMER):
        source = path.read_text()
        compile(source, str(path), "exec")
        assert "pika.ConnectionParameters('localhost')" in source
        assert "queue='train_tasks'" in source


def _delete_queue():
    c = pika.BlockingConnection(params())
    try:
        c.channel().queue_delete(QUEUE)
    finally:
        c.close()


def _queue_depth():
    c = pika.BlockingConnection(params())
    try:
        r = c.channel().queue_declare(QUEUE, passive=True)
        return r.method.message_count, r.method.consumer_count
    finally:
        c.close()


@pytest.mark.skipif(not targets_script_defaults,
                    reason="examples hard-code localhost:5672 guest/guest '/'; use run-examples.sh")
def test_producer_then_consumer():
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    _delete_queue()
    try:
        prod = subprocess.run([sys.executable, str(PRODUCER)], capture_output=True, text=True,
                              timeout=30, env=env)
        assert prod.returncode == 0, prod.stderr
        assert prod.stdout == f"Sent task: {TASK}\n"
        assert _queue_depth() == (1, 0)

        cons = subprocess.Popen([sys.executable, str(CONSUMER)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
        lines = queue.Queue()

        def reader():
            for line in cons.stdout:
                lines.put(line.rstrip("\n"))
            lines.put(None)

        threading.Thread(target=reader, daemon=True).start()
        seen = []
        deadline = time.monotonic() + 30
        try:
            while f"Task {TASK} completed." not in seen:
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"consumer did not finish in time; output so far: {seen}"
                try:
                    line = lines.get(timeout=remaining)
                except queue.Empty:
                    continue
                assert line is not None, f"consumer exited early: {seen} / {cons.stderr.read()}"
                seen.append(line)
        finally:
            cons.terminate()
            try:
                cons.wait(timeout=10)
            except subprocess.TimeoutExpired:
                cons.kill()
                cons.wait()
        assert seen == ["Waiting for tasks...", f"Processing task: {TASK}", f"Task {TASK} completed."]
        # the auto_ack consumer took the message, and once its process is
        # gone the broker drops its consumer (bounded poll)
        deadline = time.monotonic() + 10
        while True:
            messages, consumers = _queue_depth()
            assert messages == 0
            if consumers == 0:
                break
            assert time.monotonic() < deadline, "consumer of a dead process still registered"
    finally:
        _delete_queue()
