//! The account page: second factors, step-up, password, language and the
//! sign-in history.

use std::fmt::Write as _;

use super::{alert, code_field, enrollment_block, esc};
use crate::api::https::i18n::{self as t, Lang};
use crate::core::sso::{HistoryRow, MfaSetting, SecondFactorView, StepUpFactor, TotpEnrollment};
use crate::domain::user::User;

/// What the account page shows besides the user: their second factors,
/// the enrollment in progress, a notice, and the history.
pub struct AccountPage<'a> {
    pub user: &'a User,
    /// `None` while the session has not passed the user's second factor:
    /// the page shows only the step-up form.
    pub factors: Option<&'a SecondFactorView>,
    pub enrollment: Option<&'a TotpEnrollment>,
    pub notice: Option<&'a str>,
    pub error: Option<&'a str>,
    pub history: &'a [HistoryRow],
    pub newest_first: bool,
    pub csrf: &'a str,
    /// Whether protections may be changed now (a recent step-up).
    pub stepped_up: bool,
    pub step_up_factor: StepUpFactor,
}

/// "Confirm it's you": the password and a code of the user's factor.
fn step_up_form(lang: Lang, factor: StepUpFactor, hidden: &str) -> String {
    if factor == StepUpFactor::None {
        // Nothing but the password to ask for, and a password alone never
        // changes protections: the admin issues a temporary password.
        return format!(
            r#"<section id="step-up" data-step-up="admin"><h2>{}</h2><p>{}</p></section>"#,
            t::STEP_UP_HEADING.get(lang),
            t::STEP_UP_ADMIN.get(lang)
        );
    }
    let email = factor == StepUpFactor::Email;
    let intro = if email {
        &t::STEP_UP_INTRO_EMAIL
    } else {
        &t::STEP_UP_INTRO_TOTP
    };
    let code = code_field(lang, "step-up-code", false);
    let send = if email {
        format!(
            r#"<form method="post" action="/account/verify/send">{hidden}<button type="submit" class="secondary">{}</button></form>"#,
            t::STEP_UP_SEND.get(lang)
        )
    } else {
        String::new()
    };
    format!(
        r#"<section id="step-up" data-step-up="{factor}"><h2>{heading}</h2><p>{intro}</p>
<form method="post" action="/account/verify">{hidden}
<label for="step-up-password">{password}</label>
<input id="step-up-password" name="password" type="password" autocomplete="current-password" required>
{code}<button type="submit">{button}</button></form>{send}</section>"#,
        factor = if email { "email" } else { "totp" },
        heading = t::STEP_UP_HEADING.get(lang),
        intro = intro.get(lang),
        password = t::PASSWORD.get(lang),
        button = t::STEP_UP_BUTTON.get(lang),
    )
}

pub fn account(lang: Lang, view: &AccountPage<'_>) -> String {
    let csrf = esc(view.csrf);
    let hidden = format!(r#"<input type="hidden" name="csrf" value="{csrf}">"#);
    let mut body = format!(
        r#"<p class="muted">{} &lt;{}&gt;</p>"#,
        esc(&view.user.name),
        esc(&view.user.email)
    );
    if let Some(notice) = view.notice {
        let _ = write!(
            body,
            r#"<p class="notice" role="status">{}</p>"#,
            esc(notice)
        );
    }
    if let Some(error) = view.error {
        body.push_str(&alert(error));
    }
    let Some(factors) = view.factors else {
        let _ = write!(
            body,
            r#"<p data-account="locked">{}</p>{}"#,
            t::STEP_UP_ACCOUNT.get(lang),
            step_up_form(lang, view.step_up_factor, &hidden)
        );
        return body;
    };
    if !view.stepped_up {
        body.push_str(&step_up_form(lang, view.step_up_factor, &hidden));
    }
    // Second factor.
    let _ = write!(body, "<h2>{}</h2>", t::MFA_HEADING.get(lang));
    if let Some(enrollment) = view.enrollment {
        let _ = write!(
            body,
            r#"{block}<form method="post" action="/account/totp/confirm">{hidden}{field}<button type="submit">{button}</button></form>"#,
            block = enrollment_block(lang, enrollment),
            field = code_field(lang, "code", true),
            button = t::VERIFY_BUTTON.get(lang),
        );
    } else if factors.totp_enrolled {
        let _ = write!(
            body,
            r#"<p data-totp="enrolled">{enrolled}</p><form method="post" action="/account/totp/remove">{hidden}<p class="muted">{hint}</p>{field}<button type="submit" class="secondary">{remove}</button></form>"#,
            enrolled = t::TOTP_ENROLLED.get(lang),
            hint = t::TOTP_REMOVE_HINT.get(lang),
            field = code_field(lang, "remove-code", false),
            remove = t::TOTP_REMOVE.get(lang),
        );
    } else {
        let _ = write!(
            body,
            r#"<p data-totp="none">{none}</p><form method="post" action="/account/totp">{hidden}<button type="submit">{add}</button></form>"#,
            none = t::TOTP_NOT_ENROLLED.get(lang),
            add = t::TOTP_ADD.get(lang),
        );
    }
    if factors.email_available {
        let _ = write!(
            body,
            r#"<p class="muted">{}</p>"#,
            t::EMAIL_FACTOR_AVAILABLE.get(lang)
        );
    }
    let _ = write!(
        body,
        r#"<form method="post" action="/account/mfa">{hidden}<fieldset><legend>{when}</legend>"#,
        when = t::MFA_WHEN.get(lang)
    );
    for setting in MfaSetting::ALL {
        let label = match setting {
            MfaSetting::Always => &t::MFA_ALWAYS,
            MfaSetting::Risk => &t::MFA_RISK,
            MfaSetting::Off => &t::MFA_OFF,
        };
        let allowed = setting >= factors.minimum;
        let _ = write!(
            body,
            r#"<label class="choice"><input type="radio" name="setting" value="{value}"{checked}{disabled}> {label}</label>"#,
            value = setting.as_str(),
            checked = if setting == factors.setting {
                " checked"
            } else {
                ""
            },
            disabled = if allowed { "" } else { " disabled" },
            label = label.get(lang),
        );
    }
    let _ = write!(
        body,
        r#"</fieldset><button type="submit">{}</button></form>"#,
        t::MFA_SAVE.get(lang)
    );
    // Password.
    let _ = write!(
        body,
        r#"<h2>{heading}</h2><form method="post" action="/account/password">{hidden}
<label for="current-password">{current}</label>
<input id="current-password" name="current" type="password" autocomplete="current-password" required>
<label for="new-password">{new}</label>
<input id="new-password" name="password" type="password" autocomplete="new-password" minlength="12" required>
<label for="confirm-password">{confirm}</label>
<input id="confirm-password" name="confirm" type="password" autocomplete="new-password" minlength="12" required>
<button type="submit">{save}</button></form>"#,
        heading = t::PASSWORD_HEADING.get(lang),
        current = t::CURRENT_PASSWORD.get(lang),
        new = t::NEW_PASSWORD.get(lang),
        confirm = t::CONFIRM_PASSWORD.get(lang),
        save = t::SAVE_PASSWORD.get(lang),
    );
    // Language.
    let _ = write!(
        body,
        r#"<h2>{heading}</h2><form method="post" action="/account/language">{hidden}<input type="hidden" name="lang" value="{other}"><button type="submit" class="secondary" lang="{other}">{other_name}</button></form>"#,
        heading = t::LANGUAGE_HEADING.get(lang),
        other = lang.other().code(),
        other_name = lang.other().name(),
    );
    // History.
    let (sort_label, sort_value) = if view.newest_first {
        (t::HISTORY_SORT_OLDEST.get(lang), "oldest")
    } else {
        (t::HISTORY_SORT_NEWEST.get(lang), "newest")
    };
    let _ = write!(
        body,
        r#"<h2 id="history">{heading}</h2>"#,
        heading = t::HISTORY_HEADING.get(lang)
    );
    if view.history.is_empty() {
        let _ = write!(body, "<p>{}</p>", t::HISTORY_EMPTY.get(lang));
        return body;
    }
    let _ = write!(
        body,
        r##"<div class="scroll"><table class="history" data-order="{order}"><thead><tr>
<th scope="col" aria-sort="{aria}"><a href="/account?sort={sort_value}#history">{time} {arrow}</a><span class="sr">{sort_label}</span></th>
<th scope="col">{ip}</th><th scope="col">{browser}</th><th scope="col">{app}</th><th scope="col">{device}</th><th scope="col">{method}</th><th scope="col">{result}</th>
</tr></thead><tbody>"##,
        order = if view.newest_first {
            "newest"
        } else {
            "oldest"
        },
        aria = if view.newest_first {
            "descending"
        } else {
            "ascending"
        },
        time = t::HISTORY_TIME.get(lang),
        arrow = if view.newest_first { "↓" } else { "↑" },
        ip = t::HISTORY_IP.get(lang),
        browser = t::HISTORY_BROWSER.get(lang),
        app = t::HISTORY_APP.get(lang),
        device = t::DEVICE_LABEL.get(lang),
        method = t::HISTORY_METHOD.get(lang),
        result = t::HISTORY_RESULT.get(lang),
    );
    for row in view.history {
        let result = if row.ok {
            t::RESULT_OK.get(lang).to_owned()
        } else {
            match &row.reason {
                Some(reason) => format!("{} ({reason})", t::RESULT_FAILED.get(lang)),
                None => t::RESULT_FAILED.get(lang).to_owned(),
            }
        };
        let _ = write!(
            body,
            r#"<tr class="{class}"><td><time datetime="{iso}">{when}</time></td><td>{ip}</td><td>{browser}</td><td>{app}</td><td>{device}</td><td>{method}</td><td>{result}</td></tr>"#,
            class = if row.ok { "ok" } else { "failed" },
            iso = row.at.to_rfc3339(),
            when = row.at.format("%Y-%m-%d %H:%M:%S"),
            ip = esc(&row.ip),
            browser = esc(&latchkey_proto::text::browser_summary(&row.user_agent)),
            app = esc(row.app.as_deref().unwrap_or("–")),
            device = esc(row.device.as_deref().unwrap_or("–")),
            method = esc(&row.method),
            result = esc(&result),
        );
    }
    body.push_str("</tbody></table></div>");
    body
}
