//! `latchctl admin`: adding admins (their API token shown once) and
//! listing them with their roles.

use latchkey_proto::v1;
use serde_json::json;

use super::Context;
use crate::CliError;
use crate::args::AdminCommand;
use crate::error::call;
use crate::render::{self, Table, time};

pub async fn run(command: AdminCommand, cx: &mut Context) -> Result<String, CliError> {
    match command {
        AdminCommand::Add { email, role } => {
            let r = call(cx.client.add_admin(v1::AddAdminRequest { email, role })).await?;
            let admin = r.admin.unwrap_or_default();
            if cx.json {
                let mut value = admin_json(&admin);
                if let Some(object) = value.as_object_mut() {
                    object.insert("token".into(), json!(r.token));
                }
                Ok(render::pretty(&value))
            } else {
                Ok(format!(
                    "{}\n\nadmin {} added with role {}; the API token above is shown only once\n",
                    r.token, admin.email, admin.role
                ))
            }
        }
        AdminCommand::List => {
            let admins = call(cx.client.list_admins(v1::ListAdminsRequest {}))
                .await?
                .admins;
            if cx.json {
                Ok(render::pretty(&json!(
                    admins.iter().map(admin_json).collect::<Vec<_>>()
                )))
            } else {
                let mut table = Table::new(&["EMAIL", "ROLE", "ADDED"]);
                for a in &admins {
                    table.row(vec![a.email.clone(), a.role.clone(), time(a.created_at)]);
                }
                Ok(table.render())
            }
        }
    }
}

pub fn admin_json(a: &v1::Admin) -> serde_json::Value {
    json!({
        "id": a.id, "email": a.email, "role": a.role,
        "created_at": render::rfc3339(a.created_at),
    })
}
