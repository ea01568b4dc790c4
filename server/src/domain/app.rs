//! SSO apps (OpenID Connect relying parties) and what each demands of a
//! sign-in.

use chrono::{DateTime, Utc};

use crate::domain::ids::ClientId;

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
