//! `latchctl group`: groups of users, and of devices through tokens.

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    Add { name: String },
    List,
}
