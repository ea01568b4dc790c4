//! Admins, their roles and the enrollment tokens they create.

use chrono::{DateTime, Utc};

use crate::domain::ids::{AdminId, TokenId};

/// An admin's role; what each may do is in `core::auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Owner,
    Admin,
    Helpdesk,
    Auditor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Helpdesk => "helpdesk",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "owner" => Some(Role::Owner),
            "admin" => Some(Role::Admin),
            "helpdesk" => Some(Role::Helpdesk),
            "auditor" => Some(Role::Auditor),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Admin {
    pub id: AdminId,
    pub email: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct EnrollmentToken {
    pub id: TokenId,
    pub user: Option<String>,
    pub group: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub uses_allowed: u32,
    pub uses_count: u32,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}
