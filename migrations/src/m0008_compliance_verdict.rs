//! A device's compliance verdict, kept with the posture it was reached on:
//! until when the device is compliant (none when it is not), the posture
//! time it was reached on, and its basis (the revision of the rules and the
//! policy document it was judged under). A device's sign-in answer is
//! confirmed in one statement while the verdict holds, the posture is still
//! that one and the basis is still current; otherwise the server judges the
//! device afresh.

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
    CompliancePostureAt,
    ComplianceBasis,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one column at a time.
        for column in [
            big_integer_null(Devices::CompliantUntil),
            big_integer_null(Devices::CompliancePostureAt),
            text_null(Devices::ComplianceBasis),
        ] {
            let mut column = column;
            manager
                .alter_table(
                    Table::alter()
                        .table(Devices::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            Devices::ComplianceBasis,
            Devices::CompliancePostureAt,
            Devices::CompliantUntil,
        ] {
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
