//! Apple MDM: the APNs push certificates, one row per enrolled Apple device
//! (its check-in state and push triple), the one-time SCEP challenges of
//! enrollment profiles, and what Apple's command queue needs of the outbox.
//!
//! - `apple_push_certificates`: one row per push topic (the certificate's
//!   UID). A device keeps the topic it enrolled with, so an older topic's
//!   certificate stays until its devices are gone; the newest import is the
//!   one new profiles name. The key is sealed under the data-dir key.
//! - `apple_enrollments`: keyed by device. `udid` and `identity_sha256` (the
//!   SHA-256 of the identity certificate's DER) are bound at Authenticate
//!   and unique, so one certificate never speaks for two devices. The push
//!   triple (`topic`, `push_token`, `push_magic`) comes from the latest
//!   TokenUpdate; `enabled` is false from Authenticate until TokenUpdate and
//!   after CheckOut. The unlock and bootstrap tokens are sealed.
//!   `last_idle_at` orders NotNow retries: a command the device answered
//!   NotNow after its latest Idle is not offered again until the next Idle.
//! - `apple_scep_challenges`: the SHA-256 of each challenge, the user
//!   (email) whose device it enrolls, until when, and the SCEP transaction that used it (once).
//! - `commands.args`: a command's arguments beyond the message (JSON
//!   object, e.g. a phone number or the sealed PIN of a Mac's lock);
//!   `not_now_at`/`not_now_count`: Apple's NotNow answers.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_integer_null, boolean, boolean_null, integer, string, string_null, text,
    text_null,
};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0013_apple"
    }
}

#[derive(DeriveIden)]
enum ApplePushCertificates {
    Table,
    Topic,
    CertificatePem,
    KeySealed,
    NotAfter,
    ImportedAt,
    ImportedBy,
}

#[derive(DeriveIden)]
enum AppleEnrollments {
    Table,
    DeviceId,
    Udid,
    IdentitySha256,
    Topic,
    PushToken,
    PushMagic,
    UnlockTokenSealed,
    BootstrapTokenSealed,
    AwaitingConfiguration,
    TokenUpdates,
    Enabled,
    AuthenticatedAt,
    LastSeenAt,
    LastIdleAt,
    LastPushAt,
    LastPushResult,
    PushTokenInvalidAt,
    Supervised,
}

#[derive(DeriveIden)]
enum AppleScepChallenges {
    Table,
    ChallengeSha256,
    UserEmail,
    DeviceId,
    CreatedBy,
    CreatedAt,
    ExpiresAt,
    UsedAt,
    UsedByTransaction,
}

#[derive(DeriveIden)]
enum Commands {
    Table,
    Args,
    NotNowAt,
    NotNowCount,
}

#[derive(DeriveIden)]
enum Devices {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ApplePushCertificates::Table)
                    .col(string(ApplePushCertificates::Topic).primary_key())
                    .col(text(ApplePushCertificates::CertificatePem))
                    .col(text(ApplePushCertificates::KeySealed))
                    .col(big_integer(ApplePushCertificates::NotAfter))
                    .col(big_integer(ApplePushCertificates::ImportedAt))
                    .col(string(ApplePushCertificates::ImportedBy))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AppleEnrollments::Table)
                    .col(string(AppleEnrollments::DeviceId).primary_key())
                    .col(string_null(AppleEnrollments::Udid).unique_key())
                    .col(string_null(AppleEnrollments::IdentitySha256).unique_key())
                    .col(string_null(AppleEnrollments::Topic))
                    .col(string_null(AppleEnrollments::PushToken))
                    .col(string_null(AppleEnrollments::PushMagic))
                    .col(text_null(AppleEnrollments::UnlockTokenSealed))
                    .col(text_null(AppleEnrollments::BootstrapTokenSealed))
                    .col(boolean(AppleEnrollments::AwaitingConfiguration).default(false))
                    .col(integer(AppleEnrollments::TokenUpdates).default(0))
                    .col(boolean(AppleEnrollments::Enabled).default(false))
                    .col(big_integer_null(AppleEnrollments::AuthenticatedAt))
                    .col(big_integer_null(AppleEnrollments::LastSeenAt))
                    .col(big_integer_null(AppleEnrollments::LastIdleAt))
                    .col(big_integer_null(AppleEnrollments::LastPushAt))
                    .col(string_null(AppleEnrollments::LastPushResult))
                    .col(big_integer_null(AppleEnrollments::PushTokenInvalidAt))
                    // From DeviceInformation's IsSupervised; unknown until then.
                    .col(boolean_null(AppleEnrollments::Supervised))
                    .foreign_key(
                        ForeignKey::create()
                            .from(AppleEnrollments::Table, AppleEnrollments::DeviceId)
                            .to(Devices::Table, Devices::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AppleScepChallenges::Table)
                    .col(string(AppleScepChallenges::ChallengeSha256).primary_key())
                    .col(string_null(AppleScepChallenges::UserEmail))
                    // Known when the profile is for a device Latchkey already
                    // lists (Automated Device Enrollment).
                    .col(string_null(AppleScepChallenges::DeviceId))
                    .col(string(AppleScepChallenges::CreatedBy))
                    .col(big_integer(AppleScepChallenges::CreatedAt))
                    .col(big_integer(AppleScepChallenges::ExpiresAt))
                    .col(big_integer_null(AppleScepChallenges::UsedAt))
                    .col(string_null(AppleScepChallenges::UsedByTransaction))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("apple_scep_challenges_expires_at")
                    .table(AppleScepChallenges::Table)
                    .col(AppleScepChallenges::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Commands::Table)
                    .add_column(text_null(Commands::Args))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Commands::Table)
                    .add_column(big_integer_null(Commands::NotNowAt))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Commands::Table)
                    .add_column(integer(Commands::NotNowCount).default(0))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Commands::NotNowCount, Commands::NotNowAt, Commands::Args] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Commands::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_table(Table::drop().table(AppleScepChallenges::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(AppleEnrollments::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(ApplePushCertificates::Table).to_owned())
            .await
    }
}
