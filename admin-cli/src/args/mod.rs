//! latchctl's arguments (clap derive): the global connection and output
//! flags and one subcommand per noun, each noun's subcommands in its own
//! file. Nothing here talks to the server; `commands` runs what is parsed.

mod admin;
mod app;
mod apple;
mod audit;
mod command;
mod device;
mod group;
mod policy;
mod signing_key;
mod token;
mod user;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use admin::AdminCommand;
pub use app::AppCommand;
pub use apple::{AppleCommand, DepCommand, PushCertCommand};
pub use audit::AuditArgs;
pub use command::CommandCommand;
pub use device::DeviceCommand;
pub use group::GroupCommand;
pub use policy::{AssignArgs, PolicyCommand};
pub use signing_key::SigningKeyCommand;
pub use token::TokenCommand;
pub use user::UserCommand;

/// Latchkey admin command line.
#[derive(Debug, Parser)]
#[command(name = "latchctl", version)]
pub struct Cli {
    /// gRPC URL of latchkeyd, e.g. https://localhost:7443 [env: LATCHKEY_SERVER]
    #[arg(long, global = true)]
    pub server: Option<String>,
    /// The server's CA certificate (ca.pem) [env: LATCHKEY_CA]
    #[arg(long, global = true)]
    pub ca: Option<PathBuf>,
    /// File holding the admin API token [env: LATCHKEY_TOKEN holds the token itself]
    #[arg(long, global = true)]
    pub token_file: Option<PathBuf>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Save the connection (server, CA, token) as the default profile.
    Login,
    /// Show who the token belongs to.
    Whoami,
    /// Enrollment tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Devices.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Commands sent to devices.
    #[command(subcommand)]
    Command(CommandCommand),
    /// Policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Users who log in through Latchkey.
    #[command(subcommand)]
    User(UserCommand),
    /// Groups of users (and of devices, through enrollment tokens).
    #[command(subcommand)]
    Group(GroupCommand),
    /// SSO apps (OpenID Connect clients) and their access policy.
    #[command(subcommand)]
    App(AppCommand),
    /// The SSO layer's token-signing keys (published at /jwks.json).
    #[command(subcommand)]
    SigningKey(SigningKeyCommand),
    /// Admins and their roles.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The audit log.
    Audit(AuditArgs),
    /// Apple devices: the APNs push certificate, enrollment, status.
    #[command(subcommand)]
    Apple(AppleCommand),
}
