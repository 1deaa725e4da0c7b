"""Celery app used by the Celery interop test (interop-tests/pika/test_celery.py).

The broker comes from ``AMQP_URL`` (default
``amqp://guest:guest@localhost:5672/%2F``); results go through the ``rpc://``
backend, i.e. back to the client over AMQP.  The task queue name comes from
``WARREN_CELERY_QUEUE`` so that every test run uses its own queue; the test
process calls :func:`configure` with the same name before sending anything.

The worker is started by the test as::

    python -m celery -A tasks worker --pool=prefork --concurrency=2 \
        --without-gossip --without-mingle --without-heartbeat -n <unique>@%h

with this directory as the working directory.
"""

import os

from celery import Celery

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F")
DEFAULT_QUEUE = "warren-interop.celery"

app = Celery("warren_interop", broker=AMQP_URL, backend="rpc://")


def configure(queue):
    """Route every task through ``queue`` (a direct exchange of the same
    name, bound with routing key ``queue``, as Celery does by default)."""
    app.conf.update(
        task_default_queue=queue,
        task_default_exchange=queue,
        task_default_routing_key=queue,
    )


app.conf.update(
    result_backend="rpc://",
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    # Fail fast instead of retrying for ever against a dead broker.
    broker_connection_retry_on_startup=False,
    broker_connection_max_retries=3,
    broker_connection_timeout=5,
    worker_hijack_root_logger=False,
    worker_redirect_stdouts=False,
    # Results are collected by the test; nothing has to outlive a run.
    result_expires=300,
)
configure(os.environ.get("WARREN_CELERY_QUEUE", DEFAULT_QUEUE))


@app.task
def add(x, y):
    return x + y


@app.task
def echo(payload):
    """Return the payload (any JSON value) with a little derived data, so the
    result is checkably computed by the worker."""
    return {"payload": payload, "type": type(payload).__name__, "worker_pid": os.getpid()}


@app.task
def fail(message):
    """Raise, so the result backend has to carry a FAILURE state."""
    raise ValueError(message)


@app.task(bind=True)
def reply_to(self):
    """Return the reply-to address the worker got with the task message (a
    client on direct reply-to sends ``amq.rabbitmq.reply-to``; the broker
    rewrites it to ``amq.rabbitmq.reply-to.<suffix>``)."""
    return self.request.reply_to


@app.task(bind=True, max_retries=5)
def retry_then_return(self, value, retries_wanted):
    """Retry (republishing the task message, with a short countdown so the
    worker holds it as an ETA task) until it has been retried
    ``retries_wanted`` times, then return ``[value, retries]``."""
    if self.request.retries < retries_wanted:
        raise self.retry(countdown=0.05)
    return [value, self.request.retries]
