//! Devices, their posture and the verdict reached on it, and the policy in
//! force for each (its own assignment, else its group's).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QueryResult, QuerySelect, Set, Statement,
};

use super::entities::{device_certificates, devices};
use super::{Db, INSERT_CHUNK, StoreError, StoreResult, ms, opt_time, time};
use crate::domain::device::{Channel, CheckState, Device, DeviceState, Posture};
use crate::domain::ids::DeviceId;
use crate::domain::policy::{ComplianceVerdict, EffectivePolicy};

#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct PostureRow {
    os_version: String,
    disk_encryption: String,
    screen_lock: String,
    firewall: String,
}

pub(super) fn device_from(row: devices::Model, cert_expiry: Option<i64>) -> StoreResult<Device> {
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
        channel: Channel::parse(&row.channel)
            .ok_or_else(|| StoreError::Corrupt(format!("channel {}", row.channel)))?,
    })
}

/// The policy in force read with `effective_policy_columns!`: the device's
/// own assignment, else its group's. A value that cannot be read is an
/// error, never "no policy".
pub(super) fn effective_policy_from(row: &QueryResult) -> StoreResult<Option<EffectivePolicy>> {
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
pub(super) const DEVICE_WITH_POLICY: &str = concat!(
    "SELECT ",
    device_columns!(),
    ", ",
    effective_policy_columns!(),
    " FROM devices d",
    effective_policy_joins!(),
    "WHERE d.id = $1"
);

impl<C: ConnectionTrait> Db<C> {
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
            channel: Set(device.channel.as_str().to_owned()),
        }))
        .exec_without_returning(&self.0)
        .await?;
        Ok(())
    }

    /// The channel of each of these devices that still exists.
    pub async fn device_channels(
        &self,
        ids: &[DeviceId],
    ) -> StoreResult<std::collections::HashMap<DeviceId, Channel>> {
        let mut channels = std::collections::HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(INSERT_CHUNK) {
            let rows = devices::Entity::find()
                .select_only()
                .column(devices::Column::Id)
                .column(devices::Column::Channel)
                .filter(devices::Column::Id.is_in(chunk.iter().map(ToString::to_string)))
                .into_tuple::<(String, String)>()
                .all(&self.0)
                .await?;
            for (id, channel) in rows {
                let channel = Channel::parse(&channel)
                    .ok_or_else(|| StoreError::Corrupt(format!("channel {channel}")))?;
                channels.insert(DeviceId::from_store(id), channel);
            }
        }
        Ok(channels)
    }

    pub(super) async fn newest_certificate_expiry(
        &self,
        device_id: &str,
    ) -> StoreResult<Option<i64>> {
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

    /// A device's state and the channel it is managed over.
    pub async fn device_state_and_channel(
        &self,
        id: &DeviceId,
    ) -> StoreResult<Option<(DeviceState, Channel)>> {
        let row = devices::Entity::find_by_id(id.to_string())
            .select_only()
            .column(devices::Column::State)
            .column(devices::Column::Channel)
            .into_tuple::<(String, String)>()
            .one(&self.0)
            .await?;
        let Some((state, channel)) = row else {
            return Ok(None);
        };
        let state = DeviceState::parse(&state).ok_or(StoreError::Corrupt(state))?;
        let channel = Channel::parse(&channel).ok_or(StoreError::Corrupt(channel))?;
        Ok(Some((state, channel)))
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

    /// These devices, as many as exist, in a few statements (without their
    /// certificates' expiry).
    pub async fn devices_by_ids(&self, ids: &[DeviceId]) -> StoreResult<Vec<Device>> {
        let mut found = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(INSERT_CHUNK) {
            for row in devices::Entity::find()
                .filter(devices::Column::Id.is_in(chunk.iter().map(DeviceId::as_str)))
                .all(&self.0)
                .await?
            {
                found.push(device_from(row, None)?);
            }
        }
        Ok(found)
    }

    /// The devices of a group, oldest enrollment first (without their
    /// certificates' expiry).
    pub async fn devices_in_group(&self, group: &str) -> StoreResult<Vec<Device>> {
        self.devices_where(devices::Column::GroupName, group).await
    }

    /// The devices whose `column` is `value`, oldest enrollment first.
    async fn devices_where(
        &self,
        column: devices::Column,
        value: &str,
    ) -> StoreResult<Vec<Device>> {
        devices::Entity::find()
            .filter(column.eq(value))
            .order_by_asc(devices::Column::EnrolledAt)
            .all(&self.0)
            .await?
            .into_iter()
            .map(|row| device_from(row, None))
            .collect()
    }

    /// Moves each of these devices that is in one of `from` to `to`, in a
    /// few statements; returns the ones moved (a device whose state was
    /// none of them, because another change came first, is not).
    pub async fn change_devices_state(
        &self,
        ids: &[DeviceId],
        from: &[DeviceState],
        to: DeviceState,
    ) -> StoreResult<Vec<DeviceId>> {
        let mut moved = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(INSERT_CHUNK) {
            let rows = devices::Entity::update_many()
                .col_expr(devices::Column::State, Expr::value(to.as_str()))
                .filter(devices::Column::Id.is_in(chunk.iter().map(DeviceId::as_str)))
                .filter(devices::Column::State.is_in(from.iter().map(|s| s.as_str())))
                .exec_with_returning(&self.0)
                .await?;
            moved.extend(rows.into_iter().map(|row| DeviceId::from_store(row.id)));
        }
        Ok(moved)
    }

    /// Devices bound to a user, oldest enrollment first.
    pub async fn devices_of_user(&self, email: &str) -> StoreResult<Vec<Device>> {
        self.devices_where(devices::Column::UserEmail, email).await
    }
}
