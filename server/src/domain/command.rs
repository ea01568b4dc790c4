//! Commands to devices (lock, unlock, wipe) and where each stands in the
//! outbox, whatever channel delivers it.

use chrono::{DateTime, Utc};

use crate::domain::ids::{CommandId, DeviceId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    Lock,
    Unlock,
    Wipe,
}

impl CommandKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CommandKind::Lock => "lock",
            CommandKind::Unlock => "unlock",
            CommandKind::Wipe => "wipe",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "lock" => Some(CommandKind::Lock),
            "unlock" => Some(CommandKind::Unlock),
            "wipe" => Some(CommandKind::Wipe),
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

#[derive(Debug, Clone)]
pub struct Command {
    pub id: CommandId,
    pub device_id: DeviceId,
    pub kind: CommandKind,
    pub message: String,
    pub status: CommandStatus,
    pub result: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub acked_at: Option<DateTime<Utc>>,
    pub created_by: String,
}
