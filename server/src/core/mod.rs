//! The operations: enrollment, devices, the command outbox, policies and
//! compliance, admins and the audit log, users, apps and sign-in, one file
//! per concern, all on `Core`. This file holds `Core` itself, its errors and
//! settings, and the checks every concern shares (labels, emails, printable
//! text). It imports no transport or storage crate; front-ends in `api`
//! decode requests, call these operations with the current time, and
//! encode the results.

mod admins;
pub mod apps;
mod commands;
mod devices;
mod enrollment;
mod policies;

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

use crate::domain::audit::{AdminRequest, AuditAction, AuditEntry, AuditOutcome};

use crate::domain::device::{Device, Posture};

use crate::domain::ids::DeviceId;

use crate::domain::policy::Compliance;

use crate::push::Push;

use crate::push::port::Ports;

use crate::store::{Store, StoreError};

use auth::{AuthenticatedAdmin, DeviceAuthError, Permission};

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
}

/// A device as an admin sees it: with its policy and compliance now.
#[derive(Debug, Clone)]
pub struct DeviceView {
    pub device: Device,
    pub policy: Option<String>,
    pub compliance: Compliance,
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

pub struct Core {
    store: Store,
    unauthenticated_denials: flood::FloodGate,
    passwords: passwords::Passwords,
    enrollments: tokio::sync::mpsc::Sender<writer::PendingEnrollment>,
    ca: Arc<CertificateAuthority>,
    push: Push,
    /// Every channel that carries commands to devices, by name.
    ports: Ports,
    settings: CoreSettings,
    signing_key_cache: std::sync::Mutex<Option<signing_keys::CachedSigningKey>>,
    /// Wakes browsers waiting on a device-auth transaction in this process.
    device_auth_waiters: sso::Waiters,
    /// Sends emailed sign-in codes; `None` without `[smtp]`.
    mail: Option<crate::mail::Mailer>,
}

impl Core {
    /// The core and its enrollment writer, which the caller must run.
    pub fn new(
        store: Store,
        ca: Arc<CertificateAuthority>,
        push: Push,
        ports: Ports,
        mail: Option<crate::mail::Mailer>,
        settings: CoreSettings,
    ) -> (Self, EnrollmentWriter) {
        let (enrollments, writer) = writer::channel(store.clone());
        let core = Core {
            store,
            unauthenticated_denials: flood::FloodGate::default(),
            passwords: passwords::Passwords::default(),
            enrollments,
            ca,
            push,
            ports,
            settings,
            signing_key_cache: std::sync::Mutex::new(None),
            device_auth_waiters: sso::Waiters::default(),
            mail,
        };
        (core, writer)
    }

    pub fn passwords(&self) -> &passwords::Passwords {
        &self.passwords
    }

    async fn audit(&self, entry: AuditEntry) -> Result<(), CoreError> {
        self.store.audit(&entry).await?;
        Ok(())
    }

    /// Checks `permission`; a refusal is audited and returned.
    pub(crate) async fn authorize(
        &self,
        admin: &AuthenticatedAdmin,
        permission: Permission,
        request: AdminRequest,
        target: &str,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        if admin.may(permission) {
            return Ok(());
        }
        self.audit(AuditEntry {
            at: now,
            actor: admin.actor(),
            action: AuditAction::PermissionDenied(request),
            target: target.to_owned(),
            outcome: AuditOutcome::Denied,
            detail: format!("role {} lacks {permission:?}", admin.role().as_str()),
        })
        .await?;
        Err(CoreError::PermissionDenied {
            role: admin.role().as_str(),
            action: request,
        })
    }
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
