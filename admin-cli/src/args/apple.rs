//! `latchctl apple`: Apple devices' push certificate and MDM status.

use std::path::PathBuf;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum AppleCommand {
    /// The APNs push certificate that wakes Apple devices.
    #[command(subcommand)]
    PushCert(PushCertCommand),
    /// The push certificate's topic and expiry, and what needs doing.
    Status,
    /// Write an enrollment profile (.mobileconfig) to standard output. Its
    /// one-time SCEP challenge enrolls one device, within 7 days.
    Profile {
        /// Bind the enrolled device to this user.
        #[arg(long)]
        user: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PushCertCommand {
    /// Import the MDM push certificate Apple issued, with its private key.
    /// The topic is read from the certificate.
    Import {
        /// The push certificate (PEM).
        #[arg(long)]
        cert: PathBuf,
        /// Its private key (PEM, unencrypted).
        #[arg(long)]
        key: PathBuf,
        /// Accept a certificate for another topic than the one in use:
        /// every Apple device enrolled so far must enroll again.
        #[arg(long)]
        force: bool,
    },
}
