//! Automated Device Enrollment: the named server tokens (key pair, sealed
//! token, profile, cursor, last sync, the lease that keeps one sync per
//! token across replicas) and the devices Apple lists for each. The
//! sealed values stay opaque strings here; only `ca` opens them.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    Set,
};

use super::entities::{apple_dep_devices as dd, apple_dep_tokens as dt};
use super::{Db, StoreResult, ms, opt_time, time};
use crate::domain::apple::dep::{DepCursorState, DepDeviceRecord, DepImported, DepTokenInfo};
use crate::domain::ids::DeviceId;

/// A token as stored, with its sealed secrets.
#[derive(Clone)]
pub struct StoredDepToken {
    pub info: DepTokenInfo,
    pub key_sealed: String,
    pub token_sealed: Option<String>,
    pub cursor: DepCursorState,
    /// The enrollment URL the profile `info.profile_uuid` was defined with.
    pub profile_url: Option<String>,
}

impl std::fmt::Debug for StoredDepToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredDepToken")
            .field("info", &self.info)
            .field("key_sealed", &"[redacted]")
            .field("token_sealed", &"[redacted]")
            .finish()
    }
}

fn token_from(row: dt::Model, devices: u64) -> StoreResult<StoredDepToken> {
    let imported = match (
        row.consumer_key,
        row.token_expires_at,
        row.imported_at,
        row.imported_by,
    ) {
        (Some(consumer_key), Some(expires_at), Some(imported_at), Some(imported_by)) => {
            Some(DepImported {
                consumer_key,
                expires_at: time(expires_at)?,
                server_name: row.server_name.unwrap_or_default(),
                server_uuid: row.server_uuid.unwrap_or_default(),
                org_name: row.org_name.unwrap_or_default(),
                imported_at: time(imported_at)?,
                imported_by,
            })
        }
        _ => None,
    };
    let cursor = match row.cursor {
        None => DepCursorState::None,
        Some(c) if row.fetch_done => DepCursorState::Syncing(c),
        Some(c) => DepCursorState::Fetching(c),
    };
    Ok(StoredDepToken {
        info: DepTokenInfo {
            name: row.name,
            certificate_pem: row.certificate_pem,
            created_at: time(row.created_at)?,
            created_by: row.created_by,
            imported,
            profile_uuid: row.profile_uuid,
            cursor_at: opt_time(row.cursor_at)?,
            has_cursor: !matches!(cursor, DepCursorState::None),
            last_sync_at: opt_time(row.last_sync_at)?,
            last_sync_outcome: row.last_sync_outcome,
            devices,
        },
        key_sealed: row.key_sealed,
        token_sealed: row.token_sealed,
        cursor,
        profile_url: row.profile_url,
    })
}

fn device_from(row: dd::Model) -> StoreResult<DepDeviceRecord> {
    Ok(DepDeviceRecord {
        serial_number: row.serial_number,
        token_name: row.token_name,
        device: row.device_id.map(DeviceId::from_store),
        model: row.model,
        description: row.description,
        color: row.color,
        os: row.os,
        device_family: row.device_family,
        profile_status: row.profile_status,
        profile_uuid: row.profile_uuid,
        op_type: row.op_type,
        op_date: opt_time(row.op_date)?,
        updated_at: time(row.updated_at)?,
        deleted_at: opt_time(row.deleted_at)?,
    })
}

impl<C: ConnectionTrait> Db<C> {
    /// Stores a new key pair under `name`.
    pub async fn insert_dep_keypair(
        &self,
        name: &str,
        certificate_pem: &str,
        key_sealed: &str,
        created_by: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        dt::Entity::insert(dt::ActiveModel {
            name: Set(name.to_owned()),
            certificate_pem: Set(certificate_pem.to_owned()),
            key_sealed: Set(key_sealed.to_owned()),
            created_at: Set(ms(now)),
            created_by: Set(created_by.to_owned()),
            token_sealed: Set(None),
            consumer_key: Set(None),
            token_expires_at: Set(None),
            server_name: Set(None),
            server_uuid: Set(None),
            org_name: Set(None),
            imported_at: Set(None),
            imported_by: Set(None),
            profile_uuid: Set(None),
            profile_url: Set(None),
            cursor: Set(None),
            cursor_at: Set(None),
            fetch_done: Set(false),
            last_sync_at: Set(None),
            last_sync_outcome: Set(None),
            sync_lease_until: Set(None),
        })
        .exec_without_returning(&self.0)
        .await?;
        Ok(())
    }

    async fn dep_device_count(&self, name: &str) -> StoreResult<u64> {
        Ok(dd::Entity::find()
            .filter(dd::Column::TokenName.eq(name))
            .filter(dd::Column::DeletedAt.is_null())
            .count(&self.0)
            .await?)
    }

    pub async fn dep_token(&self, name: &str) -> StoreResult<Option<StoredDepToken>> {
        let Some(row) = dt::Entity::find_by_id(name.to_owned()).one(&self.0).await? else {
            return Ok(None);
        };
        let devices = self.dep_device_count(name).await?;
        token_from(row, devices).map(Some)
    }

    /// Every token, by name.
    pub async fn dep_tokens(&self) -> StoreResult<Vec<StoredDepToken>> {
        let rows = dt::Entity::find()
            .order_by_asc(dt::Column::Name)
            .all(&self.0)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let devices = self.dep_device_count(&row.name).await?;
            out.push(token_from(row, devices)?);
        }
        Ok(out)
    }

    /// Stores an imported token. A token of another server than before
    /// starts over: no cursor, no profile.
    pub async fn set_dep_token(
        &self,
        name: &str,
        token_sealed: &str,
        imported: &DepImported,
        server_changed: bool,
    ) -> StoreResult<()> {
        let mut update = dt::Entity::update_many()
            .col_expr(dt::Column::TokenSealed, Expr::value(token_sealed))
            .col_expr(
                dt::Column::ConsumerKey,
                Expr::value(imported.consumer_key.as_str()),
            )
            .col_expr(
                dt::Column::TokenExpiresAt,
                Expr::value(ms(imported.expires_at)),
            )
            .col_expr(
                dt::Column::ServerName,
                Expr::value(imported.server_name.as_str()),
            )
            .col_expr(
                dt::Column::ServerUuid,
                Expr::value(imported.server_uuid.as_str()),
            )
            .col_expr(dt::Column::OrgName, Expr::value(imported.org_name.as_str()))
            .col_expr(
                dt::Column::ImportedAt,
                Expr::value(ms(imported.imported_at)),
            )
            .col_expr(
                dt::Column::ImportedBy,
                Expr::value(imported.imported_by.as_str()),
            );
        if server_changed {
            update = update
                .col_expr(dt::Column::ProfileUuid, Expr::value(Option::<String>::None))
                .col_expr(dt::Column::ProfileUrl, Expr::value(Option::<String>::None))
                .col_expr(dt::Column::Cursor, Expr::value(Option::<String>::None))
                .col_expr(dt::Column::CursorAt, Expr::value(Option::<i64>::None))
                .col_expr(dt::Column::FetchDone, Expr::value(false));
        }
        update
            .filter(dt::Column::Name.eq(name))
            .exec(&self.0)
            .await?;
        Ok(())
    }

    pub async fn set_dep_profile(&self, name: &str, uuid: &str, url: &str) -> StoreResult<()> {
        dt::Entity::update_many()
            .col_expr(dt::Column::ProfileUuid, Expr::value(uuid))
            .col_expr(dt::Column::ProfileUrl, Expr::value(url))
            .filter(dt::Column::Name.eq(name))
            .exec(&self.0)
            .await?;
        Ok(())
    }

    /// Stores where the device list stands, and when Apple said so.
    pub async fn set_dep_cursor(
        &self,
        name: &str,
        cursor: &DepCursorState,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let (text, fetch_done, at) = match cursor {
            DepCursorState::None => (None, false, None),
            DepCursorState::Fetching(c) => (Some(c.clone()), false, Some(ms(now))),
            DepCursorState::Syncing(c) => (Some(c.clone()), true, Some(ms(now))),
        };
        dt::Entity::update_many()
            .col_expr(dt::Column::Cursor, Expr::value(text))
            .col_expr(dt::Column::FetchDone, Expr::value(fetch_done))
            .col_expr(dt::Column::CursorAt, Expr::value(at))
            .filter(dt::Column::Name.eq(name))
            .exec(&self.0)
            .await?;
        Ok(())
    }

    /// Takes the token's sync lease until `until` if no other holds it
    /// (one statement, so two replicas cannot both take it).
    pub async fn claim_dep_sync(
        &self,
        name: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let claimed = dt::Entity::update_many()
            .col_expr(dt::Column::SyncLeaseUntil, Expr::value(ms(until)))
            .filter(dt::Column::Name.eq(name))
            .filter(
                Condition::any()
                    .add(dt::Column::SyncLeaseUntil.is_null())
                    .add(dt::Column::SyncLeaseUntil.lte(ms(now))),
            )
            .exec(&self.0)
            .await?;
        Ok(claimed.rows_affected == 1)
    }

    /// Ends a sync: the lease is released and its outcome kept.
    pub async fn finish_dep_sync(
        &self,
        name: &str,
        outcome: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        dt::Entity::update_many()
            .col_expr(dt::Column::SyncLeaseUntil, Expr::value(Option::<i64>::None))
            .col_expr(dt::Column::LastSyncAt, Expr::value(ms(now)))
            .col_expr(dt::Column::LastSyncOutcome, Expr::value(outcome))
            .filter(dt::Column::Name.eq(name))
            .exec(&self.0)
            .await?;
        Ok(())
    }

    pub async fn dep_device(&self, serial_number: &str) -> StoreResult<Option<DepDeviceRecord>> {
        dd::Entity::find_by_id(serial_number.to_owned())
            .one(&self.0)
            .await?
            .map(device_from)
            .transpose()
    }

    /// Stores what Apple says of a device (replacing what it said before).
    pub async fn put_dep_device(&self, record: &DepDeviceRecord) -> StoreResult<()> {
        dd::Entity::insert(dd::ActiveModel {
            serial_number: Set(record.serial_number.clone()),
            token_name: Set(record.token_name.clone()),
            device_id: Set(record.device.as_ref().map(ToString::to_string)),
            model: Set(record.model.clone()),
            description: Set(record.description.clone()),
            color: Set(record.color.clone()),
            os: Set(record.os.clone()),
            device_family: Set(record.device_family.clone()),
            profile_status: Set(record.profile_status.clone()),
            profile_uuid: Set(record.profile_uuid.clone()),
            op_type: Set(record.op_type.clone()),
            op_date: Set(record.op_date.map(ms)),
            updated_at: Set(ms(record.updated_at)),
            deleted_at: Set(record.deleted_at.map(ms)),
        })
        .on_conflict(
            OnConflict::column(dd::Column::SerialNumber)
                .update_columns([
                    dd::Column::TokenName,
                    dd::Column::DeviceId,
                    dd::Column::Model,
                    dd::Column::Description,
                    dd::Column::Color,
                    dd::Column::Os,
                    dd::Column::DeviceFamily,
                    dd::Column::ProfileStatus,
                    dd::Column::ProfileUuid,
                    dd::Column::OpType,
                    dd::Column::OpDate,
                    dd::Column::UpdatedAt,
                    dd::Column::DeletedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(&self.0)
        .await?;
        Ok(())
    }
}
