//! `latchctl admin`: the admins who hold API tokens, and their roles.

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Add an admin; prints the new API token once.
    Add {
        email: String,
        // Read by the handler rather than by clap, so an unknown role is
        // refused with the words the server refuses it with.
        #[arg(long)]
        role: String,
    },
    List,
}
