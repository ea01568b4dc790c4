//! Second factors at sign-in and on the account page: TOTP (RFC 6238,
//! enrolled by scanning a QR code or typing the secret) and a one-time
//! code sent by email.
//!
//! Which sign-ins need one: the app's `mfa` policy always wins; past that,
//! the user's own setting (`always`, `risk` — only from an address they
//! have not completed a sign-in from in 30 days — or `off`), never below
//! the floor the server's `[sso] user_mfa_minimum` sets.

use chrono::{DateTime, Duration, Utc};

use super::{LoginFailure, Step};
use crate::core::limits::Guess;
use crate::core::sso::SignIn;
use crate::core::totp::{self, TotpSecret};
use crate::core::{CoreError, InternalError};
use crate::domain::app::{App, MfaPolicy};
use crate::domain::audit::{Actor, AuditAction, AuditEntry, AuditOutcome};
use crate::domain::ids::SsoSessionId;
use crate::domain::sign_in::Factor;
use crate::domain::sign_in::SsoSession;
use crate::domain::user::{User, UserStatus};
use crate::store::{Challenge, SecondFactorRecord};

/// How long an emailed code is good for.
const EMAIL_CODE_TTL: Duration = Duration::minutes(10);
/// Wrong guesses allowed per emailed code.
const EMAIL_CODE_ATTEMPTS: i32 = 5;
/// The soonest a new code may be sent after the last one.
pub(super) const RESEND_AFTER: Duration = Duration::seconds(30);
/// How long a user has to confirm a new authenticator.
const ENROLL_TTL: Duration = Duration::minutes(15);
/// How far back a sign-in address counts as known for `risk`.
const KNOWN_ADDRESS_WINDOW: Duration = Duration::days(30);
/// The issuer name authenticator apps show next to the account.
const TOTP_ISSUER: &str = "Latchkey";

const KIND_ENROLL: &str = "totp-enroll";
pub(super) const KIND_EMAIL: &str = "email";

/// A user's choice of when to be asked for a second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MfaSetting {
    Off,
    /// Only from an address without a completed sign-in in 30 days.
    Risk,
    Always,
}

impl MfaSetting {
    pub const ALL: [MfaSetting; 3] = [MfaSetting::Always, MfaSetting::Risk, MfaSetting::Off];

    pub fn as_str(self) -> &'static str {
        match self {
            MfaSetting::Off => "off",
            MfaSetting::Risk => "risk",
            MfaSetting::Always => "always",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "off" => Some(MfaSetting::Off),
            "risk" => Some(MfaSetting::Risk),
            "always" => Some(MfaSetting::Always),
            _ => None,
        }
    }
}

/// A new authenticator being set up: what the page shows.
#[derive(Debug, Clone)]
pub struct TotpEnrollment {
    /// Base32, for typing into the app by hand.
    pub secret: String,
    /// `otpauth://` URI, for the QR code.
    pub uri: String,
}

/// Outcome of a submitted one-time code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeOutcome {
    Accepted,
    /// Accepted at sign-in: the factor counts for this session, which has
    /// a new cookie secret.
    SignedIn(String),
    /// Wrong, reused or expired code: the same message for each.
    Rejected,
    /// Too many failures; try again after this many seconds.
    LockedOut(i64),
    /// Nothing is waiting for a code (the attempt ended or moved on).
    Expired,
    /// The account page: confirm it's you first (step-up).
    StepUpNeeded,
}

/// The outcome of changing when to be asked for a second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaChange {
    Saved,
    /// Below the floor the server sets.
    BelowMinimum,
    /// The account page: confirm it's you first (step-up).
    StepUpNeeded,
}

/// One line of the account page's sign-in history.
#[derive(Debug, Clone)]
pub struct HistoryRow {
    pub at: DateTime<Utc>,
    pub ip: String,
    pub user_agent: String,
    pub app: Option<String>,
    pub device: Option<String>,
    pub method: String,
    pub ok: bool,
    pub reason: Option<String>,
}

/// The account page's view of a user's second factors.
#[derive(Debug, Clone)]
pub struct SecondFactorView {
    pub totp_enrolled: bool,
    pub setting: MfaSetting,
    /// The lowest setting the server allows.
    pub minimum: MfaSetting,
    pub email_available: bool,
}

fn code_hash(session_id: &SsoSessionId, code: &str) -> String {
    hex::encode(latchkey_certs::sha256(
        format!("latchkey-email-code:{session_id}:{code}").as_bytes(),
    ))
}

fn totp_kid(user: &User) -> String {
    format!("totp:{}", user.id)
}

fn pending_kid(session_id: &SsoSessionId) -> String {
    format!("totp-pending:{session_id}")
}

/// Whether a sign-in may set up a first authenticator: during onboarding
/// (a temporary password) or after an emailed code.
fn may_enroll_at_sign_in(session: &SsoSession) -> bool {
    session.onboarding
        || session
            .second_factor
            .is_some_and(|(f, _)| f == Factor::Email)
}

/// `a***@example.com`: enough for the user to recognise, little for anyone
/// looking over their shoulder.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

impl SignIn {
    fn effective_setting(&self, stored: Option<&str>) -> MfaSetting {
        let minimum = self.settings.user_mfa_minimum;
        stored
            .and_then(MfaSetting::parse)
            .unwrap_or(minimum)
            .max(minimum)
    }

    /// Whether this sign-in needs a second factor, and which.
    pub(super) async fn factor_needed(
        &self,
        session: &SsoSession,
        app: &App,
        user: &User,
        record: &SecondFactorRecord,
        now: DateTime<Utc>,
    ) -> Result<Option<Factor>, CoreError> {
        match app.mfa_policy {
            MfaPolicy::Totp => return Ok(Some(Factor::Totp)),
            MfaPolicy::Email => return Ok(Some(Factor::Email)),
            MfaPolicy::None => {}
        }
        // A device enrolled through ADE's sign-in is bound to the user and
        // then answers device-bound sign-ins: a password alone (which may
        // be phished) is never enough for one.
        let asked = self.is_first_party(app)
            || match self.effective_setting(record.setting.as_deref()) {
                MfaSetting::Off => false,
                MfaSetting::Always => true,
                MfaSetting::Risk => {
                    !self
                        .store
                        .known_login_ip(&user.id, &session.ip, now - KNOWN_ADDRESS_WINDOW)
                        .await?
                }
            };
        Ok(asked.then(|| {
            if record.totp_secret.is_none() && self.mail.is_some() {
                Factor::Email
            } else {
                Factor::Totp
            }
        }))
    }

    /// The page for `factor`: the code form, the authenticator enrollment,
    /// or (for email) the form after a code went out.
    pub(super) async fn factor_step(
        &self,
        session: &SsoSession,
        user: &User,
        factor: Factor,
        record: &SecondFactorRecord,
        now: DateTime<Utc>,
    ) -> Result<Step, CoreError> {
        match factor {
            Factor::Totp => {
                if record.totp_secret.is_some() {
                    return Ok(Step::Totp(None));
                }
                // A password alone never sets up a second factor: a first
                // authenticator is added at sign-in only during onboarding
                // (a temporary password the admin gave out) or after an
                // emailed code proved the mailbox.
                if !may_enroll_at_sign_in(session) {
                    if self.mail.is_some() {
                        return Box::pin(self.factor_step(
                            session,
                            user,
                            Factor::Email,
                            record,
                            now,
                        ))
                        .await;
                    }
                    return Ok(Step::Failed(LoginFailure::EnrollmentNotAllowed));
                }
                let enrollment = self.totp_enrollment(session, user, now).await?;
                Ok(Step::Totp(Some(enrollment)))
            }
            Factor::Email => {
                if self.mail.is_none() {
                    return Ok(Step::Failed(LoginFailure::SecondFactorUnavailable));
                }
                let pending = self
                    .store
                    .challenge(&session.id)
                    .await?
                    .filter(|c| c.kind == KIND_EMAIL && c.expires_at > now);
                if pending.is_none() && !self.send_email_code(session, user, now).await? {
                    return Ok(Step::Failed(LoginFailure::SecondFactorUnavailable));
                }
                Ok(Step::EmailCode {
                    to: mask_email(&user.email),
                })
            }
        }
    }

    /// The session's authenticator enrollment in progress, or a new one.
    async fn totp_enrollment(
        &self,
        session: &SsoSession,
        user: &User,
        now: DateTime<Utc>,
    ) -> Result<TotpEnrollment, CoreError> {
        let keys = self.ca.token_keys();
        let existing = self
            .store
            .challenge(&session.id)
            .await?
            .filter(|c| c.kind == KIND_ENROLL && c.expires_at > now)
            .and_then(|c| c.pending_secret)
            .and_then(|sealed| keys.open(&pending_kid(&session.id), &sealed).ok())
            .and_then(|hex_secret| hex::decode(hex_secret).ok());
        let secret = match existing {
            Some(bytes) => TotpSecret::from_bytes(bytes),
            None => {
                let secret = TotpSecret::generate()?;
                let sealed =
                    keys.seal(&pending_kid(&session.id), &hex::encode(secret.as_bytes()))?;
                self.store
                    .put_challenge(&Challenge {
                        session_id: session.id.clone(),
                        kind: KIND_ENROLL.to_owned(),
                        pending_secret: Some(sealed),
                        code_hash: None,
                        sent_at: now,
                        expires_at: now + ENROLL_TTL,
                        attempts: 0,
                    })
                    .await?;
                secret
            }
        };
        Ok(TotpEnrollment {
            secret: secret.base32(),
            uri: secret.provisioning_uri(TOTP_ISSUER, &user.email),
        })
    }

    /// Sends a new code to the user's address; false if it could not go.
    /// Only while the sign-in asks for an emailed code (see
    /// [`SignIn::resend_email_code`]).
    pub(super) async fn send_email_code(
        &self,
        session: &SsoSession,
        user: &User,
        now: DateTime<Utc>,
    ) -> Result<bool, CoreError> {
        let Some(mail) = &self.mail else {
            return Ok(false);
        };
        let bytes = latchkey_certs::random_bytes::<4>()?;
        let code = format!("{:06}", u32::from_be_bytes(bytes) % 1_000_000);
        self.store
            .put_challenge(&Challenge {
                session_id: session.id.clone(),
                kind: KIND_EMAIL.to_owned(),
                pending_secret: None,
                code_hash: Some(code_hash(&session.id, &code)),
                sent_at: now,
                expires_at: now + EMAIL_CODE_TTL,
                attempts: 0,
            })
            .await?;
        let body = format!(
            "Latchkey sign-in code: {code}\n\
             It expires in {minutes} minutes. If you did not try to sign in, tell your IT team.\n\n\
             Latchkey サインインコード: {code}\n\
             {minutes} 分間有効です。サインインしようとしていない場合は、IT 管理者に連絡してください。\n",
            minutes = EMAIL_CODE_TTL.num_minutes()
        );
        match mail
            .send(
                &user.email,
                "Latchkey sign-in code / サインインコード",
                &body,
            )
            .await
        {
            Ok(()) => Ok(true),
            Err(e) => {
                tracing::warn!(error = %e, "could not send a sign-in code");
                self.store.delete_challenge(&session.id).await?;
                Ok(false)
            }
        }
    }

    /// "Send a new code": at most one every 30 seconds.
    pub async fn resend_email_code(
        &self,
        session: &SsoSession,
        now: DateTime<Utc>,
    ) -> Result<bool, CoreError> {
        let Some(user) = self.session_user(session).await? else {
            return Ok(false);
        };
        // Nothing is sent unless an emailed code is the factor in play: a
        // code this sign-in already sent, not yet used.
        let Some(challenge) = self
            .store
            .challenge(&session.id)
            .await?
            .filter(|c| c.kind == KIND_EMAIL)
        else {
            return Ok(false);
        };
        if now - challenge.sent_at < RESEND_AFTER {
            return Ok(true);
        }
        self.send_email_code(session, &user, now).await
    }

    /// The active user a signed-in session belongs to.
    async fn session_user(&self, session: &SsoSession) -> Result<Option<User>, CoreError> {
        let (Some(user_id), Some(_)) = (&session.user_id, session.auth_time) else {
            return Ok(None);
        };
        Ok(self
            .store
            .user_by_id(user_id)
            .await?
            .filter(|u| u.status == UserStatus::Active))
    }

    /// A one-time code typed at sign-in or on the account page: the emailed
    /// code when one is waiting, otherwise a TOTP code (of the enrolled
    /// authenticator, or of the one being enrolled, which it then confirms).
    pub async fn submit_code(
        &self,
        session: &SsoSession,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<CodeOutcome, CoreError> {
        let Some(user) = self.session_user(session).await? else {
            return Ok(CodeOutcome::Expired);
        };
        let reserved = match self
            .reserve_guess(Guess::Code, &user.email, &session.ip, now)
            .await?
        {
            Ok(reserved) => reserved,
            Err(left) => {
                self.code_event(session, &user, "otp", Some("locked_out"), now)
                    .await?;
                return Ok(CodeOutcome::LockedOut(left.num_seconds().max(1)));
            }
        };
        let challenge = self
            .store
            .challenge(&session.id)
            .await?
            .filter(|c| c.expires_at > now);
        let (method, accepted) = match challenge {
            Some(c) if c.kind == KIND_EMAIL => ("email", self.check_email_code(&c, code).await?),
            // An enrollment counts at sign-in only where the sign-in may
            // set one up (see `factor_step`).
            Some(c) if c.kind == KIND_ENROLL && may_enroll_at_sign_in(session) => {
                ("totp", self.confirm_enrollment(&c, &user, code, now).await?)
            }
            _ => ("totp", self.check_totp(&user, code, now).await?),
        };
        if !accepted {
            self.code_event(session, &user, method, Some("bad_code"), now)
                .await?;
            return Ok(CodeOutcome::Rejected);
        }
        let mut session = session.clone();
        let factor = if method == "email" {
            Factor::Email
        } else {
            Factor::Totp
        };
        session.second_factor = Some((factor, now));
        let Some(secret) = self.save_session_auth(&session).await? else {
            return Ok(CodeOutcome::Expired);
        };
        self.code_event(&session, &user, method, None, now).await?;
        self.guess_passed(reserved).await?;
        Ok(CodeOutcome::SignedIn(secret))
    }

    /// The first code from an authenticator added on the account page: it
    /// is stored, and the current sign-in gains nothing from it.
    pub async fn confirm_account_totp(
        &self,
        session: &SsoSession,
        user: &User,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<CodeOutcome, CoreError> {
        if !self.stepped_up(session, user, now).await? {
            return Ok(CodeOutcome::StepUpNeeded);
        }
        let Some(challenge) = self
            .store
            .challenge(&session.id)
            .await?
            .filter(|c| c.kind == KIND_ENROLL && c.expires_at > now)
        else {
            return Ok(CodeOutcome::Expired);
        };
        let reserved = match self
            .reserve_guess(Guess::Code, &user.email, &session.ip, now)
            .await?
        {
            Ok(reserved) => reserved,
            Err(left) => return Ok(CodeOutcome::LockedOut(left.num_seconds().max(1))),
        };
        if !self.confirm_enrollment(&challenge, user, code, now).await? {
            return Ok(CodeOutcome::Rejected);
        }
        self.guess_passed(reserved).await?;
        Ok(CodeOutcome::Accepted)
    }

    async fn code_event(
        &self,
        session: &SsoSession,
        user: &User,
        method: &str,
        failure: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        let result = if failure.is_some() { "failed" } else { "ok" };
        self.login_event(
            session,
            None,
            (method, result, failure.map(str::to_owned)),
            Some(user),
            None,
            now,
        )
        .await
    }

    pub(super) async fn check_email_code(
        &self,
        challenge: &Challenge,
        code: &str,
    ) -> Result<bool, CoreError> {
        let code = code.trim();
        if !self
            .store
            .spend_challenge_attempt(&challenge.session_id, EMAIL_CODE_ATTEMPTS)
            .await?
        {
            return Ok(false);
        }
        let matches = challenge
            .code_hash
            .as_deref()
            .is_some_and(|h| super::constant_eq(h, &code_hash(&challenge.session_id, code)));
        // Deleting is the compare-and-set: only one request redeems a code.
        Ok(matches && self.store.delete_challenge(&challenge.session_id).await?)
    }

    pub(super) async fn check_totp(
        &self,
        user: &User,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, CoreError> {
        let record = self.store.second_factor(&user.id).await?;
        let Some(sealed) = record.totp_secret else {
            return Ok(false);
        };
        let secret = self.open_totp_secret(user, &sealed)?;
        match totp::verify(&secret, code, now, record.totp_last_step) {
            Some(step) => Ok(self.store.use_totp_step(&user.id, step).await?),
            None => Ok(false),
        }
    }

    fn open_totp_secret(&self, user: &User, sealed: &str) -> Result<TotpSecret, CoreError> {
        let hex_secret = self.ca.token_keys().open(&totp_kid(user), sealed)?;
        let bytes = hex::decode(hex_secret)
            .map_err(|_| InternalError::Broken("stored TOTP secret is not hex"))?;
        Ok(TotpSecret::from_bytes(bytes))
    }

    /// A code from the authenticator being enrolled: stores its secret.
    async fn confirm_enrollment(
        &self,
        challenge: &Challenge,
        user: &User,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, CoreError> {
        let keys = self.ca.token_keys();
        let Some(secret) = challenge
            .pending_secret
            .as_deref()
            .and_then(|sealed| keys.open(&pending_kid(&challenge.session_id), sealed).ok())
            .and_then(|h| hex::decode(h).ok())
            .map(TotpSecret::from_bytes)
        else {
            return Ok(false);
        };
        let Some(step) = totp::verify(&secret, code, now, None) else {
            return Ok(false);
        };
        let sealed = keys.seal(&totp_kid(user), &hex::encode(secret.as_bytes()))?;
        let tx = self.store.begin().await?;
        if !tx.delete_challenge(&challenge.session_id).await? {
            return Ok(false);
        }
        tx.set_totp_secret(&user.id, Some(&sealed), Some(step), now)
            .await?;
        tx.audit(&AuditEntry {
            at: now,
            actor: Actor::User(user.email.clone()),
            action: AuditAction::UserTotpEnroll,
            target: user.email.clone(),
            outcome: AuditOutcome::Ok,
            detail: "authenticator app enrolled".into(),
        })
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    // ---- the account page ----

    pub async fn second_factor_view(&self, user: &User) -> Result<SecondFactorView, CoreError> {
        let record = self.store.second_factor(&user.id).await?;
        Ok(SecondFactorView {
            totp_enrolled: record.totp_secret.is_some(),
            setting: self.effective_setting(record.setting.as_deref()),
            minimum: self.settings.user_mfa_minimum,
            email_available: self.mail.is_some(),
        })
    }

    /// The user chose when to be asked; refused below the server's floor,
    /// and without a recent step-up.
    pub async fn set_mfa_setting(
        &self,
        session: &SsoSession,
        user: &User,
        setting: MfaSetting,
        now: DateTime<Utc>,
    ) -> Result<MfaChange, CoreError> {
        if setting < self.settings.user_mfa_minimum {
            return Ok(MfaChange::BelowMinimum);
        }
        if !self.stepped_up(session, user, now).await? {
            return Ok(MfaChange::StepUpNeeded);
        }
        let tx = self.store.begin().await?;
        tx.set_mfa_setting(&user.id, setting.as_str(), now).await?;
        tx.audit(&AuditEntry {
            at: now,
            actor: Actor::User(user.email.clone()),
            action: AuditAction::UserMfaSetting,
            target: user.email.clone(),
            outcome: AuditOutcome::Ok,
            detail: format!("second factor: {}", setting.as_str()),
        })
        .await?;
        tx.commit().await?;
        Ok(MfaChange::Saved)
    }

    /// Starts (or shows again) adding or replacing an authenticator from
    /// the account page; `None` without a recent step-up (which, for a
    /// replacement, included a code from the current authenticator).
    pub async fn start_totp_enrollment(
        &self,
        session: &SsoSession,
        user: &User,
        now: DateTime<Utc>,
    ) -> Result<Option<TotpEnrollment>, CoreError> {
        if !self.stepped_up(session, user, now).await? {
            return Ok(None);
        }
        self.totp_enrollment(session, user, now).await.map(Some)
    }

    /// Whether the account page has an authenticator enrollment open.
    pub async fn enrollment_open(
        &self,
        session: &SsoSession,
        now: DateTime<Utc>,
    ) -> Result<bool, CoreError> {
        Ok(self
            .store
            .challenge(&session.id)
            .await?
            .is_some_and(|c| c.kind == KIND_ENROLL && c.expires_at > now))
    }

    /// Removes the authenticator: the password proved within the step-up
    /// window and a current code from the authenticator itself (a
    /// borrowed, unlocked browser is not enough).
    pub async fn remove_totp(
        &self,
        session: &SsoSession,
        user: &User,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<CodeOutcome, CoreError> {
        if !self.password_fresh(session, user, now) {
            return Ok(CodeOutcome::StepUpNeeded);
        }
        let reserved = match self
            .reserve_guess(Guess::Code, &user.email, &session.ip, now)
            .await?
        {
            Ok(reserved) => reserved,
            Err(left) => return Ok(CodeOutcome::LockedOut(left.num_seconds().max(1))),
        };
        if !self.check_totp(user, code, now).await? {
            return Ok(CodeOutcome::Rejected);
        }
        self.guess_passed(reserved).await?;
        let tx = self.store.begin().await?;
        tx.set_totp_secret(&user.id, None, None, now).await?;
        tx.audit(&AuditEntry {
            at: now,
            actor: Actor::User(user.email.clone()),
            action: AuditAction::UserTotpRemove,
            target: user.email.clone(),
            outcome: AuditOutcome::Ok,
            detail: "authenticator app removed".into(),
        })
        .await?;
        tx.commit().await?;
        Ok(CodeOutcome::Accepted)
    }

    /// The user's sign-in history as the account page lists it (the last
    /// 200 events), newest or oldest first.
    pub async fn account_history(
        &self,
        user: &User,
        newest_first: bool,
    ) -> Result<Vec<HistoryRow>, CoreError> {
        let apps = self.store.list_apps().await?;
        let devices = self.store.devices_of_user(&user.email).await?;
        let mut rows: Vec<HistoryRow> = self
            .store
            .login_events(&user.id, 200)
            .await?
            .into_iter()
            .map(|event| HistoryRow {
                app: event.client_id.as_ref().map(|id| {
                    apps.iter()
                        .find(|a| a.client_id == *id)
                        .map(|a| a.name.clone())
                        .or_else(|| self.first_party_app(id).map(|a| a.name))
                        .unwrap_or_else(|| id.to_string())
                }),
                device: event.device_id.as_ref().map(|id| {
                    devices
                        .iter()
                        .find(|d| d.id == *id)
                        .map_or_else(|| id.to_string(), |d| d.hostname.clone())
                }),
                at: event.at,
                ip: event.ip,
                user_agent: event.user_agent,
                method: event.method,
                ok: event.result == "ok",
                reason: event.reason,
            })
            .collect();
        if !newest_first {
            rows.reverse();
        }
        Ok(rows)
    }

    /// The user's page language.
    pub async fn set_user_locale(
        &self,
        user: &User,
        locale: &str,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        self.store.set_user_locale(&user.id, locale, now).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_order_from_off_to_always() {
        assert!(MfaSetting::Off < MfaSetting::Risk);
        assert!(MfaSetting::Risk < MfaSetting::Always);
        for s in MfaSetting::ALL {
            assert_eq!(MfaSetting::parse(s.as_str()), Some(s));
        }
        assert_eq!(MfaSetting::parse("sometimes"), None);
    }

    #[test]
    fn masked_addresses_keep_the_first_letter_and_the_domain() {
        assert_eq!(mask_email("aiko@example.jp"), "a***@example.jp");
        assert_eq!(mask_email("not-an-address"), "***");
    }

    #[test]
    fn code_hashes_are_bound_to_the_session() {
        let (s1, s2) = (
            SsoSessionId::from_bytes([1; 16]),
            SsoSessionId::from_bytes([2; 16]),
        );
        assert_ne!(code_hash(&s1, "123456"), code_hash(&s2, "123456"));
        assert_eq!(code_hash(&s1, "123456"), code_hash(&s1, "123456"));
    }
}
