//! The client side of SCEP, as an Apple device does it (RFC 8894 §2.3,
//! §3.3): an RSA key with a self-signed certificate over it, a PKCS#10
//! with a challengePassword, a PKCSReq encrypted to the RA, and the CertRep
//! read back.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::sign::Signer;
use openssl::x509::{X509, X509Builder, X509NameBuilder};
use yasna::models::ObjectIdentifier;

use super::cms::{self, AttributeValue, oid};
use super::{
    ContentEncryption, DigestAlgorithm, FailInfo, MessageType, Nonce, ScepError, crypto, new_nonce,
};
use crate::PrivateKeyPem;

const OID_CHALLENGE_PASSWORD: &[u64] = &[1, 2, 840, 113549, 1, 9, 7];
const OID_COMMON_NAME: &[u64] = &[2, 5, 4, 3];
/// The size of the RSA keys Apple's SCEP payload asks for by default in
/// Latchkey's profiles.
const RSA_BITS: u32 = 2048;

/// The GetCACert answer's certificates (`application/x-x509-ca-ra-cert`),
/// DER, in the order sent.
pub fn decode_ca_cert_response(message: &[u8]) -> Result<Vec<Vec<u8>>, ScepError> {
    cms::read_certificates_only(message)
}

/// A device asking for a certificate: its RSA key and the certificate it
/// signs its messages with (self-signed over that key for a first
/// enrolment).
pub struct Requester {
    pub(super) key: PKey<Private>,
    certificate: X509,
    certificate_der: Vec<u8>,
}

impl fmt::Debug for Requester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Requester { key: [redacted] }")
    }
}

/// What the requester must remember to match the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub transaction_id: String,
    pub sender_nonce: Nonce,
}

/// A CertRep as the requester reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRep {
    pub transaction_id: String,
    pub sender_nonce: Nonce,
    /// Must equal the request's senderNonce.
    pub recipient_nonce: Nonce,
    pub status: CertRepStatus,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertRepStatus {
    Success {
        /// The certificate for the requester's key, DER.
        issued_certificate_der: Vec<u8>,
        /// The other certificates sent with it, in the order sent.
        chain_der: Vec<Vec<u8>>,
    },
    Failure(FailInfo),
    Pending,
}

fn name(common_name: &str) -> Result<openssl::x509::X509Name, ScepError> {
    let mut name = X509NameBuilder::new().map_err(crypto)?;
    name.append_entry_by_text("CN", common_name)
        .map_err(|e| ScepError::MalformedCertificate(e.to_string()))?;
    Ok(name.build())
}

impl Requester {
    /// A new RSA-2048 key and a certificate self-signed over it for
    /// `common_name`, valid from an hour before `now` for a day.
    pub fn generate(common_name: &str, now: DateTime<Utc>) -> Result<Self, ScepError> {
        let rsa = Rsa::generate(RSA_BITS).map_err(crypto)?;
        Self::self_signed(PKey::from_rsa(rsa).map_err(crypto)?, common_name, now)
    }

    /// A new RSA-2048 key, PKCS#8 PEM, for [`Requester::for_key`] (a
    /// simulated fleet makes its keys once and keeps them).
    pub fn generate_key() -> Result<PrivateKeyPem, ScepError> {
        let key = PKey::from_rsa(Rsa::generate(RSA_BITS).map_err(crypto)?).map_err(crypto)?;
        let pem = key.private_key_to_pem_pkcs8().map_err(crypto)?;
        String::from_utf8(pem)
            .map(PrivateKeyPem::new)
            .map_err(|e| ScepError::Crypto(e.to_string()))
    }

    /// A requester for an existing RSA key, with a certificate self-signed
    /// over it as [`Requester::generate`] makes one.
    pub fn for_key(
        key: &PrivateKeyPem,
        common_name: &str,
        now: DateTime<Utc>,
    ) -> Result<Self, ScepError> {
        let key = cms::private_key(key)?;
        if key.rsa().is_err() {
            return Err(ScepError::MalformedKey("an RSA key is required".into()));
        }
        Self::self_signed(key, common_name, now)
    }

    fn self_signed(
        key: PKey<Private>,
        common_name: &str,
        now: DateTime<Utc>,
    ) -> Result<Self, ScepError> {
        let mut builder = X509Builder::new().map_err(crypto)?;
        builder.set_version(2).map_err(crypto)?;
        let serial =
            BigNum::from_slice(&crate::random_bytes::<16>().map_err(|_| ScepError::Random)?)
                .and_then(|serial| serial.to_asn1_integer())
                .map_err(crypto)?;
        builder.set_serial_number(&serial).map_err(crypto)?;
        let subject = name(common_name)?;
        builder.set_subject_name(&subject).map_err(crypto)?;
        builder.set_issuer_name(&subject).map_err(crypto)?;
        builder.set_pubkey(&key).map_err(crypto)?;
        let not_before =
            Asn1Time::from_unix((now - Duration::hours(1)).timestamp()).map_err(crypto)?;
        let not_after =
            Asn1Time::from_unix((now + Duration::days(1)).timestamp()).map_err(crypto)?;
        builder.set_not_before(&not_before).map_err(crypto)?;
        builder.set_not_after(&not_after).map_err(crypto)?;
        builder
            .sign(&key, openssl::hash::MessageDigest::sha256())
            .map_err(crypto)?;
        let certificate = builder.build();
        let certificate_der = certificate.to_der().map_err(crypto)?;
        Ok(Self {
            key,
            certificate,
            certificate_der,
        })
    }

    /// A requester from an RSA key and the certificate it signs with.
    pub fn load(key: &PrivateKeyPem, certificate_der: &[u8]) -> Result<Self, ScepError> {
        let key = cms::private_key(key)?;
        let certificate = cms::x509(certificate_der)?;
        let public = certificate.public_key().map_err(crypto)?;
        if key.rsa().is_err() || !public.public_eq(&key) {
            return Err(ScepError::MalformedKey(
                "an RSA key that belongs to the certificate is required".into(),
            ));
        }
        Ok(Self {
            key,
            certificate,
            certificate_der: certificate_der.to_vec(),
        })
    }

    /// The private key, PKCS#8 PEM.
    pub fn key_pem(&self) -> Result<PrivateKeyPem, ScepError> {
        let pem = self.key.private_key_to_pem_pkcs8().map_err(crypto)?;
        String::from_utf8(pem)
            .map(PrivateKeyPem::new)
            .map_err(|e| ScepError::Crypto(e.to_string()))
    }

    /// The certificate the requester signs with, DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }

    /// A PKCS#10 request (RFC 2986) for the requester's key with subject
    /// `CN=common_name` and a challengePassword attribute (RFC 2985 §5.4.1;
    /// a PrintableString when the password fits one, else UTF8String),
    /// signed with RSA and `digest`.
    pub fn csr(
        &self,
        common_name: &str,
        challenge_password: &str,
        digest: DigestAlgorithm,
    ) -> Result<Vec<u8>, ScepError> {
        let spki = self.key.public_key_to_der().map_err(crypto)?;
        let info = yasna::construct_der(|writer| {
            writer.write_sequence(|writer| {
                writer.next().write_u8(0);
                writer.next().write_sequence(|writer| {
                    writer.next().write_set(|writer| {
                        writer.next().write_sequence(|writer| {
                            writer
                                .next()
                                .write_oid(&ObjectIdentifier::from_slice(OID_COMMON_NAME));
                            writer.next().write_utf8_string(common_name);
                        });
                    });
                });
                writer.next().write_der(&spki);
                writer
                    .next()
                    .write_tagged_implicit(yasna::Tag::context(0), |writer| {
                        writer.write_set(|writer| {
                            writer.next().write_sequence(|writer| {
                                writer.next().write_oid(&ObjectIdentifier::from_slice(
                                    OID_CHALLENGE_PASSWORD,
                                ));
                                writer.next().write_set(|writer| {
                                    let writer = writer.next();
                                    if super::ber::is_printable(challenge_password) {
                                        writer.write_tagged_implicit(
                                            yasna::tags::TAG_PRINTABLESTRING,
                                            |writer| {
                                                writer.write_bytes(challenge_password.as_bytes())
                                            },
                                        );
                                    } else {
                                        writer.write_utf8_string(challenge_password);
                                    }
                                });
                            });
                        });
                    });
            });
        });
        let mut signer = Signer::new(digest.message_digest(), &self.key).map_err(crypto)?;
        let signature = signer.sign_oneshot_to_vec(&info).map_err(crypto)?;
        let signature_algorithm = match digest {
            DigestAlgorithm::Sha1 => oid::SHA1_WITH_RSA,
            DigestAlgorithm::Sha256 => oid::SHA256_WITH_RSA,
        };
        Ok(yasna::construct_der(|writer| {
            writer.write_sequence(|writer| {
                writer.next().write_der(&info);
                writer.next().write_sequence(|writer| {
                    writer
                        .next()
                        .write_oid(&ObjectIdentifier::from_slice(signature_algorithm));
                    writer.next().write_null();
                });
                writer
                    .next()
                    .write_bitvec_bytes(&signature, signature.len() * 8);
            });
        }))
    }

    /// A PKCSReq (RFC 8894 §3.3.1) carrying `csr_der` encrypted to the RA
    /// with `encryption`, signed with `digest`. The transactionID is the
    /// hex SHA-256 of the requester's public key (§3.2.1.1); the
    /// senderNonce is fresh.
    pub fn pkcs_req(
        &self,
        csr_der: &[u8],
        ra_certificate_der: &[u8],
        digest: DigestAlgorithm,
        encryption: ContentEncryption,
        now: DateTime<Utc>,
    ) -> Result<(Vec<u8>, Transaction), ScepError> {
        let ra = cms::x509(ra_certificate_der)?;
        let envelope = cms::envelop(csr_der, &ra, encryption)?;
        let spki = self.key.public_key_to_der().map_err(crypto)?;
        let transaction = Transaction {
            transaction_id: hex::encode(crate::sha256(&spki)),
            sender_nonce: new_nonce()?,
        };
        let attributes = [
            (
                oid::MESSAGE_TYPE,
                AttributeValue::Printable(MessageType::PkcsReq.number()),
            ),
            (
                oid::TRANSACTION_ID,
                AttributeValue::Printable(&transaction.transaction_id),
            ),
            (
                oid::SENDER_NONCE,
                AttributeValue::Octets(&transaction.sender_nonce),
            ),
        ];
        let message = cms::sign(
            &envelope,
            &attributes,
            &self.certificate_der,
            &self.key,
            digest,
            now,
        )?;
        Ok((message, transaction))
    }

    /// Reads a CertRep (RFC 8894 §3.3.2): it must be signed by the RA
    /// certificate given (not merely by one it carries); on SUCCESS the
    /// content is decrypted with the requester's key.
    pub fn decode_cert_rep(
        &self,
        message: &[u8],
        ra_certificate_der: &[u8],
    ) -> Result<CertRep, ScepError> {
        let signed = cms::parse_signed_data(message)?;
        if !signed.is_signed_as(ra_certificate_der)? {
            return Err(ScepError::UnexpectedSigner);
        }
        let ra = cms::x509(ra_certificate_der)?;
        let attributes = signed.verify(&ra)?;
        let message_type = attributes
            .message_type
            .ok_or(ScepError::MissingAttribute("messageType"))?;
        if MessageType::from_number(&message_type) != Some(MessageType::CertRep) {
            return Err(ScepError::UnknownMessageType(message_type));
        }
        let transaction_id = attributes
            .transaction_id
            .ok_or(ScepError::MissingAttribute("transactionID"))?;
        let nonce = |value: Option<Vec<u8>>, name| -> Result<Nonce, ScepError> {
            value
                .ok_or(ScepError::MissingAttribute(name))?
                .try_into()
                .map_err(|_| ScepError::Malformed(format!("a {name} that is not 16 bytes")))
        };
        let sender_nonce = nonce(attributes.sender_nonce, "senderNonce")?;
        let recipient_nonce = nonce(attributes.recipient_nonce, "recipientNonce")?;
        let pki_status = attributes
            .pki_status
            .ok_or(ScepError::MissingAttribute("pkiStatus"))?;
        let status = match pki_status.as_str() {
            "0" => self.issued(&signed.content)?,
            "2" => {
                let fail_info = attributes
                    .fail_info
                    .ok_or(ScepError::MissingAttribute("failInfo"))?;
                CertRepStatus::Failure(
                    FailInfo::from_number(&fail_info)
                        .ok_or_else(|| ScepError::Malformed(format!("failInfo {fail_info:?}")))?,
                )
            }
            "3" => CertRepStatus::Pending,
            other => return Err(ScepError::Malformed(format!("pkiStatus {other:?}"))),
        };
        Ok(CertRep {
            transaction_id,
            sender_nonce,
            recipient_nonce,
            status,
        })
    }

    /// Decrypts a SUCCESS CertRep's content and picks the certificate for
    /// the requester's key out of the certificates-only SignedData.
    fn issued(&self, envelope: &[u8]) -> Result<CertRepStatus, ScepError> {
        let (degenerate, _) = cms::open_envelope(envelope, &self.certificate, &self.key)?;
        let mut issued_certificate_der = None;
        let mut chain_der = Vec::new();
        for certificate_der in cms::read_certificates_only(&degenerate)? {
            let certificate = cms::x509(&certificate_der)?;
            let key = certificate.public_key().map_err(crypto)?;
            if issued_certificate_der.is_none() && key.public_eq(&self.key) {
                issued_certificate_der = Some(certificate_der);
            } else {
                chain_der.push(certificate_der);
            }
        }
        let issued_certificate_der = issued_certificate_der.ok_or_else(|| {
            ScepError::Malformed("no certificate in the reply is for the requester's key".into())
        })?;
        Ok(CertRepStatus::Success {
            issued_certificate_der,
            chain_der,
        })
    }
}
