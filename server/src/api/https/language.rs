//! Which language a page is in: `?lang=`, then the language cookie, then
//! the signed-in user's saved choice, then `Accept-Language`.
//!
//! The words themselves are in `i18n.rs`, the cookie's name and
//! `Set-Cookie` value in `cookies.rs`; saving a user's choice is the
//! account page's (`account.rs`).

use axum::http::{HeaderMap, header};

use super::cookies::{LANG_COOKIE, cookie};
use super::i18n::Lang;

/// The page language: `?lang=`, then the language cookie, then
/// `Accept-Language`.
pub(super) fn language(headers: &HeaderMap, explicit: Option<&str>) -> Lang {
    language_for(headers, explicit, None)
}

/// The page language for a signed-in user: `?lang=`, the language cookie,
/// the user's saved choice, then `Accept-Language`.
pub(super) fn language_for(
    headers: &HeaderMap,
    explicit: Option<&str>,
    saved: Option<&str>,
) -> Lang {
    explicit
        .and_then(Lang::parse)
        .or_else(|| cookie(headers, LANG_COOKIE).and_then(Lang::parse))
        .or_else(|| saved.and_then(Lang::parse))
        .unwrap_or_else(|| {
            Lang::negotiate(
                headers
                    .get(header::ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(""),
            )
        })
}

/// Whether this browser chose a language itself (`?lang=` or the
/// language cookie), so that a user's saved choice does not count.
pub(super) fn browser_chose(headers: &HeaderMap, explicit: Option<&str>) -> bool {
    explicit.and_then(Lang::parse).is_some()
        || cookie(headers, LANG_COOKIE).and_then(Lang::parse).is_some()
}
