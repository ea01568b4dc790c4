//! An Apple device's enrollment as the server keeps it: which hardware it
//! is (UDID), which identity certificate speaks for it, where its pushes
//! go, and where its check-ins stand.

use chrono::{DateTime, Utc};

use crate::domain::ids::DeviceId;

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
