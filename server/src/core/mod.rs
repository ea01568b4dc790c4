//! The domain: enrollment, devices, the command outbox, policies and
//! compliance, admins and the audit log. It imports no transport or storage
//! crate; front-ends in `api` decode requests, call these operations with the
//! current time, and encode the results.

pub mod apps;
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
use tracing::{info, warn};

use crate::ca::CertificateAuthority;
use crate::domain::admin::{Admin, EnrollmentToken, Role, TokenStatus};
use crate::domain::audit::{
    Actor, AdminRequest, AuditAction, AuditEntry, AuditEvent, AuditOutcome,
};
use crate::domain::command::{Command, CommandKind, CommandStatus};
use crate::domain::device::{Channel, Device, DeviceFacts, DeviceState, Posture};
use crate::domain::ids::{AdminId, CommandId, DeviceId, TokenId};
use crate::domain::policy::{self, Compliance, StoredPolicy};
use crate::push::Push;
use crate::push::port::Ports;
use crate::store::{NewCertificate, Store, StoreError, Tx};
use auth::{
    AuthenticatedAdmin, AuthenticatedDevice, DeviceAuthError, DeviceChannel, DeviceRefusal,
    Permission,
};

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

const MAX_FACT_LEN: usize = 256;
const MAX_MESSAGE_LEN: usize = 1024;

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

    // ---- admins ----

    pub async fn authenticate_admin(
        &self,
        token: &str,
    ) -> Result<Option<AuthenticatedAdmin>, CoreError> {
        Ok(auth::authenticate_admin(&self.store, token).await?)
    }

    /// Creates the first owner when there is no admin yet; returns its token.
    pub async fn bootstrap_owner(
        &self,
        email: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, CoreError> {
        if self.store.count_admins().await? > 0 {
            return Ok(None);
        }
        let (token, hash) = auth::new_secret(auth::ADMIN_TOKEN_PREFIX)?;
        let admin = Admin {
            id: AdminId::generate(),
            email: email.to_owned(),
            role: Role::Owner,
            created_at: now,
        };
        let tx = self.store.begin().await?;
        tx.insert_admin(&admin, &hash).await?;
        tx.audit(&AuditEntry {
            at: now,
            actor: Actor::System,
            action: AuditAction::AdminBootstrap,
            target: email.to_owned(),
            outcome: AuditOutcome::Ok,
            detail: "first owner created at first start".into(),
        })
        .await?;
        tx.commit().await?;
        Ok(Some(token))
    }

    pub async fn add_admin(
        &self,
        caller: &AuthenticatedAdmin,
        email: &str,
        role: &str,
        now: DateTime<Utc>,
    ) -> Result<(Admin, String), CoreError> {
        self.authorize(
            caller,
            Permission::ManageAdmins,
            AdminRequest::AddAdmins,
            email,
            now,
        )
        .await?;
        let role = Role::parse(role).ok_or_else(|| {
            CoreError::InvalidArgument(format!(
                "unknown role {role:?}; use owner, admin, helpdesk or auditor"
            ))
        })?;
        if role == Role::Owner && caller.role() != Role::Owner {
            return Err(CoreError::PermissionDenied {
                role: caller.role().as_str(),
                action: AdminRequest::AddOwners,
            });
        }
        let email = validate_email(email)?;
        if self.store.admin_by_email(&email).await?.is_some() {
            return Err(CoreError::AlreadyExists(format!(
                "an admin with email {email} already exists"
            )));
        }
        let (token, hash) = auth::new_secret(auth::ADMIN_TOKEN_PREFIX)?;
        let admin = Admin {
            id: AdminId::generate(),
            email: email.clone(),
            role,
            created_at: now,
        };
        let tx = self.store.begin().await?;
        tx.insert_admin(&admin, &hash).await?;
        tx.audit(&AuditEntry {
            at: now,
            actor: caller.actor(),
            action: AuditAction::AdminAdd,
            target: email,
            outcome: AuditOutcome::Ok,
            detail: format!("role {}", role.as_str()),
        })
        .await?;
        tx.commit().await?;
        Ok((admin, token))
    }

    pub async fn list_admins(
        &self,
        caller: &AuthenticatedAdmin,
        now: DateTime<Utc>,
    ) -> Result<Vec<Admin>, CoreError> {
        self.authorize(
            caller,
            Permission::ReadAdmins,
            AdminRequest::ListAdmins,
            "",
            now,
        )
        .await?;
        Ok(self.store.list_admins().await?)
    }

    pub async fn list_audit(
        &self,
        caller: &AuthenticatedAdmin,
        since: DateTime<Utc>,
        limit: u64,
        now: DateTime<Utc>,
    ) -> Result<Vec<AuditEvent>, CoreError> {
        self.authorize(
            caller,
            Permission::ReadAudit,
            AdminRequest::ReadAuditLog,
            "",
            now,
        )
        .await?;
        Ok(self.store.list_audit(since, limit).await?)
    }

    // ---- enrollment tokens ----

    pub async fn create_enrollment_token(
        &self,
        caller: &AuthenticatedAdmin,
        user: Option<String>,
        group: Option<String>,
        expires_in: Duration,
        uses: u32,
        now: DateTime<Utc>,
    ) -> Result<(EnrollmentToken, String), CoreError> {
        self.authorize(
            caller,
            Permission::ManageTokens,
            AdminRequest::CreateEnrollmentTokens,
            "",
            now,
        )
        .await?;
        let lifetime = expires_in.to_std().unwrap_or(std::time::Duration::ZERO);
        latchkey_proto::limits::check_token_lifetime(lifetime)
            .and_then(|()| latchkey_proto::limits::check_token_uses(uses))
            .map_err(|e| CoreError::InvalidArgument(e.to_string()))?;
        let user = user.map(|u| validate_email(&u)).transpose()?;
        let group = group.map(|g| validate_label("group", &g)).transpose()?;
        let (secret, hash) = auth::new_secret(auth::ENROLLMENT_TOKEN_PREFIX)?;
        let token = EnrollmentToken {
            id: TokenId::generate(),
            user,
            group,
            expires_at: now + expires_in,
            uses_allowed: uses,
            uses_count: 0,
            revoked_at: None,
            created_by: caller.admin().email.clone(),
            created_at: now,
        };
        let tx = self.store.begin().await?;
        tx.insert_enrollment_token(&token, &hash).await?;
        tx.audit(&AuditEntry {
            at: now,
            actor: caller.actor(),
            action: AuditAction::TokenCreate,
            target: token.id.to_string(),
            outcome: AuditOutcome::Ok,
            detail: format!(
                "uses {uses}, expires {}, user {}, group {}",
                token.expires_at.to_rfc3339(),
                token.user.as_deref().unwrap_or("-"),
                token.group.as_deref().unwrap_or("-")
            ),
        })
        .await?;
        tx.commit().await?;
        Ok((token, secret))
    }

    pub async fn list_enrollment_tokens(
        &self,
        caller: &AuthenticatedAdmin,
        now: DateTime<Utc>,
    ) -> Result<Vec<EnrollmentToken>, CoreError> {
        self.authorize(
            caller,
            Permission::ReadTokens,
            AdminRequest::ListEnrollmentTokens,
            "",
            now,
        )
        .await?;
        Ok(self.store.list_enrollment_tokens().await?)
    }

    pub async fn revoke_enrollment_token(
        &self,
        caller: &AuthenticatedAdmin,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<EnrollmentToken, CoreError> {
        self.authorize(
            caller,
            Permission::ManageTokens,
            AdminRequest::RevokeEnrollmentTokens,
            id,
            now,
        )
        .await?;
        let not_found = || CoreError::NotFound(format!("enrollment token {id}"));
        let token_id = TokenId::parse(id).ok_or_else(not_found)?;
        let tx = self.store.begin().await?;
        if !tx.revoke_enrollment_token(&token_id, now).await? {
            return match tx.enrollment_token(&token_id).await? {
                Some(_) => Err(CoreError::FailedPrecondition(format!(
                    "enrollment token {id} is already revoked"
                ))),
                None => Err(not_found()),
            };
        }
        tx.audit(&AuditEntry {
            at: now,
            actor: caller.actor(),
            action: AuditAction::TokenRevoke,
            target: id.to_owned(),
            outcome: AuditOutcome::Ok,
            detail: String::new(),
        })
        .await?;
        let token = tx
            .enrollment_token(&token_id)
            .await?
            .ok_or_else(not_found)?;
        tx.commit().await?;
        Ok(token)
    }

    // ---- enrollment ----

    /// Why a token enrolls no device now, by the one rule
    /// ([`EnrollmentToken::status`]) the admin API also reports.
    fn token_refusal(token: &EnrollmentToken, now: DateTime<Utc>) -> Option<EnrollError> {
        match token.status(now) {
            TokenStatus::Usable => None,
            TokenStatus::Revoked => Some(EnrollError::TokenRevoked),
            TokenStatus::Expired => Some(EnrollError::TokenExpired),
            TokenStatus::UsedUp => Some(EnrollError::TokenUsedUp),
        }
    }

    /// Exchanges an enrollment token and a CSR for a device certificate.
    /// The token is checked before anything is signed, and consumed
    /// atomically with the device's creation.
    pub async fn enroll(
        &self,
        token_secret: &str,
        csr_der: &[u8],
        facts: DeviceFacts,
        now: DateTime<Utc>,
    ) -> Result<Enrolled, CoreError> {
        let result = self.enroll_inner(token_secret, csr_der, facts, now).await;
        if let Err(CoreError::Enroll(refusal)) = &result {
            let entry = AuditEntry {
                at: now,
                actor: Actor::EnrollingDevice,
                action: AuditAction::DeviceEnroll,
                target: String::new(),
                outcome: AuditOutcome::Denied,
                detail: refusal.to_string(),
            };
            self.audit_unauthenticated(entry, now).await?;
        }
        result
    }

    /// Records what an authenticated device was refused (it broke a
    /// channel's rules); the entry names the device as its actor.
    pub async fn audit_device(
        &self,
        device: &AuthenticatedDevice,
        entry: AuditEntry,
    ) -> Result<(), CoreError> {
        debug_assert_eq!(entry.actor, device.actor());
        self.audit(entry).await
    }

    /// Records a refusal of a caller nobody authenticated, within the
    /// flood gate's bound.
    pub async fn audit_unauthenticated(
        &self,
        entry: AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        let rows = self.unauthenticated_denials.admit(entry, now);
        self.store.audit_many(&rows).await?;
        Ok(())
    }

    async fn enroll_inner(
        &self,
        token_secret: &str,
        csr_der: &[u8],
        facts: DeviceFacts,
        now: DateTime<Utc>,
    ) -> Result<Enrolled, CoreError> {
        let facts = validate_facts(facts)?;
        if !token_secret.starts_with(auth::ENROLLMENT_TOKEN_PREFIX) {
            return Err(EnrollError::TokenUnknown.into());
        }
        let csr = verify_csr(csr_der)?;
        // The token is checked before anything is signed, and consumed in
        // the transaction that creates the device (a token's last use goes
        // to exactly one device).
        let secret_hash = auth::secret_hash(token_secret);
        let token = self
            .store
            .enrollment_token_by_hash(&secret_hash)
            .await?
            .ok_or(EnrollError::TokenUnknown)?;
        if let Some(refusal) = Self::token_refusal(&token, now) {
            return Err(refusal.into());
        }
        let device_id = DeviceId::generate();
        let issued = self.ca.issue_device(
            &csr,
            &device_id,
            now,
            self.settings.device_certificate_validity,
        )?;
        let device = Device {
            id: device_id.clone(),
            hostname: facts.hostname,
            platform: facts.platform,
            os_version: facts.os_version,
            machine_id: facts.machine_id,
            serial: facts.serial,
            model: facts.model,
            state: DeviceState::Active,
            user: token.user.clone(),
            group: token.group.clone(),
            enrolled_at: now,
            last_seen: Some(now),
            posture: None,
            posture_at: None,
            certificate_expires_at: Some(issued.not_after),
            channel: Channel::agent(),
        };
        let audit = AuditEntry {
            at: now,
            actor: Actor::Device(device_id.clone()),
            action: AuditAction::DeviceEnroll,
            target: device_id.to_string(),
            outcome: AuditOutcome::Ok,
            detail: format!(
                "token {}, hostname {}, platform {}, user {}",
                token.id,
                device.hostname,
                device.platform,
                device.user.as_deref().unwrap_or("-")
            ),
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        let pending = writer::PendingEnrollment {
            token: token.id.clone(),
            device: device.clone(),
            certificate: new_certificate(&issued),
            audit,
            now,
            reply,
        };
        let stopped =
            || CoreError::Internal(InternalError::Broken("the enrollment writer has stopped"));
        self.enrollments
            .send(pending)
            .await
            .map_err(|_| stopped())?;
        if !answer.await.map_err(|_| stopped())?? {
            // Other enrollments took the token's last uses meanwhile.
            return Err(EnrollError::TokenUsedUp.into());
        }
        info!(device = %device_id, hostname = %device.hostname, "device enrolled");
        Ok(Enrolled {
            device_id,
            certificate_chain_pem: self.ca.chain_pem(&issued.pem),
            ca_pem: self.ca.root_pem().to_owned(),
            mqtt_url: self.settings.mqtt_url.clone(),
        })
    }

    pub async fn authenticate_device(
        &self,
        leaf_der: Option<&[u8]>,
        channel: DeviceChannel,
        now: DateTime<Utc>,
    ) -> Result<AuthenticatedDevice, CoreError> {
        Ok(auth::authenticate_device_certificate(&self.store, leaf_der, channel, now).await?)
    }

    /// Issues a new certificate for the device's key; the old one stops working.
    pub async fn renew(
        &self,
        device: &AuthenticatedDevice,
        csr_der: &[u8],
        now: DateTime<Utc>,
    ) -> Result<String, CoreError> {
        let csr = verify_csr(csr_der)?;
        let Some(old_serial) = device.certificate_serial() else {
            return Err(CoreError::FailedPrecondition(
                "renewal needs the device certificate".into(),
            ));
        };
        let current = self.store.certificate(old_serial).await?;
        if current.is_none_or(|c| c.spki_sha256_hex != hex::encode(csr.spki_sha256())) {
            return Err(CoreError::InvalidArgument(
                "the CSR must carry the key of the certificate used for this call".into(),
            ));
        }
        let issued = self.ca.issue_device(
            &csr,
            device.id(),
            now,
            self.settings.device_certificate_validity,
        )?;
        let tx = self.store.begin().await?;
        // The old certificate is revoked (it lands in the CRL) in the same
        // transaction; if a retire or another renewal revoked it first, this
        // renewal loses.
        let still_allowed = tx
            .device_state(device.id())
            .await?
            .is_some_and(|s| matches!(s, DeviceState::Active | DeviceState::Locked));
        if !still_allowed || !tx.revoke_certificate(device.id(), old_serial, now).await? {
            return Err(DeviceAuthError::Refused(DeviceRefusal::Revoked).into());
        }
        tx.insert_certificate(device.id(), &new_certificate(&issued))
            .await?;
        tx.audit(&AuditEntry {
            at: now,
            actor: device.actor(),
            action: AuditAction::DeviceRenew,
            target: device.id().to_string(),
            outcome: AuditOutcome::Ok,
            detail: format!(
                "serial {} replaces {old_serial}, valid until {}",
                issued.serial_hex,
                issued.not_after.to_rfc3339()
            ),
        })
        .await?;
        tx.commit().await?;
        self.publish_crl(now).await;
        Ok(self.ca.chain_pem(&issued.pem))
    }

    // ---- devices ----

    fn view(device: Device, policies: &[StoredPolicy], now: DateTime<Utc>) -> DeviceView {
        let effective = policy::effective_policy(&device, policies)
            .map(|p| (p.name.as_str(), p.document.as_str()));
        Self::view_under(device, effective, now)
    }

    /// The device's compliance with the policy in force for it (`name`,
    /// `document`), or with none.
    pub(crate) fn view_under(
        device: Device,
        policy: Option<(&str, &str)>,
        now: DateTime<Utc>,
    ) -> DeviceView {
        let rules = policy::rules_of(policy.map(|(_, document)| document));
        let compliance = policy::evaluate(&device, &rules, now);
        DeviceView {
            policy: policy.map(|(name, _)| name.to_owned()),
            device,
            compliance,
        }
    }

    async fn device_view(
        &self,
        id: &DeviceId,
        now: DateTime<Utc>,
    ) -> Result<DeviceView, CoreError> {
        let device = self
            .store
            .device(id)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("device {id}")))?;
        let policies = self.store.all_policies().await?;
        Ok(Self::view(device, &policies, now))
    }

    /// The device's compliance now, for checks outside the admin API.
    pub async fn compliance_of(
        &self,
        id: &DeviceId,
        now: DateTime<Utc>,
    ) -> Result<DeviceView, CoreError> {
        self.device_view(id, now).await
    }

    pub(crate) fn parse_device_id(id: &str) -> Result<DeviceId, CoreError> {
        DeviceId::parse(id).ok_or_else(|| CoreError::NotFound(format!("device {id}")))
    }

    pub async fn list_devices(
        &self,
        caller: &AuthenticatedAdmin,
        now: DateTime<Utc>,
    ) -> Result<Vec<DeviceView>, CoreError> {
        self.authorize(
            caller,
            Permission::ReadDevices,
            AdminRequest::ListDevices,
            "",
            now,
        )
        .await?;
        let policies = self.store.all_policies().await?;
        Ok(self
            .store
            .list_devices()
            .await?
            .into_iter()
            .map(|d| Self::view(d, &policies, now))
            .collect())
    }

    pub async fn get_device(
        &self,
        caller: &AuthenticatedAdmin,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<DeviceView, CoreError> {
        self.authorize(
            caller,
            Permission::ReadDevices,
            AdminRequest::ShowDevices,
            id,
            now,
        )
        .await?;
        self.device_view(&Self::parse_device_id(id)?, now).await
    }

    pub async fn list_commands(
        &self,
        caller: &AuthenticatedAdmin,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Command>, CoreError> {
        self.authorize(
            caller,
            Permission::ReadDevices,
            AdminRequest::ListCommands,
            id,
            now,
        )
        .await?;
        let device_id = Self::parse_device_id(id)?;
        if self.store.device(&device_id).await?.is_none() {
            return Err(CoreError::NotFound(format!("device {id}")));
        }
        Ok(self.store.list_commands(&device_id).await?)
    }

    /// Queues a command (and the state change that goes with it) in one
    /// transaction, then hands it to the broker. The state change is in
    /// force before delivery: a lock cuts the device off at once.
    async fn queue_command(
        &self,
        caller: &AuthenticatedAdmin,
        id: &str,
        kind: CommandKind,
        message: String,
        new_state: DeviceState,
        now: DateTime<Utc>,
    ) -> Result<(DeviceView, Command), CoreError> {
        let device_id = Self::parse_device_id(id)?;
        let device = self
            .store
            .device(&device_id)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("device {id}")))?;
        if device.state.is_final() || device.state == DeviceState::WipePending {
            return Err(CoreError::FailedPrecondition(format!(
                "device {id} is {}; it takes no more commands",
                device.state.as_str()
            )));
        }
        let command = Command {
            id: CommandId::generate(),
            device_id: device_id.clone(),
            kind,
            message,
            status: CommandStatus::Pending,
            result: None,
            created_at: now,
            sent_at: None,
            acked_at: None,
            created_by: caller.admin().email.clone(),
        };
        let tx = self.store.begin().await?;
        tx.insert_command(&command).await?;
        let open_states = [DeviceState::Active, DeviceState::Locked];
        if !tx
            .change_device_state(&device_id, &open_states, new_state)
            .await?
        {
            return Err(CoreError::FailedPrecondition(format!(
                "device {id} was retired or wiped meanwhile; it takes no more commands"
            )));
        }
        if new_state != DeviceState::Active {
            // Locking or wiping cuts off SSO from the device in the same
            // transaction: its sessions and grants end now.
            tx.end_device_sso(&device_id, &format!("device {}", new_state.as_str()), now)
                .await?;
        }
        tx.audit(&AuditEntry {
            at: now,
            actor: caller.actor(),
            action: match kind {
                CommandKind::Lock => AuditAction::DeviceLock,
                CommandKind::Unlock => AuditAction::DeviceUnlock,
                CommandKind::Wipe => AuditAction::DeviceWipe,
            },
            target: device_id.to_string(),
            outcome: AuditOutcome::Ok,
            detail: format!(
                "command {}; state {} -> {}",
                command.id,
                device.state.as_str(),
                new_state.as_str()
            ),
        })
        .await?;
        tx.commit().await?;
        let mut command = command;
        if self
            .offer_work(
                &device.channel,
                &device_id,
                std::slice::from_ref(&command),
                now,
            )
            .await
            == 1
        {
            command.status = CommandStatus::Sent;
            command.sent_at = Some(now);
        }
        let policies = self.store.all_policies().await?;
        let device = Device {
            state: new_state,
            ..device
        };
        Ok((Self::view(device, &policies, now), command))
    }

    /// Tells the device's channel that these open commands (already in the
    /// outbox) wait for it, and records the ones the channel carried as
    /// sent; returns how many. A channel that failed leaves the commands
    /// pending for redelivery; that is logged, not returned, because the
    /// commands are already safely in the outbox.
    async fn offer_work(
        &self,
        channel: &Channel,
        device: &DeviceId,
        commands: &[Command],
        now: DateTime<Utc>,
    ) -> usize {
        if commands.is_empty() {
            return 0;
        }
        let handover = match self.ports.get(channel) {
            Ok(port) => port.has_work(device, commands).await,
            Err(e) => Err(e),
        };
        let delivered = match handover {
            Ok(handover) => handover.delivered,
            Err(e) => {
                warn!(%device, error = %e, "commands stay queued");
                return 0;
            }
        };
        let woken: Vec<CommandId> = commands
            .iter()
            .map(|c| c.id.clone())
            .filter(|id| !delivered.contains(id))
            .collect();
        if let Err(e) = self.store.mark_commands_offered(&woken, now).await {
            warn!(error = %e, "could not record the wake-up; the device will be woken again");
        }
        if let Err(e) = self.store.mark_commands_sent(&delivered, now).await {
            warn!(error = %e, "could not record sent commands; they will be resent");
        }
        delivered.len()
    }

    /// The next command waiting for `device`, oldest first, for channels
    /// whose devices fetch their work when they check in: it is recorded
    /// as sent, and stays open until the device acknowledges it.
    pub async fn next_command(
        &self,
        device: &AuthenticatedDevice,
        now: DateTime<Utc>,
    ) -> Result<Option<Command>, CoreError> {
        let Some(mut command) = self
            .store
            .open_commands(device.id())
            .await?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        self.store
            .mark_commands_sent(std::slice::from_ref(&command.id), now)
            .await?;
        command.status = CommandStatus::Sent;
        command.sent_at = Some(now);
        Ok(Some(command))
    }

    pub async fn lock_device(
        &self,
        caller: &AuthenticatedAdmin,
        id: &str,
        message: &str,
        now: DateTime<Utc>,
    ) -> Result<(DeviceView, Command), CoreError> {
        self.authorize(
            caller,
            Permission::LockDevices,
            AdminRequest::LockDevices,
            id,
            now,
        )
        .await?;
        if message.len() > MAX_MESSAGE_LEN {
            return Err(CoreError::InvalidArgument(format!(
                "the lock message is longer than {MAX_MESSAGE_LEN} bytes"
            )));
        }
        self.queue_command(
            caller,
            id,
            CommandKind::Lock,
            message.to_owned(),
            DeviceState::Locked,
            now,
        )
        .await
    }

    pub async fn unlock_device(
        &self,
        caller: &AuthenticatedAdmin,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<(DeviceView, Command), CoreError> {
        self.authorize(
            caller,
            Permission::LockDevices,
            AdminRequest::UnlockDevices,
            id,
            now,
        )
        .await?;
        self.queue_command(
            caller,
            id,
            CommandKind::Unlock,
            String::new(),
            DeviceState::Active,
            now,
        )
        .await
    }

    /// Sends a wipe; the device stays reachable over MQTT only until it
    /// acknowledges, then its certificates are revoked.
    pub async fn wipe_device(
        &self,
        caller: &AuthenticatedAdmin,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<(DeviceView, Command), CoreError> {
        self.authorize(
            caller,
            Permission::ManageDevices,
            AdminRequest::WipeDevices,
            id,
            now,
        )
        .await?;
        self.queue_command(
            caller,
            id,
            CommandKind::Wipe,
            String::new(),
            DeviceState::WipePending,
            now,
        )
        .await
    }

    /// Ends a device's membership: certificates revoked, sessions closed,
    /// open commands failed.
    pub async fn retire_device(
        &self,
        caller: &AuthenticatedAdmin,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<DeviceView, CoreError> {
        self.authorize(
            caller,
            Permission::ManageDevices,
            AdminRequest::RetireDevices,
            id,
            now,
        )
        .await?;
        let device_id = Self::parse_device_id(id)?;
        let device = self
            .store
            .device(&device_id)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("device {id}")))?;
        if device.state.is_final() {
            return Err(CoreError::FailedPrecondition(format!(
                "device {id} is already {}",
                device.state.as_str()
            )));
        }
        let tx = self.store.begin().await?;
        Self::end_device_in(
            &tx,
            &device_id,
            DeviceState::Retired,
            caller.actor(),
            AuditAction::DeviceRetire,
            now,
        )
        .await?;
        tx.commit().await?;
        self.after_device_ended(&device_id, now).await;
        self.device_view(&device_id, now).await
    }

    /// Ends a device inside `tx`: final state, certificates revoked, open
    /// commands failed, audited. The caller commits, then calls
    /// [`Core::after_device_ended`].
    async fn end_device_in(
        tx: &Tx,
        device_id: &DeviceId,
        state: DeviceState,
        actor: Actor,
        action: AuditAction,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        let live = [
            DeviceState::Active,
            DeviceState::Locked,
            DeviceState::WipePending,
        ];
        if !tx.change_device_state(device_id, &live, state).await? {
            return Err(CoreError::FailedPrecondition(format!(
                "device {device_id} is already retired or wiped"
            )));
        }
        let revoked = tx.revoke_device_certificates(device_id, now).await?;
        tx.fail_open_commands(device_id, &format!("device {}", state.as_str()), now)
            .await?;
        tx.end_device_sso(device_id, &format!("device {}", state.as_str()), now)
            .await?;
        tx.audit(&AuditEntry {
            at: now,
            actor,
            action,
            target: device_id.to_string(),
            outcome: AuditOutcome::Ok,
            detail: format!("state {}; {revoked} certificate(s) revoked", state.as_str()),
        })
        .await?;
        Ok(())
    }

    /// Closes the device's sessions and republishes the CRL.
    async fn after_device_ended(&self, device_id: &DeviceId, now: DateTime<Utc>) {
        self.push.disconnect_device(device_id);
        self.publish_crl(now).await;
    }

    /// Rewrites the CRL for outside consumers (external broker, proxies).
    pub async fn publish_crl(&self, now: DateTime<Utc>) {
        let result = async {
            let revoked = self.store.revoked_certificates(now).await?;
            self.ca.write_crl(&revoked, now).map_err(CoreError::from)
        }
        .await;
        if let Err(e) = result {
            warn!(error = %e, "could not write the CRL");
        }
    }

    // ---- policies ----

    pub async fn set_policy(
        &self,
        caller: &AuthenticatedAdmin,
        name: &str,
        document: &str,
        now: DateTime<Utc>,
    ) -> Result<StoredPolicy, CoreError> {
        self.authorize(
            caller,
            Permission::ManagePolicies,
            AdminRequest::ChangePolicies,
            name,
            now,
        )
        .await?;
        let name = validate_name("policy", name)?;
        policy::parse_policy(document).map_err(|e| CoreError::InvalidArgument(e.to_string()))?;
        let tx = self.store.begin().await?;
        let version = tx.upsert_policy(&name, document, now).await?;
        tx.audit(&AuditEntry {
            at: now,
            actor: caller.actor(),
            action: AuditAction::PolicySet,
            target: name.clone(),
            outcome: AuditOutcome::Ok,
            detail: format!("version {version}"),
        })
        .await?;
        tx.commit().await?;
        self.push_policy_to_affected(&name, now).await?;
        self.store
            .policy(&name)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("policy {name}")))
    }

    pub async fn assign_policy(
        &self,
        caller: &AuthenticatedAdmin,
        name: &str,
        group: Option<&str>,
        device: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<StoredPolicy, CoreError> {
        self.authorize(
            caller,
            Permission::ManagePolicies,
            AdminRequest::AssignPolicies,
            name,
            now,
        )
        .await?;
        if self.store.policy(name).await?.is_none() {
            return Err(CoreError::NotFound(format!("policy {name}")));
        }
        let (kind, target) = match (group, device) {
            (Some(g), None) => ("group", validate_label("group", g)?),
            (None, Some(d)) => {
                let id = Self::parse_device_id(d)?;
                if self.store.device(&id).await?.is_none() {
                    return Err(CoreError::NotFound(format!("device {d}")));
                }
                ("device", id.to_string())
            }
            _ => {
                return Err(CoreError::InvalidArgument(
                    "assign a policy to exactly one group or one device".into(),
                ));
            }
        };
        let tx = self.store.begin().await?;
        tx.assign_policy(name, kind, &target).await?;
        tx.audit(&AuditEntry {
            at: now,
            actor: caller.actor(),
            action: AuditAction::PolicyAssign,
            target: name.to_owned(),
            outcome: AuditOutcome::Ok,
            detail: format!("{kind} {target}"),
        })
        .await?;
        tx.commit().await?;
        self.push_policy_to_affected(name, now).await?;
        self.store
            .policy(name)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("policy {name}")))
    }

    pub async fn get_policy(
        &self,
        caller: &AuthenticatedAdmin,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<StoredPolicy, CoreError> {
        self.authorize(
            caller,
            Permission::ReadPolicies,
            AdminRequest::ReadPolicies,
            name,
            now,
        )
        .await?;
        self.store
            .policy(name)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("policy {name}")))
    }

    async fn push_policy_to_affected(
        &self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        let policies = self.store.all_policies().await?;
        for device in self.store.list_devices().await? {
            if device.state.is_final() {
                continue;
            }
            let effective = policy::effective_policy(&device, &policies);
            if effective.is_some_and(|p| p.name == name) {
                self.send_policy(&device.id, effective, now);
            }
        }
        Ok(())
    }

    fn send_policy(
        &self,
        device_id: &DeviceId,
        stored: Option<&StoredPolicy>,
        _now: DateTime<Utc>,
    ) {
        let document = stored
            .and_then(|p| policy::parse_policy(&p.document).ok())
            .unwrap_or_default();
        let name = stored.map(|p| p.name.as_str()).unwrap_or("");
        let version = stored.map_or(0, |p| p.version);
        if let Err(e) = self
            .push
            .send_policy(device_id, name, version, document.posture_interval)
        {
            warn!(device = %device_id, error = %e, "policy not pushed; the agent gets it at its next hello");
        }
    }

    // ---- agent messages ----

    pub async fn authenticate_broker_device(
        &self,
        device_id: &str,
    ) -> Result<AuthenticatedDevice, CoreError> {
        Ok(auth::authenticate_broker_device(&self.store, device_id).await?)
    }

    pub async fn handle_agent_event(
        &self,
        device: &AuthenticatedDevice,
        event: AgentEvent,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        match event {
            AgentEvent::Hello { policy_version } => {
                self.store.touch_device(device.id(), now).await?;
                let open = self.store.open_commands(device.id()).await?;
                let policies = self.store.all_policies().await?;
                if let Some(current) = self.store.device(device.id()).await? {
                    self.offer_work(&current.channel, device.id(), &open, now)
                        .await;
                    let effective = policy::effective_policy(&current, &policies);
                    if effective.map_or(0, |p| p.version) != policy_version || effective.is_none() {
                        self.send_policy(device.id(), effective, now);
                    }
                }
                Ok(())
            }
            AgentEvent::Posture(posture) => {
                // The verdict is written with the posture it was reached on.
                let Some((mut reported, policy)) =
                    self.store.device_with_policy(device.id()).await?
                else {
                    return Err(CoreError::NotFound(format!("device {}", device.id())));
                };
                reported.posture = Some(posture.clone());
                reported.posture_at = Some(now);
                let document = policy.as_ref().map_or("", |p| p.document.as_str());
                let verdict = policy::verdict(&reported, document);
                self.store
                    .set_posture(device.id(), &posture, &verdict, now)
                    .await?;
                Ok(())
            }
            AgentEvent::Ack {
                command_id,
                success,
                result,
            } => {
                self.acknowledge_command(device, &command_id, success, &result, now)
                    .await
            }
        }
    }

    /// Records a device's answer to a command, once: a repeated
    /// acknowledgement (channels deliver at least once) changes nothing.
    /// A successful wipe ends the device.
    pub async fn acknowledge_command(
        &self,
        device: &AuthenticatedDevice,
        command_id: &str,
        success: bool,
        result: &str,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        let Some(command_id) = CommandId::parse(command_id) else {
            return Err(CoreError::InvalidArgument(format!(
                "acknowledgement for unknown command {command_id:?}"
            )));
        };
        let status = if success {
            CommandStatus::Acknowledged
        } else {
            CommandStatus::Failed
        };
        let result = printable(result, MAX_MESSAGE_LEN);
        let tx = self.store.begin().await?;
        let changed = tx
            .acknowledge_command(&command_id, device.id(), status, &result, now)
            .await?;
        if !changed {
            // A repeated acknowledgement (at-least-once delivery).
            return Ok(());
        }
        tx.touch_device(device.id(), now).await?;
        tx.audit(&AuditEntry {
            at: now,
            actor: device.actor(),
            action: AuditAction::CommandAcknowledge,
            target: command_id.to_string(),
            outcome: AuditOutcome::Ok,
            detail: format!("{}: {result}", status.as_str()),
        })
        .await?;
        let command = tx.command(&command_id).await?;
        let wiped = command.is_some_and(|c| c.kind == CommandKind::Wipe) && success;
        if wiped {
            Self::end_device_in(
                &tx,
                device.id(),
                DeviceState::Wiped,
                device.actor(),
                AuditAction::DeviceWiped,
                now,
            )
            .await?;
        }
        tx.commit().await?;
        if wiped {
            self.after_device_ended(device.id(), now).await;
        }
        Ok(())
    }

    /// Offers again the open commands last sent before `now - after` (or
    /// never sent), each device's through its channel, oldest first.
    pub async fn redeliver(&self, after: Duration, now: DateTime<Utc>) -> Result<usize, CoreError> {
        let due = self.store.commands_to_redeliver(now - after, 1000).await?;
        let mut by_device: Vec<(DeviceId, Vec<Command>)> = Vec::new();
        for command in &due {
            match by_device.iter_mut().find(|(d, _)| *d == command.device_id) {
                Some((_, commands)) => commands.push(command.clone()),
                None => by_device.push((command.device_id.clone(), vec![command.clone()])),
            }
        }
        let ids: Vec<DeviceId> = by_device.iter().map(|(d, _)| d.clone()).collect();
        let channels = self.store.device_channels(&ids).await?;
        for (device, commands) in &by_device {
            if let Some(channel) = channels.get(device) {
                self.offer_work(channel, device, commands, now).await;
            }
        }
        Ok(due.len())
    }
}

fn new_certificate(issued: &latchkey_certs::IssuedCertificate) -> NewCertificate {
    NewCertificate {
        serial_hex: issued.serial_hex.clone(),
        spki_sha256_hex: hex::encode(issued.spki_sha256),
        not_before: issued.not_before,
        not_after: issued.not_after,
    }
}

/// A device's CSR: signature verified, ECDSA P-256.
fn verify_csr(csr_der: &[u8]) -> Result<latchkey_certs::VerifiedCsr, EnrollError> {
    latchkey_certs::verify_csr(csr_der).map_err(|e| match e {
        latchkey_certs::CertError::UnsupportedKeyType(k) => EnrollError::UnsupportedKey(k),
        other => EnrollError::InvalidCsr(other.to_string()),
    })
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

fn validate_facts(facts: DeviceFacts) -> Result<DeviceFacts, EnrollError> {
    let fields = [
        ("hostname", &facts.hostname),
        ("platform", &facts.platform),
        ("os_version", &facts.os_version),
        ("machine_id", &facts.machine_id),
        ("serial", &facts.serial),
        ("model", &facts.model),
    ];
    for (name, value) in fields {
        if value.len() > MAX_FACT_LEN || value.chars().any(char::is_control) {
            return Err(EnrollError::InvalidFacts(format!(
                "{name} must be at most {MAX_FACT_LEN} bytes of printable text"
            )));
        }
    }
    if facts.hostname.trim().is_empty() {
        return Err(EnrollError::InvalidFacts("hostname is empty".into()));
    }
    if !["linux", "macos", "windows"].contains(&facts.platform.as_str()) {
        return Err(EnrollError::InvalidFacts(format!(
            "platform {:?} is not one of linux, macos, windows",
            facts.platform
        )));
    }
    Ok(facts)
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
