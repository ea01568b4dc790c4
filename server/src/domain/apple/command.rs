//! Apple MDM commands the server sends (Apple's `mdm/commands/*.yaml`), and
//! the reports a device sends back on the command channel: its status, the
//! command it answers, the error chain, and the results the server reads.
//!
//! Results are typed only where the server uses them (inventory, security
//! posture, installed profiles, location, the lock message's outcome). The
//! raw report is stored as it arrived, so a key not typed here is not lost.

use std::fmt;

use chrono::{DateTime, Utc};

use super::checkin::EnrollmentId;

/// The six-digit Find My PIN a Mac needs for `DeviceLock` and
/// `EraseDevice` (`device.lock.yaml`: "The six-character PIN for Find My").
/// Whoever sends one stores it: the Mac cannot be unlocked without it.
#[derive(Clone, PartialEq, Eq)]
pub struct FindMyPin(String);

impl FindMyPin {
    /// Six ASCII digits, nothing else.
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == 6 && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| FindMyPin(text.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for FindMyPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FindMyPin([redacted])")
    }
}

/// What Lost Mode shows on the Lock Screen. Apple requires a message or a
/// phone number (`device.lostmode.enable.yaml`), so one of them is present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostModeNotice {
    message: Option<String>,
    phone_number: Option<String>,
    footnote: Option<String>,
}

impl LostModeNotice {
    /// `None` when neither a message nor a phone number is given (empty
    /// text counts as not given).
    pub fn new(
        message: Option<String>,
        phone_number: Option<String>,
        footnote: Option<String>,
    ) -> Option<Self> {
        let given = |text: Option<String>| text.filter(|t| !t.is_empty());
        let message = given(message);
        let phone_number = given(phone_number);
        if message.is_none() && phone_number.is_none() {
            return None;
        }
        Some(LostModeNotice {
            message,
            phone_number,
            footnote: given(footnote),
        })
    }

    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    pub fn phone_number(&self) -> Option<&str> {
        self.phone_number.as_deref()
    }

    pub fn footnote(&self) -> Option<&str> {
        self.footnote.as_deref()
    }
}

/// `EraseDevice`'s `ObliterationBehavior` (macOS 12+): what the Mac does
/// when Erase All Content and Settings cannot run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObliterationBehavior {
    /// Report an error, then obliterate.
    Default,
    /// Report an error and do not erase.
    DoNotObliterate,
    /// Acknowledge, then obliterate.
    ObliterateWithWarning,
    /// Always obliterate, never try Erase All Content and Settings.
    Always,
}

impl ObliterationBehavior {
    pub fn as_str(self) -> &'static str {
        match self {
            ObliterationBehavior::Default => "Default",
            ObliterationBehavior::DoNotObliterate => "DoNotObliterate",
            ObliterationBehavior::ObliterateWithWarning => "ObliterateWithWarning",
            ObliterationBehavior::Always => "Always",
        }
    }
}

/// The `DeviceInformation` queries whose answers [`DeviceInformation`]
/// types: the inventory Latchkey keeps for an Apple device.
pub const INVENTORY_QUERIES: &[&str] = &[
    "UDID",
    "SerialNumber",
    "DeviceName",
    "Model",
    "ModelName",
    "ProductName",
    "OSVersion",
    "BuildVersion",
    "IsSupervised",
    "IsActivationLockEnabled",
    "IsDeviceLocatorServiceEnabled",
    "IsMDMLostModeEnabled",
    "AwaitingConfiguration",
    "IsAppleSilicon",
    "DeviceCapacity",
    "AvailableDeviceCapacity",
    "BatteryLevel",
    "IMEI",
    "MEID",
    "WiFiMAC",
    "BluetoothMAC",
    "EthernetMAC",
];

/// A command for an Apple device. Each variant is one `RequestType` of
/// Apple's schema, with the keys Latchkey sends.
#[derive(Debug, Clone, PartialEq)]
pub enum AppleCommand {
    /// `device.lock.yaml`. A Mac needs the PIN in practice.
    DeviceLock {
        pin: Option<FindMyPin>,
        message: Option<String>,
        phone_number: Option<String>,
    },
    /// `device.erase.yaml`.
    EraseDevice {
        pin: Option<FindMyPin>,
        /// Keep the eSIM data plan (iOS 11+).
        preserve_data_plan: bool,
        /// Skip Proximity Setup after the erase (iOS 11.3+).
        disallow_proximity_setup: bool,
        obliteration_behavior: Option<ObliterationBehavior>,
    },
    /// `information.device.yaml`.
    DeviceInformation { queries: Vec<String> },
    /// `information.security.yaml`.
    SecurityInfo,
    /// `profile.list.yaml`.
    ProfileList { managed_only: bool },
    /// `profile.install.yaml`: a profile, signed or encrypted or neither.
    InstallProfile { payload: Vec<u8> },
    /// `profile.remove.yaml`: by the profile's `PayloadIdentifier`.
    RemoveProfile { identifier: String },
    /// `device.restart.yaml`.
    RestartDevice,
    /// `device.lostmode.enable.yaml` (supervised iOS).
    EnableLostMode(LostModeNotice),
    /// `device.lostmode.disable.yaml`.
    DisableLostMode,
    /// `device.lostmode.location.yaml`: only answered in Lost Mode.
    DeviceLocation,
    /// `device.configured.yaml`: releases a device waiting in Setup
    /// Assistant (`AwaitingConfiguration`).
    DeviceConfigured,
}

impl AppleCommand {
    /// Apple's `RequestType` for this command.
    pub fn request_type(&self) -> &'static str {
        match self {
            AppleCommand::DeviceLock { .. } => "DeviceLock",
            AppleCommand::EraseDevice { .. } => "EraseDevice",
            AppleCommand::DeviceInformation { .. } => "DeviceInformation",
            AppleCommand::SecurityInfo => "SecurityInfo",
            AppleCommand::ProfileList { .. } => "ProfileList",
            AppleCommand::InstallProfile { .. } => "InstallProfile",
            AppleCommand::RemoveProfile { .. } => "RemoveProfile",
            AppleCommand::RestartDevice => "RestartDevice",
            AppleCommand::EnableLostMode(_) => "EnableLostMode",
            AppleCommand::DisableLostMode => "DisableLostMode",
            AppleCommand::DeviceLocation => "DeviceLocation",
            AppleCommand::DeviceConfigured => "DeviceConfigured",
        }
    }

    /// `DeviceInformation` asking for [`INVENTORY_QUERIES`].
    pub fn inventory() -> Self {
        AppleCommand::DeviceInformation {
            queries: INVENTORY_QUERIES.iter().map(|q| (*q).to_owned()).collect(),
        }
    }
}

/// One entry of a report's `ErrorChain`, outermost first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorChainItem {
    pub code: i64,
    pub domain: String,
    pub localized_description: Option<String>,
    pub us_english_description: Option<String>,
}

/// The typed result of the command a report answers, told apart by the
/// result keys the report carries (the report does not name its command).
#[derive(Debug, Clone, PartialEq)]
pub enum CommandResult {
    /// `QueryResponses` (boxed: it is by far the largest result).
    DeviceInformation(Box<DeviceInformation>),
    /// `SecurityInfo`.
    SecurityInfo(SecurityInfo),
    /// `ProfileList`.
    ProfileList(Vec<InstalledProfile>),
    /// `Latitude`, `Longitude`, ….
    DeviceLocation(DeviceLocation),
    /// `MessageResult` of `DeviceLock`.
    DeviceLock(LockMessageResult),
}

/// `DeviceInformation`'s `QueryResponses`: every value is optional, since
/// the device answers only the queries it was asked and may answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceInformation {
    pub udid: Option<String>,
    pub serial_number: Option<String>,
    pub device_name: Option<String>,
    pub model: Option<String>,
    pub model_name: Option<String>,
    pub product_name: Option<String>,
    pub os_version: Option<String>,
    pub build_version: Option<String>,
    pub is_supervised: Option<bool>,
    pub is_activation_lock_enabled: Option<bool>,
    pub is_device_locator_service_enabled: Option<bool>,
    pub is_mdm_lost_mode_enabled: Option<bool>,
    pub awaiting_configuration: Option<bool>,
    pub is_apple_silicon: Option<bool>,
    /// Gigabytes (base 10 on iOS and macOS 12+).
    pub device_capacity: Option<f64>,
    pub available_device_capacity: Option<f64>,
    /// 0.0 to 1.0, or -1.0 when the device cannot tell.
    pub battery_level: Option<f64>,
    pub imei: Option<String>,
    pub meid: Option<String>,
    pub wifi_mac: Option<String>,
    pub bluetooth_mac: Option<String>,
    pub ethernet_mac: Option<String>,
}

/// `SecurityInfo`'s `HardwareEncryptionCaps` (iOS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HardwareEncryptionCaps {
    BlockLevel,
    FileLevel,
    BlockAndFileLevel,
    /// A value the schema does not define.
    Other(i64),
}

impl HardwareEncryptionCaps {
    pub fn from_code(code: i64) -> Self {
        match code {
            1 => HardwareEncryptionCaps::BlockLevel,
            2 => HardwareEncryptionCaps::FileLevel,
            3 => HardwareEncryptionCaps::BlockAndFileLevel,
            other => HardwareEncryptionCaps::Other(other),
        }
    }
}

/// `SecurityInfo.FirewallSettings` (macOS).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirewallSettings {
    pub enabled: Option<bool>,
    pub block_all_incoming: Option<bool>,
    pub stealth_mode: Option<bool>,
}

/// `SecurityInfo.ManagementStatus`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManagementStatus {
    pub enrolled_via_dep: Option<bool>,
    pub user_approved_enrollment: Option<bool>,
    pub is_user_enrollment: Option<bool>,
}

/// `SecurityInfo`: the keys the compliance checks read. iOS reports the
/// passcode and hardware encryption, macOS FileVault, SIP and the firewall.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityInfo {
    pub hardware_encryption_caps: Option<HardwareEncryptionCaps>,
    pub passcode_present: Option<bool>,
    pub passcode_compliant: Option<bool>,
    pub passcode_compliant_with_profiles: Option<bool>,
    /// `FDE_Enabled`: FileVault is on.
    pub fde_enabled: Option<bool>,
    pub fde_has_personal_recovery_key: Option<bool>,
    pub fde_has_institutional_recovery_key: Option<bool>,
    pub system_integrity_protection_enabled: Option<bool>,
    pub firewall: Option<FirewallSettings>,
    pub management_status: Option<ManagementStatus>,
    /// `SecureBoot.SecureBootLevel`: `off`, `medium`, `full`, `not supported`.
    pub secure_boot_level: Option<String>,
    pub authenticated_root_volume_enabled: Option<bool>,
}

impl SecurityInfo {
    /// Whether iOS Data Protection is on: the schema's rule is
    /// `HardwareEncryptionCaps` 3 and a passcode. `None` when the device
    /// reported neither (a Mac).
    pub fn data_protection(&self) -> Option<bool> {
        match (self.hardware_encryption_caps, self.passcode_present) {
            (None, None) => None,
            (caps, passcode) => Some(
                caps == Some(HardwareEncryptionCaps::BlockAndFileLevel) && passcode == Some(true),
            ),
        }
    }
}

/// One entry of `ProfileList`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledProfile {
    pub identifier: String,
    pub uuid: String,
    pub display_name: Option<String>,
    pub organization: Option<String>,
    /// Whether this MDM server installed it; not reported by macOS or for
    /// supervised devices.
    pub is_managed: Option<bool>,
    pub is_encrypted: bool,
    pub removal_disallowed: bool,
}

/// `DeviceLocation`'s answer. Everything but the coordinates arrived in
/// iOS 10.3; negative accuracies, speed and course mean unknown.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceLocation {
    pub latitude: f64,
    pub longitude: f64,
    pub horizontal_accuracy: Option<f64>,
    pub vertical_accuracy: Option<f64>,
    pub altitude: Option<f64>,
    pub speed: Option<f64>,
    pub course: Option<f64>,
    pub timestamp: Option<DateTime<Utc>>,
}

/// `DeviceLock`'s `MessageResult`: whether the lock message was shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockMessageResult {
    Success,
    DeviceInLostMode,
    NoPasscodeSet,
    /// Apple's own `Unknown`: an unknown error on the device.
    Unknown,
    /// A value the schema does not list, kept as sent.
    Unlisted(String),
}

impl LockMessageResult {
    pub fn parse(text: &str) -> Self {
        match text {
            "Success" => LockMessageResult::Success,
            "DeviceInLostMode" => LockMessageResult::DeviceInLostMode,
            "NoPasscodeSet" => LockMessageResult::NoPasscodeSet,
            "Unknown" => LockMessageResult::Unknown,
            other => LockMessageResult::Unlisted(other.to_owned()),
        }
    }
}

/// A device's answer to one command.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandAnswer {
    /// The `CommandUUID` the server sent, as the device echoes it.
    pub command_uuid: String,
    pub error_chain: Vec<ErrorChainItem>,
    pub result: Option<CommandResult>,
}

/// A report's `Status`. Every status but `Idle` answers a command, so only
/// `Idle` comes without a command UUID.
#[derive(Debug, Clone, PartialEq)]
pub enum ReportStatus {
    /// Ready for the next command.
    Idle,
    /// Done; terminal.
    Acknowledged(CommandAnswer),
    /// Failed; terminal.
    Error(CommandAnswer),
    /// The command was malformed; terminal.
    CommandFormatError(CommandAnswer),
    /// Not now (e.g. the device is locked): send it again after the next
    /// `Idle`, never on the same connection.
    NotNow(CommandAnswer),
}

impl ReportStatus {
    /// Apple's `Status` text.
    pub fn as_str(&self) -> &'static str {
        match self {
            ReportStatus::Idle => "Idle",
            ReportStatus::Acknowledged(_) => "Acknowledged",
            ReportStatus::Error(_) => "Error",
            ReportStatus::CommandFormatError(_) => "CommandFormatError",
            ReportStatus::NotNow(_) => "NotNow",
        }
    }

    pub fn answer(&self) -> Option<&CommandAnswer> {
        match self {
            ReportStatus::Idle => None,
            ReportStatus::Acknowledged(answer)
            | ReportStatus::Error(answer)
            | ReportStatus::CommandFormatError(answer)
            | ReportStatus::NotNow(answer) => Some(answer),
        }
    }

    pub fn command_uuid(&self) -> Option<&str> {
        self.answer().map(|a| a.command_uuid.as_str())
    }

    /// Acknowledged, Error and CommandFormatError end a command; NotNow
    /// and Idle do not.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            ReportStatus::Acknowledged(_)
                | ReportStatus::Error(_)
                | ReportStatus::CommandFormatError(_)
        )
    }
}

/// A report on the command channel.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandReport {
    pub enrollment: EnrollmentId,
    pub status: ReportStatus,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_my_pins_are_six_digits_and_do_not_print() {
        let pin = FindMyPin::parse("123456").unwrap();
        assert_eq!(pin.expose(), "123456");
        assert_eq!(format!("{pin:?}"), "FindMyPin([redacted])");
        for bad in ["12345", "1234567", "12345a", "１２３４５６", ""] {
            assert_eq!(FindMyPin::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn lost_mode_needs_a_message_or_a_phone_number() {
        assert_eq!(LostModeNotice::new(None, None, Some("f".into())), None);
        assert_eq!(
            LostModeNotice::new(Some(String::new()), Some(String::new()), None),
            None
        );
        let notice = LostModeNotice::new(None, Some("+1 555".into()), Some(String::new())).unwrap();
        assert_eq!(notice.phone_number(), Some("+1 555"));
        assert_eq!(notice.footnote(), None);
    }

    #[test]
    fn data_protection_needs_both_encryption_levels_and_a_passcode() {
        let mut info = SecurityInfo::default();
        assert_eq!(info.data_protection(), None);
        info.hardware_encryption_caps = Some(HardwareEncryptionCaps::BlockAndFileLevel);
        assert_eq!(info.data_protection(), Some(false));
        info.passcode_present = Some(true);
        assert_eq!(info.data_protection(), Some(true));
        info.hardware_encryption_caps = Some(HardwareEncryptionCaps::from_code(1));
        assert_eq!(info.data_protection(), Some(false));
    }

    #[test]
    fn only_idle_has_no_command() {
        assert_eq!(ReportStatus::Idle.command_uuid(), None);
        let answer = CommandAnswer {
            command_uuid: "c1".into(),
            error_chain: Vec::new(),
            result: None,
        };
        let not_now = ReportStatus::NotNow(answer.clone());
        assert_eq!(not_now.command_uuid(), Some("c1"));
        assert!(!not_now.is_terminal());
        assert!(ReportStatus::Error(answer).is_terminal());
    }
}
