//! Queries of the OpenID Connect provider. Every state change that must
//! happen once (a code used, a transaction answered or redeemed, a refresh
//! token rotated) is a compare-and-set that reports whether it won, so two
//! replicas or two racing requests cannot both succeed.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, PaginatorTrait, QueryFilter,
    QueryOrder, QueryResult, QuerySelect, Set, Statement,
};

use super::entities::{
    auth_requests, device_auth_txns, device_certificates, devices, grants, login_events,
    login_throttles, refresh_tokens, sso_sessions,
};
use super::{
    CertificateRecord, Db, StoreError, StoreResult, certificate_from, device_from,
    effective_policy_from, ms, opt_time, time,
};
use crate::core::ids::{ClientId, DeviceId, UserId};
use crate::core::model::{Device, DevicePolicy, EffectivePolicy, LoginThrottle, UserStatus};
use crate::core::sso::Factor;
use crate::core::sso::model::{
    AuthRequest, Delivery, DeviceAuthFailure, DeviceAuthTxn, DeviceConfirmation, DeviceProof,
    Grant, LoginEvent, RefreshTokenRecord, SsoSession, TxnOutcome,
};

/// What [`Db::device_auth_facts`] reads.
#[derive(Debug)]
pub struct DeviceAuthFacts {
    pub certificate: CertificateRecord,
    /// The certificate's device (absent if it was deleted), with the policy
    /// in force for it.
    pub device: Option<(Device, Option<EffectivePolicy>)>,
    pub txn: Option<DeviceAuthTxn>,
    /// The transaction's user.
    pub user: Option<TxnUser>,
    /// The transaction's app.
    pub app_name: Option<String>,
}

#[derive(Debug)]
pub struct TxnUser {
    pub email: String,
    pub status: UserStatus,
}

/// The statement behind [`Db::device_auth_facts`] (`$1` the serial, `$2`
/// the transaction id). The effective policy is the device's own
/// assignment, else its group's, as in `core::policy::effective_policy`.
const DEVICE_AUTH_FACTS: &str = concat!(
    "SELECT ",
    certificate_columns!(),
    ", ",
    device_columns!(),
    ", ",
    txn_columns!(),
    ", u.email AS u_email, u.status AS u_status, a.name AS a_name, \
       (SELECT MAX(x.not_after) FROM device_certificates x \
         WHERE x.device_id = d.id AND x.revoked_at IS NULL) AS d_certificate_expiry, \
       ",
    effective_policy_columns!(),
    " FROM device_certificates c \
     LEFT JOIN devices d ON d.id = c.device_id \
     LEFT JOIN device_auth_txns t ON t.id = $2 \
     LEFT JOIN users u ON u.id = t.user_id \
     LEFT JOIN apps a ON a.client_id = t.client_id",
    effective_policy_joins!(),
    "WHERE c.serial = $1"
);

/// Where a throttling count stops growing (lockouts are capped long before).
const MAX_COUNTED: i32 = 1_000_000;

/// A device's verified answer, confirmed in one statement while everything
/// the full check would find still holds: the transaction is pending,
/// unexpired, carries this nonce and expects this device (and, for `bound`
/// when required, came from the browser's address); the certificate is
/// this device's, as issued and not revoked; the device is active and
/// bound to the transaction's active user; and its compliance verdict is
/// unexpired, was reached on the posture stored now, and rests on this
/// release's rules and the policy document in force now (`$8` is the basis
/// `policy::verdict_basis` gives for no document, which the document
/// follows).
///
/// Device ids are hex, so the `LIKE` matches one quoted id in the JSON
/// list exactly. Its pattern is built in the statement, not bound whole: a
/// bound `LIKE` pattern makes SQLite prepare the statement again on every
/// run, which cost about 85 µs here (measured with the statement alone).
const CONFIRM_FIT_ANSWER: &str = concat!(
    "UPDATE device_auth_txns SET outcome = 'confirmed', device_id = $3, answered_at = $4, \
       proof_hash = CASE WHEN mode = 'bound' THEN $9 END, \
       code_hash = CASE WHEN mode = 'bound' THEN $10 END \
     WHERE id = $1 AND nonce = $2 AND outcome = 'pending' AND expires_at > $4 \
       AND expected_devices LIKE '%\"' || $3 || '\"%' \
       AND (mode <> 'bound' OR browser_ip = COALESCE($5, browser_ip)) \
       AND (mode <> 'confirm' OR short_code = $11) \
       AND EXISTS (SELECT 1 FROM device_certificates c \
         JOIN devices d ON d.id = c.device_id \
         JOIN users u ON u.id = device_auth_txns.user_id",
    effective_policy_joins!(),
    "WHERE c.serial = $6 AND c.spki_sha256 = $7 AND c.device_id = $3 \
         AND c.revoked_at IS NULL AND d.state = 'active' \
         AND d.user_email = u.email AND u.status = 'active' \
         AND d.compliant_until > $4 AND d.compliance_posture_at = d.posture_at \
         AND d.compliance_basis = $8 || COALESCE(pdp.document, pgp.document, '')) \
     RETURNING mode"
);

/// What [`Db::confirm_fit_answer`] needs: the verified statement's
/// transaction and nonce, and the certificate the answer came with.
#[derive(Debug, Clone, Copy)]
pub struct FitAnswer<'a> {
    pub txn_id: &'a str,
    pub nonce: &'a str,
    pub device_id: &'a DeviceId,
    pub serial_hex: &'a str,
    pub spki_sha256_hex: &'a str,
    /// The address a `bound` transaction must have been started from;
    /// `None` when the deployment does not require it.
    pub required_ip: Option<&'a str>,
    /// The start of a trusted verdict's basis: `policy::verdict_basis("")`.
    pub basis_prefix: &'a str,
    /// `confirm` mode: the number the user typed on the device.
    pub number: &'a str,
    /// `bound` mode: what the browser session must bring back.
    pub proof: ProofHashes<'a>,
}

fn device_auth_facts_from(row: &QueryResult) -> StoreResult<DeviceAuthFacts> {
    let present =
        |key: &str| -> StoreResult<bool> { Ok(row.try_get::<Option<String>>("", key)?.is_some()) };
    let certificate = certificate_from(device_certificates::Model::from_query_result(row, "c_")?)?;
    let device = if present("d_id")? {
        let expiry: Option<i64> = row.try_get("", "d_certificate_expiry")?;
        let device = device_from(devices::Model::from_query_result(row, "d_")?, expiry)?;
        Some((device, effective_policy_from(row)?))
    } else {
        None
    };
    let txn = if present("t_id")? {
        Some(txn_from(device_auth_txns::Model::from_query_result(
            row, "t_",
        )?)?)
    } else {
        None
    };
    let user = match (
        row.try_get::<Option<String>>("", "u_email")?,
        row.try_get::<Option<String>>("", "u_status")?,
    ) {
        (Some(email), Some(status)) => Some(TxnUser {
            status: UserStatus::parse(&status).ok_or(StoreError::Corrupt(status))?,
            email,
        }),
        _ => None,
    };
    Ok(DeviceAuthFacts {
        certificate,
        device,
        txn,
        user,
        app_name: row.try_get::<Option<String>>("", "a_name")?,
    })
}

fn amr_from(text: Option<&str>) -> Vec<String> {
    text.unwrap_or("")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn session_from(row: sso_sessions::Model) -> StoreResult<SsoSession> {
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
        id: row.id,
        ip: row.ip,
        user_agent: row.user_agent,
    })
}

fn request_from(row: auth_requests::Model) -> StoreResult<AuthRequest> {
    Ok(AuthRequest {
        client_id: ClientId::from_store(row.client_id),
        created_at: time(row.created_at)?,
        expires_at: time(row.expires_at)?,
        finished_at: opt_time(row.finished_at)?,
        handle: row.id.clone(),
        id: row.id,
        session_id: row.session_id,
        redirect_uri: row.redirect_uri,
        scope: row.scope,
        state: row.state,
        nonce: row.nonce,
        code_challenge: row.code_challenge,
        prompt_login: row.prompt_login,
        max_age: row.max_age,
    })
}

fn txn_from(row: device_auth_txns::Model) -> StoreResult<DeviceAuthTxn> {
    let outcome = match row.outcome.as_str() {
        "pending" => TxnOutcome::Pending,
        "confirmed" => TxnOutcome::Confirmed,
        "failed" => {
            let failure: DeviceAuthFailure =
                serde_json::from_str(row.failure.as_deref().unwrap_or(""))
                    .map_err(|e| StoreError::Corrupt(format!("device-auth failure: {e}")))?;
            TxnOutcome::Failed(failure)
        }
        other => return Err(StoreError::Corrupt(format!("device-auth outcome {other}"))),
    };
    let expected: Vec<String> = serde_json::from_str(&row.expected_devices)
        .map_err(|e| StoreError::Corrupt(format!("expected devices: {e}")))?;
    Ok(DeviceAuthTxn {
        mode: DevicePolicy::parse(&row.mode)
            .ok_or_else(|| StoreError::Corrupt(row.mode.clone()))?,
        user_id: UserId::from_store(row.user_id),
        client_id: ClientId::from_store(row.client_id),
        expected_devices: expected.into_iter().map(DeviceId::from_store).collect(),
        device_id: row.device_id.map(DeviceId::from_store),
        created_at: time(row.created_at)?,
        expires_at: time(row.expires_at)?,
        answered_at: opt_time(row.answered_at)?,
        redeemed_at: opt_time(row.redeemed_at)?,
        code_attempts: row.code_attempts,
        link_opened_at: opt_time(row.link_opened_at)?,
        delivered: match (row.delivered_by.as_deref(), row.delivered_at) {
            (Some(by), Some(at)) => Some((
                Delivery::parse(by).ok_or_else(|| StoreError::Corrupt(format!("delivery {by}")))?,
                time(at)?,
            )),
            _ => None,
        },
        outcome,
        id: row.id,
        nonce: row.nonce,
        short_code: row.short_code,
        request_id: row.request_id,
        session_id: row.session_id,
        browser_ip: row.browser_ip,
        browser_ua: row.browser_ua,
    })
}

fn grant_from(row: grants::Model) -> StoreResult<Grant> {
    Ok(Grant {
        user_id: UserId::from_store(row.user_id),
        client_id: ClientId::from_store(row.client_id),
        device_id: row.device_id.map(DeviceId::from_store),
        amr: amr_from(Some(&row.amr)),
        code_expires_at: time(row.code_expires_at)?,
        code_used_at: opt_time(row.code_used_at)?,
        auth_time: time(row.auth_time)?,
        created_at: time(row.created_at)?,
        ended_at: opt_time(row.ended_at)?,
        id: row.id,
        session_id: row.session_id,
        scope: row.scope,
        nonce: row.nonce,
        redirect_uri: row.redirect_uri,
        code_challenge: row.code_challenge,
        acr: row.acr,
    })
}

/// What answering a device-auth transaction records.
#[derive(Debug, Clone)]
pub struct TxnUpdate<'a> {
    pub device_id: Option<&'a DeviceId>,
    pub outcome: &'a TxnOutcome,
    /// `bound` mode: the hashes of the redemption secret and the code the
    /// device is given, which the browser session must bring back.
    pub proof: Option<ProofHashes<'a>>,
    /// The proof reached the session with the answer itself (the mobile
    /// path, where the browser presented the device certificate).
    pub delivered: Option<Delivery>,
}

/// The hashes of a `bound` transaction's redemption secret and code.
#[derive(Debug, Clone, Copy)]
pub struct ProofHashes<'a> {
    pub link: &'a str,
    pub code: &'a str,
}

impl<C: ConnectionTrait> Db<C> {
    // ---- sessions ----

    pub async fn insert_session(&self, session: &SsoSession, secret_hash: &str) -> StoreResult<()> {
        sso_sessions::Entity::insert(sso_sessions::ActiveModel {
            id: Set(session.id.clone()),
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

    pub async fn session(&self, id: &str) -> StoreResult<Option<SsoSession>> {
        sso_sessions::Entity::find_by_id(id.to_owned())
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
                Expr::value(session.amr().join(" ")),
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
            .filter(sso_sessions::Column::Id.eq(session.id.clone()))
            .filter(sso_sessions::Column::EndedAt.is_null())
            .exec(&self.0)
            .await?;
        Ok(result.rows_affected == 1)
    }

    async fn end_sessions_where(
        &self,
        column: sso_sessions::Column,
        value: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let result = sso_sessions::Entity::update_many()
            .col_expr(sso_sessions::Column::EndedAt, Expr::value(ms(now)))
            .col_expr(sso_sessions::Column::EndReason, Expr::value(reason))
            .filter(column.eq(value))
            .filter(sso_sessions::Column::EndedAt.is_null())
            .exec(&self.0)
            .await?;
        Ok(result.rows_affected)
    }

    async fn end_grants_where(
        &self,
        column: grants::Column,
        value: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let result = grants::Entity::update_many()
            .col_expr(grants::Column::EndedAt, Expr::value(ms(now)))
            .col_expr(grants::Column::EndReason, Expr::value(reason))
            .filter(column.eq(value))
            .filter(grants::Column::EndedAt.is_null())
            .exec(&self.0)
            .await?;
        Ok(result.rows_affected)
    }

    /// Ends one session and every grant issued in it.
    pub async fn end_session(&self, id: &str, reason: &str, now: DateTime<Utc>) -> StoreResult<()> {
        self.end_sessions_where(sso_sessions::Column::Id, id, reason, now)
            .await?;
        self.end_grants_where(grants::Column::SessionId, id, reason, now)
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
        let sessions = self
            .end_sessions_where(sso_sessions::Column::DeviceId, device.as_str(), reason, now)
            .await?;
        let grants = self
            .end_grants_where(grants::Column::DeviceId, device.as_str(), reason, now)
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
            .end_sessions_where(sso_sessions::Column::UserId, user.as_str(), reason, now)
            .await?;
        let grants = self
            .end_grants_where(grants::Column::UserId, user.as_str(), reason, now)
            .await?;
        Ok(sessions + grants)
    }

    /// Ends a user's sessions but `keep`, and every grant of the user (so
    /// every refresh token); returns how many.
    pub async fn end_user_sso_except(
        &self,
        user: &UserId,
        keep: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let sessions = sso_sessions::Entity::update_many()
            .col_expr(sso_sessions::Column::EndedAt, Expr::value(ms(now)))
            .col_expr(sso_sessions::Column::EndReason, Expr::value(reason))
            .filter(sso_sessions::Column::UserId.eq(user.as_str()))
            .filter(sso_sessions::Column::Id.ne(keep))
            .filter(sso_sessions::Column::EndedAt.is_null())
            .exec(&self.0)
            .await?
            .rows_affected;
        let grants = self
            .end_grants_where(grants::Column::UserId, user.as_str(), reason, now)
            .await?;
        Ok(sessions + grants)
    }

    // ---- authorization requests ----

    pub async fn insert_auth_request(&self, request: &AuthRequest) -> StoreResult<()> {
        auth_requests::Entity::insert(auth_requests::ActiveModel {
            id: Set(request.id.clone()),
            session_id: Set(request.session_id.clone()),
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

    pub async fn auth_request(&self, id: &str) -> StoreResult<Option<AuthRequest>> {
        auth_requests::Entity::find_by_id(id.to_owned())
            .one(&self.0)
            .await?
            .map(request_from)
            .transpose()
    }

    /// Marks a request answered; false when it already was or has expired.
    pub async fn finish_auth_request(&self, id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let result = auth_requests::Entity::update_many()
            .col_expr(auth_requests::Column::FinishedAt, Expr::value(ms(now)))
            .filter(auth_requests::Column::Id.eq(id))
            .filter(auth_requests::Column::FinishedAt.is_null())
            .filter(auth_requests::Column::ExpiresAt.gt(ms(now)))
            .exec(&self.0)
            .await?;
        Ok(result.rows_affected == 1)
    }

    // ---- device-auth transactions ----

    pub async fn insert_txn(&self, txn: &DeviceAuthTxn) -> StoreResult<()> {
        let expected: Vec<&str> = txn.expected_devices.iter().map(DeviceId::as_str).collect();
        device_auth_txns::Entity::insert(device_auth_txns::ActiveModel {
            id: Set(txn.id.clone()),
            nonce: Set(txn.nonce.clone()),
            short_code: Set(txn.short_code.clone()),
            mode: Set(txn.mode.as_str().to_owned()),
            request_id: Set(txn.request_id.clone()),
            session_id: Set(txn.session_id.clone()),
            user_id: Set(txn.user_id.to_string()),
            client_id: Set(txn.client_id.to_string()),
            expected_devices: Set(
                serde_json::to_string(&expected).map_err(|e| StoreError::Corrupt(e.to_string()))?
            ),
            browser_ip: Set(txn.browser_ip.clone()),
            browser_ua: Set(txn.browser_ua.clone()),
            created_at: Set(ms(txn.created_at)),
            expires_at: Set(ms(txn.expires_at)),
            device_id: Set(None),
            answered_at: Set(None),
            outcome: Set("pending".to_owned()),
            failure: Set(None),
            redeemed_at: Set(None),
            proof_hash: Set(None),
            code_hash: Set(None),
            code_attempts: Set(0),
            link_opened_at: Set(None),
            delivered_at: Set(None),
            delivered_by: Set(None),
        })
        .exec_without_returning(&self.0)
        .await?;
        Ok(())
    }

    pub async fn txn(&self, id: &str) -> StoreResult<Option<DeviceAuthTxn>> {
        device_auth_txns::Entity::find_by_id(id.to_owned())
            .one(&self.0)
            .await?
            .map(txn_from)
            .transpose()
    }

    /// Everything a device's call about a device-auth transaction is decided
    /// on, read in one statement: the certificate the device presented (by
    /// `serial`) with its device, the device's effective policy and newest
    /// valid certificate, and the transaction `txn_id` with its user and
    /// app. `None` when no certificate has that serial.
    pub async fn device_auth_facts(
        &self,
        serial: &str,
        txn_id: &str,
    ) -> StoreResult<Option<DeviceAuthFacts>> {
        let backend = self.0.get_database_backend();
        let statement = Statement::from_sql_and_values(
            backend,
            DEVICE_AUTH_FACTS,
            [serial.into(), txn_id.into()],
        );
        let Some(row) = self.0.query_one_raw(statement).await? else {
            return Ok(None);
        };
        device_auth_facts_from(&row).map(Some)
    }

    /// The newest transaction started for an authorization request.
    pub async fn latest_txn(&self, request_id: &str) -> StoreResult<Option<DeviceAuthTxn>> {
        device_auth_txns::Entity::find()
            .filter(device_auth_txns::Column::RequestId.eq(request_id))
            .order_by_desc(device_auth_txns::Column::CreatedAt)
            .limit(1)
            .one(&self.0)
            .await?
            .map(txn_from)
            .transpose()
    }

    /// Confirms a verified answer if everything a confirmation needs holds
    /// now (see `CONFIRM_FIT_ANSWER`) and returns the transaction's mode;
    /// `None` when anything does not hold, and then nothing was written.
    pub async fn confirm_fit_answer(
        &self,
        answer: &FitAnswer<'_>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<DevicePolicy>> {
        let statement = Statement::from_sql_and_values(
            self.0.get_database_backend(),
            CONFIRM_FIT_ANSWER,
            [
                answer.txn_id.into(),
                answer.nonce.into(),
                answer.device_id.as_str().into(),
                ms(now).into(),
                answer.required_ip.map(str::to_owned).into(),
                answer.serial_hex.into(),
                answer.spki_sha256_hex.into(),
                answer.basis_prefix.into(),
                answer.proof.link.into(),
                answer.proof.code.into(),
                answer.number.into(),
            ],
        );
        let Some(row) = self.0.query_one_raw(statement).await? else {
            return Ok(None);
        };
        let mode: String = row.try_get("", "mode")?;
        DevicePolicy::parse(&mode)
            .map(Some)
            .ok_or(StoreError::Corrupt(mode))
    }

    /// Records the answer to a pending transaction; false when it was
    /// answered already.
    pub async fn answer_txn(
        &self,
        id: &str,
        update: TxnUpdate<'_>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let (outcome, failure) = match update.outcome {
            TxnOutcome::Pending => ("pending", None),
            TxnOutcome::Confirmed => ("confirmed", None),
            TxnOutcome::Failed(f) => (
                "failed",
                Some(serde_json::to_string(f).map_err(|e| StoreError::Corrupt(e.to_string()))?),
            ),
        };
        let result = device_auth_txns::Entity::update_many()
            .col_expr(device_auth_txns::Column::Outcome, Expr::value(outcome))
            .col_expr(device_auth_txns::Column::Failure, Expr::value(failure))
            .col_expr(
                device_auth_txns::Column::DeviceId,
                Expr::value(update.device_id.map(ToString::to_string)),
            )
            .col_expr(device_auth_txns::Column::AnsweredAt, Expr::value(ms(now)))
            .col_expr(
                device_auth_txns::Column::ProofHash,
                Expr::value(update.proof.map(|p| p.link.to_owned())),
            )
            .col_expr(
                device_auth_txns::Column::CodeHash,
                Expr::value(update.proof.map(|p| p.code.to_owned())),
            )
            .col_expr(
                device_auth_txns::Column::DeliveredBy,
                Expr::value(update.delivered.map(Delivery::as_str)),
            )
            .col_expr(
                device_auth_txns::Column::DeliveredAt,
                Expr::value(update.delivered.map(|_| ms(now))),
            )
            .filter(device_auth_txns::Column::Id.eq(id))
            .filter(device_auth_txns::Column::Outcome.eq("pending"))
            .exec(&self.0)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Spends a one-time redemption link: true for the one request that
    /// brings `proof_hash` while the transaction waits for its proof and
    /// was answered after `answered_after`. The link is spent whichever
    /// browser brought it; [`Db::deliver_proof`] then decides whether the
    /// browser was the right one.
    pub async fn spend_redemption_link(
        &self,
        txn_id: &str,
        proof_hash: &str,
        answered_after: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let result = device_auth_txns::Entity::update_many()
            .col_expr(
                device_auth_txns::Column::ProofHash,
                Expr::value(Option::<String>::None),
            )
            .col_expr(device_auth_txns::Column::LinkOpenedAt, Expr::value(ms(now)))
            .filter(device_auth_txns::Column::Id.eq(txn_id))
            .filter(device_auth_txns::Column::ProofHash.eq(proof_hash))
            .filter(device_auth_txns::Column::Outcome.eq("confirmed"))
            .filter(device_auth_txns::Column::DeliveredAt.is_null())
            .filter(device_auth_txns::Column::AnsweredAt.gt(ms(answered_after)))
            .exec(&self.0)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Records that the device's proof reached the session that started
    /// the transaction; false unless it is that session's, confirmed and
    /// not yet delivered.
    pub async fn deliver_proof(
        &self,
        txn_id: &str,
        session_id: &str,
        delivery: Delivery,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let result = device_auth_txns::Entity::update_many()
            .col_expr(
                device_auth_txns::Column::DeliveredBy,
                Expr::value(delivery.as_str()),
            )
            .col_expr(device_auth_txns::Column::DeliveredAt, Expr::value(ms(now)))
            .filter(device_auth_txns::Column::Id.eq(txn_id))
            .filter(device_auth_txns::Column::SessionId.eq(session_id))
            .filter(device_auth_txns::Column::Outcome.eq("confirmed"))
            .filter(device_auth_txns::Column::DeliveredAt.is_null())
            .exec(&self.0)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Spends one of a transaction's `max` guesses at its code, for the
    /// session that started it; false when none is left (or it is not
    /// this session's). Spending comes before comparing, so guesses sent
    /// in parallel cannot all be compared.
    pub async fn spend_code_attempt(
        &self,
        txn_id: &str,
        session_id: &str,
        max: i32,
    ) -> StoreResult<bool> {
        let result = device_auth_txns::Entity::update_many()
            .col_expr(
                device_auth_txns::Column::CodeAttempts,
                Expr::col(device_auth_txns::Column::CodeAttempts).add(1),
            )
            .filter(device_auth_txns::Column::Id.eq(txn_id))
            .filter(device_auth_txns::Column::SessionId.eq(session_id))
            .filter(device_auth_txns::Column::DeliveredAt.is_null())
            .filter(device_auth_txns::Column::CodeAttempts.lt(max))
            .exec(&self.0)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Delivers the proof by code: true when `code_hash` is the code the
    /// device was given and the transaction still waits for it.
    pub async fn deliver_by_code(
        &self,
        txn_id: &str,
        session_id: &str,
        code_hash: &str,
        answered_after: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let result = device_auth_txns::Entity::update_many()
            .col_expr(
                device_auth_txns::Column::DeliveredBy,
                Expr::value(Delivery::Code.as_str()),
            )
            .col_expr(device_auth_txns::Column::DeliveredAt, Expr::value(ms(now)))
            .col_expr(
                device_auth_txns::Column::CodeHash,
                Expr::value(Option::<String>::None),
            )
            .filter(device_auth_txns::Column::Id.eq(txn_id))
            .filter(device_auth_txns::Column::SessionId.eq(session_id))
            .filter(device_auth_txns::Column::CodeHash.eq(code_hash))
            .filter(device_auth_txns::Column::Outcome.eq("confirmed"))
            .filter(device_auth_txns::Column::DeliveredAt.is_null())
            .filter(device_auth_txns::Column::AnsweredAt.gt(ms(answered_after)))
            .exec(&self.0)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// How many device-auth transactions of `mode` were started since
    /// `since` in `session_id`, and for `user`.
    pub async fn recent_txns(
        &self,
        session_id: &str,
        user: &UserId,
        mode: DevicePolicy,
        since: DateTime<Utc>,
    ) -> StoreResult<(u64, u64)> {
        let by_session = device_auth_txns::Entity::find()
            .filter(device_auth_txns::Column::SessionId.eq(session_id))
            .filter(device_auth_txns::Column::CreatedAt.gt(ms(since)))
            .filter(device_auth_txns::Column::Mode.eq(mode.as_str()))
            .count(&self.0)
            .await?;
        let by_user = device_auth_txns::Entity::find()
            .filter(device_auth_txns::Column::UserId.eq(user.as_str()))
            .filter(device_auth_txns::Column::CreatedAt.gt(ms(since)))
            .filter(device_auth_txns::Column::Mode.eq(mode.as_str()))
            .count(&self.0)
            .await?;
        Ok((by_session, by_user))
    }

    /// Redeems a confirmed transaction for the session that started it;
    /// false when it is not confirmed, was redeemed, or belongs to another
    /// session.
    pub async fn redeem_txn(
        &self,
        id: &str,
        session_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let result = device_auth_txns::Entity::update_many()
            .col_expr(device_auth_txns::Column::RedeemedAt, Expr::value(ms(now)))
            .filter(device_auth_txns::Column::Id.eq(id))
            .filter(device_auth_txns::Column::SessionId.eq(session_id))
            .filter(device_auth_txns::Column::Outcome.eq("confirmed"))
            .filter(device_auth_txns::Column::RedeemedAt.is_null())
            .exec(&self.0)
            .await?;
        Ok(result.rows_affected == 1)
    }

    // ---- grants, codes, refresh tokens ----

    pub async fn insert_grant(&self, grant: &Grant, code_hash: &str) -> StoreResult<()> {
        grants::Entity::insert(grants::ActiveModel {
            id: Set(grant.id.clone()),
            session_id: Set(grant.session_id.clone()),
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
            amr: Set(grant.amr.join(" ")),
            acr: Set(grant.acr.clone()),
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

    pub async fn grant(&self, id: &str) -> StoreResult<Option<Grant>> {
        grants::Entity::find_by_id(id.to_owned())
            .one(&self.0)
            .await?
            .map(grant_from)
            .transpose()
    }

    /// Marks a grant's code used; false when it was used before.
    pub async fn use_code(&self, grant_id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let result = grants::Entity::update_many()
            .col_expr(grants::Column::CodeUsedAt, Expr::value(ms(now)))
            .filter(grants::Column::Id.eq(grant_id))
            .filter(grants::Column::CodeUsedAt.is_null())
            .exec(&self.0)
            .await?;
        Ok(result.rows_affected == 1)
    }

    pub async fn end_grant(&self, id: &str, reason: &str, now: DateTime<Utc>) -> StoreResult<()> {
        self.end_grants_where(grants::Column::Id, id, reason, now)
            .await?;
        Ok(())
    }

    pub async fn insert_refresh_token(
        &self,
        token_hash: &str,
        grant_id: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        refresh_tokens::Entity::insert(refresh_tokens::ActiveModel {
            token_hash: Set(token_hash.to_owned()),
            grant_id: Set(grant_id.to_owned()),
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
            grant_id: row.grant_id,
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

    // ---- clean-up ----

    /// Deletes what can no longer be used: sessions, sign-in attempts and
    /// device-auth transactions over before `cutoff`, grants ended before it
    /// or whose every refresh token expired before it (with those tokens),
    /// second-factor challenges expired at `now`, and sign-in history older
    /// than `history_cutoff`. Returns the rows deleted.
    pub async fn purge_expired(
        &self,
        cutoff: DateTime<Utc>,
        history_cutoff: DateTime<Utc>,
        throttle_cutoffs: (DateTime<Utc>, DateTime<Utc>),
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let (cutoff, history, throttle, daily, now) = (
            ms(cutoff),
            ms(history_cutoff),
            ms(throttle_cutoffs.0),
            ms(throttle_cutoffs.1),
            ms(now),
        );
        // Only integers are formatted into these statements.
        let dead_grants = format!(
            "(grants.ended_at IS NOT NULL AND grants.ended_at < {cutoff}) \
             OR (grants.created_at < {cutoff} AND NOT EXISTS (SELECT 1 FROM refresh_tokens r \
             WHERE r.grant_id = grants.id AND r.expires_at >= {cutoff}))"
        );
        let statements = [
            format!(
                "DELETE FROM refresh_tokens WHERE expires_at < {cutoff} \
                 OR grant_id IN (SELECT id FROM grants WHERE {dead_grants})"
            ),
            format!("DELETE FROM grants WHERE {dead_grants}"),
            format!(
                "DELETE FROM sso_sessions WHERE expires_at < {cutoff} \
                 OR (ended_at IS NOT NULL AND ended_at < {cutoff})"
            ),
            format!("DELETE FROM auth_requests WHERE expires_at < {cutoff}"),
            format!("DELETE FROM device_auth_txns WHERE expires_at < {cutoff}"),
            format!("DELETE FROM second_factor_challenges WHERE expires_at < {now}"),
            format!("DELETE FROM login_events WHERE at < {history}"),
            // Daily counts (`d:`) keep their day.
            format!(
                "DELETE FROM login_throttles WHERE last_failure < {throttle} \
                 AND (key NOT LIKE 'd:%' OR last_failure < {daily})"
            ),
        ];
        let mut deleted = 0;
        for statement in statements {
            deleted += self.0.execute_unprepared(&statement).await?.rows_affected();
        }
        Ok(deleted)
    }

    // ---- sign-in throttling ----

    /// The counts kept for `keys` (those that have any).
    pub async fn login_throttles(&self, keys: &[String]) -> StoreResult<Vec<LoginThrottle>> {
        let rows = login_throttles::Entity::find()
            .filter(login_throttles::Column::Key.is_in(keys.iter().cloned()))
            .all(&self.0)
            .await?;
        rows.into_iter()
            .map(|row| {
                Ok(LoginThrottle {
                    failures: u32::try_from(row.failures)
                        .map_err(|_| StoreError::Corrupt(format!("failures {}", row.failures)))?,
                    last_failure: time(row.last_failure)?,
                    key: row.key,
                })
            })
            .collect()
    }

    /// Counts one guess against `key` unless the key is locked out at
    /// `now` under `rule`, in one statement: true when it was counted. A
    /// count whose last failure is the rule's window or longer ago starts
    /// again at one. Two guesses racing each see the other's count. A
    /// count below the threshold is never a lockout, whatever the times:
    /// a request's `now` may be older than a racing request's count.
    pub async fn reserve_throttle(
        &self,
        key: &str,
        rule: &crate::core::limits::Rule,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let backend = self.0.get_database_backend();
        let window = rule.window.num_milliseconds();
        let update = format!(
            "UPDATE login_throttles SET \
               failures = CASE WHEN $2 - last_failure >= $3 THEN 1 \
                 WHEN failures >= {MAX_COUNTED} THEN failures ELSE failures + 1 END, \
               last_failure = CASE WHEN $2 > last_failure THEN $2 ELSE last_failure END \
             WHERE key = $1 AND (({lockout}) = 0 OR last_failure + ({lockout}) <= $2)",
            lockout = rule.lockout_sql()
        );
        let insert = "INSERT INTO login_throttles (key, failures, last_failure) \
                      VALUES ($1, 1, $2) ON CONFLICT (key) DO NOTHING";
        for _ in 0..2 {
            let counted = self
                .0
                .execute_raw(Statement::from_sql_and_values(
                    backend,
                    &update,
                    [key.into(), ms(now).into(), window.into()],
                ))
                .await?
                .rows_affected();
            if counted == 1 {
                return Ok(true);
            }
            let inserted = self
                .0
                .execute_raw(Statement::from_sql_and_values(
                    backend,
                    insert,
                    [key.into(), ms(now).into()],
                ))
                .await?
                .rows_affected();
            if inserted == 1 {
                return Ok(true);
            }
            // The row exists: locked out, or another guess inserted it
            // between the two statements (then the update counts it).
        }
        Ok(false)
    }

    /// Takes back one guess counted against `key` (it turned out right).
    pub async fn release_throttle(&self, key: &str) -> StoreResult<()> {
        self.0
            .execute_raw(Statement::from_sql_and_values(
                self.0.get_database_backend(),
                "UPDATE login_throttles SET failures = failures - 1 WHERE key = $1 AND failures > 0",
                [key.into()],
            ))
            .await?;
        Ok(())
    }

    /// Forgets the count kept for `key`.
    pub async fn clear_login_throttle(&self, key: &str) -> StoreResult<()> {
        login_throttles::Entity::delete_many()
            .filter(login_throttles::Column::Key.eq(key))
            .exec(&self.0)
            .await?;
        Ok(())
    }

    // ---- login history ----

    pub async fn insert_login_event(&self, event: &LoginEvent) -> StoreResult<()> {
        login_events::Entity::insert(login_events::ActiveModel {
            id: Set(uuid::Uuid::new_v4().simple().to_string()),
            at: Set(ms(event.at)),
            user_id: Set(event.user_id.as_ref().map(ToString::to_string)),
            login: Set(event.login.clone()),
            ip: Set(event.ip.clone()),
            user_agent: Set(event.user_agent.clone()),
            client_id: Set(event.client_id.as_ref().map(ToString::to_string)),
            device_id: Set(event.device_id.as_ref().map(ToString::to_string)),
            method: Set(event.method.clone()),
            result: Set(event.result.clone()),
            reason: Set(event.reason.clone()),
        })
        .exec_without_returning(&self.0)
        .await?;
        Ok(())
    }

    /// A user's login history, newest first.
    pub async fn login_events(&self, user: &UserId, limit: u64) -> StoreResult<Vec<LoginEvent>> {
        login_events::Entity::find()
            .filter(login_events::Column::UserId.eq(user.as_str()))
            .order_by_desc(login_events::Column::At)
            .limit(limit)
            .all(&self.0)
            .await?
            .into_iter()
            .map(|row| {
                Ok(LoginEvent {
                    at: time(row.at)?,
                    user_id: row.user_id.map(UserId::from_store),
                    client_id: row.client_id.map(ClientId::from_store),
                    device_id: row.device_id.map(DeviceId::from_store),
                    login: row.login,
                    ip: row.ip,
                    user_agent: row.user_agent,
                    method: row.method,
                    result: row.result,
                    reason: row.reason,
                })
            })
            .collect()
    }

    // ---- users and devices as the login sees them ----

    /// Devices bound to a user, oldest enrollment first.
    pub async fn devices_of_user(&self, email: &str) -> StoreResult<Vec<Device>> {
        devices::Entity::find()
            .filter(devices::Column::UserEmail.eq(email))
            .order_by_asc(devices::Column::EnrolledAt)
            .all(&self.0)
            .await?
            .into_iter()
            .map(|row| device_from(row, None))
            .collect()
    }
}
