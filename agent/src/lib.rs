//! latchkey-agent: the endpoint agent. It holds the device key, enrolls with
//! a token, keeps an mTLS MQTT session to the server, executes commands,
//! reports posture and renews its certificate. `main.rs` only parses
//! arguments; tests drive these functions in-process.

pub mod device_auth;
pub mod enroll;
pub mod keystore;
pub mod local;
pub mod platform;
pub mod policy;
pub mod run;
pub mod state;

use chrono::{DateTime, Utc};

use state::{StateDir, StateError};

/// The human-readable `latchkey-agent status` report.
pub fn status_report(state: &StateDir, now: DateTime<Utc>) -> Result<String, StateError> {
    let enrollment = state.enrollment()?;
    let mut out = String::new();
    let line = |out: &mut String, k: &str, v: &str| out.push_str(&format!("{k:<14} {v}\n"));
    line(&mut out, "device id", &enrollment.device_id);
    line(&mut out, "server", &enrollment.server_url);
    line(&mut out, "mqtt", &enrollment.mqtt_url);
    line(
        &mut out,
        "enrolled",
        &DateTime::from_timestamp(enrollment.enrolled_at, 0)
            .map_or_else(|| "?".to_owned(), |t| t.to_rfc3339()),
    );
    match latchkey_certs::inspect_pem(&state.certificate_chain()?) {
        Ok(info) => {
            let days = (info.not_after - now).num_days();
            let expiry = if info.not_after <= now {
                format!("{} (EXPIRED)", info.not_after.to_rfc3339())
            } else {
                format!("{} (in {days} days)", info.not_after.to_rfc3339())
            };
            line(&mut out, "certificate", &expiry);
        }
        Err(e) => line(&mut out, "certificate", &format!("unreadable: {e}")),
    }
    line(&mut out, "key", keystore::PROTECTION);
    let connection = match state.status()? {
        Some(s) if s.detail.is_empty() => s.state,
        Some(s) => format!("{} ({})", s.state, s.detail),
        None => "never connected (is `latchkey-agent run` running?)".to_owned(),
    };
    line(&mut out, "connection", &connection);
    let policy = match state.policy()? {
        Some(p) if p.name.is_empty() => {
            format!("default (posture every {}s)", p.posture_interval_seconds)
        }
        Some(p) => format!(
            "{} v{} (posture every {}s)",
            p.name, p.version, p.posture_interval_seconds
        ),
        None => "none received yet".to_owned(),
    };
    line(&mut out, "policy", &policy);
    Ok(out)
}
