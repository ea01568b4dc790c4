//! Grants: authorization codes (used once) and refresh tokens (rotated
//! once, compare-and-set) with what they were issued for.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use super::entities::{grants, refresh_tokens};
use super::sessions::{amr_from, amr_text};
use super::{Db, StoreError, StoreResult, ms, opt_time, time};
use crate::domain::ids::{ClientId, DeviceId, GrantId, SsoSessionId, UserId};
use crate::domain::sign_in::Acr;
use crate::domain::sign_in::{Grant, RefreshTokenRecord};

pub(super) fn grant_from(row: grants::Model) -> StoreResult<Grant> {
    Ok(Grant {
        user_id: UserId::from_store(row.user_id),
        client_id: ClientId::from_store(row.client_id),
        device_id: row.device_id.map(DeviceId::from_store),
        amr: amr_from(Some(&row.amr))?,
        code_expires_at: time(row.code_expires_at)?,
        code_used_at: opt_time(row.code_used_at)?,
        auth_time: time(row.auth_time)?,
        created_at: time(row.created_at)?,
        ended_at: opt_time(row.ended_at)?,
        id: GrantId::from_store(row.id),
        session_id: SsoSessionId::from_store(row.session_id),
        scope: row.scope,
        nonce: row.nonce,
        redirect_uri: row.redirect_uri,
        code_challenge: row.code_challenge,
        acr: Acr::parse(&row.acr).ok_or_else(|| StoreError::Corrupt(format!("acr {}", row.acr)))?,
    })
}

impl<C: ConnectionTrait> Db<C> {
    pub async fn insert_grant(&self, grant: &Grant, code_hash: &str) -> StoreResult<()> {
        grants::Entity::insert(grants::ActiveModel {
            id: Set(grant.id.to_string()),
            session_id: Set(grant.session_id.to_string()),
            user_id: Set(grant.user_id.to_string()),
            client_id: Set(grant.client_id.to_string()),
            device_id: Set(grant.device_id.as_ref().map(ToString::to_string)),
            scope: Set(grant.scope.clone()),
            nonce: Set(grant.nonce.clone()),
            redirect_uri: Set(grant.redirect_uri.clone()),
            code_hash: Set(code_hash.to_owned()),
            code_challenge: Set(grant.code_challenge.clone()),
            code_expires_at: Set(ms(grant.code_expires_at)),
            code_used_at: Set(None),
            auth_time: Set(ms(grant.auth_time)),
            amr: Set(amr_text(&grant.amr)),
            acr: Set(grant.acr.as_str().to_owned()),
            created_at: Set(ms(grant.created_at)),
            ended_at: Set(None),
            end_reason: Set(None),
        })
        .exec_without_returning(&self.0)
        .await?;
        Ok(())
    }

    pub async fn grant_by_code_hash(&self, code_hash: &str) -> StoreResult<Option<Grant>> {
        grants::Entity::find()
            .filter(grants::Column::CodeHash.eq(code_hash))
            .one(&self.0)
            .await?
            .map(grant_from)
            .transpose()
    }

    pub async fn grant(&self, id: &GrantId) -> StoreResult<Option<Grant>> {
        grants::Entity::find_by_id(id.to_string())
            .one(&self.0)
            .await?
            .map(grant_from)
            .transpose()
    }

    /// Marks a grant's code used; false when it was used before.
    pub async fn use_code(&self, grant_id: &GrantId, now: DateTime<Utc>) -> StoreResult<bool> {
        let result = grants::Entity::update_many()
            .col_expr(grants::Column::CodeUsedAt, Expr::value(ms(now)))
            .filter(grants::Column::Id.eq(grant_id.as_str()))
            .filter(grants::Column::CodeUsedAt.is_null())
            .exec(&self.0)
            .await?;
        Ok(result.rows_affected == 1)
    }

    pub async fn end_grant(
        &self,
        id: &GrantId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.end_grants_where(grants::Column::Id, &[id.as_str()], reason, now)
            .await?;
        Ok(())
    }

    pub async fn insert_refresh_token(
        &self,
        token_hash: &str,
        grant_id: &GrantId,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        refresh_tokens::Entity::insert(refresh_tokens::ActiveModel {
            token_hash: Set(token_hash.to_owned()),
            grant_id: Set(grant_id.to_string()),
            created_at: Set(ms(now)),
            expires_at: Set(ms(expires_at)),
            used_at: Set(None),
        })
        .exec_without_returning(&self.0)
        .await?;
        Ok(())
    }

    pub async fn refresh_token(&self, token_hash: &str) -> StoreResult<Option<RefreshTokenRecord>> {
        let Some(row) = refresh_tokens::Entity::find_by_id(token_hash.to_owned())
            .one(&self.0)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(RefreshTokenRecord {
            grant_id: GrantId::from_store(row.grant_id),
            expires_at: time(row.expires_at)?,
            used_at: opt_time(row.used_at)?,
        }))
    }

    /// Marks a refresh token used (rotated); false when it was used before.
    pub async fn use_refresh_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let result = refresh_tokens::Entity::update_many()
            .col_expr(refresh_tokens::Column::UsedAt, Expr::value(ms(now)))
            .filter(refresh_tokens::Column::TokenHash.eq(token_hash))
            .filter(refresh_tokens::Column::UsedAt.is_null())
            .exec(&self.0)
            .await?;
        Ok(result.rows_affected == 1)
    }
}
