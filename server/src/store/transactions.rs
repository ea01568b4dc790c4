//! Device-auth transactions: created for a sign-in, answered by the device
//! once, and their proof delivered to the browser once. Each change that
//! must happen once is a compare-and-set that reports whether it won, so
//! two replicas or two racing requests cannot both succeed.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, PaginatorTrait, QueryFilter,
    QueryOrder, QueryResult, QuerySelect, Set, Statement,
};

use super::certificates::{CertificateRecord, certificate_from};
use super::devices::{device_from, effective_policy_from};
use super::entities::{device_auth_txns, device_certificates, devices};
use super::{Db, StoreError, StoreResult, ms, opt_time, time};
use crate::domain::app::DevicePolicy;
use crate::domain::device::Device;
use crate::domain::ids::{
    AuthRequestId, ClientId, DeviceAuthTxnId, DeviceId, SsoSessionId, UserId,
};
use crate::domain::policy::EffectivePolicy;
use crate::domain::sign_in::{
    Delivery, DeviceAuthFailure, DeviceAuthTxn, FailedCheckView, TxnOutcome,
};
use crate::domain::user::UserStatus;

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
pub(super) const DEVICE_AUTH_FACTS: &str = concat!(
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
pub(super) const CONFIRM_FIT_ANSWER: &str = concat!(
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
    pub txn_id: &'a DeviceAuthTxnId,
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

pub(super) fn device_auth_facts_from(row: &QueryResult) -> StoreResult<DeviceAuthFacts> {
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

/// A [`DeviceAuthFailure`] as the `failure` column holds it: JSON tagged
/// by `code`, e.g. `{"code":"device_locked","device":"…"}`.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
enum FailureRow {
    NoDevice,
    NotAnswered,
    DeviceLocked {
        device: String,
    },
    DeviceRetired {
        device: String,
    },
    NotCompliant {
        device: String,
        checks: Vec<CheckRow>,
    },
    OtherUser {
        device: String,
    },
    WrongNetwork {
        device: String,
    },
    BadSignature {
        device: String,
    },
    WrongNumber {
        device: String,
    },
    NotDelivered {
        device: String,
    },
    TooManyCodes,
    TooManyRequests,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CheckRow {
    check: String,
    detail: String,
}

impl From<&DeviceAuthFailure> for FailureRow {
    fn from(failure: &DeviceAuthFailure) -> Self {
        use DeviceAuthFailure as F;
        match failure.clone() {
            F::NoDevice => FailureRow::NoDevice,
            F::NotAnswered => FailureRow::NotAnswered,
            F::DeviceLocked { device } => FailureRow::DeviceLocked { device },
            F::DeviceRetired { device } => FailureRow::DeviceRetired { device },
            F::NotCompliant { device, checks } => FailureRow::NotCompliant {
                device,
                checks: checks
                    .into_iter()
                    .map(|c| CheckRow {
                        check: c.check,
                        detail: c.detail,
                    })
                    .collect(),
            },
            F::OtherUser { device } => FailureRow::OtherUser { device },
            F::WrongNetwork { device } => FailureRow::WrongNetwork { device },
            F::BadSignature { device } => FailureRow::BadSignature { device },
            F::WrongNumber { device } => FailureRow::WrongNumber { device },
            F::NotDelivered { device } => FailureRow::NotDelivered { device },
            F::TooManyCodes => FailureRow::TooManyCodes,
            F::TooManyRequests => FailureRow::TooManyRequests,
        }
    }
}

impl From<FailureRow> for DeviceAuthFailure {
    fn from(row: FailureRow) -> Self {
        use DeviceAuthFailure as F;
        match row {
            FailureRow::NoDevice => F::NoDevice,
            FailureRow::NotAnswered => F::NotAnswered,
            FailureRow::DeviceLocked { device } => F::DeviceLocked { device },
            FailureRow::DeviceRetired { device } => F::DeviceRetired { device },
            FailureRow::NotCompliant { device, checks } => F::NotCompliant {
                device,
                checks: checks
                    .into_iter()
                    .map(|c| FailedCheckView {
                        check: c.check,
                        detail: c.detail,
                    })
                    .collect(),
            },
            FailureRow::OtherUser { device } => F::OtherUser { device },
            FailureRow::WrongNetwork { device } => F::WrongNetwork { device },
            FailureRow::BadSignature { device } => F::BadSignature { device },
            FailureRow::WrongNumber { device } => F::WrongNumber { device },
            FailureRow::NotDelivered { device } => F::NotDelivered { device },
            FailureRow::TooManyCodes => F::TooManyCodes,
            FailureRow::TooManyRequests => F::TooManyRequests,
        }
    }
}

pub(super) fn txn_from(row: device_auth_txns::Model) -> StoreResult<DeviceAuthTxn> {
    let outcome = match row.outcome.as_str() {
        "pending" => TxnOutcome::Pending,
        "confirmed" => TxnOutcome::Confirmed,
        "failed" => {
            let failure: FailureRow = serde_json::from_str(row.failure.as_deref().unwrap_or(""))
                .map_err(|e| StoreError::Corrupt(format!("device-auth failure: {e}")))?;
            TxnOutcome::Failed(failure.into())
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
        id: DeviceAuthTxnId::from_store(row.id),
        nonce: row.nonce,
        short_code: row.short_code,
        request_id: AuthRequestId::from_store(row.request_id),
        session_id: SsoSessionId::from_store(row.session_id),
        browser_ip: row.browser_ip,
        browser_ua: row.browser_ua,
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
    pub async fn insert_txn(&self, txn: &DeviceAuthTxn) -> StoreResult<()> {
        let expected: Vec<&str> = txn.expected_devices.iter().map(DeviceId::as_str).collect();
        device_auth_txns::Entity::insert(device_auth_txns::ActiveModel {
            id: Set(txn.id.to_string()),
            nonce: Set(txn.nonce.clone()),
            short_code: Set(txn.short_code.clone()),
            mode: Set(txn.mode.as_str().to_owned()),
            request_id: Set(txn.request_id.to_string()),
            session_id: Set(txn.session_id.to_string()),
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

    pub async fn txn(&self, id: &DeviceAuthTxnId) -> StoreResult<Option<DeviceAuthTxn>> {
        device_auth_txns::Entity::find_by_id(id.to_string())
            .one(&self.0)
            .await?
            .map(txn_from)
            .transpose()
    }

    /// Everything a device's call about a device-auth transaction is decided
    /// on, read in one statement: the certificate the device presented (by
    /// `serial`) with its device, the device's effective policy and newest
    /// valid certificate, and the transaction `txn_id` (if the call named
    /// one) with its user and app. `None` when no certificate has that
    /// serial.
    pub async fn device_auth_facts(
        &self,
        serial: &str,
        txn_id: Option<&DeviceAuthTxnId>,
    ) -> StoreResult<Option<DeviceAuthFacts>> {
        let backend = self.0.get_database_backend();
        // No transaction has the empty id.
        let txn_id = txn_id.map_or("", DeviceAuthTxnId::as_str);
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
    pub async fn latest_txn(
        &self,
        request_id: &AuthRequestId,
    ) -> StoreResult<Option<DeviceAuthTxn>> {
        device_auth_txns::Entity::find()
            .filter(device_auth_txns::Column::RequestId.eq(request_id.as_str()))
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
                answer.txn_id.as_str().into(),
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
        id: &DeviceAuthTxnId,
        update: TxnUpdate<'_>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let (outcome, failure) = match update.outcome {
            TxnOutcome::Pending => ("pending", None),
            TxnOutcome::Confirmed => ("confirmed", None),
            TxnOutcome::Failed(f) => (
                "failed",
                Some(
                    serde_json::to_string(&FailureRow::from(f))
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                ),
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
            .filter(device_auth_txns::Column::Id.eq(id.as_str()))
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
        txn_id: &DeviceAuthTxnId,
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
            .filter(device_auth_txns::Column::Id.eq(txn_id.as_str()))
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
        txn_id: &DeviceAuthTxnId,
        session_id: &SsoSessionId,
        delivery: Delivery,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let result = device_auth_txns::Entity::update_many()
            .col_expr(
                device_auth_txns::Column::DeliveredBy,
                Expr::value(delivery.as_str()),
            )
            .col_expr(device_auth_txns::Column::DeliveredAt, Expr::value(ms(now)))
            .filter(device_auth_txns::Column::Id.eq(txn_id.as_str()))
            .filter(device_auth_txns::Column::SessionId.eq(session_id.as_str()))
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
        txn_id: &DeviceAuthTxnId,
        session_id: &SsoSessionId,
        max: i32,
    ) -> StoreResult<bool> {
        let result = device_auth_txns::Entity::update_many()
            .col_expr(
                device_auth_txns::Column::CodeAttempts,
                Expr::col(device_auth_txns::Column::CodeAttempts).add(1),
            )
            .filter(device_auth_txns::Column::Id.eq(txn_id.as_str()))
            .filter(device_auth_txns::Column::SessionId.eq(session_id.as_str()))
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
        txn_id: &DeviceAuthTxnId,
        session_id: &SsoSessionId,
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
            .filter(device_auth_txns::Column::Id.eq(txn_id.as_str()))
            .filter(device_auth_txns::Column::SessionId.eq(session_id.as_str()))
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
        session_id: &SsoSessionId,
        user: &UserId,
        mode: DevicePolicy,
        since: DateTime<Utc>,
    ) -> StoreResult<(u64, u64)> {
        let by_session = device_auth_txns::Entity::find()
            .filter(device_auth_txns::Column::SessionId.eq(session_id.as_str()))
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
        id: &DeviceAuthTxnId,
        session_id: &SsoSessionId,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let result = device_auth_txns::Entity::update_many()
            .col_expr(device_auth_txns::Column::RedeemedAt, Expr::value(ms(now)))
            .filter(device_auth_txns::Column::Id.eq(id.as_str()))
            .filter(device_auth_txns::Column::SessionId.eq(session_id.as_str()))
            .filter(device_auth_txns::Column::Outcome.eq("confirmed"))
            .filter(device_auth_txns::Column::RedeemedAt.is_null())
            .exec(&self.0)
            .await?;
        Ok(result.rows_affected == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::FailureRow;
    use crate::domain::sign_in::{DeviceAuthFailure, FailedCheckView};

    /// Rows written by earlier releases read back, and new rows are written
    /// the same way.
    #[test]
    fn failures_keep_their_stored_form() -> Result<(), serde_json::Error> {
        let cases = [
            (DeviceAuthFailure::NotAnswered, r#"{"code":"not_answered"}"#),
            (
                DeviceAuthFailure::DeviceLocked {
                    device: "d1".into(),
                },
                r#"{"code":"device_locked","device":"d1"}"#,
            ),
            (
                DeviceAuthFailure::NotCompliant {
                    device: "d1".into(),
                    checks: vec![FailedCheckView {
                        check: "disk_encryption".into(),
                        detail: "off".into(),
                    }],
                },
                r#"{"code":"not_compliant","device":"d1","checks":[{"check":"disk_encryption","detail":"off"}]}"#,
            ),
            (
                DeviceAuthFailure::TooManyRequests,
                r#"{"code":"too_many_requests"}"#,
            ),
        ];
        for (failure, stored) in cases {
            assert_eq!(serde_json::to_string(&FailureRow::from(&failure))?, stored);
            let read: FailureRow = serde_json::from_str(stored)?;
            assert_eq!(DeviceAuthFailure::from(read), failure);
        }
        Ok(())
    }
}
