//! CSRF protection of the sign-in and account forms: every form carries
//! the session's token, and `SessionForm` lets a post reach its handler
//! only from a live session whose token it carries; any other post gets
//! the "form expired" or "bad request" page instead.
//!
//! The token itself (derived from the session's cookie secret) and the
//! constant-time comparison are the core's (`SignIn::csrf_token`,
//! `core::sso::constant_eq`). Sign-out checks its token itself
//! (`login/signout.rs`): an RP-initiated GET carries none.

use axum::Form;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::Web;
use super::client::{browser, current_session};
use super::errors::{expired_page, unavailable};
use super::frame::page;
use super::i18n::{self as t, Lang};
use super::language::language;
use super::{Peer, pages};
use crate::core::SignIn;
use crate::core::sso::BrowserContext;
use crate::domain::sign_in::SsoSession;

/// A form post's session, after its CSRF token checked out.
pub(super) async fn form_session(
    web: &Web,
    headers: &HeaderMap,
    client: &BrowserContext,
    csrf: &str,
    lang: Lang,
) -> Result<(SsoSession, String), Response> {
    let session = match current_session(web, headers, client).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(expired_page(lang, "/")),
        Err(e) => return Err(unavailable(lang, &e)),
    };
    if !crate::core::sso::constant_eq(&SignIn::csrf_token(&session.1), csrf) {
        return Err(page(
            lang,
            StatusCode::FORBIDDEN,
            &t::BAD_CSRF_TITLE,
            pages::message(lang, &t::BAD_CSRF),
            "/",
        )
        .into_response());
    }
    Ok(session)
}

/// Forms that carry the session's CSRF token.
pub(super) trait CsrfProtected {
    fn csrf(&self) -> &str;
}

/// A form posted from a live session whose CSRF token checked out; any
/// other post gets the "form expired" page instead of reaching a handler.
pub(super) struct SessionForm<T> {
    pub session: SsoSession,
    pub secret: String,
    pub lang: Lang,
    pub headers: HeaderMap,
    pub form: T,
}

impl<T> axum::extract::FromRequest<Web> for SessionForm<T>
where
    T: serde::de::DeserializeOwned + CsrfProtected + Send,
{
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, web: &Web) -> Result<Self, Response> {
        let headers = req.headers().clone();
        let client = browser(web, &headers, req.extensions().get::<Peer>());
        let lang = language(&headers, None);
        let Form(form) = Form::<T>::from_request(req, web)
            .await
            .map_err(IntoResponse::into_response)?;
        let (session, secret) = form_session(web, &headers, &client, form.csrf(), lang).await?;
        Ok(SessionForm {
            session,
            secret,
            lang,
            headers,
            form,
        })
    }
}

/// Implements [`CsrfProtected`] for forms whose token is their `csrf`
/// field.
macro_rules! csrf_protected {
    ($($form:ty),*) => {
        $(impl $crate::api::https::csrf::CsrfProtected for $form {
            fn csrf(&self) -> &str {
                &self.csrf
            }
        })*
    };
}

pub(super) use csrf_protected;
