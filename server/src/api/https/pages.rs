//! Server-rendered sign-in pages: plain HTML with labelled fields, one
//! small stylesheet and one small script (the device-auth wait). Every
//! value from a user, a device or a client is escaped.

use std::fmt::Write as _;

use super::i18n::{self as t, Lang, Text};
use crate::core::model::DevicePolicy;
use crate::core::model::{App, DeviceState};
use crate::core::sso::{DeviceAuthFailure, DeviceAuthTxn, DeviceChoice, LoginFailure};

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
pub fn layout(lang: Lang, title: &Text, body: &str, switch: &str) -> String {
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
<main id="main">
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

pub fn device_auth(
    lang: Lang,
    app: Option<&App>,
    request_id: &str,
    txn: &DeviceAuthTxn,
    devices: &[DeviceChoice],
) -> String {
    let next = format!("/login?req={}", q(request_id));
    let mut body = app_line(lang, app);
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
                r#"<p>{}</p><p class="code" aria-label="code">{}</p>"#,
                t::DEVICE_AUTH_CONFIRM.get(lang),
                esc(&txn.short_code)
            );
        }
        _ => {
            let _ = write!(
                body,
                r#"<p>{intro}</p><p><a id="device-link" class="button" href="latchkey://device-auth?txn={txn}">{button}</a></p>"#,
                intro = t::DEVICE_AUTH_BOUND.get(lang),
                txn = q(&txn.id),
                button = t::DEVICE_AUTH_BUTTON.get(lang),
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
        },
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
            LoginFailure::Device(f) => f.code(),
        },
        text = text.get(lang)
    );
    if let LoginFailure::Device(device) = failure {
        let name = match device {
            DeviceAuthFailure::DeviceLocked { device }
            | DeviceAuthFailure::DeviceRetired { device }
            | DeviceAuthFailure::NotCompliant { device, .. }
            | DeviceAuthFailure::OtherUser { device }
            | DeviceAuthFailure::WrongNetwork { device }
            | DeviceAuthFailure::BadSignature { device } => Some(device),
            DeviceAuthFailure::NoDevice | DeviceAuthFailure::NotAnswered => None,
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
        if !matches!(device, DeviceAuthFailure::NoDevice) {
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
        r#"</ul><form method="post" action="/logout"><input type="hidden" name="csrf" value="{}"><button type="submit" class="secondary">{}</button></form>"#,
        esc(csrf),
        t::SIGN_OUT.get(lang)
    );
    body
}

pub const STYLESHEET: &str = r#":root{color-scheme:light dark;--fg:#1b1f24;--bg:#f6f7f9;--card:#fff;--accent:#0b5cad;--err:#a4161a;--muted:#59636e}
@media (prefers-color-scheme:dark){:root{--fg:#e6e8eb;--bg:#111418;--card:#1b2027;--accent:#6cb0ff;--err:#ff8a8a;--muted:#9aa4ae}}
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI","Hiragino Sans","Noto Sans JP",Meiryo,sans-serif;color:var(--fg);background:var(--bg)}
header{display:flex;justify-content:space-between;align-items:center;max-width:30rem;margin:0 auto;padding:1rem}
.brand{font-weight:700}
main{max-width:30rem;margin:0 auto 2rem;padding:1.5rem;background:var(--card);border-radius:.75rem}
h1{font-size:1.4rem;margin-top:0}
label{display:block;margin:1rem 0 .25rem;font-weight:600}
input[type=email],input[type=password],input[type=text]{width:100%;padding:.7rem;font-size:1rem;border:1px solid var(--muted);border-radius:.4rem;background:transparent;color:inherit}
button,.button{display:inline-block;margin-top:1rem;padding:.7rem 1.2rem;font-size:1rem;border:0;border-radius:.4rem;background:var(--accent);color:#fff;text-decoration:none;cursor:pointer}
button.secondary{background:transparent;color:var(--accent);border:1px solid var(--accent)}
:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
.error{color:var(--err);font-weight:600}
.muted{color:var(--muted)}
.code{font-size:2rem;letter-spacing:.3em;font-weight:700}
.devices,.apps,.checks{padding-left:1.2rem}
.devices li{margin:.75rem 0}
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem}
"#;

pub const DEVICE_AUTH_SCRIPT: &str = r#"(function () {
  var root = document.getElementById('device-auth');
  if (!root) return;
  var txn = root.getAttribute('data-txn');
  var next = root.getAttribute('data-next');
  function poll() {
    fetch('/login/wait?txn=' + encodeURIComponent(txn), { credentials: 'same-origin', cache: 'no-store' })
      .then(function (r) { if (!r.ok) throw new Error(String(r.status)); return r.json(); })
      .then(function (j) { if (j.status === 'pending') { poll(); } else { window.location.assign(next); } })
      .catch(function () { setTimeout(poll, 2000); });
  }
  poll();
})();
"#;

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
