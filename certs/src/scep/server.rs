//! The server side of SCEP: the RA that PKIOperation messages are
//! encrypted to, decoding a PKCSReq (RFC 8894 §3.3.1) and encoding the
//! CertRep (§3.3.2) and the GetCACert answer (§4.2).

use std::fmt;

use chrono::{DateTime, Utc};
use openssl::pkey::{PKey, Private};
use openssl::x509::{X509, X509Req};

use super::cms::{self, AttributeValue, oid};
use super::{
    CertRepOutcome, ChallengePassword, ContentEncryption, DecodeError, FailInfo, MessageType,
    Nonce, Refusal, ReplyTo, ScepError, crypto, new_nonce,
};
use crate::PrivateKeyPem;

/// The registration authority: the RSA certificate devices encrypt their
/// requests to and that signs every CertRep, with its key.
pub struct RegistrationAuthority {
    certificate: X509,
    certificate_der: Vec<u8>,
    key: PKey<Private>,
}

impl fmt::Debug for RegistrationAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RegistrationAuthority { key: [redacted] }")
    }
}

impl RegistrationAuthority {
    /// Loads the RA from its DER certificate and PEM key; the key must be
    /// RSA and belong to the certificate.
    pub fn load(certificate_der: &[u8], key: &PrivateKeyPem) -> Result<Self, ScepError> {
        let certificate = cms::x509(certificate_der)?;
        let key = cms::private_key(key)?;
        if key.rsa().is_err() {
            return Err(ScepError::MalformedKey(
                "the RA key must be RSA: devices encrypt to it".into(),
            ));
        }
        let public = certificate.public_key().map_err(crypto)?;
        if !public.public_eq(&key) {
            return Err(ScepError::MalformedKey(
                "the RA key does not belong to the RA certificate".into(),
            ));
        }
        Ok(Self {
            certificate,
            certificate_der: certificate_der.to_vec(),
            key,
        })
    }

    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }
}

/// The GetCACert answer for an RA (`application/x-x509-ca-ra-cert`,
/// RFC 8894 §4.2.1.2): a certificates-only SignedData with the RA
/// certificate first, then the CA chain.
pub fn ca_cert_response<C: AsRef<[u8]>>(ra_certificate_der: &[u8], ca_chain_der: &[C]) -> Vec<u8> {
    let mut certificates: Vec<&[u8]> = Vec::with_capacity(ca_chain_der.len() + 1);
    certificates.push(ra_certificate_der);
    certificates.extend(ca_chain_der.iter().map(AsRef::as_ref));
    cms::certificates_only(&certificates)
}

/// A PKCSReq whose signature verified and whose CSR signature verified.
#[derive(Debug)]
pub struct PkcsReq {
    pub reply_to: ReplyTo,
    /// The cipher the request was encrypted with.
    pub content_encryption: ContentEncryption,
    pub csr: ScepCsr,
}

/// What the server needs from the PKCS#10 request inside a PKCSReq.
#[derive(Debug, Clone)]
pub struct ScepCsr {
    pub der: Vec<u8>,
    /// The subject as x509-parser prints it, in the request's order
    /// (`C=US, O=…, CN=…`).
    pub subject: String,
    pub subject_common_name: Option<String>,
    pub challenge_password: Option<ChallengePassword>,
    /// The SubjectPublicKeyInfo as sent, DER.
    pub subject_public_key_info: Vec<u8>,
}

/// Reads a PKIOperation message addressed to `ra` (RFC 8894 §3.3.1):
/// verifies the signature of the requester's certificate carried in it,
/// reads messageType, transactionID and senderNonce, decrypts the
/// EnvelopedData with the RA key and verifies the PKCS#10 inside.
pub fn decode_pki_message(
    message: &[u8],
    ra: &RegistrationAuthority,
) -> Result<PkcsReq, DecodeError> {
    let signed = cms::parse_signed_data(message)?;
    let requester_certificate_der = signed.signer_certificate()?;
    let requester_certificate = cms::x509(requester_certificate_der)?;
    let attributes = signed.verify(&requester_certificate)?;

    // From here on the message is authentic; once the transaction and the
    // nonce are known, everything else can be answered in SCEP.
    let message_type = attributes
        .message_type
        .ok_or(ScepError::MissingAttribute("messageType"))?;
    let transaction_id = attributes
        .transaction_id
        .ok_or(ScepError::MissingAttribute("transactionID"))?;
    let sender_nonce: Nonce = attributes
        .sender_nonce
        .ok_or(ScepError::MissingAttribute("senderNonce"))?
        .try_into()
        .map_err(|_| ScepError::Malformed("a senderNonce that is not 16 bytes".into()))?;
    let known_type = MessageType::from_number(&message_type);
    let reply_to = ReplyTo {
        transaction_id,
        sender_nonce,
        digest: signed.digest,
        requester_certificate_der: requester_certificate_der.to_vec(),
    };
    let refuse = |reply_to: ReplyTo, fail_info, cause| {
        DecodeError::Refused(Box::new(Refusal {
            reply_to,
            fail_info,
            cause,
        }))
    };
    match known_type {
        Some(MessageType::PkcsReq) => {}
        Some(other) => {
            return Err(refuse(
                reply_to,
                FailInfo::BadRequest,
                ScepError::UnsupportedMessageType(other),
            ));
        }
        None => {
            return Err(refuse(
                reply_to,
                FailInfo::BadRequest,
                ScepError::UnknownMessageType(message_type),
            ));
        }
    }

    let (csr_der, content_encryption) =
        cms::open_envelope(&signed.content, &ra.certificate, &ra.key)?;
    match read_csr(&csr_der) {
        Ok(csr) => Ok(PkcsReq {
            reply_to,
            content_encryption,
            csr,
        }),
        Err(cause @ ScepError::CsrSignature) => {
            Err(refuse(reply_to, FailInfo::BadMessageCheck, cause))
        }
        Err(cause @ ScepError::UnsupportedAlgorithm(_)) => {
            Err(refuse(reply_to, FailInfo::BadAlg, cause))
        }
        Err(cause) => Err(refuse(reply_to, FailInfo::BadRequest, cause)),
    }
}

/// Parses a PKCS#10 request and verifies its self-signature. OpenSSL
/// verifies (rcgen refuses SHA-1 requests, which older devices send);
/// x509-parser reads the fields.
fn read_csr(der: &[u8]) -> Result<ScepCsr, ScepError> {
    use x509_parser::certification_request::X509CertificationRequest;
    use x509_parser::prelude::FromDer;

    let (rest, parsed) = X509CertificationRequest::from_der(der)
        .map_err(|e| ScepError::MalformedCsr(e.to_string()))?;
    if !rest.is_empty() {
        return Err(ScepError::MalformedCsr("bytes after the request".into()));
    }
    let request = X509Req::from_der(der).map_err(|e| ScepError::MalformedCsr(e.to_string()))?;
    let key = request
        .public_key()
        .map_err(|e| ScepError::MalformedCsr(e.to_string()))?;
    match request.verify(&key) {
        Ok(true) => {}
        Ok(false) => return Err(ScepError::CsrSignature),
        Err(e) => {
            return Err(ScepError::UnsupportedAlgorithm(format!(
                "certificate request signature: {e}"
            )));
        }
    }

    let info = &parsed.certification_request_info;
    let mut challenge_password = None;
    for attribute in info.iter_attributes() {
        if let x509_parser::cri_attributes::ParsedCriAttribute::ChallengePassword(password) =
            attribute.parsed_attribute()
        {
            challenge_password = Some(ChallengePassword::new(password.0.clone()));
        }
    }
    let subject_common_name = info
        .subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    Ok(ScepCsr {
        der: der.to_vec(),
        subject: info.subject.to_string(),
        subject_common_name,
        challenge_password,
        subject_public_key_info: info.subject_pki.raw.to_vec(),
    })
}

/// Writes the CertRep answering `reply_to` (RFC 8894 §3.3.2): messageType
/// 3, pkiStatus, failInfo on failure, the transactionID echoed, the
/// request's senderNonce as recipientNonce and a fresh senderNonce, signed
/// by the RA with the requester's digest. On success the content is an
/// EnvelopedData to the requester's certificate around a certificates-only
/// SignedData with the issued certificate and its chain; otherwise the
/// content is empty.
pub fn encode_cert_rep(
    reply_to: &ReplyTo,
    outcome: &CertRepOutcome,
    ra: &RegistrationAuthority,
    now: DateTime<Utc>,
) -> Result<Vec<u8>, ScepError> {
    let sender_nonce = new_nonce()?;
    let (status, fail_info, content) = match outcome {
        CertRepOutcome::Success {
            certificate_der,
            chain_der,
            encryption,
        } => {
            let mut certificates: Vec<&[u8]> = Vec::with_capacity(chain_der.len() + 1);
            certificates.push(certificate_der);
            certificates.extend(chain_der.iter().map(Vec::as_slice));
            let degenerate = cms::certificates_only(&certificates);
            let requester = cms::x509(&reply_to.requester_certificate_der)?;
            (
                "0",
                None,
                cms::envelop(&degenerate, &requester, *encryption)?,
            )
        }
        CertRepOutcome::Failure(fail_info) => ("2", Some(*fail_info), Vec::new()),
        CertRepOutcome::Pending => ("3", None, Vec::new()),
    };
    let mut attributes = vec![
        (
            oid::MESSAGE_TYPE,
            AttributeValue::Printable(MessageType::CertRep.number()),
        ),
        (oid::PKI_STATUS, AttributeValue::Printable(status)),
        (
            oid::TRANSACTION_ID,
            AttributeValue::Printable(&reply_to.transaction_id),
        ),
        (
            oid::RECIPIENT_NONCE,
            AttributeValue::Octets(&reply_to.sender_nonce),
        ),
        (oid::SENDER_NONCE, AttributeValue::Octets(&sender_nonce)),
    ];
    if let Some(fail_info) = fail_info {
        attributes.push((
            oid::FAIL_INFO,
            AttributeValue::Printable(fail_info.number()),
        ));
    }
    cms::sign(
        &content,
        &attributes,
        &ra.certificate_der,
        &ra.key,
        reply_to.digest,
        now,
    )
}
