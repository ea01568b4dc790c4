//! Who a request comes from: the browser (its address, the TCP peer or the
//! client a trusted proxy names, and its user agent) as the `Client`
//! extractor, and the live sign-in session its session cookie names.
//!
//! Which proxies are trusted and what a cookie's secret stands for are the
//! core's (`SignIn::client_address`, `SignIn::session_from_cookie`); the
//! cookie's format is in `cookies.rs`; checking a form's CSRF token is in
//! `csrf.rs`.

use axum::http::{HeaderMap, header};
use chrono::Utc;

use super::cookies::{SESSION_COOKIE, cookie};
use super::{Peer, Web};
use crate::core::CoreError;
use crate::core::sso::BrowserContext;
use crate::domain::sign_in::SsoSession;

/// The browser a request comes from: its address (the TCP peer, or the
/// client a trusted proxy names in `X-Forwarded-For`) and user agent.
pub(super) fn browser(web: &Web, headers: &HeaderMap, peer: Option<&Peer>) -> BrowserContext {
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let ip = peer.map_or_else(String::new, |p| {
        web.core
            .sign_in
            .client_address(p.0.ip().to_canonical(), &forwarded)
            .to_string()
    });
    BrowserContext::new(
        ip,
        headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    )
}

/// The browser of the current request, as an extractor.
pub(super) struct Client(pub BrowserContext);

impl axum::extract::FromRequestParts<Web> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        web: &Web,
    ) -> Result<Self, Self::Rejection> {
        Ok(Client(browser(
            web,
            &parts.headers,
            parts.extensions.get::<Peer>(),
        )))
    }
}

/// The live session and its cookie secret, if the browser has one.
pub(super) async fn current_session(
    web: &Web,
    headers: &HeaderMap,
    client: &BrowserContext,
) -> Result<Option<(SsoSession, String)>, CoreError> {
    let Some(secret) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    Ok(web
        .core
        .sign_in
        .session_from_cookie(Some(secret), client, Utc::now())
        .await?
        .map(|s| (s, secret.to_owned())))
}
