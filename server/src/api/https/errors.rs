//! The pages any sign-in or account handler answers with when it cannot go
//! on: "unavailable" for a core error (logged here, once) and "expired"
//! for a sign-in or form that no longer has a live session.
//!
//! Refusals that belong to one step (a wrong password, a bad CSRF token,
//! an `/authorize` request the server will not serve) are rendered where
//! that step is handled; the OAuth 2.0 error JSON of the token endpoints
//! is in `oidc.rs`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tracing::warn;

use super::frame::page;
use super::i18n::{self as t, Lang};
use super::pages;
use crate::core::CoreError;
use crate::core::sso::LoginFailure;

pub(super) fn unavailable(lang: Lang, error: &CoreError) -> Response {
    warn!(error = %error, "sign-in page failed");
    page(
        lang,
        StatusCode::SERVICE_UNAVAILABLE,
        &t::BAD_REQUEST_TITLE,
        pages::message(lang, &t::UNAVAILABLE),
        "/",
    )
    .into_response()
}

pub(super) fn expired_page(lang: Lang, here: &str) -> Response {
    page(
        lang,
        StatusCode::BAD_REQUEST,
        &t::FAILED_EXPIRED_TITLE,
        pages::failure(lang, &LoginFailure::Expired, "", ""),
        here,
    )
    .into_response()
}
