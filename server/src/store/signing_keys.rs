//! The token-signing keys (their private keys stored sealed by `ca`).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use super::entities::signing_keys;
use super::{Db, StoreResult, ms, opt_time, time};

/// A token-signing key as stored: the private key stays an opaque string
/// here; only `ca` turns it back into a key.
#[derive(Clone)]
pub struct StoredSigningKey {
    pub kid: String,
    pub private_key: String,
    pub x: String,
    pub y: String,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for StoredSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSigningKey")
            .field("kid", &self.kid)
            .field("private_key", &"[redacted]")
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish()
    }
}

impl<C: ConnectionTrait> Db<C> {
    pub async fn insert_signing_key(&self, key: &StoredSigningKey) -> StoreResult<()> {
        signing_keys::Entity::insert(signing_keys::ActiveModel {
            kid: Set(key.kid.clone()),
            private_key: Set(key.private_key.clone()),
            x: Set(key.x.clone()),
            y: Set(key.y.clone()),
            created_at: Set(ms(key.created_at)),
            retired_at: Set(key.retired_at.map(ms)),
        })
        .exec_without_returning(&self.0)
        .await?;
        Ok(())
    }

    /// Every stored key, newest first.
    pub async fn signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>> {
        signing_keys::Entity::find()
            .order_by_desc(signing_keys::Column::CreatedAt)
            .order_by_desc(signing_keys::Column::Kid)
            .all(&self.0)
            .await?
            .into_iter()
            .map(|r| {
                Ok(StoredSigningKey {
                    created_at: time(r.created_at)?,
                    retired_at: opt_time(r.retired_at)?,
                    kid: r.kid,
                    private_key: r.private_key,
                    x: r.x,
                    y: r.y,
                })
            })
            .collect()
    }

    /// Retires every active key; deletes keys retired before `forget_before`.
    pub async fn retire_signing_keys(
        &self,
        now: DateTime<Utc>,
        forget_before: DateTime<Utc>,
    ) -> StoreResult<()> {
        signing_keys::Entity::update_many()
            .col_expr(signing_keys::Column::RetiredAt, Expr::value(ms(now)))
            .filter(signing_keys::Column::RetiredAt.is_null())
            .exec(&self.0)
            .await?;
        signing_keys::Entity::delete_many()
            .filter(signing_keys::Column::RetiredAt.lt(ms(forget_before)))
            .exec(&self.0)
            .await?;
        Ok(())
    }
}
