//! The SSO layer's token-signing keys: created at first start, published in
//! the JWKS with RFC 7638 key ids, rotated with the old key kept published.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey_tests::System;

fn keys(jwks: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let doc: serde_json::Value = serde_json::from_str(jwks)?;
    Ok(doc
        .get("keys")
        .and_then(serde_json::Value::as_array)
        .cloned()
        .unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jwks_publishes_the_signing_keys_across_rotation_and_restart() -> anyhow::Result<()> {
    let mut sys = System::start().await?;
    let (status, body) = sys.https_get("/jwks.json").await?;
    assert_eq!(status, 200, "{body}");
    let first = keys(&body)?;
    assert_eq!(first.len(), 1, "{body}");
    let key = &first[0];
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["crv"], "P-256");
    assert_eq!(key["alg"], "ES256");
    assert_eq!(key["use"], "sig");
    assert_eq!(
        URL_SAFE_NO_PAD.decode(key["x"].as_str().unwrap())?.len(),
        32
    );
    // RFC 7638: the key id is the SHA-256 thumbprint of the canonical JWK.
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        key["x"].as_str().unwrap(),
        key["y"].as_str().unwrap()
    );
    assert_eq!(
        key["kid"],
        URL_SAFE_NO_PAD.encode(latchkey_certs::sha256(canonical.as_bytes()))
    );

    let rotated = sys.ctl_json(&["signing-key", "rotate"]).await?;
    let (_, body) = sys.https_get("/jwks.json").await?;
    let both: Vec<_> = keys(&body)?.iter().map(|k| k["kid"].clone()).collect();
    assert_eq!(both.len(), 2);
    assert!(both.contains(&rotated["kid"]) && both.contains(&first[0]["kid"]));
    let listed = sys.ctl_json(&["signing-key", "list"]).await?;
    let active: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["active"] == true)
        .collect();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0]["kid"], rotated["kid"]);

    sys.restart().await?;
    let (_, body) = sys.https_get("/jwks.json").await?;
    assert_eq!(
        keys(&body)?.len(),
        2,
        "a restart keeps the keys and makes none"
    );
    assert_eq!(sys.https_get("/healthz").await?, (200, "ok\n".to_owned()));
    let (_, ca) = sys.https_get("/ca.pem").await?;
    assert_eq!(ca, sys.ca_pem);
    assert!(sys.ctl(&["audit"]).await?.contains("signing-key.rotate"));
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_signed_before_a_rotation_still_verify_with_the_jwks() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let core = sys.running().core.clone();
    let before = core
        .signing_keys
        .sign_jws("JWT", br#"{"sub":"before"}"#, chrono::Utc::now())
        .await?;
    sys.ctl(&["signing-key", "rotate"]).await?;
    let after = core
        .signing_keys
        .sign_jws("JWT", br#"{"sub":"after"}"#, chrono::Utc::now())
        .await?;

    let (_, body) = sys.https_get("/jwks.json").await?;
    let published = keys(&body)?;
    for (token, sub) in [(&before, "before"), (&after, "after")] {
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap())?)?;
        assert_eq!(header["alg"], "ES256");
        let jwk = published
            .iter()
            .find(|k| k["kid"] == header["kid"])
            .expect("the token's key is published");
        let public = latchkey_certs::jose::PublicJwk {
            kid: jwk["kid"].as_str().unwrap().to_owned(),
            x: jwk["x"].as_str().unwrap().to_owned(),
            y: jwk["y"].as_str().unwrap().to_owned(),
        };
        let (_, payload) = latchkey_certs::jose::verify_compact(&public, token).expect("verifies");
        let claims: serde_json::Value = serde_json::from_slice(&payload)?;
        assert_eq!(claims["sub"], sub);
    }
    let kid = |t: &str| t.split('.').next().unwrap().to_owned();
    assert_ne!(
        kid(&before),
        kid(&after),
        "a rotation changes the signing key"
    );
    sys.stop().await
}
