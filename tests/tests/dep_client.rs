//! The ADE (DEP) client against the fake Apple service: from the key pair
//! an admin uploads, through the token file Apple hands back, to sessions,
//! device fetch and sync, profiles, and every way Apple says no.

// Helpers of a test file: a panic is the failed check.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chrono::Utc;
use latchkey_certs::dep::{DepTokenError, decrypt_dep_token, generate_dep_keypair};
use latchkey_tests::fake_dep::{FakeDep, FakeDevice};
use latchkeyd::dep::{
    AssignStatus, DepClient, DepConfig, DepCursor, DepError, DepProfile, DepProfileUuid, DeviceOp,
    ProfileStatus,
};
use latchkeyd::http_client::{HttpClient, HttpClientConfig, HttpError, HttpRequest, TrustRoots};

const USER_AGENT: &str = "latchkey-test/0.1";

fn http(max_response_bytes: usize) -> HttpClient {
    let mut config = HttpClientConfig::new(USER_AGENT);
    config.roots = TrustRoots::Bundled;
    config.max_response_bytes = max_response_bytes;
    config.request_timeout = Duration::from_secs(10);
    HttpClient::new(config).unwrap()
}

fn client_with(fake: &FakeDep, token: latchkey_certs::dep::DepServerToken) -> DepClient {
    let config = DepConfig {
        base_url: fake.url().to_owned(),
        user_agent: USER_AGENT.to_owned(),
    };
    DepClient::new(config, token, http(1024 * 1024)).unwrap()
}

fn client(fake: &FakeDep) -> DepClient {
    client_with(fake, fake.token())
}

/// A fake with `n` Macs, C0000 … C000(n-1).
async fn fake_with_devices(n: usize) -> FakeDep {
    let fake = FakeDep::start().await.unwrap();
    for i in 0..n {
        fake.add_device(FakeDevice::mac(&format!("C000{i}")));
    }
    fake
}

#[tokio::test]
async fn the_uploaded_certificate_gets_a_token_that_opens_a_session_and_reads_the_account() {
    let fake = FakeDep::start().await.unwrap();
    let now = Utc::now();
    let (certificate, key) = generate_dep_keypair("Latchkey ADE", now).unwrap();
    let p7m = fake.token_p7m_for(&certificate).unwrap();
    let token = decrypt_dep_token(&p7m, &certificate, &key).unwrap();
    assert_eq!(token, fake.token());

    let dep = client_with(&fake, token);
    let account = dep.account(Utc::now()).await.unwrap();
    assert_eq!(account.server_uuid, Some(fake.server_uuid()));
    assert_eq!(account.org_name.as_deref(), Some("Example Org"));
    assert_eq!(account.admin_id.as_deref(), Some("admin@example.com"));
    // A second call reuses the session.
    dep.account(Utc::now()).await.unwrap();
    assert_eq!(fake.requests("GET /session"), 1);
    assert_eq!(fake.requests("GET /account"), 2);
}

#[tokio::test]
async fn a_full_fetch_pages_through_every_device_then_the_cursor_is_exhausted() {
    let fake = fake_with_devices(5).await;
    let dep = client(&fake);
    let mut serials = Vec::new();
    let mut cursor: Option<DepCursor> = None;
    let mut pages = 0;
    loop {
        let page = dep
            .fetch_devices(cursor.as_ref(), Some(2), Utc::now())
            .await
            .unwrap();
        pages += 1;
        assert!(page.devices.len() <= 2);
        serials.extend(page.devices.iter().map(|d| d.serial_number.clone()));
        cursor = Some(page.cursor);
        if !page.more_to_follow {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(serials, ["C0000", "C0001", "C0002", "C0003", "C0004"]);

    let first = dep.fetch_devices(None, Some(1), Utc::now()).await.unwrap();
    let device = &first.devices[0];
    assert_eq!(device.model.as_deref(), Some("MacBook Air (M2, 2022)"));
    assert_eq!(device.os.as_deref(), Some("OSX"));
    assert_eq!(device.device_family.as_deref(), Some("Mac"));
    assert_eq!(device.color.as_deref(), Some("SILVER"));
    assert_eq!(device.profile_status, Some(ProfileStatus::Empty));
    assert_eq!(
        device.device_assigned_by.as_deref(),
        Some("admin@example.com")
    );
    assert!(device.device_assigned_date.is_some());
    assert_eq!(device.op_type, None);

    let err = dep
        .fetch_devices(cursor.as_ref(), Some(2), Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(err, DepError::CursorExhausted), "{err}");
}

#[tokio::test]
async fn sync_picks_up_an_added_a_modified_and_a_deleted_device() {
    let fake = fake_with_devices(3).await;
    let dep = client(&fake);
    let fetched = dep.fetch_devices(None, None, Utc::now()).await.unwrap();
    assert_eq!(fetched.devices.len(), 3);
    assert!(!fetched.more_to_follow);

    // Nothing happened yet.
    let quiet = dep
        .sync_devices(&fetched.cursor, None, Utc::now())
        .await
        .unwrap();
    assert!(quiet.devices.is_empty());

    fake.add_device(FakeDevice::iphone("F1NEW"));
    fake.modify_device("C0001", |d| d.asset_tag = Some("IT-0042".into()));
    fake.delete_device("C0002");
    let delta = dep
        .sync_devices(&quiet.cursor, None, Utc::now())
        .await
        .unwrap();
    let ops: Vec<(String, Option<DeviceOp>)> = delta
        .devices
        .iter()
        .map(|d| (d.serial_number.clone(), d.op_type.clone()))
        .collect();
    assert_eq!(
        ops,
        [
            ("F1NEW".to_owned(), Some(DeviceOp::Added)),
            ("C0001".to_owned(), Some(DeviceOp::Modified)),
            ("C0002".to_owned(), Some(DeviceOp::Deleted)),
        ]
    );
    assert!(delta.devices.iter().all(|d| d.op_date.is_some()));
    assert_eq!(delta.devices[0].device_family.as_deref(), Some("iPhone"));
    assert_eq!(delta.devices[1].asset_tag.as_deref(), Some("IT-0042"));

    // The next sync starts after them.
    let after = dep
        .sync_devices(&delta.cursor, None, Utc::now())
        .await
        .unwrap();
    assert!(after.devices.is_empty());
}

#[tokio::test]
async fn an_expired_session_is_renewed_without_the_caller_noticing() {
    let fake = fake_with_devices(1).await;
    let dep = client(&fake);
    dep.account(Utc::now()).await.unwrap();
    assert_eq!(fake.requests("GET /session"), 1);

    fake.expire_sessions();
    dep.account(Utc::now()).await.unwrap();
    assert_eq!(fake.requests("GET /session"), 2);
    // The refused call and its retry.
    assert_eq!(fake.requests("GET /account"), 3);

    // A clone shares the renewed session.
    let clone = dep.clone();
    clone.fetch_devices(None, None, Utc::now()).await.unwrap();
    assert_eq!(fake.requests("GET /session"), 2);
}

#[tokio::test]
async fn an_unknown_session_403_forbidden_is_renewed() {
    let fake = fake_with_devices(1).await;
    let dep = client(&fake);
    dep.account(Utc::now()).await.unwrap();
    fake.forget_sessions();
    dep.fetch_devices(None, None, Utc::now()).await.unwrap();
    assert_eq!(fake.requests("GET /session"), 2);
    assert_eq!(fake.requests("POST /server/devices"), 2);
}

#[tokio::test]
async fn a_rotated_session_is_taken_up() {
    let fake = fake_with_devices(1).await;
    fake.rotate_sessions(true);
    let dep = client(&fake);
    for _ in 0..4 {
        dep.account(Utc::now()).await.unwrap();
    }
    // Each answer retired the session it was sent with; had the client kept
    // the old one, every call after the first would have needed a new one.
    assert_eq!(fake.requests("GET /session"), 1);
    assert_eq!(fake.requests("GET /account"), 4);
}

#[tokio::test]
async fn concurrent_calls_share_one_new_session() {
    let fake = fake_with_devices(1).await;
    let dep = client(&fake);
    let calls = (0..8).map(|_| {
        let dep = dep.clone();
        tokio::spawn(async move { dep.account(Utc::now()).await })
    });
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(fake.requests("GET /session"), 1);
}

#[tokio::test]
async fn cursor_errors_come_back_as_their_own_errors() {
    let fake = fake_with_devices(2).await;
    let dep = client(&fake);
    let page = dep.fetch_devices(None, None, Utc::now()).await.unwrap();

    assert!(fake.expire_cursor(page.cursor.as_str()));
    let err = dep
        .sync_devices(&page.cursor, None, Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(err, DepError::CursorExpired), "{err}");
    let err = dep
        .fetch_devices(Some(&page.cursor), None, Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(err, DepError::CursorExpired), "{err}");

    let unknown = DepCursor::new("00ff00ff");
    let err = dep
        .sync_devices(&unknown, None, Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(err, DepError::CursorInvalid), "{err}");

    // A cursor error is not a session problem: no new session was asked for.
    assert_eq!(fake.requests("GET /session"), 1);
}

#[tokio::test]
async fn a_profile_is_defined_assigned_and_read_back() {
    let fake = fake_with_devices(3).await;
    let dep = client(&fake);
    let mut profile = DepProfile::new(
        "Latchkey enrollment",
        "https://mdm.example.com/apple/enroll",
        "7C5D9C4B-ORG",
    );
    profile.configuration_web_url = Some("https://mdm.example.com/apple/enroll".into());
    profile.is_supervised = Some(true);
    profile.is_mdm_removable = false;
    profile.await_device_configured = Some(true);
    profile.language = Some("en".into());
    profile.region = Some("US".into());
    profile.skip_setup_items = vec!["Siri".into(), "Diagnostics".into()];
    profile.support_email_address = Some("it@example.com".into());
    profile.devices = vec!["C0000".into(), "NOTOURS1".into()];

    let defined = dep.define_profile(&profile, Utc::now()).await.unwrap();
    assert_eq!(defined.devices["C0000"], AssignStatus::Success);
    assert_eq!(defined.devices["NOTOURS1"], AssignStatus::NotAccessible);
    let uuid = defined.profile_uuid.clone();
    assert_eq!(
        fake.assigned_profile("C0000"),
        Some(uuid.as_str().to_owned())
    );

    let sent = fake.profile(uuid.as_str()).unwrap();
    assert_eq!(sent["is_mdm_removable"], false);
    assert_eq!(sent["org_magic"], "7C5D9C4B-ORG");
    assert_eq!(sent["skip_setup_items"][1], "Diagnostics");

    let assigned = dep
        .assign_profile(&uuid, &["C0001".into(), "C0002".into()], Utc::now())
        .await
        .unwrap();
    assert_eq!(assigned.profile_uuid, uuid);
    assert_eq!(assigned.devices.len(), 2);
    assert!(
        assigned
            .devices
            .values()
            .all(|s| *s == AssignStatus::Success)
    );
    assert_eq!(
        fake.assigned_profile("C0002"),
        Some(uuid.as_str().to_owned())
    );
    assert_eq!(fake.requests("PUT /profile/devices"), 1);

    let read = dep.get_profile(&uuid, Utc::now()).await.unwrap();
    assert_eq!(read.profile_name, "Latchkey enrollment");
    assert_eq!(read.url, profile.url);
    assert_eq!(read.is_supervised, Some(true));
    assert!(!read.is_mdm_removable);
    assert_eq!(read.skip_setup_items, profile.skip_setup_items);

    // The assignment shows in the device list.
    let page = dep.fetch_devices(None, None, Utc::now()).await.unwrap();
    let c1 = page
        .devices
        .iter()
        .find(|d| d.serial_number == "C0001")
        .unwrap();
    assert_eq!(c1.profile_status, Some(ProfileStatus::Assigned));
    assert_eq!(c1.profile_uuid.as_ref(), Some(&uuid));
    assert!(c1.profile_assign_time.is_some());

    let err = dep
        .get_profile(&DepProfileUuid::new("NOSUCHPROFILE"), Utc::now())
        .await
        .unwrap_err();
    assert!(
        matches!(err, DepError::Rejected { status: 400, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn a_token_encrypted_to_another_key_says_it_does_not_decrypt() {
    let fake = FakeDep::start().await.unwrap();
    let now = Utc::now();
    let (ours, our_key) = generate_dep_keypair("Latchkey ADE", now).unwrap();
    let (theirs, _) = generate_dep_keypair("Latchkey ADE", now).unwrap();
    let p7m = fake.token_p7m_for(&theirs).unwrap();
    let err = decrypt_dep_token(&p7m, &ours, &our_key).unwrap_err();
    assert!(matches!(err, DepTokenError::NotForThisKey), "{err}");
    assert!(err.to_string().contains("does not decrypt"), "{err}");
}

#[tokio::test]
async fn a_wrong_secret_is_refused_at_the_session() {
    let fake = FakeDep::start().await.unwrap();
    let mut token = fake.token();
    token.access_secret.push('x');
    let dep = client_with(&fake, token);
    let err = dep.account(Utc::now()).await.unwrap_err();
    assert!(
        matches!(err, DepError::AuthRefused { status: 401, .. }),
        "{err}"
    );
    assert_eq!(fake.requests("GET /account"), 0);

    let mut token = fake.token();
    token.consumer_secret = "CS_not_the_one".into();
    let err = client_with(&fake, token)
        .account(Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(err, DepError::AuthRefused { .. }), "{err}");
}

#[tokio::test]
async fn an_expired_token_is_refused_before_asking_apple() {
    let fake = FakeDep::start().await.unwrap();
    let token = fake.token();
    let later = token.access_token_expiry + chrono::Duration::seconds(1);
    let err = client_with(&fake, token).account(later).await.unwrap_err();
    assert!(matches!(err, DepError::TokenExpired { .. }), "{err}");
    assert_eq!(fake.requests("GET /session"), 0);
}

#[tokio::test]
async fn malformed_or_oversized_answers_are_errors_not_panics() {
    let fake = fake_with_devices(1).await;
    let dep = client(&fake);

    fake.respond_once("GET /account", 200, &[], "{not json");
    let err = dep.account(Utc::now()).await.unwrap_err();
    assert!(matches!(err, DepError::MalformedBody(_)), "{err}");

    // Valid JSON, wrong shape: no cursor.
    fake.respond_once(
        "POST /server/devices",
        200,
        &[],
        r#"{"devices":[],"more_to_follow":false,"fetched_until":"2025-01-01T00:00:00Z"}"#,
    );
    let err = dep.fetch_devices(None, None, Utc::now()).await.unwrap_err();
    assert!(matches!(err, DepError::MalformedBody(_)), "{err}");

    // A device without a serial number.
    fake.respond_once(
        "POST /server/devices",
        200,
        &[],
        r#"{"cursor":"AA","more_to_follow":false,"fetched_until":"2025-01-01T00:00:00Z","devices":[{"model":"x"}]}"#,
    );
    let err = dep.fetch_devices(None, None, Utc::now()).await.unwrap_err();
    assert!(matches!(err, DepError::MalformedBody(_)), "{err}");

    let small = DepClient::new(
        DepConfig {
            base_url: fake.url().to_owned(),
            user_agent: USER_AGENT.to_owned(),
        },
        fake.token(),
        http(64 * 1024),
    )
    .unwrap();
    fake.respond_once(
        "POST /server/devices",
        200,
        &[],
        format!("{{\"pad\":\"{}\"}}", "x".repeat(200 * 1024)),
    );
    let err = small
        .fetch_devices(None, None, Utc::now())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            DepError::Http(HttpError::ResponseTooLarge { limit: 65536, .. })
        ),
        "{err}"
    );

    // Each still works afterwards.
    dep.account(Utc::now()).await.unwrap();
    small.fetch_devices(None, None, Utc::now()).await.unwrap();
}

#[tokio::test]
async fn throttling_and_failures_are_typed() {
    let fake = fake_with_devices(1).await;
    let dep = client(&fake);
    fake.respond_once("GET /account", 429, &[("retry-after", "7")], "");
    let err = dep.account(Utc::now()).await.unwrap_err();
    match err {
        DepError::Throttled { retry_after } => {
            assert_eq!(retry_after, Some(Duration::from_secs(7)));
        }
        other => panic!("{other:?}"),
    }
    fake.respond_once("GET /account", 503, &[], "SERVICE_UNAVAILABLE");
    let err = dep.account(Utc::now()).await.unwrap_err();
    assert!(
        matches!(&err, DepError::ServerError { status: 503, code } if code == "SERVICE_UNAVAILABLE"),
        "{err}"
    );
    fake.respond_once("GET /account", 403, &[], "T_C_NOT_SIGNED");
    let err = dep.account(Utc::now()).await.unwrap_err();
    assert!(matches!(err, DepError::TermsNotAccepted), "{err}");
}

#[tokio::test]
async fn a_network_failure_is_typed() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let fake = FakeDep::start().await.unwrap();
    let dep = DepClient::new(
        DepConfig {
            base_url: format!("http://{addr}"),
            user_agent: USER_AGENT.to_owned(),
        },
        fake.token(),
        http(1024),
    )
    .unwrap();
    let err = dep.account(Utc::now()).await.unwrap_err();
    assert!(
        matches!(err, DepError::Http(HttpError::Network { .. })),
        "{err}"
    );
}

#[test]
fn plain_http_to_apple_is_refused() {
    let config = DepConfig {
        base_url: "http://mdmenrollment.apple.com".into(),
        user_agent: USER_AGENT.into(),
    };
    let token = latchkey_certs::dep::DepServerToken::from_json(
        r#"{"consumer_key":"CK","consumer_secret":"CS","access_token":"AT",
            "access_secret":"AS","access_token_expiry":"2099-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    let err = DepClient::new(config, token, http(1024)).unwrap_err();
    assert!(
        matches!(err, DepError::Http(HttpError::InsecureUrl(_))),
        "{err}"
    );
    let apple = DepConfig::apple(USER_AGENT);
    assert_eq!(apple.base_url, "https://mdmenrollment.apple.com");
}

/// The fake itself refuses what Apple refuses, so a client that gets a
/// header or a body wrong fails here rather than at Apple.
#[tokio::test]
async fn the_fake_refuses_what_apple_refuses() {
    use latchkeyd::dep::oauth;
    let fake = fake_with_devices(1).await;
    let token = fake.token();
    let base = url::Url::parse(fake.url()).unwrap();
    let session_url = base.join("/session").unwrap();
    let sign = |nonce: &str| {
        let params = oauth::signed_parameters(
            "GET",
            &session_url,
            &oauth::OAuthCredentials {
                consumer_key: &token.consumer_key,
                consumer_secret: &token.consumer_secret,
                token: &token.access_token,
                token_secret: &token.access_secret,
            },
            Utc::now().timestamp(),
            nonce,
        );
        oauth::authorization_header("ADM", &params)
    };
    let header = |text: &str| http::HeaderValue::from_str(text).unwrap();
    let version = http::HeaderName::from_static("x-server-protocol-version");
    let session_header = http::HeaderName::from_static("x-adm-auth-session");

    // No User-Agent (the client's default is empty here).
    let mut no_agent = HttpClientConfig::new("");
    no_agent.roots = TrustRoots::Bundled;
    let no_agent = HttpClient::new(no_agent).unwrap();
    let answer = no_agent
        .send(
            HttpRequest::get(session_url.clone())
                .header(version.clone(), header("7"))
                .header(http::header::AUTHORIZATION, header(&sign("n1"))),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 400);
    assert_eq!(answer.text_lossy(), "USER_AGENT_INVALID");

    let raw = http(1024 * 1024);
    // A good signature, then the same nonce again.
    let get_session = |nonce: &str| {
        HttpRequest::get(session_url.clone())
            .header(version.clone(), header("7"))
            .header(http::header::AUTHORIZATION, header(&sign(nonce)))
    };
    let answer = raw.send(get_session("n2")).await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text_lossy());
    let session: serde_json::Value = answer.json().unwrap();
    let session = session["auth_session_token"].as_str().unwrap().to_owned();
    let replayed = raw.send(get_session("n2")).await.unwrap();
    assert_eq!(replayed.status, 401);

    let post = |path: &str, body: &str| {
        let mut request = HttpRequest::post(base.join(path).unwrap())
            .header(version.clone(), header("7"))
            .header(session_header.clone(), header(&session))
            .header(http::header::CONTENT_TYPE, header("application/json"));
        request.body = body.to_owned().into();
        request
    };
    for (path, body) in [
        ("/server/devices", r#"{"limit":"ten"}"#),
        ("/server/devices", r#"{"limit":5000}"#),
        ("/server/devices", r#"{"cursors":"AA"}"#),
        ("/server/devices", "[]"),
        ("/devices/sync", r#"{"limit":10}"#),
        (
            "/profile",
            r#"{"profile_name":"p","is_mdm_removable":true}"#,
        ),
        ("/profile", r#"{"org_magic":"m","is_mdm_removable":"yes"}"#),
        (
            "/profile",
            r#"{"org_magic":"m","is_mdm_removable":true,"region":"USA"}"#,
        ),
    ] {
        let answer = raw.send(post(path, body)).await.unwrap();
        assert_eq!(answer.status, 400, "{path} {body}");
        assert_eq!(
            answer.text_lossy(),
            "MALFORMED_REQUEST_BODY",
            "{path} {body}"
        );
    }
    let answer = raw
        .send(post(
            "/profile",
            r#"{"org_magic":"m","is_mdm_removable":true}"#,
        ))
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text_lossy());

    // No protocol version header.
    let answer = raw
        .send(
            HttpRequest::get(base.join("/account").unwrap())
                .header(session_header, header(&session)),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 400);
}
