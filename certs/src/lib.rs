//! Latchkey PKI: the two-level certificate authority (root + issuing CA),
//! PKCS#10 CSR verification, device, server and client certificate issuing,
//! certificate inspection (serial, SPKI SHA-256, device id) and CRLs.
//!
//! Every private key of the deployment passes through this crate or `ca` in
//! the server; key material is carried in [`PrivateKeyPem`], which redacts
//! itself in `Debug`. Randomness (serials, secrets) comes from [`random_bytes`].

#[cfg(feature = "mdm")]
pub mod apns;
#[cfg(feature = "mdm")]
pub mod cms;
#[cfg(feature = "mdm")]
pub mod dep;
pub mod files;
pub mod jose;
#[cfg(feature = "mdm")]
pub mod scep;
pub mod tls;

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams,
    CertificateSigningRequestParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, PublicKeyData, RevokedCertParams, SanType,
    SerialNumber,
};
use ring::rand::SecureRandom;
use rustls_pki_types::CertificateSigningRequestDer;

/// What went wrong while handling a certificate, a key or a CSR.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("the certificate signing request is malformed: {0}")]
    MalformedCsr(String),
    #[error("the certificate signing request's signature does not verify")]
    CsrSignature,
    #[error("unsupported key {0}: devices must use ECDSA P-256")]
    UnsupportedKeyType(String),
    #[error("the certificate is malformed: {0}")]
    MalformedCertificate(String),
    #[error("the key is malformed: {0}")]
    MalformedKey(String),
    #[error("no certificate found in PEM input")]
    NoCertificate,
    #[error("the name {0:?} cannot be put in a certificate")]
    InvalidName(String),
    #[error("certificate time out of range")]
    TimeOutOfRange,
    #[error("the system random number generator failed")]
    Random,
    #[error("signing failed: {0}")]
    Signing(String),
}

/// A PEM-encoded private key. Its `Debug` output never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKeyPem(String);

impl PrivateKeyPem {
    pub fn new(pem: String) -> Self {
        Self(pem)
    }

    /// The PEM text, to write into a 0600 file or hand to a TLS library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PrivateKeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKeyPem([redacted])")
    }
}

/// Fills `N` bytes from the operating system's random number generator.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], CertError> {
    let mut bytes = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| CertError::Random)?;
    Ok(bytes)
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// The URI put in a device certificate's subjectAltName.
pub fn device_uri(device_id: &str) -> String {
    format!("urn:latchkey:device:{device_id}")
}

fn random_serial() -> Result<SerialNumber, CertError> {
    let mut bytes = random_bytes::<16>()?;
    // RFC 5280 §4.1.2.2: a positive integer; clearing the top bit keeps the
    // DER encoding at 16 octets without a sign byte.
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

fn to_offset(t: DateTime<Utc>) -> Result<time::OffsetDateTime, CertError> {
    time::OffsetDateTime::from_unix_timestamp(t.timestamp()).map_err(|_| CertError::TimeOutOfRange)
}

fn from_offset(t: time::OffsetDateTime) -> Result<DateTime<Utc>, CertError> {
    DateTime::from_timestamp(t.unix_timestamp(), 0).ok_or(CertError::TimeOutOfRange)
}

fn signing(e: rcgen::Error) -> CertError {
    CertError::Signing(e.to_string())
}

fn name(common_name: &str, organization: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, organization);
    dn.push(DnType::CommonName, common_name);
    dn
}

/// PEM texts of a newly generated authority, to be persisted by the caller.
#[derive(Debug, Clone)]
pub struct GeneratedAuthority {
    pub root_cert_pem: String,
    pub root_key_pem: PrivateKeyPem,
    pub issuing_cert_pem: String,
    pub issuing_key_pem: PrivateKeyPem,
}

/// Generates a root CA (20 years) and an issuing CA (10 years) signed by it,
/// both ECDSA P-256.
pub fn generate_authority(
    organization: &str,
    now: DateTime<Utc>,
) -> Result<GeneratedAuthority, CertError> {
    let root_key = KeyPair::generate().map_err(signing)?;
    let mut root = CertificateParams::default();
    root.distinguished_name = name(&format!("{organization} Root CA"), organization);
    root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    root.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    root.not_before = to_offset(now - Duration::minutes(5))?;
    root.not_after = to_offset(now + Duration::days(365 * 20))?;
    root.serial_number = Some(random_serial()?);
    root.key_identifier_method = KeyIdMethod::Sha256;
    let root_cert = root.self_signed(&root_key).map_err(signing)?;
    let root_issuer = Issuer::new(root, root_key);

    let issuing_key = KeyPair::generate().map_err(signing)?;
    let mut issuing = CertificateParams::default();
    issuing.distinguished_name = name(&format!("{organization} Issuing CA"), organization);
    issuing.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    issuing.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    issuing.not_before = to_offset(now - Duration::minutes(5))?;
    issuing.not_after = to_offset(now + Duration::days(365 * 10))?;
    issuing.serial_number = Some(random_serial()?);
    issuing.use_authority_key_identifier_extension = true;
    let issuing_cert = issuing
        .signed_by(&issuing_key, &root_issuer)
        .map_err(signing)?;

    Ok(GeneratedAuthority {
        root_cert_pem: root_cert.pem(),
        root_key_pem: PrivateKeyPem(root_issuer.key().serialize_pem()),
        issuing_cert_pem: issuing_cert.pem(),
        issuing_key_pem: PrivateKeyPem(issuing_key.serialize_pem()),
    })
}

/// A freshly issued certificate and the facts the store keeps about it.
#[derive(Debug, Clone)]
pub struct IssuedCertificate {
    pub pem: String,
    pub der: Vec<u8>,
    /// Lower-case hex of the serial number.
    pub serial_hex: String,
    /// SHA-256 of the certificate's SubjectPublicKeyInfo DER.
    pub spki_sha256: [u8; 32],
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
}

/// A CSR whose signature verified and whose key is ECDSA P-256.
pub struct VerifiedCsr {
    request: CertificateSigningRequestParams,
    spki_sha256: [u8; 32],
}

impl fmt::Debug for VerifiedCsr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedCsr")
            .field("spki_sha256", &hex::encode(self.spki_sha256))
            .finish()
    }
}

impl VerifiedCsr {
    pub fn spki_sha256(&self) -> [u8; 32] {
        self.spki_sha256
    }
}

/// The key in a CSR, as far as enrollment cares.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CsrKey {
    /// ECDSA on prime256v1 with a 65-byte uncompressed point.
    P256,
    /// Anything else, described for the error message.
    Other(String),
}

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_PRIME256V1: &str = "1.2.840.10045.3.1.7";
const OID_SECP384R1: &str = "1.3.132.0.34";
const OID_SECP521R1: &str = "1.3.132.0.35";
const OID_RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const OID_ED25519: &str = "1.3.101.112";
const OID_ED448: &str = "1.3.101.113";
const OID_ECDSA_WITH_SHA256: &str = "1.2.840.10045.4.3.2";
/// SEC 1 §2.3.3: 0x04 followed by the two 32-byte coordinates.
const P256_UNCOMPRESSED_POINT_LEN: usize = 65;

/// Reads the subject public key of a CSR strictly: the algorithm, the
/// named curve and the encoding of the point. rcgen names the key after
/// the signature algorithm alone, so a P-384 key signed with SHA-256 would
/// otherwise pass for P-256 and end up in a certificate that says
/// prime256v1 around a 97-byte point.
fn csr_key(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> CsrKey {
    let algorithm = spki.algorithm.algorithm.to_id_string();
    match algorithm.as_str() {
        OID_EC_PUBLIC_KEY => {}
        OID_RSA_ENCRYPTION => return CsrKey::Other("RSA".into()),
        OID_ED25519 => return CsrKey::Other("Ed25519".into()),
        OID_ED448 => return CsrKey::Other("Ed448".into()),
        other => return CsrKey::Other(format!("with algorithm {other}")),
    }
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|oid| oid.to_id_string());
    match curve.as_deref() {
        Some(OID_PRIME256V1) => {}
        Some(OID_SECP384R1) => return CsrKey::Other("ECDSA P-384 (secp384r1)".into()),
        Some(OID_SECP521R1) => return CsrKey::Other("ECDSA P-521 (secp521r1)".into()),
        Some(other) => return CsrKey::Other(format!("ECDSA on curve {other}")),
        None => {
            return CsrKey::Other("ECDSA without a named curve".into());
        }
    }
    let point = &spki.subject_public_key.data;
    if point.len() != P256_UNCOMPRESSED_POINT_LEN || point.first() != Some(&0x04) {
        return CsrKey::Other(format!(
            "ECDSA P-256 with a {}-byte point (an uncompressed point of {P256_UNCOMPRESSED_POINT_LEN} bytes is required)",
            point.len()
        ));
    }
    CsrKey::P256
}

/// Parses a DER PKCS#10 request, requires an ECDSA P-256 key (named curve
/// prime256v1, uncompressed point) signed with ECDSA SHA-256, and verifies
/// its self-signature.
pub fn verify_csr(der: &[u8]) -> Result<VerifiedCsr, CertError> {
    use x509_parser::prelude::FromDer;
    if der.is_empty() {
        return Err(CertError::MalformedCsr("empty".into()));
    }
    let (rest, parsed) =
        x509_parser::certification_request::X509CertificationRequest::from_der(der)
            .map_err(|e| CertError::MalformedCsr(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CertError::MalformedCsr(
            "trailing bytes after the request".into(),
        ));
    }
    if let CsrKey::Other(what) = csr_key(&parsed.certification_request_info.subject_pki) {
        return Err(CertError::UnsupportedKeyType(what));
    }
    if parsed.signature_algorithm.algorithm.to_id_string() != OID_ECDSA_WITH_SHA256 {
        return Err(CertError::UnsupportedKeyType(format!(
            "ECDSA P-256 signed with {} (ecdsa-with-SHA256 is required)",
            parsed.signature_algorithm.algorithm.to_id_string()
        )));
    }
    let request = CertificateSigningRequestParams::from_der(&CertificateSigningRequestDer::from(
        der.to_vec(),
    ))
    .map_err(|e| match e {
        rcgen::Error::InvalidCertificationRequestSignature => CertError::CsrSignature,
        rcgen::Error::UnsupportedSignatureAlgorithm => {
            CertError::UnsupportedKeyType("(unsupported signature algorithm)".into())
        }
        other => CertError::MalformedCsr(other.to_string()),
    })?;
    if request.public_key.algorithm() != &rcgen::PKCS_ECDSA_P256_SHA256 {
        return Err(CertError::UnsupportedKeyType(format!(
            "{:?}",
            request.public_key.algorithm()
        )));
    }
    let spki_sha256 = sha256(&request.public_key.subject_public_key_info());
    Ok(VerifiedCsr {
        request,
        spki_sha256,
    })
}

/// The issuing CA, loaded from its PEM files, with the root for chains.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    issuing_cert_pem: String,
    root_cert_pem: String,
}

impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Authority { key: [redacted] }")
    }
}

impl Authority {
    pub fn load(
        root_cert_pem: &str,
        issuing_cert_pem: &str,
        issuing_key_pem: &PrivateKeyPem,
    ) -> Result<Self, CertError> {
        let key = KeyPair::from_pem(issuing_key_pem.expose())
            .map_err(|e| CertError::MalformedKey(e.to_string()))?;
        let issuer = Issuer::from_ca_cert_pem(issuing_cert_pem, key)
            .map_err(|e| CertError::MalformedCertificate(e.to_string()))?;
        // Both certificates must parse; the root is only handed out.
        inspect_pem(root_cert_pem)?;
        Ok(Self {
            issuer,
            issuing_cert_pem: issuing_cert_pem.to_owned(),
            root_cert_pem: root_cert_pem.to_owned(),
        })
    }

    /// The root certificate: the trust anchor given to every client.
    pub fn root_pem(&self) -> &str {
        &self.root_cert_pem
    }

    /// The issuing CA certificate, sent along with every leaf.
    pub fn issuing_pem(&self) -> &str {
        &self.issuing_cert_pem
    }

    /// `leaf` followed by the issuing CA: what a TLS peer presents.
    pub fn chain_pem(&self, leaf_pem: &str) -> String {
        let mut chain = leaf_pem.trim_end().to_owned();
        chain.push('\n');
        chain.push_str(self.issuing_cert_pem.trim_end());
        chain.push('\n');
        chain
    }

    fn leaf_params(
        &self,
        distinguished_name: DistinguishedName,
        now: DateTime<Utc>,
        validity: Duration,
    ) -> Result<CertificateParams, CertError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = to_offset(now - Duration::minutes(5))?;
        params.not_after = to_offset(now + validity)?;
        params.serial_number = Some(random_serial()?);
        params.use_authority_key_identifier_extension = true;
        Ok(params)
    }

    fn finish(&self, cert: rcgen::Certificate) -> Result<IssuedCertificate, CertError> {
        let der = cert.der().to_vec();
        let info = inspect_certificate(&der)?;
        Ok(IssuedCertificate {
            pem: cert.pem(),
            der,
            serial_hex: info.serial_hex,
            spki_sha256: info.spki_sha256,
            not_before: info.not_before,
            not_after: info.not_after,
        })
    }

    /// Issues a device certificate for the key in `csr`: CN = device id,
    /// SAN URI `urn:latchkey:device:<id>`, EKU clientAuth.
    pub fn issue_device(
        &self,
        csr: &VerifiedCsr,
        device_id: &str,
        now: DateTime<Utc>,
        validity: Duration,
    ) -> Result<IssuedCertificate, CertError> {
        let mut params = self.leaf_params(name(device_id, "Latchkey device"), now, validity)?;
        let uri = device_uri(device_id)
            .try_into()
            .map_err(|_| CertError::InvalidName(device_id.to_owned()))?;
        params.subject_alt_names = vec![SanType::URI(uri)];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let request = CertificateSigningRequestParams {
            params,
            public_key: csr.request.public_key.clone(),
        };
        let cert = request.signed_by(&self.issuer).map_err(signing)?;
        self.finish(cert)
    }

    /// Issues a server certificate with a fresh key for DNS names and IP addresses.
    pub fn issue_server(
        &self,
        names: &[String],
        now: DateTime<Utc>,
        validity: Duration,
    ) -> Result<(IssuedCertificate, PrivateKeyPem), CertError> {
        let key = KeyPair::generate().map_err(signing)?;
        let first = names.first().map(String::as_str).unwrap_or("latchkeyd");
        let mut params = self.leaf_params(name(first, "Latchkey server"), now, validity)?;
        let mut sans = Vec::with_capacity(names.len());
        for n in names {
            if let Ok(ip) = n.parse::<std::net::IpAddr>() {
                sans.push(SanType::IpAddress(ip));
            } else {
                let dns = n
                    .clone()
                    .try_into()
                    .map_err(|_| CertError::InvalidName(n.clone()))?;
                sans.push(SanType::DnsName(dns));
            }
        }
        params.subject_alt_names = sans;
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.issuer).map_err(signing)?;
        Ok((self.finish(cert)?, PrivateKeyPem(key.serialize_pem())))
    }

    /// Issues a client certificate with a fresh key (the server's own
    /// identity towards an external MQTT broker).
    pub fn issue_client(
        &self,
        common_name: &str,
        now: DateTime<Utc>,
        validity: Duration,
    ) -> Result<(IssuedCertificate, PrivateKeyPem), CertError> {
        let key = KeyPair::generate().map_err(signing)?;
        let mut params = self.leaf_params(name(common_name, "Latchkey server"), now, validity)?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).map_err(signing)?;
        Ok((self.finish(cert)?, PrivateKeyPem(key.serialize_pem())))
    }

    /// A CRL signed by the issuing CA listing `revoked` (serial hex, time).
    pub fn crl_pem(
        &self,
        revoked: &[(String, DateTime<Utc>)],
        crl_number: u64,
        now: DateTime<Utc>,
        next_update: DateTime<Utc>,
    ) -> Result<String, CertError> {
        let mut revoked_certs = Vec::with_capacity(revoked.len());
        for (serial_hex, at) in revoked {
            let serial = hex::decode(serial_hex)
                .map_err(|_| CertError::MalformedCertificate(format!("serial {serial_hex}")))?;
            revoked_certs.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&serial),
                revocation_time: to_offset(*at)?,
                reason_code: None,
                invalidity_date: None,
            });
        }
        let params = CertificateRevocationListParams {
            this_update: to_offset(now - Duration::minutes(5))?,
            next_update: to_offset(next_update)?,
            crl_number: SerialNumber::from_slice(&crl_number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer).map_err(signing)?;
        crl.pem().map_err(signing)
    }
}

/// What the server reads from a presented certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    pub serial_hex: String,
    pub spki_sha256: [u8; 32],
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub common_name: Option<String>,
    /// The id in a `urn:latchkey:device:<id>` SAN URI, if present.
    pub device_id: Option<String>,
    /// The subject public key's bits (for P-256, the uncompressed point).
    pub public_key: Vec<u8>,
}

/// Reads serial, SPKI hash, validity and device id from a DER certificate.
pub fn inspect_certificate(der: &[u8]) -> Result<CertificateInfo, CertError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| CertError::MalformedCertificate(e.to_string()))?;
    let tbs = &cert.tbs_certificate;
    let serial_hex = hex::encode(tbs.raw_serial());
    let spki_sha256 = sha256(tbs.subject_pki.raw);
    let not_before = from_offset(tbs.validity.not_before.to_datetime())?;
    let not_after = from_offset(tbs.validity.not_after.to_datetime())?;
    let common_name = tbs
        .subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    let mut device_id = None;
    if let Ok(Some(san)) = tbs.subject_alternative_name() {
        for general_name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::URI(uri) = general_name
                && let Some(id) = uri.strip_prefix("urn:latchkey:device:")
            {
                device_id = Some(id.to_owned());
            }
        }
    }
    Ok(CertificateInfo {
        serial_hex,
        spki_sha256,
        not_before,
        not_after,
        common_name,
        device_id,
        public_key: tbs.subject_pki.subject_public_key.data.to_vec(),
    })
}

/// Serials (lower-case hex) listed in a PEM CRL.
pub fn revoked_serials(crl_pem: &str) -> Result<Vec<String>, CertError> {
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::CertificateRevocationListDer::from_pem_slice(crl_pem.as_bytes())
        .map_err(|e| CertError::MalformedCertificate(e.to_string()))?;
    let (_, crl) = x509_parser::parse_x509_crl(&der)
        .map_err(|e| CertError::MalformedCertificate(e.to_string()))?;
    Ok(crl
        .iter_revoked_certificates()
        .map(|revoked| hex::encode(revoked.raw_serial()))
        .collect())
}

/// DER blocks of every `CERTIFICATE` in a PEM text, in order.
pub fn pem_certificates(pem: &str) -> Result<Vec<Vec<u8>>, CertError> {
    use rustls_pki_types::pem::PemObject;
    let mut out = Vec::new();
    for item in rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let der = item.map_err(|e| CertError::MalformedCertificate(e.to_string()))?;
        out.push(der.to_vec());
    }
    if out.is_empty() {
        return Err(CertError::NoCertificate);
    }
    Ok(out)
}

/// Inspects the first certificate of a PEM text.
pub fn inspect_pem(pem: &str) -> Result<CertificateInfo, CertError> {
    let certs = pem_certificates(pem)?;
    let first = certs.first().ok_or(CertError::NoCertificate)?;
    inspect_certificate(first)
}

/// A new ECDSA P-256 key and a CSR for it, as an agent makes them.
pub fn new_key_and_csr(common_name: &str) -> Result<(PrivateKeyPem, Vec<u8>), CertError> {
    let key = KeyPair::generate().map_err(signing)?;
    let csr = csr_for_key(&PrivateKeyPem(key.serialize_pem()), common_name)?;
    Ok((PrivateKeyPem(key.serialize_pem()), csr))
}

/// A CSR for an existing key (certificate renewal keeps the device key).
pub fn csr_for_key(key: &PrivateKeyPem, common_name: &str) -> Result<Vec<u8>, CertError> {
    let key =
        KeyPair::from_pem(key.expose()).map_err(|e| CertError::MalformedKey(e.to_string()))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    let csr = params.serialize_request(&key).map_err(signing)?;
    Ok(csr.der().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authority(now: DateTime<Utc>) -> Authority {
        let generated = generate_authority("Test", now).unwrap();
        Authority::load(
            &generated.root_cert_pem,
            &generated.issuing_cert_pem,
            &generated.issuing_key_pem,
        )
        .unwrap()
    }

    #[test]
    fn device_certificate_carries_device_id_and_csr_key() {
        let now = Utc::now();
        let ca = authority(now);
        let (_key, csr_der) = new_key_and_csr("host").unwrap();
        let csr = verify_csr(&csr_der).unwrap();
        let cert = ca
            .issue_device(&csr, "0123abcd", now, Duration::days(30))
            .unwrap();
        let info = inspect_certificate(&cert.der).unwrap();
        assert_eq!(info.device_id.as_deref(), Some("0123abcd"));
        assert_eq!(info.common_name.as_deref(), Some("0123abcd"));
        assert_eq!(info.spki_sha256, csr.spki_sha256());
        assert_eq!(info.serial_hex, cert.serial_hex);
        assert!(info.not_after > now + Duration::days(29));
        assert_eq!(pem_certificates(&ca.chain_pem(&cert.pem)).unwrap().len(), 2);
    }

    #[test]
    fn csr_with_broken_signature_is_refused() {
        let (_key, mut csr_der) = new_key_and_csr("host").unwrap();
        let last = csr_der.len() - 1;
        csr_der[last] ^= 0x55;
        assert!(matches!(
            verify_csr(&csr_der),
            Err(CertError::CsrSignature | CertError::MalformedCsr(_))
        ));
    }

    #[test]
    fn csr_with_tampered_subject_fails_signature_check() {
        let (_key, mut csr_der) = new_key_and_csr("hostA").unwrap();
        let pos = csr_der.windows(5).position(|w| w == b"hostA").unwrap();
        csr_der[pos + 4] = b'B';
        let result = verify_csr(&csr_der);
        assert!(matches!(result, Err(CertError::CsrSignature)), "{result:?}");
    }

    #[test]
    fn garbage_and_non_p256_csrs_are_refused() {
        assert!(matches!(verify_csr(b""), Err(CertError::MalformedCsr(_))));
        assert!(matches!(
            verify_csr(b"not a csr at all"),
            Err(CertError::MalformedCsr(_))
        ));
        let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let params = CertificateParams::new(vec!["x".to_owned()]).unwrap();
        let csr = params.serialize_request(&key).unwrap();
        assert!(matches!(
            verify_csr(csr.der()),
            Err(CertError::UnsupportedKeyType(_))
        ));
    }

    fn refusal(der: &[u8]) -> String {
        match verify_csr(der) {
            Err(CertError::UnsupportedKeyType(what)) => what,
            other => panic!("expected an unsupported key, got {other:?}"),
        }
    }

    #[test]
    fn an_agent_sending_a_p256_csr_made_by_openssl_gets_a_p256_certificate() {
        let now = Utc::now();
        let ca = authority(now);
        let csr = verify_csr(include_bytes!("../test_data/csr-p256-sha256.der")).unwrap();
        let cert = ca
            .issue_device(&csr, "0123abcd", now, Duration::days(30))
            .unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(&cert.der).unwrap();
        let spki = &parsed.tbs_certificate.subject_pki;
        assert_eq!(csr_key(spki), CsrKey::P256);
        assert_eq!(spki.subject_public_key.data.len(), 65);
    }

    #[test]
    fn a_device_sending_a_p384_key_signed_with_sha256_is_refused() {
        let what = refusal(include_bytes!("../test_data/csr-p384-sha256.der"));
        assert!(what.contains("P-384"), "{what}");
        let message = CertError::UnsupportedKeyType(what).to_string();
        assert!(
            message.contains("devices must use ECDSA P-256"),
            "{message}"
        );
    }

    #[test]
    fn a_device_sending_a_p521_key_signed_with_sha256_is_refused() {
        let what = refusal(include_bytes!("../test_data/csr-p521-sha256.der"));
        assert!(what.contains("P-521"), "{what}");
    }

    #[test]
    fn a_device_sending_an_ed25519_or_rsa_key_is_refused() {
        let ed25519 = refusal(include_bytes!("../test_data/csr-ed25519.der"));
        assert!(ed25519.contains("Ed25519"), "{ed25519}");
        let rsa = refusal(include_bytes!("../test_data/csr-rsa2048-sha256.der"));
        assert!(rsa.contains("RSA"), "{rsa}");
    }

    #[test]
    fn a_device_sending_a_compressed_p256_point_is_refused() {
        let what = refusal(include_bytes!(
            "../test_data/csr-p256-compressed-sha256.der"
        ));
        assert!(what.contains("33-byte point"), "{what}");
    }

    #[test]
    fn a_device_signing_its_p256_csr_with_sha384_is_refused() {
        let what = refusal(include_bytes!("../test_data/csr-p256-sha384.der"));
        assert!(what.contains("ecdsa-with-SHA256 is required"), "{what}");
    }

    #[test]
    fn private_keys_do_not_print() {
        let generated = generate_authority("Test", Utc::now()).unwrap();
        let printed = format!("{generated:?}");
        assert!(!printed.contains("PRIVATE KEY"), "{printed}");
        assert!(printed.contains("[redacted]"));
    }

    #[test]
    fn crl_lists_revoked_serials() {
        let now = Utc::now();
        let ca = authority(now);
        let pem = ca
            .crl_pem(&[("01ab".into(), now)], 7, now, now + Duration::days(1))
            .unwrap();
        assert!(pem.contains("BEGIN X509 CRL"));
        assert_eq!(revoked_serials(&pem).unwrap(), ["01ab"]);
    }
}
