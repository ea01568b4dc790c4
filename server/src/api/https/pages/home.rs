//! The home page (the signed-in user's apps, the account link and the
//! sign-out button) and the form that asks to confirm a sign-out.

use std::fmt::Write as _;

use super::{esc, message};
use crate::api::https::i18n::{self as t, Lang};
use crate::domain::app::App;

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

/// "Sign out": the form a sign-out without this session's ID token shows,
/// carrying the relying party's parameters (those it sent) into the POST.
pub fn sign_out_form(lang: Lang, csrf: &str, carried: &[(&str, Option<&str>)]) -> String {
    let mut body = format!(
        r#"<form method="post" action="/logout"><input type="hidden" name="csrf" value="{}">"#,
        esc(csrf)
    );
    for (name, value) in carried {
        if let Some(value) = value {
            body.push_str(&format!(
                r#"<input type="hidden" name="{name}" value="{}">"#,
                esc(value)
            ));
        }
    }
    body.push_str(&format!(
        r#"<button type="submit">{}</button></form>"#,
        t::SIGN_OUT.get(lang)
    ));
    body
}
