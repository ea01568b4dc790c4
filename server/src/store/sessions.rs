//! Browser sessions of the sign-in pages: created, advanced as the user
//! proves each step, and ended (one session, a device's, a user's), with
//! the grants they led to.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use super::entities::{grants, sso_sessions};
use super::{Db, INSERT_CHUNK, StoreError, StoreResult, ms, opt_time, time};
use crate::domain::ids::{DeviceId, SsoSessionId, UserId};
use crate::domain::sign_in::Amr;
use crate::domain::sign_in::{DeviceConfirmation, DeviceProof, Factor, SsoSession};

/// Method references as stored: their RFC 8176 names, space-separated.
pub(super) fn amr_from(text: Option<&str>) -> StoreResult<Vec<Amr>> {
    text.unwrap_or("")
        .split_whitespace()
        .map(|m| Amr::parse(m).ok_or_else(|| StoreError::Corrupt(format!("amr {m}"))))
        .collect()
}

pub(super) fn amr_text(amr: &[Amr]) -> String {
    amr.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(" ")
}

pub(super) fn session_from(row: sso_sessions::Model) -> StoreResult<SsoSession> {
    let second_factor = match (row.second_factor.as_deref(), row.second_factor_at) {
        (Some(kind), Some(at)) => Some((
            Factor::parse(kind).ok_or_else(|| StoreError::Corrupt(format!("factor {kind}")))?,
            time(at)?,
        )),
        _ => None,
    };
    // A session written before the confirmation mode was recorded holds no
    // device confirmation: its user confirms again.
    let device = match (row.device_id, row.device_mode.as_deref(), row.device_ip) {
        (Some(id), Some(mode), Some(ip)) => Some(DeviceConfirmation {
            device_id: DeviceId::from_store(id),
            proof: DeviceProof::parse(mode)
                .ok_or_else(|| StoreError::Corrupt(format!("device proof {mode}")))?,
            ip,
        }),
        _ => None,
    };
    Ok(SsoSession {
        user_id: row.user_id.map(UserId::from_store),
        second_factor,
        device,
        onboarding: row.onboarding,
        created_at: time(row.created_at)?,
        expires_at: time(row.expires_at)?,
        auth_time: opt_time(row.auth_time)?,
        ended_at: opt_time(row.ended_at)?,
        persisted: true,
        id: SsoSessionId::from_store(row.id),
        ip: row.ip,
        user_agent: row.user_agent,
    })
}

impl<C: ConnectionTrait> Db<C> {
    pub async fn insert_session(&self, session: &SsoSession, secret_hash: &str) -> StoreResult<()> {
        sso_sessions::Entity::insert(sso_sessions::ActiveModel {
            id: Set(session.id.to_string()),
            secret_hash: Set(secret_hash.to_owned()),
            user_id: Set(session.user_id.as_ref().map(ToString::to_string)),
            ip: Set(session.ip.clone()),
            user_agent: Set(session.user_agent.clone()),
            created_at: Set(ms(session.created_at)),
            expires_at: Set(ms(session.expires_at)),
            auth_time: Set(session.auth_time.map(ms)),
            amr: Set(None),
            device_id: Set(None),
            ended_at: Set(None),
            end_reason: Set(None),
            device_mode: Set(None),
            device_ip: Set(None),
            second_factor: Set(None),
            second_factor_at: Set(None),
            onboarding: Set(false),
        })
        // A session is written when its browser first submits a form; a
        // second submission finds it there.
        .on_conflict(
            OnConflict::column(sso_sessions::Column::Id)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&self.0)
        .await?;
        Ok(())
    }

    pub async fn session_by_secret_hash(&self, hash: &str) -> StoreResult<Option<SsoSession>> {
        sso_sessions::Entity::find()
            .filter(sso_sessions::Column::SecretHash.eq(hash))
            .one(&self.0)
            .await?
            .map(session_from)
            .transpose()
    }

    pub async fn session(&self, id: &SsoSessionId) -> StoreResult<Option<SsoSession>> {
        sso_sessions::Entity::find_by_id(id.to_string())
            .one(&self.0)
            .await?
            .map(session_from)
            .transpose()
    }

    /// Records what the session has proved so far and gives it a new
    /// cookie secret (its hash), so a secret known before the change is
    /// worth nothing after it; false when the session ended.
    pub async fn update_session_auth(
        &self,
        session: &SsoSession,
        new_secret_hash: &str,
    ) -> StoreResult<bool> {
        let device = session.device.as_ref();
        let result = sso_sessions::Entity::update_many()
            .col_expr(
                sso_sessions::Column::SecretHash,
                Expr::value(new_secret_hash),
            )
            .col_expr(
                sso_sessions::Column::UserId,
                Expr::value(session.user_id.as_ref().map(ToString::to_string)),
            )
            .col_expr(
                sso_sessions::Column::AuthTime,
                Expr::value(session.auth_time.map(ms)),
            )
            .col_expr(
                sso_sessions::Column::Amr,
                Expr::value(amr_text(&session.amr())),
            )
            .col_expr(
                sso_sessions::Column::DeviceId,
                Expr::value(device.map(|d| d.device_id.to_string())),
            )
            .col_expr(
                sso_sessions::Column::DeviceMode,
                Expr::value(device.map(|d| d.proof.as_str())),
            )
            .col_expr(
                sso_sessions::Column::DeviceIp,
                Expr::value(device.map(|d| d.ip.clone())),
            )
            .col_expr(
                sso_sessions::Column::SecondFactor,
                Expr::value(session.second_factor.map(|(f, _)| f.as_str())),
            )
            .col_expr(
                sso_sessions::Column::SecondFactorAt,
                Expr::value(session.second_factor.map(|(_, at)| ms(at))),
            )
            .col_expr(
                sso_sessions::Column::Onboarding,
                Expr::value(session.onboarding),
            )
            .filter(sso_sessions::Column::Id.eq(session.id.as_str()))
            .filter(sso_sessions::Column::EndedAt.is_null())
            .exec(&self.0)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Ends the open rows whose `column` is one of `values`; returns how
    /// many.
    pub(super) async fn end_sessions_where(
        &self,
        column: sso_sessions::Column,
        values: &[&str],
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let mut ended = 0;
        for chunk in values.chunks(INSERT_CHUNK) {
            let result = sso_sessions::Entity::update_many()
                .col_expr(sso_sessions::Column::EndedAt, Expr::value(ms(now)))
                .col_expr(sso_sessions::Column::EndReason, Expr::value(reason))
                .filter(column.is_in(chunk.iter().copied()))
                .filter(sso_sessions::Column::EndedAt.is_null())
                .exec(&self.0)
                .await?;
            ended += result.rows_affected;
        }
        Ok(ended)
    }

    /// Ends the open rows whose `column` is one of `values`; returns how
    /// many.
    pub(super) async fn end_grants_where(
        &self,
        column: grants::Column,
        values: &[&str],
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let mut ended = 0;
        for chunk in values.chunks(INSERT_CHUNK) {
            let result = grants::Entity::update_many()
                .col_expr(grants::Column::EndedAt, Expr::value(ms(now)))
                .col_expr(grants::Column::EndReason, Expr::value(reason))
                .filter(column.is_in(chunk.iter().copied()))
                .filter(grants::Column::EndedAt.is_null())
                .exec(&self.0)
                .await?;
            ended += result.rows_affected;
        }
        Ok(ended)
    }

    /// Ends one session and every grant issued in it.
    pub async fn end_session(
        &self,
        id: &SsoSessionId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.end_sessions_where(sso_sessions::Column::Id, &[id.as_str()], reason, now)
            .await?;
        self.end_grants_where(grants::Column::SessionId, &[id.as_str()], reason, now)
            .await?;
        Ok(())
    }

    /// Ends the sessions and grants a device confirmed; returns how many.
    pub async fn end_device_sso(
        &self,
        device: &DeviceId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        self.end_devices_sso(std::slice::from_ref(device), reason, now)
            .await
    }

    /// [`Db::end_device_sso`] for many devices, in a few statements.
    pub async fn end_devices_sso(
        &self,
        devices: &[DeviceId],
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let ids: Vec<&str> = devices.iter().map(DeviceId::as_str).collect();
        let sessions = self
            .end_sessions_where(sso_sessions::Column::DeviceId, &ids, reason, now)
            .await?;
        let grants = self
            .end_grants_where(grants::Column::DeviceId, &ids, reason, now)
            .await?;
        Ok(sessions + grants)
    }

    /// Ends every session and grant of a user; returns how many.
    pub async fn end_user_sso(
        &self,
        user: &UserId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let sessions = self
            .end_sessions_where(sso_sessions::Column::UserId, &[user.as_str()], reason, now)
            .await?;
        let grants = self
            .end_grants_where(grants::Column::UserId, &[user.as_str()], reason, now)
            .await?;
        Ok(sessions + grants)
    }

    /// Ends a user's sessions but `keep`, and every grant of the user (so
    /// every refresh token); returns how many.
    pub async fn end_user_sso_except(
        &self,
        user: &UserId,
        keep: &SsoSessionId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let sessions = sso_sessions::Entity::update_many()
            .col_expr(sso_sessions::Column::EndedAt, Expr::value(ms(now)))
            .col_expr(sso_sessions::Column::EndReason, Expr::value(reason))
            .filter(sso_sessions::Column::UserId.eq(user.as_str()))
            .filter(sso_sessions::Column::Id.ne(keep.as_str()))
            .filter(sso_sessions::Column::EndedAt.is_null())
            .exec(&self.0)
            .await?
            .rows_affected;
        let grants = self
            .end_grants_where(grants::Column::UserId, &[user.as_str()], reason, now)
            .await?;
        Ok(sessions + grants)
    }
}
