//! Bad input from devices and admins: a clear error, nothing half-written,
//! no panic.

use chrono::Utc;
use latchkey_proto::v1::{self, device_service_client::DeviceServiceClient};
use latchkey_tests::System;
use latchkeyd::domain::device::DeviceFacts;

fn facts() -> DeviceFacts {
    DeviceFacts {
        hostname: "test-host".into(),
        platform: "linux".into(),
        os_version: "12".into(),
        ..DeviceFacts::default()
    }
}

async fn device_count(sys: &System) -> anyhow::Result<usize> {
    Ok(sys
        .ctl_json(&["device", "list"])
        .await?
        .as_array()
        .map_or(0, Vec::len))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_enrollment_tokens_say_why_and_enroll_nothing() -> anyhow::Result<()> {
    let sys = System::start().await?;

    let unknown = sys.enroll("lke_0000").await.err().unwrap().to_string();
    assert!(
        unknown.contains("the enrollment token is not known"),
        "{unknown}"
    );

    let once = sys.enrollment_token(&["--uses", "1"]).await?;
    let mut first = sys.enroll(&once).await?;
    let used_up = sys.enroll(&once).await.err().unwrap().to_string();
    assert!(used_up.contains("used up"), "{used_up}");

    let revoked = sys.ctl_json(&["token", "create"]).await?;
    sys.ctl(&["token", "revoke", revoked["id"].as_str().unwrap()])
        .await?;
    let refused = sys
        .enroll(revoked["secret"].as_str().unwrap())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(refused.contains("revoked"), "{refused}");

    // Expiry, with the clock as a parameter: the token lives 24 hours.
    let secret = sys.enrollment_token(&["--expires", "24h"]).await?;
    let (_, csr) = latchkey_certs::new_key_and_csr("h")?;
    let later = Utc::now() + chrono::Duration::hours(25);
    let expired = sys
        .running()
        .core
        .enrollment
        .enroll(&secret, &csr, facts(), later)
        .await;
    assert!(expired.unwrap_err().to_string().contains("expired"));

    assert_eq!(
        device_count(&sys).await?,
        1,
        "only the first enrollment created a device"
    );
    let listed = sys.ctl(&["token", "list"]).await?;
    for status in ["used up", "revoked", "usable"] {
        assert!(listed.contains(status), "{listed}");
    }
    let audit = sys.ctl_json(&["audit"]).await?;
    let denied = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "device.enroll" && e["outcome"] == "denied")
        .count();
    assert_eq!(denied, 4, "{audit}");
    first.stop().await?;
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_forged_and_unsupported_csrs_are_refused() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let created = sys.ctl_json(&["token", "create", "--uses", "10"]).await?;
    let secret = created["secret"].as_str().unwrap().to_owned();
    let channel = latchkey_agent::enroll::channel(&sys.grpc_url, &sys.ca_pem, None).await?;
    let mut client = DeviceServiceClient::new(channel);
    let enroll = |csr_der: Vec<u8>| v1::EnrollRequest {
        token: secret.clone(),
        csr_der,
        facts: Some(v1::DeviceFacts {
            hostname: "h".into(),
            platform: "linux".into(),
            ..Default::default()
        }),
    };

    let garbage = client
        .enroll(enroll(b"not a CSR".to_vec()))
        .await
        .unwrap_err();
    assert_eq!(garbage.code(), tonic::Code::InvalidArgument);
    assert!(
        garbage.message().contains("malformed"),
        "{}",
        garbage.message()
    );

    let (_, mut forged) = latchkey_certs::new_key_and_csr("hostA")?;
    let at = forged.windows(5).position(|w| w == b"hostA").unwrap();
    forged[at + 4] = b'B';
    let forged = client.enroll(enroll(forged)).await.unwrap_err();
    assert_eq!(forged.code(), tonic::Code::InvalidArgument);
    assert!(
        forged.message().contains("signature does not verify"),
        "{}",
        forged.message()
    );

    let ed25519 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let csr = rcgen::CertificateParams::new(vec!["h".to_owned()])?.serialize_request(&ed25519)?;
    let unsupported = client.enroll(enroll(csr.der().to_vec())).await.unwrap_err();
    assert!(
        unsupported.message().contains("P-256"),
        "{}",
        unsupported.message()
    );

    let oversized = client
        .enroll(enroll(vec![0x30; 200 * 1024]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            oversized.code(),
            tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
        ),
        "{oversized:?}"
    );

    let (_, csr) = latchkey_certs::new_key_and_csr("h")?;
    let mut bad_facts = enroll(csr);
    bad_facts.facts = Some(v1::DeviceFacts {
        hostname: "h\u{7}".into(),
        platform: "beos".into(),
        ..Default::default()
    });
    let facts_refused = client.enroll(bad_facts).await.unwrap_err();
    assert_eq!(facts_refused.code(), tonic::Code::InvalidArgument);

    assert_eq!(device_count(&sys).await?, 0);
    let tokens = sys.ctl_json(&["token", "list"]).await?;
    assert_eq!(
        tokens[0]["uses_count"], 0,
        "refused requests use no token: {tokens}"
    );
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_enrolling_with_a_p384_key_is_refused_and_the_token_keeps_its_use()
-> anyhow::Result<()> {
    let sys = System::start().await?;
    let secret = sys.enrollment_token(&["--uses", "1"]).await?;
    let channel = latchkey_agent::enroll::channel(&sys.grpc_url, &sys.ca_pem, None).await?;
    let mut client = DeviceServiceClient::new(channel);
    // A genuine P-384 key whose request is signed with SHA-256: the
    // signature verifies, only the key is wrong.
    let p384 = include_bytes!("../../certs/test_data/csr-p384-sha256.der").to_vec();
    let refused = client
        .enroll(v1::EnrollRequest {
            token: secret.clone(),
            csr_der: p384,
            facts: Some(v1::DeviceFacts {
                hostname: "h".into(),
                platform: "linux".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused.message().contains("P-384") && refused.message().contains("must use ECDSA P-256"),
        "{}",
        refused.message()
    );
    assert_eq!(device_count(&sys).await?, 0, "no device written");
    let tokens = sys.ctl_json(&["token", "list"]).await?;
    assert_eq!(tokens[0]["uses_count"], 0, "the use is not spent: {tokens}");
    // The one use is still there for a proper agent.
    let mut agent = sys.enroll(&secret).await?;
    assert_eq!(sys.device(&agent.device_id).await?["state"], "active");
    agent.stop().await?;
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latchctl_reports_one_clear_line_for_bad_requests() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let cases: [(&[&str], &str); 6] = [
        (
            &["device", "show", "nope"],
            "not found: device nope not found",
        ),
        (
            &["device", "lock", "0123456789abcdef0123456789abcdef"],
            "not found",
        ),
        (&["token", "create", "--expires", "soon"], "--expires"),
        (
            &["admin", "add", "x@example.com", "--role", "root"],
            "unknown role",
        ),
        (
            &["policy", "assign", "missing", "--group", "g"],
            "policy missing not found",
        ),
        (
            &["token", "revoke", "0123456789abcdef0123456789abcdef"],
            "not found",
        ),
    ];
    for (args, expected) in cases {
        let error = sys.ctl(args).await.unwrap_err().to_string();
        assert!(error.contains(expected), "{args:?}: {error}");
        assert!(!error.contains('\n'), "one line: {error}");
    }
    let dir = tempfile::tempdir()?;
    let policy = dir.path().join("p.toml");
    std::fs::write(&policy, "[compliance]\ndisk_encrypton = true\n")?;
    let error = sys
        .ctl(&["policy", "set", "p", policy.to_str().unwrap()])
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("disk_encrypton"), "{error}");
    assert!(
        sys.ctl(&["policy", "show", "p"]).await.is_err(),
        "nothing half-written"
    );

    let bad_token = sys
        .ctl_as("lka_forged", &["device", "list"])
        .await
        .unwrap_err();
    assert!(
        bad_token.to_string().contains("not authenticated"),
        "{bad_token}"
    );
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_asking_for_a_token_that_expires_at_once_or_has_no_uses_is_refused()
-> anyhow::Result<()> {
    let sys = System::start().await?;
    // latchctl refuses before calling, with the range.
    for (args, expected) in [
        (
            &["token", "create", "--expires", "0s"][..],
            "--expires 0s: the expiry must be between 1s and 365d",
        ),
        (
            &["token", "create", "--expires", "366d"][..],
            "the expiry must be between 1s and 365d",
        ),
        (
            &["token", "create", "--uses", "0"][..],
            "--uses 0: the uses must be between 1 and 1000000",
        ),
    ] {
        let error = sys.ctl(args).await.unwrap_err().to_string();
        assert!(error.contains(expected), "{args:?}: {error}");
    }
    // The server refuses the same zeros from any other client: zero is a
    // value, only an absent field means the default.
    let mut admin = sys.admin_api().await?;
    for (expires_in_seconds, uses, expected) in [
        (Some(0), None, "the expiry must be between 1s and 365d"),
        (Some(-5), None, "the expiry must be between 1s and 365d"),
        (None, Some(0), "the uses must be between 1 and 1000000"),
    ] {
        let refused = admin
            .create_enrollment_token(v1::CreateEnrollmentTokenRequest {
                expires_in_seconds,
                uses,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
        assert!(refused.message().contains(expected), "{refused:?}");
    }
    assert_eq!(
        sys.ctl_json(&["token", "list"])
            .await?
            .as_array()
            .map(Vec::len),
        Some(0),
        "no token was created"
    );
    // Absent fields still mean 24 hours and one use.
    let defaults = admin
        .create_enrollment_token(v1::CreateEnrollmentTokenRequest::default())
        .await?
        .into_inner()
        .token
        .unwrap_or_default();
    assert_eq!(defaults.uses_allowed, 1);
    let lifetime = defaults.expires_at - Utc::now().timestamp();
    assert!((86_000..=86_400).contains(&lifetime), "{lifetime}");
    sys.stop().await
}

/// A client other than latchctl may send an enum number this server does
/// not know, or leave out a value the request needs. Each is refused with
/// INVALID_ARGUMENT naming the field and the values it takes, and nothing
/// changes; a value the request may leave out keeps its documented meaning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enum_values_the_server_does_not_know_are_refused_and_change_nothing() -> anyhow::Result<()>
{
    let sys = System::start().await?;
    let mut admin = sys.admin_api().await?;
    let user = |kind: i32| v1::AddUserRequest {
        email: "hanako@example.co.jp".into(),
        name: "山田 花子".into(),
        groups: vec!["staff".into()],
        kind,
    };

    let refused = admin.add_user(user(7)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        refused.message(),
        "AddUserRequest.kind has the unknown value 7; use USER_KIND_USER (1) or USER_KIND_BREAK_GLASS (2)"
    );
    assert_eq!(
        sys.ctl_json(&["user", "list"]).await?,
        serde_json::json!([]),
        "no user was added"
    );
    assert!(
        !sys.ctl(&["group", "list"]).await?.contains("staff"),
        "no group was made for the refused user"
    );

    // Left out, the kind is an ordinary user's.
    admin.add_user(user(0)).await?;
    let hanako = sys
        .ctl_json(&["user", "show", "hanako@example.co.jp"])
        .await?;
    assert_eq!(hanako["kind"], "user");
    assert_eq!(hanako["status"], "active");

    // A status change must say which status, with a known number.
    for (status, expected) in [
        (
            0,
            "SetUserStatusRequest.status is required; use USER_STATUS_ACTIVE (1), USER_STATUS_SUSPENDED (2) or USER_STATUS_DELETED (3)",
        ),
        (
            4,
            "SetUserStatusRequest.status has the unknown value 4; use USER_STATUS_ACTIVE (1), USER_STATUS_SUSPENDED (2) or USER_STATUS_DELETED (3)",
        ),
    ] {
        let refused = admin
            .set_user_status(v1::SetUserStatusRequest {
                email: "hanako@example.co.jp".into(),
                status,
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{status}");
        assert_eq!(refused.message(), expected);
    }
    assert_eq!(
        sys.ctl_json(&["user", "show", "hanako@example.co.jp"])
            .await?["status"],
        "active"
    );

    let app = |device: i32, mfa: i32| v1::AddAppRequest {
        name: "勤怠管理".into(),
        redirect_uris: vec!["https://kintai.example.co.jp/cb".into()],
        device,
        mfa,
        ..v1::AddAppRequest::default()
    };
    for (device, mfa, expected) in [
        (
            9,
            0,
            "AddAppRequest.device has the unknown value 9; use DEVICE_POLICY_NONE (1), DEVICE_POLICY_CONFIRM (2) or DEVICE_POLICY_BOUND (3)",
        ),
        (
            0,
            -1,
            "AddAppRequest.mfa has the unknown value -1; use MFA_POLICY_NONE (1), MFA_POLICY_TOTP (2) or MFA_POLICY_EMAIL (3)",
        ),
    ] {
        let refused = admin.add_app(app(device, mfa)).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
        assert_eq!(refused.message(), expected);
    }
    assert_eq!(
        sys.ctl_json(&["app", "list"]).await?,
        serde_json::json!([]),
        "no app was registered"
    );

    // Left out, an app's device policy is bound and it asks no second factor.
    admin.add_app(app(0, 0)).await?;
    assert_eq!(app_policies(&sys).await?, ["bound", "none"]);

    let change = |device: i32, mfa: i32| v1::UpdateAppRequest {
        name: "勤怠管理".into(),
        device,
        mfa,
        ..v1::UpdateAppRequest::default()
    };
    let refused = admin
        .update_app(change(v1::DevicePolicy::Confirm.into(), 42))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused
            .message()
            .starts_with("UpdateAppRequest.mfa has the unknown value 42; use MFA_POLICY_NONE (1)"),
        "{refused:?}"
    );
    assert_eq!(
        app_policies(&sys).await?,
        ["bound", "none"],
        "nothing changed, the known device policy neither"
    );
    // Unspecified keeps the current value.
    admin
        .update_app(change(0, v1::MfaPolicy::Totp.into()))
        .await?;
    assert_eq!(app_policies(&sys).await?, ["bound", "totp"]);

    let audit = sys.ctl_json(&["audit"]).await?;
    let actions: Vec<_> = audit
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.starts_with("user.") || a.starts_with("app."))
        .collect();
    assert_eq!(actions, ["user.add", "app.add", "app.update"]);
    sys.stop().await
}

/// The one app's device and second-factor policies as `app list --json`
/// shows them.
async fn app_policies(sys: &System) -> anyhow::Result<[String; 2]> {
    let apps = sys.ctl_json(&["app", "list"]).await?;
    let word = |field: &str| {
        apps.pointer(&format!("/0/{field}"))
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Ok([word("device"), word("mfa")])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_that_quotes_a_huge_argument_still_reaches_latchctl() -> anyhow::Result<()> {
    let sys = System::start().await?;
    // Each refusal quotes what it refuses; quoted whole, 100 kB would not
    // fit the answer's headers and latchctl would see only "h2 protocol
    // error".
    let huge = "a".repeat(100_000);
    let email = format!("{huge}@example.com");
    let cases: [(&[&str], &str); 4] = [
        (&["group", "add", &huge], "invalid argument: group name"),
        (&["device", "show", &huge], "not found: device aaaa"),
        (&["user", "add", &email, "--name", "x"], "invalid argument"),
        (
            &[
                "app",
                "add",
                &huge,
                "--redirect-uri",
                "https://x.example.com/cb",
            ],
            "invalid argument: app name",
        ),
    ];
    for (args, expected) in cases {
        let error = sys.ctl(args).await.unwrap_err().to_string();
        assert!(error.contains(expected), "{}: {error:.300}", args[0]);
        assert!(error.len() < 5_000, "cut short: {} bytes", error.len());
    }
    // A long quote that fits is not cut.
    let long = "b".repeat(2_000);
    let error = sys
        .ctl(&["group", "add", &long])
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains(&long), "{error:.300}");
    sys.stop().await
}

/// Sends raw bytes as a gRPC message, for requests the generated client
/// cannot express.
#[derive(Clone, Copy)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf;
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_undecodable_protobuf_gets_invalid_argument_on_every_service()
-> anyhow::Result<()> {
    let sys = System::start().await?;
    let channel = latchkey_agent::enroll::channel(&sys.grpc_url, &sys.ca_pem, None).await?;
    let methods = [
        "/latchkey.v1.DeviceService/Enroll",
        "/latchkey.v1.DeviceService/Renew",
        "/latchkey.v1.AdminService/WhoAmI",
        "/latchkey.v1.AdminService/CreateEnrollmentToken",
        "/latchkey.v1.AdminService/ImportUsers",
    ];
    for method in methods {
        for garbage in [
            vec![0xff; 32],
            vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f],
            vec![0x12],
        ] {
            let mut grpc = tonic::client::Grpc::new(channel.clone());
            grpc.ready().await?;
            let path = http::uri::PathAndQuery::from_static(method);
            let refused = grpc
                .unary::<Vec<u8>, Vec<u8>, _>(tonic::Request::new(garbage), path, RawCodec)
                .await
                .unwrap_err();
            assert_eq!(
                refused.code(),
                tonic::Code::InvalidArgument,
                "{method}: {refused:?}"
            );
            assert!(
                refused.message().contains("could not be decoded"),
                "{method}: {refused:?}"
            );
        }
    }
    // Still serving: a proper enrollment goes through on the same connection.
    let token = sys.enrollment_token(&[]).await?;
    let agent = sys.enroll(&token).await?;
    assert_eq!(sys.device(&agent.device_id).await?["state"], "active");
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latchctl_login_saves_a_profile_that_later_calls_use() -> anyhow::Result<()> {
    use clap::Parser;
    let sys = System::start().await?;
    let config_dir = sys.dir.path().join("profile-home");
    let token_file = sys.dir.path().join("token");
    std::fs::write(&token_file, format!("{}\n", sys.owner_token))?;
    let ca = sys.ca_path();
    let login = latchctl::Cli::parse_from([
        "latchctl",
        "--server",
        &sys.grpc_url,
        "--ca",
        ca.to_str().unwrap(),
        "--token-file",
        token_file.to_str().unwrap(),
        "login",
    ]);
    let bare = latchctl::Environment {
        config_dir: Some(config_dir.clone()),
        ..latchctl::Environment::default()
    };
    let said = latchctl::run(login, &bare).await?;
    assert!(
        said.contains("logged in") && said.contains("owner@localhost"),
        "{said}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(config_dir.join("profile.toml"))?
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // No flags, no environment: the profile is enough.
    let whoami = latchctl::run(latchctl::Cli::parse_from(["latchctl", "whoami"]), &bare).await?;
    assert_eq!(whoami, "owner@localhost (owner)\n");
    // Without a profile, the error says what to do.
    let nothing = latchctl::Environment {
        config_dir: Some(sys.dir.path().join("empty")),
        ..latchctl::Environment::default()
    };
    let error = latchctl::run(latchctl::Cli::parse_from(["latchctl", "whoami"]), &nothing)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("latchctl login"), "{error}");
    sys.stop().await
}
