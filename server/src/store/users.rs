//! Users, groups, memberships, passwords, and the binding of a device to
//! its user.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use super::entities::{devices, groups, user_groups, users};
use super::{Db, INSERT_CHUNK, StoreError, StoreResult, ms, opt_time, time};
use crate::domain::ids::{DeviceId, UserId};
use crate::domain::user::{Group, User, UserKind, UserStatus};

/// A user's stored password. `Debug` hides the hash.
#[derive(Clone)]
pub struct PasswordRecord {
    pub hash: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub must_change: bool,
}

impl std::fmt::Debug for PasswordRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordRecord")
            .field("hash", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .field("must_change", &self.must_change)
            .finish()
    }
}

impl<C: ConnectionTrait> Db<C> {
    /// Creates the groups in `names` that do not exist yet.
    pub async fn ensure_groups(&self, names: &[String], now: DateTime<Utc>) -> StoreResult<()> {
        if names.is_empty() {
            return Ok(());
        }
        groups::Entity::insert_many(names.iter().map(|name| groups::ActiveModel {
            name: Set(name.clone()),
            created_at: Set(ms(now)),
        }))
        .on_conflict(
            OnConflict::column(groups::Column::Name)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&self.0)
        .await?;
        Ok(())
    }

    /// Creates a group; false when it exists already.
    pub async fn insert_group(&self, name: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let inserted = groups::Entity::insert(groups::ActiveModel {
            name: Set(name.to_owned()),
            created_at: Set(ms(now)),
        })
        .on_conflict(
            OnConflict::column(groups::Column::Name)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&self.0)
        .await?;
        Ok(inserted == 1)
    }

    pub async fn list_groups(&self) -> StoreResult<Vec<Group>> {
        let memberships = user_groups::Entity::find().all(&self.0).await?;
        groups::Entity::find()
            .order_by_asc(groups::Column::Name)
            .all(&self.0)
            .await?
            .into_iter()
            .map(|g| {
                let members = memberships
                    .iter()
                    .filter(|m| m.group_name == g.name)
                    .count();
                Ok(Group {
                    created_at: time(g.created_at)?,
                    members: u64::try_from(members).unwrap_or(u64::MAX),
                    name: g.name,
                })
            })
            .collect()
    }

    /// Inserts a user and its group memberships (the groups must exist).
    pub(super) fn user_row(user: &User) -> users::ActiveModel {
        users::ActiveModel {
            id: Set(user.id.to_string()),
            email: Set(user.email.clone()),
            name: Set(user.name.clone()),
            kind: Set(user.kind.as_str().to_owned()),
            status: Set(user.status.as_str().to_owned()),
            locale: Set(user.locale.clone()),
            password_hash: Set(None),
            password_expires_at: Set(None),
            password_must_change: Set(false),
            created_at: Set(ms(user.created_at)),
            updated_at: Set(ms(user.updated_at)),
            totp_secret: Set(None),
            totp_last_step: Set(None),
            mfa_setting: Set(None),
        }
    }

    /// Inserts many users and their memberships in multi-row statements
    /// (an import of 50,000 rows is 200 statements, not 100,000).
    pub async fn insert_users(&self, users_to_add: &[User]) -> StoreResult<()> {
        for chunk in users_to_add.chunks(INSERT_CHUNK) {
            users::Entity::insert_many(chunk.iter().map(Self::user_row))
                .exec_without_returning(&self.0)
                .await?;
        }
        let memberships: Vec<user_groups::ActiveModel> = users_to_add
            .iter()
            .flat_map(|user| {
                user.groups.iter().map(|g| user_groups::ActiveModel {
                    user_id: Set(user.id.to_string()),
                    group_name: Set(g.clone()),
                })
            })
            .collect();
        for chunk in memberships.chunks(INSERT_CHUNK) {
            user_groups::Entity::insert_many(chunk.iter().cloned())
                .exec_without_returning(&self.0)
                .await?;
        }
        Ok(())
    }

    pub async fn insert_user(&self, user: &User) -> StoreResult<()> {
        users::Entity::insert(Self::user_row(user))
            .exec_without_returning(&self.0)
            .await?;
        if !user.groups.is_empty() {
            user_groups::Entity::insert_many(user.groups.iter().map(|g| {
                user_groups::ActiveModel {
                    user_id: Set(user.id.to_string()),
                    group_name: Set(g.clone()),
                }
            }))
            .exec_without_returning(&self.0)
            .await?;
        }
        Ok(())
    }

    pub(super) fn user_from(
        row: users::Model,
        memberships: &[user_groups::Model],
    ) -> StoreResult<User> {
        let mut groups: Vec<String> = memberships
            .iter()
            .filter(|m| m.user_id == row.id)
            .map(|m| m.group_name.clone())
            .collect();
        groups.sort();
        Ok(User {
            kind: UserKind::parse(&row.kind)
                .ok_or_else(|| StoreError::Corrupt(row.kind.clone()))?,
            status: UserStatus::parse(&row.status)
                .ok_or_else(|| StoreError::Corrupt(row.status.clone()))?,
            id: UserId::from_store(row.id),
            email: row.email,
            name: row.name,
            locale: row.locale,
            groups,
            created_at: time(row.created_at)?,
            updated_at: time(row.updated_at)?,
        })
    }

    /// A user row with its group memberships.
    pub(super) async fn user_with_groups(
        &self,
        row: Option<users::Model>,
    ) -> StoreResult<Option<User>> {
        let Some(row) = row else {
            return Ok(None);
        };
        let memberships = user_groups::Entity::find()
            .filter(user_groups::Column::UserId.eq(row.id.clone()))
            .all(&self.0)
            .await?;
        Self::user_from(row, &memberships).map(Some)
    }

    pub async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let row = users::Entity::find()
            .filter(users::Column::Email.eq(email))
            .one(&self.0)
            .await?;
        self.user_with_groups(row).await
    }

    pub async fn user_by_id(&self, id: &UserId) -> StoreResult<Option<User>> {
        let row = users::Entity::find_by_id(id.to_string())
            .one(&self.0)
            .await?;
        self.user_with_groups(row).await
    }

    pub async fn list_users(&self) -> StoreResult<Vec<User>> {
        let memberships = user_groups::Entity::find().all(&self.0).await?;
        users::Entity::find()
            .order_by_asc(users::Column::Email)
            .all(&self.0)
            .await?
            .into_iter()
            .map(|row| Self::user_from(row, &memberships))
            .collect()
    }

    /// Moves a user from one of `from` to `to`; false when it was in none.
    pub async fn change_user_status(
        &self,
        id: &UserId,
        from: &[UserStatus],
        to: UserStatus,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut update = users::Entity::update_many()
            .col_expr(users::Column::Status, Expr::value(to.as_str()))
            .col_expr(users::Column::UpdatedAt, Expr::value(ms(now)));
        if to == UserStatus::Deleted {
            // A deleted user never signs in again: keep no password.
            update = update
                .col_expr(
                    users::Column::PasswordHash,
                    Expr::value(Option::<String>::None),
                )
                .col_expr(
                    users::Column::PasswordExpiresAt,
                    Expr::value(Option::<i64>::None),
                )
                .col_expr(users::Column::PasswordMustChange, Expr::value(false));
        }
        let result = update
            .filter(users::Column::Id.eq(id.to_string()))
            .filter(users::Column::Status.is_in(from.iter().map(|s| s.as_str())))
            .exec(&self.0)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Stores an active user's password hash (Argon2id PHC string); false
    /// when the user is no longer active.
    pub async fn set_password(
        &self,
        id: &UserId,
        password: &PasswordRecord,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let result = users::Entity::update_many()
            .col_expr(
                users::Column::PasswordHash,
                Expr::value(password.hash.clone()),
            )
            .col_expr(
                users::Column::PasswordExpiresAt,
                Expr::value(password.expires_at.map(ms)),
            )
            .col_expr(
                users::Column::PasswordMustChange,
                Expr::value(password.must_change),
            )
            .col_expr(users::Column::UpdatedAt, Expr::value(ms(now)))
            .filter(users::Column::Id.eq(id.to_string()))
            .filter(users::Column::Status.eq(UserStatus::Active.as_str()))
            .exec(&self.0)
            .await?;
        Ok(result.rows_affected == 1)
    }

    pub async fn password(&self, id: &UserId) -> StoreResult<Option<PasswordRecord>> {
        let Some(row) = users::Entity::find_by_id(id.to_string())
            .one(&self.0)
            .await?
        else {
            return Ok(None);
        };
        let Some(hash) = row.password_hash else {
            return Ok(None);
        };
        Ok(Some(PasswordRecord {
            hash,
            expires_at: opt_time(row.password_expires_at)?,
            must_change: row.password_must_change,
        }))
    }

    /// Binds a device to a user (by email), or unbinds it.
    pub async fn set_device_user(&self, id: &DeviceId, email: Option<&str>) -> StoreResult<()> {
        devices::Entity::update_many()
            .col_expr(
                devices::Column::UserEmail,
                Expr::value(email.map(str::to_owned)),
            )
            .filter(devices::Column::Id.eq(id.to_string()))
            .exec(&self.0)
            .await?;
        Ok(())
    }
}
