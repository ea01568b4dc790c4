//! The enrollment service: enrollment tokens, exchanging a token and a CSR
//! for a device certificate, authenticating a device by its certificate,
//! renewing that certificate; and the CRL those certificates are revoked
//! through.

use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;

use tracing::{info, warn};

use super::auth::{
    self, AuthenticatedAdmin, AuthenticatedDevice, DeviceAuthError, DeviceChannel, DeviceRefusal,
    Permission,
};
use super::{
    Audit, CoreError, EnrollError, Enrolled, InternalError, validate_email, validate_label, writer,
};
use crate::ca::CertificateAuthority;
use crate::domain::admin::{EnrollmentToken, TokenStatus};
use crate::domain::audit::{Actor, AdminRequest, AuditAction, AuditEntry, AuditOutcome};
use crate::domain::device::{Channel, Device, DeviceFacts, DeviceState};
use crate::domain::ids::{DeviceId, TokenId};
use crate::store::{NewCertificate, Store};

/// Tokens, enrollment, certificates and their renewal.
pub struct Enrollment {
    pub(super) store: Store,
    pub(super) audit: Audit,
    pub(super) ca: Arc<CertificateAuthority>,
    pub(super) crl: Crl,
    /// Batches enrollments into one transaction (see `writer.rs`).
    pub(super) enrollments: tokio::sync::mpsc::Sender<writer::PendingEnrollment>,
    pub(super) certificate_validity: Duration,
    /// The MQTT URL agents are told at enrollment.
    pub(super) mqtt_url: String,
}

/// The CRL of device certificates, rewritten whenever one is revoked.
/// Cheap to clone: enrollment and devices hold one.
#[derive(Clone)]
pub struct Crl {
    pub(super) store: Store,
    pub(super) ca: Arc<CertificateAuthority>,
}

impl Crl {
    /// Rewrites the CRL for outside consumers (external broker, proxies).
    pub async fn publish(&self, now: DateTime<Utc>) {
        let result = async {
            let revoked = self.store.revoked_certificates(now).await?;
            self.ca.write_crl(&revoked, now).map_err(CoreError::from)
        }
        .await;
        if let Err(e) = result {
            warn!(error = %e, "could not write the CRL");
        }
    }
}

pub(super) const MAX_FACT_LEN: usize = 256;

pub(super) fn new_certificate(issued: &latchkey_certs::IssuedCertificate) -> NewCertificate {
    NewCertificate {
        serial_hex: issued.serial_hex.clone(),
        spki_sha256_hex: hex::encode(issued.spki_sha256),
        not_before: issued.not_before,
        not_after: issued.not_after,
    }
}

/// A device's CSR: signature verified, ECDSA P-256.
pub(super) fn verify_csr(csr_der: &[u8]) -> Result<latchkey_certs::VerifiedCsr, EnrollError> {
    latchkey_certs::verify_csr(csr_der).map_err(|e| match e {
        latchkey_certs::CertError::UnsupportedKeyType(k) => EnrollError::UnsupportedKey(k),
        other => EnrollError::InvalidCsr(other.to_string()),
    })
}

pub(super) fn validate_facts(facts: DeviceFacts) -> Result<DeviceFacts, EnrollError> {
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

impl Enrollment {
    /// Rewrites the CRL (at start and on the refresh job's schedule).
    pub async fn publish_crl(&self, now: DateTime<Utc>) {
        self.crl.publish(now).await;
    }

    pub async fn create_enrollment_token(
        &self,
        caller: &AuthenticatedAdmin,
        user: Option<String>,
        group: Option<String>,
        expires_in: Duration,
        uses: u32,
        now: DateTime<Utc>,
    ) -> Result<(EnrollmentToken, String), CoreError> {
        self.audit
            .authorize(
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
        self.audit
            .authorize(
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
        self.audit
            .authorize(
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

    /// Why a token enrolls no device now, by the one rule
    /// ([`EnrollmentToken::status`]) the admin API also reports.
    pub(super) fn token_refusal(
        token: &EnrollmentToken,
        now: DateTime<Utc>,
    ) -> Option<EnrollError> {
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
            self.audit.record_unauthenticated(entry, now).await?;
        }
        result
    }

    pub(super) async fn enroll_inner(
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
        let issued = self
            .ca
            .issue_device(&csr, &device_id, now, self.certificate_validity)?;
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
            mqtt_url: self.mqtt_url.clone(),
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
        let issued = self
            .ca
            .issue_device(&csr, device.id(), now, self.certificate_validity)?;
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
        self.crl.publish(now).await;
        Ok(self.ca.chain_pem(&issued.pem))
    }
}
