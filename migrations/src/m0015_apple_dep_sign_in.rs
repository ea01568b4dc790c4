//! Automated Device Enrollment with the user's sign-in.
//!
//! - `apple_dep_sign_ins`: a sign-in Setup Assistant's web view started
//!   for a listed device. The id is derived from the secret in the web
//!   view's cookie (which is stored nowhere), so only the web view that
//!   started it can finish it; `finished_at` is set once, by the
//!   callback that finishes or refuses it, and `user_email` names who
//!   signed in when it finished.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, big_integer_null, string, string_null};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0015_apple_dep_sign_in"
    }
}

#[derive(DeriveIden)]
enum AppleDepSignIns {
    Table,
    Id,
    SerialNumber,
    DeviceId,
    CreatedAt,
    ExpiresAt,
    FinishedAt,
    UserEmail,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AppleDepSignIns::Table)
                    .col(string(AppleDepSignIns::Id).primary_key())
                    .col(string(AppleDepSignIns::SerialNumber))
                    .col(string(AppleDepSignIns::DeviceId))
                    .col(big_integer(AppleDepSignIns::CreatedAt))
                    .col(big_integer(AppleDepSignIns::ExpiresAt))
                    .col(big_integer_null(AppleDepSignIns::FinishedAt))
                    .col(string_null(AppleDepSignIns::UserEmail))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("apple_dep_sign_ins_expires_at")
                    .table(AppleDepSignIns::Table)
                    .col(AppleDepSignIns::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AppleDepSignIns::Table).to_owned())
            .await
    }
}
