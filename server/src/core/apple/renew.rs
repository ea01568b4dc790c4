//! Renewing an Apple device's identity certificate before it expires
//! (apple.md §11.4). A SCEP renewal would leave the device bound to the
//! old certificate's hash, since no check-in message announces a new one;
//! so the device is sent, as InstallProfile, a refreshed enrollment profile
//! with the same identifiers (it replaces the installed one) and a new
//! one-time SCEP challenge bound to the device. The certificate SCEP
//! issues against that challenge is recorded with the renewal, and when
//! the device first speaks with it, from its own UDID, the device is bound
//! to it and every other certificate of the device is revoked.
//!
//! A device has at most one renewal open. One that does not complete (the
//! device answers the InstallProfile with an error, or does not come back
//! before the renewal expires) is closed by the next pass, which starts
//! another while the certificate is still within the window.

use chrono::{DateTime, Duration, Utc};
use tracing::{debug, warn};

use super::Apple;
use super::checkin::{AppleDevice, AppleRefusal, sealing_kid};
use super::enroll::{NewEnrollment, challenge_hash, new_challenge};
use crate::apple_profiles::enrollment::enrollment_profile_identifier;
use crate::core::auth::{AuthenticatedAdmin, Permission};
use crate::core::{CoreError, DeviceView, existing_device};
use crate::domain::apple::enrollment::{
    AppleEnrollment, IdentityRenewal, RenewalOutcome, RenewedIdentity, ScepChallenge,
};
use crate::domain::audit::{Actor, AdminRequest, AuditAction, AuditEntry, AuditOutcome};
use crate::domain::command::{Command, CommandArgs, CommandKind, CommandStatus};
use crate::domain::device::{Channel, DeviceState};
use crate::domain::ids::DeviceId;
use crate::store::StoreError;

/// How long a renewal may take: the device fetches the profile on its next
/// check-in after the push, and a device off for longer is retried.
pub const RENEWAL_LIFETIME: Duration = Duration::days(3);

/// What one pass of [`Apple::renew_expiring_identities`] did.
#[derive(Debug, Default)]
pub struct RenewalPass {
    /// Devices whose renewal started.
    pub started: Vec<DeviceId>,
    /// Renewals closed without completing, and how.
    pub closed: Vec<(DeviceId, RenewalOutcome)>,
}

impl RenewalPass {
    pub fn is_empty(&self) -> bool {
        self.started.is_empty() && self.closed.is_empty()
    }
}

impl Apple {
    /// One pass of the renewal schedule: closes the renewals that will not
    /// complete, then starts one for every device whose identity
    /// certificate expires within `[apple] identity_renewal_days` and has
    /// none open.
    pub async fn renew_expiring_identities(
        &self,
        now: DateTime<Utc>,
    ) -> Result<RenewalPass, CoreError> {
        let mut pass = RenewalPass::default();
        for renewal in self.store.open_identity_renewals().await? {
            // A renewal whose certificate was issued expires only once the
            // device has spoken with its old certificate since: until then
            // it may have replaced the old one already (and be away), and
            // revoking the new one would cut it off.
            let expired = renewal.expires_at <= now
                && match &renewal.issued {
                    None => true,
                    Some(issued) => self
                        .store
                        .apple_enrollment(&renewal.device)
                        .await?
                        .and_then(|e| e.last_seen_at)
                        .is_some_and(|seen| seen > issued.at),
                };
            let outcome = if expired {
                Some(RenewalOutcome::Expired)
            } else {
                let command = self.store.command(&renewal.command).await?;
                command
                    .is_none_or(|c| c.status == CommandStatus::Failed)
                    .then_some(RenewalOutcome::Failed)
            };
            if let Some(outcome) = outcome
                && self
                    .close_renewal(&renewal, outcome, Actor::System, now)
                    .await?
            {
                pass.closed.push((renewal.device.clone(), outcome));
            }
        }
        let horizon = now + self.settings.identity_renewal_window;
        for device in self.store.apple_identities_expiring(horizon, now).await? {
            match self.start_renewal(&device, Actor::System, false, now).await {
                Ok(_) => pass.started.push(device),
                // Not enrolled any more, checked out, or a renewal opened
                // meanwhile: nothing to do.
                Err(CoreError::FailedPrecondition(why)) => {
                    debug!(%device, reason = %why, "no identity renewal");
                }
                Err(e) => warn!(%device, error = %e, "cannot start an identity renewal"),
            }
        }
        Ok(pass)
    }

    /// `latchctl apple renew-identity ID`: renews the device's identity
    /// now, whatever its expiry; a renewal already open is replaced.
    pub async fn renew_identity(
        &self,
        caller: &AuthenticatedAdmin,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<(DeviceView, Command), CoreError> {
        self.audit
            .authorize(
                caller,
                Permission::LockDevices,
                AdminRequest::RenewAppleIdentities,
                id,
                now,
            )
            .await?;
        let (device_id, device) = existing_device(&self.store, id).await?;
        if device.channel != Channel::apple() {
            return Err(CoreError::FailedPrecondition(format!(
                "device {id} is managed by the Latchkey agent, which renews its own \
                 certificate; renew-identity is for Apple devices"
            )));
        }
        let (_, command) = self
            .start_renewal(&device_id, caller.actor(), true, now)
            .await?;
        let view = self.devices.policies.device_view(&device_id, now).await?;
        Ok((view, command))
    }

    /// Starts a renewal of `device`'s identity: a one-time challenge bound
    /// to the device, the InstallProfile that carries the refreshed
    /// profile, and the renewal that ties them, in one transaction; then
    /// the device is pushed. With `replace`, an open renewal is closed
    /// first; without, one open means no new one.
    async fn start_renewal(
        &self,
        device: &DeviceId,
        actor: Actor,
        replace: bool,
        now: DateTime<Utc>,
    ) -> Result<(IdentityRenewal, Command), CoreError> {
        let not_now = |why: &str| Err(CoreError::FailedPrecondition(why.to_owned()));
        let Some(listed) = self.store.device(device).await? else {
            return Err(CoreError::NotFound(format!("device {device}")));
        };
        if !matches!(
            listed.state,
            DeviceState::Active | DeviceState::Locked | DeviceState::Lost
        ) {
            return not_now(&format!(
                "device {device} is {}; only an enrolled device renews its identity",
                listed.state.as_str()
            ));
        }
        let Some(enrollment) = self.store.apple_enrollment(device).await? else {
            return not_now(&format!(
                "device {device} is not managed as an Apple device"
            ));
        };
        let (Some(_), Some(replaces), Some(topic), true) = (
            &enrollment.udid,
            &enrollment.identity_sha256,
            &enrollment.topic,
            enrollment.enabled,
        ) else {
            return not_now(&format!(
                "device {device} has not completed its enrollment (or checked out): it cannot \
                 be sent a profile"
            ));
        };
        let open = self.store.open_identity_renewal(device).await?;
        let seen = enrollment.last_seen_at;
        if let Some(issued) = open.as_ref().and_then(|o| o.issued.as_ref())
            && seen.is_none_or(|seen| seen <= issued.at)
        {
            return not_now(&format!(
                "device {device} was issued its renewed certificate at {} and has not checked \
                 in since: it may hold only the new one, and is bound to it when it next checks \
                 in; nothing to renew until then",
                issued.at.to_rfc3339()
            ));
        }
        if let Some(open) = &open
            && !replace
        {
            return not_now(&format!(
                "a renewal of device {device}'s identity is under way since {}",
                open.started_at.to_rfc3339()
            ));
        }
        let expires_at = self
            .store
            .identity_expiry(
                device,
                open.as_ref()
                    .and_then(|r| r.issued.as_ref())
                    .map(|i| i.serial_hex.as_str()),
            )
            .await?;
        let challenge = new_challenge()?;
        let challenge_sha256 = challenge_hash(&challenge);
        let challenge_sealed = self
            .ca
            .token_keys()
            .seal(&sealing_kid("renewal", device), &challenge)?;
        // The profile is rendered when the device fetches the command, so
        // the challenge is never stored in the clear.
        let command = Command::pending(
            device.clone(),
            CommandKind::InstallProfile,
            "renew the MDM identity certificate (refreshed enrollment profile)".into(),
            CommandArgs {
                profile_identifier: Some(enrollment_profile_identifier(
                    &self.settings.identifier_base(),
                )),
                ..CommandArgs::default()
            },
            actor.to_string(),
            now,
        );
        let renewal = IdentityRenewal {
            challenge_sha256: challenge_sha256.clone(),
            device: device.clone(),
            challenge_sealed,
            command: command.id.clone(),
            replaces_sha256: replaces.clone(),
            started_by: actor.to_string(),
            started_at: now,
            expires_at: now + RENEWAL_LIFETIME,
            issued: None,
            closed: None,
        };
        let tx = self.store.begin().await?;
        let mut revoked = false;
        if let Some(open) = &open {
            revoked = self
                .close_renewal_in(&tx, open, RenewalOutcome::Replaced, actor.clone(), now)
                .await?
                == Some(true);
        }
        match tx.insert_identity_renewal(&renewal).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                return not_now(&format!(
                    "a renewal of device {device}'s identity is under way"
                ));
            }
            Err(e) => return Err(e.into()),
        }
        tx.insert_scep_challenge(&ScepChallenge {
            challenge_sha256,
            // A renewal changes no one's device: the user an admin assigns
            // meanwhile stays.
            user: None,
            device: Some(device.clone()),
            created_by: actor.to_string(),
            created_at: now,
            expires_at: renewal.expires_at,
        })
        .await?;
        tx.insert_command(&command).await?;
        tx.audit(&AuditEntry {
            at: now,
            actor,
            action: AuditAction::AppleIdentityRenew,
            target: device.to_string(),
            outcome: AuditOutcome::Ok,
            detail: format!(
                "identity certificate {}; refreshed enrollment profile queued (command {}), \
                 one-time SCEP challenge until {} (topic {topic})",
                match expires_at {
                    Some(at) => format!("expires {}", at.to_rfc3339()),
                    None => "expiry unknown".into(),
                },
                command.id,
                renewal.expires_at.to_rfc3339(),
            ),
        })
        .await?;
        tx.commit().await?;
        if revoked {
            self.devices.crl.publish(now).await;
        }
        self.wake(device, now).await?;
        Ok((renewal, command))
    }

    /// Closes an open renewal that did not complete; false when it was
    /// closed meanwhile.
    async fn close_renewal(
        &self,
        renewal: &IdentityRenewal,
        outcome: RenewalOutcome,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> Result<bool, CoreError> {
        let tx = self.store.begin().await?;
        let closed = self
            .close_renewal_in(&tx, renewal, outcome, actor, now)
            .await?;
        tx.commit().await?;
        if closed == Some(true) {
            self.devices.crl.publish(now).await;
        }
        Ok(closed.is_some())
    }

    /// In `tx`: closes the renewal, fails its command if still open and
    /// revokes the certificate it got issued, which the device never used.
    /// `None` when it was closed meanwhile; else whether a certificate was
    /// revoked.
    async fn close_renewal_in(
        &self,
        tx: &crate::store::Tx,
        renewal: &IdentityRenewal,
        outcome: RenewalOutcome,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> Result<Option<bool>, CoreError> {
        if !tx
            .close_identity_renewal(&renewal.challenge_sha256, outcome, now)
            .await?
        {
            return Ok(None);
        }
        tx.fail_open_command(
            &renewal.command,
            &format!("the identity renewal ended: {}", outcome.as_str()),
            now,
        )
        .await?;
        let mut revoked = false;
        if let Some(issued) = &renewal.issued {
            revoked = tx
                .revoke_certificate(&renewal.device, &issued.serial_hex, now)
                .await?;
        }
        tx.audit(&AuditEntry {
            at: now,
            actor,
            action: AuditAction::AppleIdentityRenew,
            target: renewal.device.to_string(),
            outcome: AuditOutcome::Failed,
            detail: format!(
                "the renewal started {} ended {} without the device using a renewed \
                 certificate{}",
                renewal.started_at.to_rfc3339(),
                outcome.as_str(),
                match &renewal.issued {
                    Some(issued) => format!("; certificate {} revoked", issued.serial_hex),
                    None => String::new(),
                }
            ),
        })
        .await?;
        Ok(Some(revoked))
    }

    /// The enrollment profile an open renewal's InstallProfile carries
    /// (unsigned XML), read in `tx`, the transaction that hands the
    /// command out; `None` when the command is no open renewal's.
    pub(super) async fn renewal_profile(
        &self,
        tx: &crate::store::Tx,
        command: &Command,
    ) -> Result<Option<Vec<u8>>, CoreError> {
        let Some(renewal) = tx.identity_renewal_of_command(&command.id).await? else {
            return Ok(None);
        };
        if renewal.closed.is_some() || renewal.device != command.device_id {
            return Ok(None);
        }
        let Some(topic) = tx
            .apple_enrollment(&renewal.device)
            .await?
            .and_then(|e| e.topic)
        else {
            return Ok(None);
        };
        let challenge = self.ca.token_keys().open(
            &sealing_kid("renewal", &renewal.device),
            &renewal.challenge_sealed,
        )?;
        self.enrollment_profile(&NewEnrollment {
            challenge,
            topic,
            user: None,
            expires_at: renewal.expires_at,
        })
        .map(Some)
    }

    /// Records, in the SCEP transaction, the certificate a renewal's
    /// challenge got the device.
    pub(super) async fn renewal_issued(
        tx: &crate::store::Tx,
        challenge_sha256: &str,
        issued: &latchkey_certs::IssuedCertificate,
        now: DateTime<Utc>,
    ) -> Result<bool, CoreError> {
        Ok(tx
            .identity_renewal_issued(
                challenge_sha256,
                &RenewedIdentity {
                    serial_hex: issued.serial_hex.clone(),
                    sha256: hex::encode(latchkey_certs::sha256(&issued.der)),
                    at: now,
                },
            )
            .await?)
    }

    /// A device speaking with a certificate that is not the one bound to
    /// it: when it is the certificate its open renewal got issued, and the
    /// message comes from the device's own UDID, the device is bound to it
    /// now and every other certificate of the device is revoked. Returns
    /// the enrollment as it now stands, or `None` when this is no renewal.
    pub(super) async fn complete_renewal(
        &self,
        device: &AppleDevice,
        enrollment: &AppleEnrollment,
        udid: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<AppleEnrollment>, AppleRefusal> {
        let presented = device.identity_sha256();
        if enrollment.identity_sha256.as_deref() == Some(presented) {
            return Ok(None);
        }
        let Some(renewal) = self.store.open_identity_renewal(device.id()).await? else {
            return Ok(None);
        };
        let Some(issued) = renewal
            .issued
            .as_ref()
            .filter(|issued| issued.sha256 == presented)
        else {
            return Ok(None);
        };
        if enrollment.udid.as_deref() != Some(udid) {
            return Err(AppleRefusal::Mismatch(
                "a renewed identity certificate speaks only for the UDID it was renewed for".into(),
            ));
        }
        let tx = self.store.begin().await?;
        if !tx
            .close_identity_renewal(&renewal.challenge_sha256, RenewalOutcome::Renewed, now)
            .await?
        {
            // Closed meanwhile (expired, replaced): the certificate was
            // revoked with it.
            return Ok(None);
        }
        tx.rebind_apple_identity(device.id(), presented).await?;
        let revoked = tx
            .revoke_certificates_except(device.id(), &issued.serial_hex, now)
            .await?;
        let valid_until = tx.identity_expiry(device.id(), None).await?;
        tx.audit(&AuditEntry {
            at: now,
            actor: Actor::Device(device.id().clone()),
            action: AuditAction::AppleIdentityRebind,
            target: device.id().to_string(),
            outcome: AuditOutcome::Ok,
            detail: format!(
                "renewed identity certificate {} in use{}; {revoked} earlier certificate(s) \
                 revoked",
                issued.serial_hex,
                match valid_until {
                    Some(at) => format!(", valid until {}", at.to_rfc3339()),
                    None => String::new(),
                }
            ),
        })
        .await?;
        tx.commit().await?;
        self.devices.crl.publish(now).await;
        Ok(Some(AppleEnrollment {
            identity_sha256: Some(presented.to_owned()),
            ..enrollment.clone()
        }))
    }
}
