//! Commands: queued in the outbox, offered to the device's channel
//! (`push::port`), fetched by devices that check in, acknowledged once, and
//! offered again when unacknowledged.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use tracing::warn;

use super::auth::{AuthenticatedAdmin, AuthenticatedDevice, Permission};
use super::devices::Devices;
use super::policies;
use super::{CoreError, DeviceView, device_text, existing_device, parse_device_id, printable};
use crate::domain::audit::{Actor, AdminRequest, AuditAction, AuditEntry, AuditOutcome};
use crate::domain::command::{Command, CommandArgs, CommandKind, CommandStatus};
use crate::domain::device::{Channel, Device, DeviceState};
use crate::domain::ids::{CommandId, DeviceId};
use crate::push::port::{Ports, Work};
use crate::store::Tx;

pub(super) const MAX_MESSAGE_LEN: usize = 1024;
pub(super) const MAX_PHONE_LEN: usize = 64;
/// Devices whose failed offers one call logs one by one; the rest are
/// counted in one line.
const MAX_FAILURES_LOGGED: usize = 5;

/// What recording a device's answer to its command did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Acknowledged {
    /// The command was open and is now closed.
    Now,
    /// A wipe was carried out: the device is wiped (see `after_device_ended`).
    Wiped,
    /// The command was closed already (a repeated answer) or is not this
    /// device's: nothing changed.
    Again,
}

/// How queuing a command of `kind` is audited.
pub(super) fn command_audit_action(kind: CommandKind) -> AuditAction {
    match kind {
        CommandKind::Lock => AuditAction::DeviceLock,
        CommandKind::Unlock => AuditAction::DeviceUnlock,
        CommandKind::Wipe => AuditAction::DeviceWipe,
        CommandKind::LostMode => AuditAction::DeviceLostMode,
        CommandKind::EndLostMode => AuditAction::DeviceUnlock,
        CommandKind::Locate => AuditAction::DeviceLocate,
        CommandKind::Restart => AuditAction::DeviceRestart,
        CommandKind::ListProfiles => AuditAction::CommandQueue,
        CommandKind::Inventory
        | CommandKind::SecurityInfo
        | CommandKind::InstallProfile
        | CommandKind::RemoveProfile
        | CommandKind::ReleaseSetup => AuditAction::CommandQueue,
    }
}

/// What the sealed PIN of a Mac's lock is bound to (the Apple service
/// opens it with the same words).
pub(super) fn pin_kid(device: &DeviceId) -> String {
    format!("apple-pin:{device}")
}

/// A lock as an admin asks for it.
#[derive(Debug, Clone, Default)]
pub struct LockRequest {
    pub message: String,
    /// Lost mode (supervised iPhones and iPads).
    pub lost: bool,
    pub phone: Option<String>,
    pub footnote: Option<String>,
}

impl LockRequest {
    /// A plain lock showing `message`.
    pub fn showing(message: &str) -> Self {
        LockRequest {
            message: message.to_owned(),
            ..Self::default()
        }
    }
}

/// What an admin asks a device to do.
pub(super) struct CommandRequest {
    pub kind: CommandKind,
    pub message: String,
    pub args: CommandArgs,
}

impl Devices {
    pub async fn list_commands(
        &self,
        caller: &AuthenticatedAdmin,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Command>, CoreError> {
        self.audit
            .authorize(
                caller,
                Permission::ReadDevices,
                AdminRequest::ListCommands,
                id,
                now,
            )
            .await?;
        let device_id = parse_device_id(id)?;
        if self.store.device(&device_id).await?.is_none() {
            return Err(CoreError::NotFound(format!("device {id}")));
        }
        Ok(self.store.list_commands(&device_id).await?)
    }

    /// Queues a command (and the state change that goes with it) in one
    /// transaction, then hands it to the broker. The state change is in
    /// force before delivery: a lock cuts the device off at once.
    pub(super) async fn queue_command(
        &self,
        caller: &AuthenticatedAdmin,
        id: &str,
        request: CommandRequest,
        new_state: DeviceState,
        now: DateTime<Utc>,
    ) -> Result<(DeviceView, Command), CoreError> {
        let CommandRequest {
            kind,
            message,
            args,
        } = request;
        let (device_id, device) = existing_device(&self.store, id).await?;
        if device.state.is_final() || device.state == DeviceState::WipePending {
            return Err(CoreError::FailedPrecondition(format!(
                "device {id} is {}; it takes no more commands",
                device.state.as_str()
            )));
        }
        let command = Command::pending(
            device_id.clone(),
            kind,
            message,
            args,
            caller.admin().email.clone(),
            now,
        );
        let tx = self.store.begin().await?;
        tx.insert_command(&command).await?;
        let open_states = [DeviceState::Active, DeviceState::Locked, DeviceState::Lost];
        if !tx
            .change_device_state(&device_id, &open_states, new_state)
            .await?
        {
            return Err(CoreError::FailedPrecondition(format!(
                "device {id} was retired or wiped meanwhile; it takes no more commands"
            )));
        }
        if new_state != DeviceState::Active {
            // Locking or wiping cuts off SSO from the device in the same
            // transaction: its sessions and grants end now.
            tx.end_device_sso(&device_id, &format!("device {}", new_state.as_str()), now)
                .await?;
        }
        tx.audit(&AuditEntry {
            at: now,
            actor: caller.actor(),
            action: command_audit_action(kind),
            target: device_id.to_string(),
            outcome: AuditOutcome::Ok,
            detail: format!(
                "command {}; state {} -> {}",
                command.id,
                device.state.as_str(),
                new_state.as_str()
            ),
        })
        .await?;
        tx.commit().await?;
        let mut command = command;
        if self
            .offer_work(
                &device.channel,
                &device_id,
                std::slice::from_ref(&command),
                now,
            )
            .await
            == 1
        {
            command.status = CommandStatus::Sent;
            command.sent_at = Some(now);
        }
        let policies = self.store.all_policies().await?;
        let device = Device {
            state: new_state,
            ..device
        };
        Ok((policies::view(device, &policies, now), command))
    }

    /// Tells the device's channel that these open commands (already in the
    /// outbox) wait for it, and records the ones the channel carried as
    /// sent; returns how many. A channel that failed leaves the commands
    /// pending for the next redelivery (recorded as offered now, so they
    /// wait their turn); that is logged, not returned, because the
    /// commands are already safely in the outbox.
    pub(super) async fn offer_work(
        &self,
        channel: &Channel,
        device: &DeviceId,
        commands: &[Command],
        now: DateTime<Utc>,
    ) -> usize {
        offer_work_through(&self.store, &self.ports, channel, device, commands, now).await
    }

    /// [`Devices::offer_work`] for many devices at once (see
    /// [`offer_all_through`]): how many commands each was handed, in order.
    pub(super) async fn offer_all(
        &self,
        offers: Vec<(Channel, Work)>,
        now: DateTime<Utc>,
    ) -> Vec<usize> {
        offer_all_through(&self.store, &self.ports, offers, now).await
    }

    /// The next command waiting for `device`, oldest first, for channels
    /// whose devices fetch their work when they check in: it is recorded
    /// as sent, and stays open until the device acknowledges it.
    pub async fn next_command(
        &self,
        device: &AuthenticatedDevice,
        now: DateTime<Utc>,
    ) -> Result<Option<Command>, CoreError> {
        let Some(mut command) = self
            .store
            .open_commands(device.id())
            .await?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        self.store
            .mark_commands_sent(std::slice::from_ref(&command.id), now)
            .await?;
        command.status = CommandStatus::Sent;
        command.sent_at = Some(now);
        Ok(Some(command))
    }

    pub async fn lock_device(
        &self,
        caller: &AuthenticatedAdmin,
        id: &str,
        lock: LockRequest,
        now: DateTime<Utc>,
    ) -> Result<(DeviceView, Command), CoreError> {
        self.audit
            .authorize(
                caller,
                Permission::LockDevices,
                AdminRequest::LockDevices,
                id,
                now,
            )
            .await?;
        let message = device_text("lock message", &lock.message, MAX_MESSAGE_LEN)?;
        let phone = lock
            .phone
            .map(|p| device_text("phone number", p.trim(), MAX_PHONE_LEN))
            .transpose()?
            .filter(|p| !p.is_empty());
        let footnote = lock
            .footnote
            .map(|f| device_text("footnote", f.trim(), MAX_MESSAGE_LEN))
            .transpose()?
            .filter(|f| !f.is_empty());
        let (device_id, device) = existing_device(&self.store, id).await?;
        if device.state == DeviceState::Lost && !lock.lost {
            // A plain lock would leave lost mode on the device while the
            // server forgot it (and unlock would send Unlock, which does
            // not end lost mode).
            return Err(CoreError::FailedPrecondition(format!(
                "device {id} is in lost mode; `device unlock` ends lost mode, then lock it"
            )));
        }
        let apple = device.channel == Channel::apple();
        if !apple && (phone.is_some() || footnote.is_some() || lock.lost) {
            return Err(CoreError::FailedPrecondition(format!(
                "device {id} is managed by the Latchkey agent, which shows only the message; \
                 lost mode, a phone number and a footnote are for Apple devices"
            )));
        }
        if lock.lost {
            let supervised = self
                .store
                .apple_enrollment(&device_id)
                .await?
                .and_then(|e| e.supervised);
            let mobile = matches!(device.platform.as_str(), "ios" | "ipados");
            if !mobile || supervised != Some(true) {
                return Err(CoreError::FailedPrecondition(format!(
                    "lost mode needs a supervised iPhone or iPad; device {id} is {} ({})",
                    device.platform,
                    match supervised {
                        Some(true) => "supervised",
                        Some(false) => "not supervised",
                        None => "not known to be supervised yet",
                    }
                )));
            }
            if message.trim().is_empty() && phone.is_none() {
                return Err(CoreError::InvalidArgument(
                    "lost mode shows a message or a phone number: give --message or --phone".into(),
                ));
            }
        }
        // A Mac locks with a PIN (Find My); the helpdesk reads it to the
        // user, who types it to unlock.
        let pin_sealed = if apple && device.platform == "macos" && !lock.lost {
            Some(self.new_sealed_pin(&device_id)?)
        } else {
            None
        };
        let (kind, state) = if lock.lost {
            (CommandKind::LostMode, DeviceState::Lost)
        } else {
            (CommandKind::Lock, DeviceState::Locked)
        };
        self.queue_command(
            caller,
            id,
            CommandRequest {
                kind,
                message,
                args: CommandArgs {
                    phone_number: phone,
                    footnote,
                    pin_sealed,
                    ..CommandArgs::default()
                },
            },
            state,
            now,
        )
        .await
    }

    /// A six-digit PIN, sealed for the device's command arguments.
    pub(super) fn new_sealed_pin(&self, device: &DeviceId) -> Result<String, CoreError> {
        let bytes = latchkey_certs::random_bytes::<4>()?;
        let pin = format!("{:06}", u32::from_le_bytes(bytes) % 1_000_000);
        Ok(self.ca.token_keys().seal(&pin_kid(device), &pin)?)
    }

    /// The PIN of a Mac's lock or erase, for callers who may lock devices.
    pub fn command_pin(&self, caller: &AuthenticatedAdmin, command: &Command) -> Option<String> {
        if !caller.may(Permission::LockDevices) {
            return None;
        }
        let sealed = command.args.pin_sealed.as_ref()?;
        self.ca
            .token_keys()
            .open(&pin_kid(&command.device_id), sealed)
            .ok()
    }

    pub async fn unlock_device(
        &self,
        caller: &AuthenticatedAdmin,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<(DeviceView, Command), CoreError> {
        self.audit
            .authorize(
                caller,
                Permission::LockDevices,
                AdminRequest::UnlockDevices,
                id,
                now,
            )
            .await?;
        let lost = self.store.device_state(&parse_device_id(id)?).await? == Some(DeviceState::Lost);
        self.queue_command(
            caller,
            id,
            CommandRequest {
                kind: if lost {
                    CommandKind::EndLostMode
                } else {
                    CommandKind::Unlock
                },
                message: String::new(),
                args: CommandArgs::default(),
            },
            DeviceState::Active,
            now,
        )
        .await
    }

    /// A command an Apple device's MDM carries and the agent does not:
    /// `Restart` or `ListProfiles`, both for roles that may lock devices
    /// (a list is a read, but it queues a command and wakes the device,
    /// which a read-only role must not); the device's state stays as it
    /// is.
    pub async fn apple_device_command(
        &self,
        caller: &AuthenticatedAdmin,
        id: &str,
        kind: CommandKind,
        now: DateTime<Utc>,
    ) -> Result<(DeviceView, Command), CoreError> {
        let (permission, request) = match kind {
            CommandKind::Restart => (Permission::LockDevices, AdminRequest::RestartDevices),
            _ => (Permission::LockDevices, AdminRequest::ListDeviceProfiles),
        };
        self.audit
            .authorize(caller, permission, request, id, now)
            .await?;
        let (_, device) = existing_device(&self.store, id).await?;
        if device.channel != Channel::apple() {
            return Err(CoreError::FailedPrecondition(format!(
                "device {id} is managed by the Latchkey agent; {} is for Apple devices",
                kind.as_str()
            )));
        }
        let state = device.state;
        if !matches!(
            state,
            DeviceState::Active | DeviceState::Locked | DeviceState::Lost
        ) {
            return Err(CoreError::FailedPrecondition(format!(
                "device {id} is {}; it takes no such command",
                state.as_str()
            )));
        }
        self.queue_command(
            caller,
            id,
            CommandRequest {
                kind,
                message: String::new(),
                args: CommandArgs::default(),
            },
            state,
            now,
        )
        .await
    }

    /// Asks a device in lost mode where it is; the answer is the
    /// command's result (`latchctl command list`).
    pub async fn locate_device(
        &self,
        caller: &AuthenticatedAdmin,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<(DeviceView, Command), CoreError> {
        self.audit
            .authorize(
                caller,
                Permission::LockDevices,
                AdminRequest::LocateDevices,
                id,
                now,
            )
            .await?;
        let state = self.store.device_state(&parse_device_id(id)?).await?;
        if state != Some(DeviceState::Lost) {
            return Err(CoreError::FailedPrecondition(format!(
                "device {id} is not in lost mode; only a lost iPhone or iPad reports where it is \
                 (`latchctl device lock {id} --lost --message …` first)"
            )));
        }
        self.queue_command(
            caller,
            id,
            CommandRequest {
                kind: CommandKind::Locate,
                message: String::new(),
                args: CommandArgs::default(),
            },
            DeviceState::Lost,
            now,
        )
        .await
    }

    /// Sends a wipe; the device stays reachable over MQTT only until it
    /// acknowledges, then its certificates are revoked.
    pub async fn wipe_device(
        &self,
        caller: &AuthenticatedAdmin,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<(DeviceView, Command), CoreError> {
        self.audit
            .authorize(
                caller,
                Permission::ManageDevices,
                AdminRequest::WipeDevices,
                id,
                now,
            )
            .await?;
        let device_id = parse_device_id(id)?;
        // A Mac's erase asks for a PIN, as its lock does (Find My).
        let is_mac = self
            .store
            .device(&device_id)
            .await?
            .is_some_and(|d| d.channel == Channel::apple() && d.platform == "macos");
        let pin_sealed = if is_mac {
            Some(self.new_sealed_pin(&device_id)?)
        } else {
            None
        };
        self.queue_command(
            caller,
            id,
            CommandRequest {
                kind: CommandKind::Wipe,
                message: String::new(),
                args: CommandArgs {
                    pin_sealed,
                    ..CommandArgs::default()
                },
            },
            DeviceState::WipePending,
            now,
        )
        .await
    }

    /// Records a device's answer to a command, once: a repeated
    /// acknowledgement (channels deliver at least once) changes nothing.
    /// A successful wipe ends the device.
    pub async fn acknowledge_command(
        &self,
        device: &AuthenticatedDevice,
        command_id: &str,
        success: bool,
        result: &str,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        let Some(command_id) = CommandId::parse(command_id) else {
            return Err(CoreError::InvalidArgument(format!(
                "acknowledgement for unknown command {command_id:?}"
            )));
        };
        let tx = self.store.begin().await?;
        let acknowledged =
            Self::acknowledge_command_in(&tx, device, &command_id, success, result, now).await?;
        if acknowledged == Acknowledged::Again {
            return Ok(());
        }
        tx.touch_device(device.id(), now).await?;
        tx.commit().await?;
        if acknowledged == Acknowledged::Wiped {
            self.after_device_ended(device.id(), now).await;
        }
        Ok(())
    }

    /// Records a device's answer to its command in `tx`: the command's
    /// outcome and its audit entry, and a wipe's end of the device. A
    /// repeated answer (at-least-once delivery) changes nothing. The
    /// caller commits, and on [`Acknowledged::Wiped`] calls
    /// `after_device_ended` once it has.
    pub(super) async fn acknowledge_command_in(
        tx: &Tx,
        device: &AuthenticatedDevice,
        command_id: &CommandId,
        success: bool,
        result: &str,
        now: DateTime<Utc>,
    ) -> Result<Acknowledged, CoreError> {
        let status = if success {
            CommandStatus::Acknowledged
        } else {
            CommandStatus::Failed
        };
        let result = printable(result, MAX_MESSAGE_LEN);
        let Some(kind) = tx
            .acknowledge_command(command_id, device.id(), status, &result, now)
            .await?
        else {
            return Ok(Acknowledged::Again);
        };
        tx.audit(&AuditEntry {
            at: now,
            actor: device.actor(),
            action: AuditAction::CommandAcknowledge,
            target: command_id.to_string(),
            outcome: AuditOutcome::Ok,
            detail: format!("{}: {result}", status.as_str()),
        })
        .await?;
        if kind == CommandKind::Wipe && !success {
            Self::wipe_failed_in(tx, device.id(), device.actor(), &result, now).await?;
        }
        if kind == CommandKind::Wipe && success {
            Self::end_device_in(
                tx,
                device.id(),
                DeviceState::Wiped,
                device.actor(),
                AuditAction::DeviceWiped,
                now,
            )
            .await?;
            return Ok(Acknowledged::Wiped);
        }
        Ok(Acknowledged::Now)
    }

    /// After a wipe failed (the device answered with an error, or the
    /// command was cleared), the device leaves wipe-pending, which takes
    /// no commands, for locked: it stays refused at sign-in, and the
    /// helpdesk can send the wipe again or lock it.
    pub(crate) async fn wipe_failed_in(
        tx: &crate::store::Tx,
        device_id: &DeviceId,
        actor: Actor,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        if tx
            .change_device_state(device_id, &[DeviceState::WipePending], DeviceState::Locked)
            .await?
        {
            tx.audit(&AuditEntry {
                at: now,
                actor,
                action: AuditAction::DeviceLock,
                target: device_id.to_string(),
                outcome: AuditOutcome::Failed,
                detail: format!("the wipe failed ({why}); the device is locked, not wiped"),
            })
            .await?;
        }
        Ok(())
    }

    /// Offers again the open commands last sent before `now - after` (or
    /// never sent), each device's through its channel, oldest first. The
    /// devices are offered their work concurrently (a wake-up is a network
    /// call for some channels: thousands of Apple devices are pushed at
    /// once, not one after another).
    pub async fn redeliver(&self, after: Duration, now: DateTime<Utc>) -> Result<usize, CoreError> {
        let due = self.store.commands_to_redeliver(now - after, 1000).await?;
        let count = due.len();
        let mut by_device: BTreeMap<DeviceId, Vec<Command>> = BTreeMap::new();
        for command in due {
            by_device
                .entry(command.device_id.clone())
                .or_default()
                .push(command);
        }
        let ids: Vec<DeviceId> = by_device.keys().cloned().collect();
        let channels = self.store.device_channels(&ids).await?;
        let offers: Vec<(Channel, Work)> = by_device
            .into_iter()
            .filter_map(|(device, commands)| {
                let channel = channels.get(&device)?.clone();
                Some((channel, Work { device, commands }))
            })
            .collect();
        self.offer_all(offers, now).await;
        Ok(count)
    }
}

/// Tells the device's channel that these open commands (already in the
/// outbox) wait for it, and records the ones the channel carried as sent;
/// returns how many. See [`Devices::offer_work`].
pub(super) async fn offer_work_through(
    store: &crate::store::Store,
    ports: &Ports,
    channel: &Channel,
    device: &DeviceId,
    commands: &[Command],
    now: DateTime<Utc>,
) -> usize {
    let work = Work {
        device: device.clone(),
        commands: commands.to_vec(),
    };
    offer_all_through(store, ports, vec![(channel.clone(), work)], now)
        .await
        .into_iter()
        .next()
        .unwrap_or(0)
}

/// Tells each device's channel that its open commands wait for it, every
/// channel's devices in one call ([`WorkPort::have_work`]), then records in
/// a few statements the commands the channels carried as sent and the
/// others as offered now; returns how many each device was handed, in the
/// order given. A device whose channel failed keeps its commands pending
/// for the next redelivery (recorded as offered now, so they wait their
/// turn); that is logged, not returned, because the commands are already
/// safely in the outbox.
pub(super) async fn offer_all_through(
    store: &crate::store::Store,
    ports: &Ports,
    offers: Vec<(Channel, Work)>,
    now: DateTime<Utc>,
) -> Vec<usize> {
    let mut handed = vec![0; offers.len()];
    let mut by_channel: BTreeMap<String, (Channel, Vec<usize>, Vec<Work>)> = BTreeMap::new();
    for (i, (channel, work)) in offers.into_iter().enumerate() {
        if work.commands.is_empty() {
            continue;
        }
        let entry = by_channel
            .entry(channel.as_str().to_owned())
            .or_insert_with(|| (channel, Vec::new(), Vec::new()));
        entry.1.push(i);
        entry.2.push(work);
    }
    let mut offered: Vec<CommandId> = Vec::new();
    let mut sent: Vec<CommandId> = Vec::new();
    let mut failed = 0usize;
    for (_, (channel, indices, work)) in by_channel {
        let answers = match ports.get(&channel) {
            Ok(port) => port.have_work(&work, now).await,
            Err(e) => work.iter().map(|_| Err(e.clone())).collect(),
        };
        let answers = answers
            .into_iter()
            .map(Some)
            .chain(std::iter::repeat_with(|| None));
        for ((i, work), answer) in indices.into_iter().zip(work).zip(answers) {
            let delivered = match answer {
                Some(Ok(handover)) => handover.delivered,
                Some(Err(e)) => {
                    failed += 1;
                    if failed <= MAX_FAILURES_LOGGED {
                        warn!(device = %work.device, error = %e, "commands stay queued");
                    }
                    Vec::new()
                }
                None => Vec::new(),
            };
            let mut count = 0;
            for command in work.commands {
                if delivered.contains(&command.id) {
                    count += 1;
                    sent.push(command.id);
                } else {
                    // Woken (the device fetches them), or tried now: they
                    // wait for the next redelivery like any offer, so that
                    // commands no channel can carry do not take every
                    // round's places from other devices' commands.
                    offered.push(command.id);
                }
            }
            if let Some(slot) = handed.get_mut(i) {
                *slot = count;
            }
        }
    }
    if failed > MAX_FAILURES_LOGGED {
        warn!(
            devices = failed - MAX_FAILURES_LOGGED,
            "more devices' commands stay queued"
        );
    }
    if let Err(e) = store.mark_commands_offered(&offered, now).await {
        warn!(error = %e, "could not record the wake-ups; the devices will be woken again");
    }
    if let Err(e) = store.mark_commands_sent(&sent, now).await {
        warn!(error = %e, "could not record sent commands; they will be resent");
    }
    handed
}
