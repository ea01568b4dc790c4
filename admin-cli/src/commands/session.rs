//! `latchctl login` and `latchctl whoami`: the admin the API token belongs
//! to, and saving the connection as the profile later calls use.

use latchkey_proto::v1;

use super::Context;
use super::admin::admin_json;
use crate::connect::{self, Environment};
use crate::error::call;
use crate::{CliError, enums, render};

pub async fn whoami(cx: &mut Context) -> Result<String, CliError> {
    let me = call(cx.client.who_am_i(v1::WhoAmIRequest {})).await?;
    if cx.json {
        Ok(render::pretty(&admin_json(&me)?))
    } else {
        Ok(format!("{} ({})\n", me.email, enums::role(me.role)?))
    }
}

/// Checks the connection with `WhoAmI`, then saves it as the profile.
pub async fn login(cx: &mut Context, env: &Environment) -> Result<String, CliError> {
    let me = call(cx.client.who_am_i(v1::WhoAmIRequest {})).await?;
    let path = env.profile_path().ok_or_else(|| {
        CliError::Usage("no config directory (set HOME or XDG_CONFIG_HOME)".into())
    })?;
    let role = enums::role(me.role)?;
    connect::save_profile(&cx.connection, &path)?;
    Ok(format!(
        "logged in to {} as {} ({role}); profile saved in {}\n",
        cx.connection.server,
        me.email,
        path.display()
    ))
}
