//! CMS (PKCS#7) SignedData as Apple MDM uses it, over OpenSSL:
//!
//! - the enrollment profile is signed with the content attached, so the
//!   device shows who signed it (`sign_attached`);
//! - a device that enrolled with `SignMessage` signs every check-in and
//!   command-channel body with its identity key and sends the signature,
//!   detached, in the `Mdm-Signature` header (base64 DER), so the server
//!   learns the device's identity even behind a TLS-terminating proxy
//!   (`verify_detached`; `sign_detached` is the device's side, for the
//!   tests' simulated device).
//!
//! `verify_detached` proves that the body was signed with the key of the
//! certificate it returns, and that the certificate chains to the given
//! CA; which device the certificate belongs to is the caller's lookup.

use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkey::{PKey, Private};
use openssl::stack::Stack;
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::{X509, X509StoreContext};

use crate::PrivateKeyPem;

/// Longest signature accepted: a device's signature carries its
/// certificate, a few KiB.
pub const MAX_SIGNATURE_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CmsError {
    #[error("the signature is longer than {MAX_SIGNATURE_BYTES} bytes")]
    TooLong,
    #[error("the signature is not CMS SignedData: {0}")]
    Malformed(String),
    #[error("the signature carries no signer certificate")]
    NoSigner,
    #[error("the signature does not verify over the body")]
    BadSignature,
    #[error("the signer's certificate does not chain to the Latchkey CA")]
    UntrustedSigner,
    #[error("the signing certificate or key cannot be used: {0}")]
    Key(String),
}

fn reason(stack: &openssl::error::ErrorStack) -> String {
    stack
        .errors()
        .first()
        .and_then(|e| e.reason())
        .unwrap_or("unreadable")
        .to_owned()
}

fn certificates(pem: &str) -> Result<Vec<X509>, CmsError> {
    X509::stack_from_pem(pem.as_bytes()).map_err(|e| CmsError::Key(reason(&e)))
}

/// Signs `content` with the content attached (an Apple configuration
/// profile served as `application/x-apple-aspen-config`); `chain_pem`
/// holds the certificates to include above the signer's.
pub fn sign_attached(
    content: &[u8],
    signer_certificate_pem: &str,
    signer_key: &PrivateKeyPem,
    chain_pem: &str,
) -> Result<Vec<u8>, CmsError> {
    sign(
        content,
        signer_certificate_pem,
        signer_key,
        chain_pem,
        Pkcs7Flags::BINARY,
    )
}

/// The content of an attached SignedData, its signature and signer NOT
/// checked: for what a device says of itself and is no proof (Setup
/// Assistant's MachineInfo, Apple "Device Assignment"), which the caller
/// may use only to name, never to grant.
pub fn attached_content_unverified(der: &[u8]) -> Result<Vec<u8>, CmsError> {
    open_attached(der, Pkcs7Flags::NOVERIFY | Pkcs7Flags::NOSIGS)
        .map_err(|e| e.unwrap_or_else(|| CmsError::Malformed("unreadable content".into())))
}

/// The content of an attached SignedData with `flags`; `Err(None)` when
/// the verification those flags ask for fails.
fn open_attached(der: &[u8], flags: Pkcs7Flags) -> Result<Vec<u8>, Option<CmsError>> {
    if der.len() > MAX_SIGNATURE_BYTES {
        return Err(Some(CmsError::TooLong));
    }
    if !crate::scep::cms::openssl_may_read(der) {
        return Err(Some(CmsError::Malformed(
            "not a SignedData with one SHA-1 or SHA-256 digest algorithm and one signer".into(),
        )));
    }
    let signed = Pkcs7::from_der(der).map_err(|e| Some(CmsError::Malformed(reason(&e))))?;
    let none = Stack::new().map_err(|e| Some(CmsError::Malformed(reason(&e))))?;
    let store = X509StoreBuilder::new()
        .map_err(|e| Some(CmsError::Malformed(reason(&e))))?
        .build();
    let mut content = Vec::new();
    signed
        .verify(&none, &store, None, Some(&mut content), flags)
        .map_err(|_| None)?;
    Ok(content)
}

/// Signs `content` detached (what a device puts in `Mdm-Signature`).
pub fn sign_detached(
    content: &[u8],
    signer_certificate_pem: &str,
    signer_key: &PrivateKeyPem,
) -> Result<Vec<u8>, CmsError> {
    Signer::new(signer_certificate_pem, signer_key)?.sign_detached(content)
}

fn sign(
    content: &[u8],
    signer_certificate_pem: &str,
    signer_key: &PrivateKeyPem,
    chain_pem: &str,
    flags: Pkcs7Flags,
) -> Result<Vec<u8>, CmsError> {
    Signer::new(signer_certificate_pem, signer_key)?.sign(content, chain_pem, flags)
}

/// A signer's certificate and key, read once for many signatures (a
/// device signs every message with the same identity; reading a PEM key
/// costs more than the signature).
pub struct Signer {
    certificate: X509,
    key: PKey<Private>,
}

impl Signer {
    pub fn new(certificate_pem: &str, key: &PrivateKeyPem) -> Result<Signer, CmsError> {
        let certificate = certificates(certificate_pem)?
            .into_iter()
            .next()
            .ok_or(CmsError::NoSigner)?;
        let key = PKey::private_key_from_pem(key.expose().as_bytes())
            .map_err(|e| CmsError::Key(reason(&e)))?;
        Ok(Signer { certificate, key })
    }

    /// A detached signature of `content`, as a device's `Mdm-Signature`.
    pub fn sign_detached(&self, content: &[u8]) -> Result<Vec<u8>, CmsError> {
        self.sign(content, "", Pkcs7Flags::BINARY | Pkcs7Flags::DETACHED)
    }

    fn sign(
        &self,
        content: &[u8],
        chain_pem: &str,
        flags: Pkcs7Flags,
    ) -> Result<Vec<u8>, CmsError> {
        let mut chain = Stack::new().map_err(|e| CmsError::Key(reason(&e)))?;
        if !chain_pem.trim().is_empty() {
            for cert in certificates(chain_pem)? {
                chain.push(cert).map_err(|e| CmsError::Key(reason(&e)))?;
            }
        }
        Pkcs7::sign(&self.certificate, &self.key, &chain, content, flags)
            .and_then(|p| p.to_der())
            .map_err(|e| CmsError::Key(reason(&e)))
    }
}

/// The content of an attached signature (a signed profile), its
/// signature checked against the certificate it carries; whose
/// certificate that is, is the caller's question.
pub fn attached_content(signed_der: &[u8]) -> Result<Vec<u8>, CmsError> {
    open_attached(signed_der, Pkcs7Flags::BINARY | Pkcs7Flags::NOVERIFY)
        .map_err(|e| e.unwrap_or(CmsError::BadSignature))
}

/// Verifies a detached signature over `content` and returns the signer's
/// certificate (DER), which chains to `root_pem` through the certificates
/// in `intermediates_pem` or those the signature carries.
pub fn verify_detached(
    signature_der: &[u8],
    content: &[u8],
    root_pem: &str,
    intermediates_pem: &str,
) -> Result<Vec<u8>, CmsError> {
    let signer = verify_detached_signature(signature_der, content)?;
    SignerChain::new(root_pem, intermediates_pem)?.verify(&signer)?;
    Ok(signer)
}

/// Verifies a detached signature over `content` with the key of the signer
/// certificate it carries, and returns that certificate (DER). Whose
/// certificate it is, and whether it chains to anything, is not checked
/// here ([`SignerChain::verify`]).
///
/// The shape devices send (one RSA signer named by issuer and serial, with
/// signed attributes) is read and verified without OpenSSL, which costs
/// several times as much per message; any other shape goes to OpenSSL.
pub fn verify_detached_signature(
    signature_der: &[u8],
    content: &[u8],
) -> Result<Vec<u8>, CmsError> {
    if signature_der.len() > MAX_SIGNATURE_BYTES {
        return Err(CmsError::TooLong);
    }
    match crate::scep::cms::verify_detached_rsa(signature_der, content) {
        Ok(signer) => Ok(signer),
        Err(crate::scep::cms::DetachedCheck::Refused(refusal)) => Err(refusal),
        Err(crate::scep::cms::DetachedCheck::OtherShape)
            if crate::scep::cms::openssl_may_read(signature_der) =>
        {
            verify_detached_with_openssl(signature_der, content)
        }
        Err(crate::scep::cms::DetachedCheck::OtherShape) => Err(CmsError::Malformed(
            "not a SignedData with one SHA-1 or SHA-256 digest algorithm and one signer".into(),
        )),
    }
}

/// [`verify_detached_signature`] through OpenSSL's PKCS #7 verification.
fn verify_detached_with_openssl(signature_der: &[u8], content: &[u8]) -> Result<Vec<u8>, CmsError> {
    let pkcs7 = Pkcs7::from_der(signature_der).map_err(|e| CmsError::Malformed(reason(&e)))?;
    let none = Stack::new().map_err(|e| CmsError::Malformed(reason(&e)))?;
    let signer = pkcs7
        .signers(&none, Pkcs7Flags::empty())
        .map_err(|_| CmsError::NoSigner)?
        .into_iter()
        .next()
        .ok_or(CmsError::NoSigner)?;
    // The signature alone: the chain is checked by `SignerChain`, with the
    // certificate purposes a device identity has (client auth, not S/MIME).
    let store = X509StoreBuilder::new()
        .map_err(|e| CmsError::Malformed(reason(&e)))?
        .build();
    pkcs7
        .verify(
            &none,
            &store,
            Some(content),
            None,
            Pkcs7Flags::BINARY | Pkcs7Flags::NOVERIFY,
        )
        .map_err(|_| CmsError::BadSignature)?;
    signer.to_der().map_err(|e| CmsError::Malformed(reason(&e)))
}

/// The CA a signer's certificate must chain to, parsed once.
pub struct SignerChain {
    trusted: X509Store,
    intermediates: Vec<X509>,
}

impl std::fmt::Debug for SignerChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignerChain")
    }
}

impl SignerChain {
    /// The root(s) in `root_pem`, reached through `intermediates_pem`.
    pub fn new(root_pem: &str, intermediates_pem: &str) -> Result<Self, CmsError> {
        let mut trusted = X509StoreBuilder::new().map_err(|e| CmsError::Key(reason(&e)))?;
        for root in certificates(root_pem)? {
            trusted
                .add_cert(root)
                .map_err(|e| CmsError::Key(reason(&e)))?;
        }
        let intermediates = if intermediates_pem.trim().is_empty() {
            Vec::new()
        } else {
            certificates(intermediates_pem)?
        };
        Ok(SignerChain {
            trusted: trusted.build(),
            intermediates,
        })
    }

    /// Whether the certificate `signer_der` chains to the root now
    /// (validity times included).
    pub fn verify(&self, signer_der: &[u8]) -> Result<(), CmsError> {
        let signer = X509::from_der(signer_der).map_err(|e| CmsError::Malformed(reason(&e)))?;
        let mut untrusted = Stack::new().map_err(|e| CmsError::Key(reason(&e)))?;
        for cert in &self.intermediates {
            untrusted
                .push(cert.clone())
                .map_err(|e| CmsError::Key(reason(&e)))?;
        }
        let mut context = X509StoreContext::new().map_err(|e| CmsError::Key(reason(&e)))?;
        let chains = context
            .init(&self.trusted, &signer, &untrusted, |c| c.verify_cert())
            .map_err(|_| CmsError::UntrustedSigner)?;
        if !chains {
            return Err(CmsError::UntrustedSigner);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Authority, generate_authority};
    use chrono::{Duration, Utc};
    use openssl::rsa::Rsa;

    struct Device {
        root_pem: String,
        issuing_pem: String,
        cert_pem: String,
        cert_der: Vec<u8>,
        key: PrivateKeyPem,
    }

    fn device() -> Device {
        let now = Utc::now();
        let generated = generate_authority("Test", now).unwrap();
        let authority = Authority::load(
            &generated.root_cert_pem,
            &generated.issuing_cert_pem,
            &generated.issuing_key_pem,
        )
        .unwrap();
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let issued = authority
            .issue_scep_device(
                &key.public_key_to_der().unwrap(),
                "device",
                "urn:latchkey:device:d1",
                now,
                Duration::days(365),
            )
            .unwrap();
        Device {
            root_pem: generated.root_cert_pem,
            issuing_pem: generated.issuing_cert_pem,
            cert_pem: issued.pem,
            cert_der: issued.der,
            key: PrivateKeyPem::new(
                String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap(),
            ),
        }
    }

    #[test]
    fn a_devices_detached_signature_names_its_certificate() {
        let d = device();
        let body = b"<plist>check-in</plist>";
        let signature = sign_detached(body, &d.cert_pem, &d.key).unwrap();
        let signer = verify_detached(&signature, body, &d.root_pem, &d.issuing_pem).unwrap();
        assert_eq!(signer, d.cert_der);
    }

    #[test]
    fn a_devices_signature_is_verified_without_openssl_and_a_tampered_one_refused() {
        let d = device();
        let body = b"<plist>Idle</plist>";
        let signature = sign_detached(body, &d.cert_pem, &d.key).unwrap();
        assert!(matches!(
            crate::scep::cms::verify_detached_rsa(&signature, body),
            Ok(signer) if signer == d.cert_der
        ));
        assert!(matches!(
            crate::scep::cms::verify_detached_rsa(&signature, b"<plist>Ack</plist>"),
            Err(crate::scep::cms::DetachedCheck::Refused(
                CmsError::BadSignature
            ))
        ));
        // The signature's last octet changed: the digest still matches, the
        // RSA signature over the attributes does not.
        let mut forged = signature.clone();
        let position = forged
            .windows(4)
            .rposition(|w| w == [0x04, 0x82, 0x01, 0x00])
            .unwrap();
        forged[position + 4 + 255] ^= 1;
        assert!(matches!(
            verify_detached_signature(&forged, body),
            Err(CmsError::BadSignature)
        ));
    }

    #[test]
    fn a_signature_without_signed_attributes_is_verified_by_openssl() {
        let d = device();
        let body = b"<plist>Idle</plist>";
        let signer = X509::from_pem(d.cert_pem.as_bytes()).unwrap();
        let key = PKey::private_key_from_pem(d.key.expose().as_bytes()).unwrap();
        let flags = Pkcs7Flags::BINARY | Pkcs7Flags::DETACHED | Pkcs7Flags::NOATTR;
        let signature = Pkcs7::sign(&signer, &key, &Stack::new().unwrap(), body, flags)
            .unwrap()
            .to_der()
            .unwrap();
        assert!(matches!(
            crate::scep::cms::verify_detached_rsa(&signature, body),
            Err(crate::scep::cms::DetachedCheck::OtherShape)
        ));
        let verified = verify_detached(&signature, body, &d.root_pem, &d.issuing_pem).unwrap();
        assert_eq!(verified, d.cert_der);
        assert!(matches!(
            verify_detached(&signature, b"other", &d.root_pem, &d.issuing_pem),
            Err(CmsError::BadSignature)
        ));
    }

    #[test]
    fn a_signature_over_another_body_is_refused() {
        let d = device();
        let signature = sign_detached(b"the body signed", &d.cert_pem, &d.key).unwrap();
        assert!(matches!(
            verify_detached(&signature, b"the body sent", &d.root_pem, &d.issuing_pem),
            Err(CmsError::BadSignature)
        ));
    }

    #[test]
    fn a_certificate_of_another_ca_is_refused_even_when_the_signature_holds() {
        let d = device();
        let other = device();
        let body = b"body";
        let signature = sign_detached(body, &other.cert_pem, &other.key).unwrap();
        assert!(matches!(
            verify_detached(&signature, body, &d.root_pem, &d.issuing_pem),
            Err(CmsError::UntrustedSigner)
        ));
    }

    #[test]
    fn garbage_and_oversized_signatures_are_refused_without_panicking() {
        let d = device();
        for garbage in [&b""[..], b"\x30\x82\xff\xff", b"not der at all"] {
            assert!(matches!(
                verify_detached(garbage, b"body", &d.root_pem, &d.issuing_pem),
                Err(CmsError::Malformed(_))
            ));
        }
        let huge = vec![0x30u8; MAX_SIGNATURE_BYTES + 1];
        assert!(matches!(
            verify_detached(&huge, b"body", &d.root_pem, &d.issuing_pem),
            Err(CmsError::TooLong)
        ));
    }

    #[test]
    fn an_attached_signature_carries_the_content_and_the_chain() {
        let d = device();
        let signed = sign_attached(b"profile", &d.cert_pem, &d.key, &d.issuing_pem).unwrap();
        let pkcs7 = Pkcs7::from_der(&signed).unwrap();
        let none = Stack::new().unwrap();
        let store = X509StoreBuilder::new().unwrap().build();
        let mut content = Vec::new();
        pkcs7
            .verify(
                &none,
                &store,
                None,
                Some(&mut content),
                Pkcs7Flags::NOVERIFY,
            )
            .unwrap();
        assert_eq!(content, b"profile");
        let carried = pkcs7
            .signed()
            .and_then(|s| s.certificates())
            .map(|c| c.len());
        assert_eq!(carried, Some(2));
    }
}
