//! `latchctl user`: adding and importing users, listing and showing them,
//! changing their status, and the temporary passwords of a reset.

use latchkey_proto::v1;
use serde_json::json;

use super::Context;
use crate::args::UserCommand;
use crate::error::call;
use crate::render::{self, Fields, Table, time};
use crate::{CliError, enums, import};

pub async fn run(command: UserCommand, cx: &mut Context) -> Result<String, CliError> {
    match command {
        UserCommand::Add {
            email,
            name,
            groups,
            break_glass,
        } => {
            let user = call(
                cx.client.add_user(v1::AddUserRequest {
                    email,
                    name,
                    groups,
                    kind: if break_glass {
                        v1::UserKind::BreakGlass
                    } else {
                        v1::UserKind::User
                    }
                    .into(),
                }),
            )
            .await?;
            if cx.json {
                Ok(render::pretty(&user_json(&user)?))
            } else {
                Ok(format!("user {} added\n", user.email))
            }
        }
        UserCommand::Import { file } => {
            let bytes = std::fs::read(&file).map_err(|source| CliError::File {
                path: file.clone(),
                source,
            })?;
            let csv = import::decode(&file, &bytes)?;
            import::check_size(&file, &csv)?;
            let report = call(cx.client.import_users(v1::ImportUsersRequest { csv })).await?;
            if cx.json {
                Ok(render::pretty(&json!({
                    "added": report.added,
                    "rejected": report.rejected.iter().map(|r| json!({"line": r.line, "email": r.email, "reason": r.reason})).collect::<Vec<_>>(),
                })))
            } else {
                let mut out = format!(
                    "{} user(s) added, {} row(s) rejected\n",
                    report.added.len(),
                    report.rejected.len()
                );
                if !report.rejected.is_empty() {
                    let mut table = Table::new(&["LINE", "EMAIL", "REASON"]);
                    for r in &report.rejected {
                        table.row(vec![
                            r.line.to_string(),
                            render::or_dash(&r.email).to_owned(),
                            r.reason.clone(),
                        ]);
                    }
                    out.push_str(&table.render());
                }
                Ok(out)
            }
        }
        UserCommand::List => {
            let users = call(cx.client.list_users(v1::ListUsersRequest {}))
                .await?
                .users;
            if cx.json {
                let users = users.iter().map(user_json).collect::<Result<Vec<_>, _>>()?;
                Ok(render::pretty(&json!(users)))
            } else {
                let mut table = Table::new(&["EMAIL", "NAME", "KIND", "STATUS", "GROUPS"]);
                for u in &users {
                    table.row(vec![
                        u.email.clone(),
                        u.name.clone(),
                        enums::user_kind(u.kind)?.to_owned(),
                        enums::user_status(u.status)?.to_owned(),
                        u.groups.join(", "),
                    ]);
                }
                Ok(table.render())
            }
        }
        UserCommand::Show { email } => {
            let user = call(cx.client.get_user(v1::GetUserRequest { email })).await?;
            if cx.json {
                Ok(render::pretty(&user_json(&user)?))
            } else {
                user_text(&user)
            }
        }
        UserCommand::Suspend { email } => {
            set_status(cx, email, v1::UserStatus::Suspended, "suspended").await
        }
        UserCommand::Activate { email } => {
            set_status(cx, email, v1::UserStatus::Active, "activated").await
        }
        UserCommand::Delete { email } => {
            set_status(cx, email, v1::UserStatus::Deleted, "deleted").await
        }
        UserCommand::ResetPassword { email } => {
            let r = call(cx.client.reset_password(v1::ResetPasswordRequest { email })).await?;
            Ok(temporary_password_out(cx.json, &r))
        }
        UserCommand::ResetMfa { email } => {
            let r = call(cx.client.reset_mfa(v1::ResetPasswordRequest { email })).await?;
            let mut out = temporary_password_out(cx.json, &r);
            if !cx.json {
                out.push_str("the authenticator app was removed and the user's sessions ended; they set up a new one at the next sign-in\n");
            }
            Ok(out)
        }
    }
}

/// Suspends, activates or deletes a user: `status` is the one asked of the
/// server, `verb` what latchctl says was done.
async fn set_status(
    cx: &mut Context,
    email: String,
    status: v1::UserStatus,
    verb: &str,
) -> Result<String, CliError> {
    let user = call(cx.client.set_user_status(v1::SetUserStatusRequest {
        email,
        status: status.into(),
    }))
    .await?;
    if cx.json {
        Ok(render::pretty(&user_json(&user)?))
    } else {
        Ok(format!("user {} {verb}\n", user.email))
    }
}

fn user_json(u: &v1::User) -> Result<serde_json::Value, CliError> {
    Ok(json!({
        "id": u.id, "email": u.email, "name": u.name,
        "kind": enums::user_kind(u.kind)?, "status": enums::user_status(u.status)?,
        "groups": u.groups, "created_at": render::rfc3339(u.created_at),
        "updated_at": render::rfc3339(u.updated_at),
    }))
}

fn user_text(u: &v1::User) -> Result<String, CliError> {
    let mut f = Fields::default();
    f.add("email", &u.email);
    f.add("name", &u.name);
    f.add("kind", enums::user_kind(u.kind)?);
    f.add("status", enums::user_status(u.status)?);
    f.add("groups", &u.groups.join(", "));
    f.add("added", &time(u.created_at));
    f.add("changed", &time(u.updated_at));
    Ok(f.render())
}

/// A temporary password, shown once.
fn temporary_password_out(json: bool, r: &v1::ResetPasswordResponse) -> String {
    let user = r.user.clone().unwrap_or_default();
    if json {
        render::pretty(&json!({
            "email": user.email,
            "temporary_password": r.temporary_password,
            "expires_at": render::rfc3339(r.expires_at),
        }))
    } else {
        format!(
            "{}\n\ntemporary password for {}, valid until {}; it must be changed at the first sign-in and is shown only once\n",
            r.temporary_password,
            user.email,
            time(r.expires_at)
        )
    }
}
