//! Employees and groups: the people device-bound login is for.

use chrono::{DateTime, Utc};

use crate::domain::ids::UserId;

/// What kind of account a user is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserKind {
    Employee,
    /// Skips the device requirement at login; every use is loudly audited.
    BreakGlass,
}

impl UserKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UserKind::Employee => "user",
            UserKind::BreakGlass => "break-glass",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "" | "user" => Some(UserKind::Employee),
            "break-glass" => Some(UserKind::BreakGlass),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    Active,
    /// Cannot log in; may be activated again.
    Suspended,
    /// Cannot log in; kept for the audit trail and login history.
    Deleted,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Suspended => "suspended",
            UserStatus::Deleted => "deleted",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "active" => Some(UserStatus::Active),
            "suspended" => Some(UserStatus::Suspended),
            "deleted" => Some(UserStatus::Deleted),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub kind: UserKind,
    pub status: UserStatus,
    pub locale: Option<String>,
    pub groups: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    pub members: u64,
    pub created_at: DateTime<Utc>,
}
