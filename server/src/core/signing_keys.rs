//! The SSO layer's token-signing keys: one active ES256 key signs; after a
//! rotation the old key stays in the JWKS for a day, longer than any token it
//! signed lives, so relying parties keep verifying them.

use chrono::{DateTime, Duration, Utc};
use latchkey_certs::jose::PublicJwk;

use super::auth::{AuthenticatedAdmin, Permission};
use std::sync::{Arc, Mutex};

use super::{Audit, CoreError, InternalError};
use crate::ca::CertificateAuthority;
use crate::domain::audit::{AdminRequest, AuditAction, AuditEntry, AuditOutcome};
use crate::store::{Store, StoredSigningKey};

/// How long a retired key stays published.
pub const KEEP_RETIRED: Duration = Duration::hours(24);

/// A signing key as an admin sees it.
#[derive(Debug, Clone)]
pub struct SigningKeyInfo {
    pub kid: String,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
}

/// The signing keys, and the active one cached in memory. Cheap to clone:
/// sign-in holds one to sign ID tokens and publish the JWKS.
#[derive(Clone)]
pub struct SigningKeys {
    pub(super) store: Store,
    pub(super) audit: Audit,
    /// Seals private keys at rest and makes new ones.
    pub(super) ca: Arc<CertificateAuthority>,
    pub(super) cache: Arc<Mutex<Option<CachedSigningKey>>>,
}

impl SigningKeys {
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
        let keys = self.store.signing_keys().await?;
        if keys.iter().any(|k| k.retired_at.is_none()) {
            return Ok(());
        }
        self.store
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
        self.audit
            .authorize(
                caller,
                Permission::ManageApps,
                AdminRequest::RotateSigningKeys,
                "",
                now,
            )
            .await?;
        let key = self.new_signing_key(now)?;
        let tx = self.store.begin().await?;
        tx.retire_signing_keys(now, now - KEEP_RETIRED).await?;
        tx.insert_signing_key(&key).await?;
        tx.audit(&AuditEntry {
            at: now,
            actor: caller.actor(),
            action: AuditAction::SigningKeyRotate,
            target: key.kid.clone(),
            outcome: AuditOutcome::Ok,
            detail: "new ES256 signing key; the previous one stays published for 24h".into(),
        })
        .await?;
        tx.commit().await?;
        self.forget_signing_key();
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
        self.audit
            .authorize(
                caller,
                Permission::ReadApps,
                AdminRequest::ListSigningKeys,
                "",
                now,
            )
            .await?;
        Ok(self
            .store
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
            .store
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

    /// Signs `payload` (the JSON claims of a token) with the active key, as
    /// a compact JWS whose header carries `typ`.
    ///
    /// The unsealed active key is cached for [`SIGNING_KEY_CACHE`]: a
    /// rotation (on this replica or another) takes effect within that time,
    /// and tokens signed meanwhile by the retired key still verify because it
    /// stays published.
    pub async fn sign_jws(
        &self,
        typ: &str,
        payload: &[u8],
        now: DateTime<Utc>,
    ) -> Result<String, CoreError> {
        let cached = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.clone())
            .filter(|c| now - c.fetched_at < SIGNING_KEY_CACHE);
        let active = match cached {
            Some(active) => active,
            None => {
                let keys = self.store.signing_keys().await?;
                // Newest first; the newest unretired key signs.
                let key = keys
                    .iter()
                    .find(|k| k.retired_at.is_none())
                    .ok_or(InternalError::Broken("no active signing key"))?;
                let active = CachedSigningKey {
                    kid: key.kid.clone(),
                    key: self
                        .ca
                        .token_keys()
                        .open_signing_key(&key.private_key, &key.kid)?,
                    fetched_at: now,
                };
                if let Ok(mut cache) = self.cache.lock() {
                    *cache = Some(active.clone());
                }
                active
            }
        };
        Ok(latchkey_certs::jose::compact_jws(
            &active.key,
            typ,
            &active.kid,
            payload,
        )?)
    }

    /// Forgets the cached signing key (after a rotation on this replica).
    pub(crate) fn forget_signing_key(&self) {
        if let Ok(mut cache) = self.cache.lock() {
            *cache = None;
        }
    }
}

/// How long an unsealed signing key is reused before the store is asked again.
const SIGNING_KEY_CACHE: Duration = Duration::seconds(60);

/// The active signing key, unsealed.
#[derive(Clone, Debug)]
pub(crate) struct CachedSigningKey {
    kid: String,
    key: latchkey_certs::jose::SigningKey,
    fetched_at: DateTime<Utc>,
}
