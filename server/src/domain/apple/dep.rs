//! Automated Device Enrollment as the server keeps it: named server
//! tokens (the key pair made for Apple Business Manager, the imported
//! token, the device cursor and the last sync) and the devices Apple lists
//! for each, by serial number.

use chrono::{DateTime, Utc};

use crate::domain::ids::DeviceId;

/// The name a token has when the admin gives none.
pub const DEFAULT_TOKEN_NAME: &str = "default";

/// A server token as an admin sees it (no secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepTokenInfo {
    pub name: String,
    /// The certificate to upload to Apple Business Manager, PEM.
    pub certificate_pem: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    /// Set once a token is imported.
    pub imported: Option<DepImported>,
    pub profile_uuid: Option<String>,
    /// When the stored cursor was last handed out by Apple.
    pub cursor_at: Option<DateTime<Utc>>,
    pub has_cursor: bool,
    pub last_sync_at: Option<DateTime<Utc>>,
    pub last_sync_outcome: Option<String>,
    /// Devices Apple lists for this token now (deleted ones not counted).
    pub devices: u64,
}

/// What the imported token and Apple's account said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepImported {
    pub consumer_key: String,
    pub expires_at: DateTime<Utc>,
    pub server_name: String,
    pub server_uuid: String,
    pub org_name: String,
    pub imported_at: DateTime<Utc>,
    pub imported_by: String,
}

/// Where a token's device list stands at Apple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepCursorState {
    /// Nothing fetched yet: the next sync starts a full fetch.
    None,
    /// Part-way through (or at the end of) the full fetch.
    Fetching(String),
    /// The full fetch is done: changes come from `/devices/sync`.
    Syncing(String),
}

/// A device Apple lists for a token, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepDeviceRecord {
    pub serial_number: String,
    pub token_name: String,
    /// The device record that stands for it.
    pub device: Option<DeviceId>,
    pub model: Option<String>,
    pub description: Option<String>,
    pub color: Option<String>,
    pub os: Option<String>,
    pub device_family: Option<String>,
    pub profile_status: Option<String>,
    pub profile_uuid: Option<String>,
    pub op_type: Option<String>,
    pub op_date: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    /// Released from this server (deleted or disowned at Apple).
    pub deleted_at: Option<DateTime<Utc>>,
}

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DepSyncReport {
    /// Devices in Apple's answers.
    pub fetched: u64,
    /// Newly listed, awaiting enrollment.
    pub added: u64,
    pub updated: u64,
    /// Released at Apple and retired here (not yet enrolled).
    pub retired: u64,
    /// The profile was assigned to these.
    pub assigned: u64,
    /// Assignments Apple refused (the device's status other than SUCCESS).
    pub assign_failed: u64,
    /// The cursor had expired or was unknown, and the full fetch began
    /// again.
    pub refetched: bool,
}

impl DepSyncReport {
    /// One line, for the audit log and `apple dep status`.
    pub fn summary(&self) -> String {
        format!(
            "{} device(s) fetched: {} added, {} updated, {} retired, {} assigned the profile{}{}",
            self.fetched,
            self.added,
            self.updated,
            self.retired,
            self.assigned,
            if self.assign_failed > 0 {
                format!(", {} refused assignment", self.assign_failed)
            } else {
                String::new()
            },
            if self.refetched {
                "; the cursor had expired, fetched again from the start"
            } else {
                ""
            }
        )
    }
}

/// Whether a token name is acceptable: 1 to 64 letters, digits, `-`, `_`
/// and `.`.
pub fn valid_token_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A sign-in Setup Assistant's web view started for a listed device
/// (`[apple] dep_sign_in`). Its id is derived from the secret in the web
/// view's cookie, so only that web view names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepSignIn {
    pub id: crate::domain::ids::DepSignInId,
    pub serial_number: String,
    pub device: DeviceId,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Set once, when the callback finished or refused it.
    pub finished_at: Option<DateTime<Utc>>,
    /// Who signed in, once it finished.
    pub user: Option<String>,
}
