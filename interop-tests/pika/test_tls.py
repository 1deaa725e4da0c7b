"""amqps: TLS listeners (RabbitMQ's listeners.ssl and ssl_options), with certificates made by
the test (openssl). pika connects with ``ssl_options``.

Warren only: it starts Warrens of its own (WARREN_BIN, set by scripts/test.sh) configured for TLS;
RabbitMQ needs the same settings in its node configuration.
"""

import os
import shutil
import ssl
import subprocess
import tempfile

import pika
import pika.exceptions
import pytest

from conftest import WAIT, free_port, start_own_warren, stop_own_warren, uid

pytestmark = pytest.mark.warren_only


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certs(d):
    """A CA, a server certificate for 127.0.0.1/localhost, a client certificate (CN=tls-client)
    signed by it, and a client certificate from another CA."""
    for ca in ("ca", "otherca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-subj", f"/CN=warren-test-{ca}", "-keyout", f"{ca}.key", "-out", f"{ca}.pem", cwd=d)
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    # Extensions make X.509 v3 certificates (rustls, like any modern stack, refuses v1).
    with open(os.path.join(d, "client.ext"), "w") as f:
        f.write("extendedKeyUsage=clientAuth\n")
    for name, ca, ext in (("server", "ca", ["-extfile", "server.ext"]),
                          ("client", "ca", ["-extfile", "client.ext"]),
                          ("stranger", "otherca", ["-extfile", "client.ext"])):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN=tls-{name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", *ext, cwd=d)


def start_warren(work, tls_section):
    port, tls_port = free_port(), free_port()
    config = os.path.join(work, f"warren-{tls_port}.toml")
    with open(config, "w") as f:
        f.write(f'tls_listeners = ["127.0.0.1:{tls_port}"]\n[tls]\n{tls_section}')
    proc, log = start_own_warren(work, port, config, wait_port=tls_port, name=f"warren-{tls_port}")
    return proc, log, port, tls_port


@pytest.fixture(scope="module")
def certs():
    d = tempfile.mkdtemp(prefix="warren-tls-", dir="/var/tmp")
    make_certs(d)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def tls_warren(certs):
    """Server certificate only (verify_none)."""
    proc, log, port, tls_port = start_warren(
        certs, f'certfile = "{certs}/server.pem"\nkeyfile = "{certs}/server.key"\n')
    yield port, tls_port
    stop_own_warren(proc, log)


@pytest.fixture(scope="module")
def mtls_warren(certs):
    """verify_peer with fail_if_no_peer_cert: clients must present a certificate of the CA."""
    proc, log, port, tls_port = start_warren(
        certs,
        f'certfile = "{certs}/server.pem"\nkeyfile = "{certs}/server.key"\n'
        f'cacertfile = "{certs}/ca.pem"\nverify_peer = true\nfail_if_no_peer_cert = true\n')
    yield port, tls_port
    stop_own_warren(proc, log)


def context(certs, client=None, version=None):
    ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
    if client:
        ctx.load_cert_chain(os.path.join(certs, f"{client}.pem"), os.path.join(certs, f"{client}.key"))
    if version:
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


def tls_params(port, ctx, **kw):
    return pika.ConnectionParameters(
        "127.0.0.1", port, ssl_options=pika.SSLOptions(ctx, "localhost"),
        connection_attempts=1, **kw)


def round_trip(conn):
    ch = conn.channel()
    q = uid("tls")
    ch.queue_declare(q, exclusive=True)
    ch.basic_publish("", q, b"over tls")
    m, _, body = ch.basic_get(q, auto_ack=True)
    assert body == b"over tls", m


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_pika_over_tls(certs, tls_warren, version):
    _, tls_port = tls_warren
    conn = pika.BlockingConnection(tls_params(tls_port, context(certs, version=version)))
    assert isinstance(conn._impl._transport._sock, ssl.SSLSocket)
    assert conn._impl._transport._sock.version() == {
        ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
    round_trip(conn)
    conn.close()


def test_plain_client_on_tls_port_and_tls_client_on_plain_port_fail_cleanly(certs, tls_warren):
    port, tls_port = tls_warren
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", tls_port, connection_attempts=1, socket_timeout=WAIT))
    # The plain listener answers the ClientHello with AMQP's protocol header and closes: pika
    # reports the TLS error as it is.
    with pytest.raises((pika.exceptions.AMQPConnectionError, ssl.SSLError)):
        pika.BlockingConnection(tls_params(port, context(certs), socket_timeout=WAIT))
    # Nothing else is disturbed: both listeners still serve their own kind.
    conn = pika.BlockingConnection(tls_params(tls_port, context(certs)))
    round_trip(conn)
    conn.close()
    plain = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    round_trip(plain)
    plain.close()


def test_client_rejects_a_server_it_does_not_trust(certs, tls_warren):
    _, tls_port = tls_warren
    ctx = ssl.create_default_context(cafile=os.path.join(certs, "otherca.pem"))
    with pytest.raises((pika.exceptions.AMQPConnectionError, ssl.SSLError)):
        pika.BlockingConnection(tls_params(tls_port, ctx))


def test_mutual_tls(certs, mtls_warren):
    _, tls_port = mtls_warren
    conn = pika.BlockingConnection(tls_params(tls_port, context(certs, client="client")))
    round_trip(conn)
    # No client certificate, or one from a CA the broker does not trust: refused.
    for ctx in (context(certs), context(certs, client="stranger")):
        with pytest.raises((pika.exceptions.AMQPConnectionError, ssl.SSLError)):
            pika.BlockingConnection(tls_params(tls_port, ctx, socket_timeout=WAIT))
    assert conn.is_open
    round_trip(conn)
    conn.close()
