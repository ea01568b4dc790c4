//! The audit log: appended, never changed, listed newest first.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use super::entities::audit_log;
use super::{Db, INSERT_CHUNK, StoreError, StoreResult, ms, time};
use crate::domain::audit::{AuditEntry, AuditEvent, AuditOutcome};

impl<C: ConnectionTrait> Db<C> {
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
                actor: Set(entry.actor.to_string()),
                action: Set(entry.action.as_str().to_owned()),
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
                    outcome: AuditOutcome::parse(&r.outcome).ok_or_else(|| {
                        StoreError::Corrupt(format!("audit outcome {}", r.outcome))
                    })?,
                    detail: r.detail,
                })
            })
            .collect()
    }
}
