//! `latchctl audit`: the audit log.

use clap::Args;

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// How far back, e.g. 1h or 7d.
    #[arg(long, default_value = "24h")]
    pub since: String,
}
