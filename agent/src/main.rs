//! latchkey-agent: argument parsing and dispatch.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use latchkey_agent::platform::service;
use latchkey_agent::run::{RunOptions, RunOutcome};
use latchkey_agent::state::StateDir;
use tokio_util::sync::CancellationToken;

/// Latchkey endpoint agent.
#[derive(Parser)]
#[command(name = "latchkey-agent", version)]
struct Args {
    /// Where the agent keeps its key, certificates and state.
    #[arg(long, global = true, env = "LATCHKEY_AGENT_STATE_DIR", default_value_os_t = default_state_dir())]
    state_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enroll this device with an enrollment token.
    Enroll {
        /// gRPC URL of the server, e.g. https://localhost:7443.
        #[arg(long)]
        server: String,
        /// The enrollment token (lke_…).
        #[arg(long, env = "LATCHKEY_ENROLL_TOKEN")]
        token: String,
        /// The server's CA certificate (the server's data dir holds ca.pem).
        #[arg(long)]
        ca: Option<PathBuf>,
    },
    /// Stay connected: execute commands, report posture, renew the certificate.
    Run {
        /// Execute nothing; acknowledge every command with result "dry-run".
        #[arg(long)]
        dry_run: bool,
        /// Where the local channel for `open-url` listens (default: the
        /// service's runtime directory, else the state directory).
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// Hand a `latchkey://device-auth?txn=…` sign-in link to the running
    /// agent (the URL handler the browser calls); open the confirmation in
    /// the default browser, or show its code when it cannot arrive.
    OpenUrl {
        url: String,
        /// The running agent's socket, when it is not in the usual places.
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// Show enrollment, certificate expiry and connection state.
    Status,
    /// Install and start the agent as a system service (systemd, launchd, Windows service).
    InstallService,
}

fn default_state_dir() -> PathBuf {
    if cfg!(target_os = "windows") {
        PathBuf::from(r"C:\ProgramData\Latchkey")
    } else if cfg!(target_os = "macos") {
        PathBuf::from("/Library/Application Support/Latchkey")
    } else {
        PathBuf::from("/var/lib/latchkey-agent")
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LATCHKEY_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let state = StateDir::new(&args.state_dir);
    match args.command {
        Command::Enroll { server, token, ca } => {
            let ca_pem = match ca {
                Some(path) => std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read the CA file {}", path.display()))?,
                None => state.ca()?.context(
                    "pass --ca FILE: the server's CA certificate (ca.pem in its data directory)",
                )?,
            };
            let enrollment =
                latchkey_agent::enroll::enroll(&state, &server, &token, &ca_pem).await?;
            println!("enrolled as device {}", enrollment.device_id);
            println!("state in {}", state.path().display());
            println!(
                "next: latchkey-agent --state-dir {} run",
                state.path().display()
            );
        }
        Command::OpenUrl { url, socket } => {
            #[cfg(unix)]
            {
                let sockets = match socket {
                    Some(path) => vec![path],
                    None => latchkey_agent::local::socket_candidates(&state),
                };
                let browser = std::env::var("BROWSER").ok();
                let report =
                    latchkey_agent::local::open_url(&sockets, &url, browser.as_deref()).await?;
                println!("{}", report.message);
                if !report.confirmed {
                    std::process::exit(1);
                }
            }
            #[cfg(not(unix))]
            {
                let _ = (url, socket);
                anyhow::bail!("open-url needs the local channel, which this platform lacks yet");
            }
        }
        Command::Run { dry_run, socket } => {
            let shutdown = CancellationToken::new();
            let signal = shutdown.clone();
            tokio::spawn(async move {
                wait_for_signal().await;
                signal.cancel();
            });
            let options = RunOptions {
                dry_run,
                socket,
                ..RunOptions::default()
            };
            match latchkey_agent::run::run(&state, &options, shutdown).await? {
                RunOutcome::Stopped => {}
                RunOutcome::Wiped => println!("this device was wiped and is no longer enrolled"),
            }
        }
        Command::Status => {
            print!(
                "{}",
                latchkey_agent::status_report(&state, chrono::Utc::now())?
            );
        }
        Command::InstallService => {
            let executable = std::env::current_exe().context("cannot find this executable")?;
            let spec = service::ServiceSpec {
                executable,
                state_dir: args.state_dir,
            };
            println!("{}", service::install(&spec)?);
        }
    }
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
