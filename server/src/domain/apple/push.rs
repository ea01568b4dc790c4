//! The APNs push certificates the deployment holds, what an admin must
//! be told about them (expiry, a topic that would orphan the devices), and
//! where one device's push goes and how it ended.

use chrono::{DateTime, Duration, Utc};

/// How long before a push certificate expires `latchctl apple status`
/// starts warning (Apple issues them for a year; renewing takes the admin
/// a visit to Apple's portal with the same Apple Account).
pub const EXPIRY_WARNING: Duration = Duration::days(30);

/// A stored push certificate (its key stays sealed in the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushCertificateInfo {
    /// The APNs topic, the certificate's UID: `com.apple.mgmt.External.…`.
    pub topic: String,
    pub not_after: DateTime<Utc>,
    pub imported_at: DateTime<Utc>,
    /// The admin who imported it.
    pub imported_by: String,
}

/// Something about the push certificates an admin must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushWarning {
    /// No push certificate: no Apple device can be woken, and no
    /// enrollment profile can be written.
    Missing,
    /// The current certificate expires within [`EXPIRY_WARNING`].
    ExpiresSoon {
        topic: String,
        not_after: DateTime<Utc>,
    },
    /// The current certificate has expired: pushes fail until it is renewed.
    Expired {
        topic: String,
        not_after: DateTime<Utc>,
    },
}

/// The certificate new enrollments use: the latest imported. Devices keep
/// the topic they enrolled with, so older ones stay until their devices go.
pub fn current(certificates: &[PushCertificateInfo]) -> Option<&PushCertificateInfo> {
    certificates
        .iter()
        .max_by(|a, b| (a.imported_at, &a.topic).cmp(&(b.imported_at, &b.topic)))
}

/// The warnings about the current certificate at `now`.
pub fn warnings(certificates: &[PushCertificateInfo], now: DateTime<Utc>) -> Vec<PushWarning> {
    let Some(current) = current(certificates) else {
        return vec![PushWarning::Missing];
    };
    if current.not_after <= now {
        vec![PushWarning::Expired {
            topic: current.topic.clone(),
            not_after: current.not_after,
        }]
    } else if current.not_after - now <= EXPIRY_WARNING {
        vec![PushWarning::ExpiresSoon {
            topic: current.topic.clone(),
            not_after: current.not_after,
        }]
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(topic: &str, imported_day: i64, expires_day: i64) -> PushCertificateInfo {
        let day0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        PushCertificateInfo {
            topic: topic.into(),
            not_after: day0 + Duration::days(expires_day),
            imported_at: day0 + Duration::days(imported_day),
            imported_by: "it@example.com".into(),
        }
    }

    #[test]
    fn the_latest_import_is_current_and_warned_about_from_thirty_days_before_expiry() {
        let day0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let certs = [
            cert("com.apple.mgmt.a", 0, 10),
            cert("com.apple.mgmt.b", 1, 100),
        ];
        assert_eq!(
            current(&certs).map(|c| c.topic.as_str()),
            Some("com.apple.mgmt.b")
        );
        assert_eq!(warnings(&certs, day0 + Duration::days(69)), vec![]);
        assert!(matches!(
            warnings(&certs, day0 + Duration::days(70)).as_slice(),
            [PushWarning::ExpiresSoon { topic, .. }] if topic == "com.apple.mgmt.b"
        ));
        assert!(matches!(
            warnings(&certs, day0 + Duration::days(100)).as_slice(),
            [PushWarning::Expired { .. }]
        ));
        assert_eq!(warnings(&[], day0), vec![PushWarning::Missing]);
    }
}

/// Where a push for one enrolled device goes: the topic it enrolled with,
/// and the token and magic of its latest TokenUpdate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushTarget {
    pub device: crate::domain::ids::DeviceId,
    pub topic: String,
    /// The device token APNs addresses (sent as hex in the request path).
    pub token: Vec<u8>,
    /// What the push's payload must carry for the device to act on it.
    pub push_magic: String,
}

/// How a push ended, as recorded on the device's enrollment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// APNs accepted it (which is not delivery: the device may be off).
    Sent,
    /// APNs answered 410 Unregistered: the token is no longer valid, and
    /// the device is not pushed again until a TokenUpdate brings a new one.
    Unregistered,
    /// APNs refused it (bad token, wrong topic, bad certificate, …).
    Rejected { status: u16, reason: String },
    /// APNs could not be reached or is overloaded; the push is tried again
    /// at the next redelivery.
    Unavailable { reason: String },
}

impl PushOutcome {
    /// The text stored as the enrollment's last push result.
    pub fn summary(&self) -> String {
        match self {
            PushOutcome::Sent => "sent".into(),
            PushOutcome::Unregistered => "unregistered (410)".into(),
            PushOutcome::Rejected { status, reason } => format!("rejected ({status} {reason})"),
            PushOutcome::Unavailable { reason } => format!("unavailable ({reason})"),
        }
    }
}
