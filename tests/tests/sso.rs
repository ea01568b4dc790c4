//! Device-bound login end to end: a real OpenID Connect relying party (the
//! `openidconnect` crate) runs the code + PKCE flow against latchkeyd while a
//! browser-like client signs in and a real enrolled agent answers the
//! device-auth over its mTLS channel.

// A test: a panic here is a failed test.
#![allow(clippy::expect_used, clippy::indexing_slicing, clippy::unwrap_used)]

use std::sync::Arc;

use anyhow::{Context, Result};
use latchkey_tests::System;
use latchkey_tests::login::{
    self, CHOSEN_PASSWORD, RP_CALLBACK, authenticate_with_device, query_param, setup,
    token_request, userinfo,
};
use latchkey_tests::web::{Browser, request};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};

/// The relying party's HTTP client: every request goes to latchkeyd's
/// HTTPS listener, trusting only the Latchkey CA.
fn rp_http(
    sys: &System,
) -> impl Fn(
    openidconnect::HttpRequest,
) -> std::pin::Pin<
    Box<dyn Future<Output = Result<openidconnect::HttpResponse, std::io::Error>> + Send>,
> + use<> {
    let addr = sys.running().https_addr;
    let tls = latchkey_certs::tls::client_config(&sys.ca_pem, None).expect("tls");
    move |req: openidconnect::HttpRequest| {
        let tls = Arc::clone(&tls);
        Box::pin(async move {
            let uri = req.uri().clone();
            let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
            let headers: Vec<(String, String)> = req
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                .collect();
            let response = request(
                addr,
                tls,
                req.method().as_str(),
                &path,
                &headers,
                req.body(),
            )
            .await
            .map_err(std::io::Error::other)?;
            let mut builder = http::Response::builder().status(response.status);
            for (k, v) in &response.headers {
                builder = builder.header(k, v);
            }
            builder
                .body(response.body.into_bytes())
                .map_err(std::io::Error::other)
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relying_party_signs_in_only_through_the_bound_device() -> Result<()> {
    let mut s = setup("bound").await?;
    let http = rp_http(&s.sys);
    let issuer = format!("https://localhost:{}", s.sys.running().https_addr.port());
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(issuer.clone())?, &http).await?;
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(s.client_id.clone()),
        Some(ClientSecret::new(s.client_secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(RP_CALLBACK.to_owned())?);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("groups".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();

    let mut browser = Browser::new(s.sys.running().https_addr, &s.sys.ca_pem)?;
    let page = login::sign_in(
        &mut browser,
        auth_url.as_str(),
        "Payroll",
        "alice@example.com",
        &s.password,
    )
    .await?;
    let (report, landed) = authenticate_with_device(&mut browser, &s.agent, &page).await?;
    assert!(report.confirmed, "{report:?}");
    assert_eq!(landed.status, 303, "{}", landed.body);
    let callback = landed.location().context("redirect to the RP")?.to_owned();
    assert!(callback.starts_with(RP_CALLBACK), "{callback}");
    assert_eq!(
        query_param(&callback, "state").as_deref(),
        Some(state.secret().as_str())
    );
    assert_eq!(
        query_param(&callback, "iss").as_deref(),
        Some(issuer.as_str())
    );
    let code = query_param(&callback, "code").context("code")?;

    let tokens = client
        .exchange_code(AuthorizationCode::new(code.clone()))?
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await?;
    let id_token = tokens.id_token().context("an ID token")?;
    let verifier = client
        .id_token_verifier()
        .set_allowed_algs(vec![CoreJwsSigningAlgorithm::EcdsaP256Sha256]);
    let claims = id_token.claims(&verifier, &nonce)?;
    assert_eq!(claims.issuer().as_str(), issuer);
    assert_eq!(
        claims.email().map(|e| e.as_str()),
        Some("alice@example.com")
    );
    assert_eq!(
        claims.name().and_then(|n| n.get(None)).map(|n| n.as_str()),
        Some("Alice Suzuki")
    );
    let amr: Vec<String> = claims
        .auth_method_refs()
        .context("amr")?
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert_eq!(amr, ["pwd", "swk"]);
    assert_eq!(
        claims.auth_context_ref().map(|a| a.as_str()),
        Some("urn:latchkey:acr:device-bound")
    );
    assert!(claims.auth_time().is_some());
    // device_id and groups are Latchkey's own claims: read them from the
    // payload the library just verified.
    let payload = id_token.to_string();
    let payload = payload.split('.').nth(1).context("payload")?;
    let payload: serde_json::Value = serde_json::from_slice(&base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        payload,
    )?)?;
    assert_eq!(payload["device_id"], s.agent.device_id.as_str());
    assert_eq!(payload["groups"], serde_json::json!(["staff"]));

    // The access token works at userinfo.
    let info = userinfo(&s.sys, tokens.access_token().secret()).await?;
    assert_eq!(info.status, 200, "{}", info.body);
    assert_eq!(info.json()?["email"], "alice@example.com");

    // A second use of the code fails and revokes what the first issued.
    let again = client
        .exchange_code(AuthorizationCode::new(code))?
        .set_pkce_verifier(openidconnect::PkceCodeVerifier::new("x".repeat(43)))
        .request_async(&http)
        .await;
    assert!(again.is_err(), "a code works once");
    let info = userinfo(&s.sys, tokens.access_token().secret()).await?;
    assert_eq!(info.status, 401, "code reuse revoked the first tokens");
    let refresh = tokens.refresh_token().context("refresh token")?;
    assert!(
        client
            .exchange_refresh_token(refresh)?
            .request_async(&http)
            .await
            .is_err()
    );

    s.agent.stop().await?;
    s.sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locking_the_device_ends_its_tokens_and_the_next_login_shows_it_locked() -> Result<()> {
    let mut s = setup("bound").await?;
    let (mut browser, page) = s.alice_signs_in("first").await?;
    let (report, landed) = authenticate_with_device(&mut browser, &s.agent, &page).await?;
    assert!(report.confirmed, "{report:?}");
    let code = query_param(landed.location().context("redirect")?, "code").context("code")?;
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
    let tokens = tokens.json()?;
    let refresh = tokens["refresh_token"]
        .as_str()
        .context("refresh")?
        .to_owned();

    // Refresh rotates: the new token works, the old one is spent.
    let rotated = token_request(
        &s.sys,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &s.client_id),
            ("client_secret", &s.client_secret),
        ],
    )
    .await?;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let refresh = rotated.json()?["refresh_token"]
        .as_str()
        .context("refresh")?
        .to_owned();

    // The helpdesk locks the device.
    let locked_at = std::time::Instant::now();
    s.sys.ctl(&["device", "lock", &s.agent.device_id]).await?;
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
    assert_eq!(refused.json()?["error"], "invalid_grant");

    // The same browser tries again: its session ended with the lock, so it
    // signs in again, and the device's answer is refused as locked.
    let page = browser.get(&s.authorize_url("second")).await?;
    let page = browser.follow(page).await?;
    assert!(
        page.body.contains("Sign in"),
        "the session ended with the lock"
    );
    let req = page.input("req").context("req")?;
    let csrf = page.input("csrf").context("csrf")?;
    let after = browser
        .post(
            "/login",
            &[
                ("req", &req),
                ("csrf", &csrf),
                ("email", "alice@example.com"),
                ("password", CHOSEN_PASSWORD),
            ],
        )
        .await?;
    let page = browser.follow(after).await?;
    let (report, page) = authenticate_with_device(&mut browser, &s.agent, &page).await?;
    assert!(!report.confirmed);
    assert_eq!(report.failure, "device_locked");
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("This device is locked"), "{}", page.body);
    assert!(page.body.contains("data-failure=\"device_locked\""));
    assert!(
        locked_at.elapsed() < std::time::Duration::from_secs(1),
        "refused within a second of the lock: {:?}",
        locked_at.elapsed()
    );

    s.agent.stop().await?;
    s.sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_without_an_enrolled_device_is_refused() -> Result<()> {
    let mut s = setup("bound").await?;
    // Bob has no device.
    s.sys
        .ctl(&["user", "add", "bob@example.com", "--name", "Bob"])
        .await?;
    let reset = s
        .sys
        .ctl_json(&["user", "reset-password", "bob@example.com"])
        .await?;
    let bob_password = reset["temporary_password"]
        .as_str()
        .context("pw")?
        .to_owned();
    let mut browser = Browser::new(s.sys.running().https_addr, &s.sys.ca_pem)?;
    let page = login::sign_in(
        &mut browser,
        &s.authorize_url("bob"),
        "Payroll",
        "bob@example.com",
        &bob_password,
    )
    .await?;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("No managed device"), "{}", page.body);

    // Alice's sign-in in Japanese reaches the device step.
    let mut alice = Browser::new(s.sys.running().https_addr, &s.sys.ca_pem)?;
    alice.accept_language = "ja-JP,ja;q=0.9".into();
    let page = login::sign_in(
        &mut alice,
        &s.authorize_url("alice"),
        "Payroll",
        "alice@example.com",
        &s.password,
    )
    .await?;
    assert!(page.body.contains("このデバイスで認証"), "{}", page.body);
    let txn = page.attr("data-txn").context("txn")?;

    // A wrong password is refused with the same words whether or not the
    // account exists.
    let mut eve = Browser::new(s.sys.running().https_addr, &s.sys.ca_pem)?;
    let page = eve.get(&s.authorize_url("eve")).await?;
    let page = eve.follow(page).await?;
    let req = page.input("req").context("req")?;
    let csrf = page.input("csrf").context("csrf")?;
    let known = eve
        .post(
            "/login",
            &[
                ("req", &req),
                ("csrf", &csrf),
                ("email", "alice@example.com"),
                ("password", "wrong-password"),
            ],
        )
        .await?;
    let unknown = eve
        .post(
            "/login",
            &[
                ("req", &req),
                ("csrf", &csrf),
                ("email", "nobody@example.com"),
                ("password", "wrong-password"),
            ],
        )
        .await?;
    assert_eq!(known.status, 401);
    assert_eq!(unknown.status, 401);
    assert!(
        known
            .body
            .contains("The email address or password is not correct.")
    );
    assert!(
        unknown
            .body
            .contains("The email address or password is not correct.")
    );
    // A form without the session's CSRF token is refused.
    let forged = eve
        .post(
            "/login",
            &[
                ("req", &req),
                ("csrf", "0000"),
                ("email", "alice@example.com"),
                ("password", "x"),
            ],
        )
        .await?;
    assert_eq!(forged.status, 403);
    assert!(forged.body.contains("The form expired"));

    // The transaction is Alice's, redeemable only by her browser session:
    // Eve's browser waiting on it learns nothing.
    let waited = eve.get(&format!("/login/wait?txn={txn}")).await?;
    assert_eq!(waited.json()?["status"], "unknown");

    s.agent.stop().await?;
    s.sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_answers_with_the_certificate_its_profile_installed() -> Result<()> {
    let mut s = setup("bound").await?;
    let (mut browser, page) = s.alice_signs_in("phone").await?;
    let marker = "id=\"mobile-link\" href=\"";
    let start = page.body.find(marker).context("the mobile link")? + marker.len();
    let end = page.body[start..].find('"').context("link end")? + start;
    let link = page.body[start..end].replace("&amp;", "&");
    let device_addr = s.sys.running().https_device_addr;
    let prefix = format!("https://localhost:{}", device_addr.port());
    let path = link
        .strip_prefix(&prefix)
        .with_context(|| format!("{link} is on the device listener"))?
        .to_owned();
    let cookie = browser
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let headers = [("Cookie".to_owned(), cookie)];

    // A browser without a device certificate is told so.
    let plain = latchkey_certs::tls::client_config(&s.sys.ca_pem, None)?;
    let refused = request(device_addr, plain, "GET", &path, &headers, b"").await?;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("data-failure=\"no_device_certificate\"")
    );

    // The managed phone presents its certificate and goes back to the
    // sign-in, which continues to the app.
    let chain = s.agent.state.certificate_chain()?;
    let key = latchkey_agent::keystore::load(&s.agent.state)?;
    let with_certificate =
        latchkey_certs::tls::client_config(&s.sys.ca_pem, Some((chain.as_str(), &key)))?;
    let answered = request(device_addr, with_certificate, "GET", &path, &headers, b"").await?;
    assert_eq!(answered.status, 303, "{}", answered.body);
    let landed = browser.follow(answered).await?;
    let url = landed.location().context("back to the app")?;
    assert!(url.starts_with(RP_CALLBACK), "{url}");
    assert!(query_param(url, "code").is_some(), "{url}");

    s.agent.stop().await?;
    s.sys.stop().await
}
