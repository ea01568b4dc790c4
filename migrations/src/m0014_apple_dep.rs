//! Automated Device Enrollment (Apple Business Manager).
//!
//! - `apple_dep_tokens`: one row per named server token. The row begins
//!   with the key pair made for it (the certificate uploaded to Apple
//!   Business Manager, the private key sealed under the data-dir key); the
//!   imported token's four secrets are sealed too. The device cursor and
//!   when it was last used live here, so any replica continues a sync,
//!   and `sync_lease_until` keeps two replicas from syncing one token at
//!   once. `fetch_done`: the full fetch reached `EXHAUSTED_CURSOR` and the
//!   cursor is a sync cursor.
//! - `apple_dep_devices`: the devices Apple lists for a token, keyed by
//!   serial number, with the device record that stands for each
//!   (awaiting enrollment until it enrolls) and what Apple said of it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_integer_null, boolean, string, string_null, text, text_null,
};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0014_apple_dep"
    }
}

#[derive(DeriveIden)]
enum AppleDepTokens {
    Table,
    Name,
    CertificatePem,
    KeySealed,
    CreatedAt,
    CreatedBy,
    TokenSealed,
    ConsumerKey,
    TokenExpiresAt,
    ServerName,
    ServerUuid,
    OrgName,
    ImportedAt,
    ImportedBy,
    ProfileUuid,
    ProfileUrl,
    Cursor,
    CursorAt,
    FetchDone,
    LastSyncAt,
    LastSyncOutcome,
    SyncLeaseUntil,
}

#[derive(DeriveIden)]
enum AppleDepDevices {
    Table,
    SerialNumber,
    TokenName,
    DeviceId,
    Model,
    Description,
    Color,
    Os,
    DeviceFamily,
    ProfileStatus,
    ProfileUuid,
    OpType,
    OpDate,
    UpdatedAt,
    DeletedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AppleDepTokens::Table)
                    .col(string(AppleDepTokens::Name).primary_key())
                    .col(text(AppleDepTokens::CertificatePem))
                    .col(text(AppleDepTokens::KeySealed))
                    .col(big_integer(AppleDepTokens::CreatedAt))
                    .col(string(AppleDepTokens::CreatedBy))
                    .col(text_null(AppleDepTokens::TokenSealed))
                    .col(string_null(AppleDepTokens::ConsumerKey))
                    .col(big_integer_null(AppleDepTokens::TokenExpiresAt))
                    .col(string_null(AppleDepTokens::ServerName))
                    .col(string_null(AppleDepTokens::ServerUuid))
                    .col(string_null(AppleDepTokens::OrgName))
                    .col(big_integer_null(AppleDepTokens::ImportedAt))
                    .col(string_null(AppleDepTokens::ImportedBy))
                    .col(string_null(AppleDepTokens::ProfileUuid))
                    .col(text_null(AppleDepTokens::ProfileUrl))
                    .col(text_null(AppleDepTokens::Cursor))
                    .col(big_integer_null(AppleDepTokens::CursorAt))
                    .col(boolean(AppleDepTokens::FetchDone).default(false))
                    .col(big_integer_null(AppleDepTokens::LastSyncAt))
                    .col(text_null(AppleDepTokens::LastSyncOutcome))
                    .col(big_integer_null(AppleDepTokens::SyncLeaseUntil))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AppleDepDevices::Table)
                    .col(string(AppleDepDevices::SerialNumber).primary_key())
                    .col(string(AppleDepDevices::TokenName))
                    .col(string_null(AppleDepDevices::DeviceId))
                    .col(string_null(AppleDepDevices::Model))
                    .col(string_null(AppleDepDevices::Description))
                    .col(string_null(AppleDepDevices::Color))
                    .col(string_null(AppleDepDevices::Os))
                    .col(string_null(AppleDepDevices::DeviceFamily))
                    .col(string_null(AppleDepDevices::ProfileStatus))
                    .col(string_null(AppleDepDevices::ProfileUuid))
                    .col(string_null(AppleDepDevices::OpType))
                    .col(big_integer_null(AppleDepDevices::OpDate))
                    .col(big_integer(AppleDepDevices::UpdatedAt))
                    .col(big_integer_null(AppleDepDevices::DeletedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("apple_dep_devices_token_name")
                    .table(AppleDepDevices::Table)
                    .col(AppleDepDevices::TokenName)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AppleDepDevices::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(AppleDepTokens::Table).to_owned())
            .await
    }
}
