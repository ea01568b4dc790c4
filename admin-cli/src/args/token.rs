//! `latchctl token`: enrollment tokens.

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an enrollment token; its secret is shown once.
    Create {
        /// Bind devices enrolled with it to this user.
        #[arg(long)]
        user: Option<String>,
        /// Devices enrolled with it join this group.
        #[arg(long)]
        group: Option<String>,
        /// Lifetime, 1s to 365d, e.g. 24h or 7d.
        #[arg(long, default_value = "24h")]
        expires: String,
        /// How many devices may enroll with it, 1 to 1000000.
        #[arg(long, default_value_t = 1)]
        uses: u32,
    },
    List,
    Revoke {
        id: String,
    },
}
