//! latchkeyd: parse arguments, load configuration, start the server and stop
//! it cleanly on SIGTERM or Ctrl-C.
//!
//! A daemon's stdout may be a closed pipe (the process that started it went
//! away), so nothing here uses `println!`, which panics when a write fails:
//! [`say`] drops the line instead, and the log writer ignores its errors.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use latchkeyd::{FileConfig, Listeners, Overrides};
use tokio_util::sync::CancellationToken;

/// Latchkey server: device management and device-bound login.
#[derive(Parser)]
#[command(name = "latchkeyd", version)]
struct Args {
    /// TOML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory (CA, database, admin token). Default ./latchkey-data.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// gRPC listen address (admin and device API). Default 127.0.0.1:7443.
    #[arg(long, value_name = "ADDR")]
    listen_grpc: Option<String>,
    /// MQTT over TLS listen address of the embedded broker. Default 127.0.0.1:8883.
    #[arg(long, value_name = "ADDR")]
    listen_mqtt: Option<String>,
    /// HTTPS listen address. Default 127.0.0.1:8443.
    #[arg(long, value_name = "ADDR")]
    listen_https: Option<String>,
    /// HTTPS listener that asks for a device certificate (device-bound
    /// login from phones and tablets). Default 127.0.0.1:8444.
    #[arg(long, value_name = "ADDR")]
    listen_https_device: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LATCHKEY_LOG")
                .unwrap_or_else(|_| "info,sqlx=warn,sea_orm_migration=warn,rumqttd=off".into()),
        )
        // A failed log write would otherwise be reported with eprintln!,
        // which panics when stderr is closed as well.
        .log_internal_errors(false)
        .init();
    match latchkeyd::descriptors::raise_soft_to_hard() {
        Ok(Some(limit)) => tracing::info!(
            soft = ?limit.soft,
            hard = ?limit.hard,
            "open-descriptor limit raised to the hard limit"
        ),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-descriptor limit"),
    }
    let args = Args::parse();
    let file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let config = file.validate(Overrides {
        data_dir: args.data_dir,
        listen_grpc: args.listen_grpc,
        listen_mqtt: args.listen_mqtt,
        listen_https: args.listen_https,
        listen_https_device: args.listen_https_device,
    })?;
    let listeners = Listeners::bind(&config).await?;
    let shutdown = CancellationToken::new();
    let running = latchkeyd::start(config, listeners, shutdown.clone())
        .await
        .context("latchkeyd could not start")?;
    say(format_args!("latchkeyd is running"));
    say(format_args!(
        "  gRPC (admin + device API)  https://{}",
        running.grpc_addr
    ));
    match running.mqtt_addr {
        Some(addr) => say(format_args!("  MQTT (embedded broker)     mqtts://{addr}")),
        None => say(format_args!(
            "  MQTT (external broker)     {}",
            running.mqtt_url
        )),
    }
    say(format_args!(
        "  HTTPS                      https://{}",
        running.https_addr
    ));
    say(format_args!(
        "  Device sign-in (mTLS)      https://{}",
        running.https_device_addr
    ));
    say(format_args!(
        "  CA certificate             {}",
        running.ca_path.display()
    ));
    if let Some(path) = &running.admin_token_path {
        say(format_args!(
            "  owner API token written to {}",
            path.display()
        ));
    }
    wait_for_signal().await;
    say(format_args!("latchkeyd: shutting down"));
    shutdown.cancel();
    running.wait().await;
    Ok(())
}

/// Writes a line to stdout for whoever started the server, or drops it
/// when stdout is gone: a daemon carries on without its audience.
fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
