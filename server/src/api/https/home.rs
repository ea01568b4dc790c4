//! `GET /`: the home page, the signed-in user's apps with links to the
//! account page and to sign out, or a line saying nobody is signed in.
//!
//! The page's HTML is in `pages/home.rs`; signing out is in
//! `login/signout.rs`.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::client::{Client, current_session};
use super::cookies::with_lang_cookie;
use super::errors::unavailable;
use super::frame::page;
use super::i18n as t;
use super::language::{language, language_for};
use super::{Web, pages};
use crate::core::SignIn;

#[derive(Deserialize)]
pub struct HomeQuery {
    lang: Option<String>,
}

/// `GET /`: the signed-in user's apps.
pub async fn home(
    State(web): State<Web>,
    Client(client): Client,
    headers: HeaderMap,
    Query(query): Query<HomeQuery>,
) -> Response {
    let session = match current_session(&web, &headers, &client).await {
        Ok(s) => s,
        Err(e) => return unavailable(language(&headers, None), &e),
    };
    let signed_in = match &session {
        Some((s, _)) if s.auth_time.is_some() => match &s.user_id {
            Some(id) => web.core.users.user_by_id(id).await.ok().flatten(),
            None => None,
        },
        _ => None,
    };
    let lang = language_for(
        &headers,
        query.lang.as_deref(),
        signed_in.as_ref().and_then(|u| u.locale.as_deref()),
    );
    let apps = if signed_in.is_some() {
        web.core.sign_in.apps_for_home().await.unwrap_or_default()
    } else {
        Vec::new()
    };
    let csrf = session
        .as_ref()
        .map(|(_, secret)| SignIn::csrf_token(secret))
        .unwrap_or_default();
    let body = pages::home(
        lang,
        signed_in.as_ref().map(|u| u.email.as_str()),
        &apps,
        &csrf,
    );
    with_lang_cookie(
        page(lang, StatusCode::OK, &t::HOME_TITLE, body, "/").into_response(),
        query.lang.as_deref(),
    )
}
