//! What each latchctl subcommand does: one file per noun, each calling the
//! server and rendering its answer as text or JSON. Handlers take parsed
//! arguments and a [`Context`] and return what latchctl prints.

pub mod admin;
pub mod app;
pub mod apple;
pub mod audit;
pub mod command;
pub mod device;
pub mod group;
pub mod policy;
pub mod session;
pub mod signing_key;
pub mod token;
pub mod user;

use chrono::{DateTime, Utc};

use crate::connect::{Client, Connection};

/// What every handler works with.
pub struct Context {
    pub client: Client,
    /// The connection the client was made from (`login` saves it, and
    /// `token create` names the server in its enroll line).
    pub connection: Connection,
    /// `--json`: print JSON instead of text.
    pub json: bool,
    /// latchctl's clock, read once per invocation, for "5m ago" and `--since`.
    pub now: DateTime<Utc>,
}
