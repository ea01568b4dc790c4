//! SCEP (RFC 8894) messages as pure functions: the server's answers to
//! GetCACaps, GetCACert and PKIOperation, and the client side that a
//! simulated Apple device (and a future renewal) uses to enrol.
//!
//! A PKIOperation message is a CMS SignedData (RFC 5652 §5) whose signed
//! attributes carry the SCEP fields (RFC 8894 §3.2.1) and whose content is
//! an EnvelopedData (RFC 5652 §6) encrypted to the RA. The signatures,
//! digests, encryption and decryption are OpenSSL's; the SignedData itself
//! is read by [`ber`] and written with yasna, because OpenSSL's safe API can
//! neither add nor read the SCEP attributes.
//!
//! What this server does and says it does:
//! - It answers PKCSReq (19) only. RenewalReq (17), UpdateReq (18),
//!   CertPoll (20), GetCert (21) and GetCRL (22) are recognised and refused
//!   with failInfo badRequest, so GetCACaps leaves out `Renewal`: a device
//!   renews by enrolling again with a new one-time challenge.
//! - It never answers PENDING itself; [`CertRepOutcome::Pending`] exists
//!   for completeness of the wire format.
//! - Requests may be signed with SHA-1 or SHA-256 and encrypted with
//!   AES-128/192/256-CBC, DES-EDE3-CBC or single DES-CBC (scepclient 2.1.0
//!   uses DES-CBC whatever the server offers). Replies use the requester's
//!   digest and cipher, except that a DES-CBC request is answered in
//!   DES-EDE3-CBC: this code never encrypts with a 56-bit key.
//!
//! Decoding tells the HTTP layer what it can do: [`DecodeError::Refused`]
//! carries what a CertRep FAILURE needs (the request was authentic, its
//! transactionID and senderNonce are known); [`DecodeError::Unanswerable`]
//! is a plain HTTP 400. Neither is ever a 500.

mod ber;
mod client;
pub(crate) mod cms;
mod issue;
mod server;
#[cfg(test)]
mod tests;

use std::fmt;

pub use client::{CertRep, CertRepStatus, Requester, Transaction, decode_ca_cert_response};
pub use server::{
    PkcsReq, RegistrationAuthority, ScepCsr, ca_cert_response, decode_pki_message, encode_cert_rep,
};

/// What went wrong while reading or writing a SCEP message.
#[derive(Debug, thiserror::Error)]
pub enum ScepError {
    #[error("the message is not a well-formed SCEP message: {0}")]
    Malformed(String),
    #[error("unsupported algorithm: {0}")]
    UnsupportedAlgorithm(String),
    #[error("no certificate in the message belongs to its signer")]
    SignerCertificateMissing,
    #[error("the message is not signed by the expected certificate")]
    UnexpectedSigner,
    #[error("the message's signature does not verify")]
    Signature,
    #[error("the message has no {0} attribute")]
    MissingAttribute(&'static str),
    #[error("the encrypted content cannot be decrypted with this key")]
    Decrypt,
    #[error("messageType {0:?} is not a SCEP message type")]
    UnknownMessageType(String),
    #[error("{0:?} messages are not handled here")]
    UnsupportedMessageType(MessageType),
    #[error("the certificate request is malformed: {0}")]
    MalformedCsr(String),
    #[error("the certificate request's signature does not verify")]
    CsrSignature,
    #[error("the key is malformed: {0}")]
    MalformedKey(String),
    #[error("the certificate is malformed: {0}")]
    MalformedCertificate(String),
    #[error("{0:?} cannot be put in a PrintableString")]
    NotPrintable(String),
    #[error("the cryptographic library failed: {0}")]
    Crypto(String),
    #[error("the system random number generator failed")]
    Random,
}

impl From<ber::BerError> for ScepError {
    fn from(e: ber::BerError) -> Self {
        ScepError::Malformed(e.to_string())
    }
}

fn crypto(e: openssl::error::ErrorStack) -> ScepError {
    ScepError::Crypto(e.to_string())
}

/// Why [`decode_pki_message`] did not produce a request to act on, in the
/// terms the HTTP layer answers in.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The message cannot be trusted or read far enough to name a
    /// transaction (not BER, not signed by its certificate, not for this
    /// RA, not decryptable): answer HTTP 400.
    #[error("unanswerable SCEP message: {0}")]
    Unanswerable(#[source] ScepError),
    /// The message is authentic and names its transaction but cannot be
    /// granted: answer with a CertRep FAILURE carrying `fail_info`.
    #[error("refused SCEP message ({:?}): {}", .0.fail_info, .0.cause)]
    Refused(Box<Refusal>),
}

impl From<ScepError> for DecodeError {
    fn from(e: ScepError) -> Self {
        DecodeError::Unanswerable(e)
    }
}

/// A request to answer with failure, and why.
#[derive(Debug)]
pub struct Refusal {
    pub reply_to: ReplyTo,
    pub fail_info: FailInfo,
    pub cause: ScepError,
}

/// What a CertRep must echo and use: from a request whose signature
/// verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyTo {
    pub transaction_id: String,
    /// The request's senderNonce, returned as the reply's recipientNonce.
    pub sender_nonce: Nonce,
    /// The digest the requester signed with; the reply is signed with it.
    pub digest: DigestAlgorithm,
    /// The certificate that signed the request (for PKCSReq, self-signed
    /// over the key being certified); a SUCCESS reply is encrypted to it.
    pub requester_certificate_der: Vec<u8>,
}

/// A senderNonce or recipientNonce: 16 random bytes (RFC 8894 §3.2.1.5).
pub type Nonce = [u8; 16];

/// A fresh nonce from the operating system's generator.
pub fn new_nonce() -> Result<Nonce, ScepError> {
    crate::random_bytes::<16>().map_err(|_| ScepError::Random)
}

/// The SCEP messageType attribute (RFC 8894 §3.2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    CertRep,
    RenewalReq,
    UpdateReq,
    PkcsReq,
    CertPoll,
    GetCert,
    GetCrl,
}

impl MessageType {
    fn number(self) -> &'static str {
        match self {
            MessageType::CertRep => "3",
            MessageType::RenewalReq => "17",
            MessageType::UpdateReq => "18",
            MessageType::PkcsReq => "19",
            MessageType::CertPoll => "20",
            MessageType::GetCert => "21",
            MessageType::GetCrl => "22",
        }
    }

    fn from_number(number: &str) -> Option<Self> {
        Some(match number {
            "3" => MessageType::CertRep,
            "17" => MessageType::RenewalReq,
            "18" => MessageType::UpdateReq,
            "19" => MessageType::PkcsReq,
            "20" => MessageType::CertPoll,
            "21" => MessageType::GetCert,
            "22" => MessageType::GetCrl,
            _ => return None,
        })
    }
}

/// The failInfo attribute of a CertRep FAILURE (RFC 8894 §3.2.1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailInfo {
    /// Unrecognized or unsupported algorithm.
    BadAlg,
    /// Integrity check (signature) failed.
    BadMessageCheck,
    /// Transaction not permitted or supported (a wrong challenge, too).
    BadRequest,
    /// The signingTime attribute was not close enough to the server's time.
    BadTime,
    /// No certificate could be identified matching the criteria.
    BadCertId,
}

impl FailInfo {
    fn number(self) -> &'static str {
        match self {
            FailInfo::BadAlg => "0",
            FailInfo::BadMessageCheck => "1",
            FailInfo::BadRequest => "2",
            FailInfo::BadTime => "3",
            FailInfo::BadCertId => "4",
        }
    }

    fn from_number(number: &str) -> Option<Self> {
        Some(match number {
            "0" => FailInfo::BadAlg,
            "1" => FailInfo::BadMessageCheck,
            "2" => FailInfo::BadRequest,
            "3" => FailInfo::BadTime,
            "4" => FailInfo::BadCertId,
            _ => return None,
        })
    }
}

/// The digest of a SignedData (the GetCACaps names `SHA-1`, `SHA-256`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlgorithm {
    Sha1,
    Sha256,
}

impl DigestAlgorithm {
    fn message_digest(self) -> openssl::hash::MessageDigest {
        match self {
            DigestAlgorithm::Sha1 => openssl::hash::MessageDigest::sha1(),
            DigestAlgorithm::Sha256 => openssl::hash::MessageDigest::sha256(),
        }
    }
}

/// The content-encryption algorithm of an EnvelopedData.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentEncryption {
    /// Single DES: decrypted for old clients, never used to encrypt.
    DesCbc,
    DesEde3Cbc,
    Aes128Cbc,
    Aes192Cbc,
    Aes256Cbc,
}

impl ContentEncryption {
    /// The cipher a reply to a request in `self` is encrypted with.
    pub fn for_reply(self) -> ContentEncryption {
        match self {
            ContentEncryption::DesCbc => ContentEncryption::DesEde3Cbc,
            other => other,
        }
    }
}

/// What a CertRep says about the request it answers.
#[derive(Clone, PartialEq, Eq)]
pub enum CertRepOutcome {
    /// The issued certificate and the chain above it (issuing CA first),
    /// encrypted to the requester with `encryption` (see
    /// [`ContentEncryption::for_reply`]).
    Success {
        certificate_der: Vec<u8>,
        chain_der: Vec<Vec<u8>>,
        encryption: ContentEncryption,
    },
    Failure(FailInfo),
    Pending,
}

impl fmt::Debug for CertRepOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertRepOutcome::Success {
                chain_der,
                encryption,
                ..
            } => f
                .debug_struct("Success")
                .field("chain_len", &chain_der.len())
                .field("encryption", encryption)
                .finish_non_exhaustive(),
            CertRepOutcome::Failure(fail_info) => {
                f.debug_tuple("Failure").field(fail_info).finish()
            }
            CertRepOutcome::Pending => f.write_str("Pending"),
        }
    }
}

/// A challengePassword. Its `Debug` output never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ChallengePassword(String);

impl ChallengePassword {
    pub fn new(password: String) -> Self {
        Self(password)
    }

    /// The password, to compare (in constant time) with the one issued.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ChallengePassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChallengePassword([redacted])")
    }
}

/// The GetCACaps answer (RFC 8894 §3.5.2), one capability per line.
/// `Renewal` is left out: RenewalReq is refused (see the module header).
pub fn ca_caps() -> &'static str {
    "POSTPKIOperation\nSHA-1\nSHA-256\nAES\nDES3\nSCEPStandard\n"
}
