//! `latchctl command`: the commands sent to a device.

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum CommandCommand {
    /// Commands of one device, oldest first.
    List { device_id: String },
}
