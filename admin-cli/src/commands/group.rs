//! `latchctl group`: adding groups and listing them with member counts.

use latchkey_proto::v1;
use serde_json::json;

use super::Context;
use crate::CliError;
use crate::args::GroupCommand;
use crate::error::call;
use crate::render::{self, Table, time};

pub async fn run(command: GroupCommand, cx: &mut Context) -> Result<String, CliError> {
    match command {
        GroupCommand::Add { name } => {
            let group = call(cx.client.add_group(v1::AddGroupRequest { name })).await?;
            if cx.json {
                Ok(render::pretty(&group_json(&group)))
            } else {
                Ok(format!("group {} added\n", group.name))
            }
        }
        GroupCommand::List => {
            let groups = call(cx.client.list_groups(v1::ListGroupsRequest {}))
                .await?
                .groups;
            if cx.json {
                Ok(render::pretty(&json!(
                    groups.iter().map(group_json).collect::<Vec<_>>()
                )))
            } else {
                let mut table = Table::new(&["GROUP", "MEMBERS", "ADDED"]);
                for g in &groups {
                    table.row(vec![
                        g.name.clone(),
                        g.members.to_string(),
                        time(g.created_at),
                    ]);
                }
                Ok(table.render())
            }
        }
    }
}

fn group_json(g: &v1::Group) -> serde_json::Value {
    json!({"name": g.name, "members": g.members, "created_at": render::rfc3339(g.created_at)})
}
