//! Apple devices: the IT admin's side of the APNs push certificate. The
//! topic comes from the certificate; a certificate for another topic is
//! refused unless forced (it would orphan every enrolled device); expiry
//! shows in `latchctl apple status` and is warned about 30 days ahead; a
//! restart gives the stored certificate back to the APNs sender.

// Helpers of a test file: a panic is the failed check.
#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};

use chrono::{Duration, Utc};
use latchkey_certs::apns::self_signed_push_certificate;
use latchkey_tests::System;

const TOPIC: &str = "com.apple.mgmt.External.7d1f3a52-0b8e-4c1a-9f2d-3e4b5c6d7e8f";
const OTHER_TOPIC: &str = "com.apple.mgmt.External.11111111-2222-3333-4444-555555555555";

/// Writes a push certificate valid for `days` and its key; returns the
/// two paths as latchctl takes them.
fn push_certificate(dir: &Path, name: &str, topic: &str, days: i64) -> (String, String) {
    let now = Utc::now();
    let (cert, key) =
        self_signed_push_certificate(topic, now - Duration::days(1), now + Duration::days(days))
            .expect("a push certificate");
    let cert_path = dir.join(format!("{name}.pem"));
    let key_path = dir.join(format!("{name}-key.pem"));
    std::fs::write(&cert_path, cert).expect("written");
    std::fs::write(&key_path, key.expose()).expect("written");
    (path_text(cert_path), path_text(key_path))
}

fn path_text(path: PathBuf) -> String {
    path.to_str().expect("a UTF-8 path").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_push_certificate_is_imported_renewed_and_never_silently_replaced() -> anyhow::Result<()>
{
    let mut sys = System::start().await?;
    let dir = tempfile::tempdir()?;

    // Before any import, the status says what to do.
    let status = sys.ctl(&["apple", "status"]).await?;
    assert!(
        status.contains("no push certificate") && status.contains("push-cert import"),
        "{status}"
    );

    let (cert, key) = push_certificate(dir.path(), "first", TOPIC, 365);
    let imported = sys
        .ctl(&[
            "apple",
            "push-cert",
            "import",
            "--cert",
            &cert,
            "--key",
            &key,
        ])
        .await?;
    assert!(imported.contains(TOPIC), "{imported}");
    assert_eq!(sys.apns.installed_topics(), vec![TOPIC.to_owned()]);

    let status = sys.ctl_json(&["apple", "status"]).await?;
    assert_eq!(status["push_certificates"][0]["topic"], TOPIC);
    assert_eq!(status["push_certificates"][0]["current"], true);
    assert_eq!(
        status["push_certificates"][0]["imported_by"],
        "owner@localhost"
    );
    assert_eq!(status["warnings"], serde_json::json!([]));

    // A renewal keeps the topic and is accepted as it is.
    let (renewed, renewed_key) = push_certificate(dir.path(), "renewed", TOPIC, 365);
    sys.ctl(&[
        "apple",
        "push-cert",
        "import",
        "--cert",
        &renewed,
        "--key",
        &renewed_key,
    ])
    .await?;

    // Another topic would orphan the enrolled devices: refused, and nothing
    // changes, unless the admin insists.
    let (other, other_key) = push_certificate(dir.path(), "other", OTHER_TOPIC, 365);
    let refused = sys
        .ctl(&[
            "apple",
            "push-cert",
            "import",
            "--cert",
            &other,
            "--key",
            &other_key,
        ])
        .await
        .expect_err("another topic is refused");
    let refused = refused.to_string();
    assert!(
        refused.contains("orphaned") && refused.contains(TOPIC) && refused.contains("--force"),
        "{refused}"
    );
    let status = sys.ctl_json(&["apple", "status"]).await?;
    assert_eq!(
        status["push_certificates"].as_array().map(Vec::len),
        Some(1)
    );

    let forced = sys
        .ctl(&[
            "apple",
            "push-cert",
            "import",
            "--cert",
            &other,
            "--key",
            &other_key,
            "--force",
        ])
        .await?;
    assert!(
        forced.contains(OTHER_TOPIC) && forced.contains(&format!("replaces topic {TOPIC}")),
        "{forced}"
    );
    let status = sys.ctl_json(&["apple", "status"]).await?;
    assert_eq!(status["push_certificates"][0]["topic"], OTHER_TOPIC);
    assert_eq!(status["push_certificates"][1]["topic"], TOPIC);
    assert_eq!(status["push_certificates"][1]["current"], false);

    let audit = sys.ctl(&["audit"]).await?;
    assert_eq!(
        audit.matches("apple-push-certificate.import").count(),
        3,
        "{audit}"
    );

    // After a restart, both certificates are given to the APNs sender again
    // (devices enrolled under the old topic are still pushed through it).
    sys.restart().await?;
    let installed = sys.apns.installed_topics();
    assert!(
        installed.ends_with(&[OTHER_TOPIC.to_owned(), TOPIC.to_owned()]),
        "{installed:?}"
    );
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_is_warned_about_thirty_days_ahead() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let dir = tempfile::tempdir()?;
    let (cert, key) = push_certificate(dir.path(), "short", TOPIC, 20);
    sys.ctl(&[
        "apple",
        "push-cert",
        "import",
        "--cert",
        &cert,
        "--key",
        &key,
    ])
    .await?;
    let status = sys.ctl(&["apple", "status"]).await?;
    assert!(
        status.contains(&format!(
            "warning: the push certificate for {TOPIC} expires"
        )) && status.contains("same Apple Account"),
        "{status}"
    );
    let json = sys.ctl_json(&["apple", "status"]).await?;
    assert_eq!(json["warnings"][0]["kind"], "expires-soon");
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_files_are_refused_with_what_is_wrong_and_nothing_stored() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let dir = tempfile::tempdir()?;
    let (cert, _) = push_certificate(dir.path(), "a", TOPIC, 365);
    let (_, other_key) = push_certificate(dir.path(), "b", TOPIC, 365);
    let (expired, expired_key) = {
        let now = Utc::now();
        let (c, k) = self_signed_push_certificate(
            TOPIC,
            now - Duration::days(400),
            now - Duration::days(1),
        )?;
        let (cp, kp) = (dir.path().join("old.pem"), dir.path().join("old-key.pem"));
        std::fs::write(&cp, c)?;
        std::fs::write(&kp, k.expose())?;
        (path_text(cp), path_text(kp))
    };
    let huge = dir.path().join("huge.pem");
    std::fs::write(&huge, vec![b'A'; 1024 * 1024])?;
    let huge = path_text(huge);
    let binary = dir.path().join("cert.p12");
    std::fs::write(&binary, [0x30u8, 0x82, 0xff, 0xfe, 0x80])?;
    let binary = path_text(binary);

    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--cert", &cert, "--key", &other_key],
            "does not belong to this push certificate",
        ),
        (
            vec!["--cert", &other_key, "--key", &cert],
            "no PEM certificate",
        ),
        (vec!["--cert", &expired, "--key", &expired_key], "expired"),
        (vec!["--cert", &huge, "--key", &other_key], "larger than"),
        (vec!["--cert", &binary, "--key", &other_key], "pkcs12"),
        (
            vec!["--cert", "/nonexistent/push.pem", "--key", &other_key],
            "/nonexistent/push.pem",
        ),
    ];
    for (args, expected) in cases {
        let mut full = vec!["apple", "push-cert", "import"];
        full.extend(args.iter());
        let error = sys.ctl(&full).await.expect_err("refused").to_string();
        assert!(error.contains(expected), "{args:?}: {error}");
    }
    let status = sys.ctl_json(&["apple", "status"]).await?;
    assert_eq!(status["push_certificates"], serde_json::json!([]));
    assert!(sys.apns.installed_topics().is_empty());
    sys.stop().await
}
