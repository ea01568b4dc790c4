//! `confirm` mode: the device as a second factor anywhere. The browser
//! shows a two-digit number that is never sent to the device; the person
//! types it on the device. An approval made this way opens `confirm` apps
//! only: a `bound` app still asks for the device the browser runs on. And
//! an attacker with the password cannot flood the device with requests.

// A test: a panic here is a failed test.
#![allow(clippy::expect_used, clippy::indexing_slicing, clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine;
use latchkey_agent::device_auth::Approval;
use latchkey_agent::run::RunOptions;
use latchkey_tests::login::{
    self, CHOSEN_PASSWORD, RP_CALLBACK, authorize_url, query_param, sign_in, token_request,
};
use latchkey_tests::web::{Browser, WebResponse};
use latchkey_tests::{Agent, System};

/// What the person at the device types, per transaction: the test reads
/// the number from the page and "types" it (or another one).
#[derive(Clone, Default)]
struct Typist {
    numbers: Arc<(Mutex<HashMap<String, String>>, Condvar)>,
    prompts: Arc<AtomicUsize>,
}

impl Typist {
    fn types(&self, txn: &str, number: &str) {
        let (map, ready) = &*self.numbers;
        map.lock()
            .unwrap()
            .insert(txn.to_owned(), number.to_owned());
        ready.notify_all();
    }

    /// The device's prompt: waits (a person reading the screen) for the
    /// number the test decides, or declines after a while.
    fn approval(&self) -> Approval {
        let me = self.clone();
        Approval::Typed(Arc::new(move |challenge| {
            me.prompts.fetch_add(1, Ordering::SeqCst);
            let (map, ready) = &*me.numbers;
            let guard = map.lock().unwrap();
            let (guard, _) = ready
                .wait_timeout_while(guard, Duration::from_secs(5), |m| {
                    !m.contains_key(&challenge.txn_id)
                })
                .unwrap();
            guard.get(&challenge.txn_id).cloned()
        }))
    }
}

struct Scene {
    sys: System,
    agent: Agent,
    typist: Typist,
    chat: (String, String),
    payroll: String,
    temporary: String,
}

async fn scene() -> Result<Scene> {
    let sys = System::start().await?;
    let mut ids = Vec::new();
    for (name, mode) in [("Chat", "confirm"), ("Payroll", "bound")] {
        let app = sys
            .ctl_json(&[
                "app",
                "add",
                name,
                "--redirect-uri",
                RP_CALLBACK,
                "--device",
                mode,
            ])
            .await?;
        ids.push((
            app["client_id"].as_str().context("id")?.to_owned(),
            app["client_secret"].as_str().context("secret")?.to_owned(),
        ));
    }
    let temporary = login::add_user_with_temporary_password(
        &sys,
        "alice@example.com",
        &["--name", "Alice Suzuki"],
    )
    .await?;
    let token = sys
        .enrollment_token(&["--user", "alice@example.com"])
        .await?;
    let mut agent = sys.enroll(&token).await?;
    let typist = Typist::default();
    agent.start(RunOptions {
        approval: typist.approval(),
        ..RunOptions::default()
    });
    sys.wait_for_posture(&agent.device_id).await?;
    let payroll = ids.pop().context("payroll")?.0;
    let chat = ids.pop().context("chat")?;
    Ok(Scene {
        sys,
        agent,
        typist,
        chat,
        payroll,
        temporary,
    })
}

/// The page's number, as the person reads it.
fn number_on(page: &WebResponse) -> Result<String> {
    page.attr("data-number").context("the number on the page")
}

/// Waits as the page's script does, then continues.
async fn continue_after_device(browser: &mut Browser, page: &WebResponse) -> Result<WebResponse> {
    let txn = page.attr("data-txn").context("txn")?;
    let waited = browser.get(&format!("/login/wait?txn={txn}")).await?;
    assert_eq!(waited.status, 200);
    let next = page.attr("data-next").context("next")?;
    let after = browser.get(&next).await?;
    browser.follow(after).await
}

fn claims_of(id_token: &str) -> Result<serde_json::Value> {
    let payload = id_token.split('.').nth(1).context("payload")?;
    Ok(serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?,
    )?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirm_approval_does_not_open_a_bound_app() -> Result<()> {
    let mut s = scene().await?;
    let mut browser = Browser::new(s.sys.running().https_addr, &s.sys.ca_pem)?;

    // Chat: the browser shows a number, the person types it on the device.
    let page = sign_in(
        &mut browser,
        &authorize_url(&s.chat.0, RP_CALLBACK, "chat"),
        "Chat",
        "alice@example.com",
        &s.temporary,
    )
    .await?;
    assert!(
        page.body.contains("Type this number on the device"),
        "{}",
        page.body
    );
    let txn = page.attr("data-txn").context("txn")?;
    s.typist.types(&txn, &number_on(&page)?);
    let landed = continue_after_device(&mut browser, &page).await?;
    let url = landed.location().context("back to Chat")?;
    assert!(url.starts_with(RP_CALLBACK), "{}", landed.body);
    let code = query_param(url, "code").context("code")?;
    let tokens = token_request(
        &s.sys,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", RP_CALLBACK),
            ("client_id", &s.chat.0),
            ("client_secret", &s.chat.1),
        ],
    )
    .await?;
    let claims = claims_of(tokens.json()?["id_token"].as_str().context("id_token")?)?;
    assert_eq!(claims["acr"], "urn:latchkey:acr:device-confirm");
    assert_eq!(claims["amr"], serde_json::json!(["pwd", "mca", "user"]));

    // Payroll (bound) in the same browser: the confirm approval does not
    // count, silently or interactively.
    let silent = format!(
        "{}&prompt=none",
        authorize_url(&s.payroll, RP_CALLBACK, "silent")
    );
    let answer = browser.get(&silent).await?;
    let to = answer.location().context("an answer to Payroll")?;
    assert_eq!(
        query_param(to, "error").as_deref(),
        Some("interaction_required"),
        "{to}"
    );
    let page = browser
        .get(&authorize_url(&s.payroll, RP_CALLBACK, "payroll"))
        .await?;
    let page = browser.follow(page).await?;
    assert!(
        page.body.contains("Authenticate with this device"),
        "{}",
        page.body
    );
    assert!(page.location().is_none());

    // A wrong number typed on the device refuses the sign-in, and says so.
    let mut other = Browser::new(s.sys.running().https_addr, &s.sys.ca_pem)?;
    let page = sign_in(
        &mut other,
        &authorize_url(&s.chat.0, RP_CALLBACK, "wrong"),
        "Chat",
        "alice@example.com",
        CHOSEN_PASSWORD,
    )
    .await?;
    let txn = page.attr("data-txn").context("txn")?;
    let shown: u32 = number_on(&page)?.parse()?;
    let wrong = if shown == 99 { 10 } else { shown + 1 };
    s.typist.types(&txn, &wrong.to_string());
    let refused = continue_after_device(&mut other, &page).await?;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains(r#"data-failure="wrong_number""#),
        "{}",
        refused.body
    );

    s.agent.stop().await?;
    s.sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attacker_pressing_try_again_cannot_flood_the_device_with_requests() -> Result<()> {
    let mut s = scene().await?;
    // Alice chose her own password long ago; the attacker has it.
    let mut alice = Browser::new(s.sys.running().https_addr, &s.sys.ca_pem)?;
    let page = sign_in(
        &mut alice,
        &authorize_url(&s.chat.0, RP_CALLBACK, "alice"),
        "Chat",
        "alice@example.com",
        &s.temporary,
    )
    .await?;
    s.typist
        .types(&page.attr("data-txn").context("txn")?, &number_on(&page)?);
    continue_after_device(&mut alice, &page).await?;
    let before = s.typist.prompts.load(Ordering::SeqCst);

    let mut attacker = Browser::new(s.sys.running().https_addr, &s.sys.ca_pem)?;
    let mut page = sign_in(
        &mut attacker,
        &authorize_url(&s.chat.0, RP_CALLBACK, "attacker"),
        "Chat",
        "alice@example.com",
        CHOSEN_PASSWORD,
    )
    .await?;
    // The form's request id is on the page; its CSRF token on any page of
    // the attacker's session (here the account page).
    let next = page.attr("data-next").context("next")?;
    let req = query_param(&format!("https://x{next}"), "req").context("req")?;
    let csrf = attacker
        .get("/account")
        .await?
        .input("csrf")
        .context("csrf")?;
    let mut started = 1;
    let mut refused = None;
    for _ in 0..12 {
        let after = attacker
            .post("/login/device", &[("req", &req), ("csrf", &csrf)])
            .await?;
        page = attacker.follow(after).await?;
        if page.body.contains(r#"data-failure="too_many_requests""#) {
            refused = Some(page.clone());
            break;
        }
        started += 1;
    }
    let refused = refused.context("the requests never stopped")?;
    assert_eq!(started, 5, "five requests, then no more");
    assert!(
        refused
            .body
            .contains("Too many sign-in requests were sent to your device"),
        "{}",
        refused.body
    );
    assert!(
        !refused.body.contains("Try again"),
        "no button to send more"
    );
    // The device was asked at most five times.
    let prompts = s.typist.prompts.load(Ordering::SeqCst) - before;
    assert!(prompts <= 5, "{prompts} prompts");

    s.agent.stop().await?;
    s.sys.stop().await
}
