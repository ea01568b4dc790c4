//! `latchctl command`: the commands sent to one device, oldest first.

use latchkey_proto::v1;
use serde_json::json;

use super::Context;
use crate::args::CommandCommand;
use crate::error::call;
use crate::render::{self, Table, time};
use crate::{CliError, enums};

pub async fn run(command: CommandCommand, cx: &mut Context) -> Result<String, CliError> {
    match command {
        CommandCommand::List { device_id } => {
            let commands = call(
                cx.client
                    .list_commands(v1::ListCommandsRequest { device_id }),
            )
            .await?
            .commands;
            if cx.json {
                let commands = commands
                    .iter()
                    .map(command_json)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(render::pretty(&json!(commands)))
            } else {
                commands_table(&commands)
            }
        }
    }
}

pub fn command_json(c: &v1::DeviceCommand) -> Result<serde_json::Value, CliError> {
    Ok(json!({
        "id": c.id,
        "device_id": c.device_id,
        "kind": enums::command_kind(c.kind)?,
        "status": enums::command_status(c.status)?,
        "result": (!c.result.is_empty()).then_some(&c.result),
        "created_at": render::rfc3339(c.created_at),
        "acknowledged_at": render::rfc3339(c.acknowledged_at),
        "created_by": c.created_by,
        "pin": (!c.pin.is_empty()).then_some(&c.pin),
    }))
}

fn commands_table(commands: &[v1::DeviceCommand]) -> Result<String, CliError> {
    let mut table = Table::new(&["ID", "KIND", "STATUS", "CREATED", "BY", "RESULT"]);
    for c in commands {
        table.row(vec![
            c.id.clone(),
            enums::command_kind(c.kind)?.to_owned(),
            enums::command_status(c.status)?.to_owned(),
            time(c.created_at),
            c.created_by.clone(),
            c.result.clone(),
        ]);
    }
    Ok(table.render())
}
