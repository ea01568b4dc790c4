//! Enrollment tokens: created by admins, consumed by enrolling devices
//! (a token's last use goes to exactly one device).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use super::entities::enrollment_tokens;
use super::{Db, StoreResult, count, ms, opt_time, time};
use crate::domain::admin::EnrollmentToken;
use crate::domain::ids::TokenId;

pub(super) fn token_from(row: enrollment_tokens::Model) -> StoreResult<EnrollmentToken> {
    Ok(EnrollmentToken {
        id: TokenId::from_store(row.id),
        user: row.user_email,
        group: row.group_name,
        expires_at: time(row.expires_at)?,
        uses_allowed: count(row.uses_allowed),
        uses_count: count(row.uses_count),
        revoked_at: opt_time(row.revoked_at)?,
        created_by: row.created_by,
        created_at: time(row.created_at)?,
    })
}

impl<C: ConnectionTrait> Db<C> {
    pub async fn insert_enrollment_token(
        &self,
        token: &EnrollmentToken,
        secret_hash: &str,
    ) -> StoreResult<()> {
        enrollment_tokens::Entity::insert(enrollment_tokens::ActiveModel {
            id: Set(token.id.to_string()),
            secret_hash: Set(secret_hash.to_owned()),
            user_email: Set(token.user.clone()),
            group_name: Set(token.group.clone()),
            expires_at: Set(ms(token.expires_at)),
            uses_allowed: Set(i32::try_from(token.uses_allowed).unwrap_or(i32::MAX)),
            uses_count: Set(0),
            revoked_at: Set(None),
            created_by: Set(token.created_by.clone()),
            created_at: Set(ms(token.created_at)),
        })
        .exec_without_returning(&self.0)
        .await?;
        Ok(())
    }

    pub async fn enrollment_token_by_hash(
        &self,
        secret_hash: &str,
    ) -> StoreResult<Option<EnrollmentToken>> {
        enrollment_tokens::Entity::find()
            .filter(enrollment_tokens::Column::SecretHash.eq(secret_hash))
            .one(&self.0)
            .await?
            .map(token_from)
            .transpose()
    }

    pub async fn enrollment_token(&self, id: &TokenId) -> StoreResult<Option<EnrollmentToken>> {
        enrollment_tokens::Entity::find_by_id(id.to_string())
            .one(&self.0)
            .await?
            .map(token_from)
            .transpose()
    }

    pub async fn list_enrollment_tokens(&self) -> StoreResult<Vec<EnrollmentToken>> {
        enrollment_tokens::Entity::find()
            .order_by_desc(enrollment_tokens::Column::CreatedAt)
            .all(&self.0)
            .await?
            .into_iter()
            .map(token_from)
            .collect()
    }

    /// Counts `uses` uses of a token at once if all fit and the token is
    /// still usable at `now`; false otherwise (nothing is counted then).
    pub async fn consume_enrollment_uses(
        &self,
        id: &TokenId,
        uses: u32,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let uses = i32::try_from(uses).unwrap_or(i32::MAX);
        let result = enrollment_tokens::Entity::update_many()
            .col_expr(
                enrollment_tokens::Column::UsesCount,
                Expr::col(enrollment_tokens::Column::UsesCount).add(uses),
            )
            .filter(enrollment_tokens::Column::Id.eq(id.to_string()))
            .filter(enrollment_tokens::Column::RevokedAt.is_null())
            .filter(enrollment_tokens::Column::ExpiresAt.gt(ms(now)))
            .filter(
                Expr::col(enrollment_tokens::Column::UsesCount)
                    .add(uses)
                    .lte(Expr::col(enrollment_tokens::Column::UsesAllowed)),
            )
            .exec(&self.0)
            .await?;
        Ok(result.rows_affected == 1)
    }

    pub async fn revoke_enrollment_token(
        &self,
        id: &TokenId,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let result = enrollment_tokens::Entity::update_many()
            .col_expr(enrollment_tokens::Column::RevokedAt, Expr::value(ms(now)))
            .filter(enrollment_tokens::Column::Id.eq(id.to_string()))
            .filter(enrollment_tokens::Column::RevokedAt.is_null())
            .exec(&self.0)
            .await?;
        Ok(result.rows_affected == 1)
    }
}
