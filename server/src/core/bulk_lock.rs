//! Locking many devices at once: every device of a user whose bag was
//! stolen, a group's devices, or the list an incident names. One
//! transaction locks them all, cuts off their sign-ins and queues their
//! commands; then each channel wakes its devices in bulk
//! ([`crate::push::port::WorkPort::have_work`]), so thousands of Apple
//! devices are pushed within a second, not one after another.
//!
//! A bulk lock is a plain lock (with its message and phone number): lost
//! mode is for one phone at a time. Devices it cannot lock are skipped with
//! the reason, and the rest are locked: a device in lost mode stays in lost
//! mode, a pending wipe is not undone, and a retired or wiped device takes
//! no commands.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::auth::{AuthenticatedAdmin, Permission};
use super::commands::{MAX_MESSAGE_LEN, MAX_PHONE_LEN, command_audit_action};
use super::devices::Devices;
use super::{CoreError, printable, validate_email};
use crate::domain::audit::{AdminRequest, AuditEntry, AuditOutcome};
use crate::domain::command::{Command, CommandArgs, CommandKind, CommandStatus};
use crate::domain::device::{Channel, Device, DeviceState};
use crate::domain::ids::DeviceId;
use crate::push::port::Work;

/// Most device ids one bulk lock names.
pub const MAX_BULK_IDS: usize = 10_000;

/// Which devices a bulk lock takes.
#[derive(Debug, Clone)]
pub enum DeviceSelection {
    /// These devices (at most [`MAX_BULK_IDS`]).
    Ids(Vec<String>),
    /// Every device enrolled into this group.
    Group(String),
    /// Every device bound to this user (by email).
    User(String),
}

impl DeviceSelection {
    fn describe(&self) -> String {
        match self {
            DeviceSelection::Ids(ids) => format!("{} devices by id", ids.len()),
            DeviceSelection::Group(group) => format!("group {}", printable(group, 128)),
            DeviceSelection::User(email) => format!("user {}", printable(email, 256)),
        }
    }
}

/// A device a bulk lock locked, as it now stands, with its command (a
/// Mac's carries its sealed PIN).
#[derive(Debug, Clone)]
pub struct BulkLocked {
    pub device: Device,
    pub command: Command,
}

/// A device a bulk lock left as it was, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkSkipped {
    pub id: String,
    pub hostname: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default)]
pub struct BulkLock {
    pub locked: Vec<BulkLocked>,
    pub skipped: Vec<BulkSkipped>,
}

/// Why a device in `state` is not locked by a bulk lock; `None` when it is.
fn not_lockable(state: DeviceState) -> Option<&'static str> {
    match state {
        DeviceState::Active | DeviceState::Locked => None,
        DeviceState::Lost => Some("in lost mode; it stays in lost mode"),
        DeviceState::WipePending => Some("a wipe is pending"),
        DeviceState::AwaitingEnrollment => Some("not enrolled yet"),
        DeviceState::Retired => Some("retired"),
        DeviceState::Wiped => Some("wiped"),
    }
}

impl Devices {
    /// Locks the selected devices (see the module's comment). Refused as a
    /// whole, with nothing written, when the caller may not lock devices,
    /// the message is too long, an id is malformed, or the selection names
    /// no device.
    pub async fn lock_devices(
        &self,
        caller: &AuthenticatedAdmin,
        selection: DeviceSelection,
        message: String,
        phone: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<BulkLock, CoreError> {
        let described = selection.describe();
        self.audit
            .authorize(
                caller,
                Permission::LockDevices,
                AdminRequest::LockDevices,
                &described,
                now,
            )
            .await?;
        if message.len() > MAX_MESSAGE_LEN {
            return Err(CoreError::InvalidArgument(format!(
                "the lock message is longer than {MAX_MESSAGE_LEN} bytes"
            )));
        }
        let phone = phone
            .map(|p| printable(p.trim(), MAX_PHONE_LEN))
            .filter(|p| !p.is_empty());
        let (devices, mut skipped) = self.selected(&selection).await?;

        let mut lockable = Vec::with_capacity(devices.len());
        for device in devices {
            match not_lockable(device.state) {
                Some(reason) => skipped.push(BulkSkipped {
                    id: device.id.to_string(),
                    hostname: device.hostname,
                    reason: reason.into(),
                }),
                None => lockable.push(device),
            }
        }
        // A Mac locks with a PIN, as a single lock does.
        let mut commands = Vec::with_capacity(lockable.len());
        for device in &lockable {
            let pin_sealed = if device.channel == Channel::apple() && device.platform == "macos" {
                Some(self.new_sealed_pin(&device.id)?)
            } else {
                None
            };
            commands.push(Command::pending(
                device.id.clone(),
                CommandKind::Lock,
                message.clone(),
                CommandArgs {
                    phone_number: phone.clone(),
                    pin_sealed,
                    ..CommandArgs::default()
                },
                caller.admin().email.clone(),
                now,
            ));
        }

        let ids: Vec<DeviceId> = lockable.iter().map(|d| d.id.clone()).collect();
        let tx = self.store.begin().await?;
        let moved: HashSet<DeviceId> = tx
            .change_devices_state(
                &ids,
                &[DeviceState::Active, DeviceState::Locked],
                DeviceState::Locked,
            )
            .await?
            .into_iter()
            .collect();
        let mut locked = Vec::with_capacity(moved.len());
        for (device, command) in lockable.into_iter().zip(commands) {
            if moved.contains(&device.id) {
                locked.push((device, command));
            } else {
                skipped.push(BulkSkipped {
                    id: device.id.to_string(),
                    hostname: device.hostname,
                    reason: "its state changed meanwhile; nothing was sent".into(),
                });
            }
        }
        let commands: Vec<Command> = locked.iter().map(|(_, c)| c.clone()).collect();
        tx.insert_commands(&commands).await?;
        let moved: Vec<DeviceId> = locked.iter().map(|(d, _)| d.id.clone()).collect();
        tx.end_devices_sso(&moved, "device locked", now).await?;
        let entries: Vec<AuditEntry> = locked
            .iter()
            .map(|(device, command)| AuditEntry {
                at: now,
                actor: caller.actor(),
                action: command_audit_action(CommandKind::Lock),
                target: device.id.to_string(),
                outcome: AuditOutcome::Ok,
                detail: format!(
                    "command {}; state {} -> locked; bulk lock of {described}",
                    command.id,
                    device.state.as_str(),
                ),
            })
            .collect();
        tx.audit_many(&entries).await?;
        tx.commit().await?;

        let offers = locked
            .iter()
            .map(|(device, command)| {
                let work = Work {
                    device: device.id.clone(),
                    commands: vec![command.clone()],
                };
                (device.channel.clone(), work)
            })
            .collect();
        let handed = self.offer_all(offers, now).await;
        let locked = locked
            .into_iter()
            .zip(handed)
            .map(|((device, mut command), handed)| {
                if handed == 1 {
                    command.status = CommandStatus::Sent;
                    command.sent_at = Some(now);
                }
                let device = Device {
                    state: DeviceState::Locked,
                    ..device
                };
                BulkLocked { device, command }
            })
            .collect();
        Ok(BulkLock { locked, skipped })
    }

    /// The devices a selection names, and the ids it names that are no
    /// device's (skipped as such).
    async fn selected(
        &self,
        selection: &DeviceSelection,
    ) -> Result<(Vec<Device>, Vec<BulkSkipped>), CoreError> {
        match selection {
            DeviceSelection::Ids(ids) => {
                if ids.is_empty() {
                    return Err(CoreError::InvalidArgument(
                        "name the devices to lock, a group or a user".into(),
                    ));
                }
                if ids.len() > MAX_BULK_IDS {
                    return Err(CoreError::InvalidArgument(format!(
                        "{} device ids; one bulk lock takes at most {MAX_BULK_IDS}",
                        ids.len()
                    )));
                }
                let mut parsed = Vec::with_capacity(ids.len());
                let mut seen = HashSet::with_capacity(ids.len());
                for id in ids {
                    let id = DeviceId::parse(id.trim()).ok_or_else(|| {
                        CoreError::InvalidArgument(format!(
                            "{} is not a device id; nothing was locked",
                            printable(id, 64)
                        ))
                    })?;
                    if seen.insert(id.clone()) {
                        parsed.push(id);
                    }
                }
                let devices = self.store.devices_by_ids(&parsed).await?;
                let found: HashSet<&DeviceId> = devices.iter().map(|d| &d.id).collect();
                let missing = parsed
                    .iter()
                    .filter(|id| !found.contains(id))
                    .map(|id| BulkSkipped {
                        id: id.to_string(),
                        hostname: String::new(),
                        reason: "no such device".into(),
                    })
                    .collect();
                Ok((devices, missing))
            }
            DeviceSelection::Group(group) => {
                let devices = self.store.devices_in_group(group.trim()).await?;
                if devices.is_empty() {
                    return Err(CoreError::NotFound(format!(
                        "devices in group {}",
                        printable(group, 128)
                    )));
                }
                Ok((devices, Vec::new()))
            }
            DeviceSelection::User(email) => {
                // As `Users` finds a user: an address stored before
                // addresses were checked strictly is still found.
                let email = validate_email(email).unwrap_or_else(|_| email.trim().to_lowercase());
                if self.store.user_by_email(&email).await?.is_none() {
                    return Err(CoreError::NotFound(format!(
                        "user {}",
                        printable(&email, 256)
                    )));
                }
                Ok((self.store.devices_of_user(&email).await?, Vec::new()))
            }
        }
    }
}
