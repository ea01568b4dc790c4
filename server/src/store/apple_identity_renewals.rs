//! Renewals of Apple devices' identity certificates: at most one open per
//! device (a partial unique index), the certificate SCEP issued against a
//! renewal's challenge, and the devices whose identity is about to expire.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use super::entities::{
    apple_enrollments as e, apple_identity_renewals as r, apple_scep_challenges as ch,
    device_certificates,
};
use super::{Db, StoreError, StoreResult, ms, opt_time, time};
use crate::domain::apple::enrollment::{IdentityRenewal, RenewalOutcome, RenewedIdentity};
use crate::domain::ids::{CommandId, DeviceId};

fn renewal_from(row: r::Model) -> StoreResult<IdentityRenewal> {
    let issued = match (row.issued_serial, row.issued_sha256, row.issued_at) {
        (Some(serial_hex), Some(sha256), Some(at)) => Some(RenewedIdentity {
            serial_hex,
            sha256,
            at: time(at)?,
        }),
        _ => None,
    };
    let closed = match (opt_time(row.closed_at)?, row.outcome) {
        (Some(at), Some(outcome)) => Some((
            at,
            RenewalOutcome::parse(&outcome).ok_or(StoreError::Corrupt(outcome))?,
        )),
        _ => None,
    };
    Ok(IdentityRenewal {
        challenge_sha256: row.challenge_sha256,
        device: DeviceId::from_store(row.device_id),
        challenge_sealed: row.challenge_sealed,
        command: CommandId::parse(&row.command_id)
            .ok_or_else(|| StoreError::Corrupt(format!("command id {}", row.command_id)))?,
        replaces_sha256: row.replaces_sha256,
        started_by: row.started_by,
        started_at: time(row.started_at)?,
        expires_at: time(row.expires_at)?,
        issued,
        closed,
    })
}

impl<C: ConnectionTrait> Db<C> {
    /// Records a renewal just started; `Conflict` when the device already
    /// has one open.
    pub async fn insert_identity_renewal(&self, renewal: &IdentityRenewal) -> StoreResult<()> {
        r::Entity::insert(r::ActiveModel {
            challenge_sha256: Set(renewal.challenge_sha256.clone()),
            device_id: Set(renewal.device.to_string()),
            challenge_sealed: Set(renewal.challenge_sealed.clone()),
            command_id: Set(renewal.command.to_string()),
            replaces_sha256: Set(renewal.replaces_sha256.clone()),
            started_by: Set(renewal.started_by.clone()),
            started_at: Set(ms(renewal.started_at)),
            expires_at: Set(ms(renewal.expires_at)),
            issued_serial: Set(None),
            issued_sha256: Set(None),
            issued_at: Set(None),
            closed_at: Set(None),
            outcome: Set(None),
        })
        .exec_without_returning(&self.0)
        .await?;
        Ok(())
    }

    /// The device's open renewal, if any.
    pub async fn open_identity_renewal(
        &self,
        device: &DeviceId,
    ) -> StoreResult<Option<IdentityRenewal>> {
        r::Entity::find()
            .filter(r::Column::DeviceId.eq(device.to_string()))
            .filter(r::Column::ClosedAt.is_null())
            .one(&self.0)
            .await?
            .map(renewal_from)
            .transpose()
    }

    /// Every open renewal, oldest first.
    pub async fn open_identity_renewals(&self) -> StoreResult<Vec<IdentityRenewal>> {
        r::Entity::find()
            .filter(r::Column::ClosedAt.is_null())
            .order_by_asc(r::Column::StartedAt)
            .all(&self.0)
            .await?
            .into_iter()
            .map(renewal_from)
            .collect()
    }

    /// The renewal an InstallProfile command carries, open or not.
    pub async fn identity_renewal_of_command(
        &self,
        command: &CommandId,
    ) -> StoreResult<Option<IdentityRenewal>> {
        r::Entity::find()
            .filter(r::Column::CommandId.eq(command.to_string()))
            .one(&self.0)
            .await?
            .map(renewal_from)
            .transpose()
    }

    /// The device's latest closed renewal, if any.
    pub async fn last_closed_identity_renewal(
        &self,
        device: &DeviceId,
    ) -> StoreResult<Option<IdentityRenewal>> {
        r::Entity::find()
            .filter(r::Column::DeviceId.eq(device.to_string()))
            .filter(r::Column::ClosedAt.is_not_null())
            .order_by_desc(r::Column::ClosedAt)
            .one(&self.0)
            .await?
            .map(renewal_from)
            .transpose()
    }

    /// Records the certificate SCEP issued against an open renewal's
    /// challenge (nothing when the challenge is no renewal's).
    pub async fn identity_renewal_issued(
        &self,
        challenge_sha256: &str,
        issued: &RenewedIdentity,
    ) -> StoreResult<bool> {
        let updated = r::Entity::update_many()
            .col_expr(
                r::Column::IssuedSerial,
                Expr::value(issued.serial_hex.clone()),
            )
            .col_expr(r::Column::IssuedSha256, Expr::value(issued.sha256.clone()))
            .col_expr(r::Column::IssuedAt, Expr::value(ms(issued.at)))
            .filter(r::Column::ChallengeSha256.eq(challenge_sha256))
            .filter(r::Column::ClosedAt.is_null())
            .filter(r::Column::IssuedSerial.is_null())
            .exec(&self.0)
            .await?;
        Ok(updated.rows_affected == 1)
    }

    /// Closes an open renewal; false when it was closed meanwhile. Its
    /// challenge, if still unused, is marked used.
    pub async fn close_identity_renewal(
        &self,
        challenge_sha256: &str,
        outcome: RenewalOutcome,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let closed = r::Entity::update_many()
            .col_expr(r::Column::ClosedAt, Expr::value(ms(now)))
            .col_expr(r::Column::Outcome, Expr::value(outcome.as_str()))
            .filter(r::Column::ChallengeSha256.eq(challenge_sha256))
            .filter(r::Column::ClosedAt.is_null())
            .exec(&self.0)
            .await?;
        ch::Entity::update_many()
            .col_expr(ch::Column::UsedAt, Expr::value(ms(now)))
            .col_expr(
                ch::Column::UsedByTransaction,
                Expr::value("(the renewal was closed)"),
            )
            .filter(ch::Column::ChallengeSha256.eq(challenge_sha256))
            .filter(ch::Column::UsedAt.is_null())
            .exec(&self.0)
            .await?;
        Ok(closed.rows_affected == 1)
    }

    /// Apple devices bound to an identity, with no renewal open, holding
    /// a valid certificate that expires by `horizon` (agents, which renew
    /// their own, are not among them).
    pub async fn apple_identities_expiring(
        &self,
        horizon: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<DeviceId>> {
        let bound = Query::select()
            .column(e::Column::DeviceId)
            .from(e::Entity)
            .and_where(e::Column::IdentitySha256.is_not_null())
            .to_owned();
        let renewing = Query::select()
            .column(r::Column::DeviceId)
            .from(r::Entity)
            .and_where(r::Column::ClosedAt.is_null())
            .to_owned();
        let rows = device_certificates::Entity::find()
            .filter(device_certificates::Column::RevokedAt.is_null())
            .filter(device_certificates::Column::NotAfter.lte(ms(horizon)))
            .filter(device_certificates::Column::NotAfter.gt(ms(now)))
            .filter(device_certificates::Column::DeviceId.in_subquery(bound))
            .filter(device_certificates::Column::DeviceId.not_in_subquery(renewing))
            .all(&self.0)
            .await?;
        let mut devices: Vec<DeviceId> = rows
            .into_iter()
            .map(|c| DeviceId::from_store(c.device_id))
            .collect();
        devices.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        devices.dedup();
        Ok(devices)
    }

    /// The expiry of the device's valid certificates other than `except`
    /// (the one a renewal issued and the device has not used yet): the
    /// earliest, which is the identity the device is bound to.
    pub async fn identity_expiry(
        &self,
        device: &DeviceId,
        except: Option<&str>,
    ) -> StoreResult<Option<DateTime<Utc>>> {
        let mut query = device_certificates::Entity::find()
            .filter(device_certificates::Column::DeviceId.eq(device.to_string()))
            .filter(device_certificates::Column::RevokedAt.is_null());
        if let Some(serial) = except {
            query = query.filter(device_certificates::Column::Serial.ne(serial));
        }
        let earliest = query
            .order_by_asc(device_certificates::Column::NotAfter)
            .one(&self.0)
            .await?;
        earliest.map(|c| time(c.not_after)).transpose()
    }

    /// Revokes every valid certificate of the device but `keep` (a
    /// renewal completed: the identity it replaced, and any other, no
    /// longer speaks for the device). Returns how many were revoked.
    pub async fn revoke_certificates_except(
        &self,
        device: &DeviceId,
        keep: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let result = device_certificates::Entity::update_many()
            .col_expr(device_certificates::Column::RevokedAt, Expr::value(ms(now)))
            .filter(device_certificates::Column::DeviceId.eq(device.to_string()))
            .filter(device_certificates::Column::Serial.ne(keep))
            .filter(device_certificates::Column::RevokedAt.is_null())
            .exec(&self.0)
            .await?;
        Ok(result.rows_affected)
    }

    /// Binds the device to its renewed identity certificate.
    pub async fn rebind_apple_identity(
        &self,
        device: &DeviceId,
        identity_sha256: &str,
    ) -> StoreResult<()> {
        e::Entity::update_many()
            .col_expr(e::Column::IdentitySha256, Expr::value(identity_sha256))
            .filter(e::Column::DeviceId.eq(device.to_string()))
            .exec(&self.0)
            .await?;
        Ok(())
    }
}
