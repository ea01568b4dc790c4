//! Users and groups of the SSO layer: who may log in, and the groups that
//! policies and apps refer to.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_integer_null, boolean, string, string_null, string_uniq,
};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0002_users"
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    Name,
    Kind,
    Status,
    Locale,
    PasswordHash,
    PasswordExpiresAt,
    PasswordMustChange,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Groups {
    Table,
    Name,
    CreatedAt,
}

#[derive(DeriveIden)]
enum UserGroups {
    Table,
    UserId,
    GroupName,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(string(Users::Id).primary_key())
                    .col(string_uniq(Users::Email))
                    .col(string(Users::Name))
                    .col(string(Users::Kind))
                    .col(string(Users::Status))
                    .col(string_null(Users::Locale))
                    // Argon2id PHC string; none until a password is set.
                    .col(string_null(Users::PasswordHash))
                    // Temporary passwords expire; chosen ones do not.
                    .col(big_integer_null(Users::PasswordExpiresAt))
                    .col(boolean(Users::PasswordMustChange))
                    .col(big_integer(Users::CreatedAt))
                    .col(big_integer(Users::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Groups::Table)
                    .col(string(Groups::Name).primary_key())
                    .col(big_integer(Groups::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UserGroups::Table)
                    .col(string(UserGroups::UserId))
                    .col(string(UserGroups::GroupName))
                    .primary_key(
                        Index::create()
                            .col(UserGroups::UserId)
                            .col(UserGroups::GroupName),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(UserGroups::Table, UserGroups::UserId)
                            .to(Users::Table, Users::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(UserGroups::Table, UserGroups::GroupName)
                            .to(Groups::Table, Groups::Name),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            UserGroups::Table.into_iden(),
            Groups::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
