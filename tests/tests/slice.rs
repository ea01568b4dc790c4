//! The spine end to end, as an admin and a helpdesk would use it: token,
//! enrollment, the agent online, a policy evaluated, a lock executed and
//! acknowledged, all visible through latchctl.

use latchkey_tests::{DEADLINE, System, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_policy_compliance_and_lock() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let token = sys
        .enrollment_token(&["--group", "staff", "--user", "alice@example.com"])
        .await?;
    let mut agent = sys.enroll(&token).await?;
    agent.start_dry_run();

    // The device is listed with the facts the agent sent.
    let listed = sys.ctl_json(&["device", "list"]).await?;
    let device = &listed[0];
    assert_eq!(device["id"], agent.device_id.as_str());
    assert_eq!(device["platform"], "linux");
    assert_eq!(device["state"], "active");
    assert_eq!(device["user"], "alice@example.com");
    assert!(device["hostname"].as_str().is_some_and(|h| !h.is_empty()));
    let shown = sys.wait_for_posture(&agent.device_id).await?;
    assert_eq!(shown["compliance"], "compliant", "default rules: {shown}");

    // A policy the device cannot meet makes it noncompliant, naming the check.
    let dir = tempfile::tempdir()?;
    let strict = dir.path().join("strict.toml");
    std::fs::write(
        &strict,
        "[compliance]\nmax_posture_age = \"1h\"\n[compliance.min_os_version]\nlinux = \"9999\"\n[settings]\nposture_interval = \"10m\"\n",
    )?;
    let saved = sys
        .ctl(&["policy", "set", "strict", strict.to_str().unwrap()])
        .await?;
    assert!(saved.contains("policy strict saved (version 1)"), "{saved}");
    sys.ctl(&["policy", "assign", "strict", "--group", "staff"])
        .await?;
    let shown = sys.device(&agent.device_id).await?;
    assert_eq!(shown["policy"], "strict");
    assert_eq!(shown["compliant"], false);
    assert_eq!(shown["failed_checks"][0]["check"], "os_version");
    let text = sys.ctl(&["device", "show", &agent.device_id]).await?;
    assert!(
        text.contains("failing") && text.contains("older than 9999"),
        "{text}"
    );

    // The agent applies the pushed policy.
    wait_until("the agent to apply the policy", DEADLINE, || async {
        agent
            .state
            .policy()
            .ok()
            .flatten()
            .filter(|p| p.name == "strict")
    })
    .await?;

    // Helpdesk locks it: locked at once, then acknowledged by the agent.
    let helpdesk = sys
        .ctl_json(&["admin", "add", "desk@example.com", "--role", "helpdesk"])
        .await?;
    let desk_token = helpdesk["token"].as_str().unwrap().to_owned();
    let out = sys
        .ctl_as(
            &desk_token,
            &[
                "--json",
                "device",
                "lock",
                &agent.device_id,
                "--message",
                "lost on the train",
            ],
        )
        .await?;
    let locked: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(locked["device"]["state"], "locked");
    let command_id = locked["command"]["id"].as_str().unwrap().to_owned();
    let acked = sys
        .wait_for_command(&agent.device_id, &command_id, "acknowledged")
        .await?;
    assert_eq!(acked["kind"], "lock");
    assert_eq!(acked["result"], "dry-run");
    assert_eq!(sys.device(&agent.device_id).await?["state"], "locked");

    // The audit log names who did what.
    let audit = sys.ctl(&["audit", "--since", "1h"]).await?;
    for needle in [
        "device.enroll",
        "policy.set",
        "admin:desk@example.com",
        "device.lock",
        "command.acknowledge",
    ] {
        assert!(audit.contains(needle), "audit lacks {needle}:\n{audit}");
    }

    agent.stop().await?;
    sys.stop().await
}
