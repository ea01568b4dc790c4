//! Persistence: the only module that imports `sea_orm`. Rows are converted
//! into `core::model` types here and never leave this module as entities.
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
         d.compliance_basis AS d_compliance_basis"
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

mod entities;
mod second_factor;
mod sso;

pub use second_factor::{Challenge, SecondFactorRecord};
pub use sso::{DeviceAuthFacts, FitAnswer, ProofHashes, TxnUpdate, TxnUser};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    DatabaseTransaction, DbErr, EntityTrait, FromQueryResult, PaginatorTrait, QueryFilter,
    QueryOrder, QueryResult, QuerySelect, Set, Statement, TransactionTrait,
};

use crate::core::ids::{AdminId, ClientId, CommandId, DeviceId, TokenId, UserId};
use crate::core::model::{
    Admin, App, AuditEntry, AuditEvent, CheckState, Command, CommandKind, CommandStatus,
    ComplianceVerdict, Device, DevicePolicy, DeviceState, EffectivePolicy, EnrollmentToken, Group,
    MfaPolicy, Posture, Role, StoredPolicy, User, UserKind, UserStatus,
};
use crate::core::networks::Cidr;
use entities::{
    admin_tokens, admins, apps, audit_log, commands, device_certificates, devices,
    enrollment_tokens, groups, policies, policy_assignments, signing_keys, user_groups, users,
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
const INSERT_CHUNK: usize = 500;

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

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time(ms: i64) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| StoreError::Corrupt(format!("time {ms}")))
}

fn opt_time(ms: Option<i64>) -> StoreResult<Option<DateTime<Utc>>> {
    ms.map(time).transpose()
}

fn count(value: i32) -> u32 {
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

fn admin_from(row: admins::Model) -> StoreResult<Admin> {
    Ok(Admin {
        role: Role::parse(&row.role).ok_or_else(|| StoreError::Corrupt(row.role.clone()))?,
        id: AdminId::from_store(row.id),
        email: row.email,
        created_at: time(row.created_at)?,
    })
}

fn token_from(row: enrollment_tokens::Model) -> StoreResult<EnrollmentToken> {
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

#[derive(serde::Serialize, serde::Deserialize)]
struct PostureRow {
    os_version: String,
    disk_encryption: String,
    screen_lock: String,
    firewall: String,
}

fn certificate_from(row: device_certificates::Model) -> StoreResult<CertificateRecord> {
    Ok(CertificateRecord {
        serial_hex: row.serial,
        device_id: DeviceId::from_store(row.device_id),
        spki_sha256_hex: row.spki_sha256,
        not_after: time(row.not_after)?,
        revoked_at: opt_time(row.revoked_at)?,
    })
}

fn device_from(row: devices::Model, cert_expiry: Option<i64>) -> StoreResult<Device> {
    let posture = match row.posture_json.as_deref() {
        Some(json) => {
            let p: PostureRow = serde_json::from_str(json)
                .map_err(|e| StoreError::Corrupt(format!("posture: {e}")))?;
            Some(Posture {
                os_version: p.os_version,
                disk_encryption: CheckState::parse(&p.disk_encryption),
                screen_lock: CheckState::parse(&p.screen_lock),
                firewall: CheckState::parse(&p.firewall),
            })
        }
        None => None,
    };
    Ok(Device {
        state: DeviceState::parse(&row.state).ok_or_else(|| StoreError::Corrupt(row.state))?,
        id: DeviceId::from_store(row.id),
        hostname: row.hostname,
        platform: row.platform,
        os_version: row.os_version,
        machine_id: row.machine_id,
        serial: row.serial,
        model: row.model,
        user: row.user_email,
        group: row.group_name,
        enrolled_at: time(row.enrolled_at)?,
        last_seen: opt_time(row.last_seen)?,
        posture,
        posture_at: opt_time(row.posture_at)?,
        certificate_expires_at: opt_time(cert_expiry)?,
    })
}

/// The policy in force read with `effective_policy_columns!`: the device's
/// own assignment, else its group's. A value that cannot be read is an
/// error, never "no policy".
fn effective_policy_from(row: &QueryResult) -> StoreResult<Option<EffectivePolicy>> {
    for pre in ["pd_", "pg_"] {
        let name: Option<String> = row.try_get(pre, "name")?;
        let document: Option<String> = row.try_get(pre, "document")?;
        if let (Some(name), Some(document)) = (name, document) {
            return Ok(Some(EffectivePolicy { name, document }));
        }
    }
    Ok(None)
}

/// A device and the policy in force for it, in one statement.
const DEVICE_WITH_POLICY: &str = concat!(
    "SELECT ",
    device_columns!(),
    ", ",
    effective_policy_columns!(),
    " FROM devices d",
    effective_policy_joins!(),
    "WHERE d.id = $1"
);

fn command_from(row: commands::Model) -> StoreResult<Command> {
    Ok(Command {
        kind: CommandKind::parse(&row.kind).ok_or_else(|| StoreError::Corrupt(row.kind.clone()))?,
        status: CommandStatus::parse(&row.status)
            .ok_or_else(|| StoreError::Corrupt(row.status.clone()))?,
        id: CommandId::from_store(row.id),
        device_id: DeviceId::from_store(row.device_id),
        message: row.message,
        result: row.result,
        created_at: time(row.created_at)?,
        sent_at: opt_time(row.sent_at)?,
        acked_at: opt_time(row.acked_at)?,
        created_by: row.created_by,
    })
}

/// A certificate as the store knows it, found by its key's SPKI hash.
#[derive(Debug, Clone)]
pub struct CertificateRecord {
    pub serial_hex: String,
    pub device_id: DeviceId,
    pub spki_sha256_hex: String,
    pub not_after: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A user's stored password. `Debug` hides the hash.
#[derive(Clone)]
pub struct PasswordRecord {
    pub hash: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub must_change: bool,
}

impl std::fmt::Debug for PasswordRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordRecord")
            .field("hash", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .field("must_change", &self.must_change)
            .finish()
    }
}

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

/// A new certificate to record for a device.
#[derive(Debug, Clone)]
pub struct NewCertificate {
    pub serial_hex: String,
    pub spki_sha256_hex: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
}

impl<C: ConnectionTrait> Db<C> {
    // ---- admins ----

    pub async fn count_admins(&self) -> StoreResult<u64> {
        Ok(admins::Entity::find().count(&self.0).await?)
    }

    pub async fn insert_admin(&self, admin: &Admin, token_hash: &str) -> StoreResult<()> {
        admins::Entity::insert(admins::ActiveModel {
            id: Set(admin.id.to_string()),
            email: Set(admin.email.clone()),
            role: Set(admin.role.as_str().to_owned()),
            created_at: Set(ms(admin.created_at)),
            disabled: Set(false),
        })
        .exec_without_returning(&self.0)
        .await?;
        admin_tokens::Entity::insert(admin_tokens::ActiveModel {
            token_hash: Set(token_hash.to_owned()),
            admin_id: Set(admin.id.to_string()),
            created_at: Set(ms(admin.created_at)),
        })
        .exec_without_returning(&self.0)
        .await?;
        Ok(())
    }

    pub async fn admin_by_email(&self, email: &str) -> StoreResult<Option<Admin>> {
        admins::Entity::find()
            .filter(admins::Column::Email.eq(email))
            .one(&self.0)
            .await?
            .map(admin_from)
            .transpose()
    }

    pub async fn admin_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<Admin>> {
        let Some(token) = admin_tokens::Entity::find_by_id(token_hash.to_owned())
            .one(&self.0)
            .await?
        else {
            return Ok(None);
        };
        let admin = admins::Entity::find_by_id(token.admin_id)
            .filter(admins::Column::Disabled.eq(false))
            .one(&self.0)
            .await?;
        admin.map(admin_from).transpose()
    }

    pub async fn list_admins(&self) -> StoreResult<Vec<Admin>> {
        admins::Entity::find()
            .order_by_asc(admins::Column::CreatedAt)
            .all(&self.0)
            .await?
            .into_iter()
            .map(admin_from)
            .collect()
    }

    // ---- enrollment tokens ----

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

    // ---- devices ----

    /// Inserts devices in one statement.
    pub async fn insert_devices(&self, devices: &[Device]) -> StoreResult<()> {
        if devices.is_empty() {
            return Ok(());
        }
        devices::Entity::insert_many(devices.iter().map(|device| devices::ActiveModel {
            id: Set(device.id.to_string()),
            hostname: Set(device.hostname.clone()),
            platform: Set(device.platform.clone()),
            os_version: Set(device.os_version.clone()),
            machine_id: Set(device.machine_id.clone()),
            serial: Set(device.serial.clone()),
            model: Set(device.model.clone()),
            state: Set(device.state.as_str().to_owned()),
            user_email: Set(device.user.clone()),
            group_name: Set(device.group.clone()),
            enrolled_at: Set(ms(device.enrolled_at)),
            last_seen: Set(device.last_seen.map(ms)),
            posture_json: Set(None),
            posture_at: Set(None),
            compliant_until: Set(None),
            compliance_posture_at: Set(None),
            compliance_basis: Set(None),
        }))
        .exec_without_returning(&self.0)
        .await?;
        Ok(())
    }

    async fn newest_certificate_expiry(&self, device_id: &str) -> StoreResult<Option<i64>> {
        let row = device_certificates::Entity::find()
            .filter(device_certificates::Column::DeviceId.eq(device_id))
            .filter(device_certificates::Column::RevokedAt.is_null())
            .order_by_desc(device_certificates::Column::NotAfter)
            .one(&self.0)
            .await?;
        Ok(row.map(|r| r.not_after))
    }

    pub async fn device(&self, id: &DeviceId) -> StoreResult<Option<Device>> {
        let Some(row) = devices::Entity::find_by_id(id.to_string())
            .one(&self.0)
            .await?
        else {
            return Ok(None);
        };
        let expiry = self.newest_certificate_expiry(&row.id).await?;
        device_from(row, expiry).map(Some)
    }

    /// A device (without its certificate expiry) and the policy in force
    /// for it: what its compliance is judged on.
    pub async fn device_with_policy(
        &self,
        id: &DeviceId,
    ) -> StoreResult<Option<(Device, Option<EffectivePolicy>)>> {
        let statement = Statement::from_sql_and_values(
            self.0.get_database_backend(),
            DEVICE_WITH_POLICY,
            [id.as_str().into()],
        );
        let Some(row) = self.0.query_one_raw(statement).await? else {
            return Ok(None);
        };
        let device = device_from(devices::Model::from_query_result(&row, "d_")?, None)?;
        Ok(Some((device, effective_policy_from(&row)?)))
    }

    /// Just the state of a device: the check made for every device message.
    pub async fn device_state(&self, id: &DeviceId) -> StoreResult<Option<DeviceState>> {
        let row = devices::Entity::find_by_id(id.to_string())
            .select_only()
            .column(devices::Column::State)
            .into_tuple::<String>()
            .one(&self.0)
            .await?;
        row.map(|state| DeviceState::parse(&state).ok_or(StoreError::Corrupt(state)))
            .transpose()
    }

    pub async fn list_devices(&self) -> StoreResult<Vec<Device>> {
        let rows = devices::Entity::find()
            .order_by_asc(devices::Column::EnrolledAt)
            .all(&self.0)
            .await?;
        let mut expiries = std::collections::HashMap::new();
        for cert in device_certificates::Entity::find()
            .filter(device_certificates::Column::RevokedAt.is_null())
            .all(&self.0)
            .await?
        {
            let entry = expiries.entry(cert.device_id).or_insert(cert.not_after);
            *entry = Ord::max(*entry, cert.not_after);
        }
        rows.into_iter()
            .map(|row| {
                let expiry = expiries.get(&row.id).copied();
                device_from(row, expiry)
            })
            .collect()
    }

    /// Moves a device from one of `from` to `to`; false when its state was
    /// none of them (another change came first).
    pub async fn change_device_state(
        &self,
        id: &DeviceId,
        from: &[DeviceState],
        to: DeviceState,
    ) -> StoreResult<bool> {
        let result = devices::Entity::update_many()
            .col_expr(devices::Column::State, Expr::value(to.as_str()))
            .filter(devices::Column::Id.eq(id.to_string()))
            .filter(devices::Column::State.is_in(from.iter().map(|s| s.as_str())))
            .exec(&self.0)
            .await?;
        Ok(result.rows_affected == 1)
    }

    pub async fn touch_device(&self, id: &DeviceId, now: DateTime<Utc>) -> StoreResult<()> {
        devices::Entity::update_many()
            .col_expr(devices::Column::LastSeen, Expr::value(ms(now)))
            .filter(devices::Column::Id.eq(id.to_string()))
            .exec(&self.0)
            .await?;
        Ok(())
    }

    /// Records a posture report with the verdict reached on it, in one
    /// statement. The verdict names the posture time it was reached on, so
    /// a posture written any other way (by an older release during an
    /// upgrade, say) leaves it untrusted.
    pub async fn set_posture(
        &self,
        id: &DeviceId,
        posture: &Posture,
        verdict: &ComplianceVerdict,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let json = serde_json::to_string(&PostureRow {
            os_version: posture.os_version.clone(),
            disk_encryption: posture.disk_encryption.as_str().to_owned(),
            screen_lock: posture.screen_lock.as_str().to_owned(),
            firewall: posture.firewall.as_str().to_owned(),
        })
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut update = devices::Entity::update_many()
            .col_expr(devices::Column::PostureJson, Expr::value(json))
            .col_expr(devices::Column::PostureAt, Expr::value(ms(now)))
            .col_expr(
                devices::Column::CompliantUntil,
                Expr::value(verdict.compliant_until.map(ms)),
            )
            .col_expr(devices::Column::CompliancePostureAt, Expr::value(ms(now)))
            .col_expr(
                devices::Column::ComplianceBasis,
                Expr::value(verdict.basis.clone()),
            )
            .col_expr(devices::Column::LastSeen, Expr::value(ms(now)));
        if !posture.os_version.is_empty() {
            update = update.col_expr(
                devices::Column::OsVersion,
                Expr::value(posture.os_version.clone()),
            );
        }
        update
            .filter(devices::Column::Id.eq(id.to_string()))
            .exec(&self.0)
            .await?;
        Ok(())
    }

    // ---- certificates ----

    pub async fn insert_certificate(
        &self,
        device_id: &DeviceId,
        cert: &NewCertificate,
    ) -> StoreResult<()> {
        self.insert_certificates(&[(device_id.clone(), cert.clone())])
            .await
    }

    /// Inserts certificates in one statement.
    pub async fn insert_certificates(
        &self,
        certificates: &[(DeviceId, NewCertificate)],
    ) -> StoreResult<()> {
        if certificates.is_empty() {
            return Ok(());
        }
        device_certificates::Entity::insert_many(certificates.iter().map(|(device_id, cert)| {
            device_certificates::ActiveModel {
                serial: Set(cert.serial_hex.clone()),
                device_id: Set(device_id.to_string()),
                spki_sha256: Set(cert.spki_sha256_hex.clone()),
                not_before: Set(ms(cert.not_before)),
                not_after: Set(ms(cert.not_after)),
                revoked_at: Set(None),
            }
        }))
        .exec_without_returning(&self.0)
        .await?;
        Ok(())
    }

    /// A certificate by its serial: how a presented certificate is found.
    pub async fn certificate(&self, serial_hex: &str) -> StoreResult<Option<CertificateRecord>> {
        device_certificates::Entity::find_by_id(serial_hex.to_owned())
            .one(&self.0)
            .await?
            .map(certificate_from)
            .transpose()
    }

    /// A certificate with the state of its device (absent if the device
    /// was deleted), in one statement: what every device call is admitted
    /// on.
    pub async fn certificate_and_state(
        &self,
        serial_hex: &str,
    ) -> StoreResult<Option<(CertificateRecord, Option<DeviceState>)>> {
        let statement = Statement::from_sql_and_values(
            self.0.get_database_backend(),
            concat!(
                "SELECT ",
                certificate_columns!(),
                ", d.state AS d_state FROM device_certificates c \
                 LEFT JOIN devices d ON d.id = c.device_id WHERE c.serial = $1"
            ),
            [serial_hex.into()],
        );
        let Some(row) = self.0.query_one_raw(statement).await? else {
            return Ok(None);
        };
        let certificate =
            certificate_from(device_certificates::Model::from_query_result(&row, "c_")?)?;
        let state = row
            .try_get::<Option<String>>("", "d_state")?
            .map(|s| DeviceState::parse(&s).ok_or(StoreError::Corrupt(s)))
            .transpose()?;
        Ok(Some((certificate, state)))
    }

    /// Revokes one certificate of a device if it is still valid; false when
    /// it was revoked meanwhile (the device retired or renewed already).
    pub async fn revoke_certificate(
        &self,
        device_id: &DeviceId,
        serial_hex: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let result = device_certificates::Entity::update_many()
            .col_expr(device_certificates::Column::RevokedAt, Expr::value(ms(now)))
            .filter(device_certificates::Column::Serial.eq(serial_hex))
            .filter(device_certificates::Column::DeviceId.eq(device_id.to_string()))
            .filter(device_certificates::Column::RevokedAt.is_null())
            .exec(&self.0)
            .await?;
        Ok(result.rows_affected == 1)
    }

    pub async fn revoke_device_certificates(
        &self,
        device_id: &DeviceId,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let result = device_certificates::Entity::update_many()
            .col_expr(device_certificates::Column::RevokedAt, Expr::value(ms(now)))
            .filter(device_certificates::Column::DeviceId.eq(device_id.to_string()))
            .filter(device_certificates::Column::RevokedAt.is_null())
            .exec(&self.0)
            .await?;
        Ok(result.rows_affected)
    }

    /// (serial hex, revocation time) of every revoked certificate not yet expired.
    pub async fn revoked_certificates(
        &self,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<(String, DateTime<Utc>)>> {
        device_certificates::Entity::find()
            .filter(device_certificates::Column::RevokedAt.is_not_null())
            .filter(device_certificates::Column::NotAfter.gt(ms(now)))
            .all(&self.0)
            .await?
            .into_iter()
            .map(|r| Ok((r.serial, time(r.revoked_at.unwrap_or(r.not_before))?)))
            .collect()
    }

    // ---- commands ----

    pub async fn insert_command(&self, command: &Command) -> StoreResult<()> {
        commands::Entity::insert(commands::ActiveModel {
            id: Set(command.id.to_string()),
            device_id: Set(command.device_id.to_string()),
            kind: Set(command.kind.as_str().to_owned()),
            message: Set(command.message.clone()),
            status: Set(command.status.as_str().to_owned()),
            result: Set(command.result.clone()),
            created_at: Set(ms(command.created_at)),
            sent_at: Set(command.sent_at.map(ms)),
            acked_at: Set(command.acked_at.map(ms)),
            created_by: Set(command.created_by.clone()),
        })
        .exec_without_returning(&self.0)
        .await?;
        Ok(())
    }

    pub async fn command(&self, id: &CommandId) -> StoreResult<Option<Command>> {
        commands::Entity::find_by_id(id.to_string())
            .one(&self.0)
            .await?
            .map(command_from)
            .transpose()
    }

    pub async fn list_commands(&self, device_id: &DeviceId) -> StoreResult<Vec<Command>> {
        commands::Entity::find()
            .filter(commands::Column::DeviceId.eq(device_id.to_string()))
            .order_by_asc(commands::Column::CreatedAt)
            .order_by_asc(commands::Column::Id)
            .all(&self.0)
            .await?
            .into_iter()
            .map(command_from)
            .collect()
    }

    /// Commands of a device still waiting for an acknowledgement, oldest first.
    pub async fn open_commands(&self, device_id: &DeviceId) -> StoreResult<Vec<Command>> {
        commands::Entity::find()
            .filter(commands::Column::DeviceId.eq(device_id.to_string()))
            .filter(commands::Column::Status.is_in([
                CommandStatus::Pending.as_str(),
                CommandStatus::Sent.as_str(),
            ]))
            .order_by_asc(commands::Column::CreatedAt)
            .order_by_asc(commands::Column::Id)
            .all(&self.0)
            .await?
            .into_iter()
            .map(command_from)
            .collect()
    }

    /// Open commands last sent before `before` (or never sent), any device.
    pub async fn commands_to_redeliver(
        &self,
        before: DateTime<Utc>,
        limit: u64,
    ) -> StoreResult<Vec<Command>> {
        commands::Entity::find()
            .filter(commands::Column::Status.is_in([
                CommandStatus::Pending.as_str(),
                CommandStatus::Sent.as_str(),
            ]))
            .filter(
                commands::Column::SentAt
                    .is_null()
                    .or(commands::Column::SentAt.lt(ms(before))),
            )
            .order_by_asc(commands::Column::CreatedAt)
            .limit(limit)
            .all(&self.0)
            .await?
            .into_iter()
            .map(command_from)
            .collect()
    }

    pub async fn mark_commands_sent(
        &self,
        ids: &[CommandId],
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        commands::Entity::update_many()
            .col_expr(commands::Column::SentAt, Expr::value(ms(now)))
            .col_expr(
                commands::Column::Status,
                Expr::value(CommandStatus::Sent.as_str()),
            )
            .filter(commands::Column::Id.is_in(ids.iter().map(ToString::to_string)))
            .filter(commands::Column::Status.is_in([
                CommandStatus::Pending.as_str(),
                CommandStatus::Sent.as_str(),
            ]))
            .exec(&self.0)
            .await?;
        Ok(())
    }

    /// Records the agent's answer once; a repeated acknowledgement changes nothing.
    pub async fn acknowledge_command(
        &self,
        id: &CommandId,
        device_id: &DeviceId,
        status: CommandStatus,
        result: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let outcome = commands::Entity::update_many()
            .col_expr(commands::Column::Status, Expr::value(status.as_str()))
            .col_expr(commands::Column::Result, Expr::value(result.to_owned()))
            .col_expr(commands::Column::AckedAt, Expr::value(ms(now)))
            .filter(commands::Column::Id.eq(id.to_string()))
            .filter(commands::Column::DeviceId.eq(device_id.to_string()))
            .filter(commands::Column::Status.is_in([
                CommandStatus::Pending.as_str(),
                CommandStatus::Sent.as_str(),
            ]))
            .exec(&self.0)
            .await?;
        Ok(outcome.rows_affected == 1)
    }

    /// Closes every open command of a device (it was retired or wiped).
    pub async fn fail_open_commands(
        &self,
        device_id: &DeviceId,
        result: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        commands::Entity::update_many()
            .col_expr(
                commands::Column::Status,
                Expr::value(CommandStatus::Failed.as_str()),
            )
            .col_expr(commands::Column::Result, Expr::value(result.to_owned()))
            .col_expr(commands::Column::AckedAt, Expr::value(ms(now)))
            .filter(commands::Column::DeviceId.eq(device_id.to_string()))
            .filter(commands::Column::Status.is_in([
                CommandStatus::Pending.as_str(),
                CommandStatus::Sent.as_str(),
            ]))
            .exec(&self.0)
            .await?;
        Ok(())
    }

    // ---- policies ----

    /// Creates or replaces a policy document; returns the new version.
    pub async fn upsert_policy(
        &self,
        name: &str,
        document: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<i64> {
        // Locked so two concurrent changes get two versions (PostgreSQL;
        // SQLite serialises writers anyway).
        let existing = policies::Entity::find_by_id(name.to_owned())
            .lock_exclusive()
            .one(&self.0)
            .await?;
        let version = existing.as_ref().map_or(1, |p| p.version + 1);
        let model = policies::ActiveModel {
            name: Set(name.to_owned()),
            document: Set(document.to_owned()),
            version: Set(version),
            updated_at: Set(ms(now)),
        };
        policies::Entity::insert(model)
            .on_conflict(
                OnConflict::column(policies::Column::Name)
                    .update_columns([
                        policies::Column::Document,
                        policies::Column::Version,
                        policies::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec(&self.0)
            .await?;
        Ok(version)
    }

    pub async fn assign_policy(&self, name: &str, kind: &str, target: &str) -> StoreResult<()> {
        let model = policy_assignments::ActiveModel {
            target_kind: Set(kind.to_owned()),
            target: Set(target.to_owned()),
            policy_name: Set(name.to_owned()),
        };
        policy_assignments::Entity::insert(model)
            .on_conflict(
                OnConflict::columns([
                    policy_assignments::Column::TargetKind,
                    policy_assignments::Column::Target,
                ])
                .update_column(policy_assignments::Column::PolicyName)
                .to_owned(),
            )
            .exec(&self.0)
            .await?;
        Ok(())
    }

    pub async fn policy(&self, name: &str) -> StoreResult<Option<StoredPolicy>> {
        let Some(row) = policies::Entity::find_by_id(name.to_owned())
            .one(&self.0)
            .await?
        else {
            return Ok(None);
        };
        let assignments = policy_assignments::Entity::find()
            .filter(policy_assignments::Column::PolicyName.eq(name))
            .all(&self.0)
            .await?;
        Ok(Some(policy_from(row, &assignments)?))
    }

    pub async fn all_policies(&self) -> StoreResult<Vec<StoredPolicy>> {
        let rows = policies::Entity::find().all(&self.0).await?;
        let assignments = policy_assignments::Entity::find().all(&self.0).await?;
        rows.into_iter()
            .map(|row| policy_from(row, &assignments))
            .collect()
    }

    // ---- users and groups ----

    /// Creates the groups in `names` that do not exist yet.
    pub async fn ensure_groups(&self, names: &[String], now: DateTime<Utc>) -> StoreResult<()> {
        if names.is_empty() {
            return Ok(());
        }
        groups::Entity::insert_many(names.iter().map(|name| groups::ActiveModel {
            name: Set(name.clone()),
            created_at: Set(ms(now)),
        }))
        .on_conflict(
            OnConflict::column(groups::Column::Name)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&self.0)
        .await?;
        Ok(())
    }

    /// Creates a group; false when it exists already.
    pub async fn insert_group(&self, name: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let inserted = groups::Entity::insert(groups::ActiveModel {
            name: Set(name.to_owned()),
            created_at: Set(ms(now)),
        })
        .on_conflict(
            OnConflict::column(groups::Column::Name)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&self.0)
        .await?;
        Ok(inserted == 1)
    }

    pub async fn list_groups(&self) -> StoreResult<Vec<Group>> {
        let memberships = user_groups::Entity::find().all(&self.0).await?;
        groups::Entity::find()
            .order_by_asc(groups::Column::Name)
            .all(&self.0)
            .await?
            .into_iter()
            .map(|g| {
                let members = memberships
                    .iter()
                    .filter(|m| m.group_name == g.name)
                    .count();
                Ok(Group {
                    created_at: time(g.created_at)?,
                    members: u64::try_from(members).unwrap_or(u64::MAX),
                    name: g.name,
                })
            })
            .collect()
    }

    /// Inserts a user and its group memberships (the groups must exist).
    fn user_row(user: &User) -> users::ActiveModel {
        users::ActiveModel {
            id: Set(user.id.to_string()),
            email: Set(user.email.clone()),
            name: Set(user.name.clone()),
            kind: Set(user.kind.as_str().to_owned()),
            status: Set(user.status.as_str().to_owned()),
            locale: Set(user.locale.clone()),
            password_hash: Set(None),
            password_expires_at: Set(None),
            password_must_change: Set(false),
            created_at: Set(ms(user.created_at)),
            updated_at: Set(ms(user.updated_at)),
            totp_secret: Set(None),
            totp_last_step: Set(None),
            mfa_setting: Set(None),
        }
    }

    /// Inserts many users and their memberships in multi-row statements
    /// (an import of 50,000 rows is 200 statements, not 100,000).
    pub async fn insert_users(&self, users_to_add: &[User]) -> StoreResult<()> {
        for chunk in users_to_add.chunks(INSERT_CHUNK) {
            users::Entity::insert_many(chunk.iter().map(Self::user_row))
                .exec_without_returning(&self.0)
                .await?;
        }
        let memberships: Vec<user_groups::ActiveModel> = users_to_add
            .iter()
            .flat_map(|user| {
                user.groups.iter().map(|g| user_groups::ActiveModel {
                    user_id: Set(user.id.to_string()),
                    group_name: Set(g.clone()),
                })
            })
            .collect();
        for chunk in memberships.chunks(INSERT_CHUNK) {
            user_groups::Entity::insert_many(chunk.iter().cloned())
                .exec_without_returning(&self.0)
                .await?;
        }
        Ok(())
    }

    pub async fn insert_user(&self, user: &User) -> StoreResult<()> {
        users::Entity::insert(Self::user_row(user))
            .exec_without_returning(&self.0)
            .await?;
        if !user.groups.is_empty() {
            user_groups::Entity::insert_many(user.groups.iter().map(|g| {
                user_groups::ActiveModel {
                    user_id: Set(user.id.to_string()),
                    group_name: Set(g.clone()),
                }
            }))
            .exec_without_returning(&self.0)
            .await?;
        }
        Ok(())
    }

    fn user_from(row: users::Model, memberships: &[user_groups::Model]) -> StoreResult<User> {
        let mut groups: Vec<String> = memberships
            .iter()
            .filter(|m| m.user_id == row.id)
            .map(|m| m.group_name.clone())
            .collect();
        groups.sort();
        Ok(User {
            kind: UserKind::parse(&row.kind)
                .ok_or_else(|| StoreError::Corrupt(row.kind.clone()))?,
            status: UserStatus::parse(&row.status)
                .ok_or_else(|| StoreError::Corrupt(row.status.clone()))?,
            id: UserId::from_store(row.id),
            email: row.email,
            name: row.name,
            locale: row.locale,
            groups,
            created_at: time(row.created_at)?,
            updated_at: time(row.updated_at)?,
        })
    }

    /// A user row with its group memberships.
    async fn user_with_groups(&self, row: Option<users::Model>) -> StoreResult<Option<User>> {
        let Some(row) = row else {
            return Ok(None);
        };
        let memberships = user_groups::Entity::find()
            .filter(user_groups::Column::UserId.eq(row.id.clone()))
            .all(&self.0)
            .await?;
        Self::user_from(row, &memberships).map(Some)
    }

    pub async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let row = users::Entity::find()
            .filter(users::Column::Email.eq(email))
            .one(&self.0)
            .await?;
        self.user_with_groups(row).await
    }

    pub async fn user_by_id(&self, id: &UserId) -> StoreResult<Option<User>> {
        let row = users::Entity::find_by_id(id.to_string())
            .one(&self.0)
            .await?;
        self.user_with_groups(row).await
    }

    pub async fn list_users(&self) -> StoreResult<Vec<User>> {
        let memberships = user_groups::Entity::find().all(&self.0).await?;
        users::Entity::find()
            .order_by_asc(users::Column::Email)
            .all(&self.0)
            .await?
            .into_iter()
            .map(|row| Self::user_from(row, &memberships))
            .collect()
    }

    /// Moves a user from one of `from` to `to`; false when it was in none.
    pub async fn change_user_status(
        &self,
        id: &UserId,
        from: &[UserStatus],
        to: UserStatus,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut update = users::Entity::update_many()
            .col_expr(users::Column::Status, Expr::value(to.as_str()))
            .col_expr(users::Column::UpdatedAt, Expr::value(ms(now)));
        if to == UserStatus::Deleted {
            // A deleted user never signs in again: keep no password.
            update = update
                .col_expr(
                    users::Column::PasswordHash,
                    Expr::value(Option::<String>::None),
                )
                .col_expr(
                    users::Column::PasswordExpiresAt,
                    Expr::value(Option::<i64>::None),
                )
                .col_expr(users::Column::PasswordMustChange, Expr::value(false));
        }
        let result = update
            .filter(users::Column::Id.eq(id.to_string()))
            .filter(users::Column::Status.is_in(from.iter().map(|s| s.as_str())))
            .exec(&self.0)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Stores an active user's password hash (Argon2id PHC string); false
    /// when the user is no longer active.
    pub async fn set_password(
        &self,
        id: &UserId,
        password: &PasswordRecord,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let result = users::Entity::update_many()
            .col_expr(
                users::Column::PasswordHash,
                Expr::value(password.hash.clone()),
            )
            .col_expr(
                users::Column::PasswordExpiresAt,
                Expr::value(password.expires_at.map(ms)),
            )
            .col_expr(
                users::Column::PasswordMustChange,
                Expr::value(password.must_change),
            )
            .col_expr(users::Column::UpdatedAt, Expr::value(ms(now)))
            .filter(users::Column::Id.eq(id.to_string()))
            .filter(users::Column::Status.eq(UserStatus::Active.as_str()))
            .exec(&self.0)
            .await?;
        Ok(result.rows_affected == 1)
    }

    pub async fn password(&self, id: &UserId) -> StoreResult<Option<PasswordRecord>> {
        let Some(row) = users::Entity::find_by_id(id.to_string())
            .one(&self.0)
            .await?
        else {
            return Ok(None);
        };
        let Some(hash) = row.password_hash else {
            return Ok(None);
        };
        Ok(Some(PasswordRecord {
            hash,
            expires_at: opt_time(row.password_expires_at)?,
            must_change: row.password_must_change,
        }))
    }

    /// Binds a device to a user (by email), or unbinds it.
    pub async fn set_device_user(&self, id: &DeviceId, email: Option<&str>) -> StoreResult<()> {
        devices::Entity::update_many()
            .col_expr(
                devices::Column::UserEmail,
                Expr::value(email.map(str::to_owned)),
            )
            .filter(devices::Column::Id.eq(id.to_string()))
            .exec(&self.0)
            .await?;
        Ok(())
    }

    // ---- apps ----

    fn app_from(row: apps::Model) -> StoreResult<App> {
        let redirect_uris: Vec<String> = serde_json::from_str(&row.redirect_uris)
            .map_err(|e| StoreError::Corrupt(format!("redirect URIs: {e}")))?;
        Ok(App {
            device_policy: DevicePolicy::parse(&row.device_policy)
                .ok_or_else(|| StoreError::Corrupt(row.device_policy.clone()))?,
            mfa_policy: MfaPolicy::parse(&row.mfa_policy)
                .ok_or_else(|| StoreError::Corrupt(row.mfa_policy.clone()))?,
            client_id: ClientId::from_store(row.client_id),
            name: row.name,
            public: row.public,
            redirect_uris,
            allowed_networks: Self::networks_from(row.allowed_networks.as_deref())?,
            post_logout_redirect_uris: match row.post_logout_redirect_uris.as_deref() {
                None => Vec::new(),
                Some(text) => serde_json::from_str(text)
                    .map_err(|e| StoreError::Corrupt(format!("post-logout redirect URIs: {e}")))?,
            },
            offline_access: row.offline_access,
            refresh_lifetime: row.refresh_lifetime_seconds.map_or(
                crate::core::model::DEFAULT_REFRESH_LIFETIME,
                chrono::Duration::seconds,
            ),
            created_at: time(row.created_at)?,
            updated_at: time(row.updated_at)?,
        })
    }

    fn networks_from(text: Option<&str>) -> StoreResult<Vec<Cidr>> {
        text.unwrap_or("")
            .split_whitespace()
            .map(|t| Cidr::parse(t).map_err(StoreError::Corrupt))
            .collect()
    }

    /// Space-separated blocks; `None` when there are none.
    fn networks_text(networks: &[Cidr]) -> Option<String> {
        (!networks.is_empty()).then(|| {
            networks
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        })
    }

    fn app_model(app: &App, secret_hash: Option<String>) -> StoreResult<apps::ActiveModel> {
        Ok(apps::ActiveModel {
            client_id: Set(app.client_id.to_string()),
            name: Set(app.name.clone()),
            secret_hash: Set(secret_hash),
            public: Set(app.public),
            redirect_uris: Set(serde_json::to_string(&app.redirect_uris)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?),
            device_policy: Set(app.device_policy.as_str().to_owned()),
            mfa_policy: Set(app.mfa_policy.as_str().to_owned()),
            created_at: Set(ms(app.created_at)),
            updated_at: Set(ms(app.updated_at)),
            allowed_networks: Set(Self::networks_text(&app.allowed_networks)),
            post_logout_redirect_uris: Set(Self::logout_uris_text(app)?),
            offline_access: Set(app.offline_access),
            refresh_lifetime_seconds: Set(Some(app.refresh_lifetime.num_seconds())),
        })
    }

    /// The JSON list of sign-out addresses; `None` when there are none.
    fn logout_uris_text(app: &App) -> StoreResult<Option<String>> {
        if app.post_logout_redirect_uris.is_empty() {
            return Ok(None);
        }
        serde_json::to_string(&app.post_logout_redirect_uris)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    pub async fn insert_app(&self, app: &App, secret_hash: Option<&str>) -> StoreResult<()> {
        apps::Entity::insert(Self::app_model(app, secret_hash.map(str::to_owned))?)
            .exec_without_returning(&self.0)
            .await?;
        Ok(())
    }

    pub async fn app_by_name(&self, name: &str) -> StoreResult<Option<App>> {
        apps::Entity::find()
            .filter(apps::Column::Name.eq(name))
            .one(&self.0)
            .await?
            .map(Self::app_from)
            .transpose()
    }

    /// An app and its client secret hash (none for public clients).
    pub async fn app_by_client_id(
        &self,
        client_id: &ClientId,
    ) -> StoreResult<Option<(App, Option<String>)>> {
        let Some(row) = apps::Entity::find_by_id(client_id.to_string())
            .one(&self.0)
            .await?
        else {
            return Ok(None);
        };
        let secret_hash = row.secret_hash.clone();
        Ok(Some((Self::app_from(row)?, secret_hash)))
    }

    pub async fn list_apps(&self) -> StoreResult<Vec<App>> {
        apps::Entity::find()
            .order_by_asc(apps::Column::Name)
            .all(&self.0)
            .await?
            .into_iter()
            .map(Self::app_from)
            .collect()
    }

    /// Replaces an app's settings; with `secret_hash`, its secret too.
    pub async fn update_app(&self, app: &App, secret_hash: Option<&str>) -> StoreResult<()> {
        let mut update = apps::Entity::update_many()
            .col_expr(
                apps::Column::RedirectUris,
                Expr::value(
                    serde_json::to_string(&app.redirect_uris)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                ),
            )
            .col_expr(
                apps::Column::DevicePolicy,
                Expr::value(app.device_policy.as_str()),
            )
            .col_expr(
                apps::Column::MfaPolicy,
                Expr::value(app.mfa_policy.as_str()),
            )
            .col_expr(
                apps::Column::AllowedNetworks,
                Expr::value(Self::networks_text(&app.allowed_networks)),
            )
            .col_expr(
                apps::Column::PostLogoutRedirectUris,
                Expr::value(Self::logout_uris_text(app)?),
            )
            .col_expr(apps::Column::OfflineAccess, Expr::value(app.offline_access))
            .col_expr(
                apps::Column::RefreshLifetimeSeconds,
                Expr::value(app.refresh_lifetime.num_seconds()),
            )
            .col_expr(apps::Column::UpdatedAt, Expr::value(ms(app.updated_at)));
        if let Some(hash) = secret_hash {
            update = update.col_expr(apps::Column::SecretHash, Expr::value(hash.to_owned()));
        }
        update
            .filter(apps::Column::ClientId.eq(app.client_id.to_string()))
            .exec(&self.0)
            .await?;
        Ok(())
    }

    pub async fn delete_app(&self, client_id: &ClientId) -> StoreResult<bool> {
        let result = apps::Entity::delete_many()
            .filter(apps::Column::ClientId.eq(client_id.to_string()))
            .exec(&self.0)
            .await?;
        Ok(result.rows_affected == 1)
    }

    // ---- signing keys ----

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

    // ---- audit ----

    pub async fn audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        self.audit_many(std::slice::from_ref(entry)).await
    }

    /// Appends audit entries in one statement.
    pub async fn audit_many(&self, entries: &[AuditEntry]) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        for chunk in entries.chunks(INSERT_CHUNK) {
            audit_log::Entity::insert_many(chunk.iter().map(|entry| audit_log::ActiveModel {
                id: sea_orm::NotSet,
                at: Set(ms(entry.at)),
                actor: Set(entry.actor.clone()),
                action: Set(entry.action.to_owned()),
                target: Set(entry.target.clone()),
                outcome: Set(entry.outcome.as_str().to_owned()),
                detail: Set(entry.detail.clone()),
            }))
            .exec_without_returning(&self.0)
            .await?;
        }
        Ok(())
    }

    pub async fn list_audit(
        &self,
        since: DateTime<Utc>,
        limit: u64,
    ) -> StoreResult<Vec<AuditEvent>> {
        audit_log::Entity::find()
            .filter(audit_log::Column::At.gte(ms(since)))
            .order_by_desc(audit_log::Column::Id)
            .limit(limit)
            .all(&self.0)
            .await?
            .into_iter()
            .rev()
            .map(|r| {
                Ok(AuditEvent {
                    id: r.id,
                    at: time(r.at)?,
                    actor: r.actor,
                    action: r.action,
                    target: r.target,
                    outcome: r.outcome,
                    detail: r.detail,
                })
            })
            .collect()
    }
}

fn policy_from(
    row: policies::Model,
    assignments: &[policy_assignments::Model],
) -> StoreResult<StoredPolicy> {
    let mine = assignments.iter().filter(|a| a.policy_name == row.name);
    let (mut groups, mut devices) = (Vec::new(), Vec::new());
    for a in mine {
        match a.target_kind.as_str() {
            "group" => groups.push(a.target.clone()),
            "device" => devices.push(a.target.clone()),
            other => return Err(StoreError::Corrupt(format!("assignment kind {other}"))),
        }
    }
    groups.sort();
    devices.sort();
    Ok(StoredPolicy {
        updated_at: time(row.updated_at)?,
        name: row.name,
        document: row.document,
        version: row.version,
        groups,
        devices,
    })
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
