"""Shared fixtures and helpers for the pika interop suite.

Run with ``interop-tests/run-pika.sh [pytest args]`` (sets up the venv).
The broker under test is taken from ``AMQP_URL`` (default
``amqp://guest:guest@localhost:5672/%2F``).  Every test must pass against
RabbitMQ 3.10.8; Warren has to behave the same way.  Tests marked
``warren_only`` are skipped when the broker is RabbitMQ (Warren also says product
"RabbitMQ", but adds a ``warren_version`` server property; set WARREN_ONLY_TESTS=1 to force
them).

Helpers provided here:

* ``connect`` fixture: factory for ``pika.BlockingConnection`` objects that
  are closed at teardown.
* ``conn`` / ``ch`` fixtures: one connection and one channel on it.
* ``names`` fixture: unique queue/exchange names that are deleted (through a
  fresh connection) at teardown.
* ``channel_closed`` / ``connection_closed``: context managers asserting that
  the broker closed the channel/connection with a given code and reply-text
  prefix.
* ``wait_for``: drive pika's I/O loop until a condition holds or a deadline
  passes (never sleep as synchronisation).
* ``RawAMQP``: a minimal hand-written AMQP 0-9-1 client over a plain socket,
  for feeding the broker malformed input (exposed as the ``raw`` fixture).
* ``start_own_broker``: a broker of the test's own configured by a rabbitmq.conf text: a Warren
  (WARREN_BIN), or a RabbitMQ node when the broker under test is RabbitMQ (or
  OWN_BROKER=rabbitmq), so that node settings such as TLS can be tested against both.
"""

import contextlib
import os
import socket
import struct
import time
import urllib.parse
import uuid

import pika
import pika.exceptions
import pytest

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F")

_URL = urllib.parse.urlparse(AMQP_URL)
BROKER_HOST = _URL.hostname or "localhost"
BROKER_PORT = _URL.port or 5672
BROKER_USER = urllib.parse.unquote(_URL.username or "guest")
BROKER_PASSWORD = urllib.parse.unquote(_URL.password or "guest")
_vhost_path = _URL.path[1:] if _URL.path.startswith("/") else _URL.path
BROKER_VHOST = urllib.parse.unquote(_vhost_path) if _vhost_path else "/"

# Deadline used by every bounded wait in the suite.
WAIT = 10.0


# --------------------------------------------------------------------------
# pytest configuration
# --------------------------------------------------------------------------


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "warren_only: behaviour specific to Warren (not RabbitMQ); skipped when "
        "the broker at AMQP_URL is RabbitMQ (no warren_version server property) "
        "unless WARREN_ONLY_TESTS=1",
    )


def _is_rabbitmq():
    """True unless the broker is Warren (which says product "RabbitMQ", for clients that switch
    on it, and adds a ``warren_version`` server property)."""
    try:
        c = pika.BlockingConnection(params())
    except Exception:  # pragma: no cover - broker down: let tests report it
        return False
    try:
        props = c._impl.server_properties
        return props.get("product") in ("RabbitMQ", b"RabbitMQ") and "warren_version" not in props
    finally:
        c.close()


def pytest_collection_modifyitems(config, items):
    marked = [i for i in items if i.get_closest_marker("warren_only")]
    if not marked or os.environ.get("WARREN_ONLY_TESTS") == "1":
        return
    if _is_rabbitmq():
        skip = pytest.mark.skip(reason="warren_only test, broker is RabbitMQ")
        for item in marked:
            item.add_marker(skip)


# --------------------------------------------------------------------------
# pika helpers
# --------------------------------------------------------------------------


def params(**overrides):
    """Fresh ``pika.URLParameters`` for AMQP_URL, with attribute overrides."""
    p = pika.URLParameters(AMQP_URL)
    # Fail fast instead of retrying against a dead broker.
    p.connection_attempts = 1
    p.retry_delay = 0
    p.socket_timeout = 5
    p.blocked_connection_timeout = 30
    for key, value in overrides.items():
        setattr(p, key, value)
    return p


def free_port():
    """A TCP port nothing listens on now (for tests that start a broker of their own)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def uid(prefix="t"):
    return f"warren-test.{prefix}.{uuid.uuid4().hex}"


def wait_for(connection, predicate, timeout=WAIT, step=0.05):
    """Process I/O on ``connection`` until ``predicate()`` is true.

    Returns True when the condition was met, False if the deadline passed.
    """
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        connection.process_data_events(time_limit=min(step, remaining))


def drain(connection, seconds):
    """Process I/O for a bounded time (used to *prove a negative*, e.g. that
    no further delivery arrives, never as synchronisation)."""
    deadline = time.monotonic() + seconds
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        connection.process_data_events(time_limit=remaining)


def get_all(channel, queue, auto_ack=True, limit=100000):
    """basic.get until get-empty; returns list of (method, props, body)."""
    out = []
    for _ in range(limit):
        method, props, body = channel.basic_get(queue, auto_ack=auto_ack)
        if method is None:
            return out
        out.append((method, props, body))
    raise AssertionError("queue never drained")


class _Expected:
    def __init__(self):
        self.exc = None

    @property
    def reply_code(self):
        return self.exc.reply_code

    @property
    def reply_text(self):
        return self.exc.reply_text


def _check(exc, code, text):
    assert exc.reply_code == code, (exc.reply_code, exc.reply_text)
    if text is not None:
        assert exc.reply_text.startswith(text), (exc.reply_code, exc.reply_text)


@contextlib.contextmanager
def channel_closed(code, text=None):
    """Expect the body to raise ChannelClosedByBroker(code, text...)."""
    result = _Expected()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        yield result
    result.exc = info.value
    _check(info.value, code, text)


@contextlib.contextmanager
def connection_closed(code, text=None):
    """Expect the body to raise ConnectionClosedByBroker(code, text...)."""
    result = _Expected()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        yield result
    result.exc = info.value
    _check(info.value, code, text)


class Names:
    """Unique names, deleted at teardown through a fresh connection."""

    def __init__(self):
        self.queues = []
        self.exchanges = []

    def queue(self, prefix="q"):
        name = uid(prefix)
        self.queues.append(name)
        return name

    def exchange(self, prefix="x"):
        name = uid(prefix)
        self.exchanges.append(name)
        return name

    def track_queue(self, name):
        self.queues.append(name)
        return name

    def cleanup(self):
        if not (self.queues or self.exchanges):
            return
        c = pika.BlockingConnection(params())
        try:
            ch = c.channel()
            for q in self.queues:
                try:
                    ch.queue_delete(q)
                except pika.exceptions.ChannelClosedByBroker:
                    ch = c.channel()
            for x in self.exchanges:
                try:
                    ch.exchange_delete(x)
                except pika.exceptions.ChannelClosedByBroker:
                    ch = c.channel()
        finally:
            if c.is_open:
                c.close()


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------


@pytest.fixture
def amqp_url():
    return AMQP_URL


@pytest.fixture
def names():
    n = Names()
    yield n
    n.cleanup()


@pytest.fixture
def connect():
    opened = []

    def factory(**overrides):
        c = pika.BlockingConnection(params(**overrides))
        opened.append(c)
        return c

    yield factory
    for c in opened:
        if c.is_open:
            try:
                c.close()
            except Exception:
                pass


@pytest.fixture
def conn(connect):
    return connect()


@pytest.fixture
def ch(conn):
    return conn.channel()


# --------------------------------------------------------------------------
# raw AMQP client (for malformed input)
# --------------------------------------------------------------------------

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8
FRAME_END = 0xCE


def shortstr(s):
    if isinstance(s, str):
        s = s.encode()
    assert len(s) < 256
    return struct.pack(">B", len(s)) + s


def longstr(s):
    if isinstance(s, str):
        s = s.encode()
    return struct.pack(">I", len(s)) + s


def table(d):
    """Encode a field table with string / bool / nested-table values only."""
    out = b""
    for k, v in d.items():
        out += shortstr(k)
        if isinstance(v, bool):
            out += b"t" + (b"\x01" if v else b"\x00")
        elif isinstance(v, dict):
            out += b"F" + table(v)
        else:
            out += b"S" + longstr(v)
    return struct.pack(">I", len(out)) + out


def parse_shortstr(buf, off):
    n = buf[off]
    return buf[off + 1 : off + 1 + n].decode(), off + 1 + n


class RawAMQP:
    """A tiny blocking AMQP 0-9-1 client speaking raw frames."""

    def __init__(self, host=BROKER_HOST, port=BROKER_PORT, timeout=WAIT):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.tune = None
        self.start_payload = None

    # --- low level -------------------------------------------------------
    def send(self, data):
        self.sock.sendall(data)

    def send_frame(self, ftype, channel, payload, frame_end=FRAME_END, size=None):
        if size is None:
            size = len(payload)
        self.send(
            struct.pack(">BHI", ftype, channel, size) + payload + bytes([frame_end])
        )

    def send_method(self, channel, class_id, method_id, args=b""):
        self.send_frame(FRAME_METHOD, channel, struct.pack(">HH", class_id, method_id) + args)

    def _recv_exact(self, n):
        """Returns exactly n bytes, or fewer if the peer closed/reset."""
        while len(self.buf) < n:
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                break
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_bytes(self, n):
        return self._recv_exact(n)

    def read_frame(self):
        """Returns (type, channel, payload) or None at EOF."""
        head = self._recv_exact(7)
        if len(head) < 7:
            return None
        ftype, channel, size = struct.unpack(">BHI", head)
        payload = self._recv_exact(size)
        end = self._recv_exact(1)
        assert len(payload) == size and end == bytes([FRAME_END]), "truncated frame"
        return ftype, channel, payload

    def read_method(self):
        """Next method frame as (channel, class_id, method_id, args)."""
        while True:
            frame = self.read_frame()
            if frame is None:
                return None
            ftype, channel, payload = frame
            if ftype == FRAME_METHOD:
                cls, meth = struct.unpack(">HH", payload[:4])
                return channel, cls, meth, payload[4:]

    def at_eof(self):
        """True once the server has closed the TCP connection (EOF or RST)."""
        if self.buf:
            return False
        try:
            data = self.sock.recv(1)
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        if data:
            self.buf += data
            return False
        return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # --- handshake ---------------------------------------------------------
    def handshake(self, user=BROKER_USER, password=BROKER_PASSWORD, vhost=BROKER_VHOST,
                  channel_max=0, frame_max=0, heartbeat=0):
        self.send(PROTOCOL_HEADER)
        m = self.read_method()
        assert m is not None and m[1:3] == (10, 10), m  # connection.start
        self.start_payload = m[3]
        response = b"\x00" + user.encode() + b"\x00" + password.encode()
        self.send_method(
            0, 10, 11,
            table({"product": "warren-raw-test", "capabilities": {"authentication_failure_close": True}})
            + shortstr("PLAIN") + longstr(response) + shortstr("en_US"),
        )
        m = self.read_method()
        assert m is not None and m[1:3] == (10, 30), m  # connection.tune
        self.tune = struct.unpack(">HIH", m[3][:8])
        cm = channel_max or self.tune[0]
        fm = frame_max or self.tune[1]
        self.send_method(0, 10, 31, struct.pack(">HIH", cm, fm, heartbeat))
        self.send_method(0, 10, 40, shortstr(vhost) + shortstr("") + b"\x00")
        m = self.read_method()
        assert m is not None and m[1:3] == (10, 41), m  # connection.open-ok
        return self

    def open_channel(self, channel):
        self.send_method(channel, 20, 10, shortstr(""))
        m = self.read_method()
        assert m is not None and m[:3] == (channel, 20, 11), m
        return m

    def queue_declare(self, channel, name, passive=False, durable=False,
                      exclusive=False, auto_delete=False):
        bits = passive | (durable << 1) | (exclusive << 2) | (auto_delete << 3)
        self.send_method(channel, 50, 10,
                         struct.pack(">H", 0) + shortstr(name) + bytes([bits]) + table({}))

    def publish(self, channel, exchange, routing_key, body, props=b"\x00\x00",
                mandatory=False, immediate=False, max_body_frame=None):
        """basic.publish + content header (raw property bytes: flags+list)
        + body frames."""
        self.send_method(channel, 60, 40,
                         struct.pack(">H", 0) + shortstr(exchange) + shortstr(routing_key)
                         + bytes([mandatory | (immediate << 1)]))
        self.send_frame(FRAME_HEADER, channel, struct.pack(">HHQ", 60, 0, len(body)) + props)
        step = max_body_frame or (self.tune[1] - 8)
        for i in range(0, len(body), step):
            self.send_frame(FRAME_BODY, channel, body[i : i + step])

    def consume(self, channel, queue, tag="", no_ack=False, exclusive=False):
        bits = (no_ack << 1) | (exclusive << 2)
        self.send_method(channel, 60, 20,
                         struct.pack(">H", 0) + shortstr(queue) + shortstr(tag) + bytes([bits]) + table({}))

    def basic_get(self, channel, queue, no_ack=True):
        """Returns (get-ok args, raw property bytes, body) or None if empty."""
        self.send_method(channel, 60, 70, struct.pack(">H", 0) + shortstr(queue) + bytes([no_ack]))
        m = self.read_method()
        assert m is not None and m[0] == channel, m
        if m[1:3] == (60, 72):  # get-empty
            return None
        assert m[1:3] == (60, 71), m
        props, body = self.read_content(channel)
        return m[3], props, body

    def read_content(self, channel):
        frame = self.read_frame()
        assert frame is not None and frame[0] == FRAME_HEADER and frame[1] == channel, frame
        payload = frame[2]
        size = struct.unpack(">Q", payload[4:12])[0]
        body = b""
        while len(body) < size:
            frame = self.read_frame()
            assert frame is not None and frame[0] == FRAME_BODY and frame[1] == channel, frame
            body += frame[2]
        return payload[12:], body

    def expect_connection_close(self):
        """Read until connection.close; reply close-ok.  Returns (code, text,
        class_id, method_id)."""
        while True:
            m = self.read_method()
            assert m is not None, "server closed the socket without connection.close"
            channel, cls, meth, args = m
            if (cls, meth) == (10, 50):
                assert channel == 0
                code = struct.unpack(">H", args[:2])[0]
                text, off = parse_shortstr(args, 2)
                c_id, m_id = struct.unpack(">HH", args[off : off + 4])
                try:
                    self.send_method(0, 10, 51)
                except OSError:
                    pass
                return code, text, c_id, m_id

    def expect_channel_close(self, channel):
        while True:
            m = self.read_method()
            assert m is not None, "server closed the socket without channel.close"
            ch, cls, meth, args = m
            if (cls, meth) == (10, 50):
                raise AssertionError(f"got connection.close instead: {args!r}")
            if ch == channel and (cls, meth) == (20, 40):
                code = struct.unpack(">H", args[:2])[0]
                text, off = parse_shortstr(args, 2)
                c_id, m_id = struct.unpack(">HH", args[off : off + 4])
                self.send_method(channel, 20, 41)
                return code, text, c_id, m_id

    def wait_eof(self, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            if self.at_eof():
                return True
            # discard whatever else arrives
            self.buf = b""
        return False


@pytest.fixture
def raw():
    clients = []

    def factory():
        c = RawAMQP()
        clients.append(c)
        return c

    yield factory
    for c in clients:
        c.close()


# --------------------------------------------------------------------------
# access control: users, vhosts and permissions through a rabbitmqctl-
# compatible command line
# --------------------------------------------------------------------------
#
# ``CTL`` gives the command prefix (split with shlex), e.g.
#   CTL="rabbitmqctl -n rabbit@localhost"                      (RabbitMQ)
#   CTL="/var/tmp/warren-target/release/warren ctl --data-dir DIR"  (Warren)
# Without CTL, ``rabbitmqctl`` is used when the broker is RabbitMQ; against
# Warren the test fails (it cannot guess the data directory).

import json  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402

CTL_TIMEOUT = 60.0
_ctl_prefix = None


def ctl_prefix():
    """The CTL command prefix as a list (fails the test when it can't be determined)."""
    global _ctl_prefix
    if _ctl_prefix is None:
        env = os.environ.get("CTL", "").strip()
        if env:
            _ctl_prefix = shlex.split(env)
        elif _is_rabbitmq():
            _ctl_prefix = ["rabbitmqctl"]
        else:
            pytest.fail(
                "CTL is not set: give the rabbitmqctl-compatible command prefix for the broker "
                "under test, e.g. CTL='/var/tmp/warren-target/release/warren ctl --data-dir DIR' "
                "(for RabbitMQ: CTL='rabbitmqctl -n NODE')",
                pytrace=False,
            )
    return list(_ctl_prefix)


def ctl(*args, check=True):
    """Run ``CTL args...`` (text mode, output captured, 60 s timeout).

    With ``check`` (the default) a non-zero exit status fails the test, showing
    the command's stdout and stderr.
    """
    cmd = ctl_prefix() + [str(a) for a in args]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=CTL_TIMEOUT)
    except FileNotFoundError as e:
        pytest.fail(f"cannot run CTL command {shlex.join(cmd)}: {e}", pytrace=False)
    if check and result.returncode != 0:
        raise AssertionError(
            f"`{shlex.join(cmd)}` exited with {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


def ctl_json(*args):
    """Run a list command with ``--formatter json`` and return the parsed output."""
    result = ctl(*args, "--formatter", "json")
    try:
        return json.loads(result.stdout)
    except ValueError:
        raise AssertionError(
            f"CTL {' '.join(args)} --formatter json printed no valid JSON:\n{result.stdout!r}"
        ) from None


def short_uid(prefix):
    """A unique lower-case name, short enough to keep 403 reply texts well below
    255 bytes (and free of upper-case letters, which permission tests use)."""
    return f"wt-{prefix}-{uuid.uuid4().hex[:12]}"


def access_params(user, password, vhost, **overrides):
    """Connection parameters for ``user``/``password`` on ``vhost``."""
    return params(
        virtual_host=vhost, credentials=pika.PlainCredentials(user, password), **overrides
    )


class Access:
    """Users and vhosts created through CTL; every one is deleted at teardown."""

    def __init__(self):
        self.users = []
        self.vhosts = []
        self.connections = []

    def user(self, password=None, tags=()):
        """Create a user; returns (name, password)."""
        name = short_uid("u")
        if password is None:
            password = "pw-" + uuid.uuid4().hex
        ctl("add_user", name, password)
        self.users.append(name)
        if tags:
            ctl("set_user_tags", name, *tags)
        return name, password

    def vhost(self, admin=True):
        """Create a vhost; with ``admin`` the AMQP_URL user gets .* .* .* in it."""
        name = short_uid("v")
        ctl("add_vhost", name)
        self.vhosts.append(name)
        if admin:
            self.grant(BROKER_USER, name)
        return name

    def grant(self, user, vhost, configure=".*", write=".*", read=".*"):
        ctl("set_permissions", "-p", vhost, user, configure, write, read)

    def setup(self, configure=".*", write=".*", read=".*", admin=True):
        """A new vhost and a new user with the given permissions in it;
        returns (user, password, vhost)."""
        vhost = self.vhost(admin=admin)
        user, password = self.user()
        self.grant(user, vhost, configure, write, read)
        return user, password, vhost

    def connect(self, user, password, vhost, **overrides):
        """A BlockingConnection as ``user`` on ``vhost`` (closed at teardown)."""
        c = pika.BlockingConnection(access_params(user, password, vhost, **overrides))
        self.connections.append(c)
        return c

    def admin(self, vhost):
        """A BlockingConnection as the AMQP_URL user on ``vhost``."""
        return self.connect(BROKER_USER, BROKER_PASSWORD, vhost)

    def cleanup(self):
        for c in self.connections:
            try:
                if c.is_open:
                    c.close()
            except Exception:
                pass
        for user in self.users:
            try:
                ctl("delete_user", user, check=False)
            except Exception:
                pass
        for vhost in self.vhosts:
            try:
                ctl("delete_vhost", vhost, check=False)
            except Exception:
                pass


@pytest.fixture
def access():
    a = Access()
    yield a
    a.cleanup()


@pytest.fixture(scope="module")
def access_module():
    """Like ``access`` but shared by a module (for setups many tests read)."""
    a = Access()
    yield a
    a.cleanup()


# --------------------------------------------------------------------------
# a Warren of the test's own (Warren-only tests that need their own settings)
# --------------------------------------------------------------------------


def start_own_warren(work, port, config, wait_port=None, name="warren"):
    """Starts WARREN_BIN (set by scripts/test.sh; the test is skipped without it) on 127.0.0.1
    ``port`` with the TOML file ``config`` and a data directory under ``work``; returns
    (process, log file) once ``wait_port`` (default ``port``) accepts connections."""
    binary = os.environ.get("WARREN_BIN")
    if not binary:
        pytest.skip("needs WARREN_BIN to start a Warren of its own")
    log = open(os.path.join(work, f"{name}.log"), "wb")
    proc = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port),
         "--data-dir", os.path.join(work, f"{name}-data"), "--config", config],
        stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + WAIT
    while True:
        try:
            socket.create_connection(("127.0.0.1", wait_port or port), timeout=1).close()
            return proc, log
        except OSError:
            assert proc.poll() is None, open(log.name).read()
            assert time.monotonic() < deadline, "warren did not start listening"
            time.sleep(0.05)  # polling for the listener, bounded by the deadline


def stop_own_warren(proc, log):
    """Stops what start_own_warren started."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


# --------------------------------------------------------------------------
# a broker of the test's own, described by a rabbitmq.conf text: a Warren, or a RabbitMQ node
# when the broker under test is RabbitMQ (differential tests of node settings such as TLS)
# --------------------------------------------------------------------------

import shutil  # noqa: E402
import tempfile  # noqa: E402

_own_kind = None


def own_broker_kind():
    """"rabbitmq" or "warren": OWN_BROKER when set, else "rabbitmq" if the broker at AMQP_URL is
    RabbitMQ, else "warren"."""
    global _own_kind
    if _own_kind is None:
        env = os.environ.get("OWN_BROKER", "").strip().lower()
        if env:
            assert env in ("rabbitmq", "warren"), f"OWN_BROKER={env!r}: rabbitmq or warren"
            _own_kind = env
        else:
            _own_kind = "rabbitmq" if _is_rabbitmq() else "warren"
    return _own_kind


def _conf_ports(conf_text, prefix):
    """The ports of the ``prefix.*`` listener entries (``PORT`` or ``IP:PORT``) of a conf text."""
    ports = []
    for line in conf_text.splitlines():
        key, _, value = line.partition("=")
        if key.strip().startswith(prefix + ".") and value.strip() != "none":
            ports.append(int(value.strip().rsplit(":", 1)[-1]))
    return ports


class OwnBroker:
    """A broker started by ``start_own_broker``: ``kind``, ``port`` (first listeners.tcp entry,
    or None), ``tls_port`` (first listeners.ssl entry, or None), ``ctl(...)``, ``log()``,
    ``stop()``."""

    def __init__(self, kind, conf_text, ctl_prefix, log_path, stopper):
        self.kind = kind
        self.conf_text = conf_text
        tcp, ssl_ = _conf_ports(conf_text, "listeners.tcp"), _conf_ports(conf_text, "listeners.ssl")
        self.port = tcp[0] if tcp else None
        self.tls_port = ssl_[0] if ssl_ else None
        self.ports = tcp + ssl_
        self._ctl_prefix = ctl_prefix
        self._log_path = log_path
        self._stopper = stopper

    def ctl(self, *args, check=True):
        """Runs a rabbitmqctl subcommand on this broker (``warren ctl --data-dir ...`` or
        ``rabbitmqctl -n NODE``); a non-zero status fails the test when ``check``."""
        cmd = self._ctl_prefix + [str(a) for a in args]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=CTL_TIMEOUT)
        if check and result.returncode != 0:
            raise AssertionError(
                f"`{shlex.join(cmd)}` exited with {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
        return result

    def add_user(self, name, password=None, vhost="/"):
        """A user with all permissions on ``vhost`` (a random password unless given)."""
        self.ctl("add_user", name, password or "pw-" + uuid.uuid4().hex)
        self.ctl("set_permissions", "-p", vhost, name, ".*", ".*", ".*")

    def log(self):
        """The broker's log so far."""
        try:
            with open(self._log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self):
        if self._stopper is not None:
            stopper, self._stopper = self._stopper, None
            stopper()


def _wait_listening(ports, alive, what):
    deadline = time.monotonic() + WAIT * 3
    for port in ports:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                alive()
                assert time.monotonic() < deadline, f"{what} did not start listening on {port}"
                time.sleep(0.05)  # polling for the listener, bounded by the deadline


def _start_own_warren_conf(work, conf_text, name):
    binary = os.environ.get("WARREN_BIN")
    if not binary:
        pytest.skip("needs WARREN_BIN (or RabbitMQ as the broker under test) to start a broker "
                    "of its own")
    base = tempfile.mkdtemp(prefix=f"{name}-", dir=work)
    conf = os.path.join(base, f"{name}.conf")
    with open(conf, "w") as f:
        f.write(conf_text)
    data = os.path.join(base, "data")
    log_path = os.path.join(base, f"{name}.log")
    log = open(log_path, "wb")
    proc = subprocess.Popen([binary, "--data-dir", data, "--config", conf],
                            stdout=log, stderr=subprocess.STDOUT)

    def stop():
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()

    broker = OwnBroker("warren", conf_text, [binary, "ctl", "--data-dir", data], log_path, stop)
    broker.pid = proc.pid

    def alive():
        if proc.poll() is not None:
            stop()
            raise AssertionError(f"warren exited with {proc.returncode}:\n{broker.log()}")

    _wait_listening(broker.ports, alive, "warren")
    return broker


RABBITMQ_PLUGINS = ["rabbitmq_auth_mechanism_ssl"]


def _start_own_rabbitmq(conf_text, name):
    if not shutil.which("rabbitmq-server") or not shutil.which("rabbitmqctl"):
        pytest.skip("needs rabbitmq-server and rabbitmqctl to start a RabbitMQ node of its own")
    # The node runs as the rabbitmq OS user: everything it reads or writes lives in a directory
    # anyone can use.
    base = tempfile.mkdtemp(prefix=f"warren-{name}-", dir="/var/tmp")
    os.chmod(base, 0o777)
    node = f"{name}-{uuid.uuid4().hex[:8]}@localhost"
    conf = os.path.join(base, "rabbitmq.conf")
    with open(conf, "w") as f:
        f.write(conf_text)
    plugins = os.path.join(base, "enabled_plugins")
    with open(plugins, "w") as f:
        f.write(f"[{','.join(RABBITMQ_PLUGINS)}].\n")
    for d in ("mnesia", "log"):
        os.mkdir(os.path.join(base, d))
    for root, dirs, files in os.walk(base):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o777)
        for f in files:
            os.chmod(os.path.join(root, f), 0o666)
    tcp = _conf_ports(conf_text, "listeners.tcp")
    env = dict(
        os.environ,
        RABBITMQ_NODENAME=node,
        RABBITMQ_NODE_PORT=str(tcp[0] if tcp else free_port()),
        RABBITMQ_DIST_PORT=str(free_port()),
        RABBITMQ_CONFIG_FILE=conf,
        RABBITMQ_ADVANCED_CONFIG_FILE=os.path.join(base, "advanced.config"),
        RABBITMQ_ENABLED_PLUGINS_FILE=plugins,
        RABBITMQ_MNESIA_BASE=os.path.join(base, "mnesia"),
        RABBITMQ_LOG_BASE=os.path.join(base, "log"),
    )
    ctl_prefix = ["rabbitmqctl", "-n", node]
    log_path = os.path.join(base, "log", f"{node}.log")
    # In the foreground (not -detached), so that a node that fails to boot is seen at once and
    # its console output kept.
    out_path = os.path.join(base, "server.out")
    out = open(out_path, "wb")
    proc = subprocess.Popen(["rabbitmq-server"], env=env, stdin=subprocess.DEVNULL, stdout=out,
                            stderr=subprocess.STDOUT)

    def output():
        with open(out_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop():
        if proc.poll() is None:
            subprocess.run(ctl_prefix + ["stop"], capture_output=True, timeout=CTL_TIMEOUT)
            try:
                proc.wait(timeout=CTL_TIMEOUT)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"RabbitMQ node {node} did not stop") from None
        out.close()
        shutil.rmtree(base, ignore_errors=True)

    broker = OwnBroker("rabbitmq", conf_text, ctl_prefix, log_path, stop)

    def alive():
        if proc.poll() is not None:
            text = f"{output()}\n{broker.log()}"
            stop()
            raise AssertionError(f"RabbitMQ node {node} exited with {proc.returncode}:\n{text}")

    deadline = time.monotonic() + 120
    while True:
        alive()
        waited = subprocess.run(ctl_prefix + ["await_startup", "--timeout", "10"],
                                capture_output=True, text=True, timeout=CTL_TIMEOUT)
        if waited.returncode == 0:
            break
        if time.monotonic() > deadline:
            text = f"{output()}\n{broker.log()}"
            stop()
            raise AssertionError(f"RabbitMQ node {node} did not start: {waited.stdout}"
                                 f"{waited.stderr}\n{text}")
        time.sleep(0.2)  # polling for the node, bounded by the deadline

    _wait_listening(broker.ports, alive, f"RabbitMQ node {node}")
    return broker


def start_own_broker(work, conf_text, name="own"):
    """Starts a broker of the test's own configured by the rabbitmq.conf text ``conf_text``
    (whose ``listeners.tcp.*`` / ``listeners.ssl.*`` entries give its ports, e.g.
    ``127.0.0.1:PORT`` with ports from ``free_port``): a RabbitMQ node when the broker under test
    is RabbitMQ (or OWN_BROKER=rabbitmq; files it reads must be readable by the rabbitmq user),
    else WARREN_BIN with ``--config NAME.conf`` and a data directory under ``work``. Skips the
    test when neither can be started. Returns an ``OwnBroker`` once every listener accepts
    connections; call its ``stop()``."""
    if own_broker_kind() == "rabbitmq":
        return _start_own_rabbitmq(conf_text, name)
    return _start_own_warren_conf(work, conf_text, name)
