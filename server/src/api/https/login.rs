//! The sign-in steps a browser goes through after `/authorize`: the page
//! of whatever step a sign-in is at (`GET /login`), the password, the new
//! password after a temporary one, and the one-time code of a second
//! factor. The device step is in `login/device_step.rs`, sign-out in
//! `login/signout.rs`.
//!
//! Which step comes next is the core's (`SignIn::next_step`); this module
//! has no rules of its own about it. It sets no cookie format (`cookies.rs`),
//! checks no CSRF token (`csrf.rs`: `SessionForm` does before a handler
//! runs) and holds no HTML (`pages/login.rs`).

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;

use super::client::{Client, current_session};
use super::cookies::{session_cookie, with_lang_cookie};
use super::csrf::{SessionForm, csrf_protected};
use super::errors::{expired_page, unavailable};
use super::frame::{page, see_other};
use super::i18n::{self as t, Lang};
use super::language::{browser_chose, language, language_for};
use super::{Web, pages};
use crate::core::SignIn;
use crate::core::passwords::Password;
use crate::core::sso::{CodeOutcome, LoginFailure, PasswordOutcome, Step, validate_new_password};
use crate::domain::sign_in::SsoSession;

mod device_step;
mod signout;

pub use device_step::*;
pub use signout::*;

pub(super) fn login_url(request_id: &str) -> String {
    format!("/login?req={}", pages::q(request_id))
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
    let csrf = SignIn::csrf_token(secret);
    let app = web
        .core
        .sign_in
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
                    device_url: web.core.sign_in.device_url(),
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
            let chosen = browser_chose(&headers, query.lang.as_deref());
            let saved = match &session.user_id {
                Some(id) if !chosen => web.core.users.user_by_id(id).await.ok().flatten(),
                _ => None,
            }
            .and_then(|u| u.locale);
            let lang = language_for(&headers, query.lang.as_deref(), saved.as_deref());
            match web
                .core
                .sign_in
                .next_step(&session, &request_id, Utc::now())
                .await
            {
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

csrf_protected!(PasswordForm, ChangePasswordForm, CodeForm);

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
        .sign_in
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
    let csrf = SignIn::csrf_token(&secret);
    let app = web
        .core
        .sign_in
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
        let text = t::new_password_problem(problem);
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
        .sign_in
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
    let (error, status, retry_after) = match web
        .core
        .sign_in
        .submit_code(&session, &form.code, now)
        .await
    {
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
    let step = match web.core.sign_in.next_step(&session, &form.req, now).await {
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
    match web
        .core
        .sign_in
        .resend_email_code(&session, Utc::now())
        .await
    {
        Ok(_) => see_other(&login_url(&form.req), &[]),
        Err(e) => unavailable(lang, &e),
    }
}
