//! Which address a sign-in is judged by. A client cannot choose its own
//! address with `X-Forwarded-For`: the header counts only when a proxy the
//! server trusts (`[https] trusted_proxies`) put it there, and then only
//! the address that proxy saw, not what the client wrote to its left.

// A test: a panic here is a failed test.
#![allow(clippy::expect_used, clippy::indexing_slicing, clippy::unwrap_used)]

use std::sync::Arc;

use anyhow::{Context, Result};
use latchkey_tests::System;
use latchkey_tests::login::{RP_CALLBACK, authorize_url, sign_in};
use latchkey_tests::web::{Browser, WebResponse};

/// An intranet app open only to 203.0.113.0/24, and Alice.
async fn intranet(sys: &System) -> Result<(String, String)> {
    let app = sys
        .ctl_json(&[
            "app",
            "add",
            "Intranet",
            "--redirect-uri",
            RP_CALLBACK,
            "--device",
            "none",
            "--allow-ip",
            "203.0.113.0/24",
        ])
        .await?;
    sys.ctl(&["user", "add", "alice@example.com", "--name", "Alice Suzuki"])
        .await?;
    let reset = sys
        .ctl_json(&["user", "reset-password", "alice@example.com"])
        .await?;
    Ok((
        app["client_id"].as_str().context("client id")?.to_owned(),
        reset["temporary_password"]
            .as_str()
            .context("temporary password")?
            .to_owned(),
    ))
}

fn browser_claiming(sys: &System, forwarded_for: &str) -> Result<Browser> {
    let mut browser = Browser::new(sys.running().https_addr, &sys.ca_pem)?;
    browser
        .extra_headers
        .push(("X-Forwarded-For".into(), forwarded_for.into()));
    Ok(browser)
}

/// The first page of a sign-in to the intranet from a browser whose
/// requests carry `forwarded_for`.
async fn first_page(sys: &System, client_id: &str, forwarded_for: &str) -> Result<WebResponse> {
    let mut browser = browser_claiming(sys, forwarded_for)?;
    let page = browser
        .get(&authorize_url(client_id, RP_CALLBACK, "s"))
        .await?;
    browser.follow(page).await
}

fn denied_from(page: &WebResponse, ip: &str) {
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(
        page.body.contains(r#"data-failure="network_denied""#),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains(&format!(r#"<span class="ip">{ip}</span>"#)),
        "{ip}: {}",
        page.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_header_from_an_untrusted_peer_is_ignored() -> Result<()> {
    let sys = System::start().await?;
    let (client_id, _) = intranet(&sys).await?;
    let page = first_page(&sys, &client_id, "203.0.113.9").await?;
    denied_from(&page, "127.0.0.1");
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_the_address_it_saw_counts_and_nothing_to_its_left() -> Result<()> {
    let sys = System::start_configured(Arc::new(|file| {
        file.https.trusted_proxies = Some(vec!["127.0.0.1/32".into()]);
    }))
    .await?;
    let (client_id, password) = intranet(&sys).await?;
    // The client forged 203.0.113.9; the proxy appended what it saw.
    let page = first_page(&sys, &client_id, "203.0.113.9, 198.51.100.4").await?;
    denied_from(&page, "198.51.100.4");
    // The proxy saw a client inside the allowed block: the sign-in goes on.
    let mut browser = browser_claiming(&sys, "198.51.100.4, 203.0.113.9")?;
    let page = sign_in(
        &mut browser,
        &authorize_url(&client_id, RP_CALLBACK, "s"),
        "Intranet",
        "alice@example.com",
        &password,
    )
    .await?;
    assert!(
        page.location().is_some_and(|l| l.starts_with(RP_CALLBACK)),
        "{}",
        page.body
    );
    sys.stop().await
}
