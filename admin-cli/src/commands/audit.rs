//! `latchctl audit`: the audit log since a time before now.

use latchkey_proto::v1;
use serde_json::json;

use super::Context;
use crate::args::AuditArgs;
use crate::error::call;
use crate::render::{self, Table, time};
use crate::{CliError, enums};

pub async fn run(args: AuditArgs, cx: &mut Context) -> Result<String, CliError> {
    let since = latchkey_proto::text::parse_duration(&args.since)
        .map_err(|e| CliError::Usage(format!("--since: {e}")))?;
    let from = cx.now.timestamp() - i64::try_from(since.as_secs()).unwrap_or(i64::MAX / 2);
    let events = call(cx.client.list_audit(v1::ListAuditRequest {
        since: from,
        limit: 0,
    }))
    .await?
    .events;
    if cx.json {
        let events = events
            .iter()
            .map(|e| {
                Ok(json!({
                    "id": e.id, "at": render::rfc3339(e.at), "actor": e.actor, "action": e.action,
                    "target": e.target, "outcome": enums::audit_outcome(e.outcome)?, "detail": e.detail,
                }))
            })
            .collect::<Result<Vec<_>, CliError>>()?;
        Ok(render::pretty(&json!(events)))
    } else {
        let mut table = Table::new(&["TIME", "ACTOR", "ACTION", "TARGET", "OUTCOME", "DETAIL"]);
        for e in &events {
            table.row(vec![
                time(e.at),
                e.actor.clone(),
                e.action.clone(),
                e.target.clone(),
                enums::audit_outcome(e.outcome)?.to_owned(),
                e.detail.clone(),
            ]);
        }
        Ok(table.render())
    }
}
