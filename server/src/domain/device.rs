//! Devices: where each stands, what it reported about itself and its
//! latest posture.

use chrono::{DateTime, Utc};

use crate::domain::ids::DeviceId;

/// Where a device stands. Only `Active` and `Locked` devices may use the
/// device API; a `WipePending` device may still connect to MQTT (or check
/// in, an Apple device) to receive its wipe; `Retired` and `Wiped` are
/// final and their certificates revoked. `AwaitingEnrollment` is an Apple
/// device listed or issued its identity but not yet checked in; `Lost` a
/// locked device in lost mode. Only an `Active` device signs anyone in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceState {
    Active,
    Locked,
    WipePending,
    Retired,
    Wiped,
    AwaitingEnrollment,
    Lost,
}

impl DeviceState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::Active => "active",
            DeviceState::Locked => "locked",
            DeviceState::WipePending => "wipe-pending",
            DeviceState::Retired => "retired",
            DeviceState::Wiped => "wiped",
            DeviceState::AwaitingEnrollment => "awaiting-enrollment",
            DeviceState::Lost => "lost",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "active" => Some(DeviceState::Active),
            "locked" => Some(DeviceState::Locked),
            "wipe-pending" => Some(DeviceState::WipePending),
            "retired" => Some(DeviceState::Retired),
            "wiped" => Some(DeviceState::Wiped),
            "awaiting-enrollment" => Some(DeviceState::AwaitingEnrollment),
            "lost" => Some(DeviceState::Lost),
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
    /// The channel that manages the device and carries its commands.
    pub channel: Channel,
}

/// The channel that manages a device: how it learns that it has work and
/// how its commands reach it. An ASCII slug a machine reads (`agent` for
/// Latchkey's agent over MQTT); each device platform adds its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Channel(String);

impl Channel {
    /// Latchkey's agent: commands travel over MQTT.
    pub const AGENT: &str = "agent";
    /// Apple's MDM: an APNs push wakes the device, which checks in and
    /// fetches its commands.
    pub const APPLE: &str = "apple";

    pub fn agent() -> Self {
        Channel(Self::AGENT.to_owned())
    }

    pub fn apple() -> Self {
        Channel(Self::APPLE.to_owned())
    }

    /// A channel name: 1 to 32 lowercase ASCII letters, digits or `-`.
    pub fn parse(text: &str) -> Option<Self> {
        let valid = (1..=32).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        valid.then(|| Channel(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
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
