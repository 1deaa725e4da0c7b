"""amqps: TLS listeners (RabbitMQ's listeners.ssl and ssl_options) and SASL EXTERNAL (the
rabbitmq_auth_mechanism_ssl plugin: the user is named by the client certificate), with
certificates made by the test (openssl). pika connects with ``ssl_options``; connection.start and
start-ok are also read and written by hand to see the mechanisms offered and the exact refusals.

Each broker is described by a rabbitmq.conf text and started by ``start_own_broker``: a Warren
(WARREN_BIN) or, when the broker under test is RabbitMQ (or OWN_BROKER=rabbitmq), a RabbitMQ node
of its own with rabbitmq_auth_mechanism_ssl enabled. Observed on RabbitMQ 3.10.8: see
docs/rabbitmq-external-tls-observed.md.
"""

import os
import shutil
import signal
import ssl
import struct
import subprocess
import tempfile
import time

import pika
import pika.credentials
import pika.exceptions
import pytest

from conftest import (
    PROTOCOL_HEADER, WAIT, RawAMQP, free_port, longstr, shortstr, start_own_broker, table, uid,
)

REFUSED_EXTERNAL = ("ACCESS_REFUSED - Login was refused using authentication mechanism EXTERNAL. "
                    "For details see the broker logfile.")

# The client certificate most tests present, and the user names RabbitMQ takes from it.
CLIENT_SUBJECT = "/C=GB/O=Warren, Test/OU=Interop/CN=tls-client"
CLIENT_DN = r"CN=tls-client,OU=Interop,O=Warren\, Test,C=GB"
CLIENT_SANS = ("DNS:client-1.example,DNS:client-2.example,email:tls-client@example.com,"
               "URI:urn:warren:tls-client")


# --------------------------------------------------------------------------
# certificates
# --------------------------------------------------------------------------


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


CA_CONF = """[ca]
default_ca = test_ca
[test_ca]
database = ca-db/index.txt
serial = ca-db/serial
new_certs_dir = ca-db
default_md = sha256
policy = any_name
copy_extensions = none
[any_name]
commonName = supplied
[client_ext]
extendedKeyUsage = clientAuth
"""


def make_certs(d):
    """A CA; a server certificate for 127.0.0.1/localhost; client certificates signed by the CA
    (client: the usual one, with a DN that needs escaping and SANs of several types; nobody: a
    user no broker knows, with one DNS SAN; noperm: a user without permissions; expired: valid
    in 2020 only); a client certificate from another CA (stranger)."""
    for ca in ("ca", "otherca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-subj", f"/CN=warren-test-{ca}", "-keyout", f"{ca}.key", "-out", f"{ca}.pem", cwd=d)
    # Extensions make X.509 v3 certificates (rustls, like any modern stack, refuses v1).
    exts = {
        "server": "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        "client": f"extendedKeyUsage=clientAuth\nsubjectAltName={CLIENT_SANS}\n",
        "nobody": "extendedKeyUsage=clientAuth\nsubjectAltName=DNS:nobody.example\n",
        "noperm": "extendedKeyUsage=clientAuth\n",
        "stranger": "extendedKeyUsage=clientAuth\n",
    }
    subjects = {"client": CLIENT_SUBJECT}
    for name, ext in exts.items():
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write(ext)
        ca = "otherca" if name == "stranger" else "ca"
        subject = subjects.get(name, f"/CN=tls-{name}")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject,
                "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext",
                cwd=d)
    # An expired certificate: `openssl ca` takes explicit validity dates (OpenSSL 3.0's x509 has
    # no -not_before/-not_after).
    os.mkdir(os.path.join(d, "ca-db"))
    with open(os.path.join(d, "ca-db", "index.txt"), "w"):
        pass
    with open(os.path.join(d, "ca-db", "serial"), "w") as f:
        f.write("1000\n")
    with open(os.path.join(d, "ca.cnf"), "w") as f:
        f.write(CA_CONF)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=tls-expired",
            "-keyout", "expired.key", "-out", "expired.csr", cwd=d)
    openssl("ca", "-batch", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca.key",
            "-in", "expired.csr", "-out", "expired.pem", "-notext", "-extensions", "client_ext",
            "-startdate", "20200101000000Z", "-enddate", "20200102000000Z", cwd=d)


@pytest.fixture(scope="module")
def certs():
    # Under /var/tmp and readable by all: a RabbitMQ node reads them as the rabbitmq user.
    d = tempfile.mkdtemp(prefix="warren-tls-", dir="/var/tmp")
    make_certs(d)
    os.chmod(d, 0o755)
    for f in os.listdir(d):
        if os.path.isfile(os.path.join(d, f)):
            os.chmod(os.path.join(d, f), 0o644)
    yield d
    shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------
# brokers
# --------------------------------------------------------------------------

ALL_MECHANISMS = ("auth_mechanisms.1 = PLAIN\nauth_mechanisms.2 = AMQPLAIN\n"
                  "auth_mechanisms.3 = EXTERNAL\n")


def tls_conf(certs, verify="verify_peer", fail_if_no_peer_cert="false", extra=""):
    """A rabbitmq.conf with a plain and a TLS listener on fresh ports."""
    return (
        f"listeners.tcp.default = 127.0.0.1:{free_port()}\n"
        f"listeners.ssl.default = 127.0.0.1:{free_port()}\n"
        f"ssl_options.cacertfile = {certs}/ca.pem\n"
        f"ssl_options.certfile = {certs}/server.pem\n"
        f"ssl_options.keyfile = {certs}/server.key\n"
        f"ssl_options.verify = {verify}\n"
        f"ssl_options.fail_if_no_peer_cert = {fail_if_no_peer_cert}\n"
        + extra
    )


@pytest.fixture(scope="module")
def tls_broker(certs):
    """Server certificate only (verify_none); EXTERNAL among the mechanisms."""
    b = start_own_broker(certs, tls_conf(certs, "verify_none", extra=ALL_MECHANISMS), "tls")
    yield b
    b.stop()


@pytest.fixture(scope="module")
def mtls_broker(certs):
    """verify_peer with fail_if_no_peer_cert: clients must present a certificate of the CA.
    auth_mechanisms left at their default (PLAIN, AMQPLAIN)."""
    b = start_own_broker(certs, tls_conf(certs, "verify_peer", "true"), "mtls")
    yield b
    b.stop()


@pytest.fixture(scope="module")
def ext_broker(certs):
    """verify_peer without fail_if_no_peer_cert; PLAIN, AMQPLAIN and EXTERNAL; EXTERNAL takes the
    subject's distinguished name (ssl_cert_login_from's default)."""
    b = start_own_broker(certs, tls_conf(certs, extra=ALL_MECHANISMS), "ext")
    yield b
    b.stop()


@pytest.fixture(scope="module")
def ext_only_broker(certs):
    """auth_mechanisms.1 = EXTERNAL only."""
    b = start_own_broker(certs, tls_conf(certs, extra="auth_mechanisms.1 = EXTERNAL\n"), "extonly")
    yield b
    b.stop()


# (settings, the user name the client certificate gives)
LOGIN_FROM = {
    "common_name": ("ssl_cert_login_from = common_name\n", "tls-client"),
    "san_dns_index_1": ("ssl_cert_login_from = subject_alternative_name\n"
                        "ssl_cert_login_san_type = dns\nssl_cert_login_san_index = 1\n",
                        "client-2.example"),
    "san_email": ("ssl_cert_login_from = subject_alternative_name\n"
                  "ssl_cert_login_san_type = email\n", "tls-client@example.com"),
    "san_uri": ("ssl_cert_login_from = subject_alternative_name\n"
                "ssl_cert_login_san_type = uri\nssl_cert_login_san_index = 0\n",
                "urn:warren:tls-client"),
}


@pytest.fixture(scope="module", params=sorted(LOGIN_FROM))
def login_broker(request, certs):
    """A broker whose EXTERNAL takes the user name from another part of the certificate;
    yields (broker, the name the client certificate gives)."""
    settings, name = LOGIN_FROM[request.param]
    b = start_own_broker(certs, tls_conf(certs, extra=ALL_MECHANISMS + settings),
                         f"login-{request.param.replace('_', '-')}")
    yield b, name
    b.stop()


# --------------------------------------------------------------------------
# clients
# --------------------------------------------------------------------------


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


def external(port, ctx, **kw):
    """pika over TLS logging in with SASL EXTERNAL."""
    return pika.BlockingConnection(tls_params(
        port, ctx, credentials=pika.credentials.ExternalCredentials(), socket_timeout=WAIT, **kw))


def round_trip(conn, user_id=None):
    """Publish and get back a message; with ``user_id`` the message carries it, which the broker
    accepts only from the connection's own user (so this proves who the connection is)."""
    ch = conn.channel()
    q = uid("tls")
    ch.queue_declare(q, exclusive=True)
    ch.basic_publish("", q, b"over tls", pika.BasicProperties(user_id=user_id))
    m, props, body = ch.basic_get(q, auto_ack=True)
    assert body == b"over tls", m
    assert props.user_id == user_id
    ch.close()


class Raw(RawAMQP):
    """RawAMQP over TLS when given a context (EOF and TLS alerts read as the end of the stream)."""

    def __init__(self, port, ctx=None):
        super().__init__("127.0.0.1", port)
        if ctx is not None:
            self.sock = ctx.wrap_socket(self.sock, server_hostname="localhost")

    def _recv_exact(self, n):
        try:
            return super()._recv_exact(n)
        except (ssl.SSLError, ConnectionError):
            out, self.buf = self.buf, b""
            return out

    def at_eof(self):
        try:
            return super().at_eof()
        except (ssl.SSLError, ConnectionError):
            return True

    def start(self):
        """Sends the protocol header; returns connection.start's mechanisms (a list)."""
        self.send(PROTOCOL_HEADER)
        m = self.read_method()
        assert m is not None and m[1:3] == (10, 10), m
        args = m[3]
        off = 2 + 4 + struct.unpack(">I", args[2:6])[0]  # version, server-properties
        size = struct.unpack(">I", args[off:off + 4])[0]
        return args[off + 4:off + 4 + size].decode().split()

    def start_ok(self, mechanism, response=b"", close_capability=True):
        caps = {"authentication_failure_close": True} if close_capability else {}
        self.send_method(0, 10, 11, table({"product": "warren-tls-test", "capabilities": caps})
                         + shortstr(mechanism) + longstr(response) + shortstr("en_US"))

    def open(self, vhost="/"):
        """After a successful start-ok: tune-ok and connection.open; returns the reply method."""
        m = self.read_method()
        assert m is not None and m[1:3] == (10, 30), m  # connection.tune
        self.send_method(0, 10, 31, m[3][:8])
        self.send_method(0, 10, 40, shortstr(vhost) + shortstr("") + b"\x00")
        return self.read_method()


def mechanisms(port, ctx=None):
    r = Raw(port, ctx)
    try:
        return r.start()
    finally:
        r.close()


def login(port, ctx, mechanism="EXTERNAL", response=b"", close_capability=True):
    """A Raw connection that has sent start-ok."""
    r = Raw(port, ctx)
    r.start()
    r.start_ok(mechanism, response, close_capability)
    return r


def assert_refused_with_close(r, text=REFUSED_EXTERNAL):
    try:
        assert r.expect_connection_close() == (403, text, 0, 0)
        assert r.wait_eof()
    finally:
        r.close()


def assert_dropped_without_close(r):
    """The broker closes the socket without a connection.close."""
    try:
        assert r.read_method() is None
    finally:
        r.close()


# --------------------------------------------------------------------------
# TLS
# --------------------------------------------------------------------------


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3],
                         ids=["tls1.2", "tls1.3"])
def test_pika_over_tls(certs, tls_broker, version):
    conn = pika.BlockingConnection(tls_params(tls_broker.tls_port, context(certs, version=version)))
    assert isinstance(conn._impl._transport._sock, ssl.SSLSocket)
    assert conn._impl._transport._sock.version() == {
        ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
    round_trip(conn)
    conn.close()


def test_plain_client_on_tls_port_and_tls_client_on_plain_port_fail_cleanly(certs, tls_broker):
    port, tls_port = tls_broker.port, tls_broker.tls_port
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


def test_client_rejects_a_server_it_does_not_trust(certs, tls_broker):
    ctx = ssl.create_default_context(cafile=os.path.join(certs, "otherca.pem"))
    with pytest.raises((pika.exceptions.AMQPConnectionError, ssl.SSLError)):
        pika.BlockingConnection(tls_params(tls_broker.tls_port, ctx))


def test_mutual_tls(certs, mtls_broker):
    tls_port = mtls_broker.tls_port
    conn = pika.BlockingConnection(tls_params(tls_port, context(certs, client="client")))
    round_trip(conn)
    # No client certificate, or one from a CA the broker does not trust: refused.
    for ctx in (context(certs), context(certs, client="stranger")):
        with pytest.raises((pika.exceptions.AMQPConnectionError, ssl.SSLError)):
            pika.BlockingConnection(tls_params(tls_port, ctx, socket_timeout=WAIT))
    assert conn.is_open
    round_trip(conn)
    conn.close()


def test_mutual_tls_refuses_an_expired_client_certificate(certs, mtls_broker):
    tls_port = mtls_broker.tls_port
    conn = pika.BlockingConnection(tls_params(tls_port, context(certs, client="client")))
    # The CA signed it, but its validity ended in 2020. (With TLS 1.3 the client may finish its
    # side of the handshake before the server's alert arrives: the refusal comes at the first
    # read.)
    with pytest.raises((pika.exceptions.AMQPConnectionError, ssl.SSLError)):
        pika.BlockingConnection(tls_params(tls_port, context(certs, client="expired"),
                                           socket_timeout=WAIT))
    assert conn.is_open
    round_trip(conn)
    conn.close()
    again = pika.BlockingConnection(tls_params(tls_port, context(certs, client="client")))
    round_trip(again)
    again.close()


# --------------------------------------------------------------------------
# SASL EXTERNAL
# --------------------------------------------------------------------------


def test_mechanisms_offered_on_each_listener(certs, ext_broker, ext_only_broker, mtls_broker,
                                             tls_broker):
    # RabbitMQ lists the configured mechanisms in its registry's order (which differs from one
    # node start to the next), so the lists are compared as sets. EXTERNAL is offered on TLS
    # connections only, with or without a client certificate.
    b = ext_broker
    assert sorted(mechanisms(b.port)) == ["AMQPLAIN", "PLAIN"]
    for ctx in (context(certs), context(certs, "client")):
        assert sorted(mechanisms(b.tls_port, ctx)) == ["AMQPLAIN", "EXTERNAL", "PLAIN"]
    # verify_none: offered too (the client is never asked for its certificate).
    assert sorted(mechanisms(tls_broker.tls_port, context(certs, "client"))) == [
        "AMQPLAIN", "EXTERNAL", "PLAIN"]
    # Only EXTERNAL configured: nothing at all on the plain listener.
    assert mechanisms(ext_only_broker.port) == []
    assert mechanisms(ext_only_broker.tls_port, context(certs)) == ["EXTERNAL"]
    # Default auth_mechanisms (PLAIN, AMQPLAIN): no EXTERNAL even with a verified certificate.
    assert sorted(mechanisms(mtls_broker.tls_port, context(certs, "client"))) == [
        "AMQPLAIN", "PLAIN"]


def test_external_logs_in_as_the_distinguished_name(certs, ext_broker):
    # ssl_cert_login_from's default: the subject in RFC 4514 order (last RDN first), ",", and
    # "," inside a value escaped. A password does not stop EXTERNAL.
    ext_broker.add_user(CLIENT_DN)
    conn = external(ext_broker.tls_port, context(certs, "client"))
    round_trip(conn, user_id=CLIENT_DN)
    conn.close()


def test_external_logs_in_as_the_configured_name(certs, login_broker):
    broker, name = login_broker
    broker.add_user(name)
    conn = external(broker.tls_port, context(certs, "client"))
    round_trip(conn, user_id=name)
    conn.close()
    # A certificate without that name (or with no such user): refused.
    assert_refused_with_close(login(broker.tls_port, context(certs, "nobody")))


def test_external_refuses_an_unknown_user(certs, ext_broker):
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as info:
        external(ext_broker.tls_port, context(certs, "nobody"))
    assert REFUSED_EXTERNAL in str(info.value)
    assert_refused_with_close(login(ext_broker.tls_port, context(certs, "nobody")))
    # Without the authentication_failure_close capability: the socket is just closed.
    assert_dropped_without_close(login(ext_broker.tls_port, context(certs, "nobody"),
                                       close_capability=False))
    # The broker goes on serving.
    ok = pika.BlockingConnection(tls_params(ext_broker.tls_port, context(certs, "nobody")))
    round_trip(ok)
    ok.close()


def test_external_refuses_a_connection_without_a_client_certificate(certs, ext_broker, tls_broker):
    # verify_peer without fail_if_no_peer_cert: TLS is fine, EXTERNAL is not.
    assert_refused_with_close(login(ext_broker.tls_port, context(certs)))
    assert_dropped_without_close(login(ext_broker.tls_port, context(certs), close_capability=False))
    # verify_none: the server never asks for the certificate, so the client has none to give.
    assert_refused_with_close(login(tls_broker.tls_port, context(certs, "client")))


def test_external_user_without_permissions_is_refused_the_vhost(certs, ext_broker):
    ext_broker.ctl("add_user", "CN=tls-noperm", "pw-" + uid("noperm")[-12:])
    r = login(ext_broker.tls_port, context(certs, "noperm"))
    try:
        m = r.open("/")
        assert m is not None and m[1:3] == (10, 50), m
        code = struct.unpack(">H", m[3][:2])[0]
        text = m[3][3:3 + m[3][2]].decode()
        cls_meth = struct.unpack(">HH", m[3][3 + m[3][2]:7 + m[3][2]])
        assert (code, text, cls_meth) == (
            530, "NOT_ALLOWED - access to vhost '/' refused for user 'CN=tls-noperm'", (10, 40))
    finally:
        r.close()


def test_external_is_not_usable_on_the_plain_port(certs, ext_broker):
    # pika itself refuses: the server does not offer EXTERNAL there.
    with pytest.raises(pika.exceptions.AuthenticationError):
        pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", ext_broker.port, credentials=pika.credentials.ExternalCredentials(),
            connection_attempts=1, socket_timeout=WAIT))
    # Chosen anyway: RabbitMQ drops the connection without connection.close (a handshake error,
    # "invalid authentication mechanism 'EXTERNAL'" in its log), capability or not.
    assert_dropped_without_close(login(ext_broker.port, None))
    plain = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", ext_broker.port))
    round_trip(plain)
    plain.close()


def test_mechanism_not_configured_is_dropped(certs, ext_only_broker, mtls_broker):
    # Only EXTERNAL configured: PLAIN is refused by pika, and dropped when sent anyway.
    with pytest.raises(pika.exceptions.AuthenticationError):
        pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", ext_only_broker.port, connection_attempts=1, socket_timeout=WAIT))
    assert_dropped_without_close(
        login(ext_only_broker.tls_port, context(certs, "client"), "PLAIN", b"\0guest\0guest"))
    # Default mechanisms: EXTERNAL is not one, even over mutual TLS.
    assert_dropped_without_close(login(mtls_broker.tls_port, context(certs, "client")))
    # EXTERNAL still works where it is configured.
    ext_only_broker.add_user(CLIENT_DN)
    conn = external(ext_only_broker.tls_port, context(certs, "client"))
    round_trip(conn, user_id=CLIENT_DN)
    conn.close()


# --------------------------------------------------------------------------
# certificate reload (Warren's own: RabbitMQ 3.10 has no command for it; its operators call
# ssl:clear_pem_cache() through rabbitmqctl eval, or wait for the PEM cache's 2-minute check)
# --------------------------------------------------------------------------


def make_server_cert(d, name, cn):
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", "-extfile", "server.ext", cwd=d)


def served_cn(port, certs):
    """The common name of the certificate a new TLS connection gets."""
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as s:
        with context(certs).wrap_socket(s, server_hostname="localhost") as t:
            return dict(x[0] for x in t.getpeercert()["subject"])["commonName"]


def install(d, name):
    """Overwrites the files the broker was configured with (server.pem/.key) by ``name``'s."""
    for ext in ("pem", "key"):
        shutil.copyfile(os.path.join(d, f"{name}.{ext}"), os.path.join(d, f"live.{ext}"))


@pytest.mark.warren_only
def test_certificates_reload_without_dropping_connections(certs):
    d = tempfile.mkdtemp(prefix="warren-tls-reload-", dir="/var/tmp")
    try:
        for f in ("ca.pem", "ca.key"):
            shutil.copyfile(os.path.join(certs, f), os.path.join(d, f))
        make_server_cert(d, "first", "server-first")
        make_server_cert(d, "second", "server-second")
        install(d, "first")
        conf = (f"listeners.tcp.default = 127.0.0.1:{free_port()}\n"
                f"listeners.ssl.default = 127.0.0.1:{free_port()}\n"
                f"ssl_options.certfile = {d}/live.pem\nssl_options.keyfile = {d}/live.key\n")
        b = start_own_broker(d, conf, "reload")
        try:
            assert served_cn(b.tls_port, d) == "server-first"
            conn = pika.BlockingConnection(tls_params(b.tls_port, context(d)))
            round_trip(conn)

            # warren ctl: new sessions get the new certificate, the open connection stays.
            install(d, "second")
            assert served_cn(b.tls_port, d) == "server-first", "not before the reload"
            out = b.ctl("reload_tls_certificates")
            assert "Reloading TLS certificates" in out.stdout
            assert served_cn(b.tls_port, d) == "server-second"
            round_trip(conn)

            # A file that does not parse: refused, logged, the certificate in use stays.
            with open(os.path.join(d, "live.pem"), "w") as f:
                f.write("not a certificate\n")
            bad = b.ctl("reload_tls_certificates", check=False)
            assert bad.returncode != 0
            assert "the old certificates stay" in bad.stderr
            assert served_cn(b.tls_port, d) == "server-second"

            # SIGHUP does the same (handled asynchronously: poll, bounded).
            install(d, "first")
            os.kill(b.pid, signal.SIGHUP)
            deadline = time.monotonic() + WAIT
            while served_cn(b.tls_port, d) != "server-first":
                assert time.monotonic() < deadline, "SIGHUP did not reload the certificates"
                time.sleep(0.05)  # bounded polling for the signal's effect
            round_trip(conn)
            conn.close()
            log = b.log()
            assert "TLS certificates reloaded" in log
            assert "cannot reload TLS certificates, keeping the old ones" in log
        finally:
            b.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.warren_only
def test_certificate_expiration_health_check(certs):
    """The management API's certificate-expiration check reads the amqps certificate: the test
    CA's server certificate is valid for 2 days, so it expires within a week but not within a
    day. Warren only: the own RabbitMQ nodes of this suite run without the management plugin."""
    import base64
    import json
    import urllib.error
    import urllib.request

    mport = free_port()
    conf = tls_conf(certs, "verify_none",
                    extra=f"management.tcp.port = {mport}\nmanagement.tcp.ip = 127.0.0.1\n")
    b = start_own_broker(certs, conf, "certexp")
    try:
        token = base64.b64encode(b"guest:guest").decode()

        def check(within):
            req = urllib.request.Request(
                f"http://127.0.0.1:{mport}/api/health/checks/certificate-expiration/{within}",
                headers={"Authorization": f"Basic {token}"})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read())

        assert check("1/days") == (200, {"status": "ok"})
        status, body = check("1/weeks")
        assert status == 503
        assert body["status"] == "failed" and body["reason"] == "Certificates expiring"
        assert body["expired"][0]["certfile"].endswith("server.pem")
    finally:
        b.stop()
