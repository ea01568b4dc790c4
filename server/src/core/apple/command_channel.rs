//! An Apple device's command channel (Apple, "Sending MDM commands to a
//! device"): the report on the last command, its result recorded as the
//! device's facts, and the next command handed out, rendered in Apple's
//! terms. A NotNow keeps a command; it is offered again only after a
//! later Idle, never on the same connection.

use chrono::{DateTime, Utc};

use super::Apple;
use super::checkin::{AppleDevice, AppleRefusal};
use crate::core::Devices;
use crate::core::commands::Acknowledged;
use crate::core::{AgentEvent, CoreError, printable};
use crate::domain::apple::command::{
    AppleCommand, CommandResult, FindMyPin, LostModeNotice, ReportStatus, SecurityInfo,
};
use crate::domain::apple::enrollment::platform_of;
use crate::domain::command::{Command, CommandKind};
use crate::domain::device::{CheckState, Posture};
use crate::domain::ids::CommandId;
use crate::store::Tx;

/// How stale a device's last-seen time may get within a session before a
/// report other than Idle writes it again: a session's messages come
/// seconds apart, and each write is a statement on every one of them.
const PRESENCE_RESOLUTION: chrono::Duration = chrono::Duration::seconds(60);

impl Apple {
    /// A report on the command channel (`PUT` to the server URL): records
    /// the answer to the last command and hands out the next one, if any.
    pub async fn command_report(
        &self,
        device: &AppleDevice,
        report: crate::domain::apple::command::CommandReport,
        now: DateTime<Utc>,
    ) -> Result<Option<(CommandId, AppleCommand)>, AppleRefusal> {
        if report.enrollment.is_user_channel() {
            return Ok(None);
        }
        let enrollment = self
            .bound_enrollment(device, &report.enrollment, now)
            .await?;
        let idle = matches!(report.status, ReportStatus::Idle);
        let last_idle = if idle {
            Some(now)
        } else {
            enrollment.last_idle_at
        };
        let answered = match report.status.answer() {
            Some(answer) => Some(CommandId::parse(&answer.command_uuid).ok_or_else(|| {
                AppleRefusal::Mismatch(format!(
                    "CommandUUID {} names no command",
                    printable(&answer.command_uuid, 64)
                ))
            })?),
            None => None,
        };
        // What an acknowledged command's result changes (facts, posture) is
        // written first, by the operations that own it. Only the answer to
        // an open command of this device says anything: one naming another
        // device's command, a repeat, or one to a command never sent changes
        // neither the device's facts nor its posture.
        let mut acknowledged = None;
        if let (ReportStatus::Acknowledged(answer), Some(_)) = (&report.status, &answered)
            && answer.result.is_none()
        {
            // Nothing to apply (a lock, a restart): recording the answer
            // checks that the command is this device's and open.
            acknowledged = Some("acknowledged".to_owned());
        } else if let (ReportStatus::Acknowledged(answer), Some(command_id)) =
            (&report.status, &answered)
            && let Some(command) = self
                .store
                .command(command_id)
                .await?
                .filter(|c| c.device_id == *device.id() && c.status.is_open())
        {
            acknowledged = Some(
                self.apply_result(device, command.kind, answer.result.as_ref(), now)
                    .await?,
            );
        }
        // Presence: an Idle is recorded on the enrollment (the NotNow rule
        // reads its time); otherwise each record, the enrollment's and the
        // device's, is written only once it is `PRESENCE_RESOLUTION` old,
        // so the rest of a session writes none.
        let stale = |seen: Option<DateTime<Utc>>| {
            seen.is_none_or(|seen| seen > now || now - seen >= PRESENCE_RESOLUTION)
        };
        let write_seen = idle || stale(enrollment.last_seen_at);
        let write_touch = stale(device.last_seen);
        if answered.is_none() {
            // Nothing to record with the next command: no transaction for
            // the common case, a command that renders on its own.
            if write_seen {
                self.store.apple_seen(device.id(), idle, now).await?;
            }
            if write_touch {
                self.store.touch_device(device.id(), now).await?;
            }
            let Some(command) = self
                .store
                .take_next_apple_command(device.id(), last_idle, now)
                .await?
            else {
                return Ok(None);
            };
            let needs_profile =
                command.kind == CommandKind::InstallProfile && command.args.profile.is_none();
            if !needs_profile && let Some(apple) = self.render(&command)? {
                return Ok(Some((command.id, apple)));
            }
            // A renewal's profile to render, or nothing to send: as any
            // other report, in one transaction.
            let tx = self.store.begin().await?;
            let next = self
                .next_command_in(&tx, device, last_idle, Some(command), now)
                .await?;
            tx.commit().await?;
            return Ok(next);
        }
        // Then the message's own writes, the answer recorded and the next
        // command handed out, in one transaction.
        let tx = self.store.begin().await?;
        if write_seen {
            tx.apple_seen(device.id(), idle, now).await?;
        }
        if write_touch {
            tx.touch_device(device.id(), now).await?;
        }
        let mut wiped = false;
        if let Some(command_id) = &answered {
            let outcome = match &report.status {
                ReportStatus::NotNow(_) => {
                    tx.mark_command_not_now(command_id, device.id(), now)
                        .await?;
                    None
                }
                ReportStatus::Acknowledged(_) => match &acknowledged {
                    Some(summary) => Some(
                        Devices::acknowledge_command_in(
                            &tx,
                            &device.device,
                            command_id,
                            true,
                            summary,
                            now,
                        )
                        .await?,
                    ),
                    None => None,
                },
                ReportStatus::Error(answer) | ReportStatus::CommandFormatError(answer) => {
                    let chain: Vec<String> = answer
                        .error_chain
                        .iter()
                        .map(|e| {
                            format!(
                                "{} {}: {}",
                                printable(&e.domain, 64),
                                e.code,
                                e.us_english_description
                                    .as_deref()
                                    .or(e.localized_description.as_deref())
                                    .unwrap_or("")
                            )
                        })
                        .collect();
                    let result = format!("{}: {}", report.status.as_str(), chain.join("; "));
                    Some(
                        Devices::acknowledge_command_in(
                            &tx,
                            &device.device,
                            command_id,
                            false,
                            &result,
                            now,
                        )
                        .await?,
                    )
                }
                ReportStatus::Idle => None,
            };
            wiped = outcome == Some(Acknowledged::Wiped);
        }
        let next = self
            .next_command_in(&tx, device, last_idle, None, now)
            .await?;
        tx.commit().await?;
        if wiped {
            self.devices.after_device_ended(device.id(), now).await;
        }
        Ok(next)
    }

    /// A command handed to `device` that could not be written in Apple's
    /// terms (its text holds what a property list cannot carry): closed
    /// as failed, with why.
    pub async fn command_unsendable(
        &self,
        device: &AppleDevice,
        command: &CommandId,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        let tx = self.store.begin().await?;
        let outcome = Devices::acknowledge_command_in(
            &tx,
            &device.device,
            command,
            false,
            &format!("could not be sent: {why}"),
            now,
        )
        .await?;
        tx.commit().await?;
        if outcome == Acknowledged::Wiped {
            self.devices.after_device_ended(device.id(), now).await;
        }
        Ok(())
    }

    /// The next command the device fetches (`taken`, when it was taken
    /// already), marked sent in `tx` and rendered for it; commands Apple
    /// has no form for are closed here and skipped.
    async fn next_command_in(
        &self,
        tx: &Tx,
        device: &AppleDevice,
        last_idle: Option<DateTime<Utc>>,
        mut taken: Option<Command>,
        now: DateTime<Utc>,
    ) -> Result<Option<(CommandId, AppleCommand)>, AppleRefusal> {
        loop {
            let next = match taken.take() {
                Some(command) => Some(command),
                None => {
                    tx.take_next_apple_command(device.id(), last_idle, now)
                        .await?
                }
            };
            let Some(mut command) = next else {
                return Ok(None);
            };
            if command.kind == CommandKind::InstallProfile && command.args.profile.is_none() {
                command.args.profile = self.renewal_profile(tx, &command).await?;
            }
            match self.render(&command)? {
                Some(apple) => return Ok(Some((command.id, apple))),
                None => {
                    // An unlock is the user's passcode; anything else
                    // without its content (no profile, no notice) cannot
                    // be carried out.
                    let (done, result) = if command.kind == CommandKind::Unlock {
                        (
                            true,
                            "nothing to send: an Apple device unlocks with its passcode \
                             (a Mac with the PIN of its lock)",
                        )
                    } else {
                        (false, "nothing to send: the command has no content")
                    };
                    Devices::acknowledge_command_in(
                        tx,
                        &device.device,
                        &command.id,
                        done,
                        result,
                        now,
                    )
                    .await?;
                }
            }
        }
    }

    /// A queued command as Apple's request (`None`: nothing to send).
    fn render(&self, command: &Command) -> Result<Option<AppleCommand>, CoreError> {
        let text = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let pin = match &command.args.pin_sealed {
            Some(sealed) => FindMyPin::parse(
                &self
                    .ca
                    .token_keys()
                    .open(&crate::core::commands::pin_kid(&command.device_id), sealed)?,
            ),
            None => None,
        };
        Ok(Some(match command.kind {
            CommandKind::Lock => AppleCommand::DeviceLock {
                pin,
                message: text(&command.message),
                phone_number: command.args.phone_number.clone(),
            },
            CommandKind::Unlock => return Ok(None),
            CommandKind::EndLostMode => AppleCommand::DisableLostMode,
            CommandKind::Locate => AppleCommand::DeviceLocation,
            CommandKind::Restart => AppleCommand::RestartDevice,
            CommandKind::ListProfiles => AppleCommand::ProfileList {
                managed_only: false,
            },
            CommandKind::Wipe => AppleCommand::EraseDevice {
                pin,
                preserve_data_plan: false,
                disallow_proximity_setup: false,
                obliteration_behavior: None,
            },
            CommandKind::LostMode => match LostModeNotice::new(
                text(&command.message),
                command.args.phone_number.clone(),
                command.args.footnote.clone(),
            ) {
                Some(notice) => AppleCommand::EnableLostMode(notice),
                None => return Ok(None),
            },
            CommandKind::Inventory => AppleCommand::inventory(),
            CommandKind::SecurityInfo => AppleCommand::SecurityInfo,
            CommandKind::InstallProfile => match &command.args.profile {
                Some(payload) => AppleCommand::InstallProfile {
                    payload: payload.clone(),
                },
                None => return Ok(None),
            },
            CommandKind::RemoveProfile => match &command.args.profile_identifier {
                Some(identifier) => AppleCommand::RemoveProfile {
                    identifier: identifier.clone(),
                },
                None => return Ok(None),
            },
            CommandKind::ReleaseSetup => AppleCommand::DeviceConfigured,
        }))
    }

    /// What an acknowledged command's result changes: the device's facts
    /// and its posture, each only from the command that asks for it.
    /// Returns the result as `command list` shows it.
    async fn apply_result(
        &self,
        device: &AppleDevice,
        kind: CommandKind,
        result: Option<&CommandResult>,
        now: DateTime<Utc>,
    ) -> Result<String, CoreError> {
        let Some(result) = result else {
            return Ok("acknowledged".into());
        };
        match result {
            CommandResult::DeviceInformation(_) if kind != CommandKind::Inventory => {
                Ok("acknowledged".into())
            }
            CommandResult::SecurityInfo(_) if kind != CommandKind::SecurityInfo => {
                Ok("acknowledged".into())
            }
            CommandResult::DeviceLocation(_) if kind != CommandKind::Locate => {
                Ok("acknowledged".into())
            }
            CommandResult::ProfileList(_) if kind != CommandKind::ListProfiles => {
                Ok("acknowledged".into())
            }
            CommandResult::DeviceInformation(info) => {
                if let Some(supervised) = info.is_supervised {
                    self.store
                        .set_apple_supervised(device.id(), supervised)
                        .await?;
                }
                self.store
                    .set_apple_device_facts(
                        device.id(),
                        info.device_name
                            .as_deref()
                            .map(|n| printable(n, 128))
                            .as_deref(),
                        platform_of(info.product_name.as_deref(), info.model.as_deref()),
                        &printable(info.os_version.as_deref().unwrap_or_default(), 64),
                        &printable(info.serial_number.as_deref().unwrap_or_default(), 64),
                        &printable(
                            info.model_name
                                .as_deref()
                                .or(info.product_name.as_deref())
                                .unwrap_or_default(),
                            64,
                        ),
                        now,
                    )
                    .await?;
                Ok(format!(
                    "{} {} (serial {}), supervised: {}",
                    info.model_name.as_deref().unwrap_or("?"),
                    info.os_version.as_deref().unwrap_or("?"),
                    info.serial_number.as_deref().unwrap_or("?"),
                    info.is_supervised
                        .map_or("unknown", |s| if s { "yes" } else { "no" }),
                ))
            }
            CommandResult::SecurityInfo(security) => {
                let os_version = self
                    .store
                    .device(device.id())
                    .await?
                    .map(|d| d.os_version)
                    .unwrap_or_default();
                let posture = posture_of(security, os_version);
                let summary = format!(
                    "disk encryption {}, screen lock {}, firewall {}",
                    posture.disk_encryption.as_str(),
                    posture.screen_lock.as_str(),
                    posture.firewall.as_str()
                );
                self.devices
                    .handle_agent_event(&device.device, AgentEvent::Posture(posture), now)
                    .await?;
                Ok(summary)
            }
            CommandResult::ProfileList(profiles) => Ok(format!("{} profile(s)", profiles.len())),
            CommandResult::DeviceLocation(location) => Ok(format!(
                "at {:.5}, {:.5}",
                location.latitude, location.longitude
            )),
            CommandResult::DeviceLock(result) => Ok(format!("lock: {result:?}")),
        }
    }
}

/// The posture an Apple device's SecurityInfo shows: disk encryption is
/// FileVault on a Mac and Data Protection on iOS; the screen lock is a
/// passcode; the firewall is reported by Macs only.
pub fn posture_of(security: &SecurityInfo, os_version: String) -> Posture {
    let state = |value: Option<bool>| match value {
        Some(true) => CheckState::Enabled,
        Some(false) => CheckState::Disabled,
        None => CheckState::Unknown,
    };
    Posture {
        os_version,
        disk_encryption: state(security.fde_enabled.or_else(|| security.data_protection())),
        screen_lock: state(security.passcode_present),
        firewall: state(security.firewall.as_ref().and_then(|f| f.enabled)),
    }
}
