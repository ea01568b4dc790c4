//! latchctl: the admin command line over the gRPC `AdminService`.
//! [`run`] takes parsed arguments and an [`Environment`] and returns the
//! text to print, so tests drive exactly what an admin types.
//!
//! `args` holds what can be typed, `commands` what each noun does with it,
//! `connect` where the connection comes from, `render` how answers print
//! and `enums` the words for the server's enum values.

mod args;
mod commands;
mod connect;
mod enums;
mod error;
mod import;
mod render;

use chrono::Utc;

pub use args::{
    AdminCommand, AppCommand, AppleCommand, AssignArgs, AuditArgs, Cli, Command, CommandCommand,
    DeviceCommand, GroupCommand, PolicyCommand, SigningKeyCommand, TokenCommand, UserCommand,
};
pub use connect::Environment;
pub use error::CliError;

use commands::{
    Context, admin, app, apple, audit, command, device, group, policy, session, signing_key, token,
    user,
};

/// Executes one latchctl invocation and returns what it prints.
pub async fn run(cli: Cli, env: &Environment) -> Result<String, CliError> {
    let connection = connect::resolve(&cli, env)?;
    let client = connect::connect(&connection).await?;
    let mut cx = Context {
        client,
        connection,
        json: cli.json,
        now: Utc::now(),
    };
    match cli.command {
        Command::Login => session::login(&mut cx, env).await,
        Command::Whoami => session::whoami(&mut cx).await,
        Command::Token(c) => token::run(c, &mut cx).await,
        Command::Device(c) => device::run(c, &mut cx).await,
        Command::Command(c) => command::run(c, &mut cx).await,
        Command::Policy(c) => policy::run(c, &mut cx).await,
        Command::User(c) => user::run(c, &mut cx).await,
        Command::Group(c) => group::run(c, &mut cx).await,
        Command::App(c) => app::run(c, &mut cx).await,
        Command::SigningKey(c) => signing_key::run(c, &mut cx).await,
        Command::Admin(c) => admin::run(c, &mut cx).await,
        Command::Audit(args) => audit::run(args, &mut cx).await,
        Command::Apple(c) => apple::run(c, &mut cx).await,
    }
}
