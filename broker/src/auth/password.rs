//! Password hashes in RabbitMQ's formats, so that a definitions export moves between RabbitMQ and
//! Warren in both directions: base64 of a 4-byte random salt followed by the digest of salt and
//! password (`rabbit_password_hashing_sha256`, RabbitMQ's default; `_sha512` and `_md5` are
//! accepted on import).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use md5::Md5;
use sha2::{Digest, Sha256, Sha512};

/// How a password hash was made (RabbitMQ's `hashing_algorithm` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashingAlgorithm {
    /// `rabbit_password_hashing_sha256` (the default).
    Sha256,
    /// `rabbit_password_hashing_sha512`.
    Sha512,
    /// `rabbit_password_hashing_md5`.
    Md5,
}

impl HashingAlgorithm {
    /// RabbitMQ's name of the algorithm.
    pub fn name(self) -> &'static str {
        match self {
            HashingAlgorithm::Sha256 => "rabbit_password_hashing_sha256",
            HashingAlgorithm::Sha512 => "rabbit_password_hashing_sha512",
            HashingAlgorithm::Md5 => "rabbit_password_hashing_md5",
        }
    }

    /// The algorithm a RabbitMQ name stands for.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Sha256, Self::Sha512, Self::Md5]
            .into_iter()
            .find(|a| a.name() == name)
    }

    fn digest(self, salt: &[u8], password: &[u8]) -> Vec<u8> {
        fn run<D: Digest>(salt: &[u8], password: &[u8]) -> Vec<u8> {
            let mut d = D::new();
            d.update(salt);
            d.update(password);
            d.finalize().to_vec()
        }
        match self {
            HashingAlgorithm::Sha256 => run::<Sha256>(salt, password),
            HashingAlgorithm::Sha512 => run::<Sha512>(salt, password),
            HashingAlgorithm::Md5 => run::<Md5>(salt, password),
        }
    }
}

/// A user's password hash. Empty: the user has no password and cannot log in with one.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    /// How it was made.
    pub algorithm: HashingAlgorithm,
    /// Salt (4 bytes) and digest; empty for no password.
    salted: Vec<u8>,
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the hash itself.
        f.debug_struct("PasswordHash")
            .field("algorithm", &self.algorithm)
            .field("empty", &self.salted.is_empty())
            .finish()
    }
}

const SALT: usize = 4;

impl PasswordHash {
    /// A fresh hash of `password` (SHA-256, random salt), as `rabbitmqctl add_user` makes.
    pub fn new(password: &str) -> Self {
        let salt: [u8; SALT] = rand::random();
        let mut salted = salt.to_vec();
        salted.extend(HashingAlgorithm::Sha256.digest(&salt, password.as_bytes()));
        PasswordHash {
            algorithm: HashingAlgorithm::Sha256,
            salted,
        }
    }

    /// No password (`rabbitmqctl clear_password`).
    pub fn none() -> Self {
        PasswordHash {
            algorithm: HashingAlgorithm::Sha256,
            salted: Vec::new(),
        }
    }

    /// A hash as a definitions file carries it (`password_hash`, base64).
    pub fn from_base64(algorithm: HashingAlgorithm, text: &str) -> Result<Self, String> {
        let salted = B64
            .decode(text.trim())
            .map_err(|e| format!("password_hash is not base64: {e}"))?;
        if !salted.is_empty() && salted.len() <= SALT {
            return Err("password_hash is too short".into());
        }
        Ok(PasswordHash { algorithm, salted })
    }

    /// The hash as a definitions file carries it (base64; empty for no password).
    pub fn to_base64(&self) -> String {
        B64.encode(&self.salted)
    }

    /// True if there is no password.
    pub fn is_empty(&self) -> bool {
        self.salted.is_empty()
    }

    /// True if `password` is the password. Compares in time independent of where the digests
    /// differ. No password never matches.
    pub fn verify(&self, password: &str) -> bool {
        if self.salted.len() <= SALT {
            return false;
        }
        let (salt, want) = self.salted.split_at(SALT);
        let got = self.algorithm.digest(salt, password.as_bytes());
        got.len() == want.len() && got.iter().zip(want).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rabbitmq_hashes_verify() {
        // Exported by RabbitMQ 3.10.8 (`rabbitmqctl export_definitions`) for guest/guest and
        // hashu/test12.
        let sha256 = HashingAlgorithm::Sha256;
        let guest =
            PasswordHash::from_base64(sha256, "ZJCuBGdqTTu7EMBXtS+XQ/5tt4SEPNim+bKzmtG5qV4EfU//")
                .unwrap();
        assert!(guest.verify("guest"));
        assert!(!guest.verify("guesT"));
        let hashu =
            PasswordHash::from_base64(sha256, "A2vETqt7Ft1gbYgnVDnQZ+f+QGFdOFBflu4N696NkPTPkptq")
                .unwrap();
        assert!(hashu.verify("test12"));
        assert!(!hashu.verify(""));
    }

    #[test]
    fn fresh_hash_round_trips_and_other_algorithms() {
        let h = PasswordHash::new("s3cret");
        assert!(h.verify("s3cret"));
        let back = PasswordHash::from_base64(h.algorithm, &h.to_base64()).unwrap();
        assert!(back.verify("s3cret") && !back.verify("s3cret "));
        for alg in [HashingAlgorithm::Sha512, HashingAlgorithm::Md5] {
            let mut salted = vec![1, 2, 3, 4];
            salted.extend(alg.digest(&[1, 2, 3, 4], b"pw"));
            let h = PasswordHash::from_base64(alg, &B64.encode(&salted)).unwrap();
            assert!(h.verify("pw") && !h.verify("pw2"));
            assert_eq!(HashingAlgorithm::from_name(alg.name()), Some(alg));
        }
    }

    #[test]
    fn no_password_never_matches() {
        let h = PasswordHash::from_base64(HashingAlgorithm::Sha256, "").unwrap();
        assert!(h.is_empty() && !h.verify("") && !h.verify("x"));
        assert!(PasswordHash::from_base64(HashingAlgorithm::Sha256, "AAE=").is_err());
        assert!(PasswordHash::from_base64(HashingAlgorithm::Sha256, "not base64!").is_err());
    }
}
