//! `latchctl signing-key`: rotating the SSO layer's token-signing key and
//! listing the keys with when each was retired.

use latchkey_proto::v1;
use serde_json::json;

use super::Context;
use crate::CliError;
use crate::args::SigningKeyCommand;
use crate::error::call;
use crate::render::{self, Table, time};

pub async fn run(command: SigningKeyCommand, cx: &mut Context) -> Result<String, CliError> {
    match command {
        SigningKeyCommand::Rotate => {
            let key = call(cx.client.rotate_signing_key(v1::RotateSigningKeyRequest {})).await?;
            if cx.json {
                Ok(render::pretty(
                    &json!({"kid": key.kid, "created_at": render::rfc3339(key.created_at)}),
                ))
            } else {
                Ok(format!(
                    "signing key {} is now active; the previous key stays published for 24h\n",
                    key.kid
                ))
            }
        }
        SigningKeyCommand::List => {
            let keys = call(cx.client.list_signing_keys(v1::ListSigningKeysRequest {}))
                .await?
                .keys;
            if cx.json {
                Ok(render::pretty(&json!(
                    keys.iter()
                        .map(|k| json!({
                            "kid": k.kid,
                            "created_at": render::rfc3339(k.created_at),
                            "retired_at": render::rfc3339(k.retired_at),
                            "active": k.retired_at == 0,
                        }))
                        .collect::<Vec<_>>()
                )))
            } else {
                let mut table = Table::new(&["KID", "CREATED", "STATE"]);
                for k in &keys {
                    let state = if k.retired_at == 0 {
                        "active".to_owned()
                    } else {
                        format!("retired {}", time(k.retired_at))
                    };
                    table.row(vec![k.kid.clone(), time(k.created_at), state]);
                }
                Ok(table.render())
            }
        }
    }
}
