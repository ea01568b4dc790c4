use chrono::{Duration, Utc};
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509, X509StoreContext};

use super::cms::{self, AttributeValue, oid};
use super::*;
use crate::{Authority, PrivateKeyPem, generate_authority};

const CHALLENGE: &str = "one-time 7f3a";

/// The deployment's CA, an RA it issued, and the chain above a leaf.
struct Deployment {
    authority: Authority,
    ra: RegistrationAuthority,
    chain_der: Vec<Vec<u8>>,
    root: X509,
    issuing: X509,
}

fn deployment() -> Deployment {
    let now = Utc::now();
    let generated = generate_authority("Test", now).unwrap();
    let authority = Authority::load(
        &generated.root_cert_pem,
        &generated.issuing_cert_pem,
        &generated.issuing_key_pem,
    )
    .unwrap();
    let (ra_cert, ra_key) = authority
        .issue_scep_ra("Latchkey SCEP RA", now, Duration::days(365))
        .unwrap();
    let ra = RegistrationAuthority::load(&ra_cert.der, &ra_key).unwrap();
    let issuing = X509::from_pem(generated.issuing_cert_pem.as_bytes()).unwrap();
    let root = X509::from_pem(generated.root_cert_pem.as_bytes()).unwrap();
    let chain_der = vec![issuing.to_der().unwrap(), root.to_der().unwrap()];
    Deployment {
        authority,
        ra,
        chain_der,
        root,
        issuing,
    }
}

fn pkcs_req(
    requester: &Requester,
    ra_certificate_der: &[u8],
    digest: DigestAlgorithm,
    encryption: ContentEncryption,
) -> (Vec<u8>, Transaction) {
    let csr = requester.csr("iPhone", CHALLENGE, digest).unwrap();
    requester
        .pkcs_req(&csr, ra_certificate_der, digest, encryption, Utc::now())
        .unwrap()
}

fn unanswerable(result: Result<PkcsReq, DecodeError>) -> ScepError {
    match result {
        Err(DecodeError::Unanswerable(cause)) => cause,
        other => panic!("expected an unanswerable message, got {other:?}"),
    }
}

fn refused(result: Result<PkcsReq, DecodeError>) -> Refusal {
    match result {
        Err(DecodeError::Refused(refusal)) => *refusal,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Checks `leaf` against the deployment's root with OpenSSL, the issuing
/// CA as the intermediate.
fn verifies_against_chain(deployment: &Deployment, leaf: &X509) -> bool {
    let mut store = X509StoreBuilder::new().unwrap();
    store.add_cert(deployment.root.clone()).unwrap();
    let store = store.build();
    let mut intermediates = Stack::new().unwrap();
    intermediates.push(deployment.issuing.clone()).unwrap();
    let mut context = X509StoreContext::new().unwrap();
    context
        .init(&store, leaf, &intermediates, |c| c.verify_cert())
        .unwrap()
}

fn enrol(digest: DigestAlgorithm, encryption: ContentEncryption) {
    let deployment = deployment();
    let now = Utc::now();
    let requester = Requester::generate("SCEP signer", now).unwrap();
    let (message, transaction) = pkcs_req(
        &requester,
        deployment.ra.certificate_der(),
        digest,
        encryption,
    );

    let request = decode_pki_message(&message, &deployment.ra).unwrap();
    assert_eq!(request.reply_to.transaction_id, transaction.transaction_id);
    assert_eq!(request.reply_to.sender_nonce, transaction.sender_nonce);
    assert_eq!(request.reply_to.digest, digest);
    assert_eq!(request.content_encryption, encryption);
    assert_eq!(
        request.reply_to.requester_certificate_der,
        requester.certificate_der()
    );
    assert_eq!(
        request.csr.challenge_password.as_ref().unwrap().expose(),
        CHALLENGE
    );
    assert_eq!(request.csr.subject_common_name.as_deref(), Some("iPhone"));
    assert_eq!(request.csr.subject, "CN=iPhone");

    let issued = deployment
        .authority
        .issue_scep_device(
            &request.csr.subject_public_key_info,
            "device-1",
            &crate::device_uri("device-1"),
            now,
            Duration::days(365),
        )
        .unwrap();
    let reply = encode_cert_rep(
        &request.reply_to,
        &CertRepOutcome::Success {
            certificate_der: issued.der.clone(),
            chain_der: deployment.chain_der.clone(),
            encryption: request.content_encryption.for_reply(),
        },
        &deployment.ra,
        now,
    )
    .unwrap();

    let answer = requester
        .decode_cert_rep(&reply, deployment.ra.certificate_der())
        .unwrap();
    assert_eq!(answer.transaction_id, transaction.transaction_id);
    assert_eq!(answer.recipient_nonce, transaction.sender_nonce);
    assert_ne!(answer.sender_nonce, transaction.sender_nonce);
    let CertRepStatus::Success {
        issued_certificate_der,
        chain_der,
    } = answer.status
    else {
        panic!("expected success, got {:?}", answer.status);
    };
    assert_eq!(issued_certificate_der, issued.der);
    assert_eq!(chain_der, deployment.chain_der);
    let leaf = X509::from_der(&issued_certificate_der).unwrap();
    assert!(verifies_against_chain(&deployment, &leaf));
    let info = crate::inspect_certificate(&issued_certificate_der).unwrap();
    assert_eq!(info.device_id.as_deref(), Some("device-1"));
    assert_eq!(info.common_name.as_deref(), Some("device-1"));
    assert_eq!(
        info.spki_sha256,
        crate::sha256(&request.csr.subject_public_key_info)
    );
}

#[test]
fn a_device_enrols_with_sha256_and_aes_128() {
    enrol(DigestAlgorithm::Sha256, ContentEncryption::Aes128Cbc);
}

#[test]
fn a_device_enrols_with_sha256_and_aes_256() {
    enrol(DigestAlgorithm::Sha256, ContentEncryption::Aes256Cbc);
}

#[test]
fn a_device_enrols_with_sha1_and_des3() {
    enrol(DigestAlgorithm::Sha1, ContentEncryption::DesEde3Cbc);
}

#[test]
fn a_device_enrols_with_sha1_and_aes_192() {
    enrol(DigestAlgorithm::Sha1, ContentEncryption::Aes192Cbc);
}

#[test]
fn the_issued_certificate_has_the_usages_a_scep_identity_needs() {
    let deployment = deployment();
    let requester = Requester::generate("signer", Utc::now()).unwrap();
    let csr = requester
        .csr("iPhone", CHALLENGE, DigestAlgorithm::Sha256)
        .unwrap();
    let spki = openssl::x509::X509Req::from_der(&csr)
        .unwrap()
        .public_key()
        .unwrap()
        .public_key_to_der()
        .unwrap();
    let issued = deployment
        .authority
        .issue_scep_device(
            &spki,
            "device-2",
            "urn:latchkey:device:device-2",
            Utc::now(),
            Duration::days(30),
        )
        .unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&issued.der).unwrap();
    let key_usage = cert.key_usage().unwrap().unwrap().value;
    assert!(key_usage.digital_signature() && key_usage.key_encipherment());
    assert!(!key_usage.key_cert_sign());
    let extended = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(extended.client_auth && !extended.server_auth);
    assert_eq!(cert.tbs_certificate.subject_pki.raw, spki.as_slice());
    let leaf = X509::from_der(&issued.der).unwrap();
    assert!(verifies_against_chain(&deployment, &leaf));
}

#[test]
fn ec_keys_are_certified_and_short_rsa_keys_are_refused() {
    let deployment = deployment();
    let p256 = rcgen::KeyPair::generate().unwrap();
    let issued = deployment
        .authority
        .issue_scep_device(
            &rcgen::PublicKeyData::subject_public_key_info(&p256),
            "device-3",
            "urn:latchkey:device:device-3",
            Utc::now(),
            Duration::days(30),
        )
        .unwrap();
    let leaf = X509::from_der(&issued.der).unwrap();
    assert!(verifies_against_chain(&deployment, &leaf));

    let rsa_1024 = openssl::rsa::Rsa::generate(1024).unwrap();
    let spki = openssl::pkey::PKey::from_rsa(rsa_1024)
        .unwrap()
        .public_key_to_der()
        .unwrap();
    let refused = deployment.authority.issue_scep_device(
        &spki,
        "device-4",
        "urn:latchkey:device:device-4",
        Utc::now(),
        Duration::days(30),
    );
    assert!(
        matches!(&refused, Err(crate::CertError::UnsupportedKeyType(what)) if what.contains("RSA-1024")),
        "{refused:?}"
    );
}

#[test]
fn the_ra_certificate_is_rsa_with_signing_and_encipherment() {
    let deployment = deployment();
    let der = deployment.ra.certificate_der();
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let key_usage = cert.key_usage().unwrap().unwrap().value;
    assert!(key_usage.digital_signature() && key_usage.key_encipherment());
    let ra = X509::from_der(der).unwrap();
    assert_eq!(ra.public_key().unwrap().bits(), 2048);
    assert!(ra.public_key().unwrap().rsa().is_ok());
    assert!(verifies_against_chain(&deployment, &ra));
}

#[test]
fn messages_verify_with_openssl_pkcs7() {
    // OpenSSL re-encodes the signed attributes to check the signature, so
    // this fails unless they are written in DER order.
    let deployment = deployment();
    let requester = Requester::generate("signer", Utc::now()).unwrap();
    let (message, _) = pkcs_req(
        &requester,
        deployment.ra.certificate_der(),
        DigestAlgorithm::Sha256,
        ContentEncryption::Aes128Cbc,
    );
    let reply = encode_cert_rep(
        &decode_pki_message(&message, &deployment.ra)
            .unwrap()
            .reply_to,
        &CertRepOutcome::Failure(FailInfo::BadRequest),
        &deployment.ra,
        Utc::now(),
    )
    .unwrap();
    for der in [&message, &reply] {
        let pkcs7 = Pkcs7::from_der(der).unwrap();
        let store = X509StoreBuilder::new().unwrap().build();
        let no_certs = Stack::new().unwrap();
        pkcs7
            .verify(&no_certs, &store, None, None, Pkcs7Flags::NOVERIFY)
            .unwrap();
    }
}

#[test]
fn a_failure_cert_rep_echoes_the_transaction_and_the_nonce() {
    let deployment = deployment();
    let requester = Requester::generate("signer", Utc::now()).unwrap();
    let (message, transaction) = pkcs_req(
        &requester,
        deployment.ra.certificate_der(),
        DigestAlgorithm::Sha256,
        ContentEncryption::Aes128Cbc,
    );
    let request = decode_pki_message(&message, &deployment.ra).unwrap();
    for (outcome, status) in [
        (
            CertRepOutcome::Failure(FailInfo::BadRequest),
            CertRepStatus::Failure(FailInfo::BadRequest),
        ),
        (
            CertRepOutcome::Failure(FailInfo::BadCertId),
            CertRepStatus::Failure(FailInfo::BadCertId),
        ),
        (CertRepOutcome::Pending, CertRepStatus::Pending),
    ] {
        let reply =
            encode_cert_rep(&request.reply_to, &outcome, &deployment.ra, Utc::now()).unwrap();
        let answer = requester
            .decode_cert_rep(&reply, deployment.ra.certificate_der())
            .unwrap();
        assert_eq!(answer.status, status);
        assert_eq!(answer.transaction_id, transaction.transaction_id);
        assert_eq!(answer.recipient_nonce, transaction.sender_nonce);
        assert_ne!(answer.sender_nonce, transaction.sender_nonce);
    }
}

#[test]
fn a_cert_rep_from_another_ra_is_refused_by_the_client() {
    let deployment = deployment();
    let other = self::deployment();
    let requester = Requester::generate("signer", Utc::now()).unwrap();
    let (message, _) = pkcs_req(
        &requester,
        deployment.ra.certificate_der(),
        DigestAlgorithm::Sha256,
        ContentEncryption::Aes128Cbc,
    );
    let request = decode_pki_message(&message, &deployment.ra).unwrap();
    let forged = encode_cert_rep(
        &request.reply_to,
        &CertRepOutcome::Failure(FailInfo::BadRequest),
        &other.ra,
        Utc::now(),
    )
    .unwrap();
    assert!(matches!(
        requester.decode_cert_rep(&forged, deployment.ra.certificate_der()),
        Err(ScepError::UnexpectedSigner)
    ));
}

#[test]
fn a_tampered_signature_is_unanswerable() {
    let deployment = deployment();
    let requester = Requester::generate("signer", Utc::now()).unwrap();
    let (mut message, _) = pkcs_req(
        &requester,
        deployment.ra.certificate_der(),
        DigestAlgorithm::Sha256,
        ContentEncryption::Aes128Cbc,
    );
    // The signature is the last element of the message.
    let last = message.len() - 1;
    message[last] ^= 0x01;
    let cause = unanswerable(decode_pki_message(&message, &deployment.ra));
    assert!(matches!(cause, ScepError::Signature), "{cause:?}");
}

#[test]
fn tampered_content_is_unanswerable() {
    let deployment = deployment();
    let requester = Requester::generate("signer", Utc::now()).unwrap();
    let (mut message, _) = pkcs_req(
        &requester,
        deployment.ra.certificate_der(),
        DigestAlgorithm::Sha1,
        ContentEncryption::DesEde3Cbc,
    );
    // Somewhere inside the encrypted CSR.
    message[400] ^= 0x01;
    let cause = unanswerable(decode_pki_message(&message, &deployment.ra));
    assert!(matches!(cause, ScepError::Signature), "{cause:?}");
}

#[test]
fn a_message_signed_by_another_key_than_its_certificate_is_unanswerable() {
    let deployment = deployment();
    let now = Utc::now();
    let device = Requester::generate("device", now).unwrap();
    let impostor = Requester::generate("impostor", now).unwrap();
    let csr = device
        .csr("iPhone", CHALLENGE, DigestAlgorithm::Sha256)
        .unwrap();
    let ra = X509::from_der(deployment.ra.certificate_der()).unwrap();
    let envelope = cms::envelop(&csr, &ra, ContentEncryption::Aes128Cbc).unwrap();
    let nonce = new_nonce().unwrap();
    let message = cms::sign(
        &envelope,
        &[
            (oid::MESSAGE_TYPE, AttributeValue::Printable("19")),
            (oid::TRANSACTION_ID, AttributeValue::Printable("abc")),
            (oid::SENDER_NONCE, AttributeValue::Octets(&nonce)),
        ],
        device.certificate_der(),
        &impostor.key,
        DigestAlgorithm::Sha256,
        now,
    )
    .unwrap();
    let cause = unanswerable(decode_pki_message(&message, &deployment.ra));
    assert!(matches!(cause, ScepError::Signature), "{cause:?}");
}

#[test]
fn a_message_encrypted_to_another_ra_is_unanswerable() {
    let deployment = deployment();
    let other = self::deployment();
    let requester = Requester::generate("signer", Utc::now()).unwrap();
    let (message, _) = pkcs_req(
        &requester,
        other.ra.certificate_der(),
        DigestAlgorithm::Sha256,
        ContentEncryption::Aes256Cbc,
    );
    let cause = unanswerable(decode_pki_message(&message, &deployment.ra));
    assert!(matches!(cause, ScepError::Decrypt), "{cause:?}");
}

#[test]
fn garbage_truncations_and_huge_lengths_are_unanswerable_without_panicking() {
    let deployment = deployment();
    let requester = Requester::generate("signer", Utc::now()).unwrap();
    let (message, _) = pkcs_req(
        &requester,
        deployment.ra.certificate_der(),
        DigestAlgorithm::Sha256,
        ContentEncryption::Aes128Cbc,
    );
    for garbage in [
        &b""[..],
        b"not a SCEP message",
        b"\x30",
        b"\x30\x00",
        b"\x30\x84\xff\xff\xff\xff\x06\x09",
        b"\x30\x89\x01\x00\x00\x00\x00\x00\x00\x00\x00",
        b"\x30\x80\x30\x80\x30\x80",
    ] {
        let cause = unanswerable(decode_pki_message(garbage, &deployment.ra));
        assert!(matches!(cause, ScepError::Malformed(_)), "{cause:?}");
    }
    for len in 0..message.len() {
        let cause = unanswerable(decode_pki_message(&message[..len], &deployment.ra));
        assert!(matches!(cause, ScepError::Malformed(_)), "{len}: {cause:?}");
    }
    // A huge length where the encapsulated content's length was.
    let mut huge = message.clone();
    let at = huge
        .windows(2)
        .position(|w| w == [0x04, 0x82])
        .expect("the content's OCTET STRING");
    huge.splice(at + 1..at + 4, [0x84, 0x7f, 0xff, 0xff, 0xff]);
    let cause = unanswerable(decode_pki_message(&huge, &deployment.ra));
    assert!(matches!(cause, ScepError::Malformed(_)), "{cause:?}");
    // A flipped bit is refused, or lies outside what the signature covers
    // and what is read (the digestAlgorithms set, the signature of the
    // self-signed certificate); nothing panics.
    let original = decode_pki_message(&message, &deployment.ra).unwrap();
    for at in (0..message.len()).step_by(3) {
        let mut flipped = message.clone();
        flipped[at] ^= 0x10;
        if let Ok(request) = decode_pki_message(&flipped, &deployment.ra) {
            assert_eq!(request.csr.der, original.csr.der, "{at}");
            assert_eq!(
                request.reply_to.transaction_id,
                original.reply_to.transaction_id
            );
            assert_eq!(
                request.reply_to.sender_nonce,
                original.reply_to.sender_nonce
            );
        }
    }
}

#[test]
fn unsupported_message_types_are_refused_with_bad_request() {
    let deployment = deployment();
    let now = Utc::now();
    let requester = Requester::generate("signer", now).unwrap();
    let nonce = new_nonce().unwrap();
    for (number, expected) in [
        ("17", Some(MessageType::RenewalReq)),
        ("20", Some(MessageType::CertPoll)),
        ("21", Some(MessageType::GetCert)),
        ("22", Some(MessageType::GetCrl)),
        ("99", None),
    ] {
        let message = cms::sign(
            b"",
            &[
                (oid::MESSAGE_TYPE, AttributeValue::Printable(number)),
                (oid::TRANSACTION_ID, AttributeValue::Printable("tx-1")),
                (oid::SENDER_NONCE, AttributeValue::Octets(&nonce)),
            ],
            requester.certificate_der(),
            &requester.key,
            DigestAlgorithm::Sha256,
            now,
        )
        .unwrap();
        let refusal = refused(decode_pki_message(&message, &deployment.ra));
        assert_eq!(refusal.fail_info, FailInfo::BadRequest);
        assert_eq!(refusal.reply_to.transaction_id, "tx-1");
        assert_eq!(refusal.reply_to.sender_nonce, nonce);
        match (expected, refusal.cause) {
            (Some(expected), ScepError::UnsupportedMessageType(found)) => {
                assert_eq!(found, expected)
            }
            (None, ScepError::UnknownMessageType(found)) => assert_eq!(found, number),
            (_, cause) => panic!("{number}: {cause:?}"),
        }
        // The refusal is answered with a CertRep the device can read.
        let reply = encode_cert_rep(
            &refusal.reply_to,
            &CertRepOutcome::Failure(refusal.fail_info),
            &deployment.ra,
            now,
        )
        .unwrap();
        let answer = requester
            .decode_cert_rep(&reply, deployment.ra.certificate_der())
            .unwrap();
        assert_eq!(answer.status, CertRepStatus::Failure(FailInfo::BadRequest));
        assert_eq!(answer.recipient_nonce, nonce);
    }
}

#[test]
fn a_csr_with_a_broken_signature_is_refused_with_bad_message_check() {
    let deployment = deployment();
    let now = Utc::now();
    let requester = Requester::generate("signer", now).unwrap();
    let mut csr = requester
        .csr("iPhone", CHALLENGE, DigestAlgorithm::Sha256)
        .unwrap();
    let last = csr.len() - 1;
    csr[last] ^= 0x01;
    let (message, transaction) = requester
        .pkcs_req(
            &csr,
            deployment.ra.certificate_der(),
            DigestAlgorithm::Sha256,
            ContentEncryption::Aes128Cbc,
            now,
        )
        .unwrap();
    let refusal = refused(decode_pki_message(&message, &deployment.ra));
    assert_eq!(refusal.fail_info, FailInfo::BadMessageCheck);
    assert!(matches!(refusal.cause, ScepError::CsrSignature));
    assert_eq!(refusal.reply_to.transaction_id, transaction.transaction_id);

    // Not a CSR at all inside a valid envelope: badRequest.
    let (message, _) = requester
        .pkcs_req(
            b"\x30\x03\x02\x01\x00",
            deployment.ra.certificate_der(),
            DigestAlgorithm::Sha256,
            ContentEncryption::Aes128Cbc,
            now,
        )
        .unwrap();
    let refusal = refused(decode_pki_message(&message, &deployment.ra));
    assert_eq!(refusal.fail_info, FailInfo::BadRequest);
    assert!(matches!(refusal.cause, ScepError::MalformedCsr(_)));
}

#[test]
fn a_utf8_challenge_and_a_sha1_csr_are_read() {
    let deployment = deployment();
    let now = Utc::now();
    let requester = Requester::generate("signer", now).unwrap();
    let csr = requester
        .csr("iPhone", "défi*1", DigestAlgorithm::Sha1)
        .unwrap();
    let (message, _) = requester
        .pkcs_req(
            &csr,
            deployment.ra.certificate_der(),
            DigestAlgorithm::Sha1,
            ContentEncryption::Aes128Cbc,
            now,
        )
        .unwrap();
    let request = decode_pki_message(&message, &deployment.ra).unwrap();
    assert_eq!(
        request.csr.challenge_password.as_ref().unwrap().expose(),
        "défi*1"
    );
    let printed = format!("{request:?}");
    assert!(!printed.contains("défi"), "{printed}");
}

#[test]
fn get_ca_cert_carries_the_ra_then_the_chain() {
    let deployment = deployment();
    let response = ca_cert_response(deployment.ra.certificate_der(), &deployment.chain_der);
    let certificates = decode_ca_cert_response(&response).unwrap();
    assert_eq!(certificates.len(), 3);
    assert_eq!(certificates[0], deployment.ra.certificate_der());
    assert_eq!(certificates[1..], deployment.chain_der[..]);
    // OpenSSL reads it as a PKCS#7 with the same certificates.
    let pkcs7 = Pkcs7::from_der(&response).unwrap();
    let carried = pkcs7.signed().unwrap().certificates().unwrap();
    assert_eq!(carried.len(), 3);
}

#[test]
fn ca_caps_offer_what_the_server_does_and_not_renewal() {
    let caps: Vec<&str> = ca_caps().lines().collect();
    assert_eq!(
        caps,
        [
            "POSTPKIOperation",
            "SHA-1",
            "SHA-256",
            "AES",
            "DES3",
            "SCEPStandard"
        ]
    );
}

#[test]
fn the_ra_key_must_be_rsa_and_match_its_certificate() {
    let deployment = deployment();
    let p256 = rcgen::KeyPair::generate().unwrap();
    let ec = PrivateKeyPem::new(p256.serialize_pem());
    assert!(matches!(
        RegistrationAuthority::load(deployment.ra.certificate_der(), &ec),
        Err(ScepError::MalformedKey(_))
    ));
    let other = Requester::generate("x", Utc::now()).unwrap();
    assert!(matches!(
        RegistrationAuthority::load(deployment.ra.certificate_der(), &other.key_pem().unwrap()),
        Err(ScepError::MalformedKey(_))
    ));
    // An encrypted key is refused, not prompted for.
    let encrypted = other
        .key
        .private_key_to_pem_pkcs8_passphrase(openssl::symm::Cipher::aes_256_cbc(), b"pass")
        .unwrap();
    let encrypted = PrivateKeyPem::new(String::from_utf8(encrypted).unwrap());
    assert!(matches!(
        Requester::load(&encrypted, other.certificate_der()),
        Err(ScepError::MalformedKey(_))
    ));
    let printed = format!("{:?}", deployment.ra);
    assert!(printed.contains("[redacted]"), "{printed}");
}

mod golden {
    //! Messages captured from Debian's `scep` 2.1.0 (`scepclient` and
    //! `scepserver`); see `certs/test_data/scep/README.md`.
    use super::*;

    const PKCS_REQ: &[u8] = include_bytes!("../../test_data/scep/scepclient-pkcsreq.der");
    const PKCS_REQ_WRONG_CHALLENGE: &[u8] =
        include_bytes!("../../test_data/scep/scepclient-pkcsreq-wrong-challenge.der");
    const CERT_REP_SUCCESS: &[u8] =
        include_bytes!("../../test_data/scep/scepserver-certrep-success.der");
    const CERT_REP_FAILURE: &[u8] =
        include_bytes!("../../test_data/scep/scepserver-certrep-failure.der");
    const SERVER_CA_PEM: &str = include_str!("../../test_data/scep/scepserver-ca.pem");
    const SERVER_CA_KEY: &str = include_str!("../../test_data/scep/scepserver-ca.key");
    const CLIENT_KEY: &str = include_str!("../../test_data/scep/scepclient.key");
    const CLIENT_ISSUED_PEM: &str = include_str!("../../test_data/scep/scepclient-issued.pem");

    fn server_ra() -> RegistrationAuthority {
        let der = X509::from_pem(SERVER_CA_PEM.as_bytes())
            .unwrap()
            .to_der()
            .unwrap();
        RegistrationAuthority::load(&der, &PrivateKeyPem::new(SERVER_CA_KEY.to_owned())).unwrap()
    }

    /// The device of the successful capture: its key and the self-signed
    /// certificate its PKCSReq carries.
    fn scepclient() -> Requester {
        let signed = cms::parse_signed_data(PKCS_REQ).unwrap();
        let certificate = signed.signer_certificate().unwrap();
        Requester::load(&PrivateKeyPem::new(CLIENT_KEY.to_owned()), certificate).unwrap()
    }

    #[test]
    fn the_server_reads_scepclients_pkcs_req() {
        let ra = server_ra();
        let request = decode_pki_message(PKCS_REQ, &ra).unwrap();
        assert_eq!(request.reply_to.digest, DigestAlgorithm::Sha1);
        assert_eq!(request.content_encryption, ContentEncryption::DesCbc);
        assert_eq!(
            request.csr.challenge_password.as_ref().unwrap().expose(),
            "secret"
        );
        assert_eq!(
            request.csr.subject_common_name.as_deref(),
            Some("simdevice")
        );
        assert!(
            request.csr.subject.contains("O=scep-client"),
            "{}",
            request.csr.subject
        );
        let issued = X509::from_pem(CLIENT_ISSUED_PEM.as_bytes()).unwrap();
        assert_eq!(
            issued.public_key().unwrap().public_key_to_der().unwrap(),
            request.csr.subject_public_key_info
        );

        let wrong = decode_pki_message(PKCS_REQ_WRONG_CHALLENGE, &ra).unwrap();
        assert_eq!(
            wrong.csr.challenge_password.as_ref().unwrap().expose(),
            "wrong"
        );
        assert_eq!(wrong.csr.subject_common_name.as_deref(), Some("simdevice2"));
    }

    #[test]
    fn scepclients_pkcs_req_is_unanswerable_for_another_ra() {
        let deployment = deployment();
        let cause = unanswerable(decode_pki_message(PKCS_REQ, &deployment.ra));
        assert!(matches!(cause, ScepError::Decrypt), "{cause:?}");
    }

    #[test]
    fn the_client_reads_scepservers_success_cert_rep() {
        let request = decode_pki_message(PKCS_REQ, &server_ra()).unwrap();
        let answer = scepclient()
            .decode_cert_rep(CERT_REP_SUCCESS, server_ra().certificate_der())
            .unwrap();
        assert_eq!(answer.transaction_id, request.reply_to.transaction_id);
        assert_eq!(answer.recipient_nonce, request.reply_to.sender_nonce);
        let CertRepStatus::Success {
            issued_certificate_der,
            ..
        } = answer.status
        else {
            panic!("expected success, got {:?}", answer.status);
        };
        let issued = X509::from_pem(CLIENT_ISSUED_PEM.as_bytes()).unwrap();
        assert_eq!(issued_certificate_der, issued.to_der().unwrap());
    }

    #[test]
    fn the_client_reads_scepservers_failure_cert_rep() {
        let request = decode_pki_message(PKCS_REQ_WRONG_CHALLENGE, &server_ra()).unwrap();
        let answer = scepclient()
            .decode_cert_rep(CERT_REP_FAILURE, server_ra().certificate_der())
            .unwrap();
        assert_eq!(answer.status, CertRepStatus::Failure(FailInfo::BadRequest));
        assert_eq!(answer.transaction_id, request.reply_to.transaction_id);
        assert_eq!(answer.recipient_nonce, request.reply_to.sender_nonce);
    }

    #[test]
    fn scepclient_can_read_our_reply_to_its_request() {
        // Our answer to the captured request, decoded as scepclient would
        // with its key: single DES upgraded to DES-EDE3, SHA-1 kept.
        let ra = server_ra();
        let request = decode_pki_message(PKCS_REQ, &ra).unwrap();
        let issued = X509::from_pem(CLIENT_ISSUED_PEM.as_bytes())
            .unwrap()
            .to_der()
            .unwrap();
        let reply = encode_cert_rep(
            &request.reply_to,
            &CertRepOutcome::Success {
                certificate_der: issued.clone(),
                chain_der: vec![ra.certificate_der().to_vec()],
                encryption: request.content_encryption.for_reply(),
            },
            &ra,
            Utc::now(),
        )
        .unwrap();
        let signed = cms::parse_signed_data(&reply).unwrap();
        assert_eq!(signed.digest, DigestAlgorithm::Sha1);
        assert_eq!(
            cms::envelope_encryption(&signed.content).unwrap(),
            ContentEncryption::DesEde3Cbc
        );
        let answer = scepclient()
            .decode_cert_rep(&reply, ra.certificate_der())
            .unwrap();
        assert_eq!(
            answer.status,
            CertRepStatus::Success {
                issued_certificate_der: issued,
                chain_der: vec![ra.certificate_der().to_vec()],
            }
        );
    }
}
