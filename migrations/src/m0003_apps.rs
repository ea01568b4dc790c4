//! SSO apps (OpenID Connect relying parties) and their access policy.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, boolean, string, string_null, string_uniq, text};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0003_apps"
    }
}

#[derive(DeriveIden)]
enum Apps {
    Table,
    ClientId,
    Name,
    SecretHash,
    Public,
    RedirectUris,
    DevicePolicy,
    MfaPolicy,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Apps::Table)
                    .col(string(Apps::ClientId).primary_key())
                    .col(string_uniq(Apps::Name))
                    .col(string_null(Apps::SecretHash))
                    .col(boolean(Apps::Public))
                    // A JSON array of exact redirect URIs.
                    .col(text(Apps::RedirectUris))
                    .col(string(Apps::DevicePolicy))
                    .col(string(Apps::MfaPolicy))
                    .col(big_integer(Apps::CreatedAt))
                    .col(big_integer(Apps::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Apps::Table).to_owned())
            .await
    }
}
