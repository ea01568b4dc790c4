//! Apple's APNs push certificates, one row per topic (the key stays an
//! opaque sealed string here; only `ca` opens it), and each enrolled
//! device's push target and last push result.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use super::entities::apple_push_certificates as push;
use super::{Db, StoreError, StoreResult, ms, time};
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
    /// Where a push for `device` goes: only for an enabled enrollment
    /// (TokenUpdate seen, not checked out) whose token APNs has not
    /// reported unregistered.
    pub async fn apple_push_target(&self, device: &DeviceId) -> StoreResult<Option<PushTarget>> {
        use super::entities::apple_enrollments as e;
        let Some(row) = e::Entity::find_by_id(device.as_str())
            .filter(e::Column::Enabled.eq(true))
            .filter(e::Column::PushTokenInvalidAt.is_null())
            .one(&self.0)
            .await?
        else {
            return Ok(None);
        };
        let (Some(topic), Some(token), Some(push_magic)) =
            (row.topic, row.push_token, row.push_magic)
        else {
            return Ok(None);
        };
        let Ok(token) = hex::decode(&token) else {
            return Err(StoreError::Corrupt(format!(
                "apple_enrollments.push_token of {device} is not hex"
            )));
        };
        Ok(Some(PushTarget {
            device: device.clone(),
            topic,
            token,
            push_magic,
        }))
    }

    /// Records how a push to `device` ended; an unregistered token is
    /// marked invalid until the next TokenUpdate.
    pub async fn record_apple_push(
        &self,
        device: &DeviceId,
        outcome: &PushOutcome,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        use super::entities::apple_enrollments as e;
        let mut update = e::Entity::update_many()
            .col_expr(e::Column::LastPushAt, Expr::value(ms(now)))
            .col_expr(e::Column::LastPushResult, Expr::value(outcome.summary()));
        if *outcome == PushOutcome::Unregistered {
            update = update.col_expr(e::Column::PushTokenInvalidAt, Expr::value(ms(now)));
        }
        update
            .filter(e::Column::DeviceId.eq(device.as_str()))
            .exec(&self.0)
            .await?;
        Ok(())
    }
}
