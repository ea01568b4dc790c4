//! The SSO layer's records: browser sessions, pending authorization
//! requests, device-auth transactions, grants and login events.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::core::ids::{ClientId, DeviceId, UserId};
use crate::core::model::DevicePolicy;

/// A browser's session with the provider, found by its cookie. It is
/// authenticated once `user_id` and `auth_time` are set.
#[derive(Debug, Clone)]
pub struct SsoSession {
    pub id: String,
    pub user_id: Option<UserId>,
    pub ip: String,
    pub user_agent: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// When the user last proved their password in this session.
    pub auth_time: Option<DateTime<Utc>>,
    /// RFC 8176 method references collected so far (`pwd`, `otp`, `swk`…).
    pub amr: Vec<String>,
    /// The managed device that confirmed a login in this session.
    pub device_id: Option<DeviceId>,
    pub ended_at: Option<DateTime<Utc>>,
}

impl SsoSession {
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.ended_at.is_none() && self.expires_at > now
    }
}

/// An `/authorize` request waiting for the user to finish signing in.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    pub id: String,
    pub session_id: String,
    pub client_id: ClientId,
    pub redirect_uri: String,
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    /// PKCE S256 challenge (base64url of SHA-256 of the verifier).
    pub code_challenge: Option<String>,
    pub prompt_login: bool,
    pub max_age: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Why a device-auth transaction failed: the check that failed and what the
/// user is shown. Stored as JSON with the transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum DeviceAuthFailure {
    /// The user has no enrolled device bound to them.
    NoDevice,
    /// No agent answered before the transaction expired.
    NotAnswered,
    /// The answering device is locked (or being wiped).
    DeviceLocked { device: String },
    /// The device is retired or wiped.
    DeviceRetired { device: String },
    /// The device fails its compliance policy now.
    NotCompliant {
        device: String,
        checks: Vec<FailedCheckView>,
    },
    /// The device is bound to someone else (or to no one).
    OtherUser { device: String },
    /// The answer came from a different network than the browser.
    WrongNetwork { device: String },
    /// The signature did not verify against the device's certificate, or
    /// the signed statement did not match the transaction.
    BadSignature { device: String },
}

impl DeviceAuthFailure {
    pub fn code(&self) -> &'static str {
        match self {
            DeviceAuthFailure::NoDevice => "no_device",
            DeviceAuthFailure::NotAnswered => "not_answered",
            DeviceAuthFailure::DeviceLocked { .. } => "device_locked",
            DeviceAuthFailure::DeviceRetired { .. } => "device_retired",
            DeviceAuthFailure::NotCompliant { .. } => "not_compliant",
            DeviceAuthFailure::OtherUser { .. } => "other_user",
            DeviceAuthFailure::WrongNetwork { .. } => "wrong_network",
            DeviceAuthFailure::BadSignature { .. } => "bad_signature",
        }
    }
}

/// A failed compliance check as shown on the "not compliant" page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedCheckView {
    pub check: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOutcome {
    Pending,
    Confirmed,
    Failed(DeviceAuthFailure),
}

/// A device-auth transaction: one browser session waits for one of the
/// expected devices to sign its nonce.
#[derive(Debug, Clone)]
pub struct DeviceAuthTxn {
    pub id: String,
    pub nonce: String,
    /// Shown in the browser; the agent shows it too in `confirm` mode.
    pub short_code: String,
    pub mode: DevicePolicy,
    pub request_id: String,
    pub session_id: String,
    pub user_id: UserId,
    pub client_id: ClientId,
    pub expected_devices: Vec<DeviceId>,
    pub browser_ip: String,
    pub browser_ua: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub device_id: Option<DeviceId>,
    pub answered_at: Option<DateTime<Utc>>,
    pub outcome: TxnOutcome,
    pub redeemed_at: Option<DateTime<Utc>>,
}

/// One authorization code and the tokens issued for it: ending a grant
/// ends its refresh tokens and makes its access tokens inactive.
#[derive(Debug, Clone)]
pub struct Grant {
    pub id: String,
    pub session_id: String,
    pub user_id: UserId,
    pub client_id: ClientId,
    pub device_id: Option<DeviceId>,
    pub scope: String,
    pub nonce: Option<String>,
    pub redirect_uri: String,
    pub code_challenge: Option<String>,
    pub code_expires_at: DateTime<Utc>,
    pub code_used_at: Option<DateTime<Utc>>,
    pub auth_time: DateTime<Utc>,
    pub amr: Vec<String>,
    pub acr: String,
    pub created_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// A refresh token as stored (by hash).
#[derive(Debug, Clone)]
pub struct RefreshTokenRecord {
    pub grant_id: String,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

/// One line of the login history.
#[derive(Debug, Clone)]
pub struct LoginEvent {
    pub at: DateTime<Utc>,
    pub user_id: Option<UserId>,
    /// What was typed as the login name (bounded), for failed attempts.
    pub login: String,
    pub ip: String,
    pub user_agent: String,
    pub client_id: Option<ClientId>,
    pub device_id: Option<DeviceId>,
    /// `password`, `totp`, `device`, `break-glass`, `refresh`…
    pub method: String,
    /// `ok` or `failed`.
    pub result: String,
    pub reason: Option<String>,
}
