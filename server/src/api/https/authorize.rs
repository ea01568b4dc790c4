//! `GET /authorize` (OpenID Connect Core 1.0 §3.1.2): the relying party's
//! request checked, the browser's session found or begun, and the browser
//! sent to the sign-in's first page, or, with `prompt=none`, straight back
//! to the client with a code or an error.
//!
//! The checks and what is stored are the core's (`validate_authorize`,
//! `create_auth_request`, `silent_step`); this handler writes nothing
//! itself; it reads the query string into the core's `AuthorizeParams`.
//! The sign-in pages that follow are in `login.rs`.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;

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

/// The query string of `/authorize` (RFC 6749 §4.1.1, OIDC Core §3.1.2.1),
/// each parameter absent or its text. A query this cannot read (a
/// parameter given twice) is refused by the extractor before the handler
/// runs.
#[derive(Debug, Default, Deserialize)]
pub struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    prompt: Option<String>,
    max_age: Option<String>,
    request: Option<String>,
    request_uri: Option<String>,
}

impl From<AuthorizeQuery> for AuthorizeParams {
    fn from(query: AuthorizeQuery) -> Self {
        AuthorizeParams {
            response_type: query.response_type,
            client_id: query.client_id,
            redirect_uri: query.redirect_uri,
            scope: query.scope,
            state: query.state,
            nonce: query.nonce,
            code_challenge: query.code_challenge,
            code_challenge_method: query.code_challenge_method,
            prompt: query.prompt,
            max_age: query.max_age,
            request: query.request,
            request_uri: query.request_uri,
        }
    }
}

/// `GET /authorize`.
pub async fn authorize(
    State(web): State<Web>,
    Client(client): Client,
    headers: HeaderMap,
    Query(query): Query<AuthorizeQuery>,
) -> Response {
    let now = Utc::now();
    let lang = language(&headers, None);
    let params = AuthorizeParams::from(query);
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
