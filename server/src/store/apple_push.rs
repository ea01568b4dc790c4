//! Apple's APNs push certificates, one row per topic (the key stays an
//! opaque sealed string here; only `ca` opens it), and each enrolled
//! device's push target and last push result.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use super::entities::apple_push_certificates as push;
use super::{Db, INSERT_CHUNK, StoreResult, ms, time};
use crate::domain::apple::push::{PushCertificateInfo, PushOutcome, PushTarget};
use crate::domain::ids::DeviceId;

/// A push certificate as stored, with its certificate and sealed key.
#[derive(Clone)]
pub struct StoredPushCertificate {
    pub info: PushCertificateInfo,
    pub certificate_pem: String,
    pub key_sealed: String,
}

impl std::fmt::Debug for StoredPushCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredPushCertificate")
            .field("info", &self.info)
            .field("key_sealed", &"[redacted]")
            .finish()
    }
}

impl<C: ConnectionTrait> Db<C> {
    /// Stores a push certificate; one already stored for the same topic
    /// (a renewal) is replaced.
    pub async fn put_push_certificate(&self, cert: &StoredPushCertificate) -> StoreResult<()> {
        push::Entity::insert(push::ActiveModel {
            topic: Set(cert.info.topic.clone()),
            certificate_pem: Set(cert.certificate_pem.clone()),
            key_sealed: Set(cert.key_sealed.clone()),
            not_after: Set(ms(cert.info.not_after)),
            imported_at: Set(ms(cert.info.imported_at)),
            imported_by: Set(cert.info.imported_by.clone()),
        })
        .on_conflict(
            OnConflict::column(push::Column::Topic)
                .update_columns([
                    push::Column::CertificatePem,
                    push::Column::KeySealed,
                    push::Column::NotAfter,
                    push::Column::ImportedAt,
                    push::Column::ImportedBy,
                ])
                .to_owned(),
        )
        .exec_without_returning(&self.0)
        .await?;
        Ok(())
    }

    /// Every stored push certificate, latest import first.
    pub async fn push_certificates(&self) -> StoreResult<Vec<StoredPushCertificate>> {
        push::Entity::find()
            .order_by_desc(push::Column::ImportedAt)
            .order_by_desc(push::Column::Topic)
            .all(&self.0)
            .await?
            .into_iter()
            .map(|r| {
                Ok(StoredPushCertificate {
                    info: PushCertificateInfo {
                        not_after: time(r.not_after)?,
                        imported_at: time(r.imported_at)?,
                        topic: r.topic,
                        imported_by: r.imported_by,
                    },
                    certificate_pem: r.certificate_pem,
                    key_sealed: r.key_sealed,
                })
            })
            .collect()
    }
}

impl<C: ConnectionTrait> Db<C> {
    /// How many Apple devices enrolled under `topic` (those a change of
    /// push certificate to another topic would orphan).
    pub async fn apple_devices_with_topic(&self, topic: &str) -> StoreResult<u64> {
        use sea_orm::PaginatorTrait;
        Ok(super::entities::apple_enrollments::Entity::find()
            .filter(super::entities::apple_enrollments::Column::Topic.eq(topic))
            .count(&self.0)
            .await?)
    }
}

impl<C: ConnectionTrait> Db<C> {
    /// Where the pushes for these devices go, read in a few statements:
    /// only for an enabled enrollment (TokenUpdate seen, not checked out)
    /// whose token APNs has not reported unregistered; a device that
    /// cannot be pushed (or whose stored token is not hex) is absent.
    pub async fn apple_push_targets(
        &self,
        devices: &[DeviceId],
    ) -> StoreResult<HashMap<DeviceId, PushTarget>> {
        use super::entities::apple_enrollments as e;
        let mut targets = HashMap::with_capacity(devices.len());
        for chunk in devices.chunks(INSERT_CHUNK) {
            let rows = e::Entity::find()
                .select_only()
                .column(e::Column::DeviceId)
                .column(e::Column::Topic)
                .column(e::Column::PushToken)
                .column(e::Column::PushMagic)
                .filter(e::Column::DeviceId.is_in(chunk.iter().map(DeviceId::as_str)))
                .filter(e::Column::Enabled.eq(true))
                .filter(e::Column::PushTokenInvalidAt.is_null())
                .into_tuple::<(String, Option<String>, Option<String>, Option<String>)>()
                .all(&self.0)
                .await?;
            for (device, topic, token, push_magic) in rows {
                let (Some(topic), Some(token), Some(push_magic)) = (topic, token, push_magic)
                else {
                    continue;
                };
                let Ok(token) = hex::decode(&token) else {
                    // One bad row costs its own device its push, not the
                    // others theirs.
                    tracing::warn!(%device, "apple_enrollments.push_token is not hex; not pushed");
                    continue;
                };
                let device = DeviceId::from_store(device);
                targets.insert(
                    device.clone(),
                    PushTarget {
                        device,
                        topic,
                        token,
                        push_magic,
                    },
                );
            }
        }
        Ok(targets)
    }

    /// Records how each of these pushes ended, on its device's enrollment:
    /// one statement for each distinct outcome, not one for each device. A token APNs reported
    /// unregistered is marked invalid only while it is still the device's
    /// token: a TokenUpdate that came during the push round brought a new
    /// one.
    pub async fn record_apple_pushes(
        &self,
        pushes: &[(PushTarget, PushOutcome)],
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        use super::entities::apple_enrollments as e;
        let mut by_outcome: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for (target, outcome) in pushes {
            if *outcome == PushOutcome::Unregistered {
                e::Entity::update_many()
                    .col_expr(e::Column::LastPushAt, Expr::value(ms(now)))
                    .col_expr(e::Column::LastPushResult, Expr::value(outcome.summary()))
                    .col_expr(e::Column::PushTokenInvalidAt, Expr::value(ms(now)))
                    .filter(e::Column::DeviceId.eq(target.device.as_str()))
                    .filter(e::Column::PushToken.eq(hex::encode(&target.token)))
                    .exec(&self.0)
                    .await?;
                continue;
            }
            by_outcome
                .entry(outcome.summary())
                .or_default()
                .push(target.device.as_str());
        }
        for (summary, devices) in by_outcome {
            for chunk in devices.chunks(INSERT_CHUNK) {
                e::Entity::update_many()
                    .col_expr(e::Column::LastPushAt, Expr::value(ms(now)))
                    .col_expr(e::Column::LastPushResult, Expr::value(summary.clone()))
                    .filter(e::Column::DeviceId.is_in(chunk.iter().copied()))
                    .exec(&self.0)
                    .await?;
            }
        }
        Ok(())
    }
}
