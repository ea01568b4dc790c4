//! Token-signing keys for the SSO layer: ES256 (ECDSA P-256 with SHA-256,
//! RFC 7518 §3.4) key pairs, their public JWK (RFC 7517) with the RFC 7638
//! thumbprint as key id, and signing and verifying JWS signing inputs.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};

use crate::CertError;

/// The public half of a signing key, as published in the JWKS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicJwk {
    /// RFC 7638 thumbprint (SHA-256, base64url).
    pub kid: String,
    /// Base64url of the 32-byte X coordinate.
    pub x: String,
    /// Base64url of the 32-byte Y coordinate.
    pub y: String,
}

impl PublicJwk {
    fn from_point(point: &[u8]) -> Result<Self, CertError> {
        // An uncompressed SEC1 point: 0x04 || X || Y.
        let (Some(0x04), Some(x), Some(y)) = (point.first(), point.get(1..33), point.get(33..65))
        else {
            return Err(CertError::MalformedKey(
                "not an uncompressed P-256 point".into(),
            ));
        };
        let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
        // RFC 7638 §3.2: the required members in lexicographic order, no spaces.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(crate::sha256(canonical.as_bytes()));
        Ok(PublicJwk { kid, x, y })
    }

    /// The JWK as JSON text for a JWKS document.
    pub fn to_json(&self) -> String {
        format!(
            r#"{{"kty":"EC","crv":"P-256","use":"sig","alg":"ES256","kid":"{}","x":"{}","y":"{}"}}"#,
            self.kid, self.x, self.y
        )
    }

    /// Verifies an ES256 signature (64 bytes, R || S) over `signing_input`.
    pub fn verify(&self, signing_input: &[u8], signature: &[u8]) -> bool {
        let (Ok(x), Ok(y)) = (
            URL_SAFE_NO_PAD.decode(&self.x),
            URL_SAFE_NO_PAD.decode(&self.y),
        ) else {
            return false;
        };
        let mut point = Vec::with_capacity(65);
        point.push(0x04);
        point.extend_from_slice(&x);
        point.extend_from_slice(&y);
        verify_p256(&point, signing_input, signature)
    }
}

/// Verifies an ES256 signature (R || S) against an uncompressed SEC1 P-256
/// point, as found in a certificate's subject public key.
pub fn verify_p256(point: &[u8], signing_input: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
        .verify(signing_input, signature)
        .is_ok()
}

/// A private signing key (PKCS#8). `Debug` hides it.
#[derive(Clone)]
pub struct SigningKey {
    pkcs8: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey([redacted])")
    }
}

impl SigningKey {
    pub fn generate() -> Result<Self, CertError> {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| CertError::Random)?;
        Ok(SigningKey {
            pkcs8: pkcs8.as_ref().to_vec(),
        })
    }

    /// From the base64url PKCS#8 that [`SigningKey::to_stored`] gives.
    pub fn from_stored(stored: &str) -> Result<Self, CertError> {
        let pkcs8 = URL_SAFE_NO_PAD
            .decode(stored)
            .map_err(|e| CertError::MalformedKey(e.to_string()))?;
        let key = SigningKey { pkcs8 };
        key.pair()?;
        Ok(key)
    }

    /// From a PEM `PRIVATE KEY` (PKCS#8), as the agent keeps its device key.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, CertError> {
        let body: String = pem
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let pkcs8 = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|e| CertError::MalformedKey(e.to_string()))?;
        let key = SigningKey { pkcs8 };
        key.pair()?;
        Ok(key)
    }

    /// Base64url PKCS#8, for storage.
    pub fn to_stored(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.pkcs8)
    }

    fn pair(&self) -> Result<EcdsaKeyPair, CertError> {
        EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &self.pkcs8,
            &SystemRandom::new(),
        )
        .map_err(|e| CertError::MalformedKey(e.to_string()))
    }

    pub fn public_jwk(&self) -> Result<PublicJwk, CertError> {
        PublicJwk::from_point(self.pair()?.public_key().as_ref())
    }

    /// An ES256 signature (R || S) over `signing_input`.
    pub fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, CertError> {
        self.pair()?
            .sign(&SystemRandom::new(), signing_input)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| CertError::Signing("ES256".into()))
    }
}

/// A compact JWS (RFC 7515 §7.1) over `payload`, signed with ES256; the
/// header names the type and the key: `{"alg":"ES256","typ":…,"kid":…}`.
pub fn compact_jws(
    key: &SigningKey,
    typ: &str,
    kid: &str,
    payload: &[u8],
) -> Result<String, CertError> {
    for value in [typ, kid] {
        if value.contains(['"', '\\']) || value.chars().any(char::is_control) {
            return Err(CertError::InvalidName(value.to_owned()));
        }
    }
    let header = format!(r#"{{"alg":"ES256","typ":"{typ}","kid":"{kid}"}}"#);
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature = key.sign(signing_input.as_bytes())?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

/// Splits a compact JWS and checks its signature with `verify`; returns
/// (header, payload) as bytes when it verifies.
fn verify_compact_with(
    token: &str,
    verify: impl FnOnce(&[u8], &[u8]) -> bool,
) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    let signing_input = format!("{header}.{payload}");
    if !verify(signing_input.as_bytes(), &signature) {
        return None;
    }
    Some((
        URL_SAFE_NO_PAD.decode(header).ok()?,
        URL_SAFE_NO_PAD.decode(payload).ok()?,
    ))
}

/// Checks a compact ES256 JWS against an uncompressed P-256 point (a device
/// certificate's key); returns (header, payload) when the signature verifies.
pub fn verify_compact_p256(point: &[u8], token: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    verify_compact_with(token, |input, signature| {
        verify_p256(point, input, signature)
    })
}

/// Checks a compact JWS against `jwk`; returns (header, payload) as bytes
/// when the signature verifies. The caller checks the header's members.
pub fn verify_compact(jwk: &PublicJwk, token: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    verify_compact_with(token, |input, signature| jwk.verify(input, signature))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sign_verify_and_survive_storage() {
        let key = SigningKey::generate().unwrap();
        let jwk = key.public_jwk().unwrap();
        assert_eq!(jwk.kid.len(), 43, "SHA-256 in base64url");
        let signature = key.sign(b"header.payload").unwrap();
        assert_eq!(signature.len(), 64);
        assert!(jwk.verify(b"header.payload", &signature));
        assert!(!jwk.verify(b"header.payload2", &signature));
        let stored = SigningKey::from_stored(&key.to_stored()).unwrap();
        assert_eq!(stored.public_jwk().unwrap(), jwk);
        assert!(SigningKey::from_stored("bm90IGEga2V5").is_err());
        assert_eq!(format!("{key:?}"), "SigningKey([redacted])");
        assert!(jwk.to_json().contains(r#""alg":"ES256""#));
    }

    #[test]
    fn compact_tokens_verify_only_unchanged() {
        let key = SigningKey::generate().unwrap();
        let jwk = key.public_jwk().unwrap();
        let token = compact_jws(&key, "JWT", &jwk.kid, br#"{"sub":"u1"}"#).unwrap();
        let (header, payload) = verify_compact(&jwk, &token).unwrap();
        assert_eq!(payload, br#"{"sub":"u1"}"#);
        assert!(String::from_utf8(header).unwrap().contains(&jwk.kid));
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"sub":"admin"}"#);
        parts[1] = &forged;
        assert!(verify_compact(&jwk, &parts.join(".")).is_none());
        let other = SigningKey::generate().unwrap().public_jwk().unwrap();
        assert!(verify_compact(&other, &token).is_none());
        assert!(verify_compact(&jwk, "a.b").is_none());
    }

    fn uncompressed_point(jwk: &PublicJwk) -> Vec<u8> {
        let mut point = vec![0x04];
        point.extend(URL_SAFE_NO_PAD.decode(&jwk.x).unwrap());
        point.extend(URL_SAFE_NO_PAD.decode(&jwk.y).unwrap());
        point
    }

    /// RFC 7515 Appendix A.3: the specification's ES256 example verifies
    /// against the key published with it, and a changed signature does not.
    #[test]
    fn rfc_7515_es256_example_verifies() {
        let jwk = PublicJwk {
            kid: "rfc7515-a3".into(),
            x: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU".into(),
            y: "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0".into(),
        };
        let signing_input = concat!(
            "eyJhbGciOiJFUzI1NiJ9",
            ".",
            "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt",
            "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ",
        );
        let signature = concat!(
            "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSA",
            "pmWQxfKTUJqPP3-Kg6NU1Q",
        );
        let token = format!("{signing_input}.{signature}");
        let (header, payload) = verify_compact(&jwk, &token).unwrap();
        assert_eq!(header, br#"{"alg":"ES256"}"#);
        assert_eq!(
            payload,
            b"{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}"
        );
        assert!(verify_compact_p256(&uncompressed_point(&jwk), &token).is_some());
        let changed = format!("{signing_input}.E{}", &signature[1..]);
        assert!(verify_compact(&jwk, &changed).is_none());
    }

    /// The algorithm is the key's, never the header's (RFC 8725 §3.1): only
    /// an ES256 signature (R || S, RFC 7518 §3.4) by the key verifies.
    /// Tokens naming no algorithm, an HMAC keyed with the public key (the
    /// classic key confusion), RSA, or an ES256 signature in DER form are
    /// refused, and so is a valid token whose header is rewritten.
    #[test]
    fn only_es256_signatures_by_the_key_verify_whatever_the_header_says() {
        use ring::hmac;
        let key = SigningKey::generate().unwrap();
        let jwk = key.public_jwk().unwrap();
        let point = uncompressed_point(&jwk);
        let header = |alg: &str| {
            URL_SAFE_NO_PAD.encode(format!(
                r#"{{"alg":"{alg}","typ":"JWT","kid":"{}"}}"#,
                jwk.kid
            ))
        };
        let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"admin"}"#);
        let mut refused = vec![
            format!("{}.{payload}.", header("none")),
            format!("{}.{payload}", header("none")),
            format!(
                "{}.{payload}.{}",
                header("RS256"),
                URL_SAFE_NO_PAD.encode([0x5a; 256])
            ),
        ];
        for secret in [
            jwk.to_json().into_bytes(),
            point.clone(),
            jwk.x.clone().into_bytes(),
        ] {
            let input = format!("{}.{payload}", header("HS256"));
            let tag = hmac::sign(
                &hmac::Key::new(hmac::HMAC_SHA256, &secret),
                input.as_bytes(),
            );
            refused.push(format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag)));
        }
        let der_input = format!("{}.{payload}", header("ES256"));
        let der_signer = EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &key.pkcs8,
            &SystemRandom::new(),
        )
        .unwrap();
        let der = der_signer
            .sign(&SystemRandom::new(), der_input.as_bytes())
            .unwrap();
        refused.push(format!("{der_input}.{}", URL_SAFE_NO_PAD.encode(der)));
        let valid = compact_jws(&key, "JWT", &jwk.kid, br#"{"sub":"admin"}"#).unwrap();
        assert!(verify_compact(&jwk, &valid).is_some());
        let (_, rest) = valid.split_once('.').unwrap();
        for alg in ["none", "HS256", "RS256", "ES384", "EdDSA"] {
            refused.push(format!("{}.{rest}", header(alg)));
        }
        for token in &refused {
            assert!(verify_compact(&jwk, token).is_none(), "{token}");
            assert!(verify_compact_p256(&point, token).is_none(), "{token}");
        }
    }
}
