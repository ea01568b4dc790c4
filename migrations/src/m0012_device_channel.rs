//! The channel that manages each device: `agent` (Latchkey's agent over
//! MQTT) for every device enrolled so far; Apple, Android and Windows
//! management add their own. Commands are queued the same way for every
//! channel; the channel decides how the device learns that it has work.
//!
//! `commands.offered_at` is when the device's channel was last told about
//! a command, whether it carried the command (then it is also `sent_at`)
//! or only woke the device; redelivery waits from it. Commands sent before
//! this migration were offered when they were sent.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer_null, text};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0012_device_channel"
    }
}

#[derive(DeriveIden)]
enum Devices {
    Table,
    Channel,
}

#[derive(DeriveIden)]
enum Commands {
    Table,
    OfferedAt,
    SentAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Devices::Table)
                    .add_column(text(Devices::Channel).default("agent").to_owned())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Commands::Table)
                    .add_column(big_integer_null(Commands::OfferedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::update()
                    .table(Commands::Table)
                    .value(Commands::OfferedAt, Expr::col(Commands::SentAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Commands::Table)
                    .drop_column(Commands::OfferedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Devices::Table)
                    .drop_column(Devices::Channel)
                    .to_owned(),
            )
            .await
    }
}
