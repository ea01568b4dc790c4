//! The browser's side of sign-in: `/authorize`, the sign-in pages, the
//! device-auth wait, sign-out and the home page.

use std::time::Duration;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use serde::Deserialize;
use tracing::{debug, warn};

use super::i18n::{self as t, Lang, Text};
use super::{Peer, Web, pages};
use crate::core::passwords::Password;
use crate::core::sso::{
    AuthorizeParams, AuthorizeRefusal, BrowserContext, CodeOutcome, DeviceCodeOutcome,
    LoginFailure, PasswordOutcome, RedeemOutcome, Step, validate_new_password,
};

use crate::core::{Core, CoreError};
use crate::domain::sign_in::SsoSession;
use crate::domain::sign_in::TxnOutcome;

/// The session cookie. `__Host-` pins it to this host, path `/`, Secure.
pub const SESSION_COOKIE: &str = "__Host-latchkey-session";
const LANG_COOKIE: &str = "latchkey-lang";

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

fn clear_session_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0")
}

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

/// Headers every page carries: no caching, no framing, only our own
/// script and stylesheet.
fn page_headers(response: &mut Response) {
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

pub(super) fn login_url(request_id: &str) -> String {
    format!("/login?req={}", pages::q(request_id))
}

/// `GET /authorize`.
pub async fn authorize(
    State(web): State<Web>,
    Client(client): Client,
    headers: HeaderMap,
    Query(params): Query<AuthorizeParams>,
) -> Response {
    let now = Utc::now();
    let lang = language(&headers, None);
    let valid = match web.core.validate_authorize(&params).await {
        Ok(valid) => valid,
        Err(AuthorizeRefusal::Redirect(url)) => return see_other(&url, &[]),
        Err(AuthorizeRefusal::Page(code)) => {
            let text = match code {
                "unknown_client" => &t::UNKNOWN_CLIENT,
                "bad_redirect_uri" => &t::BAD_REDIRECT,
                "request_too_large" => &t::TOO_LARGE,
                _ => &t::UNAVAILABLE,
            };
            let mut page = page(
                lang,
                StatusCode::BAD_REQUEST,
                &t::BAD_REQUEST_TITLE,
                pages::message(lang, text),
                "/",
            );
            page.body.push_str(&format!(
                r#"<p class="muted" data-error="{code}">{code}</p>"#
            ));
            return page.into_response();
        }
    };
    let existing = match web
        .core
        .session_from_cookie(cookie(&headers, SESSION_COOKIE), &client, now)
        .await
    {
        Ok(s) => s,
        Err(e) => return unavailable(lang, &e),
    };
    let reusable = existing.filter(|s| Core::session_satisfies(s, &valid, now));
    if valid.prompt_none && reusable.as_ref().is_none_or(|s| s.auth_time.is_none()) {
        let mut pairs = vec![("error", "login_required"), ("iss", web.core.issuer())];
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
        None => match web.core.start_session(&client, now).await {
            Ok((session, secret)) => (session, vec![session_cookie(&secret)]),
            Err(e) => return unavailable(lang, &e),
        },
    };
    let request = match web.core.create_auth_request(&session, &valid, now).await {
        Ok(request) => request,
        Err(e) => return unavailable(lang, &e),
    };
    if !valid.prompt_none {
        return see_other(&login_url(&request.handle), &cookies);
    }
    // prompt=none: a code at once, or an error for the client; never a page.
    let error = match web.core.silent_step(&session, &request.handle, now).await {
        Ok(Step::Redirect(url, secret)) => {
            let mut cookies = cookies;
            cookies.extend(secret.as_deref().map(session_cookie));
            return see_other(&url, &cookies);
        }
        Ok(Step::Password) => "login_required",
        Ok(_) => "interaction_required",
        Err(e) => return unavailable(lang, &e),
    };
    let mut pairs = vec![("error", error), ("iss", web.core.issuer())];
    if let Some(state) = &valid.state {
        pairs.push(("state", state));
    }
    see_other(
        &crate::core::sso::redirect_with(&valid.redirect_uri, &pairs),
        &cookies,
    )
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
        .session_from_cookie(Some(secret), client, Utc::now())
        .await?
        .map(|s| (s, secret.to_owned())))
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

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    req: Option<String>,
    lang: Option<String>,
}

/// Renders whatever step the sign-in is at.
#[allow(clippy::too_many_arguments)]
async fn render_step(
    web: &Web,
    lang: Lang,
    session: &SsoSession,
    secret: &str,
    request_id: &str,
    step: Step,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let here = login_url(request_id);
    let csrf = Core::csrf_token(secret);
    let app = web
        .core
        .request_app(session, request_id, Utc::now())
        .await
        .ok()
        .flatten();
    match step {
        Step::Redirect(url, secret) => {
            let cookies: Vec<String> = secret.as_deref().map(session_cookie).into_iter().collect();
            see_other(&url, &cookies)
        }
        Step::Password => page(
            lang,
            status,
            &t::SIGN_IN_TITLE,
            pages::password_form(lang, app.as_ref(), request_id, &csrf, "", error),
            &here,
        )
        .into_response(),
        Step::ChangePassword => page(
            lang,
            status,
            &t::CHANGE_PASSWORD_TITLE,
            pages::change_password_form(lang, request_id, &csrf, error),
            &here,
        )
        .into_response(),
        Step::Totp(enrollment) => page(
            lang,
            status,
            if enrollment.is_some() {
                &t::TOTP_ENROLL_TITLE
            } else {
                &t::TOTP_TITLE
            },
            pages::totp_form(
                lang,
                app.as_ref(),
                request_id,
                &csrf,
                enrollment.as_ref(),
                error,
            ),
            &here,
        )
        .into_response(),
        Step::EmailCode { to } => page(
            lang,
            status,
            &t::EMAIL_CODE_TITLE,
            pages::email_code_form(lang, app.as_ref(), request_id, &csrf, &to, error),
            &here,
        )
        .into_response(),
        Step::ChooseDevice(devices) => page(
            lang,
            status,
            &t::CHOOSE_DEVICE_TITLE,
            pages::choose_device(lang, app.as_ref(), request_id, &csrf, &devices),
            &here,
        )
        .into_response(),
        Step::DeviceAuth { txn, devices } => page(
            lang,
            status,
            &t::DEVICE_AUTH_TITLE,
            pages::device_auth(
                lang,
                &pages::DeviceAuthPage {
                    app: app.as_ref(),
                    request_id,
                    txn: &txn,
                    devices: &devices,
                    device_url: web.core.device_url(),
                    csrf: &csrf,
                    error,
                },
            ),
            &here,
        )
        .into_response(),
        Step::Failed(failure) => {
            let (title, _) = pages::failure_text(&failure);
            let status = match failure {
                LoginFailure::Expired => StatusCode::BAD_REQUEST,
                _ => StatusCode::FORBIDDEN,
            };
            page(
                lang,
                status,
                title,
                pages::failure(lang, &failure, request_id, &csrf),
                &here,
            )
            .into_response()
        }
    }
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

/// `GET /login?req=…`: the current step of a sign-in.
pub async fn login_page(
    State(web): State<Web>,
    Client(client): Client,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> Response {
    let lang = language(&headers, query.lang.as_deref());
    let request_id = query.req.unwrap_or_default();
    let response = match current_session(&web, &headers, &client).await {
        Err(e) => unavailable(lang, &e),
        Ok(None) => expired_page(lang, &login_url(&request_id)),
        Ok(Some((session, secret))) => {
            // The saved language counts only when this browser chose none.
            let chosen = query.lang.as_deref().and_then(Lang::parse).is_some()
                || cookie(&headers, LANG_COOKIE)
                    .and_then(Lang::parse)
                    .is_some();
            let saved = match &session.user_id {
                Some(id) if !chosen => web.core.user_by_id(id).await.ok().flatten(),
                _ => None,
            }
            .and_then(|u| u.locale);
            let lang = language_for(&headers, query.lang.as_deref(), saved.as_deref());
            match web.core.next_step(&session, &request_id, Utc::now()).await {
                Ok(step) => {
                    render_step(
                        &web,
                        lang,
                        &session,
                        &secret,
                        &request_id,
                        step,
                        None,
                        StatusCode::OK,
                    )
                    .await
                }
                Err(e) => unavailable(lang, &e),
            }
        }
    };
    with_lang_cookie(response, query.lang.as_deref())
}

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
    if !crate::core::sso::constant_eq(&Core::csrf_token(&session.1), csrf) {
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

macro_rules! csrf_protected {
    ($($form:ty),*) => {
        $(impl CsrfProtected for $form {
            fn csrf(&self) -> &str {
                &self.csrf
            }
        })*
    };
}

csrf_protected!(PasswordForm, ChangePasswordForm, CodeForm);

// After the macro, which they use.
mod device_step;
mod signout;

pub use device_step::*;
pub use signout::*;

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    req: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

/// `POST /login`: the sign-in form.
pub async fn submit_password(
    State(web): State<Web>,
    SessionForm {
        session,
        secret,
        lang,
        form,
        ..
    }: SessionForm<PasswordForm>,
) -> Response {
    let password = Password::new(form.password);
    let outcome = match web
        .core
        .submit_password(&session, &form.email, &password, Utc::now())
        .await
    {
        Ok(outcome) => outcome,
        Err(e) => return unavailable(lang, &e),
    };
    let (error, status) = match outcome {
        PasswordOutcome::Accepted(secret) => {
            return see_other(&login_url(&form.req), &[session_cookie(&secret)]);
        }
        PasswordOutcome::Rejected => (
            t::BAD_CREDENTIALS.get(lang).to_owned(),
            StatusCode::UNAUTHORIZED,
        ),
        PasswordOutcome::TemporaryExpired => (
            t::TEMPORARY_EXPIRED.get(lang).to_owned(),
            StatusCode::UNAUTHORIZED,
        ),
        PasswordOutcome::LockedOut(seconds) => (
            format!("{} {seconds}", t::LOCKED_OUT.get(lang)),
            StatusCode::TOO_MANY_REQUESTS,
        ),
        PasswordOutcome::NetworkDenied => {
            let failure = LoginFailure::NetworkDenied {
                ip: session.ip.clone(),
            };
            return page(
                lang,
                StatusCode::FORBIDDEN,
                &t::FAILED_NETWORK_TITLE,
                pages::failure(lang, &failure, "", ""),
                &login_url(&form.req),
            )
            .into_response();
        }
    };
    let csrf = Core::csrf_token(&secret);
    let app = web
        .core
        .request_app(&session, &form.req, Utc::now())
        .await
        .ok()
        .flatten();
    let mut response = page(
        lang,
        status,
        &t::SIGN_IN_TITLE,
        pages::password_form(
            lang,
            app.as_ref(),
            &form.req,
            &csrf,
            &form.email,
            Some(&error),
        ),
        &login_url(&form.req),
    )
    .into_response();
    if let PasswordOutcome::LockedOut(seconds) = outcome
        && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

#[derive(Deserialize)]
pub struct ChangePasswordForm {
    #[serde(default)]
    req: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

/// `POST /login/password`: a new password after a temporary one.
pub async fn change_password(
    State(web): State<Web>,
    SessionForm {
        session,
        secret,
        lang,
        form,
        ..
    }: SessionForm<ChangePasswordForm>,
) -> Response {
    if let Err(problem) = validate_new_password(&form.password, &form.confirm) {
        let text = match problem {
            "mismatch" => &t::PW_MISMATCH,
            "too_long" => &t::PW_TOO_LONG,
            _ => &t::PW_TOO_SHORT,
        };
        return render_step(
            &web,
            lang,
            &session,
            &secret,
            &form.req,
            Step::ChangePassword,
            Some(text.get(lang)),
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    match web
        .core
        .change_password(&session, &Password::new(form.password), Utc::now())
        .await
    {
        Ok(true) => see_other(&login_url(&form.req), &[]),
        Ok(false) => expired_page(lang, "/"),
        Err(e) => unavailable(lang, &e),
    }
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    req: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
}

/// `POST /login/code`: a one-time code (authenticator app or email).
pub async fn submit_code(
    State(web): State<Web>,
    SessionForm {
        session,
        secret,
        lang,
        form,
        ..
    }: SessionForm<CodeForm>,
) -> Response {
    let now = Utc::now();
    let (error, status, retry_after) = match web.core.submit_code(&session, &form.code, now).await {
        Ok(CodeOutcome::SignedIn(secret)) => {
            return see_other(&login_url(&form.req), &[session_cookie(&secret)]);
        }
        Ok(CodeOutcome::Accepted) => return see_other(&login_url(&form.req), &[]),
        Ok(CodeOutcome::Expired | CodeOutcome::StepUpNeeded) => {
            return expired_page(lang, &login_url(&form.req));
        }
        Ok(CodeOutcome::Rejected) => (
            t::BAD_CODE.get(lang).to_owned(),
            StatusCode::UNAUTHORIZED,
            None,
        ),
        Ok(CodeOutcome::LockedOut(seconds)) => (
            format!("{} {seconds}", t::LOCKED_OUT.get(lang)),
            StatusCode::TOO_MANY_REQUESTS,
            Some(seconds),
        ),
        Err(e) => return unavailable(lang, &e),
    };
    // The same step again, with the error.
    let step = match web.core.next_step(&session, &form.req, now).await {
        Ok(step) => step,
        Err(e) => return unavailable(lang, &e),
    };
    let mut response = render_step(
        &web,
        lang,
        &session,
        &secret,
        &form.req,
        step,
        Some(&error),
        status,
    )
    .await;
    if let Some(seconds) = retry_after
        && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// `POST /login/code/resend`: another emailed code.
pub async fn resend_code(
    State(web): State<Web>,
    SessionForm {
        session,
        lang,
        form,
        ..
    }: SessionForm<CodeForm>,
) -> Response {
    match web.core.resend_email_code(&session, Utc::now()).await {
        Ok(_) => see_other(&login_url(&form.req), &[]),
        Err(e) => unavailable(lang, &e),
    }
}
