//! `latchctl token`: creating enrollment tokens (the secret shown once,
//! with the line that enrolls a device), listing them with the status the
//! server reports, and revoking them.

use latchkey_proto::v1;
use serde_json::json;

use super::Context;
use crate::args::TokenCommand;
use crate::error::call;
use crate::render::{self, Table, time};
use crate::{CliError, enums};

pub async fn run(command: TokenCommand, cx: &mut Context) -> Result<String, CliError> {
    match command {
        TokenCommand::Create {
            user,
            group,
            expires,
            uses,
        } => {
            let expires = latchkey_proto::text::parse_duration(&expires)
                .map_err(|e| e.to_string())
                .and_then(|d| {
                    latchkey_proto::limits::check_token_lifetime(d)
                        .map(|()| d)
                        .map_err(|e| e.to_string())
                })
                .map_err(|e| CliError::Usage(format!("--expires {expires}: {e}")))?;
            latchkey_proto::limits::check_token_uses(uses)
                .map_err(|e| CliError::Usage(format!("--uses {uses}: {e}")))?;
            let response = call(cx.client.create_enrollment_token(
                v1::CreateEnrollmentTokenRequest {
                    user: user.unwrap_or_default(),
                    group: group.unwrap_or_default(),
                    expires_in_seconds: Some(i64::try_from(expires.as_secs()).unwrap_or(i64::MAX)),
                    uses: Some(uses),
                },
            ))
            .await?;
            let token = response.token.unwrap_or_default();
            if cx.json {
                let mut value = token_json(&token);
                if let Some(object) = value.as_object_mut() {
                    object.insert("secret".into(), json!(response.secret));
                }
                Ok(render::pretty(&value))
            } else {
                Ok(format!(
                    "{}\n\ntoken id {} · {} use(s) · expires {}\nThe secret above is shown only once. Enroll a device with:\n  latchkey-agent enroll --server {} --ca ca.pem --token {}\n",
                    response.secret,
                    token.id,
                    token.uses_allowed,
                    time(token.expires_at),
                    cx.connection.server,
                    response.secret
                ))
            }
        }
        TokenCommand::List => {
            let tokens = call(
                cx.client
                    .list_enrollment_tokens(v1::ListEnrollmentTokensRequest {}),
            )
            .await?
            .tokens;
            if cx.json {
                Ok(render::pretty(&json!(
                    tokens.iter().map(token_json).collect::<Vec<_>>()
                )))
            } else {
                let mut table = Table::new(&[
                    "ID",
                    "USES",
                    "EXPIRES",
                    "STATUS",
                    "USER",
                    "GROUP",
                    "CREATED BY",
                ]);
                for t in &tokens {
                    table.row(vec![
                        t.id.clone(),
                        format!("{}/{}", t.uses_count, t.uses_allowed),
                        time(t.expires_at),
                        enums::token_status(t.status)?.to_owned(),
                        render::or_dash(&t.user).to_owned(),
                        render::or_dash(&t.group).to_owned(),
                        t.created_by.clone(),
                    ]);
                }
                Ok(table.render())
            }
        }
        TokenCommand::Revoke { id } => {
            let token = call(
                cx.client
                    .revoke_enrollment_token(v1::RevokeEnrollmentTokenRequest { id }),
            )
            .await?;
            if cx.json {
                Ok(render::pretty(&token_json(&token)))
            } else {
                Ok(format!("token {} revoked\n", token.id))
            }
        }
    }
}

fn token_json(t: &v1::EnrollmentToken) -> serde_json::Value {
    json!({
        "id": t.id,
        "user": (!t.user.is_empty()).then_some(&t.user),
        "group": (!t.group.is_empty()).then_some(&t.group),
        "expires_at": render::rfc3339(t.expires_at),
        "uses_allowed": t.uses_allowed,
        "uses_count": t.uses_count,
        "revoked": t.revoked,
        "created_by": t.created_by,
    })
}
