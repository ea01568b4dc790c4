//! A person at a real browser (headless Chromium through WebDriver) signs in
//! to an app that needs a password, an authenticator code and the user's
//! managed device: the agent's URL handler opens its redemption link in the
//! same browser (`$BROWSER`, as `xdg-open` honours it), and the sign-in
//! lands on the app. After the helpdesk locks the device the same sign-in
//! ends on "This device is locked". Then an attacker with the password, in
//! their own browser, hands the victim's agent their sign-in: the victim's
//! browser shows the warning and the attacker's sign-in never completes.
//! Each page is saved as a screenshot under `target/screenshots/`.

// A test: a panic here is a failed test.
#![allow(clippy::expect_used, clippy::indexing_slicing, clippy::unwrap_used)]

use std::time::Duration;

use anyhow::{Context, Result};
use chrono::Utc;
use fantoccini::Locator;
use latchkey_agent::device_auth::{Approval, Report};
use latchkey_agent::local;
use latchkey_agent::run::RunOptions;
use latchkey_tests::chrome::Chrome;
use latchkey_tests::login::{self, CHOSEN_PASSWORD, query_param};
use latchkey_tests::{System, wait_until};
use latchkeyd::core::totp::{TotpSecret, code_at};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The relying party's callback page: answers every request with a small
/// page, so the browser visibly lands there.
async fn landing_server() -> Result<(u16, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let body = "<!doctype html><title>Payroll</title><h1>Payroll</h1><p id=\"landed\">Signed in through Latchkey.</p>";
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    Ok((port, task))
}

/// Waits until the page's `<h1>` reads `heading`.
async fn until_heading(chrome: &Chrome, heading: &str) -> Result<()> {
    wait_until(
        &format!("the page {heading:?}"),
        Duration::from_secs(10),
        || async {
            let now = chrome.heading().await.ok()?;
            (now == heading).then_some(())
        },
    )
    .await
    .with_context(|| format!("expected {heading:?}"))
}

/// A `$BROWSER` command that records each URL it is asked to open, so the
/// test can open it in the WebDriver session: the person's own browser.
struct RecordingBrowser {
    dir: tempfile::TempDir,
}

impl RecordingBrowser {
    fn new() -> Result<RecordingBrowser> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        let script = dir.path().join("browser");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$1\" >> '{}'\n",
                dir.path().join("opened").display()
            ),
        )?;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
        Ok(RecordingBrowser { dir })
    }

    fn command(&self) -> String {
        self.dir.path().join("browser").display().to_string()
    }

    /// The `n`th URL opened (from 1), once it has been.
    async fn opened(&self, n: usize) -> Result<String> {
        let file = self.dir.path().join("opened");
        wait_until(
            "the URL handler opens the redemption link",
            Duration::from_secs(10),
            || async {
                let text = std::fs::read_to_string(&file).ok()?;
                text.lines().nth(n - 1).map(str::to_owned)
            },
        )
        .await
    }
}

/// The URL handler (`latchkey-agent open-url`) as the browser starts it
/// for `link`, with `$BROWSER` set to `browser`; runs until the handler
/// has learned where the proof went.
fn url_handler(
    agent: &latchkey_tests::Agent,
    link: String,
    browser: String,
) -> tokio::task::JoinHandle<Result<Report>> {
    let sockets = local::socket_candidates(&agent.state);
    tokio::spawn(async move { Ok(local::open_url(&sockets, &link, Some(&browser)).await?) })
}

/// Opens `url` in a new tab of `chrome`, as the desktop's default browser
/// does for a link another program opens, and goes back to the tab that
/// was in front.
async fn open_in_new_tab(chrome: &Chrome, url: &str) -> Result<()> {
    let front = chrome.client.window().await?;
    let tab = chrome.client.new_window(true).await?;
    chrome.client.switch_to_window(tab.handle).await?;
    chrome.client.goto(url).await?;
    chrome.client.switch_to_window(front).await?;
    Ok(())
}

async fn submit(chrome: &Chrome) -> Result<()> {
    chrome.click("main form button[type=submit]").await
}

/// A returning user: the sign-in form, then the authenticator code.
async fn sign_in_again(chrome: &Chrome, code: &str) -> Result<()> {
    until_heading(chrome, "Sign in").await?;
    chrome.fill("#email", "alice@example.com").await?;
    chrome.fill("#password", CHOSEN_PASSWORD).await?;
    submit(chrome).await?;
    until_heading(chrome, "Enter your code").await?;
    chrome.fill("#code", code).await?;
    submit(chrome).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_in_chromium_signs_in_only_from_their_device_until_it_is_locked() -> Result<()> {
    let (rp_port, rp) = landing_server().await?;
    let callback = format!("http://127.0.0.1:{rp_port}/callback");
    let sys = System::start().await?;
    let app = sys
        .ctl_json(&[
            "app",
            "add",
            "Payroll",
            "--redirect-uri",
            &callback,
            "--device",
            "bound",
            "--mfa",
            "totp",
        ])
        .await?;
    let client_id = app["client_id"].as_str().context("client id")?.to_owned();
    let temporary = login::add_user_with_temporary_password(
        &sys,
        "alice@example.com",
        &["--name", "Alice Suzuki"],
    )
    .await?;
    // Two devices bound to Alice; the laptop's agent is running.
    let mut laptop = sys
        .enroll(
            &sys.enrollment_token(&["--user", "alice@example.com"])
                .await?,
        )
        .await?;
    let desktop = sys
        .enroll(
            &sys.enrollment_token(&["--user", "alice@example.com"])
                .await?,
        )
        .await?;
    laptop.start(RunOptions {
        approval: Approval::Ask,
        ..RunOptions::default()
    });
    sys.wait_for_posture(&laptop.device_id).await?;

    let mut chrome = Chrome::start("sso-browser").await?;
    let base = format!("https://localhost:{}", sys.running().https_addr.port());
    let authorize = format!(
        "{base}{}",
        login::authorize_url(&client_id, &callback, "from-chromium")
    );
    chrome.client.goto(&authorize).await?;

    // Password, new password, then the authenticator set-up with its QR code.
    until_heading(&chrome, "Sign in").await?;
    chrome.screenshot("sign-in").await?;
    chrome.fill("#email", "alice@example.com").await?;
    chrome.fill("#password", &temporary).await?;
    submit(&chrome).await?;
    until_heading(&chrome, "Choose a new password").await?;
    chrome.screenshot("new-password").await?;
    chrome.fill("#new-password", CHOSEN_PASSWORD).await?;
    chrome.fill("#confirm-password", CHOSEN_PASSWORD).await?;
    submit(&chrome).await?;
    until_heading(&chrome, "Set up an authenticator app").await?;
    let qr = chrome.client.find(Locator::Css("img.qr")).await?;
    assert!(
        qr.attr("src")
            .await?
            .is_some_and(|s| s.starts_with("data:image/svg+xml;base64,"))
    );
    let key = chrome
        .client
        .find(Locator::Css(".secret"))
        .await?
        .attr("data-secret")
        .await?
        .context("the key")?;
    chrome.screenshot("authenticator-setup").await?;
    let secret = TotpSecret::from_base32(&key).context("base32 key")?;
    let first_code_at = Utc::now();
    chrome
        .fill("#code", &code_at(&secret, first_code_at))
        .await?;
    submit(&chrome).await?;

    // Two devices: choose the laptop.
    until_heading(&chrome, "Choose this device").await?;
    chrome.screenshot("choose-device").await?;
    let page = chrome.client.source().await?;
    assert!(page.contains(&laptop.device_id) && page.contains(&desktop.device_id));
    chrome
        .click(&format!(
            "form:has(input[name=device][value=\"{}\"]) button",
            laptop.device_id
        ))
        .await?;

    // "Authenticate with this device": the button's link goes to the
    // agent's URL handler, which headless Chromium has not got; the test
    // starts the handler with the same link, as the browser would. The
    // handler opens the agent's one-time redemption link with `$BROWSER`:
    // a new tab of this same browser.
    until_heading(&chrome, "Authenticate with this device").await?;
    chrome.screenshot("authenticate-with-device").await?;
    let link = chrome
        .client
        .find(Locator::Css("#device-link"))
        .await?
        .attr("href")
        .await?
        .context("the device link")?;
    assert!(link.starts_with("latchkey://device-auth?txn="), "{link}");
    chrome.click("#device-link").await?;
    let laptop_browser = RecordingBrowser::new()?;
    let handler = url_handler(&laptop, link, laptop_browser.command());
    let redeem = laptop_browser.opened(1).await?;
    assert!(
        redeem.starts_with(&format!("{base}/login/device/redeem?txn=")),
        "{redeem}"
    );
    open_in_new_tab(&chrome, &redeem).await?;
    let report = handler.await??;
    assert!(report.confirmed, "{report:?}");

    // The waiting tab sees the confirmation and lands on the app with a
    // code; nothing else was asked of the person.
    let landed = wait_until("the app's callback", Duration::from_secs(10), || async {
        let url = chrome.client.current_url().await.ok()?;
        url.as_str()
            .starts_with(&callback)
            .then(|| url.as_str().to_owned())
    })
    .await?;
    assert_eq!(
        query_param(&landed, "state").as_deref(),
        Some("from-chromium")
    );
    assert!(query_param(&landed, "code").is_some(), "{landed}");
    assert_eq!(
        chrome.text_of("#landed").await?,
        "Signed in through Latchkey."
    );
    chrome.screenshot("landed-on-app").await?;

    // The helpdesk locks the laptop; the same sign-in now ends on the
    // "device locked" page.
    sys.ctl(&["device", "lock", &laptop.device_id]).await?;
    chrome.client.goto(&authorize).await?;
    let next_code = code_at(&secret, first_code_at + chrono::Duration::seconds(30));
    sign_in_again(&chrome, &next_code).await?;
    until_heading(&chrome, "Choose this device").await?;
    chrome
        .click(&format!(
            "form:has(input[name=device][value=\"{}\"]) button",
            laptop.device_id
        ))
        .await?;
    until_heading(&chrome, "Authenticate with this device").await?;
    let link = chrome
        .client
        .find(Locator::Css("#device-link"))
        .await?
        .attr("href")
        .await?
        .context("the device link")?;
    let refused = url_handler(&laptop, link, laptop_browser.command()).await??;
    assert!(!refused.confirmed);
    assert!(refused.redeem_url.is_empty() && refused.code.is_empty());
    until_heading(&chrome, "This device is locked").await?;
    let failure = chrome
        .client
        .find(Locator::Css("[data-failure]"))
        .await?
        .attr("data-failure")
        .await?;
    assert_eq!(failure.as_deref(), Some("device_locked"));
    chrome.screenshot("device-locked").await?;

    // Still signed in to Latchkey itself: the account page lists the
    // attempts, newest first, and the home page speaks Japanese on request.
    chrome.client.goto(&format!("{base}/account")).await?;
    until_heading(&chrome, "Your account").await?;
    let history = chrome.text_of("table.history tbody").await?;
    assert!(history.contains("device_locked"), "{history}");
    assert!(history.contains("Payroll"), "{history}");
    chrome.screenshot("account").await?;
    chrome.client.goto(&format!("{base}/?lang=ja")).await?;
    until_heading(&chrome, "アプリ一覧").await?;
    chrome.screenshot("home-japanese").await?;

    // The helpdesk unlocks the laptop. An attacker who has Alice's
    // password signs in to the wiki (device-bound, no second factor) in
    // their own browser and gets Alice's agent to answer their sign-in
    // (a link in a mail). The redemption link opens in Alice's browser,
    // which shows the warning, on a phone-sized screen, in Japanese (the
    // language Alice chose above); the attacker's page never moves on.
    sys.ctl(&["device", "unlock", &laptop.device_id]).await?;
    let wiki = sys
        .ctl_json(&[
            "app",
            "add",
            "社内Wiki",
            "--redirect-uri",
            &callback,
            "--device",
            "bound",
        ])
        .await?;
    let wiki_id = wiki["client_id"].as_str().context("client id")?.to_owned();
    let mut attacker = Chrome::start("sso-browser-attacker").await?;
    attacker
        .client
        .goto(&format!(
            "{base}{}",
            login::authorize_url(&wiki_id, &callback, "attacker")
        ))
        .await?;
    until_heading(&attacker, "Sign in").await?;
    attacker.fill("#email", "alice@example.com").await?;
    attacker.fill("#password", CHOSEN_PASSWORD).await?;
    submit(&attacker).await?;
    until_heading(&attacker, "Choose this device").await?;
    attacker
        .click(&format!(
            "form:has(input[name=device][value=\"{}\"]) button",
            laptop.device_id
        ))
        .await?;
    until_heading(&attacker, "Authenticate with this device").await?;
    let attack_link = attacker
        .client
        .find(Locator::Css("#device-link"))
        .await?
        .attr("href")
        .await?
        .context("the attacker's device link")?;
    chrome.client.set_window_size(390, 844).await?;
    let handler = url_handler(&laptop, attack_link, laptop_browser.command());
    let stolen = laptop_browser.opened(2).await?;
    chrome.client.goto(&stolen).await?;
    until_heading(
        &chrome,
        "このサインインはこのブラウザーで開始されたものではありません",
    )
    .await?;
    assert_eq!(chrome.text_of("dd.app").await?, "社内Wiki");
    assert!(chrome.text_of("dd.browser").await?.starts_with("Chrome"));
    assert_eq!(chrome.text_of("dd.ip").await?, "127.0.0.1");
    assert!(
        chrome
            .text_of("[data-warning=password]")
            .await?
            .contains("パスワード")
    );
    chrome.screenshot("other-browser-warning-ja-phone").await?;
    // The link was for one use.
    chrome.client.goto(&stolen).await?;
    until_heading(&chrome, "このサインインは期限切れです").await?;
    let report = handler.await??;
    assert!(report.confirmed, "the agent answered: {report:?}");
    // The attacker's page stays on the device step, whatever it waits for.
    attacker.client.refresh().await?;
    until_heading(&attacker, "Authenticate with this device").await?;
    assert!(
        attacker
            .client
            .find(Locator::Css("[data-answered]"))
            .await
            .is_ok()
    );
    assert!(
        !attacker
            .client
            .current_url()
            .await?
            .as_str()
            .starts_with(&callback)
    );
    attacker.client.set_window_size(390, 844).await?;
    attacker
        .screenshot("attacker-still-waiting-en-phone")
        .await?;
    let audit = sys.ctl(&["audit"]).await?;
    assert!(audit.contains("sso.device-answer-unfinished"), "{audit}");

    attacker.close().await?;
    chrome.close().await?;
    rp.abort();
    laptop.stop().await?;
    sys.stop().await
}
