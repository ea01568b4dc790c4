//! `latchctl device`: devices, and the commands that change their state.

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    List,
    Show {
        id: String,
    },
    /// Lock the device; it is cut off at once, before the agent acknowledges.
    Lock {
        id: String,
        #[arg(long)]
        message: Option<String>,
    },
    Unlock {
        id: String,
    },
    /// Remove the agent's key, certificates and managed data; revokes the device.
    Wipe {
        id: String,
        /// Required: wiping cannot be undone.
        #[arg(long)]
        confirm: bool,
    },
    /// Revoke the device's certificates and end its membership.
    Retire {
        id: String,
    },
    /// Bind the device to the one user it belongs to.
    Assign {
        id: String,
        #[arg(long)]
        user: String,
    },
}
