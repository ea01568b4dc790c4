//! The device's proof reaches the browser that signed in.
//!
//! A `bound` transaction the device answered is not yet a sign-in: the
//! agent receives a one-time redemption secret and a short code, and the
//! transaction completes only when one of them arrives from the browser
//! session that started it. Only their hashes are stored
//! (`proof_hash`, `code_hash`); `code_attempts` counts guesses at the code;
//! `link_opened_at` records that the link arrived (in any browser);
//! `delivered_at`/`delivered_by` when and how the proof reached the
//! session (`link`, `code` or `certificate`).
//!
//! A session records what it has proved, so each check asks for what it
//! needs: which mode confirmed a device and from which address
//! (`device_mode`, `device_ip`), which second factor passed and when
//! (`second_factor`, `second_factor_at`), and whether the password it
//! passed was a temporary one (`onboarding`), which is when a first
//! authenticator may be set up at sign-in.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer_null, boolean, integer, string_null, text_null};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0010_device_proof"
    }
}

#[derive(DeriveIden)]
enum DeviceAuthTxns {
    Table,
    SessionId,
    UserId,
    CreatedAt,
    ProofHash,
    CodeHash,
    CodeAttempts,
    LinkOpenedAt,
    DeliveredAt,
    DeliveredBy,
}

#[derive(DeriveIden)]
enum SsoSessions {
    Table,
    DeviceMode,
    DeviceIp,
    SecondFactor,
    SecondFactorAt,
    Onboarding,
}

async fn add_columns(
    manager: &SchemaManager<'_>,
    table: DynIden,
    columns: Vec<ColumnDef>,
) -> Result<(), DbErr> {
    // One column per statement: SQLite alters one column at a time.
    for mut column in columns {
        manager
            .alter_table(
                Table::alter()
                    .table(table.clone())
                    .add_column(&mut column)
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}

async fn drop_columns(
    manager: &SchemaManager<'_>,
    table: DynIden,
    columns: Vec<DynIden>,
) -> Result<(), DbErr> {
    for column in columns {
        manager
            .alter_table(
                Table::alter()
                    .table(table.clone())
                    .drop_column(column)
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        add_columns(
            manager,
            DeviceAuthTxns::Table.into_iden(),
            vec![
                text_null(DeviceAuthTxns::ProofHash),
                text_null(DeviceAuthTxns::CodeHash),
                integer(DeviceAuthTxns::CodeAttempts).default(0).to_owned(),
                big_integer_null(DeviceAuthTxns::LinkOpenedAt),
                big_integer_null(DeviceAuthTxns::DeliveredAt),
                string_null(DeviceAuthTxns::DeliveredBy),
            ],
        )
        .await?;
        // Repeated device requests are counted per session and per user.
        for (name, first) in [
            ("device_auth_txns_session", DeviceAuthTxns::SessionId),
            ("device_auth_txns_user", DeviceAuthTxns::UserId),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(DeviceAuthTxns::Table)
                        .col(first)
                        .col(DeviceAuthTxns::CreatedAt)
                        .to_owned(),
                )
                .await?;
        }
        add_columns(
            manager,
            SsoSessions::Table.into_iden(),
            vec![
                string_null(SsoSessions::DeviceMode),
                string_null(SsoSessions::DeviceIp),
                string_null(SsoSessions::SecondFactor),
                big_integer_null(SsoSessions::SecondFactorAt),
                boolean(SsoSessions::Onboarding).default(false).to_owned(),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_columns(
            manager,
            SsoSessions::Table.into_iden(),
            vec![
                SsoSessions::Onboarding.into_iden(),
                SsoSessions::SecondFactorAt.into_iden(),
                SsoSessions::SecondFactor.into_iden(),
                SsoSessions::DeviceIp.into_iden(),
                SsoSessions::DeviceMode.into_iden(),
            ],
        )
        .await?;
        for name in ["device_auth_txns_user", "device_auth_txns_session"] {
            manager
                .drop_index(
                    Index::drop()
                        .name(name)
                        .table(DeviceAuthTxns::Table)
                        .to_owned(),
                )
                .await?;
        }
        drop_columns(
            manager,
            DeviceAuthTxns::Table.into_iden(),
            vec![
                DeviceAuthTxns::DeliveredBy.into_iden(),
                DeviceAuthTxns::DeliveredAt.into_iden(),
                DeviceAuthTxns::LinkOpenedAt.into_iden(),
                DeviceAuthTxns::CodeAttempts.into_iden(),
                DeviceAuthTxns::CodeHash.into_iden(),
                DeviceAuthTxns::ProofHash.into_iden(),
            ],
        )
        .await
    }
}
