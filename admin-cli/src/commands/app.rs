//! `latchctl app`: registering, listing, changing and removing SSO apps;
//! a client secret is shown once, when it is created or rotated.

use latchkey_proto::v1;
use serde_json::json;

use super::Context;
use crate::args::AppCommand;
use crate::error::call;
use crate::render::{self, Table};
use crate::{CliError, enums};

pub async fn run(command: AppCommand, cx: &mut Context) -> Result<String, CliError> {
    match command {
        AppCommand::Add {
            name,
            redirect_uris,
            public,
            device,
            mfa,
            allow_ip,
            post_logout_redirect_uris,
            offline_access,
            refresh_lifetime,
        } => {
            let device = enums::parse_device_policy(&device)?;
            let mfa = enums::parse_mfa_policy(&mfa)?;
            let refresh_lifetime_seconds = refresh_lifetime
                .as_deref()
                .map(lifetime_seconds)
                .transpose()?;
            let r = call(cx.client.add_app(v1::AddAppRequest {
                name,
                redirect_uris,
                public,
                device: device.into(),
                mfa: mfa.into(),
                allowed_networks: allow_ip,
                post_logout_redirect_uris,
                offline_access,
                refresh_lifetime_seconds,
            }))
            .await?;
            app_with_secret_out(cx.json, "registered", r)
        }
        AppCommand::List => {
            let apps = call(cx.client.list_apps(v1::ListAppsRequest {}))
                .await?
                .apps;
            if cx.json {
                let apps = apps.iter().map(app_json).collect::<Result<Vec<_>, _>>()?;
                Ok(render::pretty(&json!(apps)))
            } else {
                let mut table = Table::new(&[
                    "NAME",
                    "CLIENT ID",
                    "TYPE",
                    "DEVICE",
                    "MFA",
                    "NETWORKS",
                    "REDIRECT URIS",
                ]);
                for a in &apps {
                    table.row(vec![
                        a.name.clone(),
                        a.client_id.clone(),
                        if a.public { "public" } else { "confidential" }.to_owned(),
                        enums::device_policy(a.device)?.to_owned(),
                        enums::mfa_policy(a.mfa)?.to_owned(),
                        if a.allowed_networks.is_empty() {
                            "any".to_owned()
                        } else {
                            a.allowed_networks.join(" ")
                        },
                        a.redirect_uris.join(" "),
                    ]);
                }
                Ok(table.render())
            }
        }
        AppCommand::Update {
            name,
            redirect_uris,
            device,
            mfa,
            allow_ip,
            any_ip,
            post_logout_redirect_uris,
            no_post_logout_redirect_uri,
            offline_access,
            refresh_lifetime,
            rotate_secret,
        } => {
            // Left out: unspecified, which keeps the app's current value.
            let device = device
                .as_deref()
                .map(enums::parse_device_policy)
                .transpose()?
                .unwrap_or(v1::DevicePolicy::Unspecified);
            let mfa = mfa
                .as_deref()
                .map(enums::parse_mfa_policy)
                .transpose()?
                .unwrap_or(v1::MfaPolicy::Unspecified);
            let refresh_lifetime_seconds = refresh_lifetime
                .as_deref()
                .map(lifetime_seconds)
                .transpose()?;
            let r = call(cx.client.update_app(v1::UpdateAppRequest {
                name,
                redirect_uris,
                device: device.into(),
                mfa: mfa.into(),
                rotate_secret,
                allowed_networks: allow_ip,
                allow_any_network: any_ip,
                post_logout_redirect_uris,
                clear_post_logout_redirect_uris: no_post_logout_redirect_uri,
                offline_access,
                refresh_lifetime_seconds,
            }))
            .await?;
            app_with_secret_out(cx.json, "updated", r)
        }
        AppCommand::Remove { name } => {
            let app = call(cx.client.remove_app(v1::RemoveAppRequest { name })).await?;
            if cx.json {
                Ok(render::pretty(&app_json(&app)?))
            } else {
                Ok(format!("app {} removed\n", app.name))
            }
        }
    }
}

/// `--refresh-lifetime 30d` in seconds (the server checks the range).
fn lifetime_seconds(text: &str) -> Result<i64, CliError> {
    let duration = latchkey_proto::text::parse_duration(text)
        .map_err(|e| CliError::Usage(format!("--refresh-lifetime {text}: {e}")))?;
    Ok(i64::try_from(duration.as_secs()).unwrap_or(i64::MAX))
}

fn app_json(a: &v1::App) -> Result<serde_json::Value, CliError> {
    Ok(json!({
        "name": a.name, "client_id": a.client_id, "public": a.public,
        "redirect_uris": a.redirect_uris,
        "device": enums::device_policy(a.device)?, "mfa": enums::mfa_policy(a.mfa)?,
        "allowed_networks": a.allowed_networks,
        "post_logout_redirect_uris": a.post_logout_redirect_uris,
        "offline_access": a.offline_access,
        "refresh_lifetime": latchkey_proto::text::format_duration(
            std::time::Duration::from_secs(u64::try_from(a.refresh_lifetime_seconds).unwrap_or(0))
        ),
        "created_at": render::rfc3339(a.created_at), "updated_at": render::rfc3339(a.updated_at),
    }))
}

fn app_with_secret_out(json: bool, verb: &str, r: v1::AppWithSecret) -> Result<String, CliError> {
    let app = r.app.unwrap_or_default();
    if json {
        let mut value = app_json(&app)?;
        if !r.client_secret.is_empty()
            && let Some(object) = value.as_object_mut()
        {
            object.insert("client_secret".into(), json!(r.client_secret));
        }
        return Ok(render::pretty(&value));
    }
    let mut out = format!(
        "app {} {verb}\nclient id      {}\n",
        app.name, app.client_id
    );
    if !r.client_secret.is_empty() {
        out.push_str(&format!(
            "client secret  {}\n(the secret is shown only once)\n",
            r.client_secret
        ));
    }
    Ok(out)
}
