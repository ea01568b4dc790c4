//! Device-bound login from an Apple device: the identity certificate its
//! enrollment profile installed answers the sign-in's mobile path (the
//! device listener asks for a client certificate), mapped to the device by
//! its key; locked or lost, the same device is refused with the same page.

use anyhow::{Context, Result};
use latchkey_tests::apple::{SimulatedAppleDevice, enrolled_device};
use latchkey_tests::login::{CHOSEN_PASSWORD, RP_CALLBACK, query_param, setup, sign_in};
use latchkey_tests::web::{Browser, WebResponse, request};

/// Where a sign-in from the phone ended.
#[derive(Debug)]
enum Outcome {
    /// Back at the app with an authorization code.
    App { code: String },
    /// A refusal page (its body).
    Refused(WebResponse),
}

/// Alice opens Payroll in a new browser on her phone, picks the phone
/// (`device_id`) when asked which device, and answers the device step
/// with the phone's identity certificate.
async fn phone_sign_in(
    s: &latchkey_tests::login::Setup,
    phone: &SimulatedAppleDevice,
    device_id: Option<&str>,
    state: &str,
) -> Result<Outcome> {
    // The first sign-in replaces the temporary password with her own.
    let mut browser = Browser::new(s.sys.running().https_addr, &s.sys.ca_pem)?;
    let password = if state.ends_with("-1") {
        s.password.as_str()
    } else {
        CHOSEN_PASSWORD
    };
    let mut page = sign_in(
        &mut browser,
        &s.authorize_url(state),
        "Payroll",
        "alice@example.com",
        password,
    )
    .await?;
    if page.body.contains("action=\"/login/device\"") && page.body.contains("name=\"device\"") {
        let req = page.input("req").context("req")?;
        let csrf = page.input("csrf").context("csrf")?;
        let chosen = browser
            .post(
                "/login/device",
                &[
                    ("req", &req),
                    ("csrf", &csrf),
                    ("device", device_id.context("a device to choose")?),
                ],
            )
            .await?;
        page = browser.follow(chosen).await?;
    }
    let marker = "id=\"mobile-link\" href=\"";
    let Some(start) = page.body.find(marker).map(|i| i + marker.len()) else {
        return Ok(Outcome::Refused(page));
    };
    let end = page
        .body
        .get(start..)
        .and_then(|rest| rest.find('"'))
        .context("link end")?
        + start;
    let link = page
        .body
        .get(start..end)
        .context("link")?
        .replace("&amp;", "&");
    let device_addr = s.sys.running().https_device_addr;
    let path = link
        .strip_prefix(&format!("https://localhost:{}", device_addr.port()))
        .with_context(|| format!("{link} is on the device listener"))?
        .to_owned();
    let cookie = browser
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let (chain, key) = phone.tls_identity().context("the phone has its identity")?;
    let tls = latchkey_certs::tls::client_config(&s.sys.ca_pem, Some((&chain, &key)))?;
    let answered = request(
        device_addr,
        tls,
        "GET",
        &path,
        &[("Cookie".to_owned(), cookie)],
        b"",
    )
    .await?;
    if answered.status != 303 {
        return Ok(Outcome::Refused(answered));
    }
    let landed = browser.follow(answered).await?;
    match landed.location() {
        Some(url) if url.starts_with(RP_CALLBACK) => Ok(Outcome::App {
            code: query_param(url, "code").context("a code")?.to_owned(),
        }),
        _ => Ok(Outcome::Refused(landed)),
    }
}

/// The device is refused as locked: at the device step (`device_locked`)
/// or, when the step had already begun, where the certificate is
/// presented (`no_device_certificate`, whose text names a locked device).
fn refused_as_locked(outcome: &Outcome) {
    match outcome {
        Outcome::Refused(page) => assert!(
            page.body.contains("data-failure=\"device_locked\"")
                || (page.body.contains("data-failure=\"no_device_certificate\"")
                    && page.body.contains("locked")),
            "refused, but not as locked: {}",
            page.body
        ),
        Outcome::App { .. } => panic!("signed in from a locked device"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iphones_identity_signs_its_user_in_until_the_iphone_is_locked() -> Result<()> {
    let s = setup("bound").await?;
    let (phone, id) = enrolled_device(
        &s.sys,
        SimulatedAppleDevice::iphone,
        Some("alice@example.com"),
    )
    .await?;

    let first = phone_sign_in(&s, &phone, Some(&id), "phone-1").await?;
    assert!(
        matches!(&first, Outcome::App { code } if !code.is_empty()),
        "{first:?}"
    );

    // Locked by the helpdesk: the same phone is refused at once.
    s.sys.ctl(&["device", "lock", &id]).await?;
    let locked = phone_sign_in(&s, &phone, Some(&id), "phone-2").await?;
    refused_as_locked(&locked);

    // Unlocked it signs in again; lost, it is refused again.
    s.sys.ctl(&["device", "unlock", &id]).await?;
    let again = phone_sign_in(&s, &phone, Some(&id), "phone-3").await?;
    assert!(
        matches!(&again, Outcome::App { code } if !code.is_empty()),
        "{again:?}"
    );
    s.sys
        .ctl(&["device", "lock", &id, "--lost", "--phone", "110"])
        .await?;
    let lost = phone_sign_in(&s, &phone, Some(&id), "phone-4").await?;
    refused_as_locked(&lost);
    s.sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locking_every_device_of_alice_at_once_refuses_her_iphone_at_once() -> Result<()> {
    let s = setup("bound").await?;
    let (phone, id) = enrolled_device(
        &s.sys,
        SimulatedAppleDevice::iphone,
        Some("alice@example.com"),
    )
    .await?;
    let first = phone_sign_in(&s, &phone, Some(&id), "phone-1").await?;
    assert!(
        matches!(&first, Outcome::App { code } if !code.is_empty()),
        "{first:?}"
    );

    // Her bag is stolen: the helpdesk locks all her devices in one call,
    // and the phone is refused before it has even fetched its lock.
    let answer = s
        .sys
        .ctl(&["device", "lock", "--user", "alice@example.com"])
        .await?;
    // Her laptop (the setup enrolled it) and her phone.
    assert!(answer.contains("2 locked, 0 skipped"), "{answer}");
    let locked = phone_sign_in(&s, &phone, Some(&id), "phone-2").await?;
    refused_as_locked(&locked);
    s.sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iphone_enrolled_for_another_user_does_not_sign_alice_in() -> Result<()> {
    let s = setup("bound").await?;
    let (phone, _) = enrolled_device(
        &s.sys,
        SimulatedAppleDevice::iphone,
        Some("bob@example.com"),
    )
    .await?;
    let outcome = phone_sign_in(&s, &phone, None, "someone-elses-1").await?;
    assert!(matches!(outcome, Outcome::Refused(_)), "{outcome:?}");
    s.sys.stop().await
}
