//! Second factors in progress: one row per browser session that is
//! enrolling an authenticator app (the new secret, sealed, until the user
//! proves it with a code) or waiting for an emailed code (its hash, expiry
//! and the attempts spent on it). A finished challenge is deleted.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, integer, string, string_null, text_null};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0006_second_factor"
    }
}

#[derive(DeriveIden)]
enum SecondFactorChallenges {
    Table,
    SessionId,
    Kind,
    PendingSecret,
    CodeHash,
    SentAt,
    ExpiresAt,
    Attempts,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SecondFactorChallenges::Table)
                    .col(string(SecondFactorChallenges::SessionId).primary_key())
                    // `totp-enroll` or `email`.
                    .col(string(SecondFactorChallenges::Kind))
                    // Sealed TOTP secret being enrolled.
                    .col(text_null(SecondFactorChallenges::PendingSecret))
                    // SHA-256 of the emailed code.
                    .col(string_null(SecondFactorChallenges::CodeHash))
                    .col(big_integer(SecondFactorChallenges::SentAt))
                    .col(big_integer(SecondFactorChallenges::ExpiresAt))
                    .col(integer(SecondFactorChallenges::Attempts))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(SecondFactorChallenges::Table)
                    .to_owned(),
            )
            .await
    }
}
