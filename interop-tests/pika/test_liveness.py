"""Slow and dead peers: heartbeats both ways, the missed-heartbeat timeout, and the handshake timeout.

Each test waits for an event (a frame, or the socket closing) with a deadline; none sleeps as a
way to synchronise.  All were checked against RabbitMQ 3.10.8.
"""
import socket
import time

from conftest import FRAME_HEARTBEAT, PROTOCOL_HEADER, RawAMQP


def test_server_sends_heartbeats_at_the_negotiated_interval():
    r = RawAMQP().handshake(heartbeat=1)
    try:
        deadline = time.monotonic() + 5
        seen = False
        while time.monotonic() < deadline and not seen:
            # Keep our side alive so that the server keeps the connection open.
            r.send_frame(FRAME_HEARTBEAT, 0, b"")
            r.sock.settimeout(0.5)
            try:
                frame = r.read_frame()
            except socket.timeout:
                continue
            assert frame is not None, "server closed a connection whose client sent heartbeats"
            seen = frame[0] == FRAME_HEARTBEAT and frame[1] == 0
        assert seen, "no heartbeat from the server within 5 s at a 1 s interval"
    finally:
        r.close()


def test_silent_client_is_disconnected_after_missed_heartbeats():
    r = RawAMQP().handshake(heartbeat=1)
    try:
        started = time.monotonic()
        # Send nothing at all: the server must give up on us after about two intervals.
        assert r.wait_eof(timeout=10), "server kept a silent connection open"
        assert time.monotonic() - started >= 1.0
    finally:
        r.close()


def test_client_heartbeats_keep_an_idle_connection_open():
    r = RawAMQP().handshake(heartbeat=1)
    try:
        end = time.monotonic() + 3.5
        while time.monotonic() < end:
            r.send_frame(FRAME_HEARTBEAT, 0, b"")
            r.sock.settimeout(0.4)
            try:
                frame = r.read_frame()
            except socket.timeout:
                continue
            assert frame is not None, "connection closed although the client sent heartbeats"
        r.open_channel(1)
    finally:
        r.close()


def test_unfinished_handshake_is_dropped():
    """RabbitMQ's handshake_timeout is 10 s; Warren uses the same default."""
    r = RawAMQP(timeout=20)
    try:
        r.send(PROTOCOL_HEADER)
        m = r.read_method()
        assert m is not None and m[1:3] == (10, 10)
        started = time.monotonic()
        # Never answer connection.start.
        assert r.wait_eof(timeout=20), "an unfinished handshake was kept open"
        assert time.monotonic() - started >= 5
    finally:
        r.close()
