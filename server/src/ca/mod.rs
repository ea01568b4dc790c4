//! Issuance policy over `latchkey-certs`: where the CA lives in the data
//! directory, generating it at first start (keys 0600), the server's TLS
//! identities, device certificates and the CRL file.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use latchkey_certs::{Authority, CertError, IssuedCertificate, PrivateKeyPem, VerifiedCsr};

use crate::core::ids::DeviceId;

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
        Ok(Self {
            authority,
            dir: dir.to_owned(),
            crl: std::sync::Mutex::new(()),
        })
    }

    pub fn root_pem(&self) -> &str {
        self.authority.root_pem()
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

/// Generates an ES256 token-signing key.
pub fn new_signing_key() -> Result<NewSigningKey, CertError> {
    let key = latchkey_certs::jose::SigningKey::generate()?;
    let jwk = key.public_jwk()?;
    Ok(NewSigningKey {
        kid: jwk.kid,
        stored_private_key: key.to_stored(),
        x: jwk.x,
        y: jwk.y,
    })
}

/// Signs `payload` as a compact JWS with a stored token-signing key.
pub fn sign_jws(stored_private_key: &str, kid: &str, payload: &[u8]) -> Result<String, CertError> {
    let key = latchkey_certs::jose::SigningKey::from_stored(stored_private_key)?;
    latchkey_certs::jose::compact_jws(&key, kid, payload)
}
