//! Sign-out: `/logout`, both the relying party's RP-initiated logout and
//! the home page's sign-out button.
//!
//! Ending the session and checking the ID token hint and the redirect
//! address are the core's (`end_session`, `id_token_hint`,
//! `post_logout_redirect`); the confirmation form's HTML is in
//! `pages/home.rs`. The home page itself is in `home.rs`.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;

use crate::api::https::client::{Client, current_session};
use crate::api::https::cookies::clear_session_cookie;
use crate::api::https::errors::unavailable;
use crate::api::https::frame::{page, see_other};
use crate::api::https::i18n as t;
use crate::api::https::language::language;
use crate::api::https::{Web, pages};
use crate::core::SignIn;

#[derive(Debug, Default, Deserialize)]
pub struct LogoutParams {
    id_token_hint: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    client_id: Option<String>,
    csrf: Option<String>,
}

/// `GET|POST /logout`: RP-initiated logout (OpenID Connect RP-Initiated
/// Logout 1.0) and the home page's sign-out button. A GET without an ID
/// token of this session asks the user to confirm with a POST, so a link
/// elsewhere cannot sign anyone out.
pub async fn logout(
    State(web): State<Web>,
    Client(client): Client,
    headers: HeaderMap,
    method: axum::http::Method,
    params: Result<Form<LogoutParams>, axum::extract::rejection::FormRejection>,
) -> Response {
    let lang = language(&headers, None);
    // `Form` reads the query string of a GET and the body of a POST.
    let params = params.map(|Form(p)| p).unwrap_or_default();
    let now = Utc::now();
    let session = match current_session(&web, &headers, &client).await {
        Ok(s) => s,
        Err(e) => return unavailable(lang, &e),
    };
    // The hint must be an ID token we issued, of the client named (when
    // one is), for this browser's session when it has one (by `sid`).
    let hint = match &params.id_token_hint {
        Some(token) => web
            .core
            .sign_in
            .id_token_hint(token, now)
            .await
            .ok()
            .flatten(),
        None => None,
    }
    .filter(|h| {
        params
            .client_id
            .as_deref()
            .is_none_or(|client| client == h.client_id)
    })
    .filter(|h| {
        session
            .as_ref()
            .is_none_or(|(session, _)| session.id == h.session_id)
    });
    // A sign-out sends the browser away only to an address the hint's
    // client registered for sign-outs.
    let redirect = match (&params.post_logout_redirect_uri, &hint) {
        (Some(uri), Some(hint)) => web
            .core
            .sign_in
            .post_logout_redirect(&hint.client_id, uri)
            .await
            .ok()
            .flatten()
            .map(|uri| {
                let mut pairs = Vec::new();
                if let Some(state) = &params.state {
                    pairs.push(("state", state.as_str()));
                }
                crate::core::sso::redirect_with(&uri, &pairs)
            }),
        _ => None,
    };
    if let Some((session, secret)) = &session {
        let confirmed = method == axum::http::Method::POST
            && params
                .csrf
                .as_deref()
                .is_some_and(|c| crate::core::sso::constant_eq(&SignIn::csrf_token(secret), c));
        let hinted = hint.as_ref().is_some_and(|h| h.session_id == session.id);
        if !(confirmed || hinted) {
            let csrf = SignIn::csrf_token(secret);
            let body = pages::sign_out_form(
                lang,
                &csrf,
                &[
                    ("id_token_hint", params.id_token_hint.as_deref()),
                    (
                        "post_logout_redirect_uri",
                        params.post_logout_redirect_uri.as_deref(),
                    ),
                    ("state", params.state.as_deref()),
                    ("client_id", params.client_id.as_deref()),
                ],
            );
            return page(lang, StatusCode::OK, &t::SIGN_OUT, body, "/logout").into_response();
        }
        if let Err(e) = web
            .core
            .sign_in
            .end_session(session, "signed out", now)
            .await
        {
            return unavailable(lang, &e);
        }
    }
    let cookies = [clear_session_cookie()];
    match redirect {
        Some(url) => see_other(&url, &cookies),
        None => {
            let mut page = page(
                lang,
                StatusCode::OK,
                &t::SIGNED_OUT_TITLE,
                pages::message(lang, &t::SIGNED_OUT),
                "/logout",
            );
            page.set_cookie = cookies.to_vec();
            page.into_response()
        }
    }
}
