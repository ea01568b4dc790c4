//! The sign-in steps' pages: the password, a new password after a
//! temporary one, the authenticator and emailed codes, the failure pages
//! (with "try again" where a device step can be tried again), and the page
//! `/authorize` shows when it will not serve a request.
//!
//! The device step's pages are in `device_step.rs` beside this file.

use std::fmt::Write as _;

use super::{alert, app_line, code_field, enrollment_block, esc, message};
use crate::api::https::i18n::{self as t, Lang, Text};
use crate::core::sso::{LoginFailure, TotpEnrollment};
use crate::domain::app::App;
use crate::domain::sign_in::DeviceAuthFailure;

pub fn password_form(
    lang: Lang,
    app: Option<&App>,
    request_id: &str,
    csrf: &str,
    email: &str,
    error: Option<&str>,
) -> String {
    format!(
        r#"{app}{error}<form method="post" action="/login">
<input type="hidden" name="req" value="{req}">
<input type="hidden" name="csrf" value="{csrf}">
<label for="email">{email_label}</label>
<input id="email" name="email" type="email" autocomplete="username" required value="{email}" autofocus>
<label for="password">{password_label}</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">{button}</button>
</form>"#,
        app = app_line(lang, app),
        error = error.map(alert).unwrap_or_default(),
        req = esc(request_id),
        csrf = esc(csrf),
        email_label = t::EMAIL.get(lang),
        email = esc(email),
        password_label = t::PASSWORD.get(lang),
        button = t::SIGN_IN_BUTTON.get(lang),
    )
}

pub fn change_password_form(
    lang: Lang,
    request_id: &str,
    csrf: &str,
    error: Option<&str>,
) -> String {
    format!(
        r#"<p>{intro}</p>{error}<form method="post" action="/login/password">
<input type="hidden" name="req" value="{req}">
<input type="hidden" name="csrf" value="{csrf}">
<label for="new-password">{new}</label>
<input id="new-password" name="password" type="password" autocomplete="new-password" minlength="12" required autofocus>
<label for="confirm-password">{confirm}</label>
<input id="confirm-password" name="confirm" type="password" autocomplete="new-password" minlength="12" required>
<button type="submit">{button}</button>
</form>"#,
        intro = t::CHANGE_PASSWORD_INTRO.get(lang),
        error = error.map(alert).unwrap_or_default(),
        req = esc(request_id),
        csrf = esc(csrf),
        new = t::NEW_PASSWORD.get(lang),
        confirm = t::CONFIRM_PASSWORD.get(lang),
        button = t::SAVE_PASSWORD.get(lang),
    )
}

/// The second-factor step: a TOTP code, with the enrollment first when
/// the user has no authenticator yet.
pub fn totp_form(
    lang: Lang,
    app: Option<&App>,
    request_id: &str,
    csrf: &str,
    enrollment: Option<&TotpEnrollment>,
    error: Option<&str>,
) -> String {
    let intro = match enrollment {
        Some(enrollment) => enrollment_block(lang, enrollment),
        None => format!("<p>{}</p>", t::TOTP_INTRO.get(lang)),
    };
    format!(
        r#"{app}{intro}{error}<form method="post" action="/login/code">
<input type="hidden" name="req" value="{req}">
<input type="hidden" name="csrf" value="{csrf}">
{field}
<button type="submit">{button}</button>
</form>"#,
        app = app_line(lang, app),
        error = error.map(alert).unwrap_or_default(),
        req = esc(request_id),
        csrf = esc(csrf),
        field = code_field(lang, "code", true),
        button = t::VERIFY_BUTTON.get(lang),
    )
}

/// The emailed-code step.
pub fn email_code_form(
    lang: Lang,
    app: Option<&App>,
    request_id: &str,
    csrf: &str,
    to: &str,
    error: Option<&str>,
) -> String {
    format!(
        r#"{app}<p>{intro} <strong>{to}</strong></p>{error}<form method="post" action="/login/code">
<input type="hidden" name="req" value="{req}">
<input type="hidden" name="csrf" value="{csrf}">
{field}
<button type="submit">{button}</button>
</form>
<form method="post" action="/login/code/resend">
<input type="hidden" name="req" value="{req}">
<input type="hidden" name="csrf" value="{csrf}">
<button type="submit" class="secondary">{resend}</button>
</form>"#,
        app = app_line(lang, app),
        intro = t::EMAIL_CODE_INTRO.get(lang),
        to = esc(to),
        error = error.map(alert).unwrap_or_default(),
        req = esc(request_id),
        csrf = esc(csrf),
        field = code_field(lang, "code", true),
        button = t::VERIFY_BUTTON.get(lang),
        resend = t::EMAIL_CODE_RESEND.get(lang),
    )
}

/// The title and text of a failure page.
pub fn failure_text(failure: &LoginFailure) -> (&'static Text, &'static Text) {
    match failure {
        LoginFailure::Expired => (&t::FAILED_EXPIRED_TITLE, &t::FAILED_EXPIRED),
        LoginFailure::SecondFactorUnavailable => (&t::FAILED_MFA_TITLE, &t::FAILED_MFA),
        LoginFailure::InteractionRequired => (&t::SIGN_IN_TITLE, &t::INTERACTION_REQUIRED),
        LoginFailure::NetworkDenied { .. } => (&t::FAILED_NETWORK_TITLE, &t::FAILED_NETWORK),
        LoginFailure::Device(device) => match device {
            DeviceAuthFailure::NoDevice => (&t::FAILED_NO_DEVICE_TITLE, &t::FAILED_NO_DEVICE),
            DeviceAuthFailure::NotAnswered => {
                (&t::FAILED_NOT_ANSWERED_TITLE, &t::FAILED_NOT_ANSWERED)
            }
            DeviceAuthFailure::DeviceLocked { .. } => (&t::FAILED_LOCKED_TITLE, &t::FAILED_LOCKED),
            DeviceAuthFailure::DeviceRetired { .. } => {
                (&t::FAILED_RETIRED_TITLE, &t::FAILED_RETIRED)
            }
            DeviceAuthFailure::NotCompliant { .. } => {
                (&t::FAILED_NOT_COMPLIANT_TITLE, &t::FAILED_NOT_COMPLIANT)
            }
            DeviceAuthFailure::OtherUser { .. } => {
                (&t::FAILED_OTHER_USER_TITLE, &t::FAILED_OTHER_USER)
            }
            DeviceAuthFailure::WrongNetwork { .. } => {
                (&t::FAILED_WRONG_NETWORK_TITLE, &t::FAILED_WRONG_NETWORK)
            }
            DeviceAuthFailure::BadSignature { .. } => {
                (&t::FAILED_BAD_SIGNATURE_TITLE, &t::FAILED_BAD_SIGNATURE)
            }
            DeviceAuthFailure::WrongNumber { .. } => {
                (&t::FAILED_WRONG_NUMBER_TITLE, &t::FAILED_WRONG_NUMBER)
            }
            DeviceAuthFailure::NotDelivered { .. } => {
                (&t::FAILED_NOT_DELIVERED_TITLE, &t::FAILED_NOT_DELIVERED)
            }
            DeviceAuthFailure::TooManyCodes => {
                (&t::FAILED_TOO_MANY_CODES_TITLE, &t::FAILED_TOO_MANY_CODES)
            }
            DeviceAuthFailure::TooManyRequests => (
                &t::FAILED_TOO_MANY_REQUESTS_TITLE,
                &t::FAILED_TOO_MANY_REQUESTS,
            ),
        },
        LoginFailure::EnrollmentNotAllowed => (&t::FAILED_ENROLLMENT_TITLE, &t::FAILED_ENROLLMENT),
    }
}

/// The body of a failure page; device failures offer to try again.
pub fn failure(lang: Lang, failure: &LoginFailure, request_id: &str, csrf: &str) -> String {
    let (_, text) = failure_text(failure);
    let mut body = format!(
        r#"<p class="error" role="alert" data-failure="{code}">{text}</p>"#,
        code = match failure {
            LoginFailure::Expired => "expired",
            LoginFailure::SecondFactorUnavailable => "second_factor_unavailable",
            LoginFailure::InteractionRequired => "interaction_required",
            LoginFailure::NetworkDenied { .. } => "network_denied",
            LoginFailure::EnrollmentNotAllowed => "enrollment_not_allowed",
            LoginFailure::Device(f) => f.code(),
        },
        text = text.get(lang)
    );
    if let LoginFailure::NetworkDenied { ip } = failure {
        let _ = write!(
            body,
            r#"<p>{}: <span class="ip">{}</span></p>"#,
            t::HISTORY_IP.get(lang),
            esc(ip)
        );
    }
    if let LoginFailure::Device(device) = failure {
        let name = match device {
            DeviceAuthFailure::DeviceLocked { device }
            | DeviceAuthFailure::DeviceRetired { device }
            | DeviceAuthFailure::NotCompliant { device, .. }
            | DeviceAuthFailure::OtherUser { device }
            | DeviceAuthFailure::WrongNetwork { device }
            | DeviceAuthFailure::BadSignature { device }
            | DeviceAuthFailure::WrongNumber { device }
            | DeviceAuthFailure::NotDelivered { device } => Some(device).filter(|d| !d.is_empty()),
            DeviceAuthFailure::NoDevice
            | DeviceAuthFailure::NotAnswered
            | DeviceAuthFailure::TooManyCodes
            | DeviceAuthFailure::TooManyRequests => None,
        };
        if let Some(name) = name {
            let _ = write!(
                body,
                r#"<p>{}: <span class="device">{}</span></p>"#,
                t::DEVICE_LABEL.get(lang),
                esc(name)
            );
        }
        if let DeviceAuthFailure::NotCompliant { checks, .. } = device {
            body.push_str(r#"<ul class="checks">"#);
            for check in checks {
                let _ = write!(
                    body,
                    r#"<li data-check="{}">{}</li>"#,
                    esc(&check.check),
                    esc(&check.detail)
                );
            }
            body.push_str("</ul>");
        }
        if !matches!(
            device,
            DeviceAuthFailure::NoDevice | DeviceAuthFailure::TooManyRequests
        ) {
            let _ = write!(
                body,
                r#"<form method="post" action="/login/device">
<input type="hidden" name="req" value="{}">
<input type="hidden" name="csrf" value="{}">
<button type="submit">{}</button>
</form>"#,
                esc(request_id),
                esc(csrf),
                t::TRY_AGAIN.get(lang)
            );
        }
    }
    body
}

/// The page `/authorize` shows when it will not serve a request: the
/// reason, and its code for the client's developer.
pub fn refused_request(lang: Lang, text: &Text, code: &str) -> String {
    let mut body = message(lang, text);
    body.push_str(&format!(
        r#"<p class="muted" data-error="{code}">{code}</p>"#
    ));
    body
}
