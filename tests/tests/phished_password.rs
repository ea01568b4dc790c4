//! An attacker has phished one employee's password and sits on the same
//! network. Device-bound login must still keep them out: the proof that
//! the device answered reaches only the browser that started the sign-in,
//! through the device (a one-time link the agent opens, or a code it
//! shows), never on the server's word. Each test is one thing the attacker
//! does, and asserts what the attacker and the victim see.

// A test: a panic here is a failed test.
#![allow(clippy::expect_used, clippy::indexing_slicing, clippy::unwrap_used)]

use anyhow::{Context, Result};
use latchkey_tests::login::{
    CHOSEN_PASSWORD, RP_CALLBACK, Setup, agent_answers, authenticate_with_device, setup, sign_in,
};
use latchkey_tests::web::{Browser, WebResponse};
use sea_orm::ConnectionTrait;

/// A browser of its own (its own cookie jar): the attacker's, or a second
/// browser of the victim.
fn new_browser(s: &Setup) -> Result<Browser> {
    Browser::new(s.sys.running().https_addr, &s.sys.ca_pem)
}

/// Alice signs in once through her device (choosing her own password), so
/// her browser holds a session and the attacker knows the password.
async fn alice_signed_in(s: &Setup) -> Result<Browser> {
    let (mut alice, page) = s.alice_signs_in("alice").await?;
    let (report, landed) = authenticate_with_device(&mut alice, &s.agent, &page).await?;
    assert!(report.confirmed, "{report:?}");
    let to = landed.location().context("back to the app")?;
    assert!(to.starts_with(RP_CALLBACK), "{to}");
    Ok(alice)
}

/// A new browser (the attacker's, or a desktop app's sign-in window),
/// signed in to Payroll with Alice's password,
/// on the "authenticate with this device" page.
async fn password_only_at_device_step(s: &Setup) -> Result<(Browser, WebResponse)> {
    let mut attacker = new_browser(s)?;
    attacker.accept_language = "en".into();
    let page = sign_in(
        &mut attacker,
        &s.authorize_url("attacker"),
        "Payroll",
        "alice@example.com",
        CHOSEN_PASSWORD,
    )
    .await?;
    assert!(
        page.body.contains("Authenticate with this device"),
        "{}",
        page.body
    );
    Ok((attacker, page))
}

fn link_of(page: &WebResponse) -> Result<String> {
    let txn = page.attr("data-txn").context("txn")?;
    Ok(format!("latchkey://device-auth?txn={txn}"))
}

/// Where the page's "continue" leads now.
async fn next_page(browser: &mut Browser, page: &WebResponse) -> Result<WebResponse> {
    let next = page.attr("data-next").context("next")?;
    let after = browser.get(&next).await?;
    browser.follow(after).await
}

async fn type_device_code(
    browser: &mut Browser,
    page: &WebResponse,
    code: &str,
) -> Result<WebResponse> {
    let req = page.input("req").context("req")?;
    let csrf = page.input("csrf").context("csrf")?;
    browser
        .post(
            "/login/device/code",
            &[("req", &req), ("csrf", &csrf), ("code", code)],
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_victims_agent_handed_the_attackers_sign_in_signs_nobody_in() -> Result<()> {
    let s = setup("bound").await?;
    let mut alice = alice_signed_in(&s).await?;
    let (mut attacker, page) = password_only_at_device_step(&s).await?;

    // Alice clicks the attacker's link (in a mail): her agent answers it,
    // as it answers any sign-in of hers, and opens the redemption link in
    // her browser.
    let report = agent_answers(&s.agent, &link_of(&page)?).await?;
    assert!(report.confirmed, "{report:?}");
    assert!(!report.redeem_url.is_empty() && report.code.len() == 8);
    let warning = alice.get(&report.redeem_url).await?;

    // Alice sees whose sign-in it was and what to do.
    assert_eq!(warning.status, 403, "{}", warning.body);
    assert!(
        warning
            .body
            .contains("This sign-in was not started in this browser"),
        "{}",
        warning.body
    );
    assert!(warning.body.contains(r#"<dd class="app">Payroll</dd>"#));
    assert!(warning.body.contains(r#"<dd class="ip">127.0.0.1</dd>"#));
    assert!(warning.body.contains(r#"<dd class="browser">Linux</dd>"#));
    assert!(warning.body.contains("Someone may know your password"));
    assert!(warning.body.contains("type it into that sign-in window"));

    // The attacker's page is still waiting for the proof; nothing the
    // server says lets it through.
    let still = next_page(&mut attacker, &page).await?;
    assert_eq!(still.status, 200);
    assert!(still.body.contains("data-answered"), "{}", still.body);
    assert!(still.location().is_none());

    // The link was for one use: the attacker cannot replay it either.
    let replay = attacker.get(&report.redeem_url).await?;
    assert!(
        replay.body.contains("This sign-in has expired"),
        "{}",
        replay.body
    );

    // Guessing the code: five tries, then the sign-in is over.
    for left in (1..=4).rev() {
        let wrong = type_device_code(&mut attacker, &still, "0000 0000").await?;
        assert_eq!(wrong.status, 401, "{}", wrong.body);
        assert!(
            wrong.body.contains(&format!("Guesses left: {left}")),
            "{}",
            wrong.body
        );
    }
    let last = type_device_code(&mut attacker, &still, "1111 1111").await?;
    let over = attacker.follow(last).await?;
    assert!(
        over.body.contains(r#"data-failure="too_many_codes""#),
        "{}",
        over.body
    );
    // Even the right code is worth nothing now.
    let right = type_device_code(&mut attacker, &still, &report.code).await?;
    let over = attacker.follow(right).await?;
    assert!(
        over.body.contains(r#"data-failure="too_many_codes""#),
        "{}",
        over.body
    );

    // It is on record: in Alice's sign-in history, and in the audit log as
    // a device that answered a sign-in its user did not finish.
    let account = alice.get("/account").await?;
    assert!(account.body.contains("other_browser"), "{}", account.body);
    let audit = s.sys.ctl(&["audit"]).await?;
    assert!(audit.contains("sso.device-answer-unfinished"), "{audit}");

    s.sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_code_from_the_device_completes_a_sign_in_the_link_cannot_reach() -> Result<()> {
    let s = setup("bound").await?;
    alice_signed_in(&s).await?;

    // Alice signs in from a desktop app's own sign-in window (a browser
    // session of its own); the agent's link opens in her default browser,
    // which holds no session of this sign-in.
    let (mut app_window, page) = password_only_at_device_step(&s).await?;
    let mut default_browser = new_browser(&s)?;
    let report = agent_answers(&s.agent, &link_of(&page)?).await?;
    assert!(report.confirmed, "{report:?}");
    let elsewhere = default_browser.get(&report.redeem_url).await?;
    assert_eq!(elsewhere.status, 403);

    // The code typed into another browser does nothing there.
    let other = type_device_code(&mut default_browser, &page, &report.code).await?;
    assert_ne!(other.status, 303, "{}", other.body);

    // Typed into the sign-in window (with the spaces and full-width digits
    // a Japanese input method may give), it completes the sign-in.
    let (first, second) = report.code.split_at(4);
    let typed: String = format!("{first} {second}")
        .chars()
        .map(|c| match c.to_digit(10) {
            Some(d) => char::from_u32(u32::from('０') + d).unwrap_or(c),
            None => c,
        })
        .collect();
    let accepted = type_device_code(&mut app_window, &page, &typed).await?;
    let landed = app_window.follow(accepted).await?;
    let to = landed.location().context("back to the app")?;
    assert!(to.starts_with(RP_CALLBACK), "{}", landed.body);

    s.sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guesses_at_the_device_code_sent_in_parallel_are_counted_before_they_are_compared()
-> Result<()> {
    let s = setup("bound").await?;
    alice_signed_in(&s).await?;
    let (attacker, page) = password_only_at_device_step(&s).await?;
    let txn = page.attr("data-txn").context("txn")?;
    let report = agent_answers(&s.agent, &link_of(&page)?).await?;
    assert!(report.confirmed);

    // Twenty wrong guesses at once, each from a copy of the attacker's
    // browser (the same session).
    let mut guesses = Vec::new();
    for n in 0..20u32 {
        let mut copy = new_browser(&s)?;
        copy.cookies = attacker.cookies.clone();
        let page = page.clone();
        guesses.push(tokio::spawn(async move {
            let code = format!("{:08}", 90_000_000 + n);
            type_device_code(&mut copy, &page, &code)
                .await
                .map(|r| r.status)
        }));
    }
    let mut rejected = 0;
    for guess in guesses {
        if guess.await?? == 401 {
            rejected += 1;
        }
    }
    // At most five were compared; the rest were turned away uncounted.
    assert!(rejected <= 5, "{rejected} guesses were compared");
    let db = s.sys.database().await?;
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            format!("SELECT code_attempts FROM device_auth_txns WHERE id = '{txn}'"),
        ))
        .await?
        .context("the transaction")?;
    let attempts: i32 = row.try_get("", "code_attempts")?;
    assert_eq!(attempts, 5);

    // The right code after that does not sign anyone in.
    let mut attacker = attacker;
    let right = type_device_code(&mut attacker, &page, &report.code).await?;
    let over = attacker.follow(right).await?;
    assert!(
        over.body.contains(r#"data-failure="too_many_codes""#),
        "{}",
        over.body
    );

    s.sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guesses_sent_in_parallel_are_counted_before_they_are_checked() -> Result<()> {
    let s = setup("bound").await?;
    let mut attacker = new_browser(&s)?;
    let page = attacker.get(&s.authorize_url("guess")).await?;
    let page = attacker.follow(page).await?;
    let req = page.input("req").context("req")?;
    let csrf = page.input("csrf").context("csrf")?;
    let mut guesses = Vec::new();
    for n in 0..20 {
        let mut copy = new_browser(&s)?;
        copy.cookies = attacker.cookies.clone();
        let (req, csrf) = (req.clone(), csrf.clone());
        guesses.push(tokio::spawn(async move {
            let password = format!("wrong password number {n}");
            copy.post(
                "/login",
                &[
                    ("req", &req),
                    ("csrf", &csrf),
                    ("email", "alice@example.com"),
                    ("password", &password),
                ],
            )
            .await
            .map(|r| r.status)
        }));
    }
    let mut checked = 0;
    let mut locked = 0;
    for guess in guesses {
        match guess.await?? {
            401 => checked += 1,
            429 => locked += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert!(checked <= 5, "{checked} of 20 guesses were checked");
    assert_eq!(checked + locked, 20);
    // The right password now waits out the lockout like any guess.
    let right = attacker
        .post(
            "/login",
            &[
                ("req", &req),
                ("csrf", &csrf),
                ("email", "alice@example.com"),
                ("password", &s.password),
            ],
        )
        .await?;
    assert_eq!(right.status, 429, "{}", right.body);
    assert!(right.header("retry-after").is_some());
    // Another spelling of the same address is the same account.
    for spelling in ["Alice@Example.COM", "alice@\u{ff45}xam\u{ad}ple.com"] {
        let variant = attacker
            .post(
                "/login",
                &[
                    ("req", &req),
                    ("csrf", &csrf),
                    ("email", spelling),
                    ("password", &s.password),
                ],
            )
            .await?;
        assert_eq!(variant.status, 429, "{spelling}: {}", variant.body);
    }
    s.sys.stop().await
}

/// Opening `/authorize` writes nothing: a flood of sign-in starts (a link
/// crawled, a page reloaded, an attacker's loop) leaves no rows behind;
/// a session and its request are written when the user submits a form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_authorize_writes_nothing_until_the_user_submits() -> Result<()> {
    let s = setup("bound").await?;
    let db = s.sys.database().await?;
    let count = |table: &'static str| {
        let db = db.clone();
        async move {
            let row = db
                .query_one_raw(sea_orm::Statement::from_string(
                    db.get_database_backend(),
                    format!("SELECT COUNT(*) AS n FROM {table}"),
                ))
                .await?
                .context("a count")?;
            anyhow::Ok(row.try_get::<i64>("", "n")?)
        }
    };
    let before = (count("sso_sessions").await?, count("auth_requests").await?);
    for _ in 0..50 {
        let mut browser = new_browser(&s)?;
        let page = browser.get(&s.authorize_url("crawl")).await?;
        let page = browser.follow(page).await?;
        assert!(page.body.contains(r#"name="password""#));
    }
    let after = (count("sso_sessions").await?, count("auth_requests").await?);
    assert_eq!(after, before, "nothing written by /authorize");
    // The user signs in: now the session and the request are written.
    alice_signed_in(&s).await?;
    assert!(count("sso_sessions").await? > before.0);
    assert!(count("auth_requests").await? > before.1);
    s.sys.stop().await
}

/// A cookie from before the password (planted by someone, or copied) is no
/// session once the user signs in: the signed-in session has a new secret,
/// and the old one does not stand for the same session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_from_before_the_password_opens_nothing_after_it() -> Result<()> {
    let s = setup("bound").await?;
    let mut browser = new_browser(&s)?;
    let first = browser.get(&s.authorize_url("fixed")).await?;
    browser.follow(first).await?;
    let mut planted = new_browser(&s)?;
    planted.cookies = browser.cookies.clone();
    let page = sign_in(
        &mut browser,
        &s.authorize_url("fixed"),
        "Payroll",
        "alice@example.com",
        &s.password,
    )
    .await?;
    let txn = page.attr("data-txn").context("the device step")?;
    assert_ne!(planted.cookies, browser.cookies, "a new secret");
    let wait = planted.get(&format!("/login/wait?txn={txn}")).await?;
    assert!(wait.body.contains("unknown"), "{}", wait.body);
    let account = planted.get("/account").await?;
    assert_eq!(account.status, 303, "not signed in");
    s.sys.stop().await
}
