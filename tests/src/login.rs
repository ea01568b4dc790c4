//! A user's steps through the sign-in pages and a client's token requests,
//! shared by the SSO tests.

use anyhow::{Context, Result};

use crate::System;
use crate::web::{Browser, WebResponse, request};

/// The password a user chooses after a temporary one.
pub const CHOSEN_PASSWORD: &str = "correct horse battery staple";

pub fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The authorize URL a confidential client without PKCE would send.
pub fn authorize_url(client_id: &str, redirect_uri: &str, state: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("scope", "openid email"),
            ("state", state),
            ("nonce", "n-0S6_WzA2Mj"),
        ])
        .finish();
    format!("/authorize?{query}")
}

/// A form POST to `/token`.
pub async fn token_request(sys: &System, form: &[(&str, &str)]) -> Result<WebResponse> {
    let tls = latchkey_certs::tls::client_config(&sys.ca_pem, None)?;
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    request(
        sys.running().https_addr,
        tls,
        "POST",
        "/token",
        &[(
            "Content-Type".into(),
            "application/x-www-form-urlencoded".into(),
        )],
        body.as_bytes(),
    )
    .await
}

/// Opens `authorize_url`, signs in on the form (choosing a new password
/// after a temporary one) and returns the page after that.
pub async fn sign_in(
    browser: &mut Browser,
    authorize_url: &str,
    app_name: &str,
    email: &str,
    password: &str,
) -> Result<WebResponse> {
    let page = browser.get(authorize_url).await?;
    let page = browser.follow(page).await?;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("name=\"password\""), "{}", page.body);
    assert!(page.body.contains(app_name), "{}", page.body);
    let req = page.input("req").context("req")?;
    let csrf = page.input("csrf").context("csrf")?;
    let after = browser
        .post(
            "/login",
            &[
                ("req", &req),
                ("csrf", &csrf),
                ("email", email),
                ("password", password),
            ],
        )
        .await?;
    let mut page = browser.follow(after).await?;
    if page.body.contains("name=\"confirm\"") {
        let csrf = page.input("csrf").context("csrf")?;
        let after = browser
            .post(
                "/login/password",
                &[
                    ("req", &req),
                    ("csrf", &csrf),
                    ("password", CHOSEN_PASSWORD),
                    ("confirm", CHOSEN_PASSWORD),
                ],
            )
            .await?;
        page = browser.follow(after).await?;
    }
    Ok(page)
}
