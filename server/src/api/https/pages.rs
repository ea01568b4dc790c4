//! Server-rendered sign-in pages: plain HTML with labelled fields, one
//! small stylesheet and one small script (the device-auth wait). Every
//! value from a user, a device or a client is escaped.

use std::fmt::Write as _;

use super::i18n::{self as t, Lang, Text};
use crate::core::model::DevicePolicy;
use crate::core::model::User;
use crate::core::model::{App, DeviceState};
use crate::core::sso::{
    DeviceAuthFailure, DeviceAuthTxn, DeviceChoice, HistoryRow, LoginFailure, MfaSetting,
    SecondFactorView, StepUpFactor, TotpEnrollment,
};

mod account;

pub use account::*;

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query value.
pub fn q(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The page frame. `switch` is this page's URL with `lang=` for the other
/// language.
pub fn layout(lang: Lang, title: &Text, body: &str, switch: &str, wide: bool) -> String {
    let other = lang.other();
    format!(
        r##"<!doctype html>
<html lang="{code}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title} – {product}</title>
<link rel="stylesheet" href="/static/latchkey.css">
</head>
<body>
<a class="skip" href="#main">{skip}</a>
<header><span class="brand">{product}</span> <a class="lang" href="{switch}" hreflang="{other_code}" lang="{other_code}">{other_name}</a></header>
<main id="main"{wide}>
<h1>{title}</h1>
{body}
</main>
</body>
</html>
"##,
        code = lang.code(),
        title = title.get(lang),
        product = t::PRODUCT.get(lang),
        skip = t::SKIP_TO_CONTENT.get(lang),
        switch = esc(switch),
        other_code = other.code(),
        other_name = other.name(),
        wide = if wide { r#" class="wide""# } else { "" },
    )
}

fn app_line(lang: Lang, app: Option<&App>) -> String {
    match app {
        Some(app) => format!(
            r#"<p class="app">{} <strong>{}</strong></p>"#,
            t::SIGN_IN_TO.get(lang),
            esc(&app.name)
        ),
        None => String::new(),
    }
}

fn alert(message: &str) -> String {
    format!(r#"<p class="error" role="alert">{}</p>"#, esc(message))
}

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

fn device_line(device: &DeviceChoice) -> String {
    let detail = [device.platform.as_str(), device.model.as_str()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" · ");
    let state = if device.state == DeviceState::Active {
        String::new()
    } else {
        format!(" ({})", device.state.as_str())
    };
    format!(
        r#"<span class="device">{}</span> <span class="muted">{}{}</span>"#,
        esc(&device.hostname),
        esc(&detail),
        esc(&state)
    )
}

pub fn choose_device(
    lang: Lang,
    app: Option<&App>,
    request_id: &str,
    csrf: &str,
    devices: &[DeviceChoice],
) -> String {
    let mut body = app_line(lang, app);
    let _ = write!(
        body,
        "<p>{}</p><ul class=\"devices\">",
        t::CHOOSE_DEVICE_INTRO.get(lang)
    );
    for device in devices {
        let _ = write!(
            body,
            r#"<li><form method="post" action="/login/device">
<input type="hidden" name="req" value="{req}">
<input type="hidden" name="csrf" value="{csrf}">
<input type="hidden" name="device" value="{id}">
{line}
<button type="submit" aria-label="{button}: {host}">{button}</button>
</form></li>"#,
            req = esc(request_id),
            csrf = esc(csrf),
            id = esc(device.id.as_str()),
            line = device_line(device),
            button = t::USE_THIS_DEVICE.get(lang),
            host = esc(&device.hostname),
        );
    }
    body.push_str("</ul>");
    body
}

/// What the device step's page shows.
pub struct DeviceAuthPage<'a> {
    pub app: Option<&'a App>,
    pub request_id: &'a str,
    pub txn: &'a DeviceAuthTxn,
    pub devices: &'a [DeviceChoice],
    pub device_url: &'a str,
    pub csrf: &'a str,
    pub error: Option<&'a str>,
}

pub fn device_auth(lang: Lang, view: &DeviceAuthPage<'_>) -> String {
    let DeviceAuthPage {
        app,
        request_id,
        txn,
        devices,
        device_url,
        csrf,
        error,
    } = *view;
    let next = format!("/login?req={}", q(request_id));
    let mut body = app_line(lang, app);
    if let Some(error) = error {
        body.push_str(&alert(error));
    }
    if let [device] = devices {
        let _ = write!(
            body,
            r#"<p>{}: {}</p>"#,
            t::DEVICE_LABEL.get(lang),
            device_line(device)
        );
    }
    match txn.mode {
        DevicePolicy::Confirm => {
            let _ = write!(
                body,
                r#"<p>{}</p><p class="code" aria-label="number" data-number="{number}">{number}</p>"#,
                t::DEVICE_AUTH_CONFIRM.get(lang),
                number = esc(&txn.short_code)
            );
        }
        _ => {
            if txn.awaiting_proof() {
                let _ = write!(
                    body,
                    r#"<p class="notice" role="status" data-answered="1">{}</p>"#,
                    t::DEVICE_ANSWERED.get(lang)
                );
            } else {
                let _ = write!(
                    body,
                    r#"<p>{intro}</p><p><a id="device-link" class="button" href="latchkey://device-auth?txn={txn}">{button}</a></p><p class="muted">{mobile} <a id="mobile-link" href="{device_url}/device-auth?txn={txn}">{mobile_link}</a></p>"#,
                    intro = t::DEVICE_AUTH_BOUND.get(lang),
                    txn = q(&txn.id),
                    button = t::DEVICE_AUTH_BUTTON.get(lang),
                    mobile = t::DEVICE_AUTH_MOBILE.get(lang),
                    device_url = esc(device_url),
                    mobile_link = t::DEVICE_AUTH_MOBILE_LINK.get(lang),
                );
            }
            // For sign-ins the agent's link cannot reach (a desktop app's
            // sign-in window, another browser): the code the device shows.
            let _ = write!(
                body,
                r#"<form method="post" action="/login/device/code" class="device-code">
<input type="hidden" name="req" value="{req}">
<input type="hidden" name="csrf" value="{csrf}">
<label for="device-code">{label}</label>
<input id="device-code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" maxlength="24" required>
<button type="submit" class="secondary">{button}</button>
</form>"#,
                req = esc(request_id),
                csrf = esc(csrf),
                label = t::DEVICE_CODE_LABEL.get(lang),
                button = t::VERIFY_BUTTON.get(lang),
            );
        }
    }
    let _ = write!(
        body,
        r#"<div id="device-auth" data-txn="{txn}" data-next="{next}">
<p id="status" role="status" aria-live="polite">{waiting}</p>
<p class="muted">{expires} <time datetime="{expires_at}">{expires_local}</time></p>
<form method="get" action="/login"><input type="hidden" name="req" value="{req}"><button type="submit" class="secondary">{continue_label}</button></form>
</div>
<script src="/static/device-auth.js" defer></script>"#,
        txn = esc(&txn.id),
        next = esc(&next),
        waiting = t::DEVICE_WAITING.get(lang),
        expires = t::DEVICE_EXPIRES.get(lang),
        expires_at = txn.expires_at.to_rfc3339(),
        expires_local = txn.expires_at.format("%H:%M:%S UTC"),
        req = esc(request_id),
        continue_label = t::DEVICE_CONTINUE.get(lang),
    );
    body
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

/// A QR code for `text` as an `<img>` with an SVG data URL (the page's
/// content policy allows `data:` images and nothing inline).
pub fn qr_image(lang: Lang, text: &str) -> String {
    use base64::Engine;
    let Ok(code) = qrcode::QrCode::new(text.as_bytes()) else {
        return String::new();
    };
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .build();
    format!(
        r#"<img class="qr" width="200" height="200" alt="{}" src="data:image/svg+xml;base64,{}">"#,
        t::TOTP_QR_ALT.get(lang),
        base64::engine::general_purpose::STANDARD.encode(svg)
    )
}

/// The authenticator enrollment block: QR code, then the key in groups of
/// four for typing.
fn enrollment_block(lang: Lang, enrollment: &TotpEnrollment) -> String {
    let grouped: Vec<String> = enrollment
        .secret
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    format!(
        r#"<p>{intro}</p><p class="center">{qr}</p><p>{manual}</p><p class="secret" data-secret="{secret}"><code>{grouped}</code></p>"#,
        intro = t::TOTP_ENROLL_INTRO.get(lang),
        qr = qr_image(lang, &enrollment.uri),
        manual = t::TOTP_MANUAL.get(lang),
        secret = esc(&enrollment.secret),
        grouped = esc(&grouped.join(" ")),
    )
}

fn code_field(lang: Lang, id: &str, autofocus: bool) -> String {
    format!(
        r#"<label for="{id}">{label}</label>
<input id="{id}" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{{6}}" maxlength="6" required{focus}>"#,
        label = t::CODE_LABEL.get(lang),
        focus = if autofocus { " autofocus" } else { "" },
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

/// The page a redemption link shows in the browser that started the
/// sign-in. When the sign-in's waiting tab is open in this browser, it
/// goes on there and this tab closes (or says to return there); when it is
/// not (the link opened in the same tab), the sign-in goes on here.
pub fn proof_delivered(lang: Lang, request_id: &str, txn_id: &str) -> String {
    format!(
        r#"<div id="delivered" data-txn="{txn}" data-next="/login?req={req}">
<p class="notice" role="status" data-delivered="1">{text}</p>
<p><a class="button secondary" href="/login?req={req}">{continue_label}</a></p>
</div>
<script src="/static/device-auth.js" defer></script>"#,
        text = t::PROOF_DELIVERED.get(lang),
        txn = esc(txn_id),
        req = q(request_id),
        continue_label = t::DEVICE_CONTINUE.get(lang),
    )
}

/// The page a redemption link shows in a browser without the sign-in it
/// belongs to: whose sign-in it was, what to do if it was the user's own
/// (a desktop app's window: type the device's code there), and what to do
/// if it was not.
pub fn other_browser(
    lang: Lang,
    context: &crate::core::sso::SignInContext,
    support_contact: &str,
) -> String {
    let contact = if support_contact.is_empty() {
        t::SUPPORT_DEFAULT.get(lang).to_owned()
    } else {
        support_contact.to_owned()
    };
    format!(
        r#"<p class="error" role="alert" data-failure="other_browser">{intro}</p>
<dl class="sign-in-context">
<dt>{app_label}</dt><dd class="app">{app}</dd>
<dt>{browser_label}</dt><dd class="browser">{browser}</dd>
<dt>{ip_label}</dt><dd class="ip">{ip}</dd>
<dt>{time_label}</dt><dd><time datetime="{at}">{at_text}</time></dd>
</dl>
<h2>{if_you}</h2><p>{if_you_text}</p>
<h2>{if_not}</h2><p class="warning" data-warning="password">{if_not_text} <strong class="contact">{contact}</strong></p>"#,
        intro = t::OTHER_BROWSER_INTRO.get(lang),
        app_label = t::HISTORY_APP.get(lang),
        app = esc(&context.app_name),
        browser_label = t::HISTORY_BROWSER.get(lang),
        browser = esc(&context.browser),
        ip_label = t::HISTORY_IP.get(lang),
        ip = esc(&context.ip),
        time_label = t::HISTORY_TIME.get(lang),
        at = context.started_at.to_rfc3339(),
        at_text = context.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
        if_you = t::OTHER_BROWSER_IF_YOU_TITLE.get(lang),
        if_you_text = t::OTHER_BROWSER_IF_YOU.get(lang),
        if_not = t::OTHER_BROWSER_IF_NOT_TITLE.get(lang),
        if_not_text = t::OTHER_BROWSER_IF_NOT.get(lang),
        contact = esc(&contact),
    )
}

pub fn message(lang: Lang, text: &Text) -> String {
    format!("<p>{}</p>", text.get(lang))
}

pub fn home(lang: Lang, signed_in_as: Option<&str>, apps: &[App], csrf: &str) -> String {
    let Some(email) = signed_in_as else {
        return message(lang, &t::HOME_SIGNED_OUT);
    };
    let mut body = format!(r#"<p class="muted">{}</p><ul class="apps">"#, esc(email));
    for app in apps {
        // IdP-initiated access opens the app's first redirect URI's origin.
        if let Some(origin) = app
            .redirect_uris
            .first()
            .and_then(|u| url::Url::parse(u).ok())
            .map(|u| u.origin().ascii_serialization())
        {
            let _ = write!(
                body,
                r#"<li><a href="{}">{}</a></li>"#,
                esc(&origin),
                esc(&app.name)
            );
        }
    }
    let _ = write!(
        body,
        r#"</ul><p><a href="/account">{}</a></p>"#,
        t::ACCOUNT_LINK.get(lang)
    );
    let _ = write!(
        body,
        r#"<form method="post" action="/logout"><input type="hidden" name="csrf" value="{}"><button type="submit" class="secondary">{}</button></form>"#,
        esc(csrf),
        t::SIGN_OUT.get(lang)
    );
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        let html = password_form(Lang::Ja, None, "r\"1", "c", "<x>", Some("<b>"));
        assert!(html.contains("value=\"r&quot;1\""));
        assert!(html.contains("&lt;x&gt;"));
        assert!(!html.contains("<b>"));
        assert!(html.contains("メールアドレス"));
    }

    #[test]
    fn languages_follow_accept_language() {
        assert_eq!(Lang::negotiate("ja-JP,ja;q=0.9,en;q=0.8"), Lang::Ja);
        assert_eq!(Lang::negotiate("en-US,en;q=0.9,ja;q=0.8"), Lang::En);
        assert_eq!(Lang::negotiate("fr-FR, ja;q=0.5"), Lang::Ja);
        assert_eq!(Lang::negotiate("fr-FR"), Lang::En);
        assert_eq!(Lang::negotiate(""), Lang::En);
        assert_eq!(Lang::negotiate("ja;q=0"), Lang::En);
    }
}
