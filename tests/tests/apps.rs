//! Registering SSO apps: client ids and secrets, exact redirect URIs and
//! the access policy an admin sets per app.

use latchkey_tests::System;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_are_registered_changed_and_removed() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let crm = sys
        .ctl_json(&[
            "app",
            "add",
            "crm",
            "--redirect-uri",
            "https://crm.example.co.jp/oidc/callback",
            "--device",
            "bound",
            "--mfa",
            "totp",
        ])
        .await?;
    assert_eq!(crm["device"], "bound");
    assert_eq!(crm["mfa"], "totp");
    assert_eq!(crm["public"], false);
    let secret = crm["client_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("lkc_"), "{secret}");
    let client_id = crm["client_id"].as_str().unwrap().to_owned();

    let text = sys
        .ctl(&[
            "app",
            "add",
            "cli-tool",
            "--public",
            "--redirect-uri",
            "http://127.0.0.1:8400/cb",
            "--device",
            "confirm",
        ])
        .await?;
    assert!(
        text.contains("app cli-tool registered") && !text.contains("client secret"),
        "{text}"
    );

    let listed = sys.ctl_json(&["app", "list"]).await?;
    let names: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].clone())
        .collect();
    assert_eq!(names, ["cli-tool", "crm"]);
    assert!(listed.to_string().contains(&client_id));
    assert!(
        !listed.to_string().contains(&secret),
        "secrets are never listed"
    );

    let rotated = sys
        .ctl_json(&["app", "update", "crm", "--rotate-secret", "--mfa", "email"])
        .await?;
    let new_secret = rotated["client_secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    assert_eq!(rotated["mfa"], "email");
    assert_eq!(rotated["device"], "bound", "left out, kept");
    assert_eq!(rotated["client_id"], client_id.as_str());
    let updated = sys
        .ctl_json(&[
            "app",
            "update",
            "crm",
            "--redirect-uri",
            "https://crm.example.co.jp/a",
            "--redirect-uri",
            "https://crm.example.co.jp/b",
        ])
        .await?;
    assert_eq!(
        updated["redirect_uris"],
        serde_json::json!(["https://crm.example.co.jp/a", "https://crm.example.co.jp/b"])
    );

    let public = sys
        .ctl(&["app", "update", "cli-tool", "--rotate-secret"])
        .await
        .unwrap_err();
    assert!(public.to_string().contains("public client"), "{public}");
    for (args, expected) in [
        (
            vec![
                "app",
                "add",
                "x",
                "--redirect-uri",
                "http://crm.example.co.jp/cb",
            ],
            "must use https",
        ),
        (
            vec![
                "app",
                "add",
                "x",
                "--redirect-uri",
                "https://crm.example.co.jp/cb#top",
            ],
            "fragment",
        ),
        (
            vec![
                "app",
                "add",
                "crm",
                "--redirect-uri",
                "https://crm.example.co.jp/cb",
            ],
            "already exists",
        ),
        (
            vec![
                "app",
                "add",
                "x",
                "--redirect-uri",
                "https://x.example/cb",
                "--device",
                "maybe",
            ],
            "device policy",
        ),
        (vec!["app", "remove", "nothing"], "app nothing not found"),
    ] {
        let error = sys.ctl(&args).await.unwrap_err().to_string();
        assert!(error.contains(expected), "{args:?}: {error}");
    }

    // Auditors read apps; the helpdesk has no business with them.
    for (role, may_list) in [("auditor", true), ("helpdesk", false)] {
        let added = sys
            .ctl_json(&[
                "admin",
                "add",
                &format!("{role}@example.com"),
                "--role",
                role,
            ])
            .await?;
        let token = added["token"].as_str().unwrap().to_owned();
        assert_eq!(
            sys.ctl_as(&token, &["app", "list"]).await.is_ok(),
            may_list,
            "{role}"
        );
        let add = sys
            .ctl_as(
                &token,
                &["app", "add", "y", "--redirect-uri", "https://y.example/cb"],
            )
            .await;
        assert!(
            add.unwrap_err()
                .to_string()
                .starts_with("permission denied")
        );
    }

    sys.ctl(&["app", "remove", "cli-tool"]).await?;
    assert_eq!(
        sys.ctl_json(&["app", "list"])
            .await?
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let audit = sys.ctl(&["audit"]).await?;
    for action in ["app.add", "app.update", "app.remove"] {
        assert!(audit.contains(action), "{action}:\n{audit}");
    }
    assert!(
        !audit.contains(&secret) && !audit.contains(new_secret),
        "secrets stay out of the audit log"
    );
    sys.stop().await
}
