//! Domain types: what the core works with and hands to the front-ends.
//! They are neither wire types nor database rows; `api` and `store` convert.

use chrono::{DateTime, Utc};

use super::ids::{AdminId, ClientId, CommandId, DeviceId, TokenId, UserId};

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

/// Where a device stands. Only `Active` and `Locked` devices may use the
/// device API; a `WipePending` device may still connect to MQTT to receive
/// its wipe; `Retired` and `Wiped` are final and their certificates revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceState {
    Active,
    Locked,
    WipePending,
    Retired,
    Wiped,
}

impl DeviceState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::Active => "active",
            DeviceState::Locked => "locked",
            DeviceState::WipePending => "wipe-pending",
            DeviceState::Retired => "retired",
            DeviceState::Wiped => "wiped",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "active" => Some(DeviceState::Active),
            "locked" => Some(DeviceState::Locked),
            "wipe-pending" => Some(DeviceState::WipePending),
            "retired" => Some(DeviceState::Retired),
            "wiped" => Some(DeviceState::Wiped),
            _ => None,
        }
    }

    /// Whether the device is gone for good (certificate revoked).
    pub fn is_final(self) -> bool {
        matches!(self, DeviceState::Retired | DeviceState::Wiped)
    }
}

/// A posture check as the agent reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckState {
    Enabled,
    Disabled,
    Unknown,
}

impl CheckState {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckState::Enabled => "enabled",
            CheckState::Disabled => "disabled",
            CheckState::Unknown => "unknown",
        }
    }

    pub fn parse(text: &str) -> Self {
        match text {
            "enabled" => CheckState::Enabled,
            "disabled" => CheckState::Disabled,
            _ => CheckState::Unknown,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posture {
    pub os_version: String,
    pub disk_encryption: CheckState,
    pub screen_lock: CheckState,
    pub firewall: CheckState,
}

#[derive(Debug, Clone)]
pub struct Device {
    pub id: DeviceId,
    pub hostname: String,
    pub platform: String,
    pub os_version: String,
    pub machine_id: String,
    pub serial: String,
    pub model: String,
    pub state: DeviceState,
    pub user: Option<String>,
    pub group: Option<String>,
    pub enrolled_at: DateTime<Utc>,
    pub last_seen: Option<DateTime<Utc>>,
    pub posture: Option<Posture>,
    pub posture_at: Option<DateTime<Utc>>,
    /// Expiry of the newest unrevoked certificate.
    pub certificate_expires_at: Option<DateTime<Utc>>,
}

/// Facts the agent reports at enrollment.
#[derive(Debug, Clone, Default)]
pub struct DeviceFacts {
    pub hostname: String,
    pub platform: String,
    pub os_version: String,
    pub machine_id: String,
    pub serial: String,
    pub model: String,
}

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

/// The policy in force for one device: its name and document.
#[derive(Debug, Clone)]
pub struct EffectivePolicy {
    pub name: String,
    pub document: String,
}

/// A device's compliance as judged when its posture arrived: compliant
/// before `compliant_until` (none: not compliant) while the basis it was
/// judged on (`policy::verdict_basis`) is still current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComplianceVerdict {
    pub compliant_until: Option<DateTime<Utc>>,
    pub basis: String,
}

/// Failed sign-in attempts counted against one key (an account name or a
/// client address) in the current window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginThrottle {
    pub key: String,
    pub failures: u32,
    pub last_failure: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct StoredPolicy {
    pub name: String,
    pub document: String,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
    pub groups: Vec<String>,
    pub devices: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOutcome {
    Ok,
    Denied,
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Ok => "ok",
            AuditOutcome::Denied => "denied",
        }
    }
}

/// One line of the audit log, before it is stored.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    /// `admin:<email>`, `device:<id>` or `system`.
    pub actor: String,
    pub action: &'static str,
    pub target: String,
    pub outcome: AuditOutcome,
    pub detail: String,
}

#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub detail: String,
}

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

/// What an app demands of the device a login comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevicePolicy {
    /// Any device.
    None,
    /// A managed device of the user confirms the login (second factor).
    Confirm,
    /// The login must come from the managed device itself.
    Bound,
}

impl DevicePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            DevicePolicy::None => "none",
            DevicePolicy::Confirm => "confirm",
            DevicePolicy::Bound => "bound",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "none" => Some(DevicePolicy::None),
            "confirm" => Some(DevicePolicy::Confirm),
            "bound" => Some(DevicePolicy::Bound),
            _ => None,
        }
    }
}

/// The second factor an app demands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaPolicy {
    None,
    Totp,
    Email,
}

impl MfaPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            MfaPolicy::None => "none",
            MfaPolicy::Totp => "totp",
            MfaPolicy::Email => "email",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "none" => Some(MfaPolicy::None),
            "totp" => Some(MfaPolicy::Totp),
            "email" => Some(MfaPolicy::Email),
            _ => None,
        }
    }
}

/// An SSO app (OpenID Connect relying party).
#[derive(Debug, Clone)]
pub struct App {
    pub client_id: ClientId,
    pub name: String,
    /// Public clients (SPAs, native apps) have no secret and must use PKCE.
    pub public: bool,
    pub redirect_uris: Vec<String>,
    pub device_policy: DevicePolicy,
    pub mfa_policy: MfaPolicy,
    /// Browser addresses sign-ins to this app may come from; empty: any.
    pub allowed_networks: Vec<super::networks::Cidr>,
    /// Where a sign-out the app asks for may send the browser (exact
    /// matches, kept apart from the sign-in redirect URIs).
    pub post_logout_redirect_uris: Vec<String>,
    /// The app may hold refresh tokens (when it asks for `offline_access`).
    pub offline_access: bool,
    /// How long refresh tokens may be renewed from the sign-in on.
    pub refresh_lifetime: chrono::Duration,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The absolute lifetime of an app's refresh tokens unless it sets one.
pub const DEFAULT_REFRESH_LIFETIME: chrono::Duration = chrono::Duration::days(30);

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone, Utc};

    use super::{EnrollmentToken, TokenStatus};
    use crate::core::ids::TokenId;

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
