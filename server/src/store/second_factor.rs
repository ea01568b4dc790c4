//! Second-factor state: a user's authenticator secret (sealed) and last
//! accepted step, their second-factor setting, and the challenges browser
//! sessions have in progress. Spending a TOTP step and an attempt on an
//! emailed code are compare-and-sets, so a code works once across replicas.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, Set};

use super::entities::{login_events, second_factor_challenges, users};
use super::{Db, StoreResult, ms, time};
use crate::domain::ids::{SsoSessionId, UserId};

/// A user's second factors as stored.
#[derive(Debug, Clone, Default)]
pub struct SecondFactorRecord {
    /// The sealed TOTP secret, once enrolled.
    pub totp_secret: Option<String>,
    pub totp_last_step: Option<i64>,
    /// `always`, `risk` or `off`; `None` for the default.
    pub setting: Option<String>,
}

/// A second factor a browser session has in progress.
#[derive(Debug, Clone)]
pub struct Challenge {
    pub session_id: SsoSessionId,
    /// `totp-enroll` or `email`.
    pub kind: String,
    pub pending_secret: Option<String>,
    pub code_hash: Option<String>,
    pub sent_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub attempts: i32,
}

impl<C: ConnectionTrait> Db<C> {
    pub async fn second_factor(&self, user: &UserId) -> StoreResult<SecondFactorRecord> {
        Ok(users::Entity::find_by_id(user.to_string())
            .one(&self.0)
            .await?
            .map(|row| SecondFactorRecord {
                totp_secret: row.totp_secret,
                totp_last_step: row.totp_last_step,
                setting: row.mfa_setting,
            })
            .unwrap_or_default())
    }

    /// Stores (or, with `None`, removes) a user's TOTP secret.
    pub async fn set_totp_secret(
        &self,
        user: &UserId,
        sealed: Option<&str>,
        last_step: Option<i64>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let result = users::Entity::update_many()
            .col_expr(users::Column::TotpSecret, Expr::value(sealed))
            .col_expr(users::Column::TotpLastStep, Expr::value(last_step))
            .col_expr(users::Column::UpdatedAt, Expr::value(ms(now)))
            .filter(users::Column::Id.eq(user.as_str()))
            .exec(&self.0)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Spends TOTP step `step`: false when it (or a later one) was used.
    pub async fn use_totp_step(&self, user: &UserId, step: i64) -> StoreResult<bool> {
        let result = users::Entity::update_many()
            .col_expr(users::Column::TotpLastStep, Expr::value(step))
            .filter(users::Column::Id.eq(user.as_str()))
            .filter(users::Column::TotpSecret.is_not_null())
            .filter(
                users::Column::TotpLastStep
                    .is_null()
                    .or(users::Column::TotpLastStep.lt(step)),
            )
            .exec(&self.0)
            .await?;
        Ok(result.rows_affected == 1)
    }

    pub async fn set_mfa_setting(
        &self,
        user: &UserId,
        setting: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let result = users::Entity::update_many()
            .col_expr(users::Column::MfaSetting, Expr::value(setting))
            .col_expr(users::Column::UpdatedAt, Expr::value(ms(now)))
            .filter(users::Column::Id.eq(user.as_str()))
            .exec(&self.0)
            .await?;
        Ok(result.rows_affected == 1)
    }

    pub async fn set_user_locale(
        &self,
        user: &UserId,
        locale: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let result = users::Entity::update_many()
            .col_expr(users::Column::Locale, Expr::value(locale))
            .col_expr(users::Column::UpdatedAt, Expr::value(ms(now)))
            .filter(users::Column::Id.eq(user.as_str()))
            .exec(&self.0)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Whether the user completed a sign-in from `ip` since `since`.
    pub async fn known_login_ip(
        &self,
        user: &UserId,
        ip: &str,
        since: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let seen = login_events::Entity::find()
            .select_only()
            .column(login_events::Column::Id)
            .filter(login_events::Column::UserId.eq(user.as_str()))
            .filter(login_events::Column::Ip.eq(ip))
            .filter(login_events::Column::Result.eq("ok"))
            // Completed sign-ins to an app, not a password step alone.
            .filter(login_events::Column::ClientId.is_not_null())
            .filter(login_events::Column::At.gte(ms(since)))
            .limit(1)
            .into_tuple::<String>()
            .one(&self.0)
            .await?;
        Ok(seen.is_some())
    }

    // ---- challenges ----

    pub async fn challenge(&self, session_id: &SsoSessionId) -> StoreResult<Option<Challenge>> {
        second_factor_challenges::Entity::find_by_id(session_id.to_string())
            .one(&self.0)
            .await?
            .map(|row| {
                Ok(Challenge {
                    sent_at: time(row.sent_at)?,
                    expires_at: time(row.expires_at)?,
                    session_id: SsoSessionId::from_store(row.session_id),
                    kind: row.kind,
                    pending_secret: row.pending_secret,
                    code_hash: row.code_hash,
                    attempts: row.attempts,
                })
            })
            .transpose()
    }

    /// Replaces the session's challenge.
    pub async fn put_challenge(&self, challenge: &Challenge) -> StoreResult<()> {
        self.delete_challenge(&challenge.session_id).await?;
        second_factor_challenges::Entity::insert(second_factor_challenges::ActiveModel {
            session_id: Set(challenge.session_id.to_string()),
            kind: Set(challenge.kind.clone()),
            pending_secret: Set(challenge.pending_secret.clone()),
            code_hash: Set(challenge.code_hash.clone()),
            sent_at: Set(ms(challenge.sent_at)),
            expires_at: Set(ms(challenge.expires_at)),
            attempts: Set(challenge.attempts),
        })
        .exec_without_returning(&self.0)
        .await?;
        Ok(())
    }

    /// Spends one attempt on the session's challenge: false when `attempts`
    /// were already spent (or the challenge is gone).
    pub async fn spend_challenge_attempt(
        &self,
        session_id: &SsoSessionId,
        attempts: i32,
    ) -> StoreResult<bool> {
        let result = second_factor_challenges::Entity::update_many()
            .col_expr(
                second_factor_challenges::Column::Attempts,
                Expr::col(second_factor_challenges::Column::Attempts).add(1),
            )
            .filter(second_factor_challenges::Column::SessionId.eq(session_id.as_str()))
            .filter(second_factor_challenges::Column::Attempts.lt(attempts))
            .exec(&self.0)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Removes the session's challenge; true when there was one.
    pub async fn delete_challenge(&self, session_id: &SsoSessionId) -> StoreResult<bool> {
        let result = second_factor_challenges::Entity::delete_many()
            .filter(second_factor_challenges::Column::SessionId.eq(session_id.as_str()))
            .exec(&self.0)
            .await?;
        Ok(result.rows_affected == 1)
    }
}
