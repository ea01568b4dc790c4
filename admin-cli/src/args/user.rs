//! `latchctl user`: the people who sign in through Latchkey.

use std::path::PathBuf;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user.
    Add {
        email: String,
        #[arg(long)]
        name: String,
        /// A group to join; repeat for more.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// A break-glass account: skips the device requirement, loudly audited.
        #[arg(long)]
        break_glass: bool,
    },
    /// Add users from a CSV file (header: email,name,groups,role).
    Import {
        file: PathBuf,
    },
    List,
    Show {
        email: String,
    },
    /// The user can no longer log in; `activate` undoes it.
    Suspend {
        email: String,
    },
    Activate {
        email: String,
    },
    /// The user can no longer log in; kept for the audit trail.
    Delete {
        email: String,
    },
    /// Set a temporary password (valid 7 days, changed at first sign-in).
    ResetPassword {
        email: String,
    },
    /// For a user who lost their authenticator app: removes it, ends their
    /// sessions and prints a temporary password, with which they set up a
    /// new one at the next sign-in. Confirm who is asking first.
    ResetMfa {
        email: String,
    },
}
