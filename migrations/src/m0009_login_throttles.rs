//! Sign-in throttling counts, shared by every replica: one row per account
//! name as typed (`a:` and the name, lower-cased) and per client address
//! (`i:` and the address), with its failures in the current window and the
//! time of the last one. Rows whose window has passed are purged.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, integer, string};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0009_login_throttles"
    }
}

#[derive(DeriveIden)]
enum LoginThrottles {
    Table,
    Key,
    Failures,
    LastFailure,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(LoginThrottles::Table)
                    .col(string(LoginThrottles::Key).primary_key())
                    .col(integer(LoginThrottles::Failures))
                    .col(big_integer(LoginThrottles::LastFailure))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("login_throttles_last_failure")
                    .table(LoginThrottles::Table)
                    .col(LoginThrottles::LastFailure)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(LoginThrottles::Table).to_owned())
            .await
    }
}
