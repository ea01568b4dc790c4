//! `GET /authorize` (OpenID Connect Core 1.0 §3.1.2): the relying party's
//! request checked, the browser's session found or begun, and the browser
//! sent to the sign-in's first page, or, with `prompt=none`, straight back
//! to the client with a code or an error.
//!
//! The checks and what is stored are the core's (`validate_authorize`,
//! `create_auth_request`, `silent_step`); this handler writes nothing
//! itself. The sign-in pages that follow are in `login.rs`.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use super::client::Client;
use super::cookies::{SESSION_COOKIE, cookie, session_cookie};
use super::errors::unavailable;
use super::frame::{page, see_other};
use super::i18n as t;
use super::language::language;
use super::login::login_url;
use super::{Web, pages};
use crate::core::SignIn;
use crate::core::sso::{AuthorizeParams, AuthorizeRefusal, Step};

/// `GET /authorize`.
pub async fn authorize(
    State(web): State<Web>,
    Client(client): Client,
    headers: HeaderMap,
    Query(params): Query<AuthorizeParams>,
) -> Response {
    let now = Utc::now();
    let lang = language(&headers, None);
    let valid = match web.core.sign_in.validate_authorize(&params).await {
        Ok(valid) => valid,
        Err(AuthorizeRefusal::Redirect(url)) => return see_other(&url, &[]),
        Err(AuthorizeRefusal::Page(code)) => {
            let text = match code {
                "unknown_client" => &t::UNKNOWN_CLIENT,
                "bad_redirect_uri" => &t::BAD_REDIRECT,
                "request_too_large" => &t::TOO_LARGE,
                _ => &t::UNAVAILABLE,
            };
            return page(
                lang,
                StatusCode::BAD_REQUEST,
                &t::BAD_REQUEST_TITLE,
                pages::refused_request(lang, text, code),
                "/",
            )
            .into_response();
        }
    };
    let existing = match web
        .core
        .sign_in
        .session_from_cookie(cookie(&headers, SESSION_COOKIE), &client, now)
        .await
    {
        Ok(s) => s,
        Err(e) => return unavailable(lang, &e),
    };
    let reusable = existing.filter(|s| SignIn::session_satisfies(s, &valid, now));
    if valid.prompt_none && reusable.as_ref().is_none_or(|s| s.auth_time.is_none()) {
        let mut pairs = vec![
            ("error", "login_required"),
            ("iss", web.core.sign_in.issuer()),
        ];
        if let Some(state) = &valid.state {
            pairs.push(("state", state));
        }
        return see_other(
            &crate::core::sso::redirect_with(&valid.redirect_uri, &pairs),
            &[],
        );
    }
    let (session, cookies) = match reusable {
        Some(session) => (session, Vec::new()),
        None => match web.core.sign_in.start_session(&client, now).await {
            Ok((session, secret)) => (session, vec![session_cookie(&secret)]),
            Err(e) => return unavailable(lang, &e),
        },
    };
    let request = match web
        .core
        .sign_in
        .create_auth_request(&session, &valid, now)
        .await
    {
        Ok(request) => request,
        Err(e) => return unavailable(lang, &e),
    };
    if !valid.prompt_none {
        return see_other(&login_url(&request.handle), &cookies);
    }
    // prompt=none: a code at once, or an error for the client; never a page.
    let error = match web
        .core
        .sign_in
        .silent_step(&session, &request.handle, now)
        .await
    {
        Ok(Step::Redirect(url, secret)) => {
            let mut cookies = cookies;
            cookies.extend(secret.as_deref().map(session_cookie));
            return see_other(&url, &cookies);
        }
        Ok(Step::Password) => "login_required",
        Ok(_) => "interaction_required",
        Err(e) => return unavailable(lang, &e),
    };
    let mut pairs = vec![("error", error), ("iss", web.core.sign_in.issuer())];
    if let Some(state) = &valid.state {
        pairs.push(("state", state));
    }
    see_other(
        &crate::core::sso::redirect_with(&valid.redirect_uri, &pairs),
        &cookies,
    )
}
