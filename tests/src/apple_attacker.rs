//! What an attacker, or a careless device, sends to the Apple endpoints
//! that a real device never would: `Mdm-Signature`s made with keys and
//! certificates of its own choosing, SCEP requests built by hand (an EC
//! key, a key far too large, the same message twice) and raw HTTPS.
//!
//! Everything here is built with OpenSSL and yasna directly, not with the
//! server's codecs, so what the server is sent is not shaped by what it
//! expects.

use std::net::SocketAddr;

use anyhow::{Context, Result, bail};
use base64::Engine;
use chrono::Utc;
use latchkey_certs::PrivateKeyPem;
use latchkey_certs::scep::{
    CertRepStatus, ContentEncryption, DigestAlgorithm, Requester, Transaction,
    decode_ca_cert_response,
};
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkey::{PKey, Private};
use openssl::stack::Stack;
use openssl::x509::X509;
use yasna::models::ObjectIdentifier;

use crate::apple::https_exchange;

const OID_CHALLENGE_PASSWORD: &[u64] = &[1, 2, 840, 113549, 1, 9, 7];
const OID_COMMON_NAME: &[u64] = &[2, 5, 4, 3];
const OID_RSA_ENCRYPTION: &[u64] = &[1, 2, 840, 113549, 1, 1, 1];
const OID_SHA256_WITH_RSA: &[u64] = &[1, 2, 840, 113549, 1, 1, 11];
const OID_ECDSA_WITH_SHA256: &[u64] = &[1, 2, 840, 10045, 4, 3, 2];

/// `bytes` as the `Mdm-Signature` header carries a detached signature by
/// `certificate_pem`'s key; `extra_certificates_pem` are put in the
/// signature's certificate set beside the signer's.
pub fn mdm_signature(
    certificate_pem: &str,
    key: &PrivateKeyPem,
    extra_certificates_pem: &str,
    bytes: &[u8],
) -> Result<String> {
    let signer = X509::from_pem(certificate_pem.as_bytes())?;
    let key = PKey::private_key_from_pem(key.expose().as_bytes())?;
    let mut extra = Stack::new()?;
    if !extra_certificates_pem.trim().is_empty() {
        for cert in X509::stack_from_pem(extra_certificates_pem.as_bytes())? {
            extra.push(cert)?;
        }
    }
    let der = Pkcs7::sign(
        &signer,
        &key,
        &extra,
        bytes,
        Pkcs7Flags::BINARY | Pkcs7Flags::DETACHED,
    )?
    .to_der()?;
    Ok(base64::engine::general_purpose::STANDARD.encode(der))
}

/// An RSA key and a certificate self-signed over it, as an attacker makes
/// one in a second.
pub fn self_signed_identity(common_name: &str) -> Result<(String, PrivateKeyPem)> {
    let requester = Requester::generate(common_name, Utc::now())?;
    let pem = X509::from_der(requester.certificate_der())?.to_pem()?;
    Ok((String::from_utf8(pem)?, requester.key_pem()?))
}

/// A PKCS#10 request for `key` (RSA or EC) with a challengePassword,
/// signed with SHA-256.
pub fn csr_for_key(key: &PKey<Private>, challenge: &str) -> Result<Vec<u8>> {
    let spki = key.public_key_to_der()?;
    let info = certification_request_info(&spki, challenge);
    let mut signer = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), key)?;
    let signature = signer.sign_oneshot_to_vec(&info)?;
    let rsa = key.rsa().is_ok();
    Ok(signed_request(&info, &signature, rsa))
}

/// A PKCS#10 request whose RSA modulus is `bits` long and whose signature
/// is noise: what costs a server the most to look at.
pub fn csr_with_oversized_rsa_key(bits: usize, challenge: &str) -> Result<Vec<u8>> {
    let bytes = bits.div_ceil(8);
    let mut modulus = vec![0u8; bytes];
    openssl::rand::rand_bytes(&mut modulus)?;
    if let Some(first) = modulus.first_mut() {
        *first |= 0x80;
    }
    if let Some(last) = modulus.last_mut() {
        *last |= 1;
    }
    let spki = yasna::construct_der(|writer| {
        writer.write_sequence(|writer| {
            writer.next().write_sequence(|writer| {
                writer
                    .next()
                    .write_oid(&ObjectIdentifier::from_slice(OID_RSA_ENCRYPTION));
                writer.next().write_null();
            });
            let key = yasna::construct_der(|writer| {
                writer.write_sequence(|writer| {
                    writer.next().write_bigint_bytes(&modulus, true);
                    writer.next().write_u32(65_537);
                });
            });
            writer.next().write_bitvec_bytes(&key, key.len() * 8);
        });
    });
    let info = certification_request_info(&spki, challenge);
    let mut signature = vec![0u8; bytes];
    openssl::rand::rand_bytes(&mut signature)?;
    Ok(signed_request(&info, &signature, true))
}

fn certification_request_info(spki: &[u8], challenge: &str) -> Vec<u8> {
    yasna::construct_der(|writer| {
        writer.write_sequence(|writer| {
            writer.next().write_u8(0);
            writer.next().write_sequence(|writer| {
                writer.next().write_set(|writer| {
                    writer.next().write_sequence(|writer| {
                        writer
                            .next()
                            .write_oid(&ObjectIdentifier::from_slice(OID_COMMON_NAME));
                        writer.next().write_utf8_string("attacker");
                    });
                });
            });
            writer.next().write_der(spki);
            writer
                .next()
                .write_tagged_implicit(yasna::Tag::context(0), |writer| {
                    writer.write_set(|writer| {
                        writer.next().write_sequence(|writer| {
                            writer
                                .next()
                                .write_oid(&ObjectIdentifier::from_slice(OID_CHALLENGE_PASSWORD));
                            writer.next().write_set(|writer| {
                                writer.next().write_utf8_string(challenge);
                            });
                        });
                    });
                });
        });
    })
}

fn signed_request(info: &[u8], signature: &[u8], rsa: bool) -> Vec<u8> {
    yasna::construct_der(|writer| {
        writer.write_sequence(|writer| {
            writer.next().write_der(info);
            writer.next().write_sequence(|writer| {
                if rsa {
                    writer
                        .next()
                        .write_oid(&ObjectIdentifier::from_slice(OID_SHA256_WITH_RSA));
                    writer.next().write_null();
                } else {
                    writer
                        .next()
                        .write_oid(&ObjectIdentifier::from_slice(OID_ECDSA_WITH_SHA256));
                }
            });
            writer
                .next()
                .write_bitvec_bytes(signature, signature.len() * 8);
        });
    })
}

/// A SCEP client that builds its PKCSReq from any PKCS#10 request.
pub struct ScepAttacker {
    addr: SocketAddr,
    ca_pem: String,
    /// The RA certificate from GetCACert (DER).
    pub ra: Vec<u8>,
}

/// One PKIOperation message and what is needed to read its answer.
pub struct PkiMessage {
    pub requester: Requester,
    pub transaction: Transaction,
    pub der: Vec<u8>,
}

impl ScepAttacker {
    /// Fetches the RA certificate as a device does first.
    pub async fn connect(addr: SocketAddr, ca_pem: &str) -> Result<Self> {
        let (status, _, body) = https_exchange(
            addr,
            ca_pem,
            "GET",
            "/apple/scep?operation=GetCACert&message=attacker",
            &[],
            b"",
        )
        .await?;
        if status != 200 {
            bail!("GetCACert answered {status}");
        }
        let ra = decode_ca_cert_response(&body)?
            .into_iter()
            .next()
            .context("GetCACert sent no certificate")?;
        Ok(ScepAttacker {
            addr,
            ca_pem: ca_pem.to_owned(),
            ra,
        })
    }

    /// A PKCSReq carrying `csr` (by default a request for the requester's
    /// own RSA key with `challenge`).
    pub fn message(&self, challenge: &str, csr: Option<Vec<u8>>) -> Result<PkiMessage> {
        let requester = Requester::generate("attacker", Utc::now())?;
        let csr = match csr {
            Some(csr) => csr,
            None => requester.csr("attacker", challenge, DigestAlgorithm::Sha256)?,
        };
        let (der, transaction) = requester.pkcs_req(
            &csr,
            &self.ra,
            DigestAlgorithm::Sha256,
            ContentEncryption::Aes128Cbc,
            Utc::now(),
        )?;
        Ok(PkiMessage {
            requester,
            transaction,
            der,
        })
    }

    /// POSTs a PKIOperation body as it is; the status and the body.
    pub async fn post(&self, body: &[u8]) -> Result<(u16, Vec<u8>)> {
        let (status, _, reply) = https_exchange(
            self.addr,
            &self.ca_pem,
            "POST",
            "/apple/scep?operation=PKIOperation",
            &[("Content-Type", "application/x-pki-message".into())],
            body,
        )
        .await?;
        Ok((status, reply))
    }

    /// Sends `message` and reads the CertRep; an HTTP error is an `Err`.
    pub async fn send(&self, message: &PkiMessage) -> Result<CertRepStatus> {
        let (status, reply) = self.post(&message.der).await?;
        if status != 200 {
            bail!("HTTP {status}: {}", String::from_utf8_lossy(&reply));
        }
        self.read(message, &reply)
    }

    /// Reads a CertRep answering `message`.
    pub fn read(&self, message: &PkiMessage, reply: &[u8]) -> Result<CertRepStatus> {
        let rep = message.requester.decode_cert_rep(reply, &self.ra)?;
        if rep.transaction_id != message.transaction.transaction_id
            || rep.recipient_nonce != message.transaction.sender_nonce
        {
            bail!("the CertRep does not answer this transaction");
        }
        Ok(rep.status)
    }
}
