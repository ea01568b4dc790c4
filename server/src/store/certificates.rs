//! Device certificates: issued, looked up by serial, revoked, and the
//! list the CRL is built from.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, Set, Statement,
};

use super::entities::device_certificates;
use super::{Db, StoreError, StoreResult, ms, opt_time, time};
use crate::domain::device::{Channel, DeviceState};
use crate::domain::ids::DeviceId;

pub(super) fn certificate_from(row: device_certificates::Model) -> StoreResult<CertificateRecord> {
    Ok(CertificateRecord {
        serial_hex: row.serial,
        device_id: DeviceId::from_store(row.device_id),
        spki_sha256_hex: row.spki_sha256,
        not_after: time(row.not_after)?,
        revoked_at: opt_time(row.revoked_at)?,
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

/// A new certificate to record for a device.
#[derive(Debug, Clone)]
pub struct NewCertificate {
    pub serial_hex: String,
    pub spki_sha256_hex: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
}

impl<C: ConnectionTrait> Db<C> {
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

    /// A certificate with the state of its device and the channel it is
    /// managed over (absent if the device was deleted), in one statement:
    /// what every device call is admitted on.
    pub async fn certificate_and_state(
        &self,
        serial_hex: &str,
    ) -> StoreResult<Option<(CertificateRecord, Option<(DeviceState, Channel)>)>> {
        let statement = Statement::from_sql_and_values(
            self.0.get_database_backend(),
            concat!(
                "SELECT ",
                certificate_columns!(),
                ", d.state AS d_state, d.channel AS d_channel FROM device_certificates c \
                 LEFT JOIN devices d ON d.id = c.device_id WHERE c.serial = $1"
            ),
            [serial_hex.into()],
        );
        let Some(row) = self.0.query_one_raw(statement).await? else {
            return Ok(None);
        };
        certificate_and_device_from(&row).map(Some)
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
}

/// A certificate (columns `c_*`) with its device's state and channel
/// (`d_state`, `d_channel`; absent when the device was deleted), as the
/// statements that admit a device call read them.
pub(super) fn certificate_and_device_from(
    row: &sea_orm::QueryResult,
) -> StoreResult<(CertificateRecord, Option<(DeviceState, Channel)>)> {
    let certificate = certificate_from(device_certificates::Model::from_query_result(row, "c_")?)?;
    let state = row
        .try_get::<Option<String>>("", "d_state")?
        .map(|s| DeviceState::parse(&s).ok_or(StoreError::Corrupt(s)))
        .transpose()?;
    let channel = row
        .try_get::<Option<String>>("", "d_channel")?
        .map(|c| Channel::parse(&c).ok_or(StoreError::Corrupt(c)))
        .transpose()?;
    Ok((certificate, state.zip(channel)))
}
