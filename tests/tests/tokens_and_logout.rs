//! What a relying party (or someone holding one of its tokens) may do after
//! the sign-in: a sign-out sends the browser only to an address the app
//! registered for sign-outs, and only with an ID token of that app for
//! this browser's session; refresh tokens go only to apps allowed to hold
//! them, and end at the app's absolute lifetime; only a confidential
//! client may introspect; userinfo checks the user and the device again.

// A test: a panic here is a failed test.
#![allow(clippy::expect_used, clippy::indexing_slicing, clippy::unwrap_used)]

use anyhow::{Context, Result};
use latchkey_tests::login::{
    self, RP_CALLBACK, RP_SIGNED_OUT, Setup, authenticate_with_device, query_param, setup,
    token_request, userinfo,
};
use latchkey_tests::web::{Browser, WebResponse};
use sea_orm::ConnectionTrait;

/// Alice signs in to Payroll through her device in `browser` with
/// `password` (a temporary one is replaced by `CHOSEN_PASSWORD`); the
/// token response.
async fn signed_in_tokens(
    s: &Setup,
    browser: &mut Browser,
    state: &str,
    password: &str,
) -> Result<WebResponse> {
    signed_in_tokens_at(s, browser, &s.authorize_url(state), password).await
}

/// As [`signed_in_tokens`], from the authorize URL `authorize`.
async fn signed_in_tokens_at(
    s: &Setup,
    browser: &mut Browser,
    authorize: &str,
    password: &str,
) -> Result<WebResponse> {
    let page = login::sign_in(browser, authorize, "Payroll", "alice@example.com", password).await?;
    let (_, landed) = authenticate_with_device(browser, &s.agent, &page).await?;
    let url = landed.location().context("back to the app")?;
    let code = query_param(url, "code").context("code")?;
    let tokens = token_request(
        &s.sys,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", RP_CALLBACK),
            ("client_id", &s.client_id),
            ("client_secret", &s.client_secret),
        ],
    )
    .await?;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    Ok(tokens)
}

fn logout_url(id_token: &str, redirect: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("id_token_hint", id_token),
            ("post_logout_redirect_uri", redirect),
            ("state", "bye"),
        ])
        .finish();
    format!("/logout?{query}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_link_cannot_send_the_browser_to_an_unregistered_address() -> Result<()> {
    let s = setup("bound").await?;
    let mut browser = Browser::new(s.sys.running().https_addr, &s.sys.ca_pem)?;
    let tokens = signed_in_tokens(&s, &mut browser, "a", &s.password)
        .await?
        .json()?;
    let id_token = tokens["id_token"].as_str().context("id token")?.to_owned();
    let access_token = tokens["access_token"]
        .as_str()
        .context("access")?
        .to_owned();

    // An access token is not an ID token: the user is asked to confirm.
    let page = browser
        .get(&logout_url(&access_token, RP_SIGNED_OUT))
        .await?;
    assert!(page.location().is_none());
    assert!(page.body.contains(r#"action="/logout""#), "{}", page.body);
    // Another browser's session: the hint's sid does not match it.
    let mut other = Browser::new(s.sys.running().https_addr, &s.sys.ca_pem)?;
    let _ = signed_in_tokens(&s, &mut other, "b", login::CHOSEN_PASSWORD).await?;
    let page = other.get(&logout_url(&id_token, RP_SIGNED_OUT)).await?;
    assert!(page.location().is_none(), "{:?}", page.location());
    assert!(page.body.contains(r#"action="/logout""#), "{}", page.body);

    // An attacker's address, and the app's sign-in redirect URI (not one
    // registered for sign-outs): signed out, but no redirect.
    for uri in ["https://evil.example/", RP_CALLBACK] {
        let mut victim = Browser::new(s.sys.running().https_addr, &s.sys.ca_pem)?;
        let tokens = signed_in_tokens(&s, &mut victim, "c", login::CHOSEN_PASSWORD)
            .await?
            .json()?;
        let hint = tokens["id_token"].as_str().context("id token")?;
        let page = victim.get(&logout_url(hint, uri)).await?;
        assert!(page.location().is_none(), "{uri}: {:?}", page.location());
    }

    // The registered sign-out address, with this session's ID token.
    let page = browser.get(&logout_url(&id_token, RP_SIGNED_OUT)).await?;
    let to = page.location().context("redirect")?;
    assert_eq!(to, format!("{RP_SIGNED_OUT}?state=bye"));
    s.sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_end_at_the_apps_absolute_lifetime() -> Result<()> {
    let s = setup("bound").await?;
    s.sys
        .ctl(&["app", "update", "Payroll", "--refresh-lifetime", "1h"])
        .await?;
    let mut browser = Browser::new(s.sys.running().https_addr, &s.sys.ca_pem)?;
    let tokens = signed_in_tokens(&s, &mut browser, "a", &s.password)
        .await?
        .json()?;
    let refresh = tokens["refresh_token"]
        .as_str()
        .context("a refresh token")?
        .to_owned();
    // An hour and a minute after the sign-in (the grant's time moved back).
    let db = s.sys.database().await?;
    let earlier = (chrono::Utc::now() - chrono::Duration::minutes(61)).timestamp_millis();
    db.execute_unprepared(&format!("UPDATE grants SET created_at = {earlier}"))
        .await?;
    let refused = token_request(
        &s.sys,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &s.client_id),
            ("client_secret", &s.client_secret),
        ],
    )
    .await?;
    assert_eq!(refused.status, 400, "{}", refused.body);
    let body = refused.json()?;
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap_or("")
            .contains("refresh token lifetime"),
        "{body}"
    );

    // An app not allowed to hold refresh tokens gets none, even when it
    // asks for offline_access.
    s.sys
        .ctl(&["app", "update", "Payroll", "--offline-access", "false"])
        .await?;
    let mut fresh = Browser::new(s.sys.running().https_addr, &s.sys.ca_pem)?;
    let tokens = signed_in_tokens(&s, &mut fresh, "b", login::CHOSEN_PASSWORD)
        .await?
        .json()?;
    assert!(tokens.get("refresh_token").is_none(), "{tokens}");
    assert!(tokens["access_token"].is_string());
    s.sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_confidential_client_introspects_and_userinfo_checks_the_device_again() -> Result<()>
{
    let s = setup("bound").await?;
    let mut browser = Browser::new(s.sys.running().https_addr, &s.sys.ca_pem)?;
    let tokens = signed_in_tokens(&s, &mut browser, "a", &s.password)
        .await?
        .json()?;
    let access = tokens["access_token"]
        .as_str()
        .context("access")?
        .to_owned();

    // A public client (no secret) cannot introspect anyone's tokens.
    let public = s
        .sys
        .ctl_json(&[
            "app",
            "add",
            "Kiosk",
            "--public",
            "--redirect-uri",
            RP_CALLBACK,
            "--device",
            "none",
        ])
        .await?;
    let public_id = public["client_id"].as_str().context("id")?;
    let tls = latchkey_certs::tls::client_config(&s.sys.ca_pem, None)?;
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("token", access.as_str()), ("client_id", public_id)])
        .finish();
    let refused = latchkey_tests::web::request(
        s.sys.running().https_addr,
        tls,
        "POST",
        "/introspect",
        &[(
            "Content-Type".into(),
            "application/x-www-form-urlencoded".into(),
        )],
        body.as_bytes(),
    )
    .await?;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert_eq!(refused.json()?["error"], "invalid_client");

    // Userinfo works while the device passes its checks, and stops when it
    // no longer does (a policy it fails now applies to it).
    assert_eq!(userinfo(&s.sys, &access).await?.status, 200);
    let dir = tempfile::tempdir()?;
    let policy = dir.path().join("strict.toml");
    std::fs::write(
        &policy,
        "[compliance]\nmin_os_version = { linux = \"999\" }\n",
    )?;
    s.sys
        .ctl(&["policy", "set", "strict", policy.to_str().context("path")?])
        .await?;
    s.sys
        .ctl(&["policy", "assign", "strict", "--device", &s.agent.device_id])
        .await?;
    let after = userinfo(&s.sys, &access).await?;
    assert_eq!(after.status, 401, "{}", after.body);
    s.sys.stop().await
}

/// `POST /introspect` of `token` by Payroll (a confidential client).
async fn introspect(s: &Setup, token: &str) -> Result<WebResponse> {
    let tls = latchkey_certs::tls::client_config(&s.sys.ca_pem, None)?;
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("token", token),
            ("client_id", s.client_id.as_str()),
            ("client_secret", s.client_secret.as_str()),
        ])
        .finish();
    latchkey_tests::web::request(
        s.sys.running().https_addr,
        tls,
        "POST",
        "/introspect",
        &[(
            "Content-Type".into(),
            "application/x-www-form-urlencoded".into(),
        )],
        body.as_bytes(),
    )
    .await
}

/// The claims of a JWT's payload, unverified (the server just issued it).
fn jwt_claims(token: &str) -> Result<serde_json::Value> {
    let payload = token.split('.').nth(1).context("payload")?;
    Ok(serde_json::from_slice(&base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        payload,
    )?)?)
}

/// Userinfo (OIDC Core §5.3.2) and introspection (RFC 7662 §2.2) answer
/// with exactly these members, in this form: relying parties read them by
/// name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userinfo_and_introspection_answer_with_their_standard_members() -> Result<()> {
    let s = setup("bound").await?;
    let mut browser = Browser::new(s.sys.running().https_addr, &s.sys.ca_pem)?;
    let authorize = s.authorize_url("claims").replace(
        "scope=openid+email+offline_access",
        "scope=openid+email+profile+groups+offline_access",
    );
    assert!(authorize.contains("groups"), "{authorize}");
    let tokens = signed_in_tokens_at(&s, &mut browser, &authorize, &s.password)
        .await?
        .json()?;
    let access = tokens["access_token"].as_str().context("access")?;
    let refresh = tokens["refresh_token"].as_str().context("refresh")?;
    let id_token = jwt_claims(tokens["id_token"].as_str().context("id token")?)?;
    let sub = id_token["sub"].as_str().context("sub")?;
    let issuer = id_token["iss"].as_str().context("iss")?;
    assert_eq!(
        tokens["scope"],
        "openid profile email groups offline_access"
    );
    let scope = tokens["scope"].as_str().context("scope")?;

    let info = userinfo(&s.sys, access).await?;
    assert_eq!(info.status, 200, "{}", info.body);
    let expected = serde_json::json!({
        "sub": sub,
        "email": "alice@example.com",
        "email_verified": true,
        "name": "Alice Suzuki",
        "groups": ["staff"],
    });
    assert_eq!(info.body, expected.to_string());

    let answer = introspect(&s, access).await?;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let body = answer.json()?;
    let claims = jwt_claims(access)?;
    assert!(body["exp"].is_i64() && body["iat"].is_i64(), "{body}");
    assert_eq!(body["exp"], claims["exp"]);
    assert_eq!(body["iat"], claims["iat"]);
    let expected = serde_json::json!({
        "active": true,
        "token_type": "Bearer",
        "client_id": s.client_id,
        "sub": sub,
        "scope": scope,
        "exp": claims["exp"],
        "iat": claims["iat"],
        "iss": issuer,
        "aud": s.client_id,
        "device_id": s.agent.device_id,
    });
    assert_eq!(answer.body, expected.to_string());

    let answer = introspect(&s, refresh).await?;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let body = answer.json()?;
    assert!(body["exp"].is_i64(), "{body}");
    let expected = serde_json::json!({
        "active": true,
        "token_type": "refresh_token",
        "client_id": s.client_id,
        "sub": sub,
        "scope": scope,
        "exp": body["exp"],
        "iss": issuer,
        "device_id": s.agent.device_id,
    });
    assert_eq!(answer.body, expected.to_string());

    for unknown in ["lkr_0000", "not-a-token", "a.b.c"] {
        let answer = introspect(&s, unknown).await?;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.body, r#"{"active":false}"#);
    }
    s.sys.stop().await
}
