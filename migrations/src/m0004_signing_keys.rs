//! Token-signing keys of the SSO layer, shared by every replica. The newest
//! unretired key signs; retired keys stay published until the tokens they
//! signed have expired.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, big_integer_null, string, text};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0004_signing_keys"
    }
}

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    Kid,
    PrivateKey,
    X,
    Y,
    CreatedAt,
    RetiredAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SigningKeys::Table)
                    .col(string(SigningKeys::Kid).primary_key())
                    // Base64url PKCS#8.
                    .col(text(SigningKeys::PrivateKey))
                    .col(string(SigningKeys::X))
                    .col(string(SigningKeys::Y))
                    .col(big_integer(SigningKeys::CreatedAt))
                    .col(big_integer_null(SigningKeys::RetiredAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SigningKeys::Table).to_owned())
            .await
    }
}
