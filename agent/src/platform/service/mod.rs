//! Installation of the agent as a background service, with the `latchkey://` handler:
//! one file per service manager (`linux.rs` systemd, `macos.rs` launchd, `windows.rs` the
//! service control manager), and here what they share: the spec, the error, atomic
//! service files, directories and the one way to run an installer's tool.
//!
//! The renderers are pure so that every platform's output is unit-tested on any build host;
//! only [`install`] touches the system.

mod linux;
mod macos;
mod windows;

use std::io;
use std::path::{Path, PathBuf};
#[cfg_attr(
    not(any(target_os = "linux", target_os = "macos", target_os = "windows")),
    allow(unused_imports)
)]
use std::time::Duration;

#[cfg(target_os = "linux")]
use linux::install as install_for_this_os;
pub use linux::{
    SYSTEMD_UNIT_NAME, URL_HANDLER_DESKTOP_FILE, install_to, systemd_unit,
    url_handler_desktop_entry,
};
#[cfg(target_os = "macos")]
use macos::install as install_for_this_os;
pub use macos::{
    LAUNCHD_LABEL, MACOS_SOCKET_DIR, MACOS_URL_APPLET, MACOS_URL_APPLET_ID, launchd_plist,
    macos_url_applet_info_plist, macos_url_applet_script,
};
#[cfg(target_os = "windows")]
use windows::install as install_for_this_os;
pub use windows::{
    WINDOWS_SERVICE_NAME, WINDOWS_URL_KEY, windows_sc_args, windows_url_handler_reg_args,
};

/// What to run as the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// The agent binary. It should be absolute; [`install`] makes it so.
    pub executable: PathBuf,
    /// Directory holding the agent's key and enrollment state, passed as `--state-dir`.
    pub state_dir: PathBuf,
}

/// Why installation failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// A file or directory could not be written.
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: io::Error },
    /// A service-manager command failed.
    #[error("{program} failed: {detail}")]
    CommandFailed { program: String, detail: String },
    /// This operating system has no supported service manager.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
}

/// Service managers may wait for the agent to start, so they get longer than a query.
#[cfg_attr(
    not(any(target_os = "linux", target_os = "macos", target_os = "windows")),
    allow(dead_code)
)]
const INSTALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Installs, enables and starts the agent as a system service, returning a report of what
/// was done. It must run as root/Administrator.
pub fn install(spec: &ServiceSpec) -> Result<String, InstallError> {
    install_for_this_os(spec)
}

#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
fn install_for_this_os(_spec: &ServiceSpec) -> Result<String, InstallError> {
    Err(InstallError::Unsupported(
        "service installation is supported on Linux (systemd), macOS and Windows only",
    ))
}

/// Writes a service definition through a hidden sibling file and a rename, so the service
/// manager never reads a half-written file, and makes it world-readable but root-writable as
/// systemd and launchd expect.
fn write_service_file(path: &Path, contents: &[u8]) -> Result<(), InstallError> {
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned());
    let temporary = path.with_file_name(format!(
        ".{}.tmp",
        file_name.as_deref().unwrap_or("latchkey-agent")
    ));
    let result = std::fs::write(&temporary, contents)
        .and_then(|()| set_mode(&temporary, 0o644))
        .map_err(|source| io_error(&temporary, source))
        .and_then(|()| std::fs::rename(&temporary, path).map_err(|source| io_error(path, source)));
    if result.is_err() {
        // The temporary file is useless after a failure; it may not even exist.
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

fn io_error(path: &Path, source: io::Error) -> InstallError {
    InstallError::Io {
        path: path.to_owned(),
        source,
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Windows files inherit the directory's ACL, which is what the service manager expects.
#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> io::Result<()> {
    Ok(())
}

/// Makes both paths absolute, because service managers start the agent from a different
/// working directory than the installer's.
#[cfg_attr(
    not(any(target_os = "linux", target_os = "macos", target_os = "windows")),
    allow(dead_code)
)]
fn absolute_spec(spec: &ServiceSpec) -> Result<ServiceSpec, InstallError> {
    let absolute = |path: &Path| std::path::absolute(path).map_err(|source| io_error(path, source));
    Ok(ServiceSpec {
        executable: absolute(&spec.executable)?,
        state_dir: absolute(&spec.state_dir)?,
    })
}

/// Creates a directory the agent needs, readable only by root on Unix when `private`, since
/// the state directory holds the device's private key.
#[cfg_attr(
    not(any(target_os = "linux", target_os = "macos", target_os = "windows")),
    allow(dead_code)
)]
fn create_dir(path: &Path, private: bool) -> Result<(), InstallError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(if private { 0o700 } else { 0o755 });
    }
    #[cfg(not(unix))]
    let _ = private;
    builder
        .create(path)
        .map_err(|source| io_error(path, source))
}

/// Runs one service-manager command, turning its failure into an [`InstallError`].
#[cfg_attr(
    not(any(target_os = "linux", target_os = "macos", target_os = "windows")),
    allow(dead_code)
)]
fn run_step(program: &str, args: &[&str]) -> Result<(), InstallError> {
    super::run_checked(program, args, INSTALL_TIMEOUT)
        .map(drop)
        .map_err(|detail| InstallError::CommandFailed {
            program: program.to_owned(),
            detail: detail.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_display_their_cause() {
        let io = io_error(
            Path::new("/etc/x"),
            io::Error::from(io::ErrorKind::PermissionDenied),
        );
        assert!(io.to_string().starts_with("/etc/x: "), "{io}");
        assert!(std::error::Error::source(&io).is_some());
        let failed = InstallError::CommandFailed {
            program: "systemctl".to_owned(),
            detail: "exit status: 1".to_owned(),
        };
        assert_eq!(failed.to_string(), "systemctl failed: exit status: 1");
        assert_eq!(
            InstallError::Unsupported("no service manager").to_string(),
            "unsupported: no service manager"
        );
    }
}
