//! Warren-only: lapin (rustls) over amqps to a Warren of its own with certificates made by rcgen:
//! server-authenticated TLS, mutual TLS with the EXTERNAL mechanism (the user named by the
//! client certificate's common name, `ssl_cert_login_from = common_name`), and a client
//! certificate from a CA the broker does not trust refused without disturbing the others.
//! (The pika suite's test_tls.py runs the same against RabbitMQ too.)

use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use std::path::{Path, PathBuf};

/// A CA and what it signed, as PEM.
struct Pki {
    ca_pem: String,
    dir: PathBuf,
}

fn ca(name: &str) -> (CertificateParams, KeyPair, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    (params, key, pem)
}

fn leaf(issuer: &Issuer<'_, KeyPair>, cn: &str, sans: &[&str], client: bool) -> (String, String) {
    let mut params =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "warren-tests");
    if client {
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    }
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn pki(name: &str) -> Pki {
    let dir = std::env::temp_dir().join(format!("warren-lapin-tls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (ca_params, ca_key, ca_pem) = ca("warren-test-ca");
    let issuer = Issuer::new(ca_params, ca_key);
    let (server, server_key) = leaf(&issuer, "localhost", &["localhost", "127.0.0.1"], false);
    let (client, client_key) = leaf(&issuer, "lapin-tls-user", &[], true);
    let (o_params, o_key, _) = ca("warren-test-other-ca");
    let other = Issuer::new(o_params, o_key);
    let (stranger, stranger_key) = leaf(&other, "lapin-tls-user", &[], true);
    for (file, text) in [
        ("ca.pem", &ca_pem),
        ("server.pem", &server),
        ("server.key", &server_key),
        ("client.pem", &client),
        ("client.key", &client_key),
        ("stranger.pem", &stranger),
        ("stranger.key", &stranger_key),
    ] {
        std::fs::write(dir.join(file), text).unwrap();
    }
    Pki { ca_pem, dir }
}

fn identity(dir: &Path, name: &str) -> OwnedIdentity {
    OwnedIdentity::PKCS8 {
        pem: std::fs::read(dir.join(format!("{name}.pem"))).unwrap(),
        key: std::fs::read(dir.join(format!("{name}.key"))).unwrap(),
    }
}

/// A Warren with an amqps listener on 127.0.0.1 from this rabbitmq.conf text; returns its
/// amqps address and the server (for its broker).
async fn start(pki: &Pki, extra: &str) -> std::net::SocketAddr {
    let d = pki.dir.display();
    let conf = pki.dir.join("rabbitmq.conf");
    std::fs::write(
        &conf,
        format!(
            "listeners.tcp.default = 127.0.0.1:0\n\
             listeners.ssl.default = 127.0.0.1:0\n\
             ssl_options.certfile = {d}/server.pem\n\
             ssl_options.keyfile = {d}/server.key\n\
             ssl_options.cacertfile = {d}/ca.pem\n{extra}"
        ),
    )
    .unwrap();
    let (mut config, ignored) = warren::Config::from_file(&conf).expect("parses");
    assert!(ignored.is_empty(), "{ignored:?}");
    config.data_dir = pki.dir.join("data");
    config.management_port = None;
    let server = warren::Server::bind(config).await.expect("bind");
    let addr = server.tls_local_addr().expect("an amqps listener");
    tokio::spawn(server.run(std::future::pending()));
    addr
}

async fn round_trip(conn: &Connection) {
    let ch = conn.create_channel().await.unwrap();
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    ch.basic_publish(
        "".into(),
        q.name().as_str().into(),
        BasicPublishOptions::default(),
        b"over amqps",
        BasicProperties::default(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let got = ch
        .basic_get(q.name().as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("the message");
    assert_eq!(got.delivery.data, b"over amqps");
}

#[tokio::test]
async fn warren_only_lapin_over_tls() {
    let pki = pki("server");
    let addr = start(&pki, "").await;
    let tls = OwnedTLSConfig {
        identity: None,
        cert_chain: Some(pki.ca_pem.clone()),
    };
    let conn = Connection::connect_with_config(
        &format!("amqps://guest:guest@localhost:{}/%2F", addr.port()),
        ConnectionProperties::default(),
        tls,
        lapin::runtime::default_runtime().unwrap(),
    )
    .await
    .expect("lapin connects over TLS, trusting the test CA");
    round_trip(&conn).await;
    // A client that does not trust the server's CA refuses it.
    let untrusted = Connection::connect_with_config(
        &format!("amqps://guest:guest@localhost:{}/%2F", addr.port()),
        ConnectionProperties::default(),
        OwnedTLSConfig {
            identity: None,
            cert_chain: Some(ca("someone-else").2),
        },
        lapin::runtime::default_runtime().unwrap(),
    )
    .await;
    assert!(untrusted.is_err());
    round_trip(&conn).await;
}

#[tokio::test]
async fn warren_only_lapin_external_over_mutual_tls() {
    let pki = pki("external");
    let addr = start(
        &pki,
        "ssl_options.verify = verify_peer\n\
         ssl_options.fail_if_no_peer_cert = true\n\
         auth_mechanisms.1 = EXTERNAL\n\
         auth_mechanisms.2 = PLAIN\n\
         ssl_cert_login_from = common_name\n\
         default_user = lapin-tls-user\n\
         default_pass = unused-by-external\n\
         loopback_users = none\n",
    )
    .await;
    let url = format!(
        "amqps://localhost:{}/%2F?auth_mechanism=external",
        addr.port()
    );
    let conn = Connection::connect_with_config(
        &url,
        ConnectionProperties::default(),
        OwnedTLSConfig {
            identity: Some(identity(&pki.dir, "client")),
            cert_chain: Some(pki.ca_pem.clone()),
        },
        lapin::runtime::default_runtime().unwrap(),
    )
    .await
    .expect("EXTERNAL logs in as the certificate's common name");
    round_trip(&conn).await;
    // The same name from a CA the broker does not trust: the TLS handshake fails.
    let stranger = Connection::connect_with_config(
        &url,
        ConnectionProperties::default(),
        OwnedTLSConfig {
            identity: Some(identity(&pki.dir, "stranger")),
            cert_chain: Some(pki.ca_pem.clone()),
        },
        lapin::runtime::default_runtime().unwrap(),
    )
    .await;
    assert!(stranger.is_err());
    round_trip(&conn).await;
}
