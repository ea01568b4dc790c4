//! The MDM push certificate an admin imports: Apple issues it for the
//! deployment's push topic, named in the subject's UID attribute
//! (`com.apple.mgmt.External.<uuid>`), and the server presents it, with
//! its key, as the TLS client certificate of every APNs request.
//!
//! Reading one checks what would otherwise fail only at the first push,
//! days later: that the PEM holds a certificate with an MDM topic, that
//! the key is the certificate's, and that the certificate is in force.
//! The key comes back as PKCS#8 PEM, whatever form it was given in
//! (OpenSSL's `BEGIN RSA PRIVATE KEY` included), so one form is stored.

use chrono::{DateTime, Utc};
use openssl::pkey::PKey;
use openssl::x509::X509;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::PrivateKeyPem;

/// The UID attribute (RFC 4519 `uid`, 0.9.2342.19200300.100.1.1).
const UID_OID: &str = "0.9.2342.19200300.100.1.1";

/// Every MDM push topic starts so (Apple's push certificates for MDM).
pub const MDM_TOPIC_PREFIX: &str = "com.apple.mgmt.";

#[derive(Debug, thiserror::Error)]
pub enum PushCertificateError {
    #[error("the certificate file holds no PEM certificate (are the two files swapped?)")]
    NoCertificate,
    #[error("the certificate file holds {0} certificates; give only the push certificate")]
    SeveralCertificates(usize),
    #[error("the certificate is malformed: {0}")]
    MalformedCertificate(String),
    #[error(
        "the certificate names no MDM push topic: its subject has no UID starting with \
         {MDM_TOPIC_PREFIX} (is it Apple's MDM push certificate?)"
    )]
    NoTopic,
    #[error("the key file holds no readable unencrypted private key: {0}")]
    MalformedKey(String),
    #[error("the private key does not belong to this certificate")]
    KeyMismatch,
    #[error("the certificate expired at {0}")]
    Expired(DateTime<Utc>),
    #[error("the certificate is not valid before {0}")]
    NotYetValid(DateTime<Utc>),
}

/// A push certificate that passed every check, ready to store.
#[derive(Debug, Clone)]
pub struct PushCertificate {
    /// The APNs topic: the subject's UID.
    pub topic: String,
    /// The certificate alone, as PEM.
    pub certificate_pem: String,
    /// The key as PKCS#8 PEM.
    pub key_pem: PrivateKeyPem,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    /// The subject's common name, as Apple wrote it (shown to the admin).
    pub common_name: String,
}

/// Reads and checks a push certificate and its key, as of `now`.
pub fn read_push_certificate(
    certificate_pem: &str,
    key_pem: &str,
    now: DateTime<Utc>,
) -> Result<PushCertificate, PushCertificateError> {
    let ders = crate::pem_certificates(certificate_pem).map_err(|e| match e {
        crate::CertError::NoCertificate => PushCertificateError::NoCertificate,
        other => PushCertificateError::MalformedCertificate(other.to_string()),
    })?;
    let der = match ders.as_slice() {
        [] => return Err(PushCertificateError::NoCertificate),
        [one] => one,
        several => return Err(PushCertificateError::SeveralCertificates(several.len())),
    };
    let (_, parsed) = X509Certificate::from_der(der)
        .map_err(|e| PushCertificateError::MalformedCertificate(e.to_string()))?;
    let topic = parsed
        .subject()
        .iter_attributes()
        .find(|a| a.attr_type().to_id_string() == UID_OID)
        .and_then(|a| a.as_str().ok())
        .filter(|uid| uid.starts_with(MDM_TOPIC_PREFIX) && uid.len() > MDM_TOPIC_PREFIX.len())
        .ok_or(PushCertificateError::NoTopic)?
        .to_owned();
    let common_name = parsed
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_owned();
    let time = |t: x509_parser::time::ASN1Time| {
        DateTime::from_timestamp(t.timestamp(), 0).ok_or_else(|| {
            PushCertificateError::MalformedCertificate("validity out of range".into())
        })
    };
    let not_before = time(parsed.validity().not_before)?;
    let not_after = time(parsed.validity().not_after)?;

    let key = PKey::private_key_from_pem(key_pem.as_bytes())
        .map_err(|e| PushCertificateError::MalformedKey(first_reason(&e)))?;
    let certificate = X509::from_der(der)
        .map_err(|e| PushCertificateError::MalformedCertificate(first_reason(&e)))?;
    let public = certificate
        .public_key()
        .map_err(|e| PushCertificateError::MalformedCertificate(first_reason(&e)))?;
    if !public.public_eq(&key) {
        return Err(PushCertificateError::KeyMismatch);
    }
    if now >= not_after {
        return Err(PushCertificateError::Expired(not_after));
    }
    if now < not_before {
        return Err(PushCertificateError::NotYetValid(not_before));
    }
    let pkcs8 = key
        .private_key_to_pem_pkcs8()
        .map_err(|e| PushCertificateError::MalformedKey(first_reason(&e)))?;
    let key_pem = String::from_utf8(pkcs8)
        .map_err(|_| PushCertificateError::MalformedKey("not PEM text".into()))?;
    let certificate_pem = certificate
        .to_pem()
        .ok()
        .and_then(|p| String::from_utf8(p).ok())
        .ok_or_else(|| PushCertificateError::MalformedCertificate("cannot write PEM".into()))?;
    Ok(PushCertificate {
        topic,
        certificate_pem,
        key_pem: PrivateKeyPem::new(key_pem),
        not_before,
        not_after,
        common_name,
    })
}

/// OpenSSL's first reason, without its file and line noise.
fn first_reason(stack: &openssl::error::ErrorStack) -> String {
    stack
        .errors()
        .first()
        .and_then(|e| e.reason())
        .unwrap_or("unreadable")
        .to_owned()
}

/// A push certificate for tests and for trying Latchkey out: the shape
/// Apple issues (RSA-2048, the topic as the subject's UID), self-signed.
pub fn self_signed_push_certificate(
    topic: &str,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
) -> Result<(String, PrivateKeyPem), PushCertificateError> {
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::rsa::Rsa;
    use openssl::x509::{X509Builder, X509NameBuilder};

    let fail = |e: openssl::error::ErrorStack| PushCertificateError::MalformedKey(first_reason(&e));
    let rsa = Rsa::generate(2048).map_err(fail)?;
    let key = PKey::from_rsa(rsa).map_err(fail)?;
    let mut name = X509NameBuilder::new().map_err(fail)?;
    name.append_entry_by_nid(Nid::USERID, topic).map_err(fail)?;
    // Apple's CN is "APSP:" and the topic's last part (a UUID).
    let last = topic.rsplit('.').next().unwrap_or(topic);
    name.append_entry_by_nid(Nid::COMMONNAME, &format!("APSP:{last}"))
        .map_err(fail)?;
    let name = name.build();
    let mut builder = X509Builder::new().map_err(fail)?;
    builder.set_version(2).map_err(fail)?;
    let serial = BigNum::from_u32(1)
        .and_then(|n| n.to_asn1_integer())
        .map_err(fail)?;
    builder.set_serial_number(&serial).map_err(fail)?;
    builder.set_subject_name(&name).map_err(fail)?;
    builder.set_issuer_name(&name).map_err(fail)?;
    builder.set_pubkey(&key).map_err(fail)?;
    let from = Asn1Time::from_unix(not_before.timestamp()).map_err(fail)?;
    let until = Asn1Time::from_unix(not_after.timestamp()).map_err(fail)?;
    builder.set_not_before(&from).map_err(fail)?;
    builder.set_not_after(&until).map_err(fail)?;
    builder.sign(&key, MessageDigest::sha256()).map_err(fail)?;
    let pem = builder.build().to_pem().map_err(fail)?;
    let key_pem = key.private_key_to_pem_pkcs8().map_err(fail)?;
    let text = |bytes: Vec<u8>| {
        String::from_utf8(bytes).map_err(|_| PushCertificateError::MalformedKey("not PEM".into()))
    };
    Ok((text(pem)?, PrivateKeyPem::new(text(key_pem)?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    const TOPIC: &str = "com.apple.mgmt.External.5f0a1c2e-8a3b-4c6d-9e7f-0a1b2c3d4e5f";

    fn fresh() -> (String, PrivateKeyPem, DateTime<Utc>) {
        let now = Utc::now();
        let (cert, key) =
            self_signed_push_certificate(TOPIC, now - Duration::days(1), now + Duration::days(365))
                .unwrap();
        (cert, key, now)
    }

    #[test]
    fn the_topic_is_the_subjects_uid_and_the_key_comes_back_as_pkcs8() {
        let (cert, key, now) = fresh();
        let read = read_push_certificate(&cert, key.expose(), now).unwrap();
        assert_eq!(read.topic, TOPIC);
        assert_eq!(
            read.common_name,
            "APSP:5f0a1c2e-8a3b-4c6d-9e7f-0a1b2c3d4e5f"
        );
        assert!(
            read.key_pem
                .expose()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        assert!(read.not_after > now + Duration::days(364));
    }

    #[test]
    fn an_openssl_traditional_rsa_key_is_accepted_and_stored_as_pkcs8() {
        let (cert, key, now) = fresh();
        let traditional = PKey::private_key_from_pem(key.expose().as_bytes())
            .unwrap()
            .rsa()
            .unwrap()
            .private_key_to_pem()
            .unwrap();
        let traditional = String::from_utf8(traditional).unwrap();
        assert!(traditional.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        let read = read_push_certificate(&cert, &traditional, now).unwrap();
        assert!(
            read.key_pem
                .expose()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
    }

    #[test]
    fn another_certificates_key_is_refused() {
        let (cert, _, now) = fresh();
        let (_, other_key, _) = fresh();
        assert!(matches!(
            read_push_certificate(&cert, other_key.expose(), now),
            Err(PushCertificateError::KeyMismatch)
        ));
    }

    #[test]
    fn a_certificate_without_an_mdm_topic_is_refused() {
        let now = Utc::now();
        let (cert, key) = self_signed_push_certificate(
            "com.example.app",
            now - Duration::days(1),
            now + Duration::days(1),
        )
        .unwrap();
        assert!(matches!(
            read_push_certificate(&cert, key.expose(), now),
            Err(PushCertificateError::NoTopic)
        ));
    }

    #[test]
    fn an_expired_certificate_is_refused_with_its_expiry() {
        let (cert, key, now) = fresh();
        let later = now + Duration::days(400);
        assert!(matches!(
            read_push_certificate(&cert, key.expose(), later),
            Err(PushCertificateError::Expired(_))
        ));
    }

    #[test]
    fn files_swapped_or_empty_are_named_as_such() {
        let (cert, key, now) = fresh();
        assert!(matches!(
            read_push_certificate(key.expose(), &cert, now),
            Err(PushCertificateError::NoCertificate)
        ));
        assert!(matches!(
            read_push_certificate(&cert, "", now),
            Err(PushCertificateError::MalformedKey(_))
        ));
        let two = format!("{cert}{cert}");
        assert!(matches!(
            read_push_certificate(&two, key.expose(), now),
            Err(PushCertificateError::SeveralCertificates(2))
        ));
    }
}
