//! The spine: admins and their API tokens, enrollment tokens, devices and
//! their certificates, the command outbox, policies and the audit log.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_integer_null, big_pk_auto, boolean, integer, string, string_null, string_uniq,
    text, text_null,
};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0001_spine"
    }
}

#[derive(DeriveIden)]
enum Admins {
    Table,
    Id,
    Email,
    Role,
    CreatedAt,
    Disabled,
}

#[derive(DeriveIden)]
enum AdminTokens {
    Table,
    TokenHash,
    AdminId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum EnrollmentTokens {
    Table,
    Id,
    SecretHash,
    UserEmail,
    GroupName,
    ExpiresAt,
    UsesAllowed,
    UsesCount,
    RevokedAt,
    CreatedBy,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Devices {
    Table,
    Id,
    Hostname,
    Platform,
    OsVersion,
    MachineId,
    Serial,
    Model,
    State,
    UserEmail,
    GroupName,
    EnrolledAt,
    LastSeen,
    PostureJson,
    PostureAt,
}

#[derive(DeriveIden)]
enum DeviceCertificates {
    Table,
    Serial,
    DeviceId,
    SpkiSha256,
    NotBefore,
    NotAfter,
    RevokedAt,
}

#[derive(DeriveIden)]
enum Commands {
    Table,
    Id,
    DeviceId,
    Kind,
    Message,
    Status,
    Result,
    CreatedAt,
    SentAt,
    AckedAt,
    CreatedBy,
}

#[derive(DeriveIden)]
enum Policies {
    Table,
    Name,
    Document,
    Version,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum PolicyAssignments {
    Table,
    TargetKind,
    Target,
    PolicyName,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    At,
    Actor,
    Action,
    Target,
    Outcome,
    Detail,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Admins::Table)
                    .col(string(Admins::Id).primary_key())
                    .col(string_uniq(Admins::Email))
                    .col(string(Admins::Role))
                    .col(big_integer(Admins::CreatedAt))
                    .col(boolean(Admins::Disabled))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AdminTokens::Table)
                    .col(string(AdminTokens::TokenHash).primary_key())
                    .col(string(AdminTokens::AdminId))
                    .col(big_integer(AdminTokens::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(AdminTokens::Table, AdminTokens::AdminId)
                            .to(Admins::Table, Admins::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(EnrollmentTokens::Table)
                    .col(string(EnrollmentTokens::Id).primary_key())
                    .col(string_uniq(EnrollmentTokens::SecretHash))
                    .col(string_null(EnrollmentTokens::UserEmail))
                    .col(string_null(EnrollmentTokens::GroupName))
                    .col(big_integer(EnrollmentTokens::ExpiresAt))
                    .col(integer(EnrollmentTokens::UsesAllowed))
                    .col(integer(EnrollmentTokens::UsesCount))
                    .col(big_integer_null(EnrollmentTokens::RevokedAt))
                    .col(string(EnrollmentTokens::CreatedBy))
                    .col(big_integer(EnrollmentTokens::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Devices::Table)
                    .col(string(Devices::Id).primary_key())
                    .col(string(Devices::Hostname))
                    .col(string(Devices::Platform))
                    .col(string(Devices::OsVersion))
                    .col(string(Devices::MachineId))
                    .col(string(Devices::Serial))
                    .col(string(Devices::Model))
                    .col(string(Devices::State))
                    .col(string_null(Devices::UserEmail))
                    .col(string_null(Devices::GroupName))
                    .col(big_integer(Devices::EnrolledAt))
                    .col(big_integer_null(Devices::LastSeen))
                    .col(text_null(Devices::PostureJson))
                    .col(big_integer_null(Devices::PostureAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(DeviceCertificates::Table)
                    .col(string(DeviceCertificates::Serial).primary_key())
                    .col(string(DeviceCertificates::DeviceId))
                    .col(string(DeviceCertificates::SpkiSha256))
                    .col(big_integer(DeviceCertificates::NotBefore))
                    .col(big_integer(DeviceCertificates::NotAfter))
                    .col(big_integer_null(DeviceCertificates::RevokedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(DeviceCertificates::Table, DeviceCertificates::DeviceId)
                            .to(Devices::Table, Devices::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // A renewal keeps the device key: several certificates (the
        // superseded ones revoked) share one SPKI hash.
        manager
            .create_index(
                Index::create()
                    .name("device_certificates_spki")
                    .table(DeviceCertificates::Table)
                    .col(DeviceCertificates::SpkiSha256)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("device_certificates_device")
                    .table(DeviceCertificates::Table)
                    .col(DeviceCertificates::DeviceId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Commands::Table)
                    .col(string(Commands::Id).primary_key())
                    .col(string(Commands::DeviceId))
                    .col(string(Commands::Kind))
                    .col(text(Commands::Message))
                    .col(string(Commands::Status))
                    .col(text_null(Commands::Result))
                    .col(big_integer(Commands::CreatedAt))
                    .col(big_integer_null(Commands::SentAt))
                    .col(big_integer_null(Commands::AckedAt))
                    .col(string(Commands::CreatedBy))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Commands::Table, Commands::DeviceId)
                            .to(Devices::Table, Devices::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("commands_device_status")
                    .table(Commands::Table)
                    .col(Commands::DeviceId)
                    .col(Commands::Status)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Policies::Table)
                    .col(string(Policies::Name).primary_key())
                    .col(text(Policies::Document))
                    .col(big_integer(Policies::Version))
                    .col(big_integer(Policies::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PolicyAssignments::Table)
                    .col(string(PolicyAssignments::TargetKind))
                    .col(string(PolicyAssignments::Target))
                    .col(string(PolicyAssignments::PolicyName))
                    .primary_key(
                        Index::create()
                            .col(PolicyAssignments::TargetKind)
                            .col(PolicyAssignments::Target),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(PolicyAssignments::Table, PolicyAssignments::PolicyName)
                            .to(Policies::Table, Policies::Name),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .col(big_pk_auto(AuditLog::Id))
                    .col(big_integer(AuditLog::At))
                    .col(string(AuditLog::Actor))
                    .col(string(AuditLog::Action))
                    .col(string(AuditLog::Target))
                    .col(string(AuditLog::Outcome))
                    .col(text(AuditLog::Detail))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("audit_log_at")
                    .table(AuditLog::Table)
                    .col(AuditLog::At)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AuditLog::Table.into_iden(),
            PolicyAssignments::Table.into_iden(),
            Policies::Table.into_iden(),
            Commands::Table.into_iden(),
            DeviceCertificates::Table.into_iden(),
            Devices::Table.into_iden(),
            EnrollmentTokens::Table.into_iden(),
            AdminTokens::Table.into_iden(),
            Admins::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
