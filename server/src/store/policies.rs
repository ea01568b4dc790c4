//! Policies and their assignments to groups and devices.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, Set};

use super::entities::{policies, policy_assignments};
use super::{Db, StoreError, StoreResult, ms, time};
use crate::domain::policy::StoredPolicy;

pub(super) fn policy_from(
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

impl<C: ConnectionTrait> Db<C> {
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
}
