//! Server-rendered pages: plain HTML with labelled fields. This module
//! holds the frame every page shares (`layout`, with the language switch)
//! and the pieces several pages use (escaping, the app line, alerts, the
//! one-time code field, the authenticator enrollment block); each group of
//! pages has its own file in `pages/`. Every value from a user, a device
//! or a client is escaped.
//!
//! No page here reads a request, a session or the database: each takes
//! what it shows as arguments. The stylesheet and script are in
//! `assets.rs`, the response headers in `frame.rs`.

use super::i18n::{self as t, Lang, Text};
use crate::core::sso::TotpEnrollment;
use crate::domain::app::App;

mod account;
mod device_step;
mod home;
mod login;

pub use account::*;
pub use device_step::*;
pub use home::*;
pub use login::*;

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

pub fn message(lang: Lang, text: &Text) -> String {
    format!("<p>{}</p>", text.get(lang))
}

fn code_field(lang: Lang, id: &str, autofocus: bool) -> String {
    format!(
        r#"<label for="{id}">{label}</label>
<input id="{id}" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{{6}}" maxlength="6" required{focus}>"#,
        label = t::CODE_LABEL.get(lang),
        focus = if autofocus { " autofocus" } else { "" },
    )
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
}
