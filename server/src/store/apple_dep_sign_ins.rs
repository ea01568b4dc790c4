//! The sign-ins Setup Assistant's web view starts for listed devices
//! (`[apple] dep_sign_in`): written when one starts, finished once in one
//! conditional statement, purged with the other sign-in state.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use super::entities::apple_dep_sign_ins as ds;
use super::{Db, StoreResult, ms, opt_time, time};
use crate::domain::apple::dep::DepSignIn;
use crate::domain::ids::{DepSignInId, DeviceId};

fn sign_in_from(row: ds::Model) -> StoreResult<DepSignIn> {
    Ok(DepSignIn {
        id: DepSignInId::from_store(row.id),
        serial_number: row.serial_number,
        device: DeviceId::from_store(row.device_id),
        created_at: time(row.created_at)?,
        expires_at: time(row.expires_at)?,
        finished_at: opt_time(row.finished_at)?,
        user: row.user_email,
    })
}

impl<C: ConnectionTrait> Db<C> {
    pub async fn insert_dep_sign_in(&self, sign_in: &DepSignIn) -> StoreResult<()> {
        ds::Entity::insert(ds::ActiveModel {
            id: Set(sign_in.id.to_string()),
            serial_number: Set(sign_in.serial_number.clone()),
            device_id: Set(sign_in.device.to_string()),
            created_at: Set(ms(sign_in.created_at)),
            expires_at: Set(ms(sign_in.expires_at)),
            finished_at: Set(sign_in.finished_at.map(ms)),
            user_email: Set(sign_in.user.clone()),
        })
        .exec(&self.0)
        .await?;
        Ok(())
    }

    pub async fn dep_sign_in(&self, id: &DepSignInId) -> StoreResult<Option<DepSignIn>> {
        ds::Entity::find_by_id(id.to_string())
            .one(&self.0)
            .await?
            .map(sign_in_from)
            .transpose()
    }

    /// Finishes an open sign-in, once: false when it was finished before
    /// or has expired, so two callbacks racing finish it once.
    pub async fn finish_dep_sign_in(
        &self,
        id: &DepSignInId,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let finished = ds::Entity::update_many()
            .col_expr(ds::Column::FinishedAt, Expr::value(ms(now)))
            .filter(ds::Column::Id.eq(id.to_string()))
            .filter(ds::Column::FinishedAt.is_null())
            .filter(ds::Column::ExpiresAt.gt(ms(now)))
            .exec(&self.0)
            .await?;
        Ok(finished.rows_affected == 1)
    }

    /// Records who signed in for a finished sign-in.
    pub async fn set_dep_sign_in_user(&self, id: &DepSignInId, email: &str) -> StoreResult<()> {
        ds::Entity::update_many()
            .col_expr(ds::Column::UserEmail, Expr::value(email))
            .filter(ds::Column::Id.eq(id.to_string()))
            .exec(&self.0)
            .await?;
        Ok(())
    }
}
