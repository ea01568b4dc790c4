//! The CMS structures SCEP is built from (RFC 5652): SignedData with the
//! SCEP signed attributes, read and written; the degenerate certificates-
//! only SignedData; and EnvelopedData through OpenSSL.

use std::borrow::Cow;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkey::{Id, PKey, PKeyRef, Private};
use openssl::sign::{Signer, Verifier};
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::{X509, X509Ref};
use yasna::models::{ObjectIdentifier, UTCTime};
use yasna::{DERWriter, Tag};

use super::ber::{self, Element, Oid};
use super::{ContentEncryption, DigestAlgorithm, ScepError, crypto};

/// Object identifiers, as arcs.
pub(super) mod oid {
    pub const DATA: &[u64] = &[1, 2, 840, 113549, 1, 7, 1];
    pub const SIGNED_DATA: &[u64] = &[1, 2, 840, 113549, 1, 7, 2];
    pub const ENVELOPED_DATA: &[u64] = &[1, 2, 840, 113549, 1, 7, 3];
    pub const CONTENT_TYPE: &[u64] = &[1, 2, 840, 113549, 1, 9, 3];
    pub const MESSAGE_DIGEST: &[u64] = &[1, 2, 840, 113549, 1, 9, 4];
    pub const SIGNING_TIME: &[u64] = &[1, 2, 840, 113549, 1, 9, 5];
    pub const RSA_ENCRYPTION: &[u64] = &[1, 2, 840, 113549, 1, 1, 1];
    pub const SHA1_WITH_RSA: &[u64] = &[1, 2, 840, 113549, 1, 1, 5];
    pub const SHA256_WITH_RSA: &[u64] = &[1, 2, 840, 113549, 1, 1, 11];
    pub const SHA1: &[u64] = &[1, 3, 14, 3, 2, 26];
    pub const SHA256: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 1];
    pub const DES_CBC: &[u64] = &[1, 3, 14, 3, 2, 7];
    pub const DES_EDE3_CBC: &[u64] = &[1, 2, 840, 113549, 3, 7];
    pub const AES128_CBC: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 1, 2];
    pub const AES192_CBC: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 1, 22];
    pub const AES256_CBC: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 1, 42];
    // RFC 8894 §3.2.1: id-attributes under 2.16.840.1.113733.1.9.
    pub const MESSAGE_TYPE: &[u64] = &[2, 16, 840, 1, 113733, 1, 9, 2];
    pub const PKI_STATUS: &[u64] = &[2, 16, 840, 1, 113733, 1, 9, 3];
    pub const FAIL_INFO: &[u64] = &[2, 16, 840, 1, 113733, 1, 9, 4];
    pub const SENDER_NONCE: &[u64] = &[2, 16, 840, 1, 113733, 1, 9, 5];
    pub const RECIPIENT_NONCE: &[u64] = &[2, 16, 840, 1, 113733, 1, 9, 6];
    pub const TRANSACTION_ID: &[u64] = &[2, 16, 840, 1, 113733, 1, 9, 7];
}

fn malformed(what: &str) -> ScepError {
    ScepError::Malformed(what.to_owned())
}

impl DigestAlgorithm {
    fn oid(self) -> &'static [u64] {
        match self {
            DigestAlgorithm::Sha1 => oid::SHA1,
            DigestAlgorithm::Sha256 => oid::SHA256,
        }
    }

    fn from_oid(algorithm: &Oid) -> Result<Self, ScepError> {
        if algorithm.is(oid::SHA1) {
            Ok(DigestAlgorithm::Sha1)
        } else if algorithm.is(oid::SHA256) {
            Ok(DigestAlgorithm::Sha256)
        } else {
            Err(ScepError::UnsupportedAlgorithm(format!(
                "digest {algorithm}"
            )))
        }
    }
}

impl ContentEncryption {
    fn cipher(self) -> Cipher {
        match self {
            ContentEncryption::DesCbc => Cipher::des_cbc(),
            ContentEncryption::DesEde3Cbc => Cipher::des_ede3_cbc(),
            ContentEncryption::Aes128Cbc => Cipher::aes_128_cbc(),
            ContentEncryption::Aes192Cbc => Cipher::aes_192_cbc(),
            ContentEncryption::Aes256Cbc => Cipher::aes_256_cbc(),
        }
    }

    fn from_oid(algorithm: &Oid) -> Result<Self, ScepError> {
        [
            (oid::DES_CBC, ContentEncryption::DesCbc),
            (oid::DES_EDE3_CBC, ContentEncryption::DesEde3Cbc),
            (oid::AES128_CBC, ContentEncryption::Aes128Cbc),
            (oid::AES192_CBC, ContentEncryption::Aes192Cbc),
            (oid::AES256_CBC, ContentEncryption::Aes256Cbc),
        ]
        .into_iter()
        .find(|(arcs, _)| algorithm.is(arcs))
        .map(|(_, encryption)| encryption)
        .ok_or_else(|| ScepError::UnsupportedAlgorithm(format!("content encryption {algorithm}")))
    }
}

/// The algorithm of an AlgorithmIdentifier; its parameters are not read.
fn algorithm(element: Element<'_>) -> Result<Oid, ScepError> {
    let mut parts = element.expect(ber::TAG_SEQUENCE)?.children()?;
    Ok(parts.next()?.oid()?)
}

/// A SignedData as received, before anything in it is trusted.
pub(super) struct SignedMessage<'a> {
    /// The encapsulated content; empty when absent.
    pub(super) content: Cow<'a, [u8]>,
    /// Every certificate the message carries, DER.
    pub(super) certificates: Vec<&'a [u8]>,
    pub(super) digest: DigestAlgorithm,
    signer_issuer: &'a [u8],
    signer_serial: &'a [u8],
    signed_attributes: Element<'a>,
    signature: Cow<'a, [u8]>,
}

/// Reads a ContentInfo holding a SignedData with exactly one signer that
/// has signed attributes (RFC 5652 §5.1, §5.3; RFC 8894 §3.2).
pub(super) fn parse_signed_data(input: &[u8]) -> Result<SignedMessage<'_>, ScepError> {
    let content_info = ber::parse(input)?.expect(ber::TAG_SEQUENCE)?;
    let mut parts = content_info.children()?;
    if !parts.next()?.oid()?.is(oid::SIGNED_DATA) {
        return Err(malformed("the content is not a SignedData"));
    }
    let signed_data = parts
        .next()?
        .expect(ber::TAG_CONTEXT_0)?
        .explicit_inner()?
        .expect(ber::TAG_SEQUENCE)?;
    parts.finish()?;

    let mut fields = signed_data.children()?;
    fields.next()?.expect(ber::TAG_INTEGER)?;
    fields.next()?.expect(ber::TAG_SET)?;
    let mut encapsulated = fields.next()?.expect(ber::TAG_SEQUENCE)?.children()?;
    if !encapsulated.next()?.oid()?.is(oid::DATA) {
        return Err(malformed("the encapsulated content is not id-data"));
    }
    let content = match encapsulated.next_if(ber::TAG_CONTEXT_0)? {
        Some(explicit) => explicit.explicit_inner()?.octets()?,
        None => Cow::Borrowed(&[][..]),
    };
    encapsulated.finish()?;
    let mut certificates = Vec::new();
    if let Some(set) = fields.next_if(ber::TAG_CONTEXT_0)? {
        let mut entries = set.children()?;
        while let Some(certificate) = entries.next_optional()? {
            certificates.push(certificate.expect(ber::TAG_SEQUENCE)?.raw);
        }
    }
    // CRLs are of no use to SCEP.
    fields.next_if(ber::TAG_CONTEXT_1)?;
    let mut signer_infos = fields.next()?.expect(ber::TAG_SET)?.children()?;
    fields.finish()?;
    let signer_info = signer_infos.next()?.expect(ber::TAG_SEQUENCE)?;
    if signer_infos.next_optional()?.is_some() {
        return Err(malformed("more than one signer"));
    }

    let mut signer = signer_info.children()?;
    signer.next()?.expect(ber::TAG_INTEGER)?;
    let sid = signer.next()?;
    if sid.tag != ber::TAG_SEQUENCE {
        return Err(malformed(
            "the signer is not named by issuer and serial number",
        ));
    }
    let mut sid = sid.children()?;
    let signer_issuer = sid.next()?.expect(ber::TAG_SEQUENCE)?.raw;
    let signer_serial = sid.next()?.expect(ber::TAG_INTEGER)?.body;
    sid.finish()?;
    let digest = DigestAlgorithm::from_oid(&algorithm(signer.next()?)?)?;
    let signed_attributes = signer
        .next_if(ber::TAG_CONTEXT_0)?
        .ok_or_else(|| malformed("the signer has no signed attributes"))?;
    let signature_algorithm = algorithm(signer.next()?)?;
    let matches_digest = signature_algorithm.is(oid::RSA_ENCRYPTION)
        || (signature_algorithm.is(oid::SHA1_WITH_RSA) && digest == DigestAlgorithm::Sha1)
        || (signature_algorithm.is(oid::SHA256_WITH_RSA) && digest == DigestAlgorithm::Sha256);
    if !matches_digest {
        return Err(ScepError::UnsupportedAlgorithm(format!(
            "signature {signature_algorithm} with digest {digest:?}"
        )));
    }
    let signature = signer.next()?.octets()?;
    // Unsigned attributes, if any, are not read.
    signer.next_if(ber::TAG_CONTEXT_1)?;
    signer.finish()?;

    Ok(SignedMessage {
        content,
        certificates,
        digest,
        signer_issuer,
        signer_serial,
        signed_attributes,
        signature,
    })
}

/// The issuer Name (raw DER) and serial number (INTEGER contents) of a
/// certificate.
fn issuer_and_serial(certificate_der: &[u8]) -> Result<(&[u8], &[u8]), ScepError> {
    let (_, certificate) = x509_parser::parse_x509_certificate(certificate_der)
        .map_err(|e| ScepError::MalformedCertificate(e.to_string()))?;
    Ok((
        certificate.tbs_certificate.issuer.as_raw(),
        certificate.tbs_certificate.raw_serial(),
    ))
}

/// INTEGER contents compared by value: a leading zero octet is a sign.
fn same_serial(a: &[u8], b: &[u8]) -> bool {
    fn trimmed(serial: &[u8]) -> &[u8] {
        let start = serial
            .iter()
            .position(|&octet| octet != 0)
            .unwrap_or(serial.len());
        serial.get(start..).unwrap_or_default()
    }
    trimmed(a) == trimmed(b)
}

impl<'a> SignedMessage<'a> {
    /// The carried certificate the signer names.
    pub(super) fn signer_certificate(&self) -> Result<&'a [u8], ScepError> {
        for &certificate in &self.certificates {
            let Ok((issuer, serial)) = issuer_and_serial(certificate) else {
                continue;
            };
            if issuer == self.signer_issuer && same_serial(serial, self.signer_serial) {
                return Ok(certificate);
            }
        }
        Err(ScepError::SignerCertificateMissing)
    }

    /// Whether the signer is named as `certificate_der` would be.
    pub(super) fn is_signed_as(&self, certificate_der: &[u8]) -> Result<bool, ScepError> {
        let (issuer, serial) = issuer_and_serial(certificate_der)?;
        Ok(issuer == self.signer_issuer && same_serial(serial, self.signer_serial))
    }

    /// Checks the messageDigest attribute against the content and the
    /// signature over the signed attributes (RFC 5652 §5.4) with the RSA key
    /// of `signer`.
    pub(super) fn verify(&self, signer: &X509Ref) -> Result<Attributes, ScepError> {
        let attributes = Attributes::read(self.signed_attributes)?;
        if let Some(content_type) = &attributes.content_type
            && !content_type.is(oid::DATA)
        {
            return Err(malformed("the contentType attribute is not id-data"));
        }
        let expected = attributes
            .message_digest
            .as_deref()
            .ok_or(ScepError::MissingAttribute("messageDigest"))?;
        let actual =
            openssl::hash::hash(self.digest.message_digest(), &self.content).map_err(crypto)?;
        if *actual != *expected {
            return Err(ScepError::Signature);
        }
        let key = signer.public_key().map_err(crypto)?;
        if key.id() != Id::RSA {
            return Err(ScepError::UnsupportedAlgorithm(
                "a signer key that is not RSA".into(),
            ));
        }
        // The signature covers the attributes encoded as a SET OF, not
        // with the [0] IMPLICIT tag they are carried under.
        let mut signed = self.signed_attributes.raw.to_vec();
        if let Some(tag) = signed.first_mut() {
            *tag = ber::TAG_SET;
        }
        let mut verifier = Verifier::new(self.digest.message_digest(), &key).map_err(crypto)?;
        match verifier.verify_oneshot(&self.signature, &signed) {
            Ok(true) => Ok(attributes),
            Ok(false) | Err(_) => Err(ScepError::Signature),
        }
    }
}

/// Whether `input` is a SignedData OpenSSL may be given: one digest
/// algorithm, SHA-1 or SHA-256, and one signer. OpenSSL hashes the content
/// once for every digest algorithm a message lists, before any signature
/// is checked, so a message listing thousands (or a weak one) is refused
/// here instead.
pub(crate) fn openssl_may_read(input: &[u8]) -> bool {
    let shape = || -> Result<bool, ScepError> {
        let content_info = ber::parse(input)?.expect(ber::TAG_SEQUENCE)?;
        let mut parts = content_info.children()?;
        if !parts.next()?.oid()?.is(oid::SIGNED_DATA) {
            return Ok(false);
        }
        let signed_data = parts
            .next()?
            .expect(ber::TAG_CONTEXT_0)?
            .explicit_inner()?
            .expect(ber::TAG_SEQUENCE)?;
        let mut fields = signed_data.children()?;
        fields.next()?.expect(ber::TAG_INTEGER)?;
        let mut digests = fields.next()?.expect(ber::TAG_SET)?.children()?;
        DigestAlgorithm::from_oid(&algorithm(digests.next()?)?)?;
        if digests.next_optional()?.is_some() {
            return Ok(false);
        }
        fields.next()?.expect(ber::TAG_SEQUENCE)?;
        fields.next_if(ber::TAG_CONTEXT_0)?;
        fields.next_if(ber::TAG_CONTEXT_1)?;
        let mut signers = fields.next()?.expect(ber::TAG_SET)?.children()?;
        signers.next()?;
        Ok(signers.next_optional()?.is_none())
    };
    shape().unwrap_or(false)
}

/// Why the detached check below gave no verdict, or its refusal.
pub(crate) enum DetachedCheck {
    /// A SignedData of another shape than the one read here (signer named
    /// by key identifier, no signed attributes, a key that is not RSA,
    /// content attached): the caller checks it another way.
    OtherShape,
    /// Of this shape, and it does not verify.
    Refused(crate::cms::CmsError),
}

/// Verifies a detached SignedData over `content` of the shape devices send
/// (RFC 5652 §5.4: one signer named by issuer and serial number, signed
/// attributes with the content's messageDigest, RSA PKCS #1 v1.5 with
/// SHA-1 or SHA-256), with ring, and returns the signer's certificate
/// (DER) the message carries. Whose certificate that is, is the caller's.
pub(crate) fn verify_detached_rsa(
    signature_der: &[u8],
    content: &[u8],
) -> Result<Vec<u8>, DetachedCheck> {
    use crate::cms::CmsError;
    use DetachedCheck::{OtherShape, Refused};
    let message = parse_signed_data(signature_der).map_err(|_| OtherShape)?;
    if !message.content.is_empty() {
        return Err(OtherShape);
    }
    let signer = message
        .signer_certificate()
        .map_err(|_| Refused(CmsError::NoSigner))?;
    let attributes = Attributes::read(message.signed_attributes).map_err(|_| OtherShape)?;
    if attributes
        .content_type
        .as_ref()
        .is_some_and(|content_type| !content_type.is(oid::DATA))
    {
        return Err(Refused(CmsError::BadSignature));
    }
    let expected = attributes
        .message_digest
        .ok_or(Refused(CmsError::BadSignature))?;
    let (digest, algorithm): (_, &dyn ring::signature::VerificationAlgorithm) = match message.digest
    {
        DigestAlgorithm::Sha1 => (
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            &ring::signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        ),
        DigestAlgorithm::Sha256 => (
            &ring::digest::SHA256,
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        ),
    };
    if ring::digest::digest(digest, content).as_ref() != expected.as_slice() {
        return Err(Refused(CmsError::BadSignature));
    }
    let (_, certificate) =
        x509_parser::parse_x509_certificate(signer).map_err(|_| Refused(CmsError::NoSigner))?;
    let key = &certificate.tbs_certificate.subject_pki;
    if key.algorithm.algorithm.to_id_string() != "1.2.840.113549.1.1.1" {
        return Err(OtherShape);
    }
    // The signature covers the attributes encoded as a SET OF, not with
    // the [0] IMPLICIT tag they are carried under.
    let mut signed = message.signed_attributes.raw.to_vec();
    if let Some(tag) = signed.first_mut() {
        *tag = ber::TAG_SET;
    }
    ring::signature::UnparsedPublicKey::new(algorithm, key.subject_public_key.data.as_ref())
        .verify(&signed, &message.signature)
        .map_err(|_| Refused(CmsError::BadSignature))?;
    Ok(signer.to_vec())
}

/// The signed attributes SCEP reads (RFC 8894 §3.2.1), as received.
#[derive(Default)]
pub(super) struct Attributes {
    content_type: Option<Oid>,
    message_digest: Option<Vec<u8>>,
    pub(super) message_type: Option<String>,
    pub(super) pki_status: Option<String>,
    pub(super) fail_info: Option<String>,
    pub(super) sender_nonce: Option<Vec<u8>>,
    pub(super) recipient_nonce: Option<Vec<u8>>,
    pub(super) transaction_id: Option<String>,
}

fn set_once<T>(slot: &mut Option<T>, value: T) -> Result<(), ScepError> {
    if slot.replace(value).is_some() {
        return Err(malformed("an attribute appears twice"));
    }
    Ok(())
}

impl Attributes {
    fn read(signed_attributes: Element<'_>) -> Result<Self, ScepError> {
        let mut attributes = Attributes::default();
        let mut entries = signed_attributes.children()?;
        while let Some(entry) = entries.next_optional()? {
            let mut parts = entry.expect(ber::TAG_SEQUENCE)?.children()?;
            let kind = parts.next()?.oid()?;
            let mut values = parts.next()?.expect(ber::TAG_SET)?.children()?;
            parts.finish()?;
            let value = values.next()?;
            if values.next_optional()?.is_some() {
                return Err(malformed("an attribute has more than one value"));
            }
            if kind.is(oid::CONTENT_TYPE) {
                set_once(&mut attributes.content_type, value.oid()?)?;
            } else if kind.is(oid::MESSAGE_DIGEST) {
                set_once(&mut attributes.message_digest, value.octets()?.into_owned())?;
            } else if kind.is(oid::MESSAGE_TYPE) {
                set_once(&mut attributes.message_type, value.text(false)?.to_owned())?;
            } else if kind.is(oid::PKI_STATUS) {
                set_once(&mut attributes.pki_status, value.text(false)?.to_owned())?;
            } else if kind.is(oid::FAIL_INFO) {
                set_once(&mut attributes.fail_info, value.text(false)?.to_owned())?;
            } else if kind.is(oid::SENDER_NONCE) {
                set_once(&mut attributes.sender_nonce, value.octets()?.into_owned())?;
            } else if kind.is(oid::RECIPIENT_NONCE) {
                set_once(
                    &mut attributes.recipient_nonce,
                    value.octets()?.into_owned(),
                )?;
            } else if kind.is(oid::TRANSACTION_ID) {
                set_once(
                    &mut attributes.transaction_id,
                    value.text(false)?.to_owned(),
                )?;
            }
            // Anything else (signingTime, failInfoText, Apple's own) is
            // covered by the signature and otherwise ignored.
        }
        Ok(attributes)
    }
}

fn write_oid(writer: DERWriter<'_>, arcs: &[u64]) {
    writer.write_oid(&ObjectIdentifier::from_slice(arcs));
}

/// An AlgorithmIdentifier with NULL parameters, as OpenSSL writes them
/// for these digests and for rsaEncryption.
fn write_algorithm(writer: DERWriter<'_>, arcs: &[u64]) {
    writer.write_sequence(|writer| {
        write_oid(writer.next(), arcs);
        writer.next().write_null();
    });
}

/// Writes a PrintableString whose alphabet was checked by the caller.
fn write_printable(writer: DERWriter<'_>, text: &str) {
    writer.write_tagged_implicit(yasna::tags::TAG_PRINTABLESTRING, |writer| {
        writer.write_bytes(text.as_bytes());
    });
}

/// The value of a SCEP attribute, encoded.
pub(super) enum AttributeValue<'a> {
    Printable(&'a str),
    Octets(&'a [u8]),
}

/// One Attribute (RFC 5652 §5.3) with a single value.
fn attribute(arcs: &[u64], value: impl FnOnce(DERWriter<'_>)) -> Vec<u8> {
    yasna::construct_der(|writer| {
        writer.write_sequence(|writer| {
            write_oid(writer.next(), arcs);
            writer.next().write_set(|writer| value(writer.next()));
        });
    })
}

/// Writes a ContentInfo holding a SignedData over `content` by `signer`,
/// with contentType, messageDigest, signingTime and the SCEP attributes
/// given, carrying `signer`'s certificate (RFC 8894 §3.2).
pub(super) fn sign(
    content: &[u8],
    scep_attributes: &[(&'static [u64], AttributeValue<'_>)],
    signer_certificate_der: &[u8],
    signer_key: &PKeyRef<Private>,
    digest: DigestAlgorithm,
    now: DateTime<Utc>,
) -> Result<Vec<u8>, ScepError> {
    let (issuer, serial) = issuer_and_serial(signer_certificate_der)?;
    let signing_time = time::OffsetDateTime::from_unix_timestamp(now.timestamp())
        .ok()
        .and_then(UTCTime::from_datetime_opt)
        .ok_or_else(|| ScepError::Crypto("signing time out of UTCTime's range".into()))?;
    let content_digest = openssl::hash::hash(digest.message_digest(), content).map_err(crypto)?;

    let mut encoded = vec![
        attribute(oid::CONTENT_TYPE, |writer| write_oid(writer, oid::DATA)),
        attribute(oid::MESSAGE_DIGEST, |writer| {
            writer.write_bytes(&content_digest)
        }),
        attribute(oid::SIGNING_TIME, |writer| {
            writer.write_utctime(&signing_time)
        }),
    ];
    for (arcs, value) in scep_attributes {
        encoded.push(match value {
            AttributeValue::Printable(text) => {
                if !ber::is_printable(text) {
                    return Err(ScepError::NotPrintable((*text).to_owned()));
                }
                attribute(arcs, |writer| write_printable(writer, text))
            }
            AttributeValue::Octets(octets) => attribute(arcs, |writer| writer.write_bytes(octets)),
        });
    }
    // DER orders a SET OF by its elements' encodings (X.690 §11.6); the
    // signature covers exactly this encoding.
    let signed_set = yasna::construct_der(|writer| {
        writer.write_set_of(|writer| {
            for attribute in &encoded {
                writer.next().write_der(attribute);
            }
        });
    });
    let mut signer = Signer::new(digest.message_digest(), signer_key).map_err(crypto)?;
    let signature = signer.sign_oneshot_to_vec(&signed_set).map_err(crypto)?;
    let mut signed_attributes = signed_set;
    if let Some(tag) = signed_attributes.first_mut() {
        *tag = ber::TAG_CONTEXT_0;
    }

    Ok(yasna::construct_der(|writer| {
        writer.write_sequence(|writer| {
            write_oid(writer.next(), oid::SIGNED_DATA);
            writer.next().write_tagged(Tag::context(0), |writer| {
                writer.write_sequence(|writer| {
                    writer.next().write_u8(1);
                    writer
                        .next()
                        .write_set(|writer| write_algorithm(writer.next(), digest.oid()));
                    writer.next().write_sequence(|writer| {
                        write_oid(writer.next(), oid::DATA);
                        writer.next().write_tagged(Tag::context(0), |writer| {
                            writer.write_bytes(content);
                        });
                    });
                    writer
                        .next()
                        .write_tagged_implicit(Tag::context(0), |writer| {
                            writer.write_sequence(|writer| {
                                writer.next().write_der(signer_certificate_der);
                            });
                        });
                    writer.next().write_set(|writer| {
                        writer.next().write_sequence(|writer| {
                            writer.next().write_u8(1);
                            writer.next().write_sequence(|writer| {
                                writer.next().write_der(issuer);
                                writer.next().write_bigint_bytes(serial, true);
                            });
                            write_algorithm(writer.next(), digest.oid());
                            writer.next().write_der(&signed_attributes);
                            write_algorithm(writer.next(), oid::RSA_ENCRYPTION);
                            writer.next().write_bytes(&signature);
                        });
                    });
                });
            });
        });
    }))
}

/// A degenerate certificates-only SignedData (RFC 8894 §3.4): no content,
/// no signers, `certificates` in the order given.
pub(super) fn certificates_only<C: AsRef<[u8]>>(certificates: &[C]) -> Vec<u8> {
    yasna::construct_der(|writer| {
        writer.write_sequence(|writer| {
            write_oid(writer.next(), oid::SIGNED_DATA);
            writer.next().write_tagged(Tag::context(0), |writer| {
                writer.write_sequence(|writer| {
                    writer.next().write_u8(1);
                    writer.next().write_set(|_| ());
                    writer
                        .next()
                        .write_sequence(|writer| write_oid(writer.next(), oid::DATA));
                    writer
                        .next()
                        .write_tagged_implicit(Tag::context(0), |writer| {
                            writer.write_sequence(|writer| {
                                for certificate in certificates {
                                    writer.next().write_der(certificate.as_ref());
                                }
                            });
                        });
                    writer.next().write_set(|_| ());
                });
            });
        });
    })
}

/// The certificates of a degenerate certificates-only SignedData, DER.
pub(super) fn read_certificates_only(input: &[u8]) -> Result<Vec<Vec<u8>>, ScepError> {
    let message = parse_certificates_only(input)?;
    Ok(message.into_iter().map(<[u8]>::to_vec).collect())
}

fn parse_certificates_only(input: &[u8]) -> Result<Vec<&[u8]>, ScepError> {
    let content_info = ber::parse(input)?.expect(ber::TAG_SEQUENCE)?;
    let mut parts = content_info.children()?;
    if !parts.next()?.oid()?.is(oid::SIGNED_DATA) {
        return Err(malformed("the content is not a SignedData"));
    }
    let signed_data = parts
        .next()?
        .expect(ber::TAG_CONTEXT_0)?
        .explicit_inner()?
        .expect(ber::TAG_SEQUENCE)?;
    parts.finish()?;
    let mut fields = signed_data.children()?;
    fields.next()?.expect(ber::TAG_INTEGER)?;
    fields.next()?.expect(ber::TAG_SET)?;
    fields.next()?.expect(ber::TAG_SEQUENCE)?;
    let mut certificates = Vec::new();
    if let Some(set) = fields.next_if(ber::TAG_CONTEXT_0)? {
        let mut entries = set.children()?;
        while let Some(certificate) = entries.next_optional()? {
            certificates.push(certificate.expect(ber::TAG_SEQUENCE)?.raw);
        }
    }
    if certificates.is_empty() {
        return Err(malformed("no certificate in a certificates-only message"));
    }
    Ok(certificates)
}

/// The content-encryption algorithm of a ContentInfo holding an
/// EnvelopedData (RFC 5652 §6.1).
pub(super) fn envelope_encryption(input: &[u8]) -> Result<ContentEncryption, ScepError> {
    let content_info = ber::parse(input)?.expect(ber::TAG_SEQUENCE)?;
    let mut parts = content_info.children()?;
    if !parts.next()?.oid()?.is(oid::ENVELOPED_DATA) {
        return Err(malformed("the content is not an EnvelopedData"));
    }
    let enveloped = parts
        .next()?
        .expect(ber::TAG_CONTEXT_0)?
        .explicit_inner()?
        .expect(ber::TAG_SEQUENCE)?;
    let mut fields = enveloped.children()?;
    fields.next()?.expect(ber::TAG_INTEGER)?;
    fields.next_if(ber::TAG_CONTEXT_0)?;
    fields.next()?.expect(ber::TAG_SET)?;
    let mut encrypted = fields.next()?.expect(ber::TAG_SEQUENCE)?.children()?;
    encrypted.next()?.oid()?;
    ContentEncryption::from_oid(&algorithm(encrypted.next()?)?)
}

/// An EnvelopedData of `content` for `recipient` (RSA key transport).
pub(super) fn envelop(
    content: &[u8],
    recipient: &X509Ref,
    encryption: ContentEncryption,
) -> Result<Vec<u8>, ScepError> {
    let mut recipients = Stack::new().map_err(crypto)?;
    recipients.push(recipient.to_owned()).map_err(crypto)?;
    let enveloped = Pkcs7::encrypt(
        &recipients,
        content,
        encryption.for_reply().cipher(),
        Pkcs7Flags::BINARY,
    )
    .map_err(crypto)?;
    enveloped.to_der().map_err(crypto)
}

/// Decrypts an EnvelopedData addressed to `recipient` with its key.
pub(super) fn open_envelope(
    input: &[u8],
    recipient: &X509Ref,
    key: &PKeyRef<Private>,
) -> Result<(Vec<u8>, ContentEncryption), ScepError> {
    let encryption = envelope_encryption(input)?;
    if encryption == ContentEncryption::DesCbc {
        legacy_provider()?;
    }
    let enveloped = Pkcs7::from_der(input).map_err(|e| ScepError::Malformed(e.to_string()))?;
    let content = enveloped
        .decrypt(key, recipient, Pkcs7Flags::BINARY)
        .map_err(|_| ScepError::Decrypt)?;
    Ok((content, encryption))
}

/// OpenSSL 3 keeps single DES in its legacy provider; it is loaded (next
/// to the default provider) the first time a DES-CBC envelope arrives and
/// stays loaded for the life of the process.
fn legacy_provider() -> Result<(), ScepError> {
    static LEGACY: OnceLock<Option<openssl::provider::Provider>> = OnceLock::new();
    LEGACY
        .get_or_init(|| openssl::provider::Provider::try_load(None, "legacy", true).ok())
        .as_ref()
        .map(|_| ())
        .ok_or_else(|| {
            ScepError::UnsupportedAlgorithm(
                "DES-CBC (OpenSSL's legacy provider is not available)".into(),
            )
        })
}

/// Reads a PEM private key. OpenSSL would ask for the passphrase of an
/// encrypted key on the terminal; the callback answers with an empty one
/// instead, so an encrypted key fails here rather than blocking a server.
pub(super) fn private_key(pem: &crate::PrivateKeyPem) -> Result<PKey<Private>, ScepError> {
    PKey::private_key_from_pem_callback(pem.expose().as_bytes(), |_passphrase| Ok(0))
        .map_err(|e| ScepError::MalformedKey(e.to_string()))
}

/// Parses a DER certificate with OpenSSL.
pub(super) fn x509(der: &[u8]) -> Result<X509, ScepError> {
    X509::from_der(der).map_err(|e| ScepError::MalformedCertificate(e.to_string()))
}

#[cfg(test)]
mod shape_tests {
    use super::*;

    /// A SignedData skeleton listing `digests` and `signers` empty signer
    /// infos.
    fn skeleton(digests: &[&[u64]], signers: usize) -> Vec<u8> {
        yasna::construct_der(|writer| {
            writer.write_sequence(|writer| {
                write_oid(writer.next(), oid::SIGNED_DATA);
                writer.next().write_tagged(Tag::context(0), |writer| {
                    writer.write_sequence(|writer| {
                        writer.next().write_u8(1);
                        writer.next().write_set(|writer| {
                            for digest in digests {
                                writer.next().write_sequence(|writer| {
                                    write_oid(writer.next(), digest);
                                });
                            }
                        });
                        writer.next().write_sequence(|writer| {
                            write_oid(writer.next(), oid::DATA);
                        });
                        writer.next().write_set(|writer| {
                            for _ in 0..signers {
                                writer.next().write_sequence(|_| {});
                            }
                        });
                    });
                });
            });
        })
    }

    #[test]
    fn openssl_reads_one_digest_algorithm_and_one_signer_only() {
        assert!(openssl_may_read(&skeleton(&[oid::SHA256], 1)));
        assert!(openssl_may_read(&skeleton(&[oid::SHA1], 1)));
        // Thousands of digest algorithms would each hash the whole body.
        let many = vec![oid::SHA256; 2000];
        assert!(!openssl_may_read(&skeleton(&many, 1)));
        assert!(!openssl_may_read(&skeleton(&[oid::SHA256, oid::SHA1], 1)));
        // MD5, or no algorithm at all.
        assert!(!openssl_may_read(&skeleton(
            &[&[1, 2, 840, 113549, 2, 5]],
            1
        )));
        assert!(!openssl_may_read(&skeleton(&[], 1)));
        assert!(!openssl_may_read(&skeleton(&[oid::SHA256], 2)));
        assert!(!openssl_may_read(b"not DER at all"));
    }
}
