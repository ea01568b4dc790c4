//! Admins and their API tokens.

use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set,
};

use super::entities::{admin_tokens, admins};
use super::{Db, StoreError, StoreResult, ms, time};
use crate::domain::admin::{Admin, Role};
use crate::domain::ids::AdminId;

pub(super) fn admin_from(row: admins::Model) -> StoreResult<Admin> {
    Ok(Admin {
        role: Role::parse(&row.role).ok_or_else(|| StoreError::Corrupt(row.role.clone()))?,
        id: AdminId::from_store(row.id),
        email: row.email,
        created_at: time(row.created_at)?,
    })
}

impl<C: ConnectionTrait> Db<C> {
    pub async fn count_admins(&self) -> StoreResult<u64> {
        Ok(admins::Entity::find().count(&self.0).await?)
    }

    pub async fn insert_admin(&self, admin: &Admin, token_hash: &str) -> StoreResult<()> {
        admins::Entity::insert(admins::ActiveModel {
            id: Set(admin.id.to_string()),
            email: Set(admin.email.clone()),
            role: Set(admin.role.as_str().to_owned()),
            created_at: Set(ms(admin.created_at)),
            disabled: Set(false),
        })
        .exec_without_returning(&self.0)
        .await?;
        admin_tokens::Entity::insert(admin_tokens::ActiveModel {
            token_hash: Set(token_hash.to_owned()),
            admin_id: Set(admin.id.to_string()),
            created_at: Set(ms(admin.created_at)),
        })
        .exec_without_returning(&self.0)
        .await?;
        Ok(())
    }

    pub async fn admin_by_email(&self, email: &str) -> StoreResult<Option<Admin>> {
        admins::Entity::find()
            .filter(admins::Column::Email.eq(email))
            .one(&self.0)
            .await?
            .map(admin_from)
            .transpose()
    }

    pub async fn admin_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<Admin>> {
        let Some(token) = admin_tokens::Entity::find_by_id(token_hash.to_owned())
            .one(&self.0)
            .await?
        else {
            return Ok(None);
        };
        let admin = admins::Entity::find_by_id(token.admin_id)
            .filter(admins::Column::Disabled.eq(false))
            .one(&self.0)
            .await?;
        admin.map(admin_from).transpose()
    }

    pub async fn list_admins(&self) -> StoreResult<Vec<Admin>> {
        admins::Entity::find()
            .order_by_asc(admins::Column::CreatedAt)
            .all(&self.0)
            .await?
            .into_iter()
            .map(admin_from)
            .collect()
    }
}
