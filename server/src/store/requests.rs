//! Pending authorization requests (`/authorize`), finished once.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use super::entities::auth_requests;
use super::{Db, StoreResult, ms, opt_time, time};
use crate::domain::ids::{AuthRequestId, ClientId, SsoSessionId};
use crate::domain::sign_in::AuthRequest;

pub(super) fn request_from(row: auth_requests::Model) -> StoreResult<AuthRequest> {
    Ok(AuthRequest {
        client_id: ClientId::from_store(row.client_id),
        created_at: time(row.created_at)?,
        expires_at: time(row.expires_at)?,
        finished_at: opt_time(row.finished_at)?,
        handle: row.id.clone(),
        id: AuthRequestId::from_store(row.id),
        session_id: SsoSessionId::from_store(row.session_id),
        redirect_uri: row.redirect_uri,
        scope: row.scope,
        state: row.state,
        nonce: row.nonce,
        code_challenge: row.code_challenge,
        prompt_login: row.prompt_login,
        max_age: row.max_age,
    })
}

impl<C: ConnectionTrait> Db<C> {
    pub async fn insert_auth_request(&self, request: &AuthRequest) -> StoreResult<()> {
        auth_requests::Entity::insert(auth_requests::ActiveModel {
            id: Set(request.id.to_string()),
            session_id: Set(request.session_id.to_string()),
            client_id: Set(request.client_id.to_string()),
            redirect_uri: Set(request.redirect_uri.clone()),
            scope: Set(request.scope.clone()),
            state: Set(request.state.clone()),
            nonce: Set(request.nonce.clone()),
            code_challenge: Set(request.code_challenge.clone()),
            prompt_login: Set(request.prompt_login),
            max_age: Set(request.max_age),
            created_at: Set(ms(request.created_at)),
            expires_at: Set(ms(request.expires_at)),
            finished_at: Set(None),
        })
        .on_conflict(
            OnConflict::column(auth_requests::Column::Id)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&self.0)
        .await?;
        Ok(())
    }

    pub async fn auth_request(&self, id: &AuthRequestId) -> StoreResult<Option<AuthRequest>> {
        auth_requests::Entity::find_by_id(id.to_string())
            .one(&self.0)
            .await?
            .map(request_from)
            .transpose()
    }

    /// Marks a request answered; false when it already was or has expired.
    pub async fn finish_auth_request(
        &self,
        id: &AuthRequestId,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let result = auth_requests::Entity::update_many()
            .col_expr(auth_requests::Column::FinishedAt, Expr::value(ms(now)))
            .filter(auth_requests::Column::Id.eq(id.as_str()))
            .filter(auth_requests::Column::FinishedAt.is_null())
            .filter(auth_requests::Column::ExpiresAt.gt(ms(now)))
            .exec(&self.0)
            .await?;
        Ok(result.rows_affected == 1)
    }
}
