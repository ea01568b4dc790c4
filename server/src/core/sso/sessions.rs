//! Browser sessions: the session a cookie names, a new session's secret,
//! the secret replaced whenever the session proves something more (no
//! session fixation), the CSRF token derived from it, sign-out, the
//! sign-in history rows a session leaves, the apps its home page lists,
//! and the purge of sign-in state nobody can use any more.
//!
//! A new browser's session exists in its cookie alone, its id derived
//! from the secret; its row is written at sign-in, when the secret is
//! replaced, so an old secret whose derived id has a row opens nothing.
//!
//! This file does not decide what a session may do next (`steps.rs`) and
//! does not set cookies: the HTTP layer in `api/` does.

use chrono::{DateTime, Utc};

use super::{BrowserContext, HISTORY_RETENTION, PURGE_AFTER, SESSION_TTL, random_hex};
use crate::core::auth::secret_hash;
use crate::core::sso::SignIn;
use crate::core::{CoreError, InternalError};
use crate::domain::app::App;
use crate::domain::ids::{ClientId, DeviceId, SsoSessionId};
use crate::domain::sign_in::LoginEvent;
use crate::domain::sign_in::SsoSession;
use crate::domain::user::User;

/// The id of a session that exists in its cookie alone, derived from the
/// cookie's secret (64 hex digits); `None` for anything else.
fn virtual_session_id(secret: &str) -> Option<SsoSessionId> {
    (secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit())).then(|| {
        SsoSessionId::from_digest(&latchkey_certs::sha256(
            format!("latchkey-session-id:{secret}").as_bytes(),
        ))
    })
}

fn unsaved_session(id: SsoSessionId, browser: &BrowserContext, now: DateTime<Utc>) -> SsoSession {
    SsoSession {
        id,
        user_id: None,
        ip: browser.ip.clone(),
        user_agent: browser.user_agent.clone(),
        created_at: now,
        expires_at: now + SESSION_TTL,
        auth_time: None,
        second_factor: None,
        device: None,
        onboarding: false,
        ended_at: None,
        persisted: false,
    }
}

impl SignIn {
    /// The live session a cookie names, if any.
    /// The session is loaded with the current request's address and user
    /// agent, so every check on it judges the browser asking now.
    pub async fn session_from_cookie(
        &self,
        secret: Option<&str>,
        browser: &BrowserContext,
        now: DateTime<Utc>,
    ) -> Result<Option<SsoSession>, CoreError> {
        let Some(secret) = secret.filter(|s| s.len() <= 128) else {
            return Ok(None);
        };
        if let Some(mut session) = self
            .store
            .session_by_secret_hash(&secret_hash(secret))
            .await?
        {
            if !session.is_live(now) {
                return Ok(None);
            }
            session.ip.clone_from(&browser.ip);
            session.user_agent.clone_from(&browser.user_agent);
            return Ok(Some(session));
        }
        // A session that exists in its cookie alone (nothing submitted
        // yet). Once its row is written its secret is replaced, so a row
        // under the same id means this secret is an old one: no session.
        let Some(id) = virtual_session_id(secret) else {
            return Ok(None);
        };
        if self.store.session(&id).await?.is_some() {
            return Ok(None);
        }
        Ok(Some(unsaved_session(id, browser, now)))
    }

    /// Records what the session has proved and gives it a new cookie
    /// secret (no session fixation): the new secret, or `None` when the
    /// session ended meanwhile.
    pub(crate) async fn save_session_auth(
        &self,
        session: &SsoSession,
    ) -> Result<Option<String>, CoreError> {
        let secret = random_hex::<32>()?;
        let hash = secret_hash(&secret);
        if !session.persisted {
            self.store.insert_session(session, &hash).await?;
        }
        Ok(self
            .store
            .update_session_auth(session, &hash)
            .await?
            .then_some(secret))
    }

    /// A new, unauthenticated session and the secret for its cookie.
    pub async fn start_session(
        &self,
        browser: &BrowserContext,
        now: DateTime<Utc>,
    ) -> Result<(SsoSession, String), CoreError> {
        let secret = random_hex::<32>()?;
        let id = virtual_session_id(&secret)
            .ok_or(InternalError::Broken("a new session secret is not hex"))?;
        // Nothing is written until the browser submits a form.
        Ok((unsaved_session(id, browser, now), secret))
    }

    /// The CSRF token of a session's forms, derived from its cookie secret
    /// (which never appears in a page).
    pub fn csrf_token(cookie_secret: &str) -> String {
        let digest = latchkey_certs::sha256(format!("latchkey-csrf:{cookie_secret}").as_bytes());
        hex::encode(digest.get(..16).unwrap_or(&digest))
    }

    /// Ends a session (sign-out) and the grants issued in it.
    pub async fn end_session(
        &self,
        session: &SsoSession,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        self.store.end_session(&session.id, reason, now).await?;
        Ok(())
    }

    pub(super) async fn login_event(
        &self,
        session: &SsoSession,
        client: Option<&ClientId>,
        event: (&str, &str, Option<String>),
        user: Option<&User>,
        device: Option<&DeviceId>,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        let (method, result, reason) = event;
        self.store
            .insert_login_event(&LoginEvent {
                at: now,
                user_id: user.map(|u| u.id.clone()),
                login: user.map(|u| u.email.clone()).unwrap_or_default(),
                ip: session.ip.clone(),
                user_agent: session.user_agent.clone(),
                client_id: client.cloned(),
                device_id: device.cloned(),
                method: method.to_owned(),
                result: result.to_owned(),
                reason,
            })
            .await?;
        Ok(())
    }

    /// Deletes sign-in state that can no longer be used (a day after it
    /// ended or expired) and sign-in history past its retention; run
    /// periodically. Returns the rows deleted.
    pub async fn purge_sso(&self, now: DateTime<Utc>) -> Result<u64, CoreError> {
        let tx = self.store.begin().await?;
        let deleted = tx
            .purge_expired(
                now - PURGE_AFTER,
                now - HISTORY_RETENTION,
                (
                    now - super::limits::WINDOW,
                    now - super::limits::DAILY_WINDOW,
                ),
                now,
            )
            .await?;
        tx.commit().await?;
        Ok(deleted)
    }

    /// Apps the session's user may open from the home page.
    pub async fn apps_for_home(&self) -> Result<Vec<App>, CoreError> {
        Ok(self.store.list_apps().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cookie-only session's id is the first 32 hex digits of its
    /// secret's digest; anything but a 64-digit hex secret has none.
    #[test]
    fn a_new_sessions_id_is_derived_from_its_secret() {
        let secret = "ab".repeat(32);
        let digest = hex::encode(latchkey_certs::sha256(
            format!("latchkey-session-id:{secret}").as_bytes(),
        ));
        assert_eq!(
            virtual_session_id(&secret).map(|id| id.to_string()),
            digest.get(..32).map(str::to_owned)
        );
        assert_eq!(virtual_session_id(&"g".repeat(64)), None);
        assert_eq!(virtual_session_id("ab"), None);
    }
}
