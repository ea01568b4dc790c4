//! Certificates the SCEP service needs from the deployment's issuing CA:
//! the device certificate for the key in a PKCSReq (RSA or EC, which
//! [`crate::verify_csr`] would refuse) and the RSA certificate of the RA.

use chrono::{DateTime, Duration, Utc};
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use rcgen::{ExtendedKeyUsagePurpose, KeyUsagePurpose, PublicKeyData, SanType, SignatureAlgorithm};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::{Authority, CertError, IssuedCertificate, PrivateKeyPem, name, signing};

/// Devices' RSA keys below this size are refused (NIST SP 800-131A).
const MIN_RSA_BITS: usize = 2048;
const MAX_RSA_BITS: usize = 8192;
const RA_RSA_BITS: u32 = 2048;

/// A public key that rcgen puts into a certificate as it is: the subject
/// public key bits of a SubjectPublicKeyInfo and the algorithm whose
/// key identifier (rsaEncryption, or id-ecPublicKey with its curve) rcgen
/// writes in front of them.
struct ForeignPublicKey {
    bits: Vec<u8>,
    algorithm: &'static SignatureAlgorithm,
}

impl PublicKeyData for ForeignPublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.bits
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.algorithm
    }
}

/// Reads an RSA (2048 to 8192 bits) or ECDSA P-256/P-384 key from a
/// SubjectPublicKeyInfo.
fn foreign_public_key(subject_public_key_info: &[u8]) -> Result<ForeignPublicKey, CertError> {
    let (rest, spki) = SubjectPublicKeyInfo::from_der(subject_public_key_info)
        .map_err(|e| CertError::MalformedKey(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CertError::MalformedKey("bytes after the key".into()));
    }
    let parsed = spki
        .parsed()
        .map_err(|e| CertError::MalformedKey(e.to_string()))?;
    let algorithm = match parsed {
        PublicKey::RSA(rsa) => {
            let bits = rsa.key_size();
            if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
                return Err(CertError::UnsupportedKeyType(format!(
                    "RSA-{bits} (RSA keys of {MIN_RSA_BITS} to {MAX_RSA_BITS} bits are accepted)"
                )));
            }
            &rcgen::PKCS_RSA_SHA256
        }
        PublicKey::EC(point) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| oid.to_id_string());
            match (curve.as_deref(), point.data().len()) {
                (Some("1.2.840.10045.3.1.7"), 65) => &rcgen::PKCS_ECDSA_P256_SHA256,
                (Some("1.3.132.0.34"), 97) => &rcgen::PKCS_ECDSA_P384_SHA384,
                (curve, len) => {
                    return Err(CertError::UnsupportedKeyType(format!(
                        "ECDSA on {curve:?} with a {len}-byte point"
                    )));
                }
            }
        }
        _ => {
            return Err(CertError::UnsupportedKeyType(
                spki.algorithm.algorithm.to_id_string(),
            ));
        }
    };
    Ok(ForeignPublicKey {
        bits: spki.subject_public_key.data.to_vec(),
        algorithm,
    })
}

impl Authority {
    /// Issues the certificate a SCEP device asked for, signed by the
    /// issuing CA: the key from the request's SubjectPublicKeyInfo (RSA or
    /// ECDSA P-256/P-384), CN `common_name`, SAN URI `san_uri`, EKU
    /// clientAuth, KU digitalSignature + keyEncipherment.
    pub fn issue_scep_device(
        &self,
        subject_public_key_info: &[u8],
        common_name: &str,
        san_uri: &str,
        now: DateTime<Utc>,
        validity: Duration,
    ) -> Result<IssuedCertificate, CertError> {
        let key = foreign_public_key(subject_public_key_info)?;
        let mut params = self.leaf_params(name(common_name, "Latchkey device"), now, validity)?;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let uri = san_uri
            .to_owned()
            .try_into()
            .map_err(|_| CertError::InvalidName(san_uri.to_owned()))?;
        params.subject_alt_names = vec![SanType::URI(uri)];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).map_err(signing)?;
        self.finish(cert)
    }

    /// Issues the SCEP RA certificate with a fresh RSA-2048 key (devices
    /// encrypt to it, so it cannot be ECDSA), signed by the issuing CA, KU
    /// digitalSignature (it signs CertReps) + keyEncipherment (requests are
    /// encrypted to it).
    pub fn issue_scep_ra(
        &self,
        common_name: &str,
        now: DateTime<Utc>,
        validity: Duration,
    ) -> Result<(IssuedCertificate, PrivateKeyPem), CertError> {
        let openssl_error = |e: openssl::error::ErrorStack| CertError::Signing(e.to_string());
        let rsa = Rsa::generate(RA_RSA_BITS).map_err(openssl_error)?;
        let key = PKey::from_rsa(rsa).map_err(openssl_error)?;
        let public = foreign_public_key(&key.public_key_to_der().map_err(openssl_error)?)?;
        let mut params = self.leaf_params(name(common_name, "Latchkey server"), now, validity)?;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let cert = params.signed_by(&public, &self.issuer).map_err(signing)?;
        let pem = key.private_key_to_pem_pkcs8().map_err(openssl_error)?;
        let pem = String::from_utf8(pem).map_err(|e| CertError::Signing(e.to_string()))?;
        Ok((self.finish(cert)?, PrivateKeyPem::new(pem)))
    }
}
