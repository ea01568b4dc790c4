//! The roles matrix: owner and admin may do everything, helpdesk may read
//! devices and users and lock or unlock devices, auditor may only read. A refusal is
//! PermissionDenied and lands in the audit log.

use latchkey_tests::System;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_may_do_exactly_what_it_is_for() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let token = sys.enrollment_token(&["--uses", "20"]).await?;
    let dir = tempfile::tempdir()?;
    let policy = dir.path().join("p.toml");
    std::fs::write(&policy, "[compliance]\nscreen_lock = true\n")?;
    let policy = policy.to_str().unwrap().to_owned();
    let now = chrono::Utc::now();
    let (push_cert, push_key) = latchkey_certs::apns::self_signed_push_certificate(
        "com.apple.mgmt.External.roles",
        now - chrono::Duration::days(1),
        now + chrono::Duration::days(300),
    )?;
    let push_cert_path = dir.path().join("push.pem");
    let push_key_path = dir.path().join("push-key.pem");
    std::fs::write(&push_cert_path, push_cert)?;
    std::fs::write(&push_key_path, push_key.expose())?;
    let (push_cert_path, push_key_path) = (
        push_cert_path.to_str().unwrap().to_owned(),
        push_key_path.to_str().unwrap().to_owned(),
    );

    let mut tokens = vec![("owner", sys.owner_token.clone())];
    for role in ["admin", "helpdesk", "auditor"] {
        let added = sys
            .ctl_json(&[
                "admin",
                "add",
                &format!("{role}@example.com"),
                "--role",
                role,
            ])
            .await?;
        tokens.push((role, added["token"].as_str().unwrap().to_owned()));
    }

    for (role, secret) in &tokens {
        // Fresh targets per role so each action is possible in principle.
        let device = sys.enroll(&token).await?.device_id;
        let retire_target = sys.enroll(&token).await?.device_id;
        let policy_name = format!("p-{role}");
        sys.ctl(&["policy", "set", &policy_name, &policy]).await?;
        let revocable = sys.ctl_json(&["token", "create"]).await?["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let new_admin = format!("new-{role}@example.com");
        let new_user = format!("user-{role}@example.com");

        let actions: Vec<(&str, Vec<&str>)> = vec![
            ("device list", vec!["device", "list"]),
            ("device show", vec!["device", "show", &device]),
            ("command list", vec!["command", "list", &device]),
            ("device lock", vec!["device", "lock", &device]),
            ("device unlock", vec!["device", "unlock", &device]),
            ("token list", vec!["token", "list"]),
            ("policy show", vec!["policy", "show", &policy_name]),
            ("admin list", vec!["admin", "list"]),
            ("audit", vec!["audit"]),
            ("user list", vec!["user", "list"]),
            ("user add", vec!["user", "add", &new_user, "--name", "New"]),
            ("token create", vec!["token", "create"]),
            ("token revoke", vec!["token", "revoke", &revocable]),
            ("policy set", vec!["policy", "set", &policy_name, &policy]),
            (
                "policy assign",
                vec!["policy", "assign", &policy_name, "--device", &device],
            ),
            (
                "admin add",
                vec!["admin", "add", &new_admin, "--role", "auditor"],
            ),
            ("device retire", vec!["device", "retire", &retire_target]),
            ("device wipe", vec!["device", "wipe", &device, "--confirm"]),
            ("apple status", vec!["apple", "status"]),
            (
                "apple push-cert import",
                vec![
                    "apple",
                    "push-cert",
                    "import",
                    "--cert",
                    &push_cert_path,
                    "--key",
                    &push_key_path,
                ],
            ),
        ];
        let reads = [
            "device list",
            "device show",
            "command list",
            "token list",
            "policy show",
            "admin list",
            "audit",
            "user list",
            "apple status",
        ];
        for (name, args) in actions {
            let allowed = match *role {
                "owner" | "admin" => true,
                "helpdesk" => [
                    "device list",
                    "device show",
                    "command list",
                    "device lock",
                    "device unlock",
                    "user list",
                ]
                .contains(&name),
                "auditor" => reads.contains(&name),
                _ => unreachable!(),
            };
            let result = sys.ctl_as(secret, &args).await;
            match (allowed, &result) {
                (true, Ok(_)) => {}
                (false, Err(e)) if e.to_string().starts_with("permission denied") => {}
                _ => panic!("{role} {name}: expected allowed={allowed}, got {result:?}"),
            }
        }
    }

    let audit = sys.ctl_json(&["audit"]).await?;
    let denied: Vec<_> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "denied")
        .map(|e| e["actor"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        denied
            .iter()
            .filter(|a| *a == "admin:helpdesk@example.com")
            .count(),
        14
    );
    assert_eq!(
        denied
            .iter()
            .filter(|a| *a == "admin:auditor@example.com")
            .count(),
        11
    );

    // Only an owner may create owners.
    let admin_token = &tokens[1].1;
    let refused = sys
        .ctl_as(
            admin_token,
            &["admin", "add", "boss@example.com", "--role", "owner"],
        )
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("permission denied"),
        "{refused}"
    );
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_refused_adding_an_owner_is_in_the_audit_log() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let added = sys
        .ctl_json(&["admin", "add", "admin@example.com", "--role", "admin"])
        .await?;
    let admin_token = added["token"].as_str().unwrap().to_owned();

    let refused = sys
        .ctl_as(
            &admin_token,
            &["admin", "add", "boss@example.com", "--role", "owner"],
        )
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("your role (admin) may not add owners"),
        "{refused}"
    );

    let audit = sys.ctl_json(&["audit"]).await?;
    let denied: Vec<_> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "denied")
        .collect();
    assert_eq!(denied.len(), 1, "{audit:#}");
    assert_eq!(denied[0]["actor"], "admin:admin@example.com");
    assert_eq!(denied[0]["action"], "add owners");
    assert_eq!(denied[0]["target"], "boss@example.com");
    let admins = sys.ctl_json(&["admin", "list"]).await?;
    assert!(
        !admins.to_string().contains("boss@example.com"),
        "{admins:#}"
    );
    sys.stop().await
}
