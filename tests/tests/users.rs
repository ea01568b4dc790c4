//! Users and groups, CSV import with a per-row report, and binding a device
//! to its user, as an admin does them through latchctl.

use latchkey_tests::System;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_added_suspended_activated_and_deleted() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let said = sys
        .ctl(&[
            "user",
            "add",
            "Alice@Example.com",
            "--name",
            "鈴木 アリス",
            "--group",
            "staff",
            "--group",
            "sales",
        ])
        .await?;
    assert_eq!(said, "user alice@example.com added\n");
    let alice = sys.ctl_json(&["user", "show", "alice@example.com"]).await?;
    assert_eq!(alice["name"], "鈴木 アリス");
    assert_eq!(alice["groups"], serde_json::json!(["sales", "staff"]));
    assert_eq!(alice["status"], "active");
    assert_eq!(alice["kind"], "user");

    let twice = sys
        .ctl(&["user", "add", "alice@example.com", "--name", "A"])
        .await
        .unwrap_err();
    assert!(twice.to_string().contains("already exists"), "{twice}");

    sys.ctl(&["user", "suspend", "alice@example.com"]).await?;
    assert_eq!(
        sys.ctl_json(&["user", "show", "alice@example.com"]).await?["status"],
        "suspended"
    );
    let again = sys
        .ctl(&["user", "suspend", "alice@example.com"])
        .await
        .unwrap_err();
    assert!(again.to_string().contains("is suspended"), "{again}");
    sys.ctl(&["user", "activate", "alice@example.com"]).await?;
    sys.ctl(&["user", "delete", "alice@example.com"]).await?;
    assert_eq!(
        sys.ctl_json(&["user", "show", "alice@example.com"]).await?["status"],
        "deleted"
    );
    let revived = sys
        .ctl(&["user", "activate", "alice@example.com"])
        .await
        .unwrap_err();
    assert!(revived.to_string().contains("is deleted"), "{revived}");

    let groups = sys.ctl(&["group", "list"]).await?;
    assert!(
        groups.contains("sales") && groups.contains("staff"),
        "{groups}"
    );
    let audit = sys.ctl(&["audit"]).await?;
    for action in ["user.add", "user.suspend", "user.activate", "user.delete"] {
        assert!(audit.contains(action), "{action} missing:\n{audit}");
    }

    // The helpdesk may look users up, not change them.
    let desk = sys
        .ctl_json(&["admin", "add", "desk@example.com", "--role", "helpdesk"])
        .await?;
    let desk = desk["token"].as_str().unwrap().to_owned();
    assert!(
        sys.ctl_as(&desk, &["user", "list"])
            .await?
            .contains("alice@example.com")
    );
    let refused = sys
        .ctl_as(&desk, &["user", "add", "x@example.com", "--name", "X"])
        .await
        .unwrap_err();
    assert!(
        refused.to_string().starts_with("permission denied"),
        "{refused}"
    );
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_adds_the_valid_rows_and_names_the_bad_ones() -> anyhow::Result<()> {
    let sys = System::start().await?;
    sys.ctl(&["user", "add", "taken@example.com", "--name", "Taken"])
        .await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("users.csv");
    std::fs::write(
        &file,
        "email,name,groups,role\n\
         hanako@example.co.jp,\"Yamada, Hanako\",staff;tokyo,\n\
         not-an-email,Nobody,,\n\
         taken@example.com,Again,,\n\
         ken@example.co.jp,Ken,staff,break-glass\n\
         ken@example.co.jp,Ken Twice,,\n\
         eve@example.com,Eve,,root\n\
         blank@example.com,,,\n",
    )?;
    let report = sys
        .ctl_json(&["user", "import", file.to_str().unwrap()])
        .await?;
    assert_eq!(
        report["added"],
        serde_json::json!(["hanako@example.co.jp", "ken@example.co.jp"])
    );
    let rejected: Vec<(u64, String)> = report["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let lines: Vec<u64> = rejected.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, [3, 4, 6, 7, 8], "{rejected:?}");
    assert!(rejected[0].1.contains("not an email address"));
    assert!(rejected[1].1.contains("already exists"));
    assert!(rejected[2].1.contains("earlier in the file"));
    assert!(rejected[3].1.contains("unknown role"));
    assert!(rejected[4].1.contains("name"));

    let text = sys.ctl(&["user", "import", file.to_str().unwrap()]).await?;
    assert!(
        text.starts_with("0 user(s) added, 7 row(s) rejected"),
        "{text}"
    );

    let ken = sys.ctl_json(&["user", "show", "ken@example.co.jp"]).await?;
    assert_eq!(ken["kind"], "break-glass");
    let groups = sys.ctl_json(&["group", "list"]).await?;
    let staff = groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "staff")
        .unwrap();
    assert_eq!(staff["members"], 2);

    let bad_header = dir.path().join("bad.csv");
    std::fs::write(&bad_header, "mail,name\nx@example.com,X\n")?;
    let error = sys
        .ctl(&["user", "import", bad_header.to_str().unwrap()])
        .await
        .unwrap_err();
    assert!(error.to_string().contains("email and name"), "{error}");
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_is_bound_to_exactly_one_user() -> anyhow::Result<()> {
    let sys = System::start().await?;
    sys.ctl(&["user", "add", "taro@example.co.jp", "--name", "Taro"])
        .await?;
    sys.ctl(&["user", "add", "jiro@example.co.jp", "--name", "Jiro"])
        .await?;
    let token = sys
        .enrollment_token(&["--user", "taro@example.co.jp"])
        .await?;
    let agent = sys.enroll(&token).await?;
    assert_eq!(
        sys.device(&agent.device_id).await?["user"],
        "taro@example.co.jp"
    );

    let said = sys
        .ctl(&[
            "device",
            "assign",
            &agent.device_id,
            "--user",
            "jiro@example.co.jp",
        ])
        .await?;
    assert!(said.contains("now belongs to jiro@example.co.jp"), "{said}");
    assert_eq!(
        sys.device(&agent.device_id).await?["user"],
        "jiro@example.co.jp"
    );

    let unknown = sys
        .ctl(&[
            "device",
            "assign",
            &agent.device_id,
            "--user",
            "nobody@example.com",
        ])
        .await
        .unwrap_err();
    assert!(
        unknown
            .to_string()
            .contains("user nobody@example.com not found"),
        "{unknown}"
    );
    sys.ctl(&["user", "delete", "taro@example.co.jp"]).await?;
    let deleted = sys
        .ctl(&[
            "device",
            "assign",
            &agent.device_id,
            "--user",
            "taro@example.co.jp",
        ])
        .await
        .unwrap_err();
    assert!(deleted.to_string().contains("is deleted"), "{deleted}");
    assert!(sys.ctl(&["audit"]).await?.contains("device.assign"));
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_password_is_temporary_and_hashed() -> anyhow::Result<()> {
    use latchkeyd::core::passwords::Password;
    use latchkeyd::core::users::PasswordCheck;
    let sys = System::start().await?;
    sys.ctl(&["user", "add", "mika@example.co.jp", "--name", "Mika"])
        .await?;
    let reset = sys
        .ctl_json(&["user", "reset-password", "mika@example.co.jp"])
        .await?;
    let temporary = reset["temporary_password"].as_str().unwrap().to_owned();
    assert_eq!(temporary.len(), 16);

    let core = sys.running().core.clone();
    let now = chrono::Utc::now();
    let check = |password: &str, at| {
        let core = core.clone();
        let password = Password::new(password.to_owned());
        async move {
            core.sign_in
                .check_password("mika@example.co.jp", &password, at)
                .await
        }
    };
    match check(&temporary, now).await? {
        PasswordCheck::Valid { user, must_change } => {
            assert!(must_change);
            assert_eq!(user.email, "mika@example.co.jp");
        }
        other => panic!("expected a valid temporary password, got {other:?}"),
    }
    assert_eq!(check("guess", now).await?, PasswordCheck::Wrong);
    let nobody = core
        .sign_in
        .check_password(
            "nobody@example.co.jp",
            &Password::new(temporary.clone()),
            now,
        )
        .await?;
    assert_eq!(nobody, PasswordCheck::Unusable);
    let next_week = now + chrono::Duration::days(8);
    assert_eq!(check(&temporary, next_week).await?, PasswordCheck::Expired);
    sys.ctl(&["user", "suspend", "mika@example.co.jp"]).await?;
    assert_eq!(check(&temporary, now).await?, PasswordCheck::Unusable);
    let refused = sys
        .ctl(&["user", "reset-password", "mika@example.co.jp"])
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("is suspended"), "{refused}");

    let audit = sys.ctl(&["audit"]).await?;
    assert!(audit.contains("user.reset-password"));
    assert!(
        !audit.contains(&temporary),
        "the password stays out of the audit log"
    );
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_import_goes_through() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("many.csv");
    let mut csv = String::from("email,name,groups\n");
    for n in 0..6000 {
        csv.push_str(&format!(
            "user{n}@example.co.jp,User {n},group{}\n",
            n % 700
        ));
    }
    std::fs::write(&file, csv)?;
    let said = sys.ctl(&["user", "import", file.to_str().unwrap()]).await?;
    assert!(
        said.starts_with("6000 user(s) added, 0 row(s) rejected"),
        "{said}"
    );
    assert_eq!(
        sys.ctl_json(&["group", "list"])
            .await?
            .as_array()
            .unwrap()
            .len(),
        700
    );
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_importing_50000_users_from_a_2mb_file_gets_them_all() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("everyone.csv");
    let mut csv = String::from("email,name,groups\n");
    for n in 0..50_000 {
        csv.push_str(&format!("user{n:05}@example.co.jp,User {n:05},staff\n"));
    }
    assert!(csv.len() > 2_000_000, "{} bytes", csv.len());
    std::fs::write(&file, &csv)?;
    let said = sys.ctl(&["user", "import", file.to_str().unwrap()]).await?;
    assert!(
        said.starts_with("50000 user(s) added, 0 row(s) rejected"),
        "{said}"
    );

    // One row more than an import takes: latchctl says how to split it and
    // sends nothing.
    csv.push_str("one.more@example.co.jp,One More,staff\n");
    let over = dir.path().join("too-many.csv");
    std::fs::write(&over, &csv)?;
    let error = sys
        .ctl(&["user", "import", over.to_str().unwrap()])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("too large for one import")
            && error.contains("split it into files of at most 50000 rows"),
        "{error}"
    );
    assert!(
        sys.ctl(&["user", "show", "one.more@example.co.jp"])
            .await
            .is_err(),
        "nothing was imported"
    );
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_typing_an_address_a_mailer_cannot_use_is_told_why() -> anyhow::Result<()> {
    let sys = System::start().await?;
    for (address, why) in [
        ("q4@example.com,unterminated,staff,user", "contains ','"),
        ("\"Taro Yamada\" <taro@example.co.jp>", "contains '\"'"),
        ("taro@example..co.jp", "is not a host name"),
        ("taro@@example.co.jp", "exactly one @"),
    ] {
        let error = sys
            .ctl(&["user", "add", address, "--name", "Taro"])
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("is not an email address") && error.contains(why),
            "{address}: {error}"
        );
    }
    // A Unicode domain is accepted and kept in the form mailers use.
    sys.ctl(&["user", "add", "hanako@例え.jp", "--name", "山田 花子"])
        .await?;
    let hanako = sys.ctl_json(&["user", "show", "hanako@例え.jp"]).await?;
    assert_eq!(hanako["email"], "hanako@xn--r8jz45g.jp");

    // The same rule for an import, naming the row. An unterminated quote
    // makes the rest of the file one field: refused, not stored.
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("users.csv");
    std::fs::write(
        &file,
        "email,name,groups,role\n\
         ok@example.com,OK,staff,user\n\
         <angle@example.com>,Angle,staff,user\n\
         \"q4@example.com,unterminated,staff,user\n",
    )?;
    let report = sys
        .ctl_json(&["user", "import", file.to_str().unwrap()])
        .await?;
    assert_eq!(report["added"], serde_json::json!(["ok@example.com"]));
    let rejected = report["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2, "{report}");
    assert_eq!(rejected[0]["line"], 3);
    assert!(
        rejected[0]["reason"]
            .as_str()
            .unwrap()
            .contains("is not an email address"),
        "{report}"
    );
    assert_eq!(rejected[1]["line"], 4);
    let listed = sys.ctl_json(&["user", "list"]).await?;
    let emails: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["email"].as_str())
        .collect();
    assert!(
        emails
            .iter()
            .all(|e| !e.contains(',') && !e.contains('<') && !e.contains('"')),
        "{emails:?}"
    );
    sys.stop().await
}
