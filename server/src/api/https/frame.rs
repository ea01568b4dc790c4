//! The response every sign-in page and redirect goes out as: the headers
//! every page carries (content policy, no caching, no framing), the page
//! frame around a body with its language switch, and `303 See Other` with
//! cookies.
//!
//! The HTML of the frame and of each body is in `pages.rs` and
//! `pages/`; the `Set-Cookie` values come from `cookies.rs`. The error
//! pages handlers share are in `errors.rs`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::i18n::{Lang, Text};
use super::pages;

/// Headers every page carries: no caching, no framing, only our own
/// script and stylesheet.
pub(super) fn page_headers(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

pub(super) struct Page {
    pub lang: Lang,
    pub status: StatusCode,
    pub title: &'static Text,
    pub body: String,
    pub switch: String,
    pub set_cookie: Vec<String>,
    /// Room for tables (the account page).
    pub wide: bool,
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let html = pages::layout(self.lang, self.title, &self.body, &self.switch, self.wide);
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response();
        page_headers(&mut response);
        for c in self.set_cookie {
            if let Ok(value) = HeaderValue::from_str(&c) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
        }
        response
    }
}

pub(super) fn page(
    lang: Lang,
    status: StatusCode,
    title: &'static Text,
    body: String,
    here: &str,
) -> Page {
    let separator = if here.contains('?') { '&' } else { '?' };
    Page {
        lang,
        status,
        title,
        body,
        switch: format!("{here}{separator}lang={}", lang.other().code()),
        set_cookie: Vec::new(),
        wide: false,
    }
}

pub(super) fn see_other(location: &str, cookies: &[String]) -> Response {
    let mut response = Redirect::to(location).into_response();
    page_headers(&mut response);
    for c in cookies {
        if let Ok(value) = HeaderValue::from_str(c) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}
