//! `latchctl policy`: saving a policy document from a TOML file, assigning
//! it to a group or a device, and showing it with where it applies.

use latchkey_proto::v1;
use serde_json::json;

use super::Context;
use crate::CliError;
use crate::args::PolicyCommand;
use crate::connect::read;
use crate::error::call;
use crate::render::{self, Fields, time};

pub async fn run(command: PolicyCommand, cx: &mut Context) -> Result<String, CliError> {
    match command {
        PolicyCommand::Set { name, file } => {
            let document = read(&file)?;
            let policy = call(
                cx.client
                    .set_policy(v1::SetPolicyRequest { name, document }),
            )
            .await?;
            if cx.json {
                Ok(render::pretty(&policy_json(&policy)))
            } else {
                Ok(format!(
                    "policy {} saved (version {})\n",
                    policy.name, policy.version
                ))
            }
        }
        PolicyCommand::Assign(args) => {
            let target = match (args.group, args.device) {
                (Some(g), _) => v1::assign_policy_request::Target::Group(g),
                (None, Some(d)) => v1::assign_policy_request::Target::DeviceId(d),
                (None, None) => {
                    return Err(CliError::Usage("pass --group G or --device ID".into()));
                }
            };
            let policy = call(cx.client.assign_policy(v1::AssignPolicyRequest {
                name: args.name,
                target: Some(target),
            }))
            .await?;
            if cx.json {
                Ok(render::pretty(&policy_json(&policy)))
            } else {
                Ok(format!(
                    "policy {} now applies to groups [{}] and devices [{}]\n",
                    policy.name,
                    policy.groups.join(", "),
                    policy.devices.join(", ")
                ))
            }
        }
        PolicyCommand::Show { name } => {
            let p = call(cx.client.get_policy(v1::GetPolicyRequest { name })).await?;
            if cx.json {
                Ok(render::pretty(&policy_json(&p)))
            } else {
                let mut f = Fields::default();
                f.add("name", &p.name);
                f.add("version", &p.version.to_string());
                f.add("updated", &time(p.updated_at));
                f.add("groups", &p.groups.join(", "));
                f.add("devices", &p.devices.join(", "));
                Ok(format!("{}\n{}", f.render(), p.document.trim_end()) + "\n")
            }
        }
    }
}

fn policy_json(p: &v1::Policy) -> serde_json::Value {
    json!({
        "name": p.name, "version": p.version, "updated_at": render::rfc3339(p.updated_at),
        "groups": p.groups, "devices": p.devices, "document": p.document,
    })
}
