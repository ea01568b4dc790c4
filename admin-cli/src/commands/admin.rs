//! `latchctl admin`: adding admins (their API token shown once) and
//! listing them with their roles.

use latchkey_proto::v1;
use serde_json::json;

use super::Context;
use crate::args::AdminCommand;
use crate::error::call;
use crate::render::{self, Table, time};
use crate::{CliError, enums};

pub async fn run(command: AdminCommand, cx: &mut Context) -> Result<String, CliError> {
    match command {
        AdminCommand::Add { email, role } => {
            let role = enums::parse_role(&role)?;
            // Only the enum: a server older than it refuses the request,
            // rather than adding an admin whose token this latchctl could
            // not show (it cannot print that server's answer).
            let r = call(cx.client.add_admin(v1::AddAdminRequest {
                email,
                role: role.into(),
                ..Default::default()
            }))
            .await?;
            let admin = r.admin.unwrap_or_default();
            if cx.json {
                let mut value = admin_json(&admin)?;
                if let Some(object) = value.as_object_mut() {
                    object.insert("token".into(), json!(r.token));
                }
                Ok(render::pretty(&value))
            } else {
                Ok(format!(
                    "{}\n\nadmin {} added with role {}; the API token above is shown only once\n",
                    r.token,
                    admin.email,
                    enums::role(admin.role)?
                ))
            }
        }
        AdminCommand::List => {
            let admins = call(cx.client.list_admins(v1::ListAdminsRequest {}))
                .await?
                .admins;
            if cx.json {
                let admins = admins
                    .iter()
                    .map(admin_json)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(render::pretty(&json!(admins)))
            } else {
                let mut table = Table::new(&["EMAIL", "ROLE", "ADDED"]);
                for a in &admins {
                    table.row(vec![
                        a.email.clone(),
                        enums::role(a.role)?.to_owned(),
                        time(a.created_at),
                    ]);
                }
                Ok(table.render())
            }
        }
    }
}

pub fn admin_json(a: &v1::Admin) -> Result<serde_json::Value, CliError> {
    Ok(json!({
        "id": a.id, "email": a.email, "role": enums::role(a.role)?,
        "created_at": render::rfc3339(a.created_at),
    }))
}
