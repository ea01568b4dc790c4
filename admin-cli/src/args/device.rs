//! `latchctl device`: devices, and the commands that change their state.

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    List,
    Show {
        id: String,
    },
    /// Lock a device, or many at once: the devices named, those in
    /// `--ids-from`, a `--group`'s or a `--user`'s. A locked device is cut
    /// off at once, before it acknowledges. Many devices get a plain lock:
    /// lost mode is for one device at a time, and a device in lost mode,
    /// retired or wiped is skipped with the reason.
    Lock {
        ids: Vec<String>,
        /// A file of device ids, one per line ("-" reads them from standard
        /// input).
        #[arg(long, value_name = "FILE")]
        ids_from: Option<std::path::PathBuf>,
        /// Every device enrolled into this group.
        #[arg(long, conflicts_with_all = ["ids", "ids_from", "user"])]
        group: Option<String>,
        /// Every device bound to this user (an email address).
        #[arg(long, conflicts_with_all = ["ids", "ids_from"])]
        user: Option<String>,
        /// Shown on the locked device.
        #[arg(long)]
        message: Option<String>,
        /// Lost mode (supervised iPhones and iPads): the device shows the
        /// message and the phone number and can be located until unlocked.
        #[arg(long)]
        lost: bool,
        /// A number to call, shown on an Apple device's lock screen.
        #[arg(long)]
        phone: Option<String>,
        /// Lost mode's footnote.
        #[arg(long)]
        footnote: Option<String>,
    },
    Unlock {
        id: String,
    },
    /// Ask a device in lost mode where it is; `command list` shows the
    /// answer.
    Locate {
        id: String,
    },
    /// Restart an Apple device.
    Restart {
        id: String,
    },
    /// Ask an Apple device which configuration profiles it has installed;
    /// `command list` shows the answer.
    Profiles {
        id: String,
    },
    /// Erase an Apple device, or remove an agent's key, certificates and
    /// managed data; revokes the device.
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
