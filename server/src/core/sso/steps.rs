//! The sign-in steps: [`SignIn::next_step`] works out what the browser must
//! see next from what the database holds, and the forms that move a
//! sign-in on: the password, a temporary password replaced, and, once
//! every factor the app asks for holds, the grant recorded and the code
//! handed back to the client.
//!
//! The order is fixed: the address rules, the password, a temporary
//! password replaced, the second factor (`mfa.rs`), the device
//! (`device_auth.rs`), then the code. A break-glass user skips the device
//! requirement, audited.
//!
//! This file does not check a device's answer (`device_answer.rs`), does
//! not issue tokens (`tokens.rs`) and renders no page.

use chrono::{DateTime, Utc};

use super::{CODE_TTL, LoginFailure, MAX_LOGIN, Step, random_hex, redirect_with, truncate};
use crate::core::auth::secret_hash;
use crate::core::limits::Guess;
use crate::core::passwords::Password;
use crate::core::sso::SignIn;
use crate::core::users::PasswordCheck;
use crate::core::{CoreError, validate_email};
use crate::domain::app::{App, DevicePolicy, MfaPolicy};
use crate::domain::audit::{Actor, AuditAction, AuditEntry, AuditOutcome};
use crate::domain::device::Device;
use crate::domain::ids::GrantId;
use crate::domain::sign_in::Acr;
use crate::domain::sign_in::AuthRequest;
use crate::domain::sign_in::Factor;
use crate::domain::sign_in::Grant;
use crate::domain::sign_in::LoginEvent;
use crate::domain::sign_in::SsoSession;
use crate::domain::user::{User, UserKind, UserStatus};
use crate::store::PasswordRecord;

/// Outcome of the sign-in form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordOutcome {
    /// Signed in; the session's new cookie secret.
    Accepted(String),
    /// The same message whatever was wrong (unknown user, wrong password,
    /// suspended), so the form tells nobody which accounts exist.
    Rejected,
    TemporaryExpired,
    /// Too many failures; try again after this many seconds.
    LockedOut(i64),
    /// The browser's address is outside the server's rules.
    NetworkDenied,
}

/// Why a new password was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewPasswordProblem {
    /// The two fields differ.
    Mismatch,
    /// Fewer than 12 characters.
    TooShort,
    /// More than 256 characters.
    TooLong,
}

/// A password's acceptable shape: the length NIST SP 800-63B asks for,
/// nothing else imposed.
pub fn validate_new_password(password: &str, confirm: &str) -> Result<(), NewPasswordProblem> {
    if password != confirm {
        return Err(NewPasswordProblem::Mismatch);
    }
    let chars = password.chars().count();
    if chars < 12 {
        return Err(NewPasswordProblem::TooShort);
    }
    if chars > 256 {
        return Err(NewPasswordProblem::TooLong);
    }
    Ok(())
}

impl SignIn {
    /// Checks a user's password at `now` (the first step of a sign-in).
    pub async fn check_password(
        &self,
        email: &str,
        password: &Password,
        now: DateTime<Utc>,
    ) -> Result<PasswordCheck, CoreError> {
        // Every path runs one Argon2 verification, so the time taken does
        // not tell a live account from an unknown or disabled one.
        let user = match validate_email(email) {
            Ok(email) => self.store.user_by_email(&email).await?,
            Err(_) => None,
        };
        let record = match &user {
            Some(user) => self.store.password(&user.id).await?,
            None => None,
        };
        let Some(record) = record else {
            self.passwords.verify_dummy(password).await?;
            return Ok(PasswordCheck::Unusable);
        };
        let matches = self.passwords.verify(password, &record.hash).await?;
        let Some(user) = user.filter(|u| u.status == UserStatus::Active) else {
            return Ok(PasswordCheck::Unusable);
        };
        if !matches {
            return Ok(PasswordCheck::Wrong);
        }
        if record.expires_at.is_some_and(|at| at <= now) {
            return Ok(PasswordCheck::Expired);
        }
        Ok(PasswordCheck::Valid {
            user: Box::new(user),
            must_change: record.must_change,
        })
    }

    /// Works out what the browser must see next for `request_id`.
    pub async fn next_step(
        &self,
        session: &SsoSession,
        request_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Step, CoreError> {
        self.step(session, request_id, true, now).await
    }

    /// `prompt=none`: a code if the session already satisfies everything,
    /// otherwise the step that would need the user — without starting a
    /// second factor or a device ceremony (no mail sent, nothing pushed).
    pub async fn silent_step(
        &self,
        session: &SsoSession,
        request_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Step, CoreError> {
        self.step(session, request_id, false, now).await
    }

    /// The request, its app and the user once everything before the
    /// device step holds (the address rules, the password, a temporary
    /// password replaced, the second factor); otherwise the step the
    /// browser must see.
    pub(super) async fn signed_in_for(
        &self,
        session: &SsoSession,
        request_id: &str,
        interactive: bool,
        now: DateTime<Utc>,
    ) -> Result<Result<(AuthRequest, App, User), Step>, CoreError> {
        let Some((request, app)) = self.open_request(session, request_id, now).await? else {
            return Ok(Err(Step::Failed(LoginFailure::Expired)));
        };
        if !self.network_allows(&session.ip, Some(&app)) {
            self.login_event(
                session,
                Some(&app.client_id),
                ("network", "failed", Some("network_denied".to_owned())),
                None,
                None,
                now,
            )
            .await?;
            return Ok(Err(Step::Failed(LoginFailure::NetworkDenied {
                ip: session.ip.clone(),
            })));
        }
        let (Some(user_id), Some(_)) = (&session.user_id, session.auth_time) else {
            return Ok(Err(Step::Password));
        };
        let Some(user) = self
            .store
            .user_by_id(user_id)
            .await?
            .filter(|u| u.status == UserStatus::Active)
        else {
            self.end_session(session, "user not active", now).await?;
            return Ok(Err(Step::Failed(LoginFailure::Expired)));
        };
        if self
            .store
            .password(&user.id)
            .await?
            .is_some_and(|p: PasswordRecord| p.must_change)
        {
            return Ok(Err(Step::ChangePassword));
        }
        let factors = self.store.second_factor(&user.id).await?;
        // An app that asks for TOTP is satisfied by nothing else; any other
        // demand by any factor that passed in this session.
        let strict = (app.mfa_policy == MfaPolicy::Totp).then_some(Factor::Totp);
        if !session.passed_factor(strict)
            && let Some(factor) = self
                .factor_needed(session, &app, &user, &factors, now)
                .await?
        {
            if !interactive {
                return Ok(Err(Step::Failed(LoginFailure::InteractionRequired)));
            }
            return self
                .factor_step(session, &user, factor, &factors, now)
                .await
                .map(Err);
        }
        // The user has signed in: the request is written now, before a
        // device transaction or a code refers to it.
        self.persist_request(&request).await?;
        Ok(Ok((request, app, user)))
    }

    async fn step(
        &self,
        session: &SsoSession,
        request_id: &str,
        interactive: bool,
        now: DateTime<Utc>,
    ) -> Result<Step, CoreError> {
        let (request, app, user) = match self
            .signed_in_for(session, request_id, interactive, now)
            .await?
        {
            Ok(ready) => ready,
            Err(step) => return Ok(step),
        };
        let mut session = session.clone();
        let mut new_secret = None;
        let device = if app.device_policy == DevicePolicy::None {
            None
        } else if user.kind == UserKind::BreakGlass {
            self.audit
                .record(AuditEntry {
                    at: now,
                    actor: Actor::User(user.email.clone()),
                    action: AuditAction::SsoBreakGlass,
                    target: app.name.clone(),
                    outcome: AuditOutcome::Ok,
                    detail: format!(
                        "BREAK-GLASS sign-in skipped the device requirement ({}) from {}",
                        app.device_policy.as_str(),
                        session.ip
                    ),
                })
                .await?;
            None
        } else if !interactive {
            // Only a device confirmation this session already holds, of
            // the kind the app needs, from this address, counts.
            match self.held_confirmation(&session, &app, &user, now).await? {
                Some(device) => Some(device),
                None => return Ok(Step::Failed(LoginFailure::InteractionRequired)),
            }
        } else {
            match self
                .device_step(&mut session, &request, &app, &user, now)
                .await?
            {
                Ok((device, secret)) => {
                    new_secret = secret;
                    Some(device)
                }
                Err(step) => return Ok(step),
            }
        };
        match self
            .issue_code(&session, &request, &app, &user, device.as_ref(), now)
            .await?
        {
            Step::Redirect(url, None) => Ok(Step::Redirect(url, new_secret)),
            other => Ok(other),
        }
    }

    /// All factors passed: record the grant and hand out a code.
    async fn issue_code(
        &self,
        session: &SsoSession,
        request: &AuthRequest,
        app: &App,
        user: &User,
        device: Option<&Device>,
        now: DateTime<Utc>,
    ) -> Result<Step, CoreError> {
        let code = random_hex::<32>()?;
        let proof = device.and(session.device.as_ref().map(|d| d.proof));
        let acr = match proof {
            Some(p) if p.is_bound() => Acr::DeviceBound,
            Some(_) => Acr::DeviceConfirm,
            None if session.second_factor.is_some() => Acr::Mfa,
            None => Acr::Password,
        };
        let amr = match proof {
            Some(_) => session.amr(),
            // A device confirmation the app did not ask for is not claimed.
            None => session
                .amr()
                .into_iter()
                .filter(|m| !m.is_device())
                .collect(),
        };
        let grant = Grant {
            id: GrantId::from_bytes(latchkey_certs::random_bytes::<16>()?),
            session_id: session.id.clone(),
            user_id: user.id.clone(),
            client_id: app.client_id.clone(),
            device_id: device.map(|d| d.id.clone()),
            scope: request.scope.clone(),
            nonce: request.nonce.clone(),
            redirect_uri: request.redirect_uri.clone(),
            code_challenge: request.code_challenge.clone(),
            code_expires_at: now + CODE_TTL,
            code_used_at: None,
            auth_time: session.auth_time.unwrap_or(now),
            amr,
            acr,
            created_at: now,
            ended_at: None,
        };
        let tx = self.store.begin().await?;
        if !tx.finish_auth_request(&request.id, now).await? {
            return Ok(Step::Failed(LoginFailure::Expired));
        }
        tx.insert_grant(&grant, &secret_hash(&code)).await?;
        tx.commit().await?;
        let method = if device.is_some() {
            "device"
        } else if user.kind == UserKind::BreakGlass && app.device_policy != DevicePolicy::None {
            "break-glass"
        } else if session.second_factor.is_some() {
            "otp"
        } else {
            "password"
        };
        self.login_event(
            session,
            Some(&app.client_id),
            (method, "ok", None),
            Some(user),
            device.map(|d| &d.id),
            now,
        )
        .await?;
        let mut params = vec![("code", code.as_str()), ("iss", self.issuer())];
        if let Some(state) = &request.state {
            params.push(("state", state));
        }
        Ok(Step::Redirect(
            redirect_with(&request.redirect_uri, &params),
            None,
        ))
    }

    /// The sign-in form was submitted.
    pub async fn submit_password(
        &self,
        session: &SsoSession,
        login: &str,
        password: &Password,
        now: DateTime<Utc>,
    ) -> Result<PasswordOutcome, CoreError> {
        let login = truncate(login.trim(), MAX_LOGIN);
        if !self.network_allows(&session.ip, None) {
            return Ok(PasswordOutcome::NetworkDenied);
        }
        // Counted before it is checked: parallel guesses cannot all pass.
        let reserved = match self
            .reserve_guess(Guess::Password, &login, &session.ip, now)
            .await?
        {
            Ok(reserved) => reserved,
            Err(left) => {
                self.store
                    .insert_login_event(&LoginEvent {
                        at: now,
                        user_id: None,
                        login: login.clone(),
                        ip: session.ip.clone(),
                        user_agent: session.user_agent.clone(),
                        client_id: None,
                        device_id: None,
                        method: "password".into(),
                        result: "failed".into(),
                        reason: Some("locked_out".into()),
                    })
                    .await?;
                return Ok(PasswordOutcome::LockedOut(left.num_seconds().max(1)));
            }
        };
        let check = self.check_password(&login, password, now).await?;
        let (user, outcome) = match check {
            PasswordCheck::Valid { user, must_change } => (
                Some((*user, must_change)),
                PasswordOutcome::Accepted(String::new()),
            ),
            PasswordCheck::Expired => (None, PasswordOutcome::TemporaryExpired),
            PasswordCheck::Wrong | PasswordCheck::Unusable => (None, PasswordOutcome::Rejected),
        };
        let failed = !matches!(outcome, PasswordOutcome::Accepted(_));
        let known = match &user {
            Some((user, _)) => Some(user.id.clone()),
            None => self
                .store
                .user_by_email(
                    &super::email::normalize(&login).unwrap_or_else(|_| login.to_lowercase()),
                )
                .await?
                .map(|u| u.id),
        };
        self.store
            .insert_login_event(&LoginEvent {
                at: now,
                user_id: known,
                login: login.clone(),
                ip: session.ip.clone(),
                user_agent: session.user_agent.clone(),
                client_id: None,
                device_id: None,
                method: "password".into(),
                result: if failed { "failed" } else { "ok" }.into(),
                reason: match outcome {
                    PasswordOutcome::Rejected => Some("bad_credentials".into()),
                    PasswordOutcome::TemporaryExpired => Some("temporary_password_expired".into()),
                    _ => None,
                },
            })
            .await?;
        let Some((user, temporary)) = user else {
            return Ok(outcome);
        };
        let mut session = session.clone();
        if session.user_id.as_ref() != Some(&user.id) {
            session.device = None;
        }
        // A device the same user confirmed earlier in this session still
        // counts (and is checked again at the next step); a second factor
        // is asked for again.
        session.user_id = Some(user.id.clone());
        session.auth_time = Some(now);
        session.second_factor = None;
        session.onboarding = temporary;
        let Some(secret) = self.save_session_auth(&session).await? else {
            return Ok(PasswordOutcome::Rejected);
        };
        // A second factor started for someone else in this browser is void.
        self.store.delete_challenge(&session.id).await?;
        self.guess_passed(reserved).await?;
        Ok(PasswordOutcome::Accepted(secret))
    }

    /// A user who signed in with a temporary password chose a new one.
    /// Only a password the server marked to be changed may be replaced
    /// here; any other change goes through the account page (the current
    /// password and a fresh sign-in with every factor). The user's other
    /// sessions and every refresh token end.
    pub async fn change_password(
        &self,
        session: &SsoSession,
        new_password: &Password,
        now: DateTime<Utc>,
    ) -> Result<bool, CoreError> {
        let (Some(user_id), Some(_)) = (&session.user_id, session.auth_time) else {
            return Ok(false);
        };
        let must_change = self
            .store
            .password(user_id)
            .await?
            .is_some_and(|p| p.must_change);
        if !must_change {
            return Ok(false);
        }
        // The audit entry names the user by e-mail address. A session's user
        // always exists (users are never removed); were it gone, the
        // password could not be set either.
        let Some(user) = self.store.user_by_id(user_id).await? else {
            return Ok(false);
        };
        self.replace_password(
            session,
            &user,
            new_password,
            "password changed at sign-in",
            now,
        )
        .await
    }

    /// Sets a user's new password, ends their other sessions and every
    /// refresh token, and audits it, in one transaction.
    pub(crate) async fn replace_password(
        &self,
        session: &SsoSession,
        user: &User,
        new_password: &Password,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, CoreError> {
        let user_id = &user.id;
        let hash = self.passwords.hash(new_password).await?;
        let tx = self.store.begin().await?;
        let set = tx
            .set_password(
                user_id,
                &PasswordRecord {
                    hash,
                    expires_at: None,
                    must_change: false,
                },
                now,
            )
            .await?;
        if !set {
            return Ok(false);
        }
        let ended = tx
            .end_user_sso_except(user_id, &session.id, "password changed", now)
            .await?;
        tx.audit(&AuditEntry {
            at: now,
            actor: Actor::User(user.email.clone()),
            action: AuditAction::UserPasswordChange,
            target: user_id.to_string(),
            outcome: AuditOutcome::Ok,
            detail: format!("{detail}; {ended} other sessions and grants ended"),
        })
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_passwords_need_twelve_characters_and_a_match() {
        assert_eq!(
            validate_new_password("short", "short"),
            Err(NewPasswordProblem::TooShort)
        );
        assert_eq!(
            validate_new_password("long enough pass", "long enough pas"),
            Err(NewPasswordProblem::Mismatch)
        );
        assert_eq!(
            validate_new_password(
                "パスワードは十二文字以上です",
                "パスワードは十二文字以上です"
            ),
            Ok(())
        );
    }
}
