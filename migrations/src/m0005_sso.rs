//! The OpenID Connect provider's state: browser sessions, pending
//! authorization requests, device-auth transactions, grants (one per issued
//! authorization code, the family its tokens belong to), refresh tokens and
//! the login history. Users gain their second-factor and lockout columns.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_integer_null, boolean, string, string_null, string_uniq, text, text_null,
};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0005_sso"
    }
}

#[derive(DeriveIden)]
enum SsoSessions {
    Table,
    Id,
    SecretHash,
    UserId,
    Ip,
    UserAgent,
    CreatedAt,
    ExpiresAt,
    AuthTime,
    Amr,
    DeviceId,
    EndedAt,
    EndReason,
}

#[derive(DeriveIden)]
enum AuthRequests {
    Table,
    Id,
    SessionId,
    ClientId,
    RedirectUri,
    Scope,
    State,
    Nonce,
    CodeChallenge,
    PromptLogin,
    MaxAge,
    CreatedAt,
    ExpiresAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum DeviceAuthTxns {
    Table,
    Id,
    Nonce,
    ShortCode,
    Mode,
    RequestId,
    SessionId,
    UserId,
    ClientId,
    ExpectedDevices,
    BrowserIp,
    BrowserUa,
    CreatedAt,
    ExpiresAt,
    DeviceId,
    AnsweredAt,
    Outcome,
    Failure,
    RedeemedAt,
}

#[derive(DeriveIden)]
enum Grants {
    Table,
    Id,
    SessionId,
    UserId,
    ClientId,
    DeviceId,
    Scope,
    Nonce,
    RedirectUri,
    CodeHash,
    CodeChallenge,
    CodeExpiresAt,
    CodeUsedAt,
    AuthTime,
    Amr,
    Acr,
    CreatedAt,
    EndedAt,
    EndReason,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    TokenHash,
    GrantId,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum LoginEvents {
    Table,
    Id,
    At,
    UserId,
    Login,
    Ip,
    UserAgent,
    ClientId,
    DeviceId,
    Method,
    Result,
    Reason,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    TotpSecret,
    TotpLastStep,
    MfaSetting,
}

fn index(
    table: impl IntoTableRef,
    column: impl IntoIndexColumn,
    name: &str,
) -> IndexCreateStatement {
    Index::create()
        .name(name)
        .table(table)
        .col(column)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SsoSessions::Table)
                    .col(string(SsoSessions::Id).primary_key())
                    .col(string_uniq(SsoSessions::SecretHash))
                    .col(string_null(SsoSessions::UserId))
                    .col(string(SsoSessions::Ip))
                    .col(string(SsoSessions::UserAgent))
                    .col(big_integer(SsoSessions::CreatedAt))
                    .col(big_integer(SsoSessions::ExpiresAt))
                    // Set once every factor the login needed has passed.
                    .col(big_integer_null(SsoSessions::AuthTime))
                    // Space-separated RFC 8176 method references.
                    .col(string_null(SsoSessions::Amr))
                    // The device that confirmed the login, if one did.
                    .col(string_null(SsoSessions::DeviceId))
                    .col(big_integer_null(SsoSessions::EndedAt))
                    .col(string_null(SsoSessions::EndReason))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                SsoSessions::Table,
                SsoSessions::UserId,
                "sso_sessions_user",
            ))
            .await?;
        manager
            .create_index(index(
                SsoSessions::Table,
                SsoSessions::DeviceId,
                "sso_sessions_device",
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(AuthRequests::Table)
                    .col(string(AuthRequests::Id).primary_key())
                    .col(string(AuthRequests::SessionId))
                    .col(string(AuthRequests::ClientId))
                    .col(text(AuthRequests::RedirectUri))
                    .col(string(AuthRequests::Scope))
                    .col(text_null(AuthRequests::State))
                    .col(text_null(AuthRequests::Nonce))
                    .col(string_null(AuthRequests::CodeChallenge))
                    .col(boolean(AuthRequests::PromptLogin))
                    .col(big_integer_null(AuthRequests::MaxAge))
                    .col(big_integer(AuthRequests::CreatedAt))
                    .col(big_integer(AuthRequests::ExpiresAt))
                    .col(big_integer_null(AuthRequests::FinishedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(DeviceAuthTxns::Table)
                    .col(string(DeviceAuthTxns::Id).primary_key())
                    .col(string(DeviceAuthTxns::Nonce))
                    .col(string(DeviceAuthTxns::ShortCode))
                    .col(string(DeviceAuthTxns::Mode))
                    .col(string(DeviceAuthTxns::RequestId))
                    .col(string(DeviceAuthTxns::SessionId))
                    .col(string(DeviceAuthTxns::UserId))
                    .col(string(DeviceAuthTxns::ClientId))
                    // A JSON array of device ids that may answer.
                    .col(text(DeviceAuthTxns::ExpectedDevices))
                    .col(string(DeviceAuthTxns::BrowserIp))
                    .col(text(DeviceAuthTxns::BrowserUa))
                    .col(big_integer(DeviceAuthTxns::CreatedAt))
                    .col(big_integer(DeviceAuthTxns::ExpiresAt))
                    .col(string_null(DeviceAuthTxns::DeviceId))
                    .col(big_integer_null(DeviceAuthTxns::AnsweredAt))
                    // pending | confirmed | failed
                    .col(string(DeviceAuthTxns::Outcome))
                    // JSON: the failed check and what the user is shown.
                    .col(text_null(DeviceAuthTxns::Failure))
                    .col(big_integer_null(DeviceAuthTxns::RedeemedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_index(index(
                DeviceAuthTxns::Table,
                DeviceAuthTxns::RequestId,
                "device_auth_txns_request",
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Grants::Table)
                    .col(string(Grants::Id).primary_key())
                    .col(string(Grants::SessionId))
                    .col(string(Grants::UserId))
                    .col(string(Grants::ClientId))
                    .col(string_null(Grants::DeviceId))
                    .col(string(Grants::Scope))
                    .col(text_null(Grants::Nonce))
                    .col(text(Grants::RedirectUri))
                    .col(string_uniq(Grants::CodeHash))
                    .col(string_null(Grants::CodeChallenge))
                    .col(big_integer(Grants::CodeExpiresAt))
                    .col(big_integer_null(Grants::CodeUsedAt))
                    .col(big_integer(Grants::AuthTime))
                    .col(string(Grants::Amr))
                    .col(string(Grants::Acr))
                    .col(big_integer(Grants::CreatedAt))
                    .col(big_integer_null(Grants::EndedAt))
                    .col(string_null(Grants::EndReason))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(Grants::Table, Grants::SessionId, "grants_session"))
            .await?;
        manager
            .create_index(index(Grants::Table, Grants::DeviceId, "grants_device"))
            .await?;
        manager
            .create_index(index(Grants::Table, Grants::UserId, "grants_user"))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RefreshTokens::Table)
                    .col(string(RefreshTokens::TokenHash).primary_key())
                    .col(string(RefreshTokens::GrantId))
                    .col(big_integer(RefreshTokens::CreatedAt))
                    .col(big_integer(RefreshTokens::ExpiresAt))
                    .col(big_integer_null(RefreshTokens::UsedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                RefreshTokens::Table,
                RefreshTokens::GrantId,
                "refresh_tokens_grant",
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(LoginEvents::Table)
                    .col(string(LoginEvents::Id).primary_key())
                    .col(big_integer(LoginEvents::At))
                    .col(string_null(LoginEvents::UserId))
                    // What was typed into the sign-in form (bounded).
                    .col(string(LoginEvents::Login))
                    .col(string(LoginEvents::Ip))
                    .col(text(LoginEvents::UserAgent))
                    .col(string_null(LoginEvents::ClientId))
                    .col(string_null(LoginEvents::DeviceId))
                    .col(string(LoginEvents::Method))
                    .col(string(LoginEvents::Result))
                    .col(text_null(LoginEvents::Reason))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                LoginEvents::Table,
                LoginEvents::UserId,
                "login_events_user",
            ))
            .await?;

        // SQLite adds one column per ALTER TABLE.
        for column in [
            ColumnDef::new(Users::TotpSecret).text().null().to_owned(),
            ColumnDef::new(Users::TotpLastStep)
                .big_integer()
                .null()
                .to_owned(),
            ColumnDef::new(Users::MfaSetting).string().null().to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Users::TotpSecret, Users::TotpLastStep, Users::MfaSetting] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_table(Table::drop().table(LoginEvents::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(RefreshTokens::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Grants::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(DeviceAuthTxns::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(AuthRequests::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(SsoSessions::Table).to_owned())
            .await
    }
}
