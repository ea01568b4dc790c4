//! Renewing an Apple device's MDM identity certificate.
//!
//! `apple_identity_renewals`: one row per renewal, keyed by the SHA-256 of
//! its one-time SCEP challenge (the challenge itself is in
//! `apple_scep_challenges` as every challenge is, bound to the device; the
//! row keeps it sealed under the data-dir key, since the refreshed
//! enrollment profile is rendered when the device fetches its
//! InstallProfile). `command_id` is that InstallProfile; `replaces_sha256`
//! the identity bound when the renewal started; `issued_*` the certificate
//! SCEP issued against the challenge, the only one that may take over the
//! device's binding. A renewal is open until `closed_at`, with `outcome`
//! `renewed`, `failed`, `expired` or `replaced`; a partial unique index
//! keeps one open renewal per device, whichever replica starts it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, big_integer_null, string, string_null, text};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0016_apple_identity_renewals"
    }
}

#[derive(DeriveIden)]
enum AppleIdentityRenewals {
    Table,
    ChallengeSha256,
    DeviceId,
    ChallengeSealed,
    CommandId,
    ReplacesSha256,
    StartedBy,
    StartedAt,
    ExpiresAt,
    IssuedSerial,
    IssuedSha256,
    IssuedAt,
    ClosedAt,
    Outcome,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AppleIdentityRenewals::Table)
                    .col(string(AppleIdentityRenewals::ChallengeSha256).primary_key())
                    .col(string(AppleIdentityRenewals::DeviceId))
                    .col(text(AppleIdentityRenewals::ChallengeSealed))
                    .col(string(AppleIdentityRenewals::CommandId))
                    .col(string(AppleIdentityRenewals::ReplacesSha256))
                    .col(string(AppleIdentityRenewals::StartedBy))
                    .col(big_integer(AppleIdentityRenewals::StartedAt))
                    .col(big_integer(AppleIdentityRenewals::ExpiresAt))
                    .col(string_null(AppleIdentityRenewals::IssuedSerial))
                    .col(string_null(AppleIdentityRenewals::IssuedSha256))
                    .col(big_integer_null(AppleIdentityRenewals::IssuedAt))
                    .col(big_integer_null(AppleIdentityRenewals::ClosedAt))
                    .col(string_null(AppleIdentityRenewals::Outcome))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("apple_identity_renewals_device")
                    .table(AppleIdentityRenewals::Table)
                    .col(AppleIdentityRenewals::DeviceId)
                    .to_owned(),
            )
            .await?;
        // One open renewal per device: SQLite and PostgreSQL both take a
        // partial index in this form.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX apple_identity_renewals_one_open \
                 ON apple_identity_renewals (device_id) WHERE closed_at IS NULL",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AppleIdentityRenewals::Table).to_owned())
            .await
    }
}
