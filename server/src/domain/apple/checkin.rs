//! The check-in messages an Apple device sends to the check-in URL
//! (Apple's `mdm/checkin/*.yaml`), and the enrollment each one speaks for.
//!
//! A message names its enrollment by the keys it carries: a device channel
//! by `UDID` (device enrollment) or `EnrollmentID` (User Enrollment, where
//! no UDID is sent), a user channel by the device's id plus `UserID`
//! (macOS users), `UserShortName` (Shared iPad, whose `UserID` is all `F`s)
//! or `EnrollmentUserID` (User Enrollment on macOS). [`EnrollmentId::key`]
//! is the one text form of that identity, one row per enrollment.

use std::fmt;

/// The `UserID` a Shared iPad sends for its user channel: authentication did
/// not happen, and the user is named by `UserShortName` instead.
pub const SHARED_IPAD_USER_ID: &str = "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF";

/// How the device channel of an enrollment is named.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DeviceChannelId {
    /// A device enrollment: the device's `UDID`.
    Udid(String),
    /// A User Enrollment: the per-enrollment `EnrollmentID`; the device
    /// never tells such a server its UDID.
    EnrollmentId(String),
}

impl DeviceChannelId {
    pub fn as_str(&self) -> &str {
        match self {
            DeviceChannelId::Udid(id) | DeviceChannelId::EnrollmentId(id) => id,
        }
    }
}

/// How the user of a user channel is named.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UserChannelId {
    /// A macOS user: the user's `UserID` (a directory GUID).
    UserId(String),
    /// A Shared iPad user, who is named by `UserShortName` (the Managed
    /// Apple Account) because the `UserID` is [`SHARED_IPAD_USER_ID`].
    SharedIpadUser(String),
    /// A macOS user of a User Enrollment: `EnrollmentUserID`.
    EnrollmentUserId(String),
}

impl UserChannelId {
    pub fn as_str(&self) -> &str {
        match self {
            UserChannelId::UserId(id)
            | UserChannelId::SharedIpadUser(id)
            | UserChannelId::EnrollmentUserId(id) => id,
        }
    }
}

/// The enrollment a message speaks for: a device channel, or a user channel
/// on that device.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EnrollmentId {
    pub device: DeviceChannelId,
    pub user: Option<UserChannelId>,
}

impl EnrollmentId {
    pub fn device(device: DeviceChannelId) -> Self {
        EnrollmentId { device, user: None }
    }

    /// The enrollment's key: the device channel's id, and for a user
    /// channel `<device>:<user>`.
    pub fn key(&self) -> String {
        match &self.user {
            None => self.device.as_str().to_owned(),
            Some(user) => format!("{}:{}", self.device.as_str(), user.as_str()),
        }
    }

    pub fn is_user_channel(&self) -> bool {
        self.user.is_some()
    }
}

impl fmt::Display for EnrollmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// Bytes that must not reach a log: an unlock token, a bootstrap token.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes([redacted], {} bytes)", self.0.len())
    }
}

/// `Authenticate`: the device installs the MDM payload. Not proof that the
/// enrollment will complete; the first `TokenUpdate` does that.
#[derive(Debug, Clone, PartialEq)]
pub struct Authenticate {
    pub enrollment: EnrollmentId,
    pub topic: String,
    /// `DeviceName`, `Model` and `ModelName` are macOS only in the schema.
    pub device_name: Option<String>,
    pub model: Option<String>,
    pub model_name: Option<String>,
    pub serial_number: Option<String>,
    pub os_version: Option<String>,
    pub build_version: Option<String>,
    pub product_name: Option<String>,
    pub imei: Option<String>,
    pub meid: Option<String>,
}

/// `TokenUpdate`: the push triple (token, topic, push magic) for this
/// enrollment; the first one completes the enrollment.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenUpdate {
    pub enrollment: EnrollmentId,
    pub topic: String,
    /// The APNs device token; APNs wants it in hex.
    pub token: Vec<u8>,
    pub push_magic: String,
    /// Present on iOS with the passcode-removal right. Its absence does not
    /// invalidate one received before.
    pub unlock_token: Option<SecretBytes>,
    /// Set during Setup Assistant on Automated Device Enrollment: the
    /// device waits for `DeviceConfigured`.
    pub awaiting_configuration: bool,
    /// macOS user channel: the user is not at the console.
    pub not_on_console: bool,
    pub user_short_name: Option<String>,
    pub user_long_name: Option<String>,
}

/// `CheckOut`: the MDM profile was removed. Sent on a best-effort basis.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckOut {
    pub enrollment: EnrollmentId,
    pub topic: String,
}

/// `UserAuthenticate`: a macOS user channel asks to be managed. The first
/// request carries no digest response.
#[derive(Debug, Clone, PartialEq)]
pub struct UserAuthenticate {
    /// Always a user channel (`UserID`).
    pub enrollment: EnrollmentId,
    pub digest_response: Option<String>,
}

/// `SetBootstrapToken`: escrow the macOS bootstrap token, or forget it.
#[derive(Debug, Clone, PartialEq)]
pub struct SetBootstrapToken {
    pub enrollment: EnrollmentId,
    /// `None` when the key is missing or empty: remove the stored token.
    pub token: Option<SecretBytes>,
    pub awaiting_configuration: bool,
}

/// `GetBootstrapToken`: the device asks for its escrowed bootstrap token.
#[derive(Debug, Clone, PartialEq)]
pub struct GetBootstrapToken {
    pub enrollment: EnrollmentId,
    pub awaiting_configuration: bool,
}

/// Check-in messages Apple defines that Latchkey declines to serve; a
/// message of one of these types is known, not malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeclinedMessageType {
    /// Declarative Device Management (`declarativemanagement.yaml`).
    DeclarativeManagement,
    /// `GetToken` (Managed Apple Account and watch pairing tokens).
    GetToken,
    /// `ReturnToService`.
    ReturnToService,
}

impl DeclinedMessageType {
    pub fn as_str(self) -> &'static str {
        match self {
            DeclinedMessageType::DeclarativeManagement => "DeclarativeManagement",
            DeclinedMessageType::GetToken => "GetToken",
            DeclinedMessageType::ReturnToService => "ReturnToService",
        }
    }
}

/// A check-in message, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckInMessage {
    Authenticate(Authenticate),
    TokenUpdate(TokenUpdate),
    CheckOut(CheckOut),
    UserAuthenticate(UserAuthenticate),
    SetBootstrapToken(SetBootstrapToken),
    GetBootstrapToken(GetBootstrapToken),
    /// A message type Apple defines and Latchkey does not serve.
    Declined(DeclinedMessageType),
}

impl CheckInMessage {
    /// Apple's `MessageType` of this message.
    pub fn message_type(&self) -> &'static str {
        match self {
            CheckInMessage::Authenticate(_) => "Authenticate",
            CheckInMessage::TokenUpdate(_) => "TokenUpdate",
            CheckInMessage::CheckOut(_) => "CheckOut",
            CheckInMessage::UserAuthenticate(_) => "UserAuthenticate",
            CheckInMessage::SetBootstrapToken(_) => "SetBootstrapToken",
            CheckInMessage::GetBootstrapToken(_) => "GetBootstrapToken",
            CheckInMessage::Declined(declined) => declined.as_str(),
        }
    }

    /// The enrollment the message speaks for; none for a declined message,
    /// which is not decoded further.
    pub fn enrollment(&self) -> Option<&EnrollmentId> {
        match self {
            CheckInMessage::Authenticate(m) => Some(&m.enrollment),
            CheckInMessage::TokenUpdate(m) => Some(&m.enrollment),
            CheckInMessage::CheckOut(m) => Some(&m.enrollment),
            CheckInMessage::UserAuthenticate(m) => Some(&m.enrollment),
            CheckInMessage::SetBootstrapToken(m) => Some(&m.enrollment),
            CheckInMessage::GetBootstrapToken(m) => Some(&m.enrollment),
            CheckInMessage::Declined(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enrollment_keys_name_device_and_user_channels() {
        let device = EnrollmentId::device(DeviceChannelId::Udid("UDID-1".into()));
        assert_eq!(device.key(), "UDID-1");
        assert!(!device.is_user_channel());
        let user = EnrollmentId {
            device: DeviceChannelId::Udid("UDID-1".into()),
            user: Some(UserChannelId::UserId("GUID-2".into())),
        };
        assert_eq!(user.key(), "UDID-1:GUID-2");
        let shared = EnrollmentId {
            device: DeviceChannelId::Udid("UDID-1".into()),
            user: Some(UserChannelId::SharedIpadUser("kim@example.org".into())),
        };
        assert_eq!(shared.to_string(), "UDID-1:kim@example.org");
        let byod = EnrollmentId::device(DeviceChannelId::EnrollmentId("E-3".into()));
        assert_eq!(byod.key(), "E-3");
    }

    #[test]
    fn secret_bytes_do_not_print() {
        let secret = SecretBytes::new(vec![1, 2, 3]);
        assert_eq!(format!("{secret:?}"), "SecretBytes([redacted], 3 bytes)");
        assert_eq!(secret.expose(), &[1, 2, 3]);
    }
}
