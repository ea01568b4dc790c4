//! Locking many devices at once: every device of a user whose bag was
//! stolen, a group's devices, or the list an incident names. One
//! transaction locks them all, cuts off their sign-ins and queues their
//! commands; then each channel wakes its devices in bulk
//! ([`crate::push::port::WorkPort::have_work`]), so thousands of Apple
//! devices are pushed within a second, not one after another.
//!
//! A bulk lock is a plain lock (with its message, and a phone number that
//! Apple devices show): lost mode is for one phone at a time. It locks the
//! active devices it selects and skips the others with the reason: one
//! already locked keeps its lock (so running the same bulk lock again
//! sends nothing twice, and a Mac's PIN stays the one it was locked with),
//! a device in lost mode stays in lost mode, a pending wipe is not undone,
//! and a retired or wiped device takes no commands.
//!
//! The answer comes once the transaction has committed: the devices are
//! locked and cut off from sign-in by then. Waking them is started in the
//! background, so a slow or unreachable push service cannot hold the call
//! past its deadline (a command not yet offered is offered by the
//! redelivery job).

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::auth::{AuthenticatedAdmin, Permission};
use super::commands::offer_all_through;
use super::commands::{MAX_MESSAGE_LEN, MAX_PHONE_LEN, command_audit_action};
use super::devices::Devices;
use super::{CoreError, device_text, printable, validate_email, validate_label};
use crate::domain::audit::{AdminRequest, AuditEntry, AuditOutcome};
use crate::domain::command::{Command, CommandArgs, CommandKind};
use crate::domain::device::{Channel, Device, DeviceState};
use crate::domain::ids::DeviceId;
use crate::push::port::Work;

/// Most device ids one bulk lock names.
pub const MAX_BULK_IDS: usize = 10_000;

/// A bulk lock as an admin asks for it: exactly one of `ids`, `group` and
/// `user` selects the devices.
#[derive(Debug, Clone, Default)]
pub struct BulkLockRequest {
    /// At most [`MAX_BULK_IDS`] device ids.
    pub ids: Vec<String>,
    /// Every device enrolled into this group.
    pub group: Option<String>,
    /// Every device bound to this user (by email).
    pub user: Option<String>,
    pub message: String,
    pub phone: Option<String>,
}

/// Which devices a bulk lock takes, checked.
enum Selection {
    Ids(Vec<DeviceId>),
    Group(String),
    User(String),
}

impl BulkLockRequest {
    /// What the request names, for the audit log (escaped: it is not
    /// checked yet when a refusal is recorded).
    fn describe(&self) -> String {
        match (&self.group, &self.user) {
            (Some(group), None) if self.ids.is_empty() => format!("group {group:?}"),
            (None, Some(user)) if self.ids.is_empty() => format!("user {user:?}"),
            _ => format!("{} devices by id", self.ids.len()),
        }
    }

    fn selection(&self) -> Result<Selection, CoreError> {
        let group = self
            .group
            .as_deref()
            .map(str::trim)
            .filter(|g| !g.is_empty());
        let user = self
            .user
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty());
        match (self.ids.is_empty(), group, user) {
            (false, None, None) => {
                if self.ids.len() > MAX_BULK_IDS {
                    return Err(CoreError::InvalidArgument(format!(
                        "{} device ids; one bulk lock takes at most {MAX_BULK_IDS}",
                        self.ids.len()
                    )));
                }
                let mut ids = Vec::with_capacity(self.ids.len());
                for id in &self.ids {
                    ids.push(DeviceId::parse(id.trim()).ok_or_else(|| {
                        CoreError::InvalidArgument(format!(
                            "{:?} is not a device id; nothing was locked",
                            printable(id, 64)
                        ))
                    })?);
                }
                // In one order, so that two bulk locks over the same
                // devices take their rows in the same order.
                ids.sort();
                ids.dedup();
                Ok(Selection::Ids(ids))
            }
            (true, Some(group), None) => Ok(Selection::Group(validate_label("group", group)?)),
            // As `Users` finds a user: an address stored before addresses
            // were checked strictly is still found.
            (true, None, Some(user)) => Ok(Selection::User(
                validate_email(user).unwrap_or_else(|_| user.to_lowercase()),
            )),
            _ => Err(CoreError::InvalidArgument(
                "select the devices to lock by exactly one of: their ids, a group, a user".into(),
            )),
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
        DeviceState::Active => None,
        DeviceState::Locked => Some("already locked"),
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
        request: BulkLockRequest,
        now: DateTime<Utc>,
    ) -> Result<BulkLock, CoreError> {
        let described = request.describe();
        self.audit
            .authorize(
                caller,
                Permission::LockDevices,
                AdminRequest::LockDevices,
                &described,
                now,
            )
            .await?;
        let selection = request.selection()?;
        let message = device_text("lock message", &request.message, MAX_MESSAGE_LEN)?;
        let phone = request
            .phone
            .map(|p| device_text("phone number", p.trim(), MAX_PHONE_LEN))
            .transpose()?
            .filter(|p| !p.is_empty());
        let (devices, mut skipped) = self.selected(selection).await?;

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

        let mut ids: Vec<DeviceId> = lockable.iter().map(|d| d.id.clone()).collect();
        ids.sort();
        let tx = self.store.begin().await?;
        let moved: HashSet<DeviceId> = tx
            .change_devices_state(&ids, &[DeviceState::Active], DeviceState::Locked)
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
                    "command {}; state active -> locked; bulk lock of {described}",
                    command.id,
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
        let (store, ports) = (self.store.clone(), self.ports.clone());
        tokio::spawn(async move { offer_all_through(&store, &ports, offers, now).await });
        let locked = locked
            .into_iter()
            .map(|(device, command)| {
                let device = Device {
                    state: DeviceState::Locked,
                    ..device
                };
                BulkLocked { device, command }
            })
            .collect();
        Ok(BulkLock { locked, skipped })
    }

    /// The devices a selection names (at most [`MAX_BULK_IDS`]), and the
    /// ids it names that are no device's (skipped as such).
    async fn selected(
        &self,
        selection: Selection,
    ) -> Result<(Vec<Device>, Vec<BulkSkipped>), CoreError> {
        let (devices, missing) = match selection {
            Selection::Ids(ids) => {
                let devices = self.store.devices_by_ids(&ids).await?;
                let found: HashSet<&DeviceId> = devices.iter().map(|d| &d.id).collect();
                let missing = ids
                    .iter()
                    .filter(|id| !found.contains(id))
                    .map(|id| BulkSkipped {
                        id: id.to_string(),
                        hostname: String::new(),
                        reason: "no such device".into(),
                    })
                    .collect();
                (devices, missing)
            }
            Selection::Group(group) => {
                let devices = self.store.devices_in_group(&group).await?;
                if devices.is_empty() {
                    return Err(CoreError::NotFound(format!("devices in group {group}")));
                }
                (devices, Vec::new())
            }
            Selection::User(email) => {
                if self.store.user_by_email(&email).await?.is_none() {
                    return Err(CoreError::NotFound(format!("user {email}")));
                }
                (self.store.devices_of_user(&email).await?, Vec::new())
            }
        };
        if devices.len() > MAX_BULK_IDS {
            return Err(CoreError::FailedPrecondition(format!(
                "the selection has {} devices; one bulk lock takes at most {MAX_BULK_IDS}: \
                 name them in parts with --ids-from",
                devices.len()
            )));
        }
        Ok((devices, missing))
    }
}
