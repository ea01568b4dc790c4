//! `latchctl command`: the commands sent to one device, oldest first.

use latchkey_proto::v1;
use serde_json::json;

use super::Context;
use crate::CliError;
use crate::args::CommandCommand;
use crate::error::call;
use crate::render::{self, Table, time};

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
                Ok(render::pretty(&json!(
                    commands.iter().map(command_json).collect::<Vec<_>>()
                )))
            } else {
                Ok(commands_table(&commands))
            }
        }
    }
}

pub fn command_json(c: &v1::DeviceCommand) -> serde_json::Value {
    json!({
        "id": c.id,
        "device_id": c.device_id,
        "kind": c.kind,
        "status": c.status,
        "result": (!c.result.is_empty()).then_some(&c.result),
        "created_at": render::rfc3339(c.created_at),
        "acknowledged_at": render::rfc3339(c.acknowledged_at),
        "created_by": c.created_by,
    })
}

fn commands_table(commands: &[v1::DeviceCommand]) -> String {
    let mut table = Table::new(&["ID", "KIND", "STATUS", "CREATED", "BY", "RESULT"]);
    for c in commands {
        table.row(vec![
            c.id.clone(),
            c.kind.clone(),
            c.status.clone(),
            time(c.created_at),
            c.created_by.clone(),
            c.result.clone(),
        ]);
    }
    table.render()
}
