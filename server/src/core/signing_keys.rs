//! The SSO layer's token-signing keys: one active ES256 key signs; after a
//! rotation the old key stays in the JWKS for a day, longer than any token it
//! signed lives, so relying parties keep verifying them.

use chrono::{DateTime, Duration, Utc};
use latchkey_certs::jose::PublicJwk;

use super::auth::{AuthenticatedAdmin, Permission};
use super::model::{AuditEntry, AuditOutcome};
use super::{Core, CoreError};
use crate::store::StoredSigningKey;

/// How long a retired key stays published.
pub const KEEP_RETIRED: Duration = Duration::hours(24);

/// A signing key as an admin sees it.
#[derive(Debug, Clone)]
pub struct SigningKeyInfo {
    pub kid: String,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
}

impl Core {
    fn new_signing_key(&self, now: DateTime<Utc>) -> Result<StoredSigningKey, CoreError> {
        let key = self.ca.token_keys().new_signing_key()?;
        Ok(StoredSigningKey {
            kid: key.kid,
            private_key: key.stored_private_key,
            x: key.x,
            y: key.y,
            created_at: now,
            retired_at: None,
        })
    }

    /// Creates the first signing key when there is none (first start).
    pub async fn ensure_signing_key(&self, now: DateTime<Utc>) -> Result<(), CoreError> {
        let keys = self.store().signing_keys().await?;
        if keys.iter().any(|k| k.retired_at.is_none()) {
            return Ok(());
        }
        self.store()
            .insert_signing_key(&self.new_signing_key(now)?)
            .await?;
        Ok(())
    }

    /// Makes a new key the signing key; the old one is retired and stays
    /// published for [`KEEP_RETIRED`].
    pub async fn rotate_signing_key(
        &self,
        caller: &AuthenticatedAdmin,
        now: DateTime<Utc>,
    ) -> Result<SigningKeyInfo, CoreError> {
        self.authorize(
            caller,
            Permission::ManageApps,
            "rotate signing keys",
            "",
            now,
        )
        .await?;
        let key = self.new_signing_key(now)?;
        let tx = self.store().begin().await?;
        tx.retire_signing_keys(now, now - KEEP_RETIRED).await?;
        tx.insert_signing_key(&key).await?;
        tx.audit(&AuditEntry {
            at: now,
            actor: caller.actor(),
            action: "signing-key.rotate",
            target: key.kid.clone(),
            outcome: AuditOutcome::Ok,
            detail: "new ES256 signing key; the previous one stays published for 24h".into(),
        })
        .await?;
        tx.commit().await?;
        Ok(SigningKeyInfo {
            kid: key.kid,
            created_at: now,
            retired_at: None,
        })
    }

    pub async fn list_signing_keys(
        &self,
        caller: &AuthenticatedAdmin,
        now: DateTime<Utc>,
    ) -> Result<Vec<SigningKeyInfo>, CoreError> {
        self.authorize(caller, Permission::ReadApps, "list signing keys", "", now)
            .await?;
        Ok(self
            .store()
            .signing_keys()
            .await?
            .into_iter()
            .map(|k| SigningKeyInfo {
                kid: k.kid,
                created_at: k.created_at,
                retired_at: k.retired_at,
            })
            .collect())
    }

    /// The keys relying parties verify with: the active ones and those
    /// retired less than [`KEEP_RETIRED`] ago.
    pub async fn jwks(&self, now: DateTime<Utc>) -> Result<Vec<PublicJwk>, CoreError> {
        Ok(self
            .store()
            .signing_keys()
            .await?
            .into_iter()
            .filter(|k| k.retired_at.is_none_or(|at| now - at < KEEP_RETIRED))
            .map(|k| PublicJwk {
                kid: k.kid,
                x: k.x,
                y: k.y,
            })
            .collect())
    }

    /// Signs `payload` (the JSON claims of a token) with the active key.
    pub async fn sign_jws(&self, payload: &[u8]) -> Result<String, CoreError> {
        let keys = self.store().signing_keys().await?;
        // Newest first; the newest unretired key signs.
        let key = keys
            .iter()
            .find(|k| k.retired_at.is_none())
            .ok_or_else(|| CoreError::Internal("no active signing key".into()))?;
        Ok(self
            .ca
            .token_keys()
            .sign_jws(&key.private_key, &key.kid, payload)?)
    }
}
