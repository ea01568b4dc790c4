//! A device's compliance verdict, kept with the posture it was reached on:
//! until when the device is compliant (none when it is not), and the policy
//! document it was judged under (empty for the default rules). A device's
//! sign-in answer is confirmed in one statement while the verdict holds and
//! the policy in force is still that document; otherwise the server judges
//! the device afresh.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer_null, text_null};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0008_compliance_verdict"
    }
}

#[derive(DeriveIden)]
enum Devices {
    Table,
    CompliantUntil,
    CompliancePolicy,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one column at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(Devices::Table)
                    .add_column(big_integer_null(Devices::CompliantUntil))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Devices::Table)
                    .add_column(text_null(Devices::CompliancePolicy))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Devices::CompliancePolicy, Devices::CompliantUntil] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Devices::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
