//! TLS for `amqps` listeners, on rustls (ring): the certificate chain and key from PEM files,
//! an optional CA bundle to verify clients against, TLS 1.2 and 1.3, and RabbitMQ's
//! `verify_peer` / `fail_if_no_peer_cert` semantics for mutual TLS. [`Certificates`] re-reads
//! the files on demand (SIGHUP, `warren ctl reload_tls_certificates`): new sessions get the new
//! certificates, established ones keep theirs.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use serde::Deserialize;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use tokio_rustls::TlsAcceptor;

/// The amqps listeners' acceptor, rebuilt from the files by [`Certificates::reload`].
pub(crate) struct Certificates {
    settings: TlsSettings,
    current: RwLock<TlsAcceptor>,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificates")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Certificates {
    /// Reads the files (blocking file reads: call it off the runtime's workers).
    pub(crate) fn load(settings: TlsSettings) -> io::Result<Self> {
        let current = RwLock::new(acceptor(&settings)?);
        Ok(Certificates { settings, current })
    }

    /// The acceptor for a new session.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The certificate file and when each certificate in it stops being valid (seconds since
    /// the Unix epoch), read from the file now (blocking). For the certificate-expiration
    /// health check.
    pub(crate) fn not_after(&self) -> io::Result<(PathBuf, Vec<i64>)> {
        let path = &self.settings.certfile;
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| read_err(path, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| read_err(path, e))?;
        let ends = chain
            .iter()
            .filter_map(|c| x509_parser::parse_x509_certificate(c.as_ref()).ok())
            .map(|(_, cert)| cert.validity().not_after.timestamp())
            .collect();
        Ok((path.clone(), ends))
    }

    /// Re-reads the files (blocking, as `load`). On an error the certificates in use stay.
    pub(crate) fn reload(&self) -> io::Result<()> {
        let fresh = acceptor(&self.settings)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }
}

/// The leaf certificate a TLS client presented (verified, when the listener asks for one).
pub(crate) fn peer_certificate<IO>(
    tls: &tokio_rustls::server::TlsStream<IO>,
) -> Option<CertificateDer<'static>> {
    tls.get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|c| c.clone().into_owned())
}

/// TLS settings (RabbitMQ's `ssl_options.*`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// The server's certificate chain (PEM).
    pub certfile: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub keyfile: PathBuf,
    /// CA certificates that client certificates are verified against (PEM).
    pub cacertfile: Option<PathBuf>,
    /// Ask clients for a certificate and verify it (`verify = verify_peer`).
    pub verify_peer: bool,
    /// With `verify_peer`, refuse clients that present none.
    pub fail_if_no_peer_cert: bool,
    /// Allowed versions (`tlsv1.2`, `tlsv1.3`); empty: both.
    pub versions: Vec<String>,
}

fn read_err(path: &Path, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{}: {e}", path.display()),
    )
}

/// Builds the acceptor from the files (read now: a missing or bad file is a start-up error).
fn acceptor(s: &TlsSettings) -> io::Result<TlsAcceptor> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&s.certfile)
        .map_err(|e| read_err(&s.certfile, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| read_err(&s.certfile, e))?;
    if chain.is_empty() {
        return Err(read_err(&s.certfile, "no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(&s.keyfile).map_err(|e| read_err(&s.keyfile, e))?;
    // ring, not aws-lc-rs: aws-lc builds C with cmake, which these machines lack. rustls marks
    // ring's provider deprecated for its missing post-quantum key exchange; TLS 1.2/1.3 with
    // classical key exchange is what RabbitMQ's clients use.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    for v in &s.versions {
        match v.as_str() {
            "tlsv1.2" => versions.push(&rustls::version::TLS12),
            "tlsv1.3" => versions.push(&rustls::version::TLS13),
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("TLS version '{other}' is not supported (tlsv1.2, tlsv1.3)"),
                ))
            }
        }
    }
    if versions.is_empty() {
        versions = vec![&rustls::version::TLS13, &rustls::version::TLS12];
    }
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(io::Error::other)?;
    let builder = if s.verify_peer {
        let Some(ca) = &s.cacertfile else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "verify_peer needs a cacertfile",
            ));
        };
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).map_err(|e| read_err(ca, e))? {
            roots
                .add(cert.map_err(|e| read_err(ca, e))?)
                .map_err(|e| read_err(ca, e))?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        let verifier = if s.fail_if_no_peer_cert {
            verifier
        } else {
            verifier.allow_unauthenticated()
        };
        builder.with_client_cert_verifier(verifier.build().map_err(io::Error::other)?)
    } else {
        builder.with_no_client_auth()
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| read_err(&s.certfile, e))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
