//! `latchctl apple`: Apple devices' push certificate, MDM status,
//! enrollment profiles and Automated Device Enrollment.

use std::path::PathBuf;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum AppleCommand {
    /// The APNs push certificate that wakes Apple devices.
    #[command(subcommand)]
    PushCert(PushCertCommand),
    /// Automated Device Enrollment: Apple Business Manager's tokens and
    /// the devices they list.
    #[command(subcommand)]
    Dep(DepCommand),
    /// The push certificate's topic and expiry, and what needs doing.
    Status,
    /// Write an enrollment profile (.mobileconfig) to standard output. Its
    /// one-time SCEP challenge enrolls one device, within 7 days.
    Profile {
        /// Bind the enrolled device to this user.
        #[arg(long)]
        user: Option<String>,
    },
    /// Renew an Apple device's MDM identity certificate now, whatever its
    /// expiry (the server renews each within `[apple]
    /// identity_renewal_days` of expiry by itself): the device is sent a
    /// refreshed enrollment profile; a renewal under way is replaced.
    RenewIdentity {
        /// The device id.
        id: String,
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

#[derive(Debug, Subcommand)]
pub enum DepCommand {
    /// Make the key pair for a token (or show the one it has) and print
    /// the certificate to upload to Apple Business Manager.
    Keypair {
        /// The token's name (default: "default").
        #[arg(long)]
        name: Option<String>,
    },
    /// Import the token file (.p7m) Apple Business Manager made for the
    /// key pair's certificate; it is checked with Apple before it is kept.
    ImportToken {
        /// The .p7m file, as downloaded.
        file: PathBuf,
        #[arg(long)]
        name: Option<String>,
    },
    /// Sync the token's devices with Apple now, showing progress.
    Sync {
        #[arg(long)]
        name: Option<String>,
    },
    /// Forget the token's cursor: the next sync fetches every device again.
    ResetCursor {
        #[arg(long)]
        name: Option<String>,
    },
    /// Every token: its server, expiry, last sync and device count.
    Status,
}
