//! Per-app address rules: the CIDR blocks (space-separated) browsers may
//! sign in to the app from; none means any address.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::text_null;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0007_app_networks"
    }
}

#[derive(DeriveIden)]
enum Apps {
    Table,
    AllowedNetworks,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Apps::Table)
                    .add_column(text_null(Apps::AllowedNetworks))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Apps::Table)
                    .drop_column(Apps::AllowedNetworks)
                    .to_owned(),
            )
            .await
    }
}
