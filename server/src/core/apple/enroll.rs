//! Enrolling an Apple device: a one-time SCEP challenge is made for an
//! enrollment profile (by an admin for a user, or for a user signed in on
//! the enrollment page); the device sends it in its SCEP request
//! (RFC 8894 PKCSReq), which uses it up and gets the device its identity
//! certificate. The device is listed from then on, awaiting enrollment
//! until its first check-in completes (`checkin.rs`).
//!
//! A refused request is answered in SCEP (a CertRep with pkiStatus
//! FAILURE and a failInfo), never with an HTTP error, when the request is
//! authentic enough to name its transaction; nothing is written for it.

use chrono::{DateTime, Duration, Utc};
use latchkey_certs::scep::{CertRepOutcome, DecodeError, FailInfo};
use tracing::warn;

use super::Apple;
use crate::apple_profiles::enrollment::{
    AccessRights, EnrollmentProfileSettings, ServerCapability, render_enrollment_profile,
};
use crate::core::auth::{AuthenticatedAdmin, Permission};
use crate::core::{CoreError, printable, validate_email};
use crate::domain::apple::enrollment::ScepChallenge;
use crate::domain::audit::{Actor, AdminRequest, AuditAction, AuditEntry, AuditOutcome};
use crate::domain::device::{Channel, Device, DeviceState};
use crate::domain::ids::DeviceId;

/// How long a challenge made by an admin stays usable.
pub const ADMIN_CHALLENGE_LIFETIME: Duration = Duration::days(7);
/// How long a challenge made on the enrollment page stays usable: the user
/// installs the profile right after downloading it.
pub const PAGE_CHALLENGE_LIFETIME: Duration = Duration::hours(1);

/// What an enrollment profile carries besides the server's settings.
#[derive(Clone)]
pub struct NewEnrollment {
    /// The one-time SCEP challenge (shown only in the profile).
    pub challenge: String,
    /// The push topic devices enroll under.
    pub topic: String,
    pub user: Option<String>,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for NewEnrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewEnrollment")
            .field("challenge", &"[redacted]")
            .field("topic", &self.topic)
            .field("user", &self.user)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The answer to a SCEP PKIOperation.
#[derive(Debug)]
pub enum ScepAnswer {
    /// A CertRep (`application/x-pki-message`), granting or refusing.
    CertRep(Vec<u8>),
    /// The message could not be read far enough to answer in SCEP.
    Unreadable(String),
}

pub(super) fn challenge_hash(challenge: &str) -> String {
    hex::encode(latchkey_certs::sha256(challenge.as_bytes()))
}

/// A new one-time challenge: 192 random bits in lower-case hex. A client
/// may put the challengePassword (RFC 2985 §5.4.1) in a PrintableString
/// whatever it holds (certmonger does), and a PrintableString holding a
/// character outside its alphabet (letters, digits, space and
/// `'()+,-./:=?`), such as base64url's `_`, makes the whole certificate
/// request unreadable; hex is in every string type's alphabet.
pub(super) fn new_challenge() -> Result<String, CoreError> {
    Ok(hex::encode(latchkey_certs::random_bytes::<24>()?))
}

impl Apple {
    /// A one-time challenge for an enrollment profile an admin hands out;
    /// the device it enrolls is bound to `user` when one is given.
    pub async fn new_enrollment(
        &self,
        caller: &AuthenticatedAdmin,
        user: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<NewEnrollment, CoreError> {
        self.audit
            .authorize(
                caller,
                Permission::ManageTokens,
                AdminRequest::CreateAppleEnrollmentProfiles,
                user.unwrap_or(""),
                now,
            )
            .await?;
        let user = user.map(validate_email).transpose()?;
        self.make_enrollment(user, None, caller.actor(), ADMIN_CHALLENGE_LIFETIME, now)
            .await
    }

    /// A one-time challenge for the profile a signed-in user downloads
    /// from the enrollment page: the device is bound to that user.
    pub async fn new_enrollment_for_user(
        &self,
        user_email: &str,
        now: DateTime<Utc>,
    ) -> Result<NewEnrollment, CoreError> {
        self.make_enrollment(
            Some(user_email.to_owned()),
            None,
            Actor::User(user_email.to_owned()),
            PAGE_CHALLENGE_LIFETIME,
            now,
        )
        .await
    }

    /// A challenge for `user`'s device; bound to `device` when the device
    /// is already listed (Automated Device Enrollment), so that SCEP issues
    /// its identity to that record instead of a new one.
    /// How many unused challenges a listed device may hold at once (Setup
    /// Assistant asking again, a retry).
    const LIVE_DEVICE_CHALLENGES: u64 = 3;

    pub(super) async fn make_enrollment(
        &self,
        user: Option<String>,
        device: Option<DeviceId>,
        actor: Actor,
        lifetime: Duration,
        now: DateTime<Utc>,
    ) -> Result<NewEnrollment, CoreError> {
        let certificates = self.store.push_certificates().await?;
        let infos: Vec<_> = certificates.into_iter().map(|c| c.info).collect();
        let Some(topic) = crate::domain::apple::push::current(&infos).map(|c| c.topic.clone())
        else {
            return Err(CoreError::FailedPrecondition(
                "no Apple push certificate: import one with `latchctl apple push-cert import` \
                 before enrolling Apple devices"
                    .into(),
            ));
        };
        let challenge = new_challenge()?;
        let record = ScepChallenge {
            challenge_sha256: challenge_hash(&challenge),
            user: user.clone(),
            device: device.clone(),
            created_by: actor.to_string(),
            created_at: now,
            expires_at: now + lifetime,
        };
        // A device asking for its own profile (Setup Assistant) is not
        // authenticated: its rows go through the flood gate, and its
        // unused challenges are kept few.
        let unauthenticated = actor == Actor::EnrollingDevice;
        let entry = AuditEntry {
            at: now,
            actor,
            action: AuditAction::AppleEnrollmentProfileCreate,
            target: user.clone().unwrap_or_default(),
            outcome: AuditOutcome::Ok,
            detail: format!(
                "one-time SCEP challenge until {}; topic {topic}{}",
                record.expires_at.to_rfc3339(),
                match &device {
                    Some(id) => format!("; for the listed device {id}"),
                    None => String::new(),
                }
            ),
        };
        let tx = self.store.begin().await?;
        tx.insert_scep_challenge(&record).await?;
        if let Some(id) = &device {
            tx.prune_device_challenges(id, Self::LIVE_DEVICE_CHALLENGES)
                .await?;
        }
        if !unauthenticated {
            tx.audit(&entry).await?;
        }
        tx.commit().await?;
        if unauthenticated {
            self.audit.record_unauthenticated(entry, now).await?;
        }
        Ok(NewEnrollment {
            challenge,
            topic,
            user,
            expires_at: record.expires_at,
        })
    }

    /// The `.mobileconfig` for `enrollment`, unsigned: the server's Apple
    /// settings and the enrollment's one-time challenge.
    pub fn enrollment_profile(&self, enrollment: &NewEnrollment) -> Result<Vec<u8>, CoreError> {
        let settings = &self.settings;
        let profile = EnrollmentProfileSettings {
            organization: settings.organization.clone(),
            display_name: format!("{} device management", settings.organization),
            identifier_base: settings.identifier_base(),
            push_topic: enrollment.topic.clone(),
            server_url: settings.server_url(),
            check_in_url: Some(settings.check_in_url()),
            scep_url: settings.scep_url(),
            scep_challenge: enrollment.challenge.clone(),
            scep_subject_common_name: "Latchkey device identity".into(),
            scep_name: Some("Latchkey".into()),
            ca_certificate_der: self.ca_certificate_der()?,
            access_rights: AccessRights::ALL,
            sign_message: true,
            server_capabilities: vec![ServerCapability::BootstrapToken],
            check_out_when_removed: true,
        };
        render_enrollment_profile(&profile)
            .map(|rendered| rendered.bytes)
            .map_err(|e| {
                CoreError::FailedPrecondition(format!("the enrollment profile cannot be made: {e}"))
            })
    }

    /// Signs an enrollment profile (CMS, content attached) as Latchkey's
    /// enrollment authority.
    pub fn sign_profile(&self, profile: &[u8]) -> Result<Vec<u8>, CoreError> {
        self.enrollment_authority
            .sign_profile(profile)
            .map_err(|e| CoreError::Internal(crate::core::InternalError::Cms(e)))
    }

    /// GetCACert: the RA certificate and the CA chain.
    pub fn scep_ca_certificates(&self) -> Vec<u8> {
        self.enrollment_authority.ca_certificates()
    }

    /// The CA certificate (DER) a profile installs as a trust anchor.
    pub fn ca_certificate_der(&self) -> Result<Vec<u8>, CoreError> {
        let ders = latchkey_certs::pem_certificates(self.ca.root_pem())?;
        ders.into_iter().next().ok_or_else(|| {
            CoreError::Internal(crate::core::InternalError::Broken("the CA has no root"))
        })
    }

    /// PKIOperation: a device's PKCSReq. Its challenge must be one issued
    /// and not yet used or expired; it is used up in the same transaction
    /// that lists the device and records its certificate, so a replayed
    /// request, or two racing with one challenge, gets one certificate.
    pub async fn scep_pki_operation(
        &self,
        message: &[u8],
        now: DateTime<Utc>,
    ) -> Result<ScepAnswer, CoreError> {
        let request = match self.enrollment_authority.decode(message) {
            Ok(request) => request,
            Err(DecodeError::Unanswerable(e)) => {
                self.scep_refused("", &e.to_string(), now).await?;
                return Ok(ScepAnswer::Unreadable(e.to_string()));
            }
            Err(DecodeError::Refused(refusal)) => {
                self.scep_refused(
                    &refusal.reply_to.transaction_id,
                    &refusal.cause.to_string(),
                    now,
                )
                .await?;
                return self.cert_rep(
                    &refusal.reply_to,
                    &CertRepOutcome::Failure(refusal.fail_info),
                    now,
                );
            }
        };
        let reply_to = &request.reply_to;
        let refuse = |why: &'static str| (why, FailInfo::BadRequest);
        let granted = match &request.csr.challenge_password {
            None => Err(refuse("the request carries no challenge password")),
            Some(challenge) => Ok(challenge_hash(challenge.expose())),
        };
        let hash = match granted {
            Ok(hash) => hash,
            Err((why, fail)) => {
                self.scep_refused(&reply_to.transaction_id, why, now)
                    .await?;
                return self.cert_rep(reply_to, &CertRepOutcome::Failure(fail), now);
            }
        };
        let tx = self.store.begin().await?;
        let Some(challenge) = tx
            .use_scep_challenge(&hash, &printable(&reply_to.transaction_id, 128), now)
            .await?
        else {
            drop(tx);
            self.scep_refused(
                &reply_to.transaction_id,
                "the challenge is unknown, used or expired",
                now,
            )
            .await?;
            return self.cert_rep(
                reply_to,
                &CertRepOutcome::Failure(FailInfo::BadRequest),
                now,
            );
        };
        let device_id = challenge.device.clone().unwrap_or_else(DeviceId::generate);
        let issued = match self.ca.issue_apple_identity(
            &request.csr.subject_public_key_info,
            &device_id,
            now,
            self.settings.identity_validity,
        ) {
            Ok(issued) => issued,
            Err(e) => {
                drop(tx);
                self.scep_refused(&reply_to.transaction_id, &e.to_string(), now)
                    .await?;
                return self.cert_rep(reply_to, &CertRepOutcome::Failure(FailInfo::BadAlg), now);
            }
        };
        // A challenge for a device already on record is a renewal's, or an
        // ADE listed device's. The listed device gets one identity, while
        // it awaits enrollment: a challenge fetched with its serial (which
        // is no secret) cannot mint identities for it after it enrolled,
        // and each new one replaces any earlier one.
        let mut replaced = 0;
        if challenge.device.is_some() && !Self::renewal_issued(&tx, &hash, &issued, now).await? {
            let awaiting = tx
                .device(&device_id)
                .await?
                .is_some_and(|d| d.state == DeviceState::AwaitingEnrollment);
            if !awaiting {
                drop(tx);
                self.scep_refused(
                    &reply_to.transaction_id,
                    "the listed device is no longer awaiting enrollment",
                    now,
                )
                .await?;
                return self.cert_rep(
                    reply_to,
                    &CertRepOutcome::Failure(FailInfo::BadRequest),
                    now,
                );
            }
            replaced = tx.revoke_device_certificates(&device_id, now).await?;
            tx.unbind_apple_identity(&device_id).await?;
        }
        if challenge.device.is_none() {
            let name = request
                .csr
                .subject_common_name
                .as_deref()
                .map(|cn| printable(cn, 128))
                .filter(|cn| !cn.is_empty())
                .unwrap_or_else(|| "Apple device".to_owned());
            tx.insert_devices(&[Device {
                id: device_id.clone(),
                hostname: name,
                platform: "apple".into(),
                os_version: String::new(),
                machine_id: String::new(),
                serial: String::new(),
                model: String::new(),
                state: DeviceState::AwaitingEnrollment,
                user: challenge.user.clone(),
                group: None,
                enrolled_at: now,
                last_seen: None,
                posture: None,
                posture_at: None,
                certificate_expires_at: None,
                channel: Channel::apple(),
            }])
            .await?;
            tx.insert_apple_enrollment(&device_id).await?;
        } else if let Some(user) = &challenge.user {
            // A listed device whose user signed in before it enrolled
            // (ADE with `dep_sign_in`) becomes that user's.
            tx.set_device_user(&device_id, Some(user)).await?;
        }
        tx.insert_certificate(
            &device_id,
            &crate::core::enrollment::new_certificate(&issued),
        )
        .await?;
        tx.audit(&AuditEntry {
            at: now,
            actor: Actor::EnrollingDevice,
            action: AuditAction::DeviceEnroll,
            target: device_id.to_string(),
            outcome: AuditOutcome::Ok,
            detail: format!(
                "Apple identity certificate {} issued over SCEP (transaction {}); user {}{}",
                issued.serial_hex,
                printable(&reply_to.transaction_id, 64),
                challenge.user.as_deref().unwrap_or("-"),
                if replaced > 0 {
                    format!("; {replaced} earlier identity certificate(s) revoked")
                } else {
                    String::new()
                },
            ),
        })
        .await?;
        tx.commit().await?;
        if replaced > 0 {
            self.devices.crl.publish(now).await;
        }
        self.cert_rep(
            reply_to,
            &CertRepOutcome::Success {
                certificate_der: issued.der,
                chain_der: self.enrollment_authority.ca_chain_der().to_vec(),
                encryption: request.content_encryption.for_reply(),
            },
            now,
        )
    }

    fn cert_rep(
        &self,
        reply_to: &latchkey_certs::scep::ReplyTo,
        outcome: &CertRepOutcome,
        now: DateTime<Utc>,
    ) -> Result<ScepAnswer, CoreError> {
        match self.enrollment_authority.reply(reply_to, outcome, now) {
            Ok(der) => Ok(ScepAnswer::CertRep(der)),
            Err(e) => {
                warn!(error = %e, "cannot write a SCEP reply");
                Ok(ScepAnswer::Unreadable(format!("no reply can be made: {e}")))
            }
        }
    }

    async fn scep_refused(
        &self,
        transaction: &str,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        self.audit
            .record_unauthenticated(
                AuditEntry {
                    at: now,
                    actor: Actor::EnrollingDevice,
                    action: AuditAction::DeviceEnroll,
                    target: printable(transaction, 64),
                    outcome: AuditOutcome::Denied,
                    detail: format!("SCEP request refused: {}", printable(why, 256)),
                },
                now,
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_challenge_fits_in_a_printable_string() {
        let challenge = super::new_challenge().expect("random bytes");
        assert_eq!(challenge.len(), 48);
        assert!(
            challenge
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{challenge}"
        );
    }
}
