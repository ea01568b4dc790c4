//! The sign-in history a user sees on the account page.

use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use super::entities::login_events;
use super::{Db, StoreResult, ms, time};
use crate::domain::ids::{ClientId, DeviceId, UserId};
use crate::domain::sign_in::LoginEvent;

impl<C: ConnectionTrait> Db<C> {
    pub async fn insert_login_event(&self, event: &LoginEvent) -> StoreResult<()> {
        login_events::Entity::insert(login_events::ActiveModel {
            id: Set(uuid::Uuid::new_v4().simple().to_string()),
            at: Set(ms(event.at)),
            user_id: Set(event.user_id.as_ref().map(ToString::to_string)),
            login: Set(event.login.clone()),
            ip: Set(event.ip.clone()),
            user_agent: Set(event.user_agent.clone()),
            client_id: Set(event.client_id.as_ref().map(ToString::to_string)),
            device_id: Set(event.device_id.as_ref().map(ToString::to_string)),
            method: Set(event.method.clone()),
            result: Set(event.result.clone()),
            reason: Set(event.reason.clone()),
        })
        .exec_without_returning(&self.0)
        .await?;
        Ok(())
    }

    /// A user's login history, newest first.
    pub async fn login_events(&self, user: &UserId, limit: u64) -> StoreResult<Vec<LoginEvent>> {
        login_events::Entity::find()
            .filter(login_events::Column::UserId.eq(user.as_str()))
            .order_by_desc(login_events::Column::At)
            .limit(limit)
            .all(&self.0)
            .await?
            .into_iter()
            .map(|row| {
                Ok(LoginEvent {
                    at: time(row.at)?,
                    user_id: row.user_id.map(UserId::from_store),
                    client_id: row.client_id.map(ClientId::from_store),
                    device_id: row.device_id.map(DeviceId::from_store),
                    login: row.login,
                    ip: row.ip,
                    user_agent: row.user_agent,
                    method: row.method,
                    result: row.result,
                    reason: row.reason,
                })
            })
            .collect()
    }
}
