//! The keys of Automated Device Enrollment: the RSA key pair whose
//! certificate an admin uploads to Apple Business Manager (its private key
//! sealed under the data-dir key, bound to the token's name), the
//! decryption of the `.p7m` token file with it, and the token's secrets
//! sealed the same way.

use chrono::{DateTime, Utc};
use latchkey_certs::CertError;
use latchkey_certs::PrivateKeyPem;
use latchkey_certs::dep::{DepServerToken, DepTokenError, decrypt_dep_token, generate_dep_keypair};

use super::KeyWrapper;

/// What went wrong opening a token file.
#[derive(Debug, thiserror::Error)]
pub enum DepKeyError {
    /// The file is not a token for this key pair, or not a token at all.
    #[error(transparent)]
    Token(#[from] DepTokenError),
    /// The sealed key or token cannot be opened (another data directory).
    #[error(transparent)]
    Sealed(#[from] CertError),
}

fn key_kid(name: &str) -> String {
    format!("dep-key:{name}")
}

fn token_kid(name: &str) -> String {
    format!("dep-token:{name}")
}

impl KeyWrapper {
    /// A new key pair for the token `name`: the certificate (PEM) and the
    /// private key sealed.
    pub fn new_dep_keypair(
        &self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<(String, String), DepKeyError> {
        let (certificate_pem, key) = generate_dep_keypair(&format!("Latchkey ADE {name}"), now)?;
        let sealed = self.seal(&key_kid(name), key.expose())?;
        Ok((certificate_pem, sealed))
    }

    /// Decrypts the token file Apple Business Manager made for the key
    /// pair of `name`.
    pub fn decrypt_dep_token(
        &self,
        name: &str,
        p7m: &[u8],
        certificate_pem: &str,
        key_sealed: &str,
    ) -> Result<DepServerToken, DepKeyError> {
        let key = PrivateKeyPem::new(self.open(&key_kid(name), key_sealed)?);
        Ok(decrypt_dep_token(p7m, certificate_pem, &key)?)
    }

    /// Seals a token's secrets for the database, bound to its name.
    pub fn seal_dep_token(&self, name: &str, token: &DepServerToken) -> Result<String, CertError> {
        self.seal(&token_kid(name), &token.to_json())
    }

    pub fn open_dep_token(&self, name: &str, sealed: &str) -> Result<DepServerToken, DepKeyError> {
        Ok(DepServerToken::from_json(
            &self.open(&token_kid(name), sealed)?,
        )?)
    }
}
