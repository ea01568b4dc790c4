//! The account page: second-factor settings (authenticator app, when to be
//! asked), the password, the page language and the sign-in history.
//!
//! Changing a protection (a second factor, when to be asked, the password)
//! needs a recent step-up: the password again and a code of the user's
//! second factor (`core::sso::step_up`). A session that has not passed the
//! user's second factor sees only the step-up form.
//!
//! What may change and when is the core's (`core::sso::mfa`,
//! `core::sso::step_up`); the page's HTML is in `pages/account.rs`.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;

use super::client::{Client, current_session};
use super::cookies::{lang_cookie, session_cookie};
use super::csrf::{SessionForm, csrf_protected};
use super::errors::{expired_page, unavailable};
use super::frame::{page, see_other};
use super::i18n::{self as t, Lang};
use super::language::{language, language_for};
use super::{Web, pages};
use crate::core::SignIn;
use crate::core::passwords::Password;
use crate::core::sso::{
    BrowserContext, CodeOutcome, MfaChange, MfaSetting, PasswordChange, StepUpOutcome,
    TotpEnrollment,
};

use crate::domain::sign_in::SsoSession;
use crate::domain::user::{User, UserStatus};

/// The session's user, when it is signed in and still active.
async fn active_user(web: &Web, session: &SsoSession, lang: Lang) -> Result<User, Response> {
    let user = match &session.user_id {
        Some(id) if session.auth_time.is_some() => match web.core.users.user_by_id(id).await {
            Ok(user) => user.filter(|u| u.status == UserStatus::Active),
            Err(e) => return Err(unavailable(lang, &e)),
        },
        _ => None,
    };
    user.ok_or_else(|| see_other("/", &[]))
}

/// The signed-in session (its cookie secret) and its user, or the page to
/// show instead.
pub(super) async fn signed_in(
    web: &Web,
    headers: &HeaderMap,
    client: &BrowserContext,
) -> Result<(SsoSession, String, User), Response> {
    let lang = language(headers, None);
    let (session, secret) = match current_session(web, headers, client).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(see_other("/", &[])),
        Err(e) => return Err(unavailable(lang, &e)),
    };
    let user = active_user(web, &session, lang).await?;
    Ok((session, secret, user))
}

/// A form posted on the account page by a signed-in, active user, with
/// its CSRF token checked.
pub struct AccountPost {
    signed_in: (SsoSession, String, User),
    headers: HeaderMap,
    form: AccountForm,
}

impl axum::extract::FromRequest<Web> for AccountPost {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, web: &Web) -> Result<Self, Response> {
        let SessionForm {
            session,
            secret,
            lang,
            headers,
            form,
        } = SessionForm::<AccountForm>::from_request(req, web).await?;
        let user = active_user(web, &session, lang).await?;
        Ok(AccountPost {
            signed_in: (session, secret, user),
            headers,
            form,
        })
    }
}

csrf_protected!(AccountForm);

/// What to show besides the stored state.
#[derive(Default)]
struct Extra<'a> {
    enrollment: Option<TotpEnrollment>,
    notice: Option<&'a t::Text>,
    error: Option<&'a t::Text>,
    status: Option<StatusCode>,
    newest_first: Option<bool>,
    explicit_lang: Option<&'a str>,
}

async fn render(
    web: &Web,
    headers: &HeaderMap,
    (session, secret, user): (SsoSession, String, User),
    extra: Extra<'_>,
) -> Response {
    let lang = language_for(headers, extra.explicit_lang, user.locale.as_deref());
    let now = Utc::now();
    let newest_first = extra.newest_first.unwrap_or(true);
    let checks = async {
        let full = web
            .core
            .sign_in
            .signed_in_beyond_password(&session, &user)
            .await?;
        let recent = web.core.sign_in.stepped_up(&session, &user, now).await?;
        let factor = web.core.sign_in.step_up_factor(&user).await?;
        Ok::<_, crate::core::CoreError>((full, recent, factor))
    };
    let (signed_in_fully, stepped_up, step_up_factor) = match checks.await {
        Ok(c) => c,
        Err(e) => return unavailable(lang, &e),
    };
    let enrollment = match extra.enrollment {
        Some(e) => Some(e),
        // An enrollment started on this page stays on screen until done.
        None => match web.core.sign_in.enrollment_open(&session, now).await {
            Ok(true) => match web
                .core
                .sign_in
                .start_totp_enrollment(&session, &user, now)
                .await
            {
                Ok(e) => e,
                Err(e) => return unavailable(lang, &e),
            },
            Ok(false) => None,
            Err(e) => return unavailable(lang, &e),
        },
    };
    let (factors, history) = if signed_in_fully {
        match (
            web.core.sign_in.second_factor_view(&user).await,
            web.core.sign_in.account_history(&user, newest_first).await,
        ) {
            (Ok(f), Ok(h)) => (Some(f), h),
            (Err(e), _) | (_, Err(e)) => return unavailable(lang, &e),
        }
    } else {
        (None, Vec::new())
    };
    let body = pages::account(
        lang,
        &pages::AccountPage {
            user: &user,
            factors: factors.as_ref(),
            enrollment: enrollment.as_ref(),
            notice: extra.notice.map(|n| n.get(lang)),
            error: extra.error.map(|e| e.get(lang)),
            history: &history,
            newest_first,
            csrf: &SignIn::csrf_token(&secret),
            stepped_up,
            step_up_factor,
        },
    );
    let mut page = page(
        lang,
        extra.status.unwrap_or(StatusCode::OK),
        &t::ACCOUNT_TITLE,
        body,
        "/account",
    );
    page.wide = true;
    if let Some(explicit) = extra.explicit_lang.and_then(Lang::parse) {
        page.set_cookie.push(lang_cookie(explicit));
    }
    page.into_response()
}

/// The page again, with `text` as the error and `status`.
fn refused(text: &'static t::Text, status: StatusCode) -> Extra<'static> {
    Extra {
        error: Some(text),
        status: Some(status),
        ..Extra::default()
    }
}

fn step_up_needed() -> Extra<'static> {
    refused(&t::STEP_UP_NEEDED, StatusCode::FORBIDDEN)
}

#[derive(Deserialize)]
pub struct AccountQuery {
    sort: Option<String>,
    lang: Option<String>,
    changed: Option<String>,
}

/// `GET /account`.
pub async fn account(
    State(web): State<Web>,
    Client(client): Client,
    headers: HeaderMap,
    Query(query): Query<AccountQuery>,
) -> Response {
    let signed_in = match signed_in(&web, &headers, &client).await {
        Ok(s) => s,
        Err(response) => return response,
    };
    let extra = Extra {
        newest_first: Some(query.sort.as_deref() != Some("oldest")),
        explicit_lang: query.lang.as_deref(),
        notice: match query.changed.as_deref() {
            Some("password") => Some(&t::PASSWORD_CHANGED),
            Some("verified") => Some(&t::STEP_UP_DONE),
            _ => None,
        },
        ..Extra::default()
    };
    render(&web, &headers, signed_in, extra).await
}

#[derive(Deserialize)]
pub struct AccountForm {
    #[serde(default)]
    csrf: String,
    setting: Option<String>,
    code: Option<String>,
    lang: Option<String>,
    current: Option<String>,
    password: Option<String>,
    confirm: Option<String>,
}

/// `POST /account/mfa`: when to be asked for a second factor.
pub async fn set_mfa(
    State(web): State<Web>,
    AccountPost {
        signed_in,
        headers,
        form,
    }: AccountPost,
) -> Response {
    let Some(setting) = form.setting.as_deref().and_then(MfaSetting::parse) else {
        let extra = refused(&t::MFA_BELOW_MINIMUM, StatusCode::BAD_REQUEST);
        return render(&web, &headers, signed_in, extra).await;
    };
    let extra = match web
        .core
        .sign_in
        .set_mfa_setting(&signed_in.0, &signed_in.2, setting, Utc::now())
        .await
    {
        Ok(MfaChange::Saved) => Extra {
            notice: Some(&t::MFA_SAVED),
            ..Extra::default()
        },
        Ok(MfaChange::BelowMinimum) => refused(&t::MFA_BELOW_MINIMUM, StatusCode::FORBIDDEN),
        Ok(MfaChange::StepUpNeeded) => step_up_needed(),
        Err(e) => return unavailable(language(&headers, None), &e),
    };
    render(&web, &headers, signed_in, extra).await
}

/// `POST /account/totp`: start adding an authenticator app.
pub async fn start_totp(
    State(web): State<Web>,
    AccountPost {
        signed_in, headers, ..
    }: AccountPost,
) -> Response {
    match web
        .core
        .sign_in
        .start_totp_enrollment(&signed_in.0, &signed_in.2, Utc::now())
        .await
    {
        Ok(Some(enrollment)) => {
            let extra = Extra {
                enrollment: Some(enrollment),
                ..Extra::default()
            };
            render(&web, &headers, signed_in, extra).await
        }
        Ok(None) => render(&web, &headers, signed_in, step_up_needed()).await,
        Err(e) => unavailable(language(&headers, None), &e),
    }
}

fn code_outcome_extra(outcome: CodeOutcome, done: &'static t::Text) -> Extra<'static> {
    match outcome {
        CodeOutcome::Accepted | CodeOutcome::SignedIn(_) => Extra {
            notice: Some(done),
            ..Extra::default()
        },
        CodeOutcome::LockedOut(_) => refused(&t::LOCKED_OUT_SHORT, StatusCode::TOO_MANY_REQUESTS),
        CodeOutcome::Rejected | CodeOutcome::Expired => {
            refused(&t::BAD_CODE, StatusCode::UNAUTHORIZED)
        }
        CodeOutcome::StepUpNeeded => step_up_needed(),
    }
}

/// `POST /account/totp/confirm`: the first code from the new app.
pub async fn confirm_totp(
    State(web): State<Web>,
    AccountPost {
        signed_in,
        headers,
        form,
    }: AccountPost,
) -> Response {
    let now = Utc::now();
    if !matches!(
        web.core.sign_in.enrollment_open(&signed_in.0, now).await,
        Ok(true)
    ) {
        return expired_page(language(&headers, None), "/account");
    }
    let code = form.code.unwrap_or_default();
    match web
        .core
        .sign_in
        .confirm_account_totp(&signed_in.0, &signed_in.2, &code, now)
        .await
    {
        Ok(outcome) => {
            let extra = code_outcome_extra(outcome, &t::TOTP_ADDED);
            render(&web, &headers, signed_in, extra).await
        }
        Err(e) => unavailable(language(&headers, None), &e),
    }
}

/// `POST /account/totp/remove`: needs a current code from the app.
pub async fn remove_totp(
    State(web): State<Web>,
    AccountPost {
        signed_in,
        headers,
        form,
    }: AccountPost,
) -> Response {
    let code = form.code.unwrap_or_default();
    match web
        .core
        .sign_in
        .remove_totp(&signed_in.0, &signed_in.2, &code, Utc::now())
        .await
    {
        Ok(outcome) => {
            let extra = code_outcome_extra(outcome, &t::TOTP_REMOVED);
            render(&web, &headers, signed_in, extra).await
        }
        Err(e) => unavailable(language(&headers, None), &e),
    }
}

/// `POST /account/verify`: "confirm it's you", the password and a code of
/// the user's second factor.
pub async fn verify(
    State(web): State<Web>,
    AccountPost {
        signed_in,
        headers,
        form,
    }: AccountPost,
) -> Response {
    let password = Password::new(form.password.unwrap_or_default());
    let code = form.code.unwrap_or_default();
    let extra = match web
        .core
        .sign_in
        .step_up(&signed_in.0, &signed_in.2, &password, &code, Utc::now())
        .await
    {
        Ok(StepUpOutcome::Verified(secret)) => {
            return see_other("/account?changed=verified", &[session_cookie(&secret)]);
        }
        Ok(StepUpOutcome::Rejected) => refused(&t::STEP_UP_FAILED, StatusCode::UNAUTHORIZED),
        Ok(StepUpOutcome::LockedOut(_)) => {
            refused(&t::LOCKED_OUT_SHORT, StatusCode::TOO_MANY_REQUESTS)
        }
        Err(e) => return unavailable(language(&headers, None), &e),
    };
    render(&web, &headers, signed_in, extra).await
}

/// `POST /account/verify/send`: the emailed code a step-up asks for.
pub async fn send_verify_code(
    State(web): State<Web>,
    AccountPost {
        signed_in, headers, ..
    }: AccountPost,
) -> Response {
    match web
        .core
        .sign_in
        .send_step_up_code(&signed_in.0, &signed_in.2, Utc::now())
        .await
    {
        Ok(sent) => {
            let extra = if sent {
                Extra {
                    notice: Some(&t::STEP_UP_SENT),
                    ..Extra::default()
                }
            } else {
                refused(&t::STEP_UP_NOT_SENT, StatusCode::SERVICE_UNAVAILABLE)
            };
            render(&web, &headers, signed_in, extra).await
        }
        Err(e) => unavailable(language(&headers, None), &e),
    }
}

/// `POST /account/password`: the current password and a new one, after a
/// step-up; the user's other sessions and refresh tokens end.
pub async fn change_password(
    State(web): State<Web>,
    AccountPost {
        signed_in,
        headers,
        form,
    }: AccountPost,
) -> Response {
    let current = Password::new(form.current.unwrap_or_default());
    let new = form.password.unwrap_or_default();
    let confirm = form.confirm.unwrap_or_default();
    let outcome = web
        .core
        .sign_in
        .change_own_password(
            &signed_in.0,
            &signed_in.2,
            &current,
            (&new, &confirm),
            Utc::now(),
        )
        .await;
    let extra = match outcome {
        Ok(PasswordChange::Changed(secret)) => {
            return see_other("/account?changed=password", &[session_cookie(&secret)]);
        }
        Ok(PasswordChange::StepUpNeeded) => step_up_needed(),
        Ok(PasswordChange::WrongCurrent) => {
            refused(&t::WRONG_CURRENT_PASSWORD, StatusCode::UNAUTHORIZED)
        }
        Ok(PasswordChange::LockedOut(_)) => {
            refused(&t::LOCKED_OUT_SHORT, StatusCode::TOO_MANY_REQUESTS)
        }
        Ok(PasswordChange::Invalid(problem)) => {
            refused(t::new_password_problem(problem), StatusCode::BAD_REQUEST)
        }
        Err(e) => return unavailable(language(&headers, None), &e),
    };
    render(&web, &headers, signed_in, extra).await
}

/// `POST /account/language`: saved with the user, so every browser they
/// sign in on speaks it.
pub async fn set_language(
    State(web): State<Web>,
    AccountPost {
        signed_in, form, ..
    }: AccountPost,
) -> Response {
    let Some(lang) = form.lang.as_deref().and_then(Lang::parse) else {
        return see_other("/account", &[]);
    };
    if let Err(e) = web
        .core
        .sign_in
        .set_user_locale(&signed_in.2, lang.code(), Utc::now())
        .await
    {
        return unavailable(lang, &e);
    }
    see_other("/account", &[lang_cookie(lang)])
}
