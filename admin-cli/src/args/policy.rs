//! `latchctl policy`: policy documents and where they apply.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Create or replace a policy from a TOML file.
    Set {
        name: String,
        file: PathBuf,
    },
    /// Assign a policy to a group or a device.
    Assign(AssignArgs),
    Show {
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct AssignArgs {
    pub name: String,
    /// Every device in this group (set by the enrollment token).
    #[arg(long, conflicts_with = "device", required_unless_present = "device")]
    pub group: Option<String>,
    /// One device; a device assignment wins over its group's.
    #[arg(long)]
    pub device: Option<String>,
}
