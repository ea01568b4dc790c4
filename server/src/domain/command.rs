//! Commands to devices (lock, unlock, wipe) and where each stands in the
//! outbox, whatever channel delivers it.

use chrono::{DateTime, Utc};

use crate::domain::ids::{CommandId, DeviceId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    Lock,
    Unlock,
    Wipe,
    /// Lost mode (supervised iOS): the device shows a message and a phone
    /// number and can be located; `Unlock` ends it.
    LostMode,
    /// Ask the device what it is (Apple's DeviceInformation).
    Inventory,
    /// Ask the device how it is protected (Apple's SecurityInfo).
    SecurityInfo,
    /// Install a configuration profile (the device's policy, rendered).
    InstallProfile,
    /// Release a device waiting in Setup Assistant (Apple's
    /// DeviceConfigured).
    ReleaseSetup,
    /// End lost mode (the unlock of a lost device).
    EndLostMode,
    /// Where a lost device is (Apple's DeviceLocation, lost mode only).
    Locate,
    /// Restart the device (Apple's RestartDevice).
    Restart,
    /// List the configuration profiles installed (Apple's ProfileList).
    ListProfiles,
    /// Remove a configuration profile Latchkey installed, by its
    /// identifier (Apple's RemoveProfile).
    RemoveProfile,
}

impl CommandKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CommandKind::Lock => "lock",
            CommandKind::Unlock => "unlock",
            CommandKind::Wipe => "wipe",
            CommandKind::LostMode => "lost-mode",
            CommandKind::Inventory => "inventory",
            CommandKind::SecurityInfo => "security-info",
            CommandKind::InstallProfile => "install-profile",
            CommandKind::ReleaseSetup => "release-setup",
            CommandKind::EndLostMode => "end-lost-mode",
            CommandKind::Locate => "locate",
            CommandKind::Restart => "restart",
            CommandKind::ListProfiles => "list-profiles",
            CommandKind::RemoveProfile => "remove-profile",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "lock" => Some(CommandKind::Lock),
            "unlock" => Some(CommandKind::Unlock),
            "wipe" => Some(CommandKind::Wipe),
            "lost-mode" => Some(CommandKind::LostMode),
            "inventory" => Some(CommandKind::Inventory),
            "security-info" => Some(CommandKind::SecurityInfo),
            "install-profile" => Some(CommandKind::InstallProfile),
            "release-setup" => Some(CommandKind::ReleaseSetup),
            "end-lost-mode" => Some(CommandKind::EndLostMode),
            "locate" => Some(CommandKind::Locate),
            "restart" => Some(CommandKind::Restart),
            "list-profiles" => Some(CommandKind::ListProfiles),
            "remove-profile" => Some(CommandKind::RemoveProfile),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandStatus {
    /// Stored, not yet handed to the broker.
    Pending,
    /// Published at least once; waiting for the agent's acknowledgement.
    Sent,
    Acknowledged,
    Failed,
}

impl CommandStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CommandStatus::Pending => "pending",
            CommandStatus::Sent => "sent",
            CommandStatus::Acknowledged => "acknowledged",
            CommandStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(CommandStatus::Pending),
            "sent" => Some(CommandStatus::Sent),
            "acknowledged" => Some(CommandStatus::Acknowledged),
            "failed" => Some(CommandStatus::Failed),
            _ => None,
        }
    }

    pub fn is_open(self) -> bool {
        matches!(self, CommandStatus::Pending | CommandStatus::Sent)
    }
}

/// A command's arguments beyond its message; which apply depends on the
/// kind and the device's platform.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandArgs {
    /// Shown on a locked or lost device.
    pub phone_number: Option<String>,
    /// Lost mode's footnote.
    pub footnote: Option<String>,
    /// A Mac's Find My PIN for a lock or an erase, sealed: the helpdesk
    /// reads it to the user, who types it to unlock the Mac.
    pub pin_sealed: Option<String>,
    /// The profile an `InstallProfile` installs.
    pub profile: Option<Vec<u8>>,
    /// The `PayloadIdentifier` of the profile an `InstallProfile` installs
    /// or a `RemoveProfile` removes.
    pub profile_identifier: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Command {
    pub id: CommandId,
    pub device_id: DeviceId,
    pub kind: CommandKind,
    pub message: String,
    pub args: CommandArgs,
    pub status: CommandStatus,
    pub result: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub acked_at: Option<DateTime<Utc>>,
    pub created_by: String,
}

impl Command {
    /// A new command, pending in the outbox from `created_at`, with a new
    /// id; `created_by` is the admin's email or the system actor.
    pub fn pending(
        device_id: DeviceId,
        kind: CommandKind,
        message: String,
        args: CommandArgs,
        created_by: String,
        created_at: DateTime<Utc>,
    ) -> Command {
        Command {
            id: CommandId::generate(),
            device_id,
            kind,
            message,
            args,
            status: CommandStatus::Pending,
            result: None,
            created_at,
            sent_at: None,
            acked_at: None,
            created_by,
        }
    }
}
