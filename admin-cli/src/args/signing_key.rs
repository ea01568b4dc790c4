//! `latchctl signing-key`: the SSO layer's token-signing keys.

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum SigningKeyCommand {
    /// Sign with a new key from now on; the old one stays published for 24h.
    Rotate,
    List,
}
