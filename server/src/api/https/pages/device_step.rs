//! The device step's pages: choosing a device, "authenticate with this
//! device" with its wait and the code field, what a redemption link shows
//! in the browser that started the sign-in and in any other browser, and
//! the mobile listener's refusal of a missing or refused certificate.
//!
//! The failure pages a device step ends in are in `login.rs` beside this
//! file; the waiting page's script is in `assets.rs`.

use std::fmt::Write as _;

use super::{alert, app_line, esc, q};
use crate::api::https::i18n::{self as t, Lang, Text};
use crate::core::sso::{DeviceChoice, SignInContext};
use crate::domain::app::{App, DevicePolicy};
use crate::domain::device::DeviceState;
use crate::domain::sign_in::DeviceAuthTxn;

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
                    txn = q(txn.id.as_str()),
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
        txn = esc(txn.id.as_str()),
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
pub fn other_browser(lang: Lang, context: &SignInContext, support_contact: &str) -> String {
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

/// The mobile listener's refusal: no device certificate, or one the
/// sign-in does not accept.
pub fn no_device_certificate(lang: Lang, text: &Text) -> String {
    format!(
        r#"<p class="error" role="alert" data-failure="no_device_certificate">{}</p>"#,
        text.get(lang)
    )
}
