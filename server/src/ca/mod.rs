//! Issuance policy over `latchkey-certs`: where the CA lives in the data
//! directory, generating it at first start (keys 0600), the server's TLS
//! identities, device certificates and the CRL file.

pub mod apple;
pub mod dep;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use latchkey_certs::{Authority, CertError, IssuedCertificate, PrivateKeyPem, VerifiedCsr};

use crate::domain::ids::DeviceId;

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Certificate { path: PathBuf, source: CertError },
    #[error(transparent)]
    Cert(#[from] CertError),
}

/// Files of the CA in the data directory.
pub const ROOT_CERT: &str = "ca.pem";
const ROOT_KEY: &str = "ca-key.pem";
const ISSUING_CERT: &str = "issuing-ca.pem";
const ISSUING_KEY: &str = "issuing-ca-key.pem";
pub const CRL: &str = "crl.pem";

/// A TLS identity: certificate chain and key, as PEM.
#[derive(Debug, Clone)]
pub struct TlsIdentity {
    pub chain_pem: String,
    pub key_pem: PrivateKeyPem,
}

#[derive(Debug)]
pub struct CertificateAuthority {
    authority: Authority,
    dir: PathBuf,
    /// One CRL writer at a time, so an older list never replaces a newer one.
    crl: std::sync::Mutex<()>,
    token_keys: KeyWrapper,
    /// The chain check of Apple devices' `Mdm-Signature`s.
    mdm_signers: apple::MdmSigners,
}

fn read(path: &Path) -> Result<String, CaError> {
    std::fs::read_to_string(path).map_err(|source| CaError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Writes a file atomically; `private` files are readable by the owner only.
pub fn write_file(path: &Path, contents: &str, private: bool) -> Result<(), CaError> {
    let access = if private {
        latchkey_certs::files::Access::OwnerOnly
    } else {
        latchkey_certs::files::Access::Public
    };
    latchkey_certs::files::write_atomic(path, contents.as_bytes(), access).map_err(|source| {
        CaError::Io {
            path: path.to_owned(),
            source,
        }
    })
}

impl CertificateAuthority {
    /// Loads the CA from `dir`, generating it if the directory has none.
    pub fn load_or_create(dir: &Path, now: DateTime<Utc>) -> Result<Self, CaError> {
        let root_path = dir.join(ROOT_CERT);
        if !root_path.exists() {
            let generated = latchkey_certs::generate_authority("Latchkey", now)?;
            // Keys first: a crash between files leaves no root without its key.
            write_file(&dir.join(ROOT_KEY), generated.root_key_pem.expose(), true)?;
            write_file(
                &dir.join(ISSUING_KEY),
                generated.issuing_key_pem.expose(),
                true,
            )?;
            write_file(&dir.join(ISSUING_CERT), &generated.issuing_cert_pem, false)?;
            write_file(&root_path, &generated.root_cert_pem, false)?;
        }
        let issuing_cert = dir.join(ISSUING_CERT);
        let authority = Authority::load(
            &read(&root_path)?,
            &read(&issuing_cert)?,
            &PrivateKeyPem::new(read(&dir.join(ISSUING_KEY))?),
        )
        .map_err(|source| CaError::Certificate {
            path: issuing_cert,
            source,
        })?;
        let mdm_signers = apple::MdmSigners::new(authority.root_pem(), authority.issuing_pem())?;
        Ok(Self {
            mdm_signers,
            authority,
            dir: dir.to_owned(),
            crl: std::sync::Mutex::new(()),
            token_keys: KeyWrapper::load_or_create(dir)?,
        })
    }

    pub fn root_pem(&self) -> &str {
        self.authority.root_pem()
    }

    /// The SSO layer's token-signing keys, sealed for the database.
    pub fn token_keys(&self) -> &KeyWrapper {
        &self.token_keys
    }

    pub fn root_path(&self) -> PathBuf {
        self.dir.join(ROOT_CERT)
    }

    pub fn crl_path(&self) -> PathBuf {
        self.dir.join(CRL)
    }

    pub fn chain_pem(&self, leaf_pem: &str) -> String {
        self.authority.chain_pem(leaf_pem)
    }

    /// The TLS identity stored as `<name>.pem`/`<name>-key.pem`, reissued when
    /// missing, expiring within 30 days, or not covering `names`.
    pub fn tls_identity(
        &self,
        name: &str,
        names: &[String],
        now: DateTime<Utc>,
    ) -> Result<TlsIdentity, CaError> {
        let cert_path = self.dir.join(format!("{name}.pem"));
        let key_path = self.dir.join(format!("{name}-key.pem"));
        let names_path = self.dir.join(format!("{name}.names"));
        let wanted = names.join("\n");
        if cert_path.exists() && key_path.exists() {
            let chain_pem = read(&cert_path)?;
            let still_good = latchkey_certs::inspect_pem(&chain_pem)
                .is_ok_and(|info| info.not_after > now + Duration::days(30));
            let same_names = read(&names_path).is_ok_and(|n| n == wanted);
            if still_good && same_names {
                return Ok(TlsIdentity {
                    chain_pem,
                    key_pem: PrivateKeyPem::new(read(&key_path)?),
                });
            }
        }
        let (issued, key_pem) = self
            .authority
            .issue_server(names, now, Duration::days(397))?;
        let chain_pem = self.chain_pem(&issued.pem);
        write_file(&key_path, key_pem.expose(), true)?;
        write_file(&cert_path, &chain_pem, false)?;
        write_file(&names_path, &wanted, false)?;
        Ok(TlsIdentity { chain_pem, key_pem })
    }

    /// The server's client identity towards an external MQTT broker.
    pub fn broker_client_identity(
        &self,
        common_name: &str,
        now: DateTime<Utc>,
    ) -> Result<TlsIdentity, CaError> {
        let (issued, key_pem) =
            self.authority
                .issue_client(common_name, now, Duration::days(397))?;
        Ok(TlsIdentity {
            chain_pem: self.chain_pem(&issued.pem),
            key_pem,
        })
    }

    pub fn issue_device(
        &self,
        csr: &VerifiedCsr,
        device_id: &DeviceId,
        now: DateTime<Utc>,
        validity: Duration,
    ) -> Result<IssuedCertificate, CertError> {
        self.authority
            .issue_device(csr, device_id.as_str(), now, validity)
    }

    /// Writes `crl.pem` (next update in 7 days) listing `revoked`.
    pub fn write_crl(
        &self,
        revoked: &[(String, DateTime<Utc>)],
        now: DateTime<Utc>,
    ) -> Result<(), CaError> {
        let _one_writer = self
            .crl
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let number = u64::try_from(now.timestamp_millis()).unwrap_or(0);
        let pem = self
            .authority
            .crl_pem(revoked, number, now, now + Duration::days(7))?;
        write_file(&self.crl_path(), &pem, false)
    }
}

/// A freshly generated token-signing key, ready to store: the private key
/// as an opaque string only `ca` reads back.
#[derive(Clone)]
pub struct NewSigningKey {
    pub kid: String,
    pub stored_private_key: String,
    pub x: String,
    pub y: String,
}

impl std::fmt::Debug for NewSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// File of the key that encrypts token-signing keys in the database.
const TOKEN_KEY_KEK: &str = "token-signing-kek";

/// Seals token-signing keys for the database with AES-256-GCM under a key
/// kept beside the CA in the data directory (0600): a database backup alone
/// cannot forge tokens. Replicas share it as they share the CA.
pub struct KeyWrapper {
    key: ring::aead::LessSafeKey,
}

impl std::fmt::Debug for KeyWrapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyWrapper([redacted])")
    }
}

const SEALED_PREFIX: &str = "a256gcm.";

/// What a push certificate's sealed key is bound to.
fn push_key_kid(topic: &str) -> String {
    format!("apns:{topic}")
}

impl KeyWrapper {
    /// Loads the wrapping key from `dir`, creating it at first start.
    pub fn load_or_create(dir: &Path) -> Result<Self, CaError> {
        let path = dir.join(TOKEN_KEY_KEK);
        if !path.exists() {
            let fresh = hex::encode(latchkey_certs::random_bytes::<32>()?);
            write_file(&path, &fresh, true)?;
        }
        let text = read(&path)?;
        let bytes = hex::decode(text.trim()).map_err(|_| CaError::Certificate {
            path: path.clone(),
            source: CertError::MalformedKey("not 64 hex digits".into()),
        })?;
        let unbound =
            ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, &bytes).map_err(|_| {
                CaError::Certificate {
                    path: path.clone(),
                    source: CertError::MalformedKey("not a 256-bit key".into()),
                }
            })?;
        Ok(KeyWrapper {
            key: ring::aead::LessSafeKey::new(unbound),
        })
    }

    /// Seals `plain` under the data-dir key, bound to `kid` (a sealed value
    /// opens only under the same `kid`).
    pub fn seal(&self, kid: &str, plain: &str) -> Result<String, CertError> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let nonce_bytes = latchkey_certs::random_bytes::<12>()?;
        let mut data = plain.as_bytes().to_vec();
        // The key id is bound in as associated data: a sealed key cannot be
        // moved to another row.
        self.key
            .seal_in_place_append_tag(
                ring::aead::Nonce::assume_unique_for_key(nonce_bytes),
                ring::aead::Aad::from(kid.as_bytes()),
                &mut data,
            )
            .map_err(|_| CertError::Signing("sealing".into()))?;
        Ok(format!(
            "{SEALED_PREFIX}{}.{}",
            b64.encode(nonce_bytes),
            b64.encode(data)
        ))
    }

    pub fn open(&self, kid: &str, sealed: &str) -> Result<String, CertError> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let malformed = || CertError::MalformedKey(format!("sealed value {kid} cannot be opened"));
        let (nonce, data) = sealed
            .strip_prefix(SEALED_PREFIX)
            .and_then(|rest| rest.split_once('.'))
            .ok_or_else(malformed)?;
        let nonce: [u8; 12] = b64
            .decode(nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or_else(malformed)?;
        let mut data = b64.decode(data).map_err(|_| malformed())?;
        let plain = self
            .key
            .open_in_place(
                ring::aead::Nonce::assume_unique_for_key(nonce),
                ring::aead::Aad::from(kid.as_bytes()),
                &mut data,
            )
            .map_err(|_| malformed())?;
        String::from_utf8(plain.to_vec()).map_err(|_| malformed())
    }

    /// Generates an ES256 token-signing key, its private half sealed.
    pub fn new_signing_key(&self) -> Result<NewSigningKey, CertError> {
        let key = latchkey_certs::jose::SigningKey::generate()?;
        let jwk = key.public_jwk()?;
        Ok(NewSigningKey {
            stored_private_key: self.seal(&jwk.kid, &key.to_stored())?,
            kid: jwk.kid,
            x: jwk.x,
            y: jwk.y,
        })
    }

    /// Unseals a token-signing key stored under `kid`.
    pub fn open_signing_key(
        &self,
        sealed_private_key: &str,
        kid: &str,
    ) -> Result<latchkey_certs::jose::SigningKey, CertError> {
        latchkey_certs::jose::SigningKey::from_stored(&self.open(kid, sealed_private_key)?)
    }

    /// Seals an APNs push certificate's key, bound to its topic.
    pub fn seal_push_key(&self, topic: &str, key: &PrivateKeyPem) -> Result<String, CertError> {
        self.seal(&push_key_kid(topic), key.expose())
    }

    /// Unseals the push certificate key stored for `topic`.
    pub fn open_push_key(&self, topic: &str, sealed: &str) -> Result<PrivateKeyPem, CertError> {
        Ok(PrivateKeyPem::new(self.open(&push_key_kid(topic), sealed)?))
    }

    /// Signs `payload` as a compact JWS with a sealed token-signing key.
    pub fn sign_jws(
        &self,
        sealed_private_key: &str,
        kid: &str,
        payload: &[u8],
    ) -> Result<String, CertError> {
        let key = self.open_signing_key(sealed_private_key, kid)?;
        latchkey_certs::jose::compact_jws(&key, "JWT", kid, payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_signing_keys_open_only_under_their_key_and_kid() {
        let dir = tempfile::tempdir().unwrap();
        let wrapper = KeyWrapper::load_or_create(dir.path()).unwrap();
        let key = wrapper.new_signing_key().unwrap();
        assert!(key.stored_private_key.starts_with(SEALED_PREFIX));
        let token = wrapper
            .sign_jws(&key.stored_private_key, &key.kid, b"{}")
            .unwrap();
        assert_eq!(token.split('.').count(), 3);
        assert!(
            wrapper
                .sign_jws(&key.stored_private_key, "another-kid", b"{}")
                .is_err()
        );
        let other_dir = tempfile::tempdir().unwrap();
        let other = KeyWrapper::load_or_create(other_dir.path()).unwrap();
        assert!(
            other
                .sign_jws(&key.stored_private_key, &key.kid, b"{}")
                .is_err()
        );
        // The same directory gives the same wrapping key.
        let again = KeyWrapper::load_or_create(dir.path()).unwrap();
        assert!(
            again
                .sign_jws(&key.stored_private_key, &key.kid, b"{}")
                .is_ok()
        );
    }
}
