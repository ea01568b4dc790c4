//! What a sign-in refuses, each case asserting what the user (or the
//! client) sees: device answers that must not count (another user's device,
//! another device's key, a device out of compliance, an expired or replayed
//! transaction), and at the OpenID Connect endpoints a wrong redirect URI,
//! a PKCE mismatch, a reused refresh token, a user suspended mid-session and
//! too many password attempts.

// A test: a panic here is a failed test.
#![allow(clippy::expect_used, clippy::indexing_slicing, clippy::unwrap_used)]

use anyhow::{Context, Result};
use base64::Engine;
use latchkey_agent::device_auth::{Approval, statement_signed_by};
use latchkey_agent::run::RunOptions;
use latchkey_agent::{enroll, keystore};
use latchkey_proto::v1::{self, device_service_client::DeviceServiceClient};
use latchkey_tests::Agent;
use latchkey_tests::login::{
    self, RP_CALLBACK, Setup, agent_answers, authenticate_with_device, query_param, setup,
    token_request, userinfo,
};
use latchkey_tests::web::{Browser, WebResponse};
use sea_orm::ConnectionTrait;

/// Presses "try again" on a failure page and returns the new device page.
async fn try_again(browser: &mut Browser, page: &WebResponse) -> Result<WebResponse> {
    let req = page.input("req").context("req")?;
    let csrf = page.input("csrf").context("csrf")?;
    let after = browser
        .post("/login/device", &[("req", &req), ("csrf", &csrf)])
        .await?;
    browser.follow(after).await
}

/// The failure page the browser reaches after the device step.
async fn failure_page(browser: &mut Browser, page: &WebResponse) -> Result<WebResponse> {
    let next = page.attr("data-next").context("next")?;
    let after = browser.get(&next).await?;
    browser.follow(after).await
}

/// The agent reports the server's refusal, naming `says`.
fn agent_refused(
    result: &Result<
        latchkey_agent::device_auth::Report,
        latchkey_agent::device_auth::DeviceAuthError,
    >,
    says: &str,
) {
    let message = match result {
        Ok(report) => {
            assert!(!report.confirmed, "{report:?}");
            report.message.clone()
        }
        Err(e) => e.to_string(),
    };
    assert!(message.contains(says), "{says}: {message}");
}

fn assert_failure(page: &WebResponse, code: &str, text: &str) {
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(
        page.body.contains(&format!("data-failure=\"{code}\"")),
        "{code}: {}",
        page.body
    );
    assert!(page.body.contains(text), "{text}: {}", page.body);
}

/// Answers `txn` over Alice's own mTLS channel, but signed with `signer`'s
/// device key.
async fn answer_signed_by(
    alice: &Agent,
    signer: &Agent,
    txn: &str,
) -> Result<v1::AnswerDeviceAuthResponse> {
    let enrollment = alice.state.enrollment()?;
    let chain = alice.state.certificate_chain()?;
    let key = keystore::load(&alice.state)?;
    let ca = alice.state.ca()?.context("ca")?;
    let channel =
        enroll::channel(&enrollment.server_url, &ca, Some((chain.as_str(), &key))).await?;
    let mut client = DeviceServiceClient::new(channel);
    let challenge = client
        .get_device_auth(v1::GetDeviceAuthRequest {
            txn_id: txn.to_owned(),
        })
        .await?
        .into_inner();
    let foreign =
        latchkey_certs::jose::SigningKey::from_pkcs8_pem(keystore::load(&signer.state)?.expose())?;
    let signed = statement_signed_by(&foreign, &alice.device_id, &challenge, None)?;
    Ok(client
        .answer_device_auth(v1::AnswerDeviceAuthRequest { signed })
        .await?
        .into_inner())
}

/// Bob with his own enrolled (and running) agent.
async fn bob_with_device(s: &Setup) -> Result<Agent> {
    s.sys
        .ctl(&["user", "add", "bob@example.com", "--name", "Bob Tanaka"])
        .await?;
    let token = s
        .sys
        .enrollment_token(&["--user", "bob@example.com"])
        .await?;
    let mut bob = s.sys.enroll(&token).await?;
    bob.start(RunOptions {
        approval: Approval::Ask,
        ..RunOptions::default()
    });
    s.sys.wait_for_posture(&bob.device_id).await?;
    Ok(bob)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_answers_that_must_not_count_are_refused_with_the_reason() -> Result<()> {
    let mut s = setup("bound").await?;
    let mut bob = bob_with_device(&s).await?;
    let policy_file = s.sys.dir.path().join("strict.toml");
    std::fs::write(
        &policy_file,
        "[compliance]\nmin_os_version = { linux = \"999\" }\n",
    )?;
    s.sys
        .ctl(&[
            "policy",
            "set",
            "strict",
            policy_file.to_str().context("path")?,
        ])
        .await?;
    s.sys
        .ctl(&["policy", "assign", "strict", "--device", &s.agent.device_id])
        .await?;

    let (mut browser, page) = s.alice_signs_in("refusals").await?;

    // prompt=none while the device step is still open: an error for the
    // client, no page and no ceremony started.
    let silent = browser
        .get(&format!("{}&prompt=none", s.authorize_url("silent")))
        .await?;
    let to = silent.location().context("redirect to the client")?;
    assert!(to.starts_with(RP_CALLBACK), "{to}");
    assert_eq!(
        query_param(to, "error").as_deref(),
        Some("interaction_required")
    );

    // Out of compliance: the page names the failing check.
    let (report, page) = authenticate_with_device(&mut browser, &s.agent, &page).await?;
    assert!(!report.confirmed);
    assert_failure(&page, "not_compliant", "Fix the following");
    assert!(
        page.body.contains("data-check=\"os_version\""),
        "{}",
        page.body
    );

    // Bob's device answering Alice's sign-in is refused, and Alice sees why.
    std::fs::write(&policy_file, "[compliance]\n")?;
    s.sys
        .ctl(&[
            "policy",
            "set",
            "strict",
            policy_file.to_str().context("path")?,
        ])
        .await?;
    let page = try_again(&mut browser, &page).await?;
    let txn = page.attr("data-txn").context("txn")?;
    let link = format!("latchkey://device-auth?txn={txn}");
    agent_refused(&agent_answers(&bob, &link).await, "another user");
    let page = failure_page(&mut browser, &page).await?;
    assert_failure(&page, "other_user", "assigned to another user");

    // Alice's channel, but a statement signed with Bob's device key.
    let page = try_again(&mut browser, &page).await?;
    let txn = page.attr("data-txn").context("txn")?;
    let answer = answer_signed_by(&s.agent, &bob, &txn).await?;
    assert!(!answer.confirmed);
    assert_eq!(answer.failure, "bad_signature");
    let page = failure_page(&mut browser, &page).await?;
    assert_failure(&page, "bad_signature", "could not be verified");

    // A transaction past its time: the agent is told, the page says the
    // device did not answer in time.
    let page = try_again(&mut browser, &page).await?;
    let txn = page.attr("data-txn").context("txn")?;
    let db = s.sys.database().await?;
    db.execute_unprepared(&format!(
        "UPDATE device_auth_txns SET expires_at = created_at - 1 WHERE id = '{txn}'"
    ))
    .await?;
    agent_refused(
        &agent_answers(&s.agent, &format!("latchkey://device-auth?txn={txn}")).await,
        "expired",
    );
    let page = failure_page(&mut browser, &page).await?;
    assert_failure(&page, "not_answered", "did not answer");

    // Now a good answer; replaying it (the same link again) is refused.
    let page = try_again(&mut browser, &page).await?;
    let txn = page.attr("data-txn").context("txn")?;
    let (report, landed) = authenticate_with_device(&mut browser, &s.agent, &page).await?;
    assert!(report.confirmed);
    let url = landed.location().context("back to the app")?;
    assert!(url.starts_with(RP_CALLBACK), "{url}");
    agent_refused(
        &agent_answers(&s.agent, &format!("latchkey://device-auth?txn={txn}")).await,
        "answered already",
    );

    bob.stop().await?;
    s.agent.stop().await?;
    s.sys.stop().await
}

/// Transaction ids of another shape, from a browser or from a device, name
/// nothing: the waiting page hears "unknown", a redemption link is expired,
/// a device is told there is no such sign-in (or that its proof's wait is
/// over). The sign-in they were aimed at goes on untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_ids_of_another_shape_name_nothing() -> Result<()> {
    let mut s = setup("bound").await?;
    let (mut browser, page) = s.alice_signs_in("shapes").await?;
    let txn = page.attr("data-txn").context("txn")?;
    assert_eq!(txn.len(), 32, "{txn}");
    let enrollment = s.agent.state.enrollment()?;
    let chain = s.agent.state.certificate_chain()?;
    let key = keystore::load(&s.agent.state)?;
    let ca = s.agent.state.ca()?.context("ca")?;
    let channel =
        enroll::channel(&enrollment.server_url, &ca, Some((chain.as_str(), &key))).await?;
    let mut device = DeviceServiceClient::new(channel);
    let malformed = [
        String::new(),
        "x".into(),
        format!("{}A", &txn[..31]),
        format!("{}g", &txn[..31]),
        format!("{txn}0"),
        format!(" {txn}"),
        "\0".repeat(32),
        "é".repeat(16),
        "a".repeat(2000),
    ];
    for bad in &malformed {
        let q: String = url::form_urlencoded::byte_serialize(bad.as_bytes()).collect();
        let waited = browser.get(&format!("/login/wait?txn={q}")).await?;
        assert_eq!(waited.status, 200, "{bad:?}: {}", waited.body);
        assert_eq!(waited.body, r#"{"status":"unknown"}"#, "{bad:?}");
        let redeemed = browser
            .get(&format!(
                "/login/device/redeem?txn={q}&proof={}",
                "0".repeat(64)
            ))
            .await?;
        assert_eq!(redeemed.status, 400, "{bad:?}: {}", redeemed.body);
        let refused = device
            .get_device_auth(v1::GetDeviceAuthRequest {
                txn_id: bad.clone(),
            })
            .await
            .expect_err("no such sign-in");
        assert_eq!(
            refused.code(),
            tonic::Code::NotFound,
            "{bad:?}: {refused:?}"
        );
        let delivery = device
            .await_device_auth_delivery(v1::AwaitDeviceAuthDeliveryRequest {
                txn_id: bad.clone(),
            })
            .await?
            .into_inner();
        assert_eq!(delivery.state, "over", "{bad:?}");
    }

    let (report, landed) = authenticate_with_device(&mut browser, &s.agent, &page).await?;
    assert!(report.confirmed, "{report:?}");
    let url = landed.location().context("back to the app")?;
    assert!(url.starts_with(RP_CALLBACK), "{url}");
    s.agent.stop().await?;
    s.sys.stop().await
}

/// Signs Alice in through her device (her password already chosen) and
/// returns the code the client received.
async fn code_for(
    s: &Setup,
    browser: &mut Browser,
    authorize: &str,
    password: &str,
) -> Result<String> {
    let page = login::sign_in(browser, authorize, "Payroll", "alice@example.com", password).await?;
    let (_, landed) = authenticate_with_device(browser, &s.agent, &page).await?;
    let url = landed.location().context("back to the app")?;
    query_param(url, "code").context("code")
}

async fn exchange(s: &Setup, code: &str, verifier: Option<&str>) -> Result<WebResponse> {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", RP_CALLBACK),
        ("client_id", s.client_id.as_str()),
        ("client_secret", s.client_secret.as_str()),
    ];
    if let Some(verifier) = verifier {
        form.push(("code_verifier", verifier));
    }
    token_request(&s.sys, &form).await
}

async fn refresh(s: &Setup, token: &str) -> Result<WebResponse> {
    token_request(
        &s.sys,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", s.client_id.as_str()),
            ("client_secret", s.client_secret.as_str()),
        ],
    )
    .await
}

fn invalid_grant(response: &WebResponse, says: &str) -> Result<()> {
    assert_eq!(response.status, 400, "{}", response.body);
    let body = response.json()?;
    assert_eq!(body["error"], "invalid_grant");
    let description = body["error_description"].as_str().unwrap_or("");
    assert!(description.contains(says), "{description}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoints_refuse_what_a_client_or_an_attacker_gets_wrong() -> Result<()> {
    let mut s = setup("bound").await?;
    let addr = s.sys.running().https_addr;

    // An unregistered redirect URI: a page, never a redirect.
    let mut browser = Browser::new(addr, &s.sys.ca_pem)?;
    let evil = s
        .authorize_url("x")
        .replace("127.0.0.1%3A9%2Fcallback", "127.0.0.1%3A9%2Fsteal");
    let page = browser.get(&evil).await?;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.location().is_none(), "no redirect to an unknown URI");
    assert!(page.body.contains("data-error=\"bad_redirect_uri\""));

    // Address rules: an app open only to 10.0.0.0/8 turns this loopback
    // browser away with a page that says why and shows its address.
    let typo = s
        .sys
        .ctl(&["app", "update", "Payroll", "--allow-ip", "10.1.2.3/8"])
        .await;
    assert!(
        typo.as_ref()
            .is_err_and(|e| e.to_string().contains("did you mean 10.0.0.0/8")),
        "{typo:?}"
    );
    s.sys
        .ctl(&["app", "update", "Payroll", "--allow-ip", "10.0.0.0/8"])
        .await?;
    let mut outsider = Browser::new(addr, &s.sys.ca_pem)?;
    let page = outsider.get(&s.authorize_url("outside")).await?;
    let page = outsider.follow(page).await?;
    assert_failure(&page, "network_denied", "only from its own networks");
    assert!(page.body.contains("127.0.0.1"), "{}", page.body);
    s.sys.ctl(&["app", "update", "Payroll", "--any-ip"]).await?;

    // PKCE: the code goes only with the verifier its challenge came from.
    let verifier = "A".repeat(43);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(latchkey_certs::sha256(verifier.as_bytes()));
    let with_pkce = format!(
        "{}&code_challenge={challenge}&code_challenge_method=S256",
        s.authorize_url("pkce")
    );
    let code = code_for(&s, &mut browser, &with_pkce, &s.password).await?;
    let wrong = exchange(&s, &code, Some(&"B".repeat(43))).await?;
    invalid_grant(&wrong, "code_verifier does not match")?;
    let after = exchange(&s, &code, Some(&verifier)).await?;
    invalid_grant(&after, "used before")?;

    // prompt=none: the session and its confirmed device give a code at
    // once; a browser without a session is told login_required.
    let silent = format!("{}&prompt=none", s.authorize_url("silent"));
    let answered = browser.get(&silent).await?;
    let to = answered.location().context("redirect")?;
    assert!(query_param(to, "code").is_some(), "{to}");
    let mut stranger = Browser::new(addr, &s.sys.ca_pem)?;
    let answered = stranger.get(&silent).await?;
    let to = answered.location().context("redirect")?;
    assert_eq!(query_param(to, "error").as_deref(), Some("login_required"));

    // Refresh tokens rotate; presenting the old one again ends the session.
    let page = browser.get(&s.authorize_url("again")).await?;
    let landed = browser.follow(page).await?;
    let code = query_param(landed.location().context("code")?, "code").context("code")?;
    let tokens = exchange(&s, &code, None).await?.json()?;
    let first = tokens["refresh_token"]
        .as_str()
        .context("refresh")?
        .to_owned();
    let rotated = refresh(&s, &first).await?;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let second = rotated.json()?["refresh_token"]
        .as_str()
        .context("refresh")?
        .to_owned();
    invalid_grant(&refresh(&s, &first).await?, "session has been ended")?;
    invalid_grant(&refresh(&s, &second).await?, "")?;
    let page = browser.get(&s.authorize_url("after-reuse")).await?;
    let page = browser.follow(page).await?;
    assert!(
        page.body.contains("name=\"password\""),
        "the browser's session ended with the stolen token: {}",
        page.body
    );

    // A user suspended mid-session: tokens stop working at once and the
    // sign-in form says no more than for a wrong password.
    let mut fresh = Browser::new(addr, &s.sys.ca_pem)?;
    let code = code_for(
        &s,
        &mut fresh,
        &s.authorize_url("before-suspend"),
        login::CHOSEN_PASSWORD,
    )
    .await?;
    let tokens = exchange(&s, &code, None).await?.json()?;
    let access = tokens["access_token"]
        .as_str()
        .context("access")?
        .to_owned();
    let refresh_token = tokens["refresh_token"]
        .as_str()
        .context("refresh")?
        .to_owned();
    assert_eq!(userinfo(&s.sys, &access).await?.status, 200);
    s.sys.ctl(&["user", "suspend", "alice@example.com"]).await?;
    assert_eq!(userinfo(&s.sys, &access).await?.status, 401);
    invalid_grant(&refresh(&s, &refresh_token).await?, "")?;
    let page = fresh.get(&s.authorize_url("suspended")).await?;
    let page = fresh.follow(page).await?;
    assert!(page.body.contains("name=\"password\""), "{}", page.body);
    let req = page.input("req").context("req")?;
    let csrf = page.input("csrf").context("csrf")?;
    let refused = fresh
        .post(
            "/login",
            &[
                ("req", &req),
                ("csrf", &csrf),
                ("email", "alice@example.com"),
                ("password", login::CHOSEN_PASSWORD),
            ],
        )
        .await?;
    assert_eq!(refused.status, 401);
    assert!(
        refused
            .body
            .contains("The email address or password is not correct.")
    );

    // Too many attempts: after five failures even the right password waits,
    // for a known and an unknown account alike, counted across replicas
    // (the guesses alternate between this server and a second one on the
    // same database).
    let replica = s.sys.replica().await?;
    let servers = [addr, replica.running.https_addr];
    for login_name in ["bob@example.com", "nobody@example.com"] {
        if login_name == "bob@example.com" {
            s.sys
                .ctl(&["user", "add", login_name, "--name", "Bob"])
                .await?;
        }
        let mut guesser = Browser::new(addr, &s.sys.ca_pem)?;
        let page = guesser.get(&s.authorize_url("guess")).await?;
        let page = guesser.follow(page).await?;
        let req = page.input("req").context("req")?;
        let csrf = page.input("csrf").context("csrf")?;
        let mut statuses = Vec::new();
        for guess in 0..6 {
            guesser.through(servers[guess % 2]);
            let response = guesser
                .post(
                    "/login",
                    &[
                        ("req", &req),
                        ("csrf", &csrf),
                        ("email", login_name),
                        ("password", "guess-123456"),
                    ],
                )
                .await?;
            statuses.push(response.status);
            if response.status == 429 {
                assert!(response.body.contains("Too many attempts"));
                let retry: u64 = response
                    .header("retry-after")
                    .context("Retry-After")?
                    .parse()?;
                assert!((1..=30).contains(&retry), "{retry}");
            }
        }
        assert_eq!(statuses, [401, 401, 401, 401, 401, 429], "{login_name}");
    }
    replica.stop().await;

    s.agent.stop().await?;
    s.sys.stop().await
}
