//! An Apple device's enrollment as the server keeps it: which hardware it
//! is (UDID), which identity certificate speaks for it, where its pushes
//! go, and where its check-ins stand.

use chrono::{DateTime, Utc};

use crate::domain::ids::{CommandId, DeviceId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppleEnrollment {
    pub device: DeviceId,
    /// Bound at the first Authenticate; one device record per UDID.
    pub udid: Option<String>,
    /// SHA-256 (hex) of the identity certificate bound at Authenticate.
    pub identity_sha256: Option<String>,
    pub topic: Option<String>,
    pub awaiting_configuration: bool,
    /// TokenUpdates seen since enrollment.
    pub token_updates: i32,
    /// Pushes may go out: TokenUpdate seen, no CheckOut since.
    pub enabled: bool,
    pub authenticated_at: Option<DateTime<Utc>>,
    pub last_seen_at: Option<DateTime<Utc>>,
    /// The latest Idle: commands answered NotNow after it wait for the
    /// next one.
    pub last_idle_at: Option<DateTime<Utc>>,
    pub last_push_at: Option<DateTime<Utc>>,
    pub last_push_result: Option<String>,
    /// When APNs reported the push token unregistered (410).
    pub push_token_invalid_at: Option<DateTime<Utc>>,
    /// Whether the device is supervised (lost mode needs it), once it
    /// has said.
    pub supervised: Option<bool>,
}

/// A one-time SCEP challenge, as stored (the challenge itself only as its
/// hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScepChallenge {
    pub challenge_sha256: String,
    /// The user the enrolled device is bound to.
    pub user: Option<String>,
    /// The device already listed (Automated Device Enrollment), if any.
    pub device: Option<DeviceId>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A renewal of a device's identity certificate: a refreshed enrollment
/// profile (same identifiers, so it replaces the installed one) with a
/// one-time SCEP challenge bound to the device, queued as InstallProfile.
/// Only the certificate SCEP issues against that challenge may take over
/// the device's binding, and only from the device's own UDID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRenewal {
    /// SHA-256 (hex) of the challenge; the renewal's key.
    pub challenge_sha256: String,
    pub device: DeviceId,
    /// The challenge, sealed: the profile is rendered when the device
    /// fetches the command.
    pub challenge_sealed: String,
    /// The InstallProfile that carries the profile.
    pub command: CommandId,
    /// SHA-256 (hex) of the identity bound when the renewal started.
    pub replaces_sha256: String,
    pub started_by: String,
    pub started_at: DateTime<Utc>,
    /// After this the renewal is closed as expired and may start again.
    pub expires_at: DateTime<Utc>,
    /// The certificate issued against the challenge, once SCEP issued it.
    pub issued: Option<RenewedIdentity>,
    /// Set when the renewal ended, with how.
    pub closed: Option<(DateTime<Utc>, RenewalOutcome)>,
}

/// The certificate a renewal's challenge got the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewedIdentity {
    pub serial_hex: String,
    /// SHA-256 (hex) of the certificate, as the binding holds it.
    pub sha256: String,
    pub at: DateTime<Utc>,
}

/// Where a device's identity certificate stands, as `device show` tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityStatus {
    /// When the certificate the device is bound to expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// The renewal under way.
    pub renewal: Option<IdentityRenewal>,
    /// The latest renewal that ended.
    pub last_renewal: Option<IdentityRenewal>,
}

/// How a renewal ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewalOutcome {
    /// The device checked in with the renewed certificate, now bound.
    Renewed,
    /// The device answered the InstallProfile with an error.
    Failed,
    /// The device did not complete it in time.
    Expired,
    /// An admin started another.
    Replaced,
}

impl RenewalOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RenewalOutcome::Renewed => "renewed",
            RenewalOutcome::Failed => "failed",
            RenewalOutcome::Expired => "expired",
            RenewalOutcome::Replaced => "replaced",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "renewed" => Some(RenewalOutcome::Renewed),
            "failed" => Some(RenewalOutcome::Failed),
            "expired" => Some(RenewalOutcome::Expired),
            "replaced" => Some(RenewalOutcome::Replaced),
            _ => None,
        }
    }
}

/// Which Apple platform a device is, from what it reports at Authenticate
/// (`ProductName` such as `iPhone15,2`, `iPad13,1`, `Mac14,2`; `Model` as a
/// fallback). The text is the device's `platform`.
pub fn platform_of(product_name: Option<&str>, model: Option<&str>) -> &'static str {
    let name = product_name.or(model).unwrap_or_default();
    if name.starts_with("iPhone") || name.starts_with("iPod") {
        "ios"
    } else if name.starts_with("iPad") {
        "ipados"
    } else if name.starts_with("Mac") || name.starts_with("iMac") {
        "macos"
    } else if name.starts_with("AppleTV") {
        "tvos"
    } else {
        "apple"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_platform_comes_from_the_product_name() {
        assert_eq!(platform_of(Some("iPhone15,2"), None), "ios");
        assert_eq!(platform_of(Some("iPad13,1"), None), "ipados");
        assert_eq!(platform_of(Some("Mac14,2"), Some("Mac14,2")), "macos");
        assert_eq!(platform_of(None, Some("MacBookPro18,3")), "macos");
        assert_eq!(platform_of(None, None), "apple");
    }
}
