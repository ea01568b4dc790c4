//! `latchctl device`: listing and showing devices (state, compliance and
//! posture as the server reports them), the commands that change a
//! device's state (lock, unlock, wipe, retire), and binding it to a user.

use latchkey_proto::v1;
use serde_json::json;

use super::Context;
use super::command::command_json;
use crate::args::DeviceCommand;
use crate::error::call;
use crate::render::{self, Fields, Table, time};
use crate::{CliError, enums};

pub async fn run(command: DeviceCommand, cx: &mut Context) -> Result<String, CliError> {
    match command {
        DeviceCommand::List => {
            let devices = call(cx.client.list_devices(v1::ListDevicesRequest {}))
                .await?
                .devices;
            if cx.json {
                let devices = devices
                    .iter()
                    .map(device_json)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(render::pretty(&json!(devices)))
            } else {
                let mut table = Table::new(&[
                    "ID",
                    "HOSTNAME",
                    "PLATFORM",
                    "OS",
                    "STATE",
                    "USER",
                    "COMPLIANCE",
                    "LAST SEEN",
                ]);
                for d in &devices {
                    table.row(vec![
                        d.id.clone(),
                        d.hostname.clone(),
                        d.platform.clone(),
                        d.os_version.clone(),
                        enums::device_state(d.state)?.to_owned(),
                        render::or_dash(&d.user).to_owned(),
                        enums::compliance(d.compliance)?.1.to_owned(),
                        render::ago(d.last_seen, cx.now),
                    ]);
                }
                Ok(table.render())
            }
        }
        DeviceCommand::Show { id } => {
            let device = call(cx.client.get_device(v1::GetDeviceRequest { id })).await?;
            if cx.json {
                Ok(render::pretty(&device_json(&device)?))
            } else {
                device_text(&device)
            }
        }
        DeviceCommand::Lock {
            ids,
            ids_from,
            group,
            user,
            message,
            lost,
            phone,
            footnote,
        } => {
            let mut ids = ids;
            let from_file = ids_from.is_some();
            if let Some(path) = ids_from {
                ids.extend(read_ids(&path)?);
            }
            if let [id] = ids.as_slice()
                && !from_file
                && group.is_none()
                && user.is_none()
            {
                let r = call(cx.client.lock_device(v1::LockDeviceRequest {
                    id: id.clone(),
                    message: message.unwrap_or_default(),
                    lost,
                    phone: phone.unwrap_or_default(),
                    footnote: footnote.unwrap_or_default(),
                }))
                .await?;
                let pin = r
                    .command
                    .as_ref()
                    .map(|c| c.pin.clone())
                    .unwrap_or_default();
                let mut out =
                    command_result(cx.json, if lost { "in lost mode" } else { "locked" }, r)?;
                if !pin.is_empty() && !cx.json {
                    out.push_str(&format!("PIN to unlock this Mac: {pin}\n"));
                }
                return Ok(out);
            }
            if ids.is_empty() && group.is_none() && user.is_none() {
                return Err(CliError::Usage(
                    "name the device to lock (or several), or give --ids-from, --group or --user"
                        .into(),
                ));
            }
            if lost || footnote.is_some() {
                return Err(CliError::Usage(
                    "lost mode is for one device at a time: give one device id with --lost".into(),
                ));
            }
            let r = call(cx.client.lock_devices(v1::LockDevicesRequest {
                ids,
                group: group.unwrap_or_default(),
                user: user.unwrap_or_default(),
                message: message.unwrap_or_default(),
                phone: phone.unwrap_or_default(),
            }))
            .await?;
            bulk_lock_result(cx.json, r)
        }
        DeviceCommand::Unlock { id } => {
            let r = call(cx.client.unlock_device(v1::UnlockDeviceRequest { id })).await?;
            command_result(cx.json, "unlocked", r)
        }
        DeviceCommand::Locate { id } => {
            let r = call(cx.client.locate_device(v1::LocateDeviceRequest { id })).await?;
            command_result(cx.json, "asked where it is", r)
        }
        DeviceCommand::Restart { id } => {
            let r = call(cx.client.restart_device(v1::RestartDeviceRequest { id })).await?;
            command_result(cx.json, "asked to restart", r)
        }
        DeviceCommand::Profiles { id } => {
            let r = call(
                cx.client
                    .list_device_profiles(v1::ListDeviceProfilesRequest { id }),
            )
            .await?;
            command_result(cx.json, "asked for its profiles", r)
        }
        DeviceCommand::Wipe { id, confirm } => {
            if !confirm {
                return Err(CliError::Usage(format!(
                    "wiping cannot be undone (an Apple device is erased; an agent removes its key, certificates and managed data); run `latchctl device wipe {id} --confirm`"
                )));
            }
            let r = call(cx.client.wipe_device(v1::WipeDeviceRequest { id })).await?;
            let pin = r
                .command
                .as_ref()
                .map(|c| c.pin.clone())
                .unwrap_or_default();
            let mut out = command_result(cx.json, "being wiped", r)?;
            if !pin.is_empty() && !cx.json {
                out.push_str(&format!("PIN the erased Mac asks for: {pin}\n"));
            }
            Ok(out)
        }
        DeviceCommand::Retire { id } => {
            let device = call(cx.client.retire_device(v1::RetireDeviceRequest { id })).await?;
            if cx.json {
                Ok(render::pretty(&device_json(&device)?))
            } else {
                Ok(format!(
                    "device {} ({}) retired; its certificates are revoked\n",
                    device.id, device.hostname
                ))
            }
        }
        DeviceCommand::Assign { id, user } => {
            let device = call(
                cx.client
                    .assign_device(v1::AssignDeviceRequest { id, user }),
            )
            .await?;
            if cx.json {
                Ok(render::pretty(&device_json(&device)?))
            } else {
                Ok(format!(
                    "device {} ({}) now belongs to {}\n",
                    device.id, device.hostname, device.user
                ))
            }
        }
    }
}

/// The device and the command a lock, unlock or wipe queued for it.
/// Device ids, one per line, from a file or standard input ("-"); blank
/// lines and lines starting with `#` are skipped.
fn read_ids(path: &std::path::Path) -> Result<Vec<String>, CliError> {
    let file_error = |source| CliError::File {
        path: path.to_owned(),
        source,
    };
    // Ten thousand ids with room for comments; a larger file is a mistake.
    const MAX_BYTES: u64 = 4 * 1024 * 1024;
    use std::io::Read;
    let mut text = String::new();
    let read = if path == std::path::Path::new("-") {
        std::io::stdin()
            .take(MAX_BYTES + 1)
            .read_to_string(&mut text)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(MAX_BYTES + 1).read_to_string(&mut text))
    };
    read.map_err(file_error)?;
    if text.len() as u64 > MAX_BYTES {
        return Err(CliError::Usage(format!(
            "{} is over {MAX_BYTES} bytes; a bulk lock takes at most 10000 ids",
            path.display()
        )));
    }
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect())
}

/// What a bulk lock did: the devices locked (with a Mac's PIN), then the
/// ones skipped and why.
fn bulk_lock_result(json: bool, r: v1::LockDevicesResponse) -> Result<String, CliError> {
    if json {
        let locked = r
            .locked
            .into_iter()
            .map(|l| {
                let command = l.command.unwrap_or_default();
                Ok(json!({
                    "device": {
                        "id": l.id,
                        "hostname": l.hostname,
                        "platform": l.platform,
                        "user": l.user,
                        "state": "locked",
                    },
                    "command": command_json(&command)?,
                }))
            })
            .collect::<Result<Vec<_>, CliError>>()?;
        let skipped: Vec<_> = r
            .skipped
            .iter()
            .map(|s| json!({"id": s.id, "hostname": s.hostname, "reason": s.reason}))
            .collect();
        return Ok(render::pretty(
            &json!({"locked": locked, "skipped": skipped}),
        ));
    }
    let mut out = String::new();
    if !r.locked.is_empty() {
        let mut table = Table::new(&[
            "ID", "HOSTNAME", "PLATFORM", "USER", "COMMAND", "STATUS", "MAC PIN",
        ]);
        for l in &r.locked {
            let command = l.command.clone().unwrap_or_default();
            table.row(vec![
                l.id.clone(),
                l.hostname.clone(),
                l.platform.clone(),
                render::or_dash(&l.user).to_owned(),
                command.id,
                enums::command_status(command.status)?.to_owned(),
                render::or_dash(&command.pin).to_owned(),
            ]);
        }
        out.push_str(&table.render());
    }
    if !r.skipped.is_empty() {
        let mut table = Table::new(&["SKIPPED", "HOSTNAME", "WHY"]);
        for s in &r.skipped {
            table.row(vec![
                s.id.clone(),
                render::or_dash(&s.hostname).to_owned(),
                s.reason.clone(),
            ]);
        }
        out.push_str(&table.render());
    }
    out.push_str(&format!(
        "{} locked, {} skipped; locked devices are cut off from sign-in now\n",
        r.locked.len(),
        r.skipped.len()
    ));
    Ok(out)
}

pub(super) fn command_result(
    json: bool,
    verb: &str,
    r: v1::DeviceCommandResponse,
) -> Result<String, CliError> {
    let device = r.device.unwrap_or_default();
    let command = r.command.unwrap_or_default();
    if json {
        Ok(render::pretty(
            &json!({"device": device_json(&device)?, "command": command_json(&command)?}),
        ))
    } else {
        Ok(format!(
            "device {} ({}) {verb}; state is now {}\ncommand {} is {}; follow it with `latchctl command list {}`\n",
            device.id,
            device.hostname,
            enums::device_state(device.state)?,
            command.id,
            enums::command_status(command.status)?,
            device.id
        ))
    }
}

fn device_json(d: &v1::Device) -> Result<serde_json::Value, CliError> {
    let (compliant, compliance) = enums::compliance(d.compliance)?;
    Ok(json!({
        "id": d.id,
        "hostname": d.hostname,
        "platform": d.platform,
        "os_version": d.os_version,
        "state": enums::device_state(d.state)?,
        "user": (!d.user.is_empty()).then_some(&d.user),
        "group": (!d.group.is_empty()).then_some(&d.group),
        "compliant": compliant,
        "compliance": compliance,
        "failed_checks": d.failed_checks.iter().map(|f| json!({"check": f.check, "detail": f.detail})).collect::<Vec<_>>(),
        "policy": (!d.policy.is_empty()).then_some(&d.policy),
        "last_seen": render::rfc3339(d.last_seen),
        "enrolled_at": render::rfc3339(d.enrolled_at),
        "serial": d.serial,
        "model": d.model,
        "machine_id": d.machine_id,
        "certificate_expires_at": render::rfc3339(d.certificate_expires_at),
        "posture": {
            "disk_encryption": d.posture_disk_encryption,
            "screen_lock": d.posture_screen_lock,
            "firewall": d.posture_firewall,
            "reported_at": render::rfc3339(d.posture_at),
        },
        "apple": d.apple.as_ref().map(|a| json!({
            "supervised": a.supervised,
            "last_check_in": render::rfc3339(a.last_check_in),
            "last_push_at": render::rfc3339(a.last_push_at),
            "last_push_result": (!a.last_push_result.is_empty()).then_some(&a.last_push_result),
            "push_token_invalid": a.push_token_invalid,
            "push_enabled": a.push_enabled,
            "awaiting_configuration": a.awaiting_configuration,
            "topic": (!a.topic.is_empty()).then_some(&a.topic),
            "unlock_pin": (!a.unlock_pin.is_empty()).then_some(&a.unlock_pin),
            "unlock_pin_set_at": render::rfc3339(a.unlock_pin_set_at),
        })),
        "apple_identity": d.apple_identity.as_ref().map(|i| json!({
            "expires_at": render::rfc3339(i.expires_at),
            "renewal": (i.renewal_started_at != 0).then(|| json!({
                "started_at": render::rfc3339(i.renewal_started_at),
                "expires_at": render::rfc3339(i.renewal_expires_at),
                "certificate_issued": i.renewal_certificate_issued,
            })),
            "last_renewal": (i.last_renewal_at != 0).then(|| json!({
                "at": render::rfc3339(i.last_renewal_at),
                "outcome": i.last_renewal_outcome,
            })),
        })),
        "policy_gaps": d.policy_gaps.iter().map(|g| json!({
            "rule": g.rule,
            "reason": g.reason,
            "reported_by": (!g.reported_by.is_empty()).then_some(&g.reported_by),
        })).collect::<Vec<_>>(),
    }))
}

/// The lines `device show` gives an Apple device's MDM facts.
fn apple_lines(t: &mut Fields, a: &v1::AppleDeviceFacts) {
    t.add(
        "supervised",
        match a.supervised {
            Some(true) => "yes",
            Some(false) => "no (lost mode needs a supervised device)",
            None => "not reported yet",
        },
    );
    t.add("last check-in", &time(a.last_check_in));
    let push = if a.push_token_invalid {
        "token no longer valid (APNs 410); waiting for the device's next token update".to_owned()
    } else if !a.push_enabled {
        "not enabled (no push token yet, or the device checked out)".to_owned()
    } else if a.last_push_at == 0 {
        "enabled; none sent yet".to_owned()
    } else {
        format!(
            "last {} ({})",
            time(a.last_push_at),
            render::or_dash(&a.last_push_result)
        )
    };
    t.add("push", &push);
    if a.awaiting_configuration {
        t.add("setup", "waiting in Setup Assistant for its configuration");
    }
    if !a.unlock_pin.is_empty() {
        t.add(
            "unlock PIN",
            &format!("{} (set {})", a.unlock_pin, time(a.unlock_pin_set_at)),
        );
    }
}

/// The lines `device show` gives an Apple device's identity certificate.
fn identity_lines(t: &mut Fields, i: &v1::AppleIdentity) {
    t.add("identity", &format!("expires {}", time(i.expires_at)));
    if i.renewal_started_at != 0 {
        t.add(
            "  renewal",
            &format!(
                "pending since {} ({}); retried if not done by {}",
                time(i.renewal_started_at),
                if i.renewal_certificate_issued {
                    "certificate issued, waiting for the device to use it"
                } else {
                    "waiting for the device to install the refreshed profile"
                },
                time(i.renewal_expires_at)
            ),
        );
    }
    if i.last_renewal_at != 0 {
        t.add(
            "  last renewal",
            &format!("{} ({})", i.last_renewal_outcome, time(i.last_renewal_at)),
        );
    }
}

fn device_text(d: &v1::Device) -> Result<String, CliError> {
    let mut t = Fields::default();
    t.add("id", &d.id);
    t.add("hostname", &d.hostname);
    t.add("platform", &format!("{} {}", d.platform, d.os_version));
    t.add("state", enums::device_state(d.state)?);
    t.add("user", render::or_dash(&d.user));
    t.add("group", render::or_dash(&d.group));
    t.add(
        "policy",
        if d.policy.is_empty() {
            "(default rules)"
        } else {
            &d.policy
        },
    );
    t.add("compliance", enums::compliance(d.compliance)?.1);
    for f in &d.failed_checks {
        t.add("  failing", &format!("{}: {}", f.check, f.detail));
    }
    t.add(
        "posture",
        &if d.posture_at == 0 {
            "not reported yet".to_owned()
        } else {
            format!(
                "disk encryption {}, screen lock {}, firewall {} (reported {})",
                d.posture_disk_encryption,
                d.posture_screen_lock,
                d.posture_firewall,
                time(d.posture_at)
            )
        },
    );
    t.add("last seen", &time(d.last_seen));
    t.add("enrolled", &time(d.enrolled_at));
    t.add(
        "certificate",
        &format!("expires {}", time(d.certificate_expires_at)),
    );
    t.add("serial", render::or_dash(&d.serial));
    t.add("model", render::or_dash(&d.model));
    if let Some(apple) = &d.apple {
        apple_lines(&mut t, apple);
    }
    if let Some(identity) = &d.apple_identity {
        identity_lines(&mut t, identity);
    }
    for g in &d.policy_gaps {
        let line = if g.reported_by.is_empty() {
            format!(
                "{}: not reported by this platform, so it cannot pass here ({})",
                g.rule, g.reason
            )
        } else {
            format!(
                "{}: not enforced, only checked through {} ({})",
                g.rule, g.reported_by, g.reason
            )
        };
        t.add("policy gap", &line);
    }
    Ok(t.render())
}
