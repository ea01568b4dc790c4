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
        (
            vec!["app", "update", "crm", "--mfa", "sms"],
            r#"invalid argument: unknown second factor "sms"; use none, totp or email"#,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_in_japan_names_apps_groups_and_people_in_japanese() -> anyhow::Result<()> {
    use latchkey_tests::login::{authorize_url, sign_in};
    use latchkey_tests::web::Browser;

    let sys = System::start().await?;
    let callback = "https://kintai.example.co.jp/oidc/callback";
    let app = sys
        .ctl_json(&["app", "add", "勤怠管理", "--redirect-uri", callback])
        .await?;
    assert_eq!(app["name"], "勤怠管理");
    let client_id = app["client_id"].as_str().unwrap().to_owned();
    // Scripts may use the client id, the ASCII handle, instead of the name.
    assert_eq!(
        sys.ctl_json(&["app", "update", &client_id, "--device", "none"])
            .await?["name"],
        "勤怠管理"
    );
    let listed = sys.ctl(&["app", "list"]).await?;
    assert!(listed.contains("勤怠管理"), "{listed}");

    sys.ctl(&["group", "add", "営業部"]).await?;
    // An import saved by Excel on Japanese Windows: CP932, a Japanese name
    // and a Japanese group.
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("社員.csv");
    let mut cp932 = b"email,name,groups\r\nhanako@example.co.jp,".to_vec();
    // 山田 花子,営業部;staff
    cp932.extend_from_slice(&[0x8E, 0x52, 0x93, 0x63, 0x20, 0x89, 0xD4, 0x8E, 0x71]);
    cp932.extend_from_slice(b",");
    cp932.extend_from_slice(&[0x89, 0x63, 0x8B, 0xC6, 0x95, 0x94]);
    cp932.extend_from_slice(b";staff\r\n");
    std::fs::write(&file, &cp932)?;
    let said = sys.ctl(&["user", "import", file.to_str().unwrap()]).await?;
    assert!(
        said.starts_with("1 user(s) added, 0 row(s) rejected"),
        "{said}"
    );
    let hanako = sys
        .ctl_json(&["user", "show", "hanako@example.co.jp"])
        .await?;
    assert_eq!(hanako["name"], "山田 花子");
    assert_eq!(hanako["groups"], serde_json::json!(["staff", "営業部"]));

    // latchctl's table lines up by terminal width: the member count sits in
    // the same column on every line.
    let groups = sys.ctl(&["group", "list"]).await?;
    assert!(groups.contains("営業部"), "{groups}");
    let members_at: Vec<usize> = groups
        .lines()
        .map(|line| {
            let cut = line.find("  ").unwrap_or(0);
            let rest = line.get(cut..).unwrap_or("");
            let pad = rest.len() - rest.trim_start().len();
            line.get(..cut).map_or(0, |name| {
                name.chars()
                    .map(|c| if c.is_ascii() { 1 } else { 2 })
                    .sum::<usize>()
            }) + pad
        })
        .collect();
    assert!(
        members_at.windows(2).all(|w| w[0] == w[1]),
        "{groups}{members_at:?}"
    );

    // Hanako signs in to 勤怠管理 and sees it by name on the home page.
    let reset = sys
        .ctl_json(&["user", "reset-password", "hanako@example.co.jp"])
        .await?;
    let password = reset["temporary_password"].as_str().unwrap().to_owned();
    let mut browser = Browser::new(sys.running().https_addr, &sys.ca_pem)?;
    sign_in(
        &mut browser,
        &authorize_url(&client_id, callback, "s1"),
        "勤怠管理",
        "hanako@example.co.jp",
        &password,
    )
    .await?;
    let home = browser.get("/").await?;
    assert_eq!(home.status, 200);
    assert!(home.body.contains("勤怠管理"), "{}", home.body);
    sys.stop().await
}
