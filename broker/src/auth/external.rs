//! SASL `EXTERNAL`: the user is the one a verified TLS client certificate names, as RabbitMQ's
//! `rabbitmq_auth_mechanism_ssl` takes it (`ssl_cert_login_from`: the subject's distinguished
//! name, its common name, or a subject alternative name of a given type and index).

use serde::Deserialize;
use std::str::FromStr;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate, X509Name};

/// Which part of the certificate names the user (`ssl_cert_login_from`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginFrom {
    /// The whole subject, as RabbitMQ prints it (`CN=name,O=org`): RabbitMQ's default.
    #[default]
    DistinguishedName,
    /// The subject's common name.
    CommonName,
    /// A subject alternative name (`ssl_cert_login_san_type`, `ssl_cert_login_san_index`).
    SubjectAlternativeName,
}

impl FromStr for LoginFrom {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "distinguished_name" => Ok(LoginFrom::DistinguishedName),
            "common_name" => Ok(LoginFrom::CommonName),
            "subject_alternative_name" | "subject_alt_name" => {
                Ok(LoginFrom::SubjectAlternativeName)
            }
            _ => Err("distinguished_name, common_name or subject_alternative_name".into()),
        }
    }
}

/// The kind of subject alternative name that names the user (`ssl_cert_login_san_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SanType {
    /// A DNS name (RabbitMQ's default).
    #[default]
    Dns,
    /// An e-mail address (rfc822Name).
    Email,
    /// A URI.
    Uri,
    /// An otherName whose value is a string.
    OtherName,
}

impl FromStr for SanType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "dns" => Ok(SanType::Dns),
            "email" => Ok(SanType::Email),
            "uri" => Ok(SanType::Uri),
            "other_name" => Ok(SanType::OtherName),
            _ => Err("dns, email, uri or other_name".into()),
        }
    }
}

/// Where `EXTERNAL` takes the user name from; the keys are rabbitmq.conf's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct CertLogin {
    /// `ssl_cert_login_from`.
    pub ssl_cert_login_from: LoginFrom,
    /// `ssl_cert_login_san_type`.
    pub ssl_cert_login_san_type: SanType,
    /// `ssl_cert_login_san_index` (0: the first name of that type).
    pub ssl_cert_login_san_index: usize,
}

impl CertLogin {
    /// The user name `der` (a client certificate the TLS layer verified) gives, or why none.
    pub(crate) fn user_name(&self, der: &[u8]) -> Result<String, String> {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| format!("cannot parse the peer certificate: {e}"))?;
        match self.ssl_cert_login_from {
            LoginFrom::DistinguishedName => Ok(distinguished_name(cert.subject())),
            // Every CN, in certificate order, joined with `,`; unescaped (as RabbitMQ).
            LoginFrom::CommonName => {
                let cns: Vec<&str> = cert
                    .subject()
                    .iter_common_name()
                    .filter_map(|cn| cn.as_str().ok())
                    .collect();
                if cns.is_empty() {
                    Err("the peer certificate has no common name".into())
                } else {
                    Ok(cns.join(","))
                }
            }
            LoginFrom::SubjectAlternativeName => {
                let names = cert
                    .subject_alternative_name()
                    .map_err(|e| format!("bad subjectAltName: {e}"))?
                    .map(|ext| ext.value.general_names.clone())
                    .unwrap_or_default();
                // Only names of the configured type count for the (0-based) index.
                names
                    .iter()
                    .filter_map(|n| match (self.ssl_cert_login_san_type, n) {
                        (SanType::Dns, GeneralName::DNSName(s))
                        | (SanType::Email, GeneralName::RFC822Name(s))
                        | (SanType::Uri, GeneralName::URI(s)) => Some(s.to_string()),
                        (SanType::OtherName, GeneralName::OtherName(_, value)) => other_name(value),
                        _ => None,
                    })
                    .nth(self.ssl_cert_login_san_index)
                    .ok_or_else(|| {
                        format!(
                            "no subject alternative name of type {:?} at index {}",
                            self.ssl_cert_login_san_type, self.ssl_cert_login_san_index
                        )
                    })
            }
        }
    }
}

/// An otherName's value: an explicitly tagged string (UTF8String, IA5String, ...).
fn other_name(value: &[u8]) -> Option<String> {
    use x509_parser::der_parser::ber::parse_ber_any_r;
    // [0] EXPLICIT wrapper, then the string.
    let (_, outer) = parse_ber_any_r(value, 8).ok()?;
    let inner = outer.as_slice().ok()?;
    let (_, s) = parse_ber_any_r(inner, 8).ok()?;
    s.as_str().ok().map(str::to_string)
}

/// The subject as RabbitMQ 3.10 writes it (`rabbit_cert_info:format_rdn_sequence`, observed):
/// the last RDN first, `,` between RDNs and `+` inside one, its short attribute names (a dotted
/// OID for others), values escaped byte by byte.
fn distinguished_name(name: &X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|attr| {
                    let oid = attr.attr_type().to_id_string();
                    let key = short_name(&oid).map_or(oid.clone(), str::to_string);
                    let value = match attr.as_str() {
                        Ok(s) => escape(s.as_bytes()),
                        Err(_) => escape(attr.attr_value().data),
                    };
                    format!("{key}={value}")
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// The attribute names RabbitMQ prints (2.5.4.9, street, is not among them: it prints the OID).
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "SERIALNUMBER",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "TITLE",
        "2.5.4.42" => "GIVENNAME",
        "2.5.4.43" => "INITIALS",
        "2.5.4.44" => "GENERATIONQUALIFIER",
        "2.5.4.65" => "PSEUDONYM",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        "1.2.840.113549.1.9.1" => "EMAILADDRESS",
        _ => return None,
    })
}

/// RabbitMQ's escaping of a value: a leading space or `#` and a trailing space, and each of
/// `" + , ; < > \` get a backslash; every byte below 32 or from 126 up (so `~` and each byte
/// of a non-ASCII character) becomes `\XX`.
fn escape(v: &[u8]) -> String {
    let mut out = String::with_capacity(v.len());
    let last = v.len().saturating_sub(1);
    for (i, &b) in v.iter().enumerate() {
        if !(32..126).contains(&b) {
            out.push_str(&format!("\\{b:02X}"));
            continue;
        }
        let special = matches!(b, b'"' | b'+' | b',' | b';' | b'<' | b'>' | b'\\')
            || (i == 0 && (b == b'#' || b == b' '))
            || (i == last && b == b' ');
        if special {
            out.push('\\');
        }
        out.push(b as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rcgen::{CertificateParams, DnType, KeyPair, SanType as RcSan};

    fn cert(subject: &[(DnType, &str)], sans: Vec<RcSan>) -> Vec<u8> {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        // rcgen starts with a CN of its own.
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (t, v) in subject {
            params.distinguished_name.push(t.clone(), *v);
        }
        params.subject_alt_names = sans;
        let key = KeyPair::generate().expect("key");
        params.self_signed(&key).expect("cert").der().to_vec()
    }

    fn login(from: LoginFrom, san_type: SanType, index: usize) -> CertLogin {
        CertLogin {
            ssl_cert_login_from: from,
            ssl_cert_login_san_type: san_type,
            ssl_cert_login_san_index: index,
        }
    }

    #[test]
    fn common_name_and_distinguished_name() {
        let der = cert(
            &[
                (DnType::CountryName, "GB"),
                (DnType::OrganizationName, "Acme, Inc."),
                (DnType::CommonName, "worker-1"),
            ],
            vec![],
        );
        let cn = login(LoginFrom::CommonName, SanType::Dns, 0);
        assert_eq!(cn.user_name(&der).as_deref(), Ok("worker-1"));
        let dn = CertLogin::default();
        assert_eq!(
            dn.user_name(&der).as_deref(),
            Ok("CN=worker-1,O=Acme\\, Inc.,C=GB")
        );
    }

    /// RabbitMQ 3.10.8's renderings, observed (issue 12's facts).
    #[test]
    fn distinguished_name_escapes_as_rabbitmq() {
        let dn = CertLogin::default();
        let der = cert(
            &[
                (DnType::OrganizationName, "Örg"),
                (DnType::CommonName, "José"),
            ],
            vec![],
        );
        assert_eq!(
            dn.user_name(&der).as_deref(),
            Ok("CN=Jos\\C3\\A9,O=\\C3\\96rg")
        );
        let der = cert(
            &[
                (DnType::OrganizationalUnitName, "#hash"),
                (DnType::CommonName, " lead trail "),
            ],
            vec![],
        );
        assert_eq!(
            dn.user_name(&der).as_deref(),
            Ok("CN=\\ lead trail\\ ,OU=\\#hash")
        );
        let der = cert(
            &[
                (DnType::CustomDnType(vec![2, 5, 4, 9]), "1 Main St"),
                (DnType::CommonName, "tilde~x"),
            ],
            vec![],
        );
        assert_eq!(
            dn.user_name(&der).as_deref(),
            Ok("CN=tilde\\7Ex,2.5.4.9=1 Main St")
        );
        let cn = login(LoginFrom::CommonName, SanType::Dns, 0);
        assert_eq!(cn.user_name(&der).as_deref(), Ok("tilde~x"));
    }

    #[test]
    fn subject_alternative_names_by_type_and_index() {
        let der = cert(
            &[(DnType::CommonName, "ignored")],
            vec![
                RcSan::DnsName("first.example".try_into().expect("dns")),
                RcSan::Rfc822Name("ops@example.com".try_into().expect("email")),
                RcSan::DnsName("second.example".try_into().expect("dns")),
                RcSan::URI("spiffe://cluster/worker".try_into().expect("uri")),
            ],
        );
        let san = |t, i| login(LoginFrom::SubjectAlternativeName, t, i).user_name(&der);
        assert_eq!(san(SanType::Dns, 0).as_deref(), Ok("first.example"));
        assert_eq!(san(SanType::Dns, 1).as_deref(), Ok("second.example"));
        assert_eq!(san(SanType::Email, 0).as_deref(), Ok("ops@example.com"));
        assert_eq!(
            san(SanType::Uri, 0).as_deref(),
            Ok("spiffe://cluster/worker")
        );
        assert!(san(SanType::Dns, 2).is_err());
        assert!(san(SanType::OtherName, 0).is_err());
        let no_cn = cert(&[(DnType::OrganizationName, "o")], vec![]);
        assert!(login(LoginFrom::CommonName, SanType::Dns, 0)
            .user_name(&no_cn)
            .is_err());
    }

    #[test]
    fn settings_parse_as_rabbitmq_conf_spells_them() {
        assert_eq!("common_name".parse(), Ok(LoginFrom::CommonName));
        assert_eq!(
            "subject_alternative_name".parse(),
            Ok(LoginFrom::SubjectAlternativeName)
        );
        assert_eq!("email".parse(), Ok(SanType::Email));
        assert!("cn".parse::<LoginFrom>().is_err());
    }

    proptest! {
        /// No byte string, certificate or not, makes the name extraction panic.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            for from in [LoginFrom::DistinguishedName, LoginFrom::CommonName, LoginFrom::SubjectAlternativeName] {
                let _ = login(from, SanType::OtherName, 0).user_name(&bytes);
            }
        }
    }
}
