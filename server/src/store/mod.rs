//! Persistence: the only module that imports `sea_orm`. Rows are converted
//! into `domain` types here and never leave this module as entities.
//!
//! [`Db`] carries every query; it wraps either the pool ([`Store`]) or an
//! open transaction ([`Tx`]), so the core composes several writes into one
//! atomic step without naming a database type.

// The columns of `device_certificates`, `devices` and `device_auth_txns` as
// the joined statements select them (aliases `c`, `d`, `t`), read back with
// `Model::from_query_result(row, "c_")` and so on. Macros, so that each
// statement is one constant string; a test holds them to the entities.
macro_rules! certificate_columns {
    () => {
        "c.serial AS c_serial, c.device_id AS c_device_id, \
         c.spki_sha256 AS c_spki_sha256, c.not_before AS c_not_before, \
         c.not_after AS c_not_after, c.revoked_at AS c_revoked_at"
    };
}
macro_rules! device_columns {
    () => {
        "d.id AS d_id, d.hostname AS d_hostname, \
         d.platform AS d_platform, d.os_version AS d_os_version, d.machine_id AS d_machine_id, \
         d.serial AS d_serial, d.model AS d_model, d.state AS d_state, \
         d.user_email AS d_user_email, d.group_name AS d_group_name, \
         d.enrolled_at AS d_enrolled_at, d.last_seen AS d_last_seen, \
         d.posture_json AS d_posture_json, d.posture_at AS d_posture_at, \
         d.compliant_until AS d_compliant_until, \
         d.compliance_posture_at AS d_compliance_posture_at, \
         d.compliance_basis AS d_compliance_basis, d.channel AS d_channel"
    };
}
// The policy in force for device `d`: its own assignment (`pdp`), else its
// group's (`pgp`). Read back with `effective_policy_from`.
macro_rules! effective_policy_joins {
    () => {
        " LEFT JOIN policy_assignments pd ON pd.target_kind = 'device' AND pd.target = d.id \
          LEFT JOIN policies pdp ON pdp.name = pd.policy_name \
          LEFT JOIN policy_assignments pg ON pg.target_kind = 'group' AND pg.target = d.group_name \
          LEFT JOIN policies pgp ON pgp.name = pg.policy_name "
    };
}
macro_rules! effective_policy_columns {
    () => {
        "pdp.name AS pd_name, pdp.document AS pd_document, \
         pgp.name AS pg_name, pgp.document AS pg_document"
    };
}
macro_rules! txn_columns {
    () => {
        "t.id AS t_id, t.nonce AS t_nonce, t.short_code AS t_short_code, \
         t.mode AS t_mode, t.request_id AS t_request_id, t.session_id AS t_session_id, \
         t.user_id AS t_user_id, t.client_id AS t_client_id, \
         t.expected_devices AS t_expected_devices, t.browser_ip AS t_browser_ip, \
         t.browser_ua AS t_browser_ua, t.created_at AS t_created_at, \
         t.expires_at AS t_expires_at, t.device_id AS t_device_id, \
         t.answered_at AS t_answered_at, t.outcome AS t_outcome, t.failure AS t_failure, \
         t.redeemed_at AS t_redeemed_at, t.proof_hash AS t_proof_hash, \
         t.code_hash AS t_code_hash, t.code_attempts AS t_code_attempts, \
         t.link_opened_at AS t_link_opened_at, t.delivered_at AS t_delivered_at, \
         t.delivered_by AS t_delivered_by"
    };
}

mod admins;
mod apple_dep;
mod apple_dep_sign_ins;
mod apple_enrollments;
mod apple_identity_renewals;
mod apple_push;
mod apps;
mod audit;
mod certificates;
mod commands;
mod devices;
mod enrollment_tokens;
mod entities;
mod grants;
mod login_history;
mod policies;
mod purge;
mod requests;
mod second_factor;
mod sessions;
mod signing_keys;
mod throttles;
mod transactions;
mod users;

pub use apple_dep::StoredDepToken;
pub use apple_enrollments::StoredTokenUpdate;
pub use apple_push::StoredPushCertificate;
pub use certificates::{CertificateRecord, NewCertificate};
pub use second_factor::{Challenge, SecondFactorRecord};
pub use signing_keys::StoredSigningKey;
pub use throttles::lockout_sql;
pub use transactions::{DeviceAuthFacts, FitAnswer, ProofHashes, TxnUpdate, TxnUser};
pub use users::PasswordRecord;

use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait,
};

use latchkey_migrations::{Migrator, MigratorTrait};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(DbErr),
    /// A unique key is taken (two writers raced for the same name).
    #[error("already exists: {0}")]
    Conflict(String),
    #[error("the database holds a value this version does not understand: {0}")]
    Corrupt(String),
}

impl From<DbErr> for StoreError {
    fn from(e: DbErr) -> Self {
        match e.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(what)) => StoreError::Conflict(what),
            _ => StoreError::Database(e),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Rows per multi-row insert: well inside SQLite's 32,766 and PostgreSQL's
/// 65,535 bound values for every table here.
pub(crate) const INSERT_CHUNK: usize = 500;

/// Queries over a connection or a transaction.
pub struct Db<C>(C);

/// The connection pool.
pub type Store = Db<DatabaseConnection>;
/// One open transaction; dropped without `commit` it rolls back.
pub type Tx = Db<DatabaseTransaction>;

impl Clone for Store {
    fn clone(&self) -> Self {
        Db(self.0.clone())
    }
}

pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn time(ms: i64) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| StoreError::Corrupt(format!("time {ms}")))
}

pub(crate) fn opt_time(ms: Option<i64>) -> StoreResult<Option<DateTime<Utc>>> {
    ms.map(time).transpose()
}

pub(crate) fn count(value: i32) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

impl Store {
    /// Connects and runs the migrations. `sqlite://PATH?mode=rwc` or `postgres://…`.
    pub async fn connect(url: &str) -> StoreResult<Store> {
        let mut options = ConnectOptions::new(url.to_owned());
        options.sqlx_logging(false);
        if url.starts_with("sqlite:") {
            // One writer: SQLite serialises writes anyway, and a single
            // connection avoids SQLITE_BUSY on lock upgrades. WAL with
            // synchronous=NORMAL keeps commits durable across a process crash.
            // The connection is in-process: nothing can break it between
            // statements, so it is not pinged before each one.
            options
                .max_connections(1)
                .min_connections(1)
                .test_before_acquire(false);
            options.map_sqlx_sqlite_opts(|o| {
                o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(std::time::Duration::from_secs(10))
            });
        } else {
            // A connection idle for a while may have been closed by the
            // server or a network middlebox: ping it first. A busy one is
            // not pinged before every statement (a round trip each).
            options
                .max_connections(16)
                .min_connections(1)
                .test_before_acquire_if_idle_for(std::time::Duration::from_secs(30));
        }
        let db = Database::connect(options).await?;
        Migrator::up(&db, None).await?;
        Ok(Db(db))
    }

    pub async fn begin(&self) -> StoreResult<Tx> {
        Ok(Db(self.0.begin().await?))
    }

    pub async fn close(self) {
        let _ = self.0.close().await;
    }
}

impl Tx {
    pub async fn commit(self) -> StoreResult<()> {
        self.0.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{EntityTrait, Iterable};

    use super::entities::{device_auth_txns, device_certificates, devices};

    fn columns<E: EntityTrait>(alias: &str) -> String {
        E::Column::iter()
            .map(|c| {
                let c = sea_orm::IdenStatic::as_str(&c);
                format!("{alias}.{c} AS {alias}_{c}")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    #[test]
    fn joined_column_lists_name_every_column() {
        let spaced = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(
            spaced(certificate_columns!()),
            columns::<device_certificates::Entity>("c")
        );
        assert_eq!(spaced(device_columns!()), columns::<devices::Entity>("d"));
        assert_eq!(
            spaced(txn_columns!()),
            columns::<device_auth_txns::Entity>("t")
        );
    }
}
