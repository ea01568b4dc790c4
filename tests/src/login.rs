//! A user's steps through the sign-in pages and a client's token requests,
//! shared by the SSO tests and the benchmarks (`latchkey-bench`).

use anyhow::{Context, Result, ensure};
use latchkey_agent::device_auth::{Approval, Report};
use latchkey_agent::local::{self, Handover};
use latchkey_agent::run::RunOptions;

use crate::web::{Browser, WebResponse, request};
use crate::{Agent, System};

/// Where the test relying party says it receives codes (nothing listens).
pub const RP_CALLBACK: &str = "http://127.0.0.1:9/callback";
/// Where the test relying party sends the browser after a sign-out.
pub const RP_SIGNED_OUT: &str = "http://127.0.0.1:9/signed-out";

/// The password a user chooses after a temporary one.
pub const CHOSEN_PASSWORD: &str = "correct horse battery staple";

pub fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The authorize URL a confidential client without PKCE would send.
pub fn authorize_url(client_id: &str, redirect_uri: &str, state: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("scope", "openid email offline_access"),
            ("state", state),
            ("nonce", "n-0S6_WzA2Mj"),
        ])
        .finish();
    format!("/authorize?{query}")
}

/// A form POST to `/token`.
pub async fn token_request(sys: &System, form: &[(&str, &str)]) -> Result<WebResponse> {
    let tls = latchkey_certs::tls::client_config(&sys.ca_pem, None)?;
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    request(
        sys.running().https_addr,
        tls,
        "POST",
        "/token",
        &[(
            "Content-Type".into(),
            "application/x-www-form-urlencoded".into(),
        )],
        body.as_bytes(),
    )
    .await
}

/// Opens `authorize_url` and follows it to the sign-in form, which must
/// name `app_name`: the form's request id and CSRF token.
pub async fn open_sign_in(
    browser: &mut Browser,
    authorize_url: &str,
    app_name: &str,
) -> Result<(String, String)> {
    let page = browser.get(authorize_url).await?;
    let page = browser.follow(page).await?;
    ensure!(page.status == 200, "{}: {}", page.status, page.body);
    ensure!(page.body.contains("name=\"password\""), "{}", page.body);
    ensure!(page.body.contains(app_name), "{}", page.body);
    let req = page.input("req").context("req")?;
    let csrf = page.input("csrf").context("csrf")?;
    Ok((req, csrf))
}

/// Sends the sign-in form of request `req`; the page after it.
pub async fn submit_password(
    browser: &mut Browser,
    req: &str,
    csrf: &str,
    email: &str,
    password: &str,
) -> Result<WebResponse> {
    let after = browser
        .post(
            "/login",
            &[
                ("req", req),
                ("csrf", csrf),
                ("email", email),
                ("password", password),
            ],
        )
        .await?;
    browser.follow(after).await
}

/// Whether `page` is the form for a new password after a temporary one.
pub fn asks_new_password(page: &WebResponse) -> bool {
    page.body.contains("name=\"confirm\"")
}

/// On the new-password form `page` of request `req`: chooses
/// [`CHOSEN_PASSWORD`]; the response, not followed (a redirect to the
/// sign-in's next step when the password was taken).
pub async fn choose_password(
    browser: &mut Browser,
    req: &str,
    page: &WebResponse,
) -> Result<WebResponse> {
    // The session's cookie secret changed with the password: the form's
    // token is the new one.
    let csrf = page.input("csrf").context("csrf")?;
    browser
        .post(
            "/login/password",
            &[
                ("req", req),
                ("csrf", &csrf),
                ("password", CHOSEN_PASSWORD),
                ("confirm", CHOSEN_PASSWORD),
            ],
        )
        .await
}

/// Opens `authorize_url`, signs in on the form (choosing a new password
/// after a temporary one) and returns the page after that.
pub async fn sign_in(
    browser: &mut Browser,
    authorize_url: &str,
    app_name: &str,
    email: &str,
    password: &str,
) -> Result<WebResponse> {
    let (req, csrf) = open_sign_in(browser, authorize_url, app_name).await?;
    let mut page = submit_password(browser, &req, &csrf, email, password).await?;
    if asks_new_password(&page) {
        let after = choose_password(browser, &req, &page).await?;
        page = browser.follow(after).await?;
    }
    Ok(page)
}

/// Adds a user (`user add EMAIL ARGS…`) and gives them a temporary
/// password, which is returned.
pub async fn add_user_with_temporary_password(
    sys: &System,
    email: &str,
    args: &[&str],
) -> Result<String> {
    let mut add = vec!["user", "add", email];
    add.extend_from_slice(args);
    sys.ctl(&add).await?;
    let reset = sys.ctl_json(&["user", "reset-password", email]).await?;
    Ok(reset["temporary_password"]
        .as_str()
        .context("temporary password")?
        .to_owned())
}

/// Payroll (with `--device MODE`), Alice with a temporary password and her
/// enrolled agent running.
pub struct Setup {
    pub sys: System,
    pub agent: Agent,
    pub client_id: String,
    pub client_secret: String,
    /// Alice's temporary password.
    pub password: String,
}

/// An app with `--device bound`, a user with a password, and the user's
/// enrolled agent running (auto-approve off: bound mode needs no prompt).
pub async fn setup(device: &str) -> Result<Setup> {
    let sys = System::start().await?;
    let app = sys
        .ctl_json(&[
            "app",
            "add",
            "Payroll",
            "--redirect-uri",
            RP_CALLBACK,
            "--device",
            device,
            "--offline-access",
            "--post-logout-redirect-uri",
            RP_SIGNED_OUT,
        ])
        .await?;
    let client_id = app["client_id"].as_str().context("client id")?.to_owned();
    let client_secret = app["client_secret"].as_str().context("secret")?.to_owned();
    sys.ctl(&["group", "add", "staff"]).await?;
    let temporary = add_user_with_temporary_password(
        &sys,
        "alice@example.com",
        &["--name", "Alice Suzuki", "--group", "staff"],
    )
    .await?;
    let token = sys
        .enrollment_token(&["--user", "alice@example.com"])
        .await?;
    let mut agent = sys.enroll(&token).await?;
    agent.start(RunOptions {
        approval: Approval::Ask,
        ..RunOptions::default()
    });
    sys.wait_for_posture(&agent.device_id).await?;
    Ok(Setup {
        sys,
        agent,
        client_id,
        client_secret,
        password: temporary,
    })
}

/// Hands a `latchkey://` sign-in link to the agent's local channel, as the
/// URL handler does, without opening any browser: the agent's report (with
/// the redemption link and code of a confirmed `bound` answer) and the
/// connection on which the handler would ask where the proof went.
pub async fn hand_over(agent: &Agent, link: &str) -> Result<Handover> {
    Ok(local::hand_over(&local::socket_candidates(&agent.state), link).await?)
}

/// The agent's report for `link`, handed over as the URL handler does
/// (without opening any browser).
pub async fn agent_answers(
    agent: &Agent,
    link: &str,
) -> Result<Report, latchkey_agent::device_auth::DeviceAuthError> {
    local::hand_over(&local::socket_candidates(&agent.state), link)
        .await
        .map(|h| h.report)
}

/// On the "authenticate with this device" page: opens the link the button
/// carries the way the browser would (through the URL handler), brings
/// the agent's redemption link to this same browser (as the handler's
/// `xdg-open` would), waits as the page's script does, and continues.
pub async fn authenticate_with_device(
    browser: &mut Browser,
    agent: &Agent,
    page: &WebResponse,
) -> Result<(Report, WebResponse)> {
    assert!(
        page.body.contains("Authenticate with this device"),
        "{}",
        page.body
    );
    let txn = page.attr("data-txn").context("txn")?;
    let link = format!("latchkey://device-auth?txn={txn}");
    assert!(
        page.body.contains(&format!("href=\"{link}\"")),
        "{}",
        page.body
    );
    let next = page.attr("data-next").context("next")?;
    let report = hand_over(agent, &link).await?.report;
    if report.confirmed {
        let redeemed = browser.get(&report.redeem_url).await?;
        assert_eq!(redeemed.status, 200, "{}", redeemed.body);
        assert!(
            redeemed.body.contains("data-delivered"),
            "{}",
            redeemed.body
        );
    }
    let waited = browser.get(&format!("/login/wait?txn={txn}")).await?;
    assert_eq!(waited.status, 200);
    let status = waited.json()?["status"].as_str().unwrap_or("").to_owned();
    assert_ne!(
        status, "pending",
        "the answer is in before the wait returns"
    );
    let after = browser.get(&next).await?;
    Ok((report, browser.follow(after).await?))
}

/// `GET /userinfo` with a bearer token.
pub async fn userinfo(sys: &System, token: &str) -> Result<WebResponse> {
    let tls = latchkey_certs::tls::client_config(&sys.ca_pem, None)?;
    request(
        sys.running().https_addr,
        tls,
        "GET",
        "/userinfo",
        &[("Authorization".into(), format!("Bearer {token}"))],
        b"",
    )
    .await
}

impl Setup {
    /// A new browser in which Alice opens Payroll's `authorize_url(state)`
    /// and signs in with her temporary password (choosing her own); the
    /// page after the password.
    pub async fn alice_signs_in(&self, state: &str) -> Result<(Browser, WebResponse)> {
        let mut browser = Browser::new(self.sys.running().https_addr, &self.sys.ca_pem)?;
        let page = sign_in(
            &mut browser,
            &self.authorize_url(state),
            "Payroll",
            "alice@example.com",
            &self.password,
        )
        .await?;
        Ok((browser, page))
    }

    /// Payroll's authorize URL (confidential client, no PKCE).
    pub fn authorize_url(&self, state: &str) -> String {
        authorize_url(&self.client_id, RP_CALLBACK, state)
    }
}
