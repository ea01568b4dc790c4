//! Step-up: what the account page asks before it changes a second factor,
//! the second-factor setting or the password.
//!
//! A password alone never changes how an account is protected. Every such
//! change needs a session that passed all of the user's factors within the
//! last [`STEP_UP_WINDOW`]: the password, and the authenticator app when
//! one is enrolled (else an emailed code, when mail is set up). Replacing
//! or removing an authenticator therefore needs a current code from it. A
//! user with neither (no authenticator, no mail server) changes nothing
//! with a password alone: only a sign-in with a temporary password from
//! the admin may. A user who lost their authenticator is reset by an admin
//! (`latchctl user reset-mfa`).

use chrono::{DateTime, Duration, Utc};

use super::mfa::KIND_EMAIL;
use super::{NewPasswordProblem, validate_new_password};
use crate::core::CoreError;
use crate::core::limits::Guess;
use crate::core::passwords::Password;
use crate::core::sso::SignIn;
use crate::core::users::PasswordCheck;
use crate::domain::sign_in::Factor;
use crate::domain::sign_in::{LoginEvent, SsoSession};
use crate::domain::user::User;

/// How long after a step-up the account page may change protections.
pub const STEP_UP_WINDOW: Duration = Duration::minutes(5);

/// What a step-up asks for, besides the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepUpFactor {
    /// The user has no second factor (and no mail is set up).
    None,
    /// A code from the enrolled authenticator app.
    Totp,
    /// A code sent by email.
    Email,
}

/// The outcome of a step-up form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepUpOutcome {
    /// Verified; the session's new cookie secret.
    Verified(String),
    /// Something was wrong: the same words whatever it was.
    Rejected,
    /// Too many failures; try again after this many seconds.
    LockedOut(i64),
}

/// The outcome of a password change on the account page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordChange {
    /// Changed; the user's other sessions and refresh tokens ended; the
    /// session's new cookie secret.
    Changed(String),
    /// The session has not passed every factor recently.
    StepUpNeeded,
    /// The current password is not correct.
    WrongCurrent,
    /// Too many failures; try again after this many seconds.
    LockedOut(i64),
    /// The new password is not acceptable (`too_short`, `mismatch`, …).
    Invalid(NewPasswordProblem),
}

impl SignIn {
    /// The second factor a step-up asks of `user`.
    pub async fn step_up_factor(&self, user: &User) -> Result<StepUpFactor, CoreError> {
        let record = self.store.second_factor(&user.id).await?;
        Ok(if record.totp_secret.is_some() {
            StepUpFactor::Totp
        } else if self.mail.is_some() {
            StepUpFactor::Email
        } else {
            StepUpFactor::None
        })
    }

    /// Whether the session passed every factor of the user's within
    /// `window` (the factor of the user's kind: a TOTP user's code from
    /// the app, not an emailed one).
    async fn passed_all_factors_within(
        &self,
        session: &SsoSession,
        user: &User,
        window: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, CoreError> {
        if !self.password_fresh(session, user, now) {
            return Ok(false);
        }
        let passed = |wanted: Option<Factor>| {
            session
                .second_factor
                .is_some_and(|(f, at)| now - at <= window && wanted.is_none_or(|w| w == f))
        };
        Ok(match self.step_up_factor(user).await? {
            // With no second factor to ask for, a password alone would be
            // enough, and a phished password must not be: only a sign-in
            // with a temporary password from the admin (onboarding, or a
            // reset) may change protections.
            StepUpFactor::None => session.onboarding,
            StepUpFactor::Totp => passed(Some(Factor::Totp)),
            StepUpFactor::Email => passed(None),
        })
    }

    /// Whether the session proved the user's password within
    /// [`STEP_UP_WINDOW`].
    pub fn password_fresh(&self, session: &SsoSession, user: &User, now: DateTime<Utc>) -> bool {
        session.user_id.as_ref() == Some(&user.id)
            && session
                .auth_time
                .is_some_and(|at| now - at <= STEP_UP_WINDOW)
    }

    /// Whether the session is signed in beyond the password: it passed a
    /// second factor when the user has one to pass. Until then the account
    /// page shows only the step-up form.
    pub async fn signed_in_beyond_password(
        &self,
        session: &SsoSession,
        user: &User,
    ) -> Result<bool, CoreError> {
        if session.user_id.as_ref() != Some(&user.id) || session.auth_time.is_none() {
            return Ok(false);
        }
        Ok(self.step_up_factor(user).await? == StepUpFactor::None
            || session.second_factor.is_some())
    }

    /// Whether the account page may change protections now.
    pub async fn stepped_up(
        &self,
        session: &SsoSession,
        user: &User,
        now: DateTime<Utc>,
    ) -> Result<bool, CoreError> {
        self.passed_all_factors_within(session, user, STEP_UP_WINDOW, now)
            .await
    }

    /// Sends the emailed code a step-up asks for (when that is the user's
    /// factor); false when none went out.
    pub async fn send_step_up_code(
        &self,
        session: &SsoSession,
        user: &User,
        now: DateTime<Utc>,
    ) -> Result<bool, CoreError> {
        if self.step_up_factor(user).await? != StepUpFactor::Email {
            return Ok(false);
        }
        // One mail per half minute at most; a code sent meanwhile stands.
        if let Some(challenge) = self.store.challenge(&session.id).await?
            && challenge.kind == KIND_EMAIL
            && challenge.expires_at > now
            && now - challenge.sent_at < super::mfa::RESEND_AFTER
        {
            return Ok(true);
        }
        self.send_email_code(session, user, now).await
    }

    /// "Confirm it's you": the password again, and a code of the user's
    /// second factor. Failures count towards the same lockouts as sign-in.
    pub async fn step_up(
        &self,
        session: &SsoSession,
        user: &User,
        password: &Password,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<StepUpOutcome, CoreError> {
        let password_guess = match self
            .reserve_guess(Guess::Password, &user.email, &session.ip, now)
            .await?
        {
            Ok(reserved) => reserved,
            Err(left) => return Ok(StepUpOutcome::LockedOut(left.num_seconds().max(1))),
        };
        let password_ok = matches!(
            self.check_password(&user.email, password, now).await?,
            PasswordCheck::Valid { user: ref checked, .. } if checked.id == user.id
        );
        let factor = self.step_up_factor(user).await?;
        // The code is checked only after the password, so a wrong password
        // spends no code (and no TOTP step); it is counted as a guess too.
        let code_guess = if password_ok && factor != StepUpFactor::None {
            match self
                .reserve_guess(Guess::Code, &user.email, &session.ip, now)
                .await?
            {
                Ok(reserved) => Some(reserved),
                Err(left) => return Ok(StepUpOutcome::LockedOut(left.num_seconds().max(1))),
            }
        } else {
            None
        };
        let code_ok = password_ok
            && match factor {
                StepUpFactor::None => true,
                StepUpFactor::Totp => self.check_totp(user, code, now).await?,
                StepUpFactor::Email => match self
                    .store
                    .challenge(&session.id)
                    .await?
                    .filter(|c| c.kind == KIND_EMAIL && c.expires_at > now)
                {
                    Some(challenge) => self.check_email_code(&challenge, code).await?,
                    None => false,
                },
            };
        let event = |result: &str, reason: Option<&str>| LoginEvent {
            at: now,
            user_id: Some(user.id.clone()),
            login: user.email.clone(),
            ip: session.ip.clone(),
            user_agent: session.user_agent.clone(),
            client_id: None,
            device_id: None,
            method: "step-up".into(),
            result: result.into(),
            reason: reason.map(str::to_owned),
        };
        if password_ok {
            self.guess_passed(password_guess).await?;
        }
        if !code_ok {
            let reason = if password_ok {
                "bad_code"
            } else {
                "bad_credentials"
            };
            self.store
                .insert_login_event(&event("failed", Some(reason)))
                .await?;
            return Ok(StepUpOutcome::Rejected);
        }
        let mut session = session.clone();
        session.auth_time = Some(now);
        session.second_factor = match factor {
            StepUpFactor::None => session.second_factor,
            StepUpFactor::Totp => Some((Factor::Totp, now)),
            StepUpFactor::Email => Some((Factor::Email, now)),
        };
        let Some(secret) = self.save_session_auth(&session).await? else {
            return Ok(StepUpOutcome::Rejected);
        };
        self.store.insert_login_event(&event("ok", None)).await?;
        if let Some(reserved) = code_guess {
            self.guess_passed(reserved).await?;
        }
        Ok(StepUpOutcome::Verified(secret))
    }

    /// The account page's password change: the current password, a
    /// session that passed every factor within [`STEP_UP_WINDOW`], and an
    /// acceptable new password. The user's other sessions and every
    /// refresh token end.
    pub async fn change_own_password(
        &self,
        session: &SsoSession,
        user: &User,
        current: &Password,
        new: (&str, &str),
        now: DateTime<Utc>,
    ) -> Result<PasswordChange, CoreError> {
        if !self.stepped_up(session, user, now).await? {
            return Ok(PasswordChange::StepUpNeeded);
        }
        let reserved = match self
            .reserve_guess(Guess::Password, &user.email, &session.ip, now)
            .await?
        {
            Ok(reserved) => reserved,
            Err(left) => return Ok(PasswordChange::LockedOut(left.num_seconds().max(1))),
        };
        let current_ok = matches!(
            self.check_password(&user.email, current, now).await?,
            PasswordCheck::Valid { user: ref checked, .. } if checked.id == user.id
        );
        if !current_ok {
            return Ok(PasswordChange::WrongCurrent);
        }
        self.guess_passed(reserved).await?;
        if let Err(problem) = validate_new_password(new.0, new.1) {
            return Ok(PasswordChange::Invalid(problem));
        }
        let new_password = Password::new(new.0.to_owned());
        if !self
            .replace_password(
                session,
                user,
                &new_password,
                "password changed on the account page",
                now,
            )
            .await?
        {
            return Ok(PasswordChange::StepUpNeeded);
        }
        let mut session = session.clone();
        session.auth_time = Some(now);
        session.onboarding = false;
        match self.save_session_auth(&session).await? {
            Some(secret) => Ok(PasswordChange::Changed(secret)),
            None => Ok(PasswordChange::StepUpNeeded),
        }
    }
}
