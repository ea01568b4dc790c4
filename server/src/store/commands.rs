//! The command outbox: a command is stored here before anything is sent,
//! marked sent when a channel delivered it, and acknowledged once.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use super::entities::commands;
use super::{Db, INSERT_CHUNK, StoreError, StoreResult, ms, opt_time, time};
use crate::domain::command::{Command, CommandArgs, CommandKind, CommandStatus};
use crate::domain::ids::{CommandId, DeviceId};

/// The condition of a command still open: pending or sent, not yet
/// acknowledged, failed or closed.
fn is_open() -> sea_orm::sea_query::SimpleExpr {
    commands::Column::Status.is_in([
        CommandStatus::Pending.as_str(),
        CommandStatus::Sent.as_str(),
    ])
}

pub(super) fn command_from(row: commands::Model) -> StoreResult<Command> {
    let args = args_from(&row.id, row.args.as_deref())?;
    Ok(Command {
        kind: CommandKind::parse(&row.kind).ok_or_else(|| StoreError::Corrupt(row.kind.clone()))?,
        status: CommandStatus::parse(&row.status)
            .ok_or_else(|| StoreError::Corrupt(row.status.clone()))?,
        id: CommandId::from_store(row.id),
        device_id: DeviceId::from_store(row.device_id),
        message: row.message,
        args,
        result: row.result,
        created_at: time(row.created_at)?,
        sent_at: opt_time(row.sent_at)?,
        acked_at: opt_time(row.acked_at)?,
        created_by: row.created_by,
    })
}

/// A command's arguments as the `args` column holds them: a JSON object
/// with only the arguments given (`None` when there are none).
fn args_text(args: &CommandArgs) -> Option<String> {
    use base64::Engine;
    let mut object = serde_json::Map::new();
    let mut put = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            object.insert(key.to_owned(), serde_json::Value::String(value));
        }
    };
    put("phone_number", args.phone_number.clone());
    put("footnote", args.footnote.clone());
    put("pin_sealed", args.pin_sealed.clone());
    put(
        "profile",
        args.profile
            .as_ref()
            .map(|p| base64::engine::general_purpose::STANDARD.encode(p)),
    );
    put("profile_identifier", args.profile_identifier.clone());
    (!object.is_empty()).then(|| serde_json::Value::Object(object).to_string())
}

fn args_from(id: &str, text: Option<&str>) -> StoreResult<CommandArgs> {
    use base64::Engine;
    let Some(text) = text else {
        return Ok(CommandArgs::default());
    };
    let corrupt = || StoreError::Corrupt(format!("commands.args of {id}"));
    let value: serde_json::Value = serde_json::from_str(text).map_err(|_| corrupt())?;
    let get = |key: &str| value.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    let profile = match get("profile") {
        Some(b64) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| corrupt())?,
        ),
        None => None,
    };
    Ok(CommandArgs {
        phone_number: get("phone_number"),
        footnote: get("footnote"),
        pin_sealed: get("pin_sealed"),
        profile,
        profile_identifier: get("profile_identifier"),
    })
}

impl<C: ConnectionTrait> Db<C> {
    pub async fn insert_command(&self, command: &Command) -> StoreResult<()> {
        self.insert_commands(std::slice::from_ref(command)).await
    }

    /// Inserts commands in a few statements.
    pub async fn insert_commands(&self, commands: &[Command]) -> StoreResult<()> {
        // Fifteen columns a row, well within every backend's limit of
        // bound values a statement.
        for chunk in commands.chunks(INSERT_CHUNK) {
            commands::Entity::insert_many(chunk.iter().map(|command| commands::ActiveModel {
                id: Set(command.id.to_string()),
                device_id: Set(command.device_id.to_string()),
                kind: Set(command.kind.as_str().to_owned()),
                message: Set(command.message.clone()),
                status: Set(command.status.as_str().to_owned()),
                result: Set(command.result.clone()),
                created_at: Set(ms(command.created_at)),
                sent_at: Set(command.sent_at.map(ms)),
                acked_at: Set(command.acked_at.map(ms)),
                created_by: Set(command.created_by.clone()),
                offered_at: Set(command.sent_at.map(ms)),
                args: Set(args_text(&command.args)),
                not_now_at: Set(None),
                not_now_count: Set(0),
            }))
            .exec_without_returning(&self.0)
            .await?;
        }
        Ok(())
    }

    pub async fn command(&self, id: &CommandId) -> StoreResult<Option<Command>> {
        commands::Entity::find_by_id(id.to_string())
            .one(&self.0)
            .await?
            .map(command_from)
            .transpose()
    }

    pub async fn list_commands(&self, device_id: &DeviceId) -> StoreResult<Vec<Command>> {
        self.device_commands(device_id, Expr::value(true)).await
    }

    /// The profile installs and removals of a device, oldest first.
    pub async fn profile_commands(&self, device_id: &DeviceId) -> StoreResult<Vec<Command>> {
        let kinds = [
            CommandKind::InstallProfile.as_str(),
            CommandKind::RemoveProfile.as_str(),
        ];
        self.device_commands(device_id, commands::Column::Kind.is_in(kinds))
            .await
    }

    /// Apple devices still managed whose posture was last reported before
    /// `before` (or never) and that have no security query open, the
    /// stalest first: those whose facts are due to be asked again.
    pub async fn apple_devices_due_inventory(
        &self,
        before: DateTime<Utc>,
        limit: u64,
    ) -> StoreResult<Vec<DeviceId>> {
        let statement = sea_orm::Statement::from_sql_and_values(
            self.0.get_database_backend(),
            "SELECT d.id FROM devices d \
             WHERE d.channel = $1 AND d.state IN ($2, $3, $4) \
               AND (d.posture_at IS NULL OR d.posture_at < $5) \
               AND NOT EXISTS (SELECT 1 FROM commands c WHERE c.device_id = d.id \
                   AND c.kind = $6 AND c.status IN ($7, $8)) \
             ORDER BY d.posture_at, d.id LIMIT $9",
            [
                crate::domain::device::Channel::APPLE.into(),
                crate::domain::device::DeviceState::Active.as_str().into(),
                crate::domain::device::DeviceState::Locked.as_str().into(),
                crate::domain::device::DeviceState::Lost.as_str().into(),
                ms(before).into(),
                CommandKind::SecurityInfo.as_str().into(),
                CommandStatus::Pending.as_str().into(),
                CommandStatus::Sent.as_str().into(),
                i64::try_from(limit).unwrap_or(i64::MAX).into(),
            ],
        );
        self.0
            .query_all_raw(statement)
            .await?
            .iter()
            .map(|row| {
                let id = row.try_get::<String>("", "id")?;
                DeviceId::parse(&id).ok_or(StoreError::Corrupt(id))
            })
            .collect()
    }

    /// Commands of a device still waiting for an acknowledgement, oldest first.
    pub async fn open_commands(&self, device_id: &DeviceId) -> StoreResult<Vec<Command>> {
        self.device_commands(device_id, is_open()).await
    }

    /// The commands of a device that meet `condition`, oldest first.
    async fn device_commands(
        &self,
        device_id: &DeviceId,
        condition: sea_orm::sea_query::SimpleExpr,
    ) -> StoreResult<Vec<Command>> {
        commands::Entity::find()
            .filter(commands::Column::DeviceId.eq(device_id.to_string()))
            .filter(condition)
            .order_by_asc(commands::Column::CreatedAt)
            .order_by_asc(commands::Column::Id)
            .all(&self.0)
            .await?
            .into_iter()
            .map(command_from)
            .collect()
    }

    /// Open commands last offered to their channel before `before` (or
    /// never offered), any device, oldest first.
    pub async fn commands_to_redeliver(
        &self,
        before: DateTime<Utc>,
        limit: u64,
    ) -> StoreResult<Vec<Command>> {
        commands::Entity::find()
            .filter(is_open())
            .filter(
                commands::Column::OfferedAt
                    .is_null()
                    .or(commands::Column::OfferedAt.lt(ms(before))),
            )
            .order_by_asc(commands::Column::CreatedAt)
            .limit(limit)
            .all(&self.0)
            .await?
            .into_iter()
            .map(command_from)
            .collect()
    }

    pub async fn mark_commands_sent(
        &self,
        ids: &[CommandId],
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        for chunk in ids.chunks(INSERT_CHUNK) {
            commands::Entity::update_many()
                .col_expr(commands::Column::SentAt, Expr::value(ms(now)))
                .col_expr(commands::Column::OfferedAt, Expr::value(ms(now)))
                .col_expr(
                    commands::Column::Status,
                    Expr::value(CommandStatus::Sent.as_str()),
                )
                .filter(commands::Column::Id.is_in(chunk.iter().map(ToString::to_string)))
                .filter(is_open())
                .exec(&self.0)
                .await?;
        }
        Ok(())
    }

    /// Records that the device's channel was told about these open
    /// commands now (it woke the device, which fetches them).
    pub async fn mark_commands_offered(
        &self,
        ids: &[CommandId],
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        for chunk in ids.chunks(INSERT_CHUNK) {
            commands::Entity::update_many()
                .col_expr(commands::Column::OfferedAt, Expr::value(ms(now)))
                .filter(commands::Column::Id.is_in(chunk.iter().map(ToString::to_string)))
                .filter(is_open())
                .exec(&self.0)
                .await?;
        }
        Ok(())
    }

    /// Records the agent's answer once; a repeated acknowledgement changes nothing.
    pub async fn acknowledge_command(
        &self,
        id: &CommandId,
        device_id: &DeviceId,
        status: CommandStatus,
        result: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<CommandKind>> {
        let closed = commands::Entity::update_many()
            .col_expr(commands::Column::Status, Expr::value(status.as_str()))
            .col_expr(commands::Column::Result, Expr::value(result.to_owned()))
            .col_expr(commands::Column::AckedAt, Expr::value(ms(now)))
            .filter(commands::Column::Id.eq(id.to_string()))
            .filter(commands::Column::DeviceId.eq(device_id.to_string()))
            .filter(is_open())
            .exec_with_returning(&self.0)
            .await?;
        closed
            .into_iter()
            .next()
            .map(|row| CommandKind::parse(&row.kind).ok_or(StoreError::Corrupt(row.kind)))
            .transpose()
    }

    /// Closes every open command of a device (it was retired or wiped).
    pub async fn fail_open_commands(
        &self,
        device_id: &DeviceId,
        result: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.fail_open_where(
            commands::Column::DeviceId.eq(device_id.to_string()),
            result,
            now,
        )
        .await
    }

    /// Closes one open command as failed (what it carried no longer holds).
    pub async fn fail_open_command(
        &self,
        command: &CommandId,
        result: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.fail_open_where(commands::Column::Id.eq(command.to_string()), result, now)
            .await
    }

    /// Closes the open commands that meet `condition` as failed.
    async fn fail_open_where(
        &self,
        condition: sea_orm::sea_query::SimpleExpr,
        result: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        commands::Entity::update_many()
            .col_expr(
                commands::Column::Status,
                Expr::value(CommandStatus::Failed.as_str()),
            )
            .col_expr(commands::Column::Result, Expr::value(result.to_owned()))
            .col_expr(commands::Column::AckedAt, Expr::value(ms(now)))
            .filter(condition)
            .filter(is_open())
            .exec(&self.0)
            .await?;
        Ok(())
    }
}
