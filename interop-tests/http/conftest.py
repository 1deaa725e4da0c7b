"""Shared fixtures of the HTTP API tests: the management API at MGMT_URL (default
http://127.0.0.1:15672), the broker's AMQP side at AMQP_URL, and helpers to make users with tags.

Every test here passes against RabbitMQ 3.10.8's management plugin too (differential testing),
except those marked ``warren_only``.
"""

import glob
import os
import shutil
import subprocess
import urllib.parse
import uuid

import pika
import pytest
import requests

MGMT_URL = os.environ.get("MGMT_URL", "http://127.0.0.1:15672").rstrip("/")
AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
_amqp = urllib.parse.urlparse(AMQP_URL)
ADMIN = (urllib.parse.unquote(_amqp.username or "guest"),
         urllib.parse.unquote(_amqp.password or "guest"))
WAIT = 10.0

RABBITMQADMIN = os.environ.get("RABBITMQADMIN") or shutil.which("rabbitmqadmin") or next(
    iter(sorted(glob.glob("/usr/lib/rabbitmq/lib/rabbitmq_server-*/plugins/rabbitmq_management-*/"
                          "priv/www/cli/rabbitmqadmin"))), None)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "warren_only: Warren's own behaviour; skipped against RabbitMQ")


def _is_rabbitmq():
    r = requests.get(f"{MGMT_URL}/api/overview", auth=ADMIN, timeout=WAIT)
    r.raise_for_status()
    return "warren_version" not in r.json()


def pytest_collection_modifyitems(config, items):
    marked = [i for i in items if i.get_closest_marker("warren_only")]
    if marked and _is_rabbitmq():
        for item in marked:
            item.add_marker(pytest.mark.skip(reason="warren_only, broker is RabbitMQ"))


def uid(prefix="t"):
    return f"wh-{prefix}-{uuid.uuid4().hex[:12]}"


def q(name):
    """A path segment, percent-encoded as RabbitMQ's API wants (`/` is %2F)."""
    return urllib.parse.quote(name, safe="")


class Api:
    """requests against the management API as one user."""

    def __init__(self, auth=ADMIN):
        self.auth = auth
        self.s = requests.Session()

    def url(self, path):
        return f"{MGMT_URL}{path}"

    def get(self, path, **kw):
        return self.s.get(self.url(path), auth=self.auth, timeout=WAIT, **kw)

    def put(self, path, body=None, **kw):
        return self.s.put(self.url(path), auth=self.auth, json=body, timeout=WAIT, **kw)

    def post(self, path, body=None, **kw):
        return self.s.post(self.url(path), auth=self.auth, json=body, timeout=WAIT, **kw)

    def delete(self, path, **kw):
        return self.s.delete(self.url(path), auth=self.auth, timeout=WAIT, **kw)


@pytest.fixture
def api():
    return Api()


class Scratch:
    """Users and vhosts made by a test, deleted at its end."""

    def __init__(self, api):
        self.api = api
        self.users = []
        self.vhosts = []

    def user(self, tags="", password=None, prefix="u"):
        name, password = uid(prefix), password or uuid.uuid4().hex
        r = self.api.put(f"/api/users/{q(name)}", {"password": password, "tags": tags})
        assert r.status_code in (201, 204), r.text
        self.users.append(name)
        return name, password

    def vhost(self, prefix="v"):
        name = uid(prefix)
        r = self.api.put(f"/api/vhosts/{q(name)}")
        assert r.status_code in (201, 204), r.text
        self.vhosts.append(name)
        return name

    def grant(self, user, vhost, configure=".*", write=".*", read=".*"):
        r = self.api.put(f"/api/permissions/{q(vhost)}/{q(user)}",
                         {"configure": configure, "write": write, "read": read})
        assert r.status_code in (201, 204), r.text

    def cleanup(self):
        for v in self.vhosts:
            self.api.delete(f"/api/vhosts/{q(v)}")
        for u in self.users:
            self.api.delete(f"/api/users/{q(u)}")


@pytest.fixture
def scratch(api):
    s = Scratch(api)
    yield s
    s.cleanup()


def amqp(user=None, password=None, vhost="/"):
    """A pika connection to the broker under test."""
    p = pika.URLParameters(AMQP_URL)
    if user is not None:
        p.credentials = pika.PlainCredentials(user, password)
    p.virtual_host = vhost
    p.connection_attempts = 1
    p.socket_timeout = WAIT
    return pika.BlockingConnection(p)


def rabbitmqadmin(*args, user=None, password=None, check=True):
    """Runs RabbitMQ's rabbitmqadmin CLI against MGMT_URL (skips when it is not installed)."""
    if not RABBITMQADMIN:
        pytest.skip("rabbitmqadmin not found (set RABBITMQADMIN)")
    u = urllib.parse.urlparse(MGMT_URL)
    cmd = ["python3", RABBITMQADMIN, "-H", u.hostname, "-P", str(u.port or 15672),
           "-u", user or ADMIN[0], "-p", password or ADMIN[1], *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r
