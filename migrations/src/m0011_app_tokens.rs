//! Per-app token settings: where a sign-out may send the browser (its own
//! list, apart from the sign-in redirect URIs), whether the app may hold
//! refresh tokens (`offline_access`), and how long its refresh tokens may
//! be renewed from the sign-in on (the absolute lifetime, in seconds; none
//! is the server's default of 30 days).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer_null, boolean, text_null};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0011_app_tokens"
    }
}

#[derive(DeriveIden)]
enum Apps {
    Table,
    PostLogoutRedirectUris,
    OfflineAccess,
    RefreshLifetimeSeconds,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one column at a time.
        for mut column in [
            text_null(Apps::PostLogoutRedirectUris),
            boolean(Apps::OfflineAccess).default(false).to_owned(),
            big_integer_null(Apps::RefreshLifetimeSeconds),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Apps::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            Apps::RefreshLifetimeSeconds,
            Apps::OfflineAccess,
            Apps::PostLogoutRedirectUris,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Apps::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
