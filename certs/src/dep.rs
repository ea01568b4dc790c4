//! The server token of Apple's Automated Device Enrollment (ADE, formerly
//! DEP). Apple documents the exchange in "Authenticating with the
//! Automated Device Enrollment program":
//!
//! 1. the server makes an RSA key and a self-signed certificate
//!    ([`generate_dep_keypair`]), which the admin uploads to Apple
//!    Business Manager (or School Manager) for a device management server;
//! 2. Apple hands back a `.p7m` file: an S/MIME message (MIME headers, a
//!    base64 body) whose CMS EnvelopedData is encrypted to that
//!    certificate;
//! 3. the decrypted content is a MIME part whose body holds the token's
//!    JSON between `-----BEGIN MESSAGE-----` and `-----END MESSAGE-----`
//!    ([`decrypt_dep_token`]).
//!
//! [`encrypt_dep_token_for`] writes the same format, for the fake Apple
//! service and tests. The token's secrets are carried in
//! [`DepServerToken`], which redacts them in `Debug`.

use std::fmt;

use base64::Engine;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectKeyIdentifier};
use openssl::x509::{X509, X509Builder, X509NameBuilder};

use crate::PrivateKeyPem;

/// How long the certificate uploaded to Apple is valid. Decryption does
/// not look at it: a token Apple encrypted to the certificate decrypts as
/// long as the key is kept.
const DEP_CERTIFICATE_DAYS: i64 = 365;

/// The markers around the token's JSON in the decrypted message.
const BEGIN_MESSAGE: &str = "-----BEGIN MESSAGE-----";
const END_MESSAGE: &str = "-----END MESSAGE-----";

/// What went wrong while making the key pair, or reading or writing a
/// server token.
#[derive(Debug, thiserror::Error)]
pub enum DepTokenError {
    #[error("the certificate is not a readable PEM certificate: {0}")]
    MalformedCertificate(String),
    #[error("the private key is not a readable unencrypted PEM key: {0}")]
    MalformedKey(String),
    #[error("the private key does not belong to the certificate")]
    KeyMismatch,
    #[error(
        "the token file is not an S/MIME message (nor DER or PEM PKCS#7): {0}; \
         give the .p7m file Apple Business Manager downloads"
    )]
    NotSmime(String),
    #[error("the token file holds PKCS#7 data that is not encrypted (not EnvelopedData)")]
    NotEncrypted,
    #[error(
        "the token does not decrypt with this key: it was encrypted to another certificate \
         (upload this server's certificate to Apple Business Manager and download the token again)"
    )]
    NotForThisKey,
    #[error("the decrypted token holds no -----BEGIN MESSAGE----- ... -----END MESSAGE----- block")]
    NoMessageBlock,
    #[error("the token's JSON is malformed: {0}")]
    BadJson(String),
    #[error("the token has no {0}")]
    MissingField(&'static str),
    #[error("the token's access_token_expiry {0:?} is not an ISO 8601 time")]
    BadExpiry(String),
    #[error("the cryptography library failed: {0}")]
    Crypto(String),
}

fn crypto(e: openssl::error::ErrorStack) -> DepTokenError {
    DepTokenError::Crypto(first_reason(&e))
}

/// OpenSSL's first reason, without its file and line noise.
fn first_reason(stack: &openssl::error::ErrorStack) -> String {
    stack
        .errors()
        .first()
        .and_then(|e| e.reason())
        .unwrap_or("unknown error")
        .to_owned()
}

/// The OAuth 1.0a credentials of one device management server at Apple.
/// `Debug` shows the consumer key and the expiry only.
#[derive(Clone, PartialEq, Eq)]
pub struct DepServerToken {
    pub consumer_key: String,
    pub consumer_secret: String,
    pub access_token: String,
    pub access_secret: String,
    /// After this, Apple refuses the token and the admin must download a
    /// renewed one.
    pub access_token_expiry: DateTime<Utc>,
}

impl fmt::Debug for DepServerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DepServerToken")
            .field("consumer_key", &self.consumer_key)
            .field("consumer_secret", &"[redacted]")
            .field("access_token", &"[redacted]")
            .field("access_secret", &"[redacted]")
            .field("access_token_expiry", &self.access_token_expiry)
            .finish()
    }
}

/// The token's JSON as Apple writes it; every field is checked by hand so
/// a missing one is named.
#[derive(serde::Deserialize, serde::Serialize)]
struct TokenJson {
    #[serde(default)]
    consumer_key: Option<String>,
    #[serde(default)]
    consumer_secret: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    access_secret: Option<String>,
    #[serde(default)]
    access_token_expiry: Option<String>,
}

impl DepServerToken {
    /// Reads the token's JSON (the text between the MESSAGE markers, as an
    /// admin who decrypted the file by hand would give it).
    pub fn from_json(json: &str) -> Result<Self, DepTokenError> {
        let parsed: TokenJson =
            serde_json::from_str(json.trim()).map_err(|e| DepTokenError::BadJson(e.to_string()))?;
        let field = |value: Option<String>, name: &'static str| {
            value
                .filter(|v| !v.trim().is_empty())
                .ok_or(DepTokenError::MissingField(name))
        };
        let expiry = field(parsed.access_token_expiry, "access_token_expiry")?;
        let access_token_expiry = DateTime::parse_from_rfc3339(expiry.trim())
            .map_err(|_| DepTokenError::BadExpiry(expiry.clone()))?
            .with_timezone(&Utc);
        Ok(DepServerToken {
            consumer_key: field(parsed.consumer_key, "consumer_key")?,
            consumer_secret: field(parsed.consumer_secret, "consumer_secret")?,
            access_token: field(parsed.access_token, "access_token")?,
            access_secret: field(parsed.access_secret, "access_secret")?,
            access_token_expiry,
        })
    }

    /// The token's JSON, as Apple writes it (`access_token_expiry` in
    /// `2025-04-02T16:09:08Z` form), for storing it sealed.
    pub fn to_json(&self) -> String {
        let json = TokenJson {
            consumer_key: Some(self.consumer_key.clone()),
            consumer_secret: Some(self.consumer_secret.clone()),
            access_token: Some(self.access_token.clone()),
            access_secret: Some(self.access_secret.clone()),
            access_token_expiry: Some(
                self.access_token_expiry
                    .to_rfc3339_opts(SecondsFormat::Secs, true),
            ),
        };
        // Serialising a struct of strings cannot fail.
        serde_json::to_string(&json).unwrap_or_default()
    }

    /// Whether Apple refuses the token as of `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        now >= self.access_token_expiry
    }
}

/// A new RSA-2048 key and a self-signed certificate for it (keyEncipherment,
/// valid a year from `now`), to upload to Apple Business Manager. Returns
/// the certificate as PEM and the key as PKCS#8 PEM.
pub fn generate_dep_keypair(
    common_name: &str,
    now: DateTime<Utc>,
) -> Result<(String, PrivateKeyPem), DepTokenError> {
    let rsa = Rsa::generate(2048).map_err(crypto)?;
    let key = PKey::from_rsa(rsa).map_err(crypto)?;
    let mut name = X509NameBuilder::new().map_err(crypto)?;
    name.append_entry_by_nid(Nid::COMMONNAME, common_name)
        .map_err(|e| DepTokenError::MalformedCertificate(first_reason(&e)))?;
    let name = name.build();
    let mut builder = X509Builder::new().map_err(crypto)?;
    builder.set_version(2).map_err(crypto)?;
    let mut serial =
        crate::random_bytes::<16>().map_err(|e| DepTokenError::Crypto(e.to_string()))?;
    // RFC 5280 §4.1.2.2: a positive serial of at most 20 octets.
    if let Some(first) = serial.first_mut() {
        *first &= 0x7f;
        *first |= 0x01;
    }
    let serial = BigNum::from_slice(&serial)
        .and_then(|n| n.to_asn1_integer())
        .map_err(crypto)?;
    builder.set_serial_number(&serial).map_err(crypto)?;
    builder.set_subject_name(&name).map_err(crypto)?;
    builder.set_issuer_name(&name).map_err(crypto)?;
    builder.set_pubkey(&key).map_err(crypto)?;
    let from = Asn1Time::from_unix((now - Duration::minutes(5)).timestamp()).map_err(crypto)?;
    let until = Asn1Time::from_unix((now + Duration::days(DEP_CERTIFICATE_DAYS)).timestamp())
        .map_err(crypto)?;
    builder.set_not_before(&from).map_err(crypto)?;
    builder.set_not_after(&until).map_err(crypto)?;
    builder
        .append_extension(BasicConstraints::new().critical().build().map_err(crypto)?)
        .map_err(crypto)?;
    builder
        .append_extension(
            KeyUsage::new()
                .critical()
                .key_encipherment()
                .build()
                .map_err(crypto)?,
        )
        .map_err(crypto)?;
    let subject_key_id = SubjectKeyIdentifier::new()
        .build(&builder.x509v3_context(None, None))
        .map_err(crypto)?;
    builder.append_extension(subject_key_id).map_err(crypto)?;
    builder
        .sign(&key, MessageDigest::sha256())
        .map_err(crypto)?;
    let pem = builder.build().to_pem().map_err(crypto)?;
    let key_pem = key.private_key_to_pem_pkcs8().map_err(crypto)?;
    let text = |bytes: Vec<u8>| {
        String::from_utf8(bytes).map_err(|_| DepTokenError::Crypto("PEM is not text".into()))
    };
    Ok((text(pem)?, PrivateKeyPem::new(text(key_pem)?)))
}

fn read_certificate(certificate_pem: &str) -> Result<X509, DepTokenError> {
    X509::from_pem(certificate_pem.as_bytes())
        .map_err(|e| DepTokenError::MalformedCertificate(first_reason(&e)))
}

/// Decrypts the `.p7m` token file Apple Business Manager hands out for the
/// server whose certificate is `certificate_pem` and key `key`.
///
/// Takes the S/MIME message as downloaded (CRLF or LF line ends), its
/// base64 body alone, a raw DER EnvelopedData or a PEM `PKCS7` block.
pub fn decrypt_dep_token(
    p7m: &[u8],
    certificate_pem: &str,
    key: &PrivateKeyPem,
) -> Result<DepServerToken, DepTokenError> {
    let certificate = read_certificate(certificate_pem)?;
    let key: PKey<Private> = PKey::private_key_from_pem(key.expose().as_bytes())
        .map_err(|e| DepTokenError::MalformedKey(first_reason(&e)))?;
    let public = certificate
        .public_key()
        .map_err(|e| DepTokenError::MalformedCertificate(first_reason(&e)))?;
    if !public.public_eq(&key) {
        return Err(DepTokenError::KeyMismatch);
    }
    let envelope = read_envelope(p7m)?;
    let is_enveloped = envelope
        .type_()
        .is_some_and(|t| t.nid() == Nid::PKCS7_ENVELOPED);
    if !is_enveloped {
        return Err(DepTokenError::NotEncrypted);
    }
    let content = envelope
        .decrypt(&key, &certificate, Pkcs7Flags::empty())
        .map_err(|_| DepTokenError::NotForThisKey)?;
    let text = String::from_utf8_lossy(&content);
    let json = message_block(&text).ok_or(DepTokenError::NoMessageBlock)?;
    DepServerToken::from_json(json)
}

/// The JSON between the MESSAGE markers, wherever the MIME headers end.
fn message_block(text: &str) -> Option<&str> {
    let (_, after_begin) = text.split_once(BEGIN_MESSAGE)?;
    let (json, _) = after_begin.split_once(END_MESSAGE)?;
    Some(json)
}

/// Reads the PKCS#7 structure out of any of the forms the token file comes in.
fn read_envelope(input: &[u8]) -> Result<Pkcs7, DepTokenError> {
    let start = input
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .ok_or_else(|| DepTokenError::NotSmime("the file is empty".into()))?;
    let trimmed = input.get(start..).unwrap_or_default();
    // A DER SEQUENCE: the EnvelopedData as it is, without the S/MIME wrapping.
    if trimmed.first() == Some(&0x30) {
        return Pkcs7::from_der(trimmed).map_err(|e| DepTokenError::NotSmime(first_reason(&e)));
    }
    if trimmed.starts_with(b"-----BEGIN") {
        return Pkcs7::from_pem(trimmed).map_err(|e| DepTokenError::NotSmime(first_reason(&e)));
    }
    let text = std::str::from_utf8(trimmed)
        .map_err(|_| DepTokenError::NotSmime("neither text nor DER".into()))?;
    let body = smime_body(text)?;
    let der = base64::engine::general_purpose::STANDARD
        .decode(
            body.bytes()
                .filter(|b| !b.is_ascii_whitespace())
                .collect::<Vec<u8>>(),
        )
        .map_err(|e| DepTokenError::NotSmime(format!("the body is not base64 ({e})")))?;
    Pkcs7::from_der(&der).map_err(|e| DepTokenError::NotSmime(first_reason(&e)))
}

/// The base64 body of an S/MIME message (RFC 8551 §3.2): the headers up
/// to the first empty line must name `pkcs7-mime` content in base64. A
/// text without headers is taken as the base64 body alone.
fn smime_body(text: &str) -> Result<&str, DepTokenError> {
    let looks_like_base64 = text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+/=\r\n\t ".contains(&b));
    if looks_like_base64 {
        return Ok(text);
    }
    let (headers, body) = split_headers(text)
        .ok_or_else(|| DepTokenError::NotSmime("no empty line after the MIME headers".into()))?;
    let mut content_type = None;
    let mut encoding = None;
    for line in unfold(headers) {
        let Some((name, value)) = line.split_once(':') else {
            return Err(DepTokenError::NotSmime(format!(
                "{:?} is not a MIME header",
                line.chars().take(40).collect::<String>()
            )));
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "content-type" => content_type = Some(value.trim().to_ascii_lowercase()),
            "content-transfer-encoding" => encoding = Some(value.trim().to_ascii_lowercase()),
            _ => {}
        }
    }
    let content_type =
        content_type.ok_or_else(|| DepTokenError::NotSmime("no Content-Type header".into()))?;
    if !content_type.contains("pkcs7-mime") {
        return Err(DepTokenError::NotSmime(format!(
            "the content type is {content_type}, not application/pkcs7-mime"
        )));
    }
    if let Some(encoding) = encoding
        && encoding != "base64"
    {
        return Err(DepTokenError::NotSmime(format!(
            "the transfer encoding is {encoding}, not base64"
        )));
    }
    Ok(body)
}

/// Splits a MIME entity at its first empty line, CRLF or LF.
fn split_headers(text: &str) -> Option<(&str, &str)> {
    let crlf = text.find("\r\n\r\n").map(|i| (i, 4));
    let lf = text.find("\n\n").map(|i| (i, 2));
    let (at, len) = match (crlf, lf) {
        (Some(a), Some(b)) => {
            if a.0 < b.0 {
                a
            } else {
                b
            }
        }
        (Some(a), None) => a,
        (None, Some(b)) => b,
        (None, None) => return None,
    };
    Some((text.get(..at)?, text.get(at + len..)?))
}

/// Header lines with RFC 5322 §2.2.3 folding undone.
fn unfold(headers: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for raw in headers.lines() {
        let line = raw.trim_end_matches('\r');
        if line.starts_with([' ', '\t'])
            && let Some(last) = lines.last_mut()
        {
            last.push(' ');
            last.push_str(line.trim());
            continue;
        }
        if !line.trim().is_empty() {
            lines.push(line.to_owned());
        }
    }
    lines
}

/// Encrypts `token` to `certificate_pem` the way Apple Business Manager
/// does: the JSON between the MESSAGE markers in a `text/plain` MIME part,
/// in an AES-256 EnvelopedData, written as an S/MIME message with CRLF
/// line ends.
pub fn encrypt_dep_token_for(
    certificate_pem: &str,
    token: &DepServerToken,
) -> Result<Vec<u8>, DepTokenError> {
    let certificate = read_certificate(certificate_pem)?;
    let mut recipients = Stack::new().map_err(crypto)?;
    recipients.push(certificate).map_err(crypto)?;
    let content = format!(
        "Content-Type: text/plain;charset=UTF-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n\
         {BEGIN_MESSAGE}\r\n{}\r\n{END_MESSAGE}\r\n",
        token.to_json()
    );
    let envelope = Pkcs7::encrypt(
        &recipients,
        content.as_bytes(),
        Cipher::aes_256_cbc(),
        Pkcs7Flags::BINARY,
    )
    .map_err(crypto)?;
    let der = envelope.to_der().map_err(crypto)?;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from(
        "Content-Type: application/pkcs7-mime; name=\"smime.p7m\"; smime-type=enveloped-data\r\n\
         Content-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"smime.p7m\"\r\n\
         Content-Description: S/MIME Encrypted Message\r\n\r\n",
    );
    // RFC 2045 §6.8: lines of at most 76 characters; 64 as PEM does.
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push_str("\r\n");
    }
    Ok(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(now: DateTime<Utc>) -> DepServerToken {
        DepServerToken {
            consumer_key: "CK_0123".into(),
            consumer_secret: "CS_4567".into(),
            access_token: "AT_89ab".into(),
            access_secret: "AS_cdef".into(),
            access_token_expiry: DateTime::from_timestamp(now.timestamp() + 86_400, 0)
                .unwrap_or(now),
        }
    }

    #[test]
    fn a_token_encrypted_to_the_certificate_decrypts_to_itself() {
        let now = Utc::now();
        let (cert, key) = generate_dep_keypair("Latchkey DEP", now).unwrap();
        let token = token(now);
        let p7m = encrypt_dep_token_for(&cert, &token).unwrap();
        let text = String::from_utf8(p7m.clone()).unwrap();
        assert!(text.contains("application/pkcs7-mime"), "{text}");
        assert_eq!(decrypt_dep_token(&p7m, &cert, &key).unwrap(), token);
    }

    #[test]
    fn crlf_lf_base64_der_and_pem_forms_all_decrypt() {
        let now = Utc::now();
        let (cert, key) = generate_dep_keypair("Latchkey DEP", now).unwrap();
        let token = token(now);
        let p7m = String::from_utf8(encrypt_dep_token_for(&cert, &token).unwrap()).unwrap();
        let lf = p7m.replace("\r\n", "\n");
        let crlf = lf.replace('\n', "\r\n");
        assert_eq!(
            decrypt_dep_token(lf.as_bytes(), &cert, &key).unwrap(),
            token
        );
        assert_eq!(
            decrypt_dep_token(crlf.as_bytes(), &cert, &key).unwrap(),
            token
        );

        let (_, body) = split_headers(&lf).unwrap();
        assert_eq!(
            decrypt_dep_token(body.as_bytes(), &cert, &key).unwrap(),
            token
        );
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.replace('\n', ""))
            .unwrap();
        assert_eq!(decrypt_dep_token(&der, &cert, &key).unwrap(), token);
        let pem = Pkcs7::from_der(&der).unwrap().to_pem().unwrap();
        assert_eq!(decrypt_dep_token(&pem, &cert, &key).unwrap(), token);
    }

    #[test]
    fn a_token_for_another_certificate_is_named_as_such() {
        let now = Utc::now();
        let (cert, key) = generate_dep_keypair("Latchkey DEP", now).unwrap();
        let (other_cert, _) = generate_dep_keypair("Latchkey DEP", now).unwrap();
        let p7m = encrypt_dep_token_for(&other_cert, &token(now)).unwrap();
        let err = decrypt_dep_token(&p7m, &cert, &key).unwrap_err();
        assert!(matches!(err, DepTokenError::NotForThisKey), "{err}");
        assert!(err.to_string().contains("does not decrypt"), "{err}");
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_before_decrypting() {
        let now = Utc::now();
        let (cert, _) = generate_dep_keypair("Latchkey DEP", now).unwrap();
        let (_, other_key) = generate_dep_keypair("Latchkey DEP", now).unwrap();
        let p7m = encrypt_dep_token_for(&cert, &token(now)).unwrap();
        assert!(matches!(
            decrypt_dep_token(&p7m, &cert, &other_key),
            Err(DepTokenError::KeyMismatch)
        ));
    }

    #[test]
    fn what_is_not_smime_says_so() {
        let now = Utc::now();
        let (cert, key) = generate_dep_keypair("Latchkey DEP", now).unwrap();
        for input in [
            &b""[..],
            b"hello, world: this is not S/MIME",
            b"Content-Type: text/plain\n\nhello",
            b"\x30\x03\x02\x01\x00",
        ] {
            assert!(
                matches!(
                    decrypt_dep_token(input, &cert, &key),
                    Err(DepTokenError::NotSmime(_))
                ),
                "{input:?}"
            );
        }
    }

    #[test]
    fn signed_data_is_not_encrypted() {
        let now = Utc::now();
        let (cert, key) = generate_dep_keypair("Latchkey DEP", now).unwrap();
        let x509 = X509::from_pem(cert.as_bytes()).unwrap();
        let pkey = PKey::private_key_from_pem(key.expose().as_bytes()).unwrap();
        let signed = Pkcs7::sign(
            &x509,
            &pkey,
            &Stack::new().unwrap(),
            b"hello",
            Pkcs7Flags::BINARY,
        )
        .unwrap();
        assert!(matches!(
            decrypt_dep_token(&signed.to_der().unwrap(), &cert, &key),
            Err(DepTokenError::NotEncrypted)
        ));
    }

    fn encrypt_raw(cert: &str, content: &str) -> Vec<u8> {
        let mut recipients = Stack::new().unwrap();
        recipients
            .push(X509::from_pem(cert.as_bytes()).unwrap())
            .unwrap();
        Pkcs7::encrypt(
            &recipients,
            content.as_bytes(),
            Cipher::aes_256_cbc(),
            Pkcs7Flags::BINARY,
        )
        .unwrap()
        .to_smime(&[], Pkcs7Flags::empty())
        .unwrap()
    }

    #[test]
    fn message_block_json_and_fields_are_each_checked() {
        let now = Utc::now();
        let (cert, key) = generate_dep_keypair("Latchkey DEP", now).unwrap();
        let decrypt = |content: &str| decrypt_dep_token(&encrypt_raw(&cert, content), &cert, &key);
        assert!(matches!(
            decrypt("{\"consumer_key\":\"x\"}"),
            Err(DepTokenError::NoMessageBlock)
        ));
        assert!(matches!(
            decrypt("-----BEGIN MESSAGE-----\n{not json\n-----END MESSAGE-----\n"),
            Err(DepTokenError::BadJson(_))
        ));
        let full = token(now).to_json();
        let without_secret = full.replace("\"access_secret\"", "\"other\"");
        let err = decrypt(&format!(
            "-----BEGIN MESSAGE-----\n{without_secret}\n-----END MESSAGE-----\n"
        ))
        .unwrap_err();
        assert!(
            matches!(err, DepTokenError::MissingField("access_secret")),
            "{err}"
        );
        let bad_expiry = full.replace('T', " at ");
        assert!(matches!(
            decrypt(&format!("{BEGIN_MESSAGE}{bad_expiry}{END_MESSAGE}")),
            Err(DepTokenError::BadExpiry(_))
        ));
    }

    #[test]
    fn apples_expiry_form_reads_and_writes_back() {
        let json = r#"{"consumer_key":"CK_1","consumer_secret":"CS_1","access_token":"AT_1",
            "access_secret":"AS_1","access_token_expiry":"2015-04-02T16:09:08Z"}"#;
        let token = DepServerToken::from_json(json).unwrap();
        assert_eq!(token.access_token_expiry.timestamp(), 1_427_990_948);
        assert!(
            token
                .to_json()
                .contains("\"access_token_expiry\":\"2015-04-02T16:09:08Z\"")
        );
        assert!(token.is_expired(Utc::now()));
    }

    #[test]
    fn debug_hides_the_secrets() {
        let shown = format!("{:?}", token(Utc::now()));
        assert!(shown.contains("CK_0123"), "{shown}");
        for secret in ["CS_4567", "AT_89ab", "AS_cdef"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    #[test]
    fn the_certificate_is_rsa_2048_for_key_encipherment() {
        let now = Utc::now();
        let (cert, key) = generate_dep_keypair("Latchkey DEP", now).unwrap();
        let x509 = X509::from_pem(cert.as_bytes()).unwrap();
        assert_eq!(x509.public_key().unwrap().rsa().unwrap().size(), 256);
        assert!(key.expose().starts_with("-----BEGIN PRIVATE KEY-----"));
        let text = String::from_utf8(x509.to_text().unwrap()).unwrap();
        assert!(text.contains("Key Encipherment"), "{text}");
        assert!(
            text.contains("CN = Latchkey DEP") || text.contains("CN=Latchkey DEP"),
            "{text}"
        );
    }

    /// A key pair made by [`generate_dep_keypair`] and a token file made
    /// for it by another producer, `openssl smime -encrypt -aes256` (the
    /// legacy `application/x-pkcs7-mime` type, LF line ends).
    const GOLDEN_CERT: &str = "-----BEGIN CERTIFICATE-----\n\
MIIC9zCCAd+gAwIBAgIQRetV01+AZwK76PXq5OapoTANBgkqhkiG9w0BAQsFADAX\n\
MRUwEwYDVQQDDAxMYXRjaGtleSBERVAwHhcNMjYxMjAzMTgyMjA2WhcNMjcxMjAz\n\
MTgyNzA2WjAXMRUwEwYDVQQDDAxMYXRjaGtleSBERVAwggEiMA0GCSqGSIb3DQEB\n\
AQUAA4IBDwAwggEKAoIBAQCsWuo+RKEaA3A30exf9ergwMO75uP+V2imA2L7X0mD\n\
429BuHOO01WSHCdRZHVkW7AVNdqTCfHj11UR0qferkOJt+WJRwKBOPDlZtV+nRgM\n\
XbC9F8UtxDC+wKGgscucMAU1b5u/r6+SpSRWvf0wuTQrbdlud0IYvr7Nm1sn8tbA\n\
IK5nNyu2ZlQHg/IERshEA/SbUXNq6sIsGoPHQIT88MjdEknG1lzMkDvSftm0O4cN\n\
GpEmfrfAz6YiT0ZWAV6jHfFsBiotS2J3wXyLviLVWVWFAcftBgu8O2HNrsnKUyeP\n\
3Xn6UDB0yMAaAnCzAZg5/ml4b3IMMZNEtkVfy/vxxB4rAgMBAAGjPzA9MAwGA1Ud\n\
EwEB/wQCMAAwDgYDVR0PAQH/BAQDAgUgMB0GA1UdDgQWBBRn44kznToc/fjE37ga\n\
bbEhjuzTmzANBgkqhkiG9w0BAQsFAAOCAQEAfGyQw/R3APXrs7XSEHH6ZjuCruR2\n\
ULH0aHFwZGRUUXC22BDUV6xRg1PttEZDzKQFmE1HFYvmEgt8/ofmBwWE9e4Tz7bB\n\
4TmOIsLq551QUDlzW8Z4emJnrZuqIVfUyN4qUm9TwMHmcl7VJK40xYY9BvbaI3An\n\
0rtGA6L/ICnEML34TfxxenRey1vY+ziyWrbzoA3O8j3rRReJ2wg0kVsKYG7JuRnH\n\
TVQUMBfIgkIFpIe7HgBqDlhfTSfTRdPS76CMmFrfHzlhNvcbnFezkCHoNfn0XWVS\n\
Rg+U54/pHmLVlXHRn3lNJ0clQ2YOVDIManobowWEM6n2LrpJjOhFp1xYJQ==\n\
-----END CERTIFICATE-----\n\
";
    const GOLDEN_KEY: &str = "-----BEGIN PRIVATE KEY-----\n\
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQCsWuo+RKEaA3A3\n\
0exf9ergwMO75uP+V2imA2L7X0mD429BuHOO01WSHCdRZHVkW7AVNdqTCfHj11UR\n\
0qferkOJt+WJRwKBOPDlZtV+nRgMXbC9F8UtxDC+wKGgscucMAU1b5u/r6+SpSRW\n\
vf0wuTQrbdlud0IYvr7Nm1sn8tbAIK5nNyu2ZlQHg/IERshEA/SbUXNq6sIsGoPH\n\
QIT88MjdEknG1lzMkDvSftm0O4cNGpEmfrfAz6YiT0ZWAV6jHfFsBiotS2J3wXyL\n\
viLVWVWFAcftBgu8O2HNrsnKUyeP3Xn6UDB0yMAaAnCzAZg5/ml4b3IMMZNEtkVf\n\
y/vxxB4rAgMBAAECggEAGvvm5ZXQFScJqCudEs8JFWQIoP/+nQDpWOh51DowY841\n\
SnhK20caBBSVUUhlmq9CK6fxTwkFDnNVlcNB1fq5hzO745iy+zFDgd7uOPL2Y2U9\n\
uPUiQU6QhSTaiTKc2pioEBwnqcSjO9XQESaQn9K3KL97hbB1MDOY4s7aYDBET/Lr\n\
yl2O1pkjj9kfuEUQVRr8zlFT0NV56VcGp/NWDvELpqvdhNlb1tnMAjlhgjLnChCN\n\
YFv3vZ5WYDsiLQLOWy5N+X3HY2UX/YzDG2ErBkbzU13IiTM0vAXVfi7GnN50MbuE\n\
JXjQ4UjYJ8xycxs/+kafUMMWcX3D7kRwNng7tyogVQKBgQDpCAI1QS9y3Kn/QFFf\n\
LayIf9M6sw482zWoTEgsO3vVXfcwGuA7ju0IUevvqQic0TcmdJIbVCsl50hXK/or\n\
Wu8prnkm65fasdkAwyyOZRnvGzl7qi27YOroKGVZjq1riwuB9BuIelgwpAfXCa6H\n\
MDmS4NFTqW/Rf4oiyVQ2rZjQvQKBgQC9V+NInU9G1tPSRUrpaeQnv8X5faIYFtln\n\
xmtUK6ESsO5ComVqM7Q4erA8uenxTt+AR23JlPKLeAecNtDDO0rCAcudix4FIYsa\n\
owyl+s7yllDG8ODGClZWil8c1XZ6O74S/tvc1RvbQWtH7Hj53xOtmio7qaWwp1Xd\n\
VCbnIEUdBwKBgQCKm+7kSl+0zLh5UYKVQI+tqYq1EahYXnNuJeGQHdmssnXDsVjL\n\
VFp9Zm0WYs7yqCdLwm7dvpTjuMx4vXnSrAYyHsuFcQEkXkEbiPxJvq1MYj8w5arK\n\
F/3iFZUjThCtNUmlBNQTu+IVHJxlNicP1omIah1YzCHs1RYPVv22gE+zaQKBgQCa\n\
pSjOiyVPz3BsQgogQEuHp5sz3cfBcxAYMThCI+xHztia9fZs2lPs+U/uGU6Yt3nW\n\
VQC3bv72qI9WqHKzsj6p3DuIrjJTsITjuZ5ABmx2OA07n0uGlLTVs+hhLXu59AeX\n\
ji7W2/wHhRPxR5O7SdbRqKOr3TCl6tY3kl6/0VyBiwKBgFNsnt9A3rhE2PDVNRDt\n\
vGQ4IUXnmboJAO13oDE+fUuCMgtguLOQGuYIc6Cbu638KEDIgelFXukpKjUf2peU\n\
qsnV7yGchzTbpczp+cX1C9d6stZ+cpgTCjN/xjb3NH1i1y/eVn5hwrhMO0Y33es3\n\
TzB59hPD3Eh5+e4BBb8oHB2q\n\
-----END PRIVATE KEY-----\n\
";
    const GOLDEN_P7M: &str = "MIME-Version: 1.0\n\
Content-Disposition: attachment; filename=\"smime.p7m\"\n\
Content-Type: application/x-pkcs7-mime; smime-type=enveloped-data; name=\"smime.p7m\"\n\
Content-Transfer-Encoding: base64\n\
\n\
MIICcgYJKoZIhvcNAQcDoIICYzCCAl8CAQAxggFHMIIBQwIBADArMBcxFTATBgNV\n\
BAMMDExhdGNoa2V5IERFUAIQRetV01+AZwK76PXq5OapoTANBgkqhkiG9w0BAQEF\n\
AASCAQAF8FdA6O2jDISBd0I44CAjRZt7HqxvSTcO1OuyX4GWScRbhAj6qllepcNd\n\
Jzzk/0jiYtikBUXUyP7PTt3wOjJxNLZxhinA8X79aVBb9NAewocvlnyqEYQLTwya\n\
XnkryL6LoY7c4mNVxdijwkgPa2yKBFflS/cgP1mRVRsA2YEKqiTkLyBD04NR1fRP\n\
EFxad3nyQJH+Wyyl1nWhALAbdrgFPBAO/vtlC+wHVktleU45w0rcE5eIKsv80CzU\n\
un+bljjn5C+hEU/RH1QPu9WqAVR8oZeNnIpFPf3R8vI3ZCTIpd77Ji91za7qQhGx\n\
vLaoWg+tQbNwNLpLUZfD+u3bgjBeMIIBDQYJKoZIhvcNAQcBMB0GCWCGSAFlAwQB\n\
KgQQ0KZPBaRfuryoy+gQmY7Gx4CB4PMe87Dz4xNoCad5QWSP1J9J7TkeJGK+cNWx\n\
BkNal9rm8+F9O9x/do6dHgDml5yyooYfQIvYGWD1FY6omwiwgOxSV4C9BRpUcZA3\n\
HecfAF599YVSzlhfOpIih/57haEnOHtooGZXGAlR+rkon0c28icWv4XhOi0xmcQP\n\
ZXXaOLKOLNDoBH2QdQak1Rks5Gpo8anuuu03ER/iBWaO98Kkuw1rX0mF9J5tOivN\n\
KGLkxOyhTpPT9xA9NyB/XuaTRd0ldkt4d2xbB+W8JkiXSOlOzDcvrOhWvxJDq13Q\n\
OSMHSLuo\n\
\n\
";

    #[test]
    fn a_token_file_written_by_the_openssl_command_decrypts() {
        let token = decrypt_dep_token(
            GOLDEN_P7M.as_bytes(),
            GOLDEN_CERT,
            &PrivateKeyPem::new(GOLDEN_KEY.to_owned()),
        )
        .unwrap();
        assert_eq!(token.consumer_key, "CK_9");
        assert_eq!(token.access_secret, "AS_1");
        assert_eq!(token.access_token_expiry.timestamp(), 1_427_990_948);
    }
}
