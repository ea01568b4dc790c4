//! Automated Device Enrollment with the user's sign-in (`[apple]
//! dep_sign_in`): Setup Assistant's web view opens the ADE profile's
//! `configuration_web_url` with the device's MachineInfo, is sent through
//! Latchkey's own sign-in (the built-in client of `sso/first_party.rs`),
//! and comes back to `/apple/dep/callback`, where the enrollment profile
//! it receives carries a SCEP challenge bound to the listed device and to
//! the user who signed in.
//!
//! The pending sign-in is a row (any replica finishes it) whose id is
//! derived from a secret that only the web view holds, in a cookie: the
//! PKCE verifier of the sign-in is derived from the same secret and is
//! stored nowhere. So a sign-in link sent to someone else ends, in their
//! browser, at a callback that has no cookie and cannot redeem its code;
//! the code is spent and the refusal audited with the user it names. A
//! pending sign-in is finished once (a replayed callback is refused) and
//! lives ten minutes.
//!
//! MachineInfo stays unverified: Apple signs it, but anyone can replay
//! one, so it only picks which listed record the sign-in is for. What the
//! sign-in adds is whose device it becomes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};

use super::Apple;
use super::dep::DEP_CHALLENGE_LIFETIME;
use super::enroll::NewEnrollment;
use crate::core::sso::{SignIn, TokenError};
use crate::core::{CoreError, printable};
use crate::domain::apple::dep::DepSignIn;
use crate::domain::audit::{Actor, AuditAction, AuditEntry, AuditOutcome};
use crate::domain::device::DeviceState;
use crate::domain::ids::DepSignInId;

/// How long a user has to sign in once Setup Assistant started.
pub const DEP_SIGN_IN_LIFETIME: Duration = Duration::minutes(10);

/// A sign-in started: what the web view's first answer carries.
pub struct DepSignInStart {
    /// The secret the web view keeps in its cookie.
    pub secret: String,
    /// Where the web view signs in.
    pub authorize_url: String,
}

impl std::fmt::Debug for DepSignInStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DepSignInStart")
            .field("secret", &"[redacted]")
            .field("authorize_url", &self.authorize_url)
            .finish()
    }
}

/// Why the callback hands out no profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepSignInRefusal {
    /// This browser did not start the sign-in the callback names (no
    /// cookie, or another sign-in's): the link was opened elsewhere.
    OtherBrowser,
    /// Finished before, expired, unknown, its code did not redeem, or its
    /// device no longer awaits enrollment: Setup Assistant starts again.
    Expired,
    /// An admin assigned the device to another user.
    AssignedToAnother,
}

/// The id a sign-in's secret stands for.
fn sign_in_id(secret: &str) -> DepSignInId {
    DepSignInId::from_digest(&latchkey_certs::sha256(secret.as_bytes()))
}

/// The PKCE verifier (RFC 7636 §4.1) of a sign-in's secret: 43 base64url
/// characters, in another hash domain than the id, which is public.
fn code_verifier(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(latchkey_certs::sha256(
        format!("latchkey-dep-sign-in-pkce:{secret}").as_bytes(),
    ))
}

/// The PKCE challenge (S256) of a verifier.
fn code_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(latchkey_certs::sha256(verifier.as_bytes()))
}

impl Apple {
    /// Starts the sign-in for the listed device `serial` names (from
    /// Setup Assistant's MachineInfo). A serial no token lists, or whose
    /// device already enrolled, starts nothing (`NotFound`).
    pub async fn start_dep_sign_in(
        &self,
        sign_in: &SignIn,
        serial: &str,
        now: DateTime<Utc>,
    ) -> Result<DepSignInStart, CoreError> {
        let device = self
            .listed_awaiting_enrollment(serial, AuditAction::AppleDepSignInStart, now)
            .await?;
        let secret = hex::encode(latchkey_certs::random_bytes::<32>()?);
        let id = sign_in_id(&secret);
        let authorize_url = sign_in
            .dep_authorize_url(&code_challenge(&code_verifier(&secret)), id.as_str())
            .ok_or_else(|| {
                CoreError::FailedPrecondition("sign-in before ADE enrollment is off".into())
            })?;
        let record = DepSignIn {
            id,
            serial_number: device.serial.clone(),
            device: device.id.clone(),
            created_at: now,
            expires_at: now + DEP_SIGN_IN_LIFETIME,
            finished_at: None,
            user: None,
        };
        let tx = self.store.begin().await?;
        tx.insert_dep_sign_in(&record).await?;
        tx.audit(&AuditEntry {
            at: now,
            actor: Actor::EnrollingDevice,
            action: AuditAction::AppleDepSignInStart,
            target: record.serial_number.clone(),
            outcome: AuditOutcome::Ok,
            detail: format!(
                "serial {}: Setup Assistant sent to sign in for the listed device {} until {}",
                record.serial_number,
                record.device,
                record.expires_at.to_rfc3339()
            ),
        })
        .await?;
        tx.commit().await?;
        Ok(DepSignInStart {
            secret,
            authorize_url,
        })
    }

    /// The callback: the web view's cookie `secret`, the sign-in's
    /// `state` and its `code`. The enrollment for the user who signed in
    /// and the listed device, or why there is none; each outcome audited.
    pub async fn finish_dep_sign_in(
        &self,
        sign_in: &SignIn,
        secret: Option<&str>,
        state: Option<&str>,
        code: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Result<NewEnrollment, DepSignInRefusal>, CoreError> {
        let named = state.and_then(DepSignInId::parse);
        let ours = secret.map(sign_in_id);
        let pending = match &named {
            Some(id) => self.store.dep_sign_in(id).await?,
            None => None,
        };
        let serial = pending
            .as_ref()
            .map(|p| p.serial_number.clone())
            .unwrap_or_default();
        let refuse = |refusal: DepSignInRefusal, why: &'static str| {
            self.refuse_dep_sign_in(sign_in, &serial, code, refusal, why, now)
        };
        let (Some(secret), Some(id)) = (secret, named.filter(|n| Some(n) == ours.as_ref())) else {
            return refuse(
                DepSignInRefusal::OtherBrowser,
                "the callback came to a browser that did not start this sign-in",
            )
            .await;
        };
        let Some(pending) = pending else {
            return refuse(DepSignInRefusal::Expired, "no such sign-in (expired)").await;
        };
        if !self.store.finish_dep_sign_in(&id, now).await? {
            return refuse(
                DepSignInRefusal::Expired,
                "the sign-in was finished before or has expired",
            )
            .await;
        }
        let Some(code) = code else {
            return refuse(
                DepSignInRefusal::Expired,
                "the sign-in came back without a code",
            )
            .await;
        };
        let user = match sign_in
            .redeem_dep_code(code, &code_verifier(secret), now)
            .await
        {
            // Signed in for this enrollment (after it started), with a
            // second factor: never an earlier session carried over.
            Ok((user, auth_time, second_factor))
                if auth_time >= pending.created_at && second_factor =>
            {
                user
            }
            Ok((user, _, _)) => {
                self.audit_dep_finish(
                    &serial,
                    Some(&user.email),
                    AuditOutcome::Denied,
                    "the sign-in was not made for this enrollment with a second factor",
                    now,
                )
                .await?;
                return Ok(Err(DepSignInRefusal::Expired));
            }
            Err(TokenError::Internal(e)) => return Err(e),
            Err(_) => {
                return refuse(DepSignInRefusal::Expired, "the code did not redeem").await;
            }
        };
        let device = self.store.device(&pending.device).await?;
        // A device an admin assigned to someone goes to that user only.
        if let Some(assigned) = device.as_ref().and_then(|d| d.user.as_ref())
            && *assigned != user.email
        {
            self.audit_dep_finish(
                &serial,
                Some(&user.email),
                AuditOutcome::Denied,
                &format!("the device is assigned to {assigned}"),
                now,
            )
            .await?;
            return Ok(Err(DepSignInRefusal::AssignedToAnother));
        }
        if device.is_none_or(|d| d.state != DeviceState::AwaitingEnrollment) {
            self.audit_dep_finish(
                &serial,
                Some(&user.email),
                AuditOutcome::Denied,
                "the device no longer awaits enrollment",
                now,
            )
            .await?;
            return Ok(Err(DepSignInRefusal::Expired));
        }
        self.store.set_dep_sign_in_user(&id, &user.email).await?;
        let enrollment = self
            .make_enrollment(
                Some(user.email.clone()),
                Some(pending.device.clone()),
                Actor::User(user.email.clone()),
                DEP_CHALLENGE_LIFETIME,
                now,
            )
            .await?;
        self.audit_dep_finish(
            &serial,
            Some(&user.email),
            AuditOutcome::Ok,
            &format!(
                "the enrollment profile handed out; device {} enrolls as the user's",
                pending.device
            ),
            now,
        )
        .await?;
        Ok(Ok(enrollment))
    }

    /// A refused callback: its code (if any) is spent, so it can never be
    /// used, and the refusal is audited with the user it named.
    async fn refuse_dep_sign_in(
        &self,
        sign_in: &SignIn,
        serial: &str,
        code: Option<&str>,
        refusal: DepSignInRefusal,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<Result<NewEnrollment, DepSignInRefusal>, CoreError> {
        let user = match code {
            Some(code) => sign_in.void_dep_code(code, now).await?,
            None => None,
        };
        self.audit_dep_finish(
            serial,
            user.as_ref().map(|u| u.email.as_str()),
            AuditOutcome::Denied,
            why,
            now,
        )
        .await?;
        Ok(Err(refusal))
    }

    async fn audit_dep_finish(
        &self,
        serial: &str,
        user: Option<&str>,
        outcome: AuditOutcome,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        let entry = AuditEntry {
            at: now,
            actor: user.map_or(Actor::EnrollingDevice, |u| Actor::User(u.to_owned())),
            action: AuditAction::AppleDepSignInFinish,
            target: printable(serial, 64),
            outcome,
            detail: format!(
                "serial {}; user {}; {why}",
                if serial.is_empty() { "-" } else { serial },
                user.unwrap_or("-")
            ),
        };
        match outcome {
            AuditOutcome::Ok => self.audit.record(entry).await,
            _ => self.audit.record_unauthenticated(entry, now).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The verifier is a valid RFC 7636 verifier, and neither it nor the
    /// challenge is the id (which travels in the clear as `state`).
    #[test]
    fn the_verifier_is_apart_from_the_public_id() {
        let secret = "ab".repeat(32);
        let verifier = code_verifier(&secret);
        assert_eq!(verifier.len(), 43);
        assert!(
            verifier
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        let id = sign_in_id(&secret).to_string();
        assert!(!verifier.contains(&id) && !code_challenge(&verifier).contains(&id));
        assert_ne!(code_verifier(&"cd".repeat(32)), verifier);
    }
}
