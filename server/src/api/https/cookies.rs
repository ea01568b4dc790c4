//! The cookies the sign-in pages set: the session cookie (its secret), the
//! language cookie, and the secret of an ADE sign-in Setup Assistant's
//! web view started. Reading a cookie from a request and writing
//! each `Set-Cookie` value happen here and nowhere else.
//!
//! What a session secret stands for is the core's business
//! (`core::sso`); this module only carries it. Which language a page is in
//! is decided in `language.rs`.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;

use super::i18n::Lang;

/// The session cookie. `__Host-` pins it to this host, path `/`, Secure.
pub const SESSION_COOKIE: &str = "__Host-latchkey-session";
pub(super) const LANG_COOKIE: &str = "latchkey-lang";
/// The secret of the sign-in Setup Assistant's web view started before an
/// ADE enrollment; sent only back to `/apple/dep/`.
pub(super) const DEP_SIGN_IN_COOKIE: &str = "latchkey-dep-sign-in";

pub(super) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub(super) fn session_cookie(secret: &str) -> String {
    format!(
        "{SESSION_COOKIE}={secret}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={}",
        crate::core::sso::SESSION_TTL.num_seconds()
    )
}

pub(super) fn clear_session_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0")
}

pub(super) fn dep_sign_in_cookie(secret: &str) -> String {
    format!(
        "{DEP_SIGN_IN_COOKIE}={secret}; Path=/apple/dep/; Secure; HttpOnly; SameSite=Lax; Max-Age={}",
        crate::core::apple::DEP_SIGN_IN_LIFETIME.num_seconds()
    )
}

pub(super) fn lang_cookie(lang: Lang) -> String {
    format!(
        "{LANG_COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=31536000",
        lang.code()
    )
}

pub(super) fn with_lang_cookie(mut response: Response, explicit: Option<&str>) -> Response {
    if let Some(lang) = explicit.and_then(Lang::parse)
        && let Ok(value) = HeaderValue::from_str(&lang_cookie(lang))
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}
