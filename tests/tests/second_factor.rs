//! Second factors end to end: an app that requires TOTP has the user
//! enroll an authenticator (QR code and key on the page) and then accepts
//! each code once; an app that requires an emailed code sends it through a
//! real SMTP exchange; the account page manages both and lists the history.

// A test: a panic here is a failed test.
#![allow(clippy::expect_used, clippy::indexing_slicing, clippy::unwrap_used)]

use std::sync::Arc;

use anyhow::{Context, Result};
use base64::Engine;
use chrono::{Duration, Utc};
use latchkey_tests::System;
use latchkey_tests::login::{self, RP_CALLBACK, query_param, token_request};
use latchkey_tests::smtp::SmtpSink;
use latchkey_tests::web::{Browser, WebResponse};
use latchkeyd::config::FileSmtp;
use latchkeyd::core::totp::{TotpSecret, code_at};

struct App {
    client_id: String,
    client_secret: String,
}

/// An app named `name` with `--mfa mfa` and no device requirement, and
/// Alice with a temporary password.
async fn app_and_user(sys: &System, name: &str, mfa: &str) -> Result<(App, String)> {
    let app = sys
        .ctl_json(&[
            "app",
            "add",
            name,
            "--redirect-uri",
            RP_CALLBACK,
            "--mfa",
            mfa,
            "--device",
            "none",
        ])
        .await?;
    let temporary = login::add_user_with_temporary_password(
        sys,
        "alice@example.com",
        &["--name", "Alice Suzuki"],
    )
    .await?;
    Ok((
        App {
            client_id: app["client_id"].as_str().context("client id")?.to_owned(),
            client_secret: app["client_secret"].as_str().context("secret")?.to_owned(),
        },
        temporary,
    ))
}

async fn post_code(browser: &mut Browser, page: &WebResponse, code: &str) -> Result<WebResponse> {
    let req = page.input("req").context("req")?;
    let csrf = page.input("csrf").context("csrf")?;
    browser
        .post(
            "/login/code",
            &[("req", &req), ("csrf", &csrf), ("code", code)],
        )
        .await
}

/// The code went through: the browser lands on the client with a code,
/// which buys an ID token naming the second factor.
async fn lands_with_mfa(
    sys: &System,
    browser: &mut Browser,
    after: WebResponse,
    app: &App,
    state: &str,
) -> Result<()> {
    assert_eq!(after.status, 303, "{}", after.body);
    let landed = browser.follow(after).await?;
    let url = landed
        .location()
        .with_context(|| format!("redirect to the client: {}", landed.body))?;
    assert!(url.starts_with(RP_CALLBACK), "{url}");
    assert_eq!(query_param(url, "state").as_deref(), Some(state));
    let code = query_param(url, "code").context("code")?;
    let tokens = token_request(
        sys,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", RP_CALLBACK),
            ("client_id", &app.client_id),
            ("client_secret", &app.client_secret),
        ],
    )
    .await?;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    let id_token = tokens.json()?["id_token"]
        .as_str()
        .context("id_token")?
        .to_owned();
    let payload = id_token.split('.').nth(1).context("payload")?;
    let claims: serde_json::Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?)?;
    assert_eq!(claims["amr"], serde_json::json!(["pwd", "otp"]));
    assert_eq!(claims["acr"], "urn:latchkey:acr:mfa");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_requiring_totp_enrolls_an_authenticator_and_takes_each_code_once() -> Result<()> {
    let sys = System::start().await?;
    let (app, temporary) = app_and_user(&sys, "Wiki", "totp").await?;
    let addr = sys.running().https_addr;

    // First sign-in: the password, then the enrollment page.
    let mut browser = Browser::new(addr, &sys.ca_pem)?;
    let url = login::authorize_url(&app.client_id, RP_CALLBACK, "first");
    let page = login::sign_in(&mut browser, &url, "Wiki", "alice@example.com", &temporary).await?;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("Set up an authenticator app"),
        "{}",
        page.body
    );
    // The QR code is an SVG image the server drew, carrying the otpauth URI.
    let src = page.attr("src").context("QR image")?;
    let svg = base64::engine::general_purpose::STANDARD.decode(
        src.strip_prefix("data:image/svg+xml;base64,")
            .context("an SVG data URL")?,
    )?;
    assert!(String::from_utf8(svg)?.contains("<svg"));
    let shown = page.attr("data-secret").context("the key for typing")?;
    let secret = TotpSecret::from_base32(&shown).context("a base32 key")?;

    // A wrong code keeps the user on the same enrollment.
    let now = Utc::now();
    let right = code_at(&secret, now);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let refused = post_code(&mut browser, &page, wrong).await?;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(refused.body.contains("That code is not correct"));
    assert_eq!(refused.attr("data-secret").as_deref(), Some(shown.as_str()));

    let after = post_code(&mut browser, &refused, &right).await?;
    lands_with_mfa(&sys, &mut browser, after, &app, "first").await?;

    // A new browser: the code form, without the QR code. The code just used
    // is refused; the next one works.
    let mut other = Browser::new(addr, &sys.ca_pem)?;
    let url = login::authorize_url(&app.client_id, RP_CALLBACK, "second");
    let page = login::sign_in(
        &mut other,
        &url,
        "Wiki",
        "alice@example.com",
        login::CHOSEN_PASSWORD,
    )
    .await?;
    assert!(page.body.contains("Enter your code"), "{}", page.body);
    assert!(page.attr("data-secret").is_none(), "no key once enrolled");
    let replayed = post_code(&mut other, &page, &right).await?;
    assert_eq!(replayed.status, 401, "a used code is refused");
    assert!(replayed.body.contains("already used"));
    let next = code_at(&secret, now + Duration::seconds(30));
    let after = post_code(&mut other, &replayed, &next).await?;
    lands_with_mfa(&sys, &mut other, after, &app, "second").await?;

    // The account page: enrolled, and the history newest first.
    let account = other.get("/account").await?;
    assert_eq!(account.status, 200, "{}", account.body);
    assert!(account.body.contains("data-totp=\"enrolled\""));
    assert!(account.body.contains("data-order=\"newest\""));
    let rows = history_times(&account.body);
    assert!(rows.len() >= 6, "{rows:?}");
    assert!(rows.windows(2).all(|w| w[0] >= w[1]), "{rows:?}");
    assert!(account.body.contains("<td>Wiki</td>"));
    assert!(
        account.body.contains("bad_code"),
        "the wrong code is listed"
    );
    let oldest = other.get("/account?sort=oldest").await?;
    let rows = history_times(&oldest.body);
    assert!(rows.windows(2).all(|w| w[0] <= w[1]), "{rows:?}");

    // Removing the authenticator needs a current code from it.
    let csrf = account.input("csrf").context("csrf")?;
    let refused = other
        .post("/account/totp/remove", &[("csrf", &csrf), ("code", wrong)])
        .await?;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(refused.body.contains("data-totp=\"enrolled\""));
    let reused = other
        .post("/account/totp/remove", &[("csrf", &csrf), ("code", &next)])
        .await?;
    assert_eq!(reused.status, 401, "a used code removes nothing");

    // The language choice is saved with the user.
    let saved = other
        .post("/account/language", &[("csrf", &csrf), ("lang", "ja")])
        .await?;
    assert_eq!(saved.status, 303);
    let mut third = Browser::new(addr, &sys.ca_pem)?;
    let url = login::authorize_url(&app.client_id, RP_CALLBACK, "third");
    let page = login::sign_in(
        &mut third,
        &url,
        "Wiki",
        "alice@example.com",
        login::CHOSEN_PASSWORD,
    )
    .await?;
    assert!(
        page.body.contains("<html lang=\"ja\">"),
        "the saved language follows the user: {}",
        page.body
    );
    sys.stop().await
}

/// The `datetime` of each history row, in page order.
fn history_times(body: &str) -> Vec<String> {
    body.split("<tr class=")
        .skip(1)
        .filter_map(|row| {
            let start = row.find("datetime=\"")? + 10;
            let end = row[start..].find('"')? + start;
            Some(row[start..end].to_owned())
        })
        .collect()
}

fn six_digits_after(text: &str, marker: &str) -> Option<String> {
    let start = text.find(marker)? + marker.len();
    let code: String = text[start..]
        .chars()
        .skip_while(|c| c.is_whitespace())
        .take(6)
        .collect();
    (code.len() == 6 && code.chars().all(|c| c.is_ascii_digit())).then_some(code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_requiring_an_emailed_code_sends_one_that_works_once() -> Result<()> {
    let mut sink = SmtpSink::start().await?;
    let port = sink.port;
    let sys = System::start_configured(Arc::new(move |file| {
        file.smtp = Some(FileSmtp {
            host: "127.0.0.1".into(),
            port: Some(port),
            tls: Some("none".into()),
            sender: "Latchkey <no-reply@example.com>".into(),
            ..FileSmtp::default()
        });
        file.sso.user_mfa_minimum = Some("risk".into());
    }))
    .await?;
    let (app, temporary) = app_and_user(&sys, "Expenses", "email").await?;
    let mut browser = Browser::new(sys.running().https_addr, &sys.ca_pem)?;
    let url = login::authorize_url(&app.client_id, RP_CALLBACK, "mail");
    let page = login::sign_in(
        &mut browser,
        &url,
        "Expenses",
        "alice@example.com",
        &temporary,
    )
    .await?;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Check your email"), "{}", page.body);
    assert!(page.body.contains("a***@example.com"), "{}", page.body);

    let mail = sink.next().await?;
    assert_eq!(mail.to, ["<alice@example.com>"]);
    assert!(mail.from.contains("no-reply@example.com"));
    let code = six_digits_after(&mail.text, "Latchkey sign-in code:")
        .with_context(|| format!("a code in {}", mail.text))?;
    assert!(mail.text.contains("サインインコード"));

    // Reloading the page sends nothing new.
    let req = page.input("req").context("req")?;
    let again = browser
        .get(&format!("/login?req={}", url_escape(&req)))
        .await?;
    assert!(again.body.contains("Check your email"));
    assert!(sink.try_next().is_none(), "a reload sends no second mail");

    let wrong = if code == "000000" { "111111" } else { "000000" };
    let refused = post_code(&mut browser, &again, wrong).await?;
    assert_eq!(refused.status, 401, "{}", refused.body);
    let after = post_code(&mut browser, &refused, &code).await?;
    lands_with_mfa(&sys, &mut browser, after, &app, "mail").await?;

    // The server's floor is `risk`: `off` is shown but cannot be chosen.
    let account = browser.get("/account").await?;
    assert!(
        account
            .body
            .contains("name=\"setting\" value=\"off\" disabled"),
        "{}",
        account.body
    );
    assert!(account.body.contains("value=\"risk\" checked"));
    let csrf = account.input("csrf").context("csrf")?;
    let refused = browser
        .post("/account/mfa", &[("csrf", &csrf), ("setting", "off")])
        .await?;
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("does not allow"));
    let saved = browser
        .post("/account/mfa", &[("csrf", &csrf), ("setting", "always")])
        .await?;
    assert_eq!(saved.status, 200);
    assert!(saved.body.contains("value=\"always\" checked"));

    // An authenticator added from the account page, then removed with a
    // later code from it.
    let started = browser.post("/account/totp", &[("csrf", &csrf)]).await?;
    assert_eq!(started.status, 200, "{}", started.body);
    let shown = started.attr("data-secret").context("the key")?;
    let secret = TotpSecret::from_base32(&shown).context("base32")?;
    let reloaded = browser.get("/account").await?;
    assert_eq!(
        reloaded.attr("data-secret").as_deref(),
        Some(shown.as_str()),
        "the enrollment stays on the page until confirmed"
    );
    let now = Utc::now();
    let added = browser
        .post(
            "/account/totp/confirm",
            &[("csrf", &csrf), ("code", &code_at(&secret, now))],
        )
        .await?;
    assert_eq!(added.status, 200, "{}", added.body);
    assert!(added.body.contains("The authenticator app is set up."));
    assert!(added.body.contains("data-totp=\"enrolled\""));
    let removed = browser
        .post(
            "/account/totp/remove",
            &[
                ("csrf", &csrf),
                ("code", &code_at(&secret, now + Duration::seconds(30))),
            ],
        )
        .await?;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert!(removed.body.contains("The authenticator app was removed."));
    assert!(removed.body.contains("data-totp=\"none\""));
    sys.stop().await
}

fn url_escape(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// An app that requires an authenticator is not opened by an emailed code:
/// after Alice passed an emailed code for one app, the next app still asks
/// for her authenticator. And "send a new code" sends nothing while no
/// emailed code is in play.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emailed_code_does_not_open_an_app_that_requires_totp() -> Result<()> {
    let mut sink = SmtpSink::start().await?;
    let port = sink.port;
    let sys = System::start_configured(Arc::new(move |file| {
        file.smtp = Some(FileSmtp {
            host: "127.0.0.1".into(),
            port: Some(port),
            tls: Some("none".into()),
            sender: "Latchkey <no-reply@example.com>".into(),
            ..FileSmtp::default()
        });
    }))
    .await?;
    let (expenses, temporary) = app_and_user(&sys, "Expenses", "email").await?;
    let payroll = sys
        .ctl_json(&[
            "app",
            "add",
            "Payroll",
            "--redirect-uri",
            RP_CALLBACK,
            "--mfa",
            "totp",
            "--device",
            "none",
        ])
        .await?;
    let payroll_id = payroll["client_id"].as_str().context("client id")?;
    let mut browser = Browser::new(sys.running().https_addr, &sys.ca_pem)?;
    let url = login::authorize_url(&expenses.client_id, RP_CALLBACK, "mail");
    let page = login::sign_in(
        &mut browser,
        &url,
        "Expenses",
        "alice@example.com",
        &temporary,
    )
    .await?;
    let mail = sink.next().await?;
    let code = six_digits_after(&mail.text, "Latchkey sign-in code:").context("code")?;
    let after = post_code(&mut browser, &page, &code).await?;
    lands_with_mfa(&sys, &mut browser, after, &expenses, "mail").await?;

    // Payroll in the same browser: the emailed code does not count.
    let url = login::authorize_url(payroll_id, RP_CALLBACK, "payroll");
    let page = browser.get(&url).await?;
    let page = browser.follow(page).await?;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.location().is_none(), "no code for Payroll");
    assert!(
        page.body.contains("authenticator app"),
        "asks for the authenticator: {}",
        page.body
    );

    // "Send a new code" here has nothing to resend.
    let req = page.input("req").context("req")?;
    let csrf = page.input("csrf").context("csrf")?;
    browser
        .post(
            "/login/code/resend",
            &[("req", &req), ("csrf", &csrf), ("code", "")],
        )
        .await?;
    assert!(
        sink.try_next().is_none(),
        "no mail without an emailed code in play"
    );
    sys.stop().await
}
