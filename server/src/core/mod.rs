//! The operations, as one service per concern: the audit log, admins, Apple devices,
//! enrollment, devices and their commands, policies and compliance, users
//! and groups, apps, signing keys and sign-in. This file holds `Core`, the
//! set of services built in one place, its errors and settings, and the
//! checks every service shares (labels, emails, printable text). It imports no transport or storage crate; front-ends in `api`
//! decode requests, call these operations with the current time, and
//! encode the results.

mod admins;
pub mod apple;
pub mod apps;
mod audit;
mod bulk_lock;
mod commands;
mod devices;
mod enrollment;
pub(crate) mod policies;

pub mod auth;

pub mod email;

mod flood;

pub mod limits;

pub mod passwords;

pub mod signing_keys;

pub mod sso;

pub mod totp;

pub mod users;

mod writer;

pub use writer::EnrollmentWriter;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::ca::CertificateAuthority;

use crate::domain::audit::AdminRequest;

use crate::domain::device::{Device, Posture};

use crate::domain::ids::{CommandId, DeviceId};

use crate::domain::policy::Compliance;

use crate::push::Push;

use crate::push::port::Ports;

use crate::store::{Store, StoreError};

use auth::DeviceAuthError;

pub use admins::Admins;
pub use apple::Apple;
pub use apps::Apps;
pub use audit::Audit;
pub use bulk_lock::{BulkLock, BulkLockRequest, BulkLocked, BulkSkipped, MAX_BULK_IDS};
pub use commands::LockRequest;
pub use devices::Devices;
pub use enrollment::{Crl, Enrollment};
pub use passwords::Passwords;
pub use policies::Policies;
pub use signing_keys::SigningKeys;
pub use sso::{SignIn, Waiters};
pub use users::Users;

/// Errors of admin and device operations, named for what the caller can do.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("not permitted: your role ({role}) may not {action}")]
    PermissionDenied {
        role: &'static str,
        action: AdminRequest,
    },
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// A service the server depends on (Apple's) failed or is throttling;
    /// trying again later may work.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Enroll(#[from] EnrollError),
    #[error(transparent)]
    DeviceAuth(#[from] DeviceAuthError),
    #[error("internal error: {0}")]
    Internal(#[from] InternalError),
}

/// A failure that is Latchkey's, not the caller's: the caller hears
/// "internal error", the log gets the cause with its source.
#[derive(Debug, thiserror::Error)]
pub enum InternalError {
    /// Shared so that one failed batch can answer every request in it.
    #[error(transparent)]
    Store(Arc<StoreError>),
    #[error(transparent)]
    Ca(#[from] crate::ca::CaError),
    #[error(transparent)]
    Cert(#[from] latchkey_certs::CertError),
    #[error("password hashing: {0}")]
    PasswordHash(argon2::Error),
    #[error("a worker thread failed: {0}")]
    Worker(#[from] tokio::task::JoinError),
    #[error("the password hashing queue is closed: {0}")]
    HashQueue(#[from] tokio::sync::AcquireError),
    #[error("sealing a sign-in request: {0}")]
    Seal(#[from] serde_json::Error),
    #[error("writing a token's claims: {0}")]
    Claims(serde_json::Error),
    #[error("signing or checking CMS: {0}")]
    Cms(#[from] latchkey_certs::cms::CmsError),
    /// A state the server itself should never reach.
    #[error("{0}")]
    Broken(&'static str),
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match e {
            // Two writers raced for one name; the loser hears what a
            // sequential caller would have.
            StoreError::Conflict(_) => CoreError::AlreadyExists(
                "it was created by another request at the same moment".into(),
            ),
            other => CoreError::Internal(InternalError::Store(Arc::new(other))),
        }
    }
}

impl From<crate::ca::CaError> for CoreError {
    fn from(e: crate::ca::CaError) -> Self {
        CoreError::Internal(e.into())
    }
}

impl From<latchkey_certs::CertError> for CoreError {
    fn from(e: latchkey_certs::CertError) -> Self {
        CoreError::Internal(e.into())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnrollError {
    #[error("the enrollment token is not known")]
    TokenUnknown,
    #[error("the enrollment token has expired")]
    TokenExpired,
    #[error("the enrollment token has been revoked")]
    TokenRevoked,
    #[error("the enrollment token has been used up")]
    TokenUsedUp,
    #[error("invalid CSR: {0}")]
    InvalidCsr(String),
    #[error("unsupported key {0}: devices must use ECDSA P-256")]
    UnsupportedKey(String),
    #[error("invalid device facts: {0}")]
    InvalidFacts(String),
}

/// Settings of the core, from the validated configuration.
#[derive(Debug, Clone)]
pub struct CoreSettings {
    pub device_certificate_validity: Duration,
    /// The MQTT URL agents are told at enrollment.
    pub mqtt_url: String,
    pub sso: sso::SsoSettings,
    pub apple: apple::AppleSettings,
}

/// A device as an admin sees it: with its policy and compliance now.
#[derive(Debug, Clone)]
pub struct DeviceView {
    pub device: Device,
    pub policy: Option<String>,
    pub compliance: Compliance,
}

/// A device as `device show` presents it: the view, what its platform's
/// MDM says of it, and the rules of its policy the platform cannot
/// enforce or report.
#[derive(Debug, Clone)]
pub struct DeviceDetails {
    pub view: DeviceView,
    /// An Apple device's enrollment: supervision, check-ins, pushes.
    pub apple: Option<crate::domain::apple::enrollment::AppleEnrollment>,
    /// The PIN of a Mac's latest lock or erase, for a caller who may lock.
    pub unlock_pin: Option<UnlockPin>,
    pub policy_gaps: Vec<crate::apple_profiles::policy::RuleGap>,
    /// An Apple device's identity certificate and its renewal.
    pub apple_identity: Option<crate::domain::apple::enrollment::IdentityStatus>,
}

/// A Mac's Find My PIN and the command that set it.
#[derive(Debug, Clone)]
pub struct UnlockPin {
    pub pin: String,
    pub command: CommandId,
    pub set_at: DateTime<Utc>,
}

/// What the agent told us over MQTT, decoded by `api::mqtt`.
#[derive(Debug, Clone)]
pub enum AgentEvent {
    Hello {
        policy_version: i64,
    },
    Ack {
        command_id: String,
        success: bool,
        result: String,
    },
    Posture(Posture),
}

/// Result of a successful enrollment.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub device_id: DeviceId,
    pub certificate_chain_pem: String,
    pub ca_pem: String,
    pub mqtt_url: String,
}

/// The services, one per concern, built together in [`Core::new`]. Each
/// holds only the collaborators it uses; the front-ends in `api` call
/// them as `core.devices.lock_device(..)`.
pub struct Core {
    pub audit: Audit,
    pub admins: Admins,
    pub apple: Apple,
    pub enrollment: Enrollment,
    pub devices: Devices,
    pub policies: Policies,
    pub users: Users,
    pub apps: Apps,
    pub signing_keys: SigningKeys,
    pub sign_in: SignIn,
}

impl Core {
    /// The services and the enrollment writer, which the caller must run.
    pub fn new(
        store: Store,
        ca: Arc<CertificateAuthority>,
        push: Push,
        ports: Ports,
        apple: apple::ApplePlatform,
        mail: Option<crate::mail::Mailer>,
        settings: CoreSettings,
    ) -> (Self, EnrollmentWriter) {
        let (enrollments, writer) = writer::channel(store.clone());
        let audit = Audit {
            store: store.clone(),
            unauthenticated_denials: Arc::default(),
        };
        let passwords = Passwords::default();
        let crl = Crl {
            store: store.clone(),
            ca: ca.clone(),
        };
        let policies = Policies {
            store: store.clone(),
            audit: audit.clone(),
            push: push.clone(),
            ports: ports.clone(),
            apple: settings.apple.clone(),
        };
        let signing_keys = SigningKeys {
            store: store.clone(),
            audit: audit.clone(),
            ca: ca.clone(),
            cache: Arc::default(),
        };
        let devices = Devices {
            store: store.clone(),
            audit: audit.clone(),
            push: push.clone(),
            ports,
            policies: policies.clone(),
            crl: crl.clone(),
            ca: ca.clone(),
        };
        let core = Core {
            admins: Admins {
                store: store.clone(),
                audit: audit.clone(),
            },
            apple: Apple {
                store: store.clone(),
                audit: audit.clone(),
                ca: ca.clone(),
                apns: apple.apns,
                enrollment_authority: apple.enrollment_authority,
                settings: settings.apple,
                devices: devices.clone(),
                dep_http: apple.dep_http,
                dep_throttled: Default::default(),
            },
            enrollment: Enrollment {
                store: store.clone(),
                audit: audit.clone(),
                ca: ca.clone(),
                crl: crl.clone(),
                enrollments,
                certificate_validity: settings.device_certificate_validity,
                mqtt_url: settings.mqtt_url,
            },
            devices: devices.clone(),
            users: Users {
                store: store.clone(),
                audit: audit.clone(),
                passwords: passwords.clone(),
                policies: policies.clone(),
            },
            apps: Apps {
                store: store.clone(),
                audit: audit.clone(),
            },
            sign_in: SignIn {
                store,
                audit: audit.clone(),
                ca,
                settings: settings.sso,
                passwords,
                device_auth_waiters: Waiters::default(),
                mail,
                signing_keys: signing_keys.clone(),
                push,
                policies: policies.clone(),
            },
            signing_keys,
            policies,
            audit,
        };
        (core, writer)
    }
}

/// A device id from an admin or a URL; one that cannot be a device id is a
/// device that is not found.
pub(crate) fn parse_device_id(id: &str) -> Result<DeviceId, CoreError> {
    DeviceId::parse(id).ok_or_else(|| CoreError::NotFound(format!("device {id}")))
}

/// The device an admin's `id` names, with its parsed id; `NotFound` when
/// the id cannot be a device's or no device has it.
pub(crate) async fn existing_device(
    store: &crate::store::Store,
    id: &str,
) -> Result<(DeviceId, crate::domain::device::Device), CoreError> {
    let device_id = parse_device_id(id)?;
    let device = store
        .device(&device_id)
        .await?
        .ok_or_else(|| CoreError::NotFound(format!("device {id}")))?;
    Ok((device_id, device))
}

/// Device-supplied text as it may be stored and shown: control characters
/// (terminal escapes) dropped, at most `max` bytes.
pub(crate) fn printable(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

/// Admin text a device shows (a lock message, a phone number, a
/// footnote): control characters other than line breaks and tabs are
/// dropped, and a character no property list can carry (U+FFFE, U+FFFF)
/// is refused, so that a command queued with it can always be sent.
pub(crate) fn device_text(what: &str, text: &str, max: usize) -> Result<String, CoreError> {
    if text.len() > max {
        return Err(CoreError::InvalidArgument(format!(
            "the {what} is longer than {max} bytes"
        )));
    }
    if text.contains(['\u{FFFE}', '\u{FFFF}']) {
        return Err(CoreError::InvalidArgument(format!(
            "the {what} holds a character a device cannot be sent (U+FFFE or U+FFFF)"
        )));
    }
    Ok(text
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .collect())
}

/// One address checked as a mail system would (see [`email`]).
pub(crate) fn validate_email(text: &str) -> Result<String, CoreError> {
    email::normalize(text).map_err(|why| {
        CoreError::InvalidArgument(format!("{:?} is not an email address: {why}", text.trim()))
    })
}

/// Longest group or app name, in characters.
const MAX_LABEL_CHARS: usize = 64;

/// Punctuation a group or app name may hold besides letters, digits and
/// single spaces: not `;` (it separates groups in an import), not `,`.
const LABEL_PUNCTUATION: &str = "-_.&'()+・";

/// A name people choose and read (a group, an app), in any script:
/// 営業部, 勤怠管理, "Sales & Marketing". Stored in Unicode NFC so that the
/// same name typed on two systems is one name; 1-64 characters of letters,
/// marks and digits, single inner spaces and [`LABEL_PUNCTUATION`].
/// Identifiers machines read (ids, client ids, policy names, addresses)
/// stay ASCII; see ARCHITECTURE.md.
pub(crate) fn validate_label(what: &str, name: &str) -> Result<String, CoreError> {
    use unicode_normalization::UnicodeNormalization;
    let name: String = name.trim().nfc().collect();
    let chars = name.chars().count();
    let allowed = |c: char| {
        c.is_alphanumeric()
            || LABEL_PUNCTUATION.contains(c)
            || c == ' '
            || unicode_normalization::char::is_combining_mark(c)
    };
    let valid =
        (1..=MAX_LABEL_CHARS).contains(&chars) && name.chars().all(allowed) && !name.contains("  ");
    if valid {
        Ok(name)
    } else {
        Err(CoreError::InvalidArgument(format!(
            "{what} name {name:?} must be 1-{MAX_LABEL_CHARS} letters or digits in any script, single spaces and {LABEL_PUNCTUATION}"
        )))
    }
}

pub(crate) fn validate_name(what: &str, name: &str) -> Result<String, CoreError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(name.to_owned())
    } else {
        Err(CoreError::InvalidArgument(format!(
            "{what} name {name:?} must be 1-64 characters of letters, digits, '-', '_' or '.'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::{printable, validate_label};

    #[test]
    fn group_and_app_names_may_be_japanese() {
        for name in [
            "営業部",
            "勤怠管理",
            "東京 (本社)",
            "Sales & Marketing",
            "経理・財務",
            "ｴｲｷﾞｮｳ",
            "staff",
            "r-and-d_2.0",
        ] {
            assert_eq!(validate_label("group", name).as_deref().ok(), Some(name));
        }
        // The same name typed decomposed (が as か + combining mark) is
        // stored composed, so it is one name.
        assert_eq!(
            validate_label("group", "\u{304b}\u{3099}\u{304f}").unwrap(),
            "\u{304c}\u{304f}"
        );
        assert_eq!(validate_label("group", "  営業部 ").unwrap(), "営業部");
    }

    #[test]
    fn names_that_would_break_an_import_or_a_page_are_refused() {
        for name in [
            "",
            "sales;staff",
            "a,b",
            "<script>",
            "two  spaces",
            "tab\there",
            "quote\"",
            &"営".repeat(65),
        ] {
            let error = validate_label("group", name).unwrap_err().to_string();
            assert!(error.contains("any script"), "{name:?}: {error}");
        }
        assert!(validate_label("app", &"営".repeat(64)).is_ok());
    }

    #[test]
    fn device_text_loses_control_characters_and_stays_short() {
        assert_eq!(printable("ok\u{1b}[31m red\n", 100), "ok[31m red");
        assert_eq!(printable("日本語", 7), "日本");
    }
}
