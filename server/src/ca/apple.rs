//! The CA's part in Apple enrollment: the SCEP registration authority (an
//! RSA key and certificate the issuing CA signs, since devices encrypt
//! their SCEP requests to it, and Latchkey's CA keys are ECDSA), which
//! also signs the enrollment profiles; the identity certificates SCEP
//! issues; and the check of a device's `Mdm-Signature`.

use chrono::{DateTime, Duration, Utc};
use latchkey_certs::cms::{self, CmsError};
use latchkey_certs::scep::{
    self, CertRepOutcome, DecodeError, PkcsReq, RegistrationAuthority, ReplyTo, ScepError,
};
use latchkey_certs::{IssuedCertificate, PrivateKeyPem};

use super::{CaError, CertificateAuthority, read, write_file};
use crate::domain::ids::DeviceId;

const RA_CERT: &str = "scep-ra.pem";
const RA_KEY: &str = "scep-ra-key.pem";
/// Shown on the device as the profile's signer.
const RA_NAME: &str = "Latchkey device enrollment";
const RA_VALIDITY: Duration = Duration::days(730);

/// The SCEP registration authority and profile signer.
pub struct EnrollmentAuthority {
    ra: RegistrationAuthority,
    certificate_pem: String,
    key: PrivateKeyPem,
    /// The issuing CA and the root, PEM, as they go with what the RA signs.
    chain_pem: String,
    ca_chain_der: Vec<Vec<u8>>,
}

impl std::fmt::Debug for EnrollmentAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EnrollmentAuthority([redacted])")
    }
}

impl EnrollmentAuthority {
    /// GetCACert's answer: the RA certificate and the CA chain (degenerate
    /// PKCS#7, `application/x-x509-ca-ra-cert`).
    pub fn ca_certificates(&self) -> Vec<u8> {
        scep::ca_cert_response(self.ra.certificate_der(), &self.ca_chain_der)
    }

    /// Opens a PKIOperation message sent to the RA.
    pub fn decode(&self, message: &[u8]) -> Result<PkcsReq, DecodeError> {
        scep::decode_pki_message(message, &self.ra)
    }

    /// A CertRep answering `reply_to`, signed by the RA.
    pub fn reply(
        &self,
        reply_to: &ReplyTo,
        outcome: &CertRepOutcome,
        now: DateTime<Utc>,
    ) -> Result<Vec<u8>, ScepError> {
        scep::encode_cert_rep(reply_to, outcome, &self.ra, now)
    }

    /// Signs an enrollment profile (CMS, content attached).
    pub fn sign_profile(&self, profile: &[u8]) -> Result<Vec<u8>, CmsError> {
        cms::sign_attached(profile, &self.certificate_pem, &self.key, &self.chain_pem)
    }

    /// The CA chain as DER (issuing CA, root), for a SCEP success reply.
    pub fn ca_chain_der(&self) -> &[Vec<u8>] {
        &self.ca_chain_der
    }
}

impl CertificateAuthority {
    /// The SCEP RA stored as `scep-ra.pem`/`scep-ra-key.pem`, issued at
    /// first use and again when it expires within 30 days.
    pub fn enrollment_authority(&self, now: DateTime<Utc>) -> Result<EnrollmentAuthority, CaError> {
        let cert_path = self.dir.join(RA_CERT);
        let key_path = self.dir.join(RA_KEY);
        let current = if cert_path.exists() && key_path.exists() {
            let pem = read(&cert_path)?;
            latchkey_certs::inspect_pem(&pem)
                .is_ok_and(|info| info.not_after > now + Duration::days(30))
                .then_some(pem)
        } else {
            None
        };
        let (certificate_pem, key) = match current {
            Some(pem) => (pem, PrivateKeyPem::new(read(&key_path)?)),
            None => {
                let (issued, key) = self.authority.issue_scep_ra(RA_NAME, now, RA_VALIDITY)?;
                write_file(&key_path, key.expose(), true)?;
                write_file(&cert_path, &issued.pem, false)?;
                (issued.pem, key)
            }
        };
        let der = latchkey_certs::pem_certificates(&certificate_pem)?
            .into_iter()
            .next()
            .ok_or(latchkey_certs::CertError::NoCertificate)?;
        let ra = RegistrationAuthority::load(&der, &key).map_err(|e| CaError::Certificate {
            path: cert_path.clone(),
            source: latchkey_certs::CertError::MalformedCertificate(e.to_string()),
        })?;
        let chain_pem = format!("{}{}", self.authority.issuing_pem(), self.root_pem());
        let ca_chain_der = latchkey_certs::pem_certificates(&chain_pem)?;
        Ok(EnrollmentAuthority {
            ra,
            certificate_pem,
            key,
            chain_pem,
            ca_chain_der,
        })
    }

    /// An Apple device's identity certificate, for the public key of its
    /// SCEP request.
    pub fn issue_apple_identity(
        &self,
        subject_public_key_info: &[u8],
        device_id: &DeviceId,
        now: DateTime<Utc>,
        validity: Duration,
    ) -> Result<IssuedCertificate, latchkey_certs::CertError> {
        self.authority.issue_scep_device(
            subject_public_key_info,
            device_id.as_str(),
            &latchkey_certs::device_uri(device_id.as_str()),
            now,
            validity,
        )
    }

    /// Checks a device's `Mdm-Signature` over `body` and returns the
    /// signing certificate (DER), which chains to this CA. The signature is
    /// verified every time; that the certificate chains to the CA is
    /// remembered (by the SHA-256 of its DER) until it or the CA expires.
    /// Whether it is revoked or bound to the device is the store's, checked
    /// by the caller on every message.
    pub fn verify_mdm_signature(
        &self,
        signature: &[u8],
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Vec<u8>, CmsError> {
        let der = cms::verify_detached_signature(signature, body)?;
        self.mdm_signers.check(&der, now)?;
        Ok(der)
    }
}

/// Most signer certificates remembered as chaining to the CA; past it the
/// memory starts again (each device's next message verifies its chain once
/// more).
const MAX_REMEMBERED_SIGNERS: usize = 100_000;

/// The chain check of `Mdm-Signature` signers: the CA parsed once, and the
/// certificates already found to chain to it, each with the time until
/// which that holds (its own expiry or the CA's, whichever is first).
pub(super) struct MdmSigners {
    chain: cms::SignerChain,
    /// The earliest expiry of the root and the issuing CA.
    ca_not_after: DateTime<Utc>,
    chained: std::sync::Mutex<std::collections::HashMap<[u8; 32], DateTime<Utc>>>,
}

impl std::fmt::Debug for MdmSigners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MdmSigners")
    }
}

impl MdmSigners {
    pub(super) fn new(root_pem: &str, issuing_pem: &str) -> Result<Self, CaError> {
        let not_after = |pem: &str| latchkey_certs::inspect_pem(pem).map(|info| info.not_after);
        Ok(MdmSigners {
            chain: cms::SignerChain::new(root_pem, issuing_pem).map_err(|e| {
                CaError::Cert(latchkey_certs::CertError::MalformedCertificate(
                    e.to_string(),
                ))
            })?,
            ca_not_after: not_after(root_pem)?.min(not_after(issuing_pem)?),
            chained: std::sync::Mutex::default(),
        })
    }

    fn check(&self, der: &[u8], now: DateTime<Utc>) -> Result<(), CmsError> {
        let key = latchkey_certs::sha256(der);
        let remembered = self
            .chained
            .lock()
            .ok()
            .and_then(|chained| chained.get(&key).copied());
        if remembered.is_some_and(|until| now < until) {
            return Ok(());
        }
        self.chain.verify(der)?;
        let leaf_not_after = latchkey_certs::inspect_certificate(der)
            .map_err(|e| CmsError::Malformed(e.to_string()))?
            .not_after;
        if let Ok(mut chained) = self.chained.lock() {
            if chained.len() >= MAX_REMEMBERED_SIGNERS {
                chained.clear();
            }
            chained.insert(key, leaf_not_after.min(self.ca_not_after));
        }
        Ok(())
    }
}
