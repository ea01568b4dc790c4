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

/// Whether an enrollment token would enroll a device, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenStatus {
    Usable,
    Revoked,
    Expired,
    UsedUp,
}

impl EnrollmentToken {
    /// The token's status at `now`. A revoked token is revoked whatever
    /// else holds, an expired one expired however many uses it has left;
    /// the token expires at `expires_at` itself.
    pub fn status(&self, now: DateTime<Utc>) -> TokenStatus {
        if self.revoked_at.is_some() {
            TokenStatus::Revoked
        } else if self.expires_at <= now {
            TokenStatus::Expired
        } else if self.uses_count >= self.uses_allowed {
            TokenStatus::UsedUp
        } else {
            TokenStatus::Usable
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone, Utc};

    use super::{EnrollmentToken, TokenStatus};
    use crate::domain::ids::TokenId;

    fn token(uses_count: u32, revoked: bool) -> EnrollmentToken {
        let created_at = Utc
            .timestamp_opt(1_700_000_000, 0)
            .single()
            .unwrap_or_default();
        EnrollmentToken {
            id: TokenId::generate(),
            user: None,
            group: None,
            expires_at: created_at + Duration::hours(24),
            uses_allowed: 2,
            uses_count,
            revoked_at: revoked.then_some(created_at),
            created_by: "admin:owner@example.com".into(),
            created_at,
        }
    }

    #[test]
    fn a_token_is_revoked_before_expired_and_expired_before_used_up() {
        let fresh = token(0, false);
        let before = fresh.expires_at - Duration::seconds(1);
        let at_expiry = fresh.expires_at;
        assert_eq!(fresh.status(before), TokenStatus::Usable);
        assert_eq!(token(1, false).status(before), TokenStatus::Usable);
        assert_eq!(token(2, false).status(before), TokenStatus::UsedUp);
        assert_eq!(fresh.status(at_expiry), TokenStatus::Expired);
        assert_eq!(token(2, false).status(at_expiry), TokenStatus::Expired);
        assert_eq!(token(0, true).status(before), TokenStatus::Revoked);
        assert_eq!(token(2, true).status(at_expiry), TokenStatus::Revoked);
    }
}
