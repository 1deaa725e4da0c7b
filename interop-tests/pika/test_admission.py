"""Admission limits that come with a network: ``connection_max`` (rabbitmq.conf), Warren's
``handshake_max`` (connections still in their handshake) and the handshake timeout against a
slowloris.

Warren only: each test starts a Warren of its own (WARREN_BIN) with the limit configured.
RabbitMQ 3.10.8 takes ``connection_max`` but its listener pools count it per acceptor, so a
node with ``connection_max = 2`` was observed serving 8 connections: not a limit a test can
share. Its effect beyond the limit is the same as Warren's: new clients wait unanswered.
"""

import os
import shutil
import socket
import tempfile
import time

import pika
import pytest

from conftest import (PROTOCOL_HEADER, WAIT, RawAMQP, free_port, start_own_warren,
                      stop_own_warren)

pytestmark = pytest.mark.warren_only


@pytest.fixture
def work():
    d = tempfile.mkdtemp(prefix="warren-admission-", dir="/var/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def start(work, conf_text, suffix):
    port = free_port()
    path = os.path.join(work, f"warren.{suffix}")
    with open(path, "w") as f:
        f.write(conf_text)
    proc, log = start_own_warren(work, port, path)
    return proc, log, port


def connect(port):
    return pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", port, connection_attempts=1, socket_timeout=WAIT))


def answered_within(sock, seconds):
    """True if the broker sent something (or closed) within ``seconds``."""
    sock.settimeout(seconds)
    try:
        sock.recv(1, socket.MSG_PEEK)
        return True
    except socket.timeout:
        return False


def test_connection_max_makes_new_clients_wait_until_one_closes(work):
    proc, log, port = start(work, "connection_max = 2\n", "conf")
    try:
        first, second = connect(port), connect(port)
        third = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        third.sendall(PROTOCOL_HEADER)
        # At the limit the broker does not take the third connection: no connection.start.
        assert not answered_within(third, 1.0)
        assert first.is_open and second.is_open
        first.close()
        # A slot is free: the waiting client is accepted and gets connection.start.
        raw = RawAMQP.__new__(RawAMQP)
        raw.sock, raw.buf = third, b""
        third.settimeout(WAIT)
        m = raw.read_method()
        assert m is not None and m[1:3] == (10, 10), m
        raw.close()
        second.close()
        # With both gone, two full connections fit again.
        a, b = connect(port), connect(port)
        a.close()
        b.close()
    finally:
        stop_own_warren(proc, log)
    assert "connection limit (2) reached" in open(log.name).read()


def test_handshake_max_closes_connections_beyond_it(work):
    proc, log, port = start(work, "handshake_max = 2\nhandshake_timeout = 30\n", "toml")
    try:
        # Two clients that get connection.start and then say nothing hold both handshake slots.
        # start() probed the port with a connection of its own whose slot is given back only
        # when the broker reads its EOF, so a client closed at once here met that probe's slot:
        # it is replaced until two clients hold a handshake each.
        idle = []
        deadline = time.monotonic() + WAIT
        while len(idle) < 2:
            s = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
            s.sendall(PROTOCOL_HEADER)
            raw = RawAMQP.__new__(RawAMQP)
            raw.sock, raw.buf = s, b""
            try:
                m = raw.read_method()
            except (ConnectionError, EOFError):
                m = None
            if m is not None and m[1:3] == (10, 10):
                idle.append(s)
            else:
                s.close()
                assert time.monotonic() < deadline, "the probe's handshake slot was not given back"
        # A third is closed at once: EOF, nothing sent.
        third = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        try:
            assert third.recv(1) == b""
        except ConnectionResetError:
            pass
        third.close()
        for s in idle:
            s.close()
        # Their slots are given back when their handshakes end; then full logins work.
        deadline = time.monotonic() + WAIT
        while True:
            try:
                c = connect(port)
                break
            except pika.exceptions.AMQPConnectionError:
                assert time.monotonic() < deadline, "slots were not given back"
                time.sleep(0.05)  # bounded polling for the broker to notice the closed sockets
        # A logged-in connection holds no handshake slot: two more handshakes fit beside it.
        d, e = connect(port), connect(port)
        for x in (c, d, e):
            x.close()
    finally:
        stop_own_warren(proc, log)
    assert "2 connections are in their handshake" in open(log.name).read()


def test_slowloris_is_dropped_by_the_handshake_timeout(work):
    proc, log, port = start(work, "handshake_timeout = 1\n", "toml")
    try:
        slow = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        started = time.monotonic()
        closed = False
        # One byte every 0.2 s: the protocol header alone would take 1.6 s.
        for byte in PROTOCOL_HEADER * 4:
            try:
                slow.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if answered_within(slow, 0.2):
                data = slow.recv(64)
                if data == b"":
                    closed = True
                    break
        assert closed, "the slow client was not dropped"
        assert time.monotonic() - started < WAIT
        # Others are not disturbed.
        c = connect(port)
        c.close()
    finally:
        stop_own_warren(proc, log)
    assert "handshake timeout after 1s" in open(log.name).read()
