//! The SSO layer's records: browser sessions, pending authorization
//! requests, device-auth transactions, grants and login events.

use chrono::{DateTime, Duration, Utc};

use super::app::DevicePolicy;
use crate::domain::ids::{
    AuthRequestId, ClientId, DeviceAuthTxnId, DeviceId, GrantId, SsoSessionId, UserId,
};

/// How a managed device confirmed a sign-in in a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceProof {
    /// The device answered a `bound` transaction and its proof reached
    /// this browser session (redemption link or code typed from the device).
    Bound,
    /// The browser presented the device certificate the MDM profile
    /// installed (phones and tablets): the browser runs on the device.
    Certificate,
    /// The user approved on the device by typing the number the browser
    /// showed (`confirm`: the device as a second factor, anywhere).
    Confirm,
}

impl DeviceProof {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceProof::Bound => "bound",
            DeviceProof::Certificate => "certificate",
            DeviceProof::Confirm => "confirm",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "bound" => Some(DeviceProof::Bound),
            "certificate" => Some(DeviceProof::Certificate),
            "confirm" => Some(DeviceProof::Confirm),
            _ => None,
        }
    }

    /// Whether this proof shows the browser runs on the managed device.
    pub fn is_bound(self) -> bool {
        matches!(self, DeviceProof::Bound | DeviceProof::Certificate)
    }
}

/// How a `bound` transaction's proof reached the browser session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The agent opened the one-time redemption link in this browser.
    Link,
    /// The user typed the code the device showed.
    Code,
    /// The browser presented the device certificate (mobile path).
    Certificate,
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Link => "link",
            Delivery::Code => "code",
            Delivery::Certificate => "certificate",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "link" => Some(Delivery::Link),
            "code" => Some(Delivery::Code),
            "certificate" => Some(Delivery::Certificate),
            _ => None,
        }
    }
}

/// A managed device's confirmation held by a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceConfirmation {
    pub device_id: DeviceId,
    pub proof: DeviceProof,
    /// The browser's address when the confirmation was taken; a `bound`
    /// app accepts it only from the same address.
    pub ip: String,
}

/// A browser's session with the provider, found by its cookie. It is
/// authenticated once `user_id` and `auth_time` are set.
#[derive(Debug, Clone)]
pub struct SsoSession {
    pub id: SsoSessionId,
    pub user_id: Option<UserId>,
    /// The address of the browser's current request: the session is
    /// loaded with it (the stored value is where the session started).
    pub ip: String,
    /// The user agent of the current request, like `ip`.
    pub user_agent: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// When the user last proved their password in this session.
    pub auth_time: Option<DateTime<Utc>>,
    /// The second factor that passed in this session, and when.
    pub second_factor: Option<(Factor, DateTime<Utc>)>,
    /// The managed device that confirmed a login in this session, how and
    /// from where.
    pub device: Option<DeviceConfirmation>,
    /// The password that passed was a temporary one (onboarding or an
    /// admin's reset): the user may set up a first authenticator.
    pub onboarding: bool,
    pub ended_at: Option<DateTime<Utc>>,
    /// Whether the session has a row yet: a browser that has only opened
    /// `/authorize` holds a session that exists in its cookie alone, and
    /// nothing is written until it submits a form.
    pub persisted: bool,
}

impl SsoSession {
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.ended_at.is_none() && self.expires_at > now
    }

    /// RFC 8176 method references of what this session has proved:
    /// `pwd`; `otp` for a one-time code; for a device, `swk` (the key of
    /// the device the browser runs on) in `bound` mode and `mca` with
    /// `user` (a second channel where the user typed the number) in
    /// `confirm` mode.
    pub fn amr(&self) -> Vec<Amr> {
        let mut amr = Vec::new();
        if self.auth_time.is_some() {
            amr.push(Amr::Password);
        }
        if self.second_factor.is_some() {
            amr.push(Amr::OneTimeCode);
        }
        match self.device.as_ref().map(|d| d.proof) {
            Some(DeviceProof::Bound | DeviceProof::Certificate) => amr.push(Amr::SoftwareKey),
            Some(DeviceProof::Confirm) => amr.extend([Amr::MultiChannel, Amr::User]),
            None => {}
        }
        amr
    }

    /// Whether the second factor that passed satisfies `wanted`: an app
    /// that asks for TOTP is not satisfied by an emailed code.
    pub fn passed_factor(&self, wanted: Option<Factor>) -> bool {
        match (self.second_factor, wanted) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some((passed, _)), Some(wanted)) => passed == wanted,
        }
    }
}

/// An `/authorize` request waiting for the user to finish signing in.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    /// The request's key in the store.
    pub id: AuthRequestId,
    /// What pages and forms carry (`req`): the request sealed with the
    /// server's key, so that nothing is stored before the user submits a
    /// form; the key is derived from it. Equal to `id` for a request read
    /// by its key.
    pub handle: String,
    pub session_id: SsoSessionId,
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
/// user is shown. The store keeps it with the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// `confirm` mode: the number typed on the device was not the one the
    /// browser showed.
    WrongNumber { device: String },
    /// `bound` mode: the device answered, but its proof (the redemption
    /// link or the code) never reached this browser session.
    NotDelivered { device: String },
    /// `bound` mode: too many wrong codes were typed on the waiting page.
    TooManyCodes,
    /// Too many device requests in a short time (repeated pushes).
    TooManyRequests,
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
            DeviceAuthFailure::WrongNumber { .. } => "wrong_number",
            DeviceAuthFailure::NotDelivered { .. } => "not_delivered",
            DeviceAuthFailure::TooManyCodes => "too_many_codes",
            DeviceAuthFailure::TooManyRequests => "too_many_requests",
        }
    }
}

/// A failed compliance check as shown on the "not compliant" page.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    pub id: DeviceAuthTxnId,
    pub nonce: String,
    /// `confirm` mode: the two-digit number the browser shows and the
    /// user types on the device (never sent to the device). Empty in
    /// `bound` mode, whose code is made when the device answers.
    pub short_code: String,
    pub mode: DevicePolicy,
    pub request_id: AuthRequestId,
    pub session_id: SsoSessionId,
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
    /// Wrong codes typed on the waiting page so far.
    pub code_attempts: i32,
    /// When the redemption link arrived, in whichever browser.
    pub link_opened_at: Option<DateTime<Utc>>,
    /// When and how the device's proof reached the session (`bound`).
    pub delivered: Option<(Delivery, DateTime<Utc>)>,
    /// When the session took the confirmation into its sign-in.
    pub redeemed_at: Option<DateTime<Utc>>,
}

impl DeviceAuthTxn {
    /// A `bound` transaction the device confirmed whose proof has not yet
    /// reached the browser session: the sign-in is still waiting.
    pub fn awaiting_proof(&self) -> bool {
        self.outcome == TxnOutcome::Confirmed
            && self.mode == DevicePolicy::Bound
            && self.delivered.is_none()
    }
}

/// One authorization code and the tokens issued for it: ending a grant
/// ends its refresh tokens and makes its access tokens inactive.
#[derive(Debug, Clone)]
pub struct Grant {
    pub id: GrantId,
    pub session_id: SsoSessionId,
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
    pub amr: Vec<Amr>,
    pub acr: Acr,
    pub created_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// A refresh token as stored (by hash).
#[derive(Debug, Clone)]
pub struct RefreshTokenRecord {
    pub grant_id: GrantId,
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

/// A factor a sign-in asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Factor {
    Totp,
    Email,
}

impl Factor {
    pub fn as_str(self) -> &'static str {
        match self {
            Factor::Totp => "totp",
            Factor::Email => "email",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "totp" => Some(Factor::Totp),
            "email" => Some(Factor::Email),
            _ => None,
        }
    }
}

/// Failed sign-in attempts counted against one key (an account name or a
/// client address) in the current window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginThrottle {
    pub key: String,
    pub failures: u32,
    pub last_failure: DateTime<Utc>,
}

/// How a kind of throttling key (an account, an address, a day's codes) is
/// limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleRule {
    /// Failures allowed before the first lockout.
    pub threshold: u32,
    /// A count whose last failure is this old starts again.
    pub window: Duration,
    pub lockout: Lockout,
}

/// How long a key stays locked once past its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lockout {
    /// `first`, doubling with each further failure up to `max`.
    Doubling { first: Duration, max: Duration },
    /// As long as the rule's window.
    Window,
}

impl ThrottleRule {
    /// The lockout after `failures` failures, if any.
    pub fn lockout(&self, failures: u32) -> Option<Duration> {
        let over = failures.checked_sub(self.threshold)?;
        match self.lockout {
            Lockout::Window => Some(self.window),
            Lockout::Doubling { first, max } => {
                let factor = 1i32 << over.min(10);
                Some((first * factor).min(max))
            }
        }
    }
}

/// An authentication method a sign-in proved (RFC 8176 `amr` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amr {
    /// `pwd`: the password.
    Password,
    /// `otp`: a one-time code (authenticator app or email).
    OneTimeCode,
    /// `swk`: the key of the managed device the browser runs on.
    SoftwareKey,
    /// `mca`: a second channel, the managed device that approved.
    MultiChannel,
    /// `user`: the person took part there (typed the number).
    User,
}

impl Amr {
    pub fn as_str(self) -> &'static str {
        match self {
            Amr::Password => "pwd",
            Amr::OneTimeCode => "otp",
            Amr::SoftwareKey => "swk",
            Amr::MultiChannel => "mca",
            Amr::User => "user",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Amr::Password,
            Amr::OneTimeCode,
            Amr::SoftwareKey,
            Amr::MultiChannel,
            Amr::User,
        ]
        .into_iter()
        .find(|m| m.as_str() == text)
    }

    /// Whether the method is a managed device's proof.
    pub fn is_device(self) -> bool {
        matches!(self, Amr::SoftwareKey | Amr::MultiChannel | Amr::User)
    }
}

/// How a sign-in was authenticated, as apps read it (`acr`, docs/sso.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acr {
    /// The password alone.
    Password,
    /// The password and a one-time code.
    Mfa,
    /// A managed device of the user approved with number matching.
    DeviceConfirm,
    /// The browser runs on a managed device of the user (`bound`, or the
    /// device certificate on a phone).
    DeviceBound,
}

impl Acr {
    /// Weakest first, as discovery lists them.
    pub const ALL: [Acr; 4] = [
        Acr::Password,
        Acr::Mfa,
        Acr::DeviceConfirm,
        Acr::DeviceBound,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Acr::Password => "urn:latchkey:acr:pwd",
            Acr::Mfa => "urn:latchkey:acr:mfa",
            Acr::DeviceConfirm => "urn:latchkey:acr:device-confirm",
            Acr::DeviceBound => "urn:latchkey:acr:device-bound",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == text)
    }
}
