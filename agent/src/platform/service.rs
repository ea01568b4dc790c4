//! Installation of the agent as a background service: rendering the systemd unit, the
//! launchd property list and the `sc.exe` arguments, and registering the service with the
//! local service manager.
//!
//! The renderers are pure so that every platform's output is unit-tested on any build host;
//! only [`install`] touches the system.

use std::io;
use std::path::{Path, PathBuf};
#[cfg_attr(
    not(any(target_os = "linux", target_os = "macos", target_os = "windows")),
    allow(unused_imports)
)]
use std::time::Duration;

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

/// File name of the systemd unit.
pub const SYSTEMD_UNIT_NAME: &str = "latchkey-agent.service";
/// launchd job label, which is also the plist's file name stem.
pub const LAUNCHD_LABEL: &str = "jp.latchkey.agent";
/// Name the service is registered under with the Windows service control manager.
pub const WINDOWS_SERVICE_NAME: &str = "LatchkeyAgent";

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
const SYSTEMD_UNIT_DIR: &str = "/etc/systemd/system";
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
const LAUNCHD_PLIST_PATH: &str = "/Library/LaunchDaemons/jp.latchkey.agent.plist";
const LAUNCHD_LOG_DIR: &str = "/Library/Logs/Latchkey";

/// Service managers may wait for the agent to start, so they get longer than a query.
#[cfg_attr(
    not(any(target_os = "linux", target_os = "macos", target_os = "windows")),
    allow(dead_code)
)]
const INSTALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Renders the systemd unit that runs `<executable> --state-dir <state_dir> run` as root.
///
/// The hardening keeps the agent able to run `loginctl`, `nft` and `iptables`: it forbids
/// gaining privileges, makes /usr, /boot and /etc read-only, home directories read-only and
/// /tmp private, and leaves the state directory writable even where those rules would not.
pub fn systemd_unit(spec: &ServiceSpec) -> String {
    let exec_start = [
        spec.executable.to_string_lossy().into_owned(),
        "--state-dir".to_owned(),
        spec.state_dir.to_string_lossy().into_owned(),
        "run".to_owned(),
    ]
    .iter()
    .map(|word| systemd_word(word, true))
    .collect::<Vec<_>>()
    .join(" ");
    let state_dir = systemd_word(&spec.state_dir.to_string_lossy(), false);
    format!(
        "# Written by latchkey-agent; reinstalling the agent overwrites this file.
[Unit]
Description=Latchkey agent
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart={exec_start}
Restart=always
RestartSec=5s
NoNewPrivileges=yes
ProtectSystem=full
ProtectHome=read-only
PrivateTmp=yes
ReadWritePaths={state_dir}
# The open-url socket: reachable by desktop users, unlike the state dir.
RuntimeDirectory=latchkey-agent
RuntimeDirectoryMode=0755

[Install]
WantedBy=multi-user.target
"
    )
}

/// Quotes one word for a systemd setting.
///
/// systemd splits settings at whitespace, honours double quotes with C-style escapes, expands
/// `%` specifiers everywhere and `$` variables in `Exec*=` lines, so `%` and (for `ExecStart`)
/// `$` are doubled and anything unusual is double-quoted.
fn systemd_word(word: &str, exec_line: bool) -> String {
    let needs_quotes = word.is_empty()
        || word
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\' | ';'));
    let mut escaped = String::with_capacity(word.len().saturating_add(2));
    for c in word.chars() {
        match c {
            '%' => escaped.push_str("%%"),
            '$' if exec_line => escaped.push_str("$$"),
            '"' | '\\' => {
                escaped.push('\\');
                escaped.push(c);
            }
            // A raw newline would end the setting; systemd decodes \u escapes in quotes.
            c if c.is_control() => escaped.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => escaped.push(c),
        }
    }
    if needs_quotes {
        format!("\"{escaped}\"")
    } else {
        escaped
    }
}

/// Where the macOS service listens for `open-url` hand-offs.
pub const MACOS_SOCKET_DIR: &str = "/var/run/latchkey-agent";

/// Renders the launchd property list for `/Library/LaunchDaemons`, which runs the agent as
/// root at boot, restarts it whenever it exits and sends its output to
/// `/Library/Logs/Latchkey/agent.log`.
pub fn launchd_plist(spec: &ServiceSpec) -> String {
    let arguments = [
        spec.executable.to_string_lossy().into_owned(),
        "--state-dir".to_owned(),
        spec.state_dir.to_string_lossy().into_owned(),
        "run".to_owned(),
    ]
    .iter()
    .map(|argument| format!("\t\t<string>{}</string>\n", xml_escape(argument)))
    .collect::<String>();
    let log = xml_escape(&format!("{LAUNCHD_LOG_DIR}/agent.log"));
    let label = xml_escape(LAUNCHD_LABEL);
    // The open-url socket lives where desktop users can reach it (the
    // state directory is root's alone); the agent creates the directory,
    // since /var/run is emptied at every boot.
    let socket_dir = xml_escape(MACOS_SOCKET_DIR);
    // ThrottleInterval mirrors systemd's RestartSec so a crashing agent is not respawned in
    // a tight loop.
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>{label}</string>
	<key>ProgramArguments</key>
	<array>
{arguments}	</array>
	<key>RunAtLoad</key>
	<true/>
	<key>KeepAlive</key>
	<true/>
	<key>ThrottleInterval</key>
	<integer>5</integer>
	<key>EnvironmentVariables</key>
	<dict>
		<key>RUNTIME_DIRECTORY</key>
		<string>{socket_dir}</string>
	</dict>
	<key>StandardOutPath</key>
	<string>{log}</string>
	<key>StandardErrorPath</key>
	<string>{log}</string>
</dict>
</plist>
"#
    )
}

/// Escapes text for an XML element or attribute. Control characters other than tab and line
/// breaks cannot appear in XML 1.0 at all, not even as references, so they are replaced.
fn xml_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            '\t' | '\n' | '\r' => escaped.push(c),
            c if c < ' ' => escaped.push(char::REPLACEMENT_CHARACTER),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Returns the arguments for `sc.exe` that register the agent as an auto-start service:
/// `create LatchkeyAgent binPath= "\"<exe>\" --state-dir \"<dir>\" run" start= auto
/// DisplayName= "Latchkey Agent"`.
///
/// The service control manager starts the agent's `run` command and then expects the
/// process to speak the service control protocol. That dispatcher lives in the agent's
/// `main` (added with a small `windows-service` dependency behind `cfg(windows)`), not here.
///
/// The executable is always quoted, because an unquoted path with spaces lets Windows try
/// `C:\Program.exe` first; arguments are quoted by the rules the agent's own command-line
/// parser applies, so a directory ending in `\` survives intact.
pub fn windows_sc_args(spec: &ServiceSpec) -> Vec<String> {
    let bin_path = format!(
        "\"{}\" --state-dir {} run",
        spec.executable.to_string_lossy(),
        windows_quote_argument(&spec.state_dir.to_string_lossy()),
    );
    [
        "create",
        WINDOWS_SERVICE_NAME,
        "binPath=",
        &bin_path,
        "start=",
        "auto",
        "DisplayName=",
        "Latchkey Agent",
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect()
}

/// Quotes one argument by the Microsoft C runtime rules: backslashes are literal unless they
/// precede a quote, in which case they must be doubled.
fn windows_quote_argument(argument: &str) -> String {
    let mut quoted = String::from('"');
    let mut backslashes = 0usize;
    for c in argument.chars() {
        match c {
            '\\' => backslashes = backslashes.saturating_add(1),
            '"' => {
                quoted.push_str(&"\\".repeat(backslashes.saturating_mul(2).saturating_add(1)));
                quoted.push('"');
                backslashes = 0;
            }
            c => {
                quoted.push_str(&"\\".repeat(backslashes));
                quoted.push(c);
                backslashes = 0;
            }
        }
    }
    // The closing quote follows, so trailing backslashes must be doubled as well.
    quoted.push_str(&"\\".repeat(backslashes.saturating_mul(2)));
    quoted.push('"');
    quoted
}

/// Where the `latchkey://` URL handler is registered on Linux.
pub const URL_HANDLER_DESKTOP_FILE: &str = "/usr/share/applications/latchkey-agent-url.desktop";

/// The freedesktop entry that makes `latchkey-agent open-url` the handler of
/// `latchkey://` links (x-scheme-handler), so a sign-in page's "authenticate
/// with this device" button reaches the running agent.
pub fn url_handler_desktop_entry(spec: &ServiceSpec) -> String {
    format!(
        "[Desktop Entry]\nType=Application\nName=Latchkey sign-in\nName[ja]=Latchkey サインイン\nComment=Confirms sign-ins with this managed device\nExec={} --state-dir {} open-url %u\nTerminal=false\nNoDisplay=true\nMimeType=x-scheme-handler/latchkey;\n",
        desktop_word(&spec.executable.to_string_lossy()),
        desktop_word(&spec.state_dir.to_string_lossy()),
    )
}

/// Quotes an argument of a desktop entry's `Exec` key (Desktop Entry
/// Specification, "The Exec key"): reserved characters inside double quotes
/// are backslash-escaped, and `%` is doubled.
fn desktop_word(word: &str) -> String {
    let reserved = |c: char| c.is_whitespace() || "\"'\\><~|&;$*?#()`".contains(c);
    let mut escaped = String::with_capacity(word.len().saturating_add(2));
    for c in word.chars().filter(|c| !c.is_control()) {
        match c {
            '%' => escaped.push_str("%%"),
            '"' | '`' | '$' | '\\' => {
                escaped.push('\\');
                escaped.push(c);
            }
            c => escaped.push(c),
        }
    }
    if word.is_empty() || word.chars().any(reserved) {
        format!("\"{escaped}\"")
    } else {
        escaped
    }
}

/// Where the macOS `latchkey://` handler is installed: a small AppleScript
/// applet, since macOS hands a URL to an app bundle as an Apple event, not
/// as an argument.
pub const MACOS_URL_APPLET: &str = "/Library/Application Support/Latchkey/Latchkey Sign-in.app";
/// The applet's bundle identifier.
pub const MACOS_URL_APPLET_ID: &str = "jp.latchkey.sign-in";

/// The applet's AppleScript source (compiled with `osacompile`): an
/// `open location` handler that runs `latchkey-agent open-url URL`.
pub fn macos_url_applet_script(spec: &ServiceSpec) -> String {
    format!(
        "on open location theURL\n\tdo shell script (quoted form of {}) & \" --state-dir \" & (quoted form of {}) & \" open-url \" & (quoted form of theURL)\nend open location\n",
        applescript_string(&spec.executable.to_string_lossy()),
        applescript_string(&spec.state_dir.to_string_lossy()),
    )
}

/// An AppleScript string literal: backslashes and double quotes escaped;
/// control characters, which no path needs, dropped.
fn applescript_string(text: &str) -> String {
    let mut literal = String::from('"');
    for c in text.chars().filter(|c| !c.is_control()) {
        if matches!(c, '"' | '\\') {
            literal.push('\\');
        }
        literal.push(c);
    }
    literal.push('"');
    literal
}

/// The applet's `Info.plist`, replacing the one `osacompile` writes: the
/// same applet executable, plus the `latchkey` URL scheme
/// (`CFBundleURLTypes`) and no Dock icon (`LSUIElement`).
pub fn macos_url_applet_info_plist() -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>CFBundleDevelopmentRegion</key>
	<string>en</string>
	<key>CFBundleExecutable</key>
	<string>applet</string>
	<key>CFBundleIconFile</key>
	<string>applet</string>
	<key>CFBundleIdentifier</key>
	<string>{MACOS_URL_APPLET_ID}</string>
	<key>CFBundleInfoDictionaryVersion</key>
	<string>6.0</string>
	<key>CFBundleName</key>
	<string>Latchkey Sign-in</string>
	<key>CFBundlePackageType</key>
	<string>APPL</string>
	<key>CFBundleSignature</key>
	<string>aplt</string>
	<key>CFBundleURLTypes</key>
	<array>
		<dict>
			<key>CFBundleURLName</key>
			<string>{MACOS_URL_APPLET_ID}</string>
			<key>CFBundleURLSchemes</key>
			<array>
				<string>latchkey</string>
			</array>
		</dict>
	</array>
	<key>LSUIElement</key>
	<true/>
</dict>
</plist>
"#
    )
}

/// The registry key of the `latchkey` scheme on Windows, under
/// `HKLM\Software\Classes` so that it serves every user of the machine
/// (Windows merges it into `HKEY_CLASSES_ROOT`; a user's own
/// `HKCU\Software\Classes\latchkey` would still take precedence).
pub const WINDOWS_URL_KEY: &str = r"HKLM\Software\Classes\latchkey";

/// The `reg.exe` invocations that register `latchkey://` on Windows: the
/// key marked as a URL protocol, and its open command running
/// `latchkey-agent.exe --state-dir DIR open-url "%1"`.
pub fn windows_url_handler_reg_args(spec: &ServiceSpec) -> Vec<Vec<String>> {
    let command = format!(
        "\"{}\" --state-dir {} open-url \"%1\"",
        spec.executable.to_string_lossy(),
        windows_quote_argument(&spec.state_dir.to_string_lossy()),
    );
    let add = |key: String, value: Option<&str>, data: &str| {
        let mut args = vec!["add".to_owned(), key];
        match value {
            Some(name) => args.extend(["/v".to_owned(), name.to_owned()]),
            None => args.push("/ve".to_owned()),
        }
        args.extend([
            "/t".to_owned(),
            "REG_SZ".to_owned(),
            "/d".to_owned(),
            data.to_owned(),
            "/f".to_owned(),
        ]);
        args
    };
    vec![
        add(WINDOWS_URL_KEY.to_owned(), None, "URL:Latchkey sign-in"),
        add(WINDOWS_URL_KEY.to_owned(), Some("URL Protocol"), ""),
        add(
            format!(r"{WINDOWS_URL_KEY}\shell\open\command"),
            None,
            &command,
        ),
    ]
}

/// Writes the systemd unit for `spec` into `unit_dir` with mode 0644 and returns its path.
/// It neither reloads nor starts anything, which is what [`install`] adds.
pub fn install_to(spec: &ServiceSpec, unit_dir: &Path) -> Result<PathBuf, InstallError> {
    let path = unit_dir.join(SYSTEMD_UNIT_NAME);
    write_service_file(&path, systemd_unit(spec).as_bytes())?;
    Ok(path)
}

/// Installs, enables and starts the agent as a system service, returning a report of what
/// was done. It must run as root/Administrator.
pub fn install(spec: &ServiceSpec) -> Result<String, InstallError> {
    imp::install(spec)
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

#[cfg(target_os = "linux")]
mod imp {
    use super::{
        InstallError, SYSTEMD_UNIT_DIR, SYSTEMD_UNIT_NAME, ServiceSpec, absolute_spec, create_dir,
        install_to, run_step,
    };
    use std::path::Path;

    pub(super) fn install(spec: &ServiceSpec) -> Result<String, InstallError> {
        let spec = absolute_spec(spec)?;
        // ReadWritePaths= refuses to start the unit if the directory is missing.
        create_dir(&spec.state_dir, true)?;
        let unit = install_to(&spec, Path::new(SYSTEMD_UNIT_DIR))?;
        run_step("systemctl", &["daemon-reload"])?;
        run_step("systemctl", &["enable", "--now", SYSTEMD_UNIT_NAME])?;
        let handler = Path::new(super::URL_HANDLER_DESKTOP_FILE);
        super::write_service_file(handler, super::url_handler_desktop_entry(&spec).as_bytes())?;
        // Desktops read the MIME cache; a system without the tool still
        // finds the entry when it rescans.
        let _ = run_step("update-desktop-database", &["/usr/share/applications"]);
        Ok(format!(
            "wrote {}, reloaded systemd, enabled and started {SYSTEMD_UNIT_NAME}; registered latchkey:// links in {}",
            unit.display(),
            handler.display()
        ))
    }
}

#[cfg(target_os = "macos")]
mod imp {
    use super::{
        InstallError, LAUNCHD_LABEL, LAUNCHD_LOG_DIR, LAUNCHD_PLIST_PATH, ServiceSpec,
        absolute_spec, create_dir, launchd_plist, run_step, write_service_file,
    };
    use std::path::Path;

    pub(super) fn install(spec: &ServiceSpec) -> Result<String, InstallError> {
        let spec = absolute_spec(spec)?;
        create_dir(&spec.state_dir, true)?;
        create_dir(Path::new(LAUNCHD_LOG_DIR), false)?;
        write_service_file(
            Path::new(LAUNCHD_PLIST_PATH),
            launchd_plist(&spec).as_bytes(),
        )?;
        // bootstrap refuses a label that is already loaded, so a reinstall first unloads the
        // old job; failing here only means there was nothing to unload.
        let _ = run_step(
            "/bin/launchctl",
            &["bootout", &format!("system/{LAUNCHD_LABEL}")],
        );
        run_step(
            "/bin/launchctl",
            &["bootstrap", "system", LAUNCHD_PLIST_PATH],
        )?;
        let applet = register_url_applet(&spec)?;
        Ok(format!(
            "wrote {LAUNCHD_PLIST_PATH} and bootstrapped {LAUNCHD_LABEL} into the system domain; registered latchkey:// links with {}",
            applet.display()
        ))
    }

    /// Compiles the `latchkey://` applet, gives it the URL scheme, signs it
    /// again (the new Info.plist breaks the seal `osacompile` made) and
    /// registers it with Launch Services.
    fn register_url_applet(spec: &ServiceSpec) -> Result<std::path::PathBuf, InstallError> {
        let applet = Path::new(super::MACOS_URL_APPLET);
        if let Some(parent) = applet.parent() {
            create_dir(parent, false)?;
        }
        let source = std::env::temp_dir().join("latchkey-sign-in.applescript");
        write_service_file(&source, super::macos_url_applet_script(spec).as_bytes())?;
        let app = applet.to_string_lossy();
        let compiled = run_step(
            "/usr/bin/osacompile",
            &["-o", &app, &source.to_string_lossy()],
        );
        let _ = std::fs::remove_file(&source);
        compiled?;
        write_service_file(
            &applet.join("Contents/Info.plist"),
            super::macos_url_applet_info_plist().as_bytes(),
        )?;
        run_step("/usr/bin/codesign", &["--force", "--sign", "-", &app])?;
        run_step(
            "/System/Library/Frameworks/CoreServices.framework/Frameworks/LaunchServices.framework/Support/lsregister",
            &["-f", &app],
        )?;
        Ok(applet.to_owned())
    }
}

#[cfg(target_os = "windows")]
mod imp {
    use super::{
        InstallError, ServiceSpec, WINDOWS_SERVICE_NAME, absolute_spec, create_dir, run_step,
        windows_sc_args,
    };

    pub(super) fn install(spec: &ServiceSpec) -> Result<String, InstallError> {
        let spec = absolute_spec(spec)?;
        create_dir(&spec.state_dir, true)?;
        let create = windows_sc_args(&spec);
        let create: Vec<&str> = create.iter().map(String::as_str).collect();
        run_step("sc.exe", &create)?;
        // The equivalent of Restart=always: restart five seconds after every crash.
        run_step(
            "sc.exe",
            &[
                "failure",
                WINDOWS_SERVICE_NAME,
                "reset=",
                "86400",
                "actions=",
                "restart/5000/restart/5000/restart/5000",
            ],
        )?;
        run_step("sc.exe", &["start", WINDOWS_SERVICE_NAME])?;
        for args in super::windows_url_handler_reg_args(&spec) {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_step("reg.exe", &args)?;
        }
        Ok(format!(
            "created, configured restarts for and started service {WINDOWS_SERVICE_NAME}; registered latchkey:// links under {}",
            super::WINDOWS_URL_KEY
        ))
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
mod imp {
    use super::{InstallError, ServiceSpec};

    pub(super) fn install(_spec: &ServiceSpec) -> Result<String, InstallError> {
        Err(InstallError::Unsupported(
            "service installation is supported on Linux (systemd), macOS and Windows only",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(executable: &str, state_dir: &str) -> ServiceSpec {
        ServiceSpec {
            executable: PathBuf::from(executable),
            state_dir: PathBuf::from(state_dir),
        }
    }

    #[test]
    fn the_url_handler_entry_registers_the_latchkey_scheme() {
        let entry = url_handler_desktop_entry(&spec(
            "/usr/local/bin/latchkey-agent",
            "/var/lib/latchkey-agent",
        ));
        assert!(
            entry.contains("MimeType=x-scheme-handler/latchkey;"),
            "{entry}"
        );
        assert!(
            entry.contains(
                "Exec=/usr/local/bin/latchkey-agent --state-dir /var/lib/latchkey-agent open-url %u"
            ),
            "{entry}"
        );
        assert!(entry.contains("NoDisplay=true"));
        let spaced =
            url_handler_desktop_entry(&spec("/opt/Latchkey Agent/latchkey-agent", "/var/lib/a$b"));
        assert!(
            spaced.contains(r#"Exec="/opt/Latchkey Agent/latchkey-agent" --state-dir "/var/lib/a\$b" open-url %u"#),
            "{spaced}"
        );
    }

    #[test]
    fn the_macos_applet_hands_the_link_to_open_url() {
        let script = macos_url_applet_script(&spec(
            "/Library/Latchkey/latchkey-agent",
            "/Library/Application Support/Latchkey",
        ));
        assert_eq!(
            script,
            "on open location theURL\n\tdo shell script (quoted form of \"/Library/Latchkey/latchkey-agent\") & \" --state-dir \" & (quoted form of \"/Library/Application Support/Latchkey\") & \" open-url \" & (quoted form of theURL)\nend open location\n"
        );
        let odd = macos_url_applet_script(&spec(r#"/Apps/a"b\c/agent"#, "/var/x\ny"));
        assert!(
            odd.contains(r#"quoted form of "/Apps/a\"b\\c/agent""#),
            "{odd}"
        );
        assert!(odd.contains(r#"quoted form of "/var/xy""#), "{odd}");

        let info = macos_url_applet_info_plist();
        assert!(info.contains(
            "<key>CFBundleURLSchemes</key>\n\t\t\t<array>\n\t\t\t\t<string>latchkey</string>"
        ));
        assert!(info.contains("<key>CFBundleExecutable</key>\n\t<string>applet</string>"));
        assert!(info.contains("<key>LSUIElement</key>\n\t<true/>"));
    }

    #[test]
    fn the_windows_registry_entries_open_links_with_open_url() {
        let args = windows_url_handler_reg_args(&spec(
            r"C:\Program Files\Latchkey\latchkey-agent.exe",
            r"C:\ProgramData\Latchkey\",
        ));
        assert_eq!(
            args,
            [
                vec![
                    "add",
                    r"HKLM\Software\Classes\latchkey",
                    "/ve",
                    "/t",
                    "REG_SZ",
                    "/d",
                    "URL:Latchkey sign-in",
                    "/f"
                ],
                vec![
                    "add",
                    r"HKLM\Software\Classes\latchkey",
                    "/v",
                    "URL Protocol",
                    "/t",
                    "REG_SZ",
                    "/d",
                    "",
                    "/f"
                ],
                vec![
                    "add",
                    r"HKLM\Software\Classes\latchkey\shell\open\command",
                    "/ve",
                    "/t",
                    "REG_SZ",
                    "/d",
                    r#""C:\Program Files\Latchkey\latchkey-agent.exe" --state-dir "C:\ProgramData\Latchkey\\" open-url "%1""#,
                    "/f"
                ],
            ]
        );
    }

    #[test]
    fn systemd_unit_has_the_expected_settings() {
        let unit = systemd_unit(&spec("/usr/local/bin/latchkey-agent", "/var/lib/latchkey"));
        let lines: Vec<&str> = unit.lines().collect();
        for expected in [
            "[Unit]",
            "Description=Latchkey agent",
            "After=network-online.target",
            "Wants=network-online.target",
            "[Service]",
            "ExecStart=/usr/local/bin/latchkey-agent --state-dir /var/lib/latchkey run",
            "Restart=always",
            "RestartSec=5s",
            "NoNewPrivileges=yes",
            "ProtectHome=read-only",
            "PrivateTmp=yes",
            "ReadWritePaths=/var/lib/latchkey",
            "RuntimeDirectory=latchkey-agent",
            "RuntimeDirectoryMode=0755",
            "[Install]",
            "WantedBy=multi-user.target",
        ] {
            assert!(lines.contains(&expected), "missing {expected:?} in\n{unit}");
        }
    }

    #[test]
    fn systemd_unit_quotes_paths_with_spaces() {
        let unit = systemd_unit(&spec(
            "/opt/Latchkey Agent/latchkey-agent",
            "/srv/latchkey state",
        ));
        assert!(unit.contains(
            "ExecStart=\"/opt/Latchkey Agent/latchkey-agent\" --state-dir \"/srv/latchkey state\" run\n"
        ));
        assert!(unit.contains("ReadWritePaths=\"/srv/latchkey state\"\n"));
    }

    #[test]
    fn systemd_unit_escapes_specifiers_variables_and_quotes() {
        let unit = systemd_unit(&spec("/opt/100%/$HOME/agent", "/var/lib/50%$x"));
        assert!(
            unit.contains("ExecStart=/opt/100%%/$$HOME/agent --state-dir /var/lib/50%%$$x run\n")
        );
        // Variables are expanded only in Exec lines, so `$` stays single elsewhere.
        assert!(unit.contains("ReadWritePaths=/var/lib/50%%$x\n"));

        assert_eq!(systemd_word(r#"/opt/a"b\c"#, true), r#""/opt/a\"b\\c""#);
        assert_eq!(
            systemd_word("/opt/new\nline", true),
            "\"/opt/new\\u000aline\""
        );
        assert_eq!(systemd_word("", true), "\"\"");
    }

    #[test]
    fn launchd_plist_has_the_expected_keys() {
        let plist = launchd_plist(&spec(
            "/Library/Latchkey/latchkey-agent",
            "/Library/Application Support/Latchkey",
        ));
        assert!(plist.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"));
        assert!(plist.contains("<key>Label</key>\n\t<string>jp.latchkey.agent</string>"));
        assert!(plist.contains(
            "<array>\n\t\t<string>/Library/Latchkey/latchkey-agent</string>\n\t\t<string>--state-dir</string>\n\t\t<string>/Library/Application Support/Latchkey</string>\n\t\t<string>run</string>\n\t</array>"
        ));
        assert!(plist.contains("<key>RunAtLoad</key>\n\t<true/>"));
        assert!(plist.contains("<key>KeepAlive</key>\n\t<true/>"));
        assert!(plist.contains(
            "<key>RUNTIME_DIRECTORY</key>\n\t\t<string>/var/run/latchkey-agent</string>"
        ));
        assert!(plist.contains(
            "<key>StandardErrorPath</key>\n\t<string>/Library/Logs/Latchkey/agent.log</string>"
        ));
        assert!(plist.ends_with("</dict>\n</plist>\n"));
    }

    #[test]
    fn launchd_plist_escapes_xml() {
        let plist = launchd_plist(&spec("/Apps/R&D <beta>/agent", "/var/\"q\" 'x'\u{1}"));
        assert!(plist.contains("<string>/Apps/R&amp;D &lt;beta&gt;/agent</string>"));
        assert!(plist.contains("<string>/var/&quot;q&quot; &apos;x&apos;\u{FFFD}</string>"));
    }

    #[test]
    fn sc_args_quote_the_command_line() {
        let args = windows_sc_args(&spec(
            r"C:\Program Files\Latchkey\latchkey-agent.exe",
            r"C:\ProgramData\Latchkey\",
        ));
        assert_eq!(
            args,
            [
                "create",
                "LatchkeyAgent",
                "binPath=",
                r#""C:\Program Files\Latchkey\latchkey-agent.exe" --state-dir "C:\ProgramData\Latchkey\\" run"#,
                "start=",
                "auto",
                "DisplayName=",
                "Latchkey Agent",
            ]
        );
    }

    #[test]
    fn windows_arguments_follow_runtime_quoting() {
        assert_eq!(windows_quote_argument(r"C:\Data"), r#""C:\Data""#);
        assert_eq!(windows_quote_argument(r"C:\Data\"), r#""C:\Data\\""#);
        assert_eq!(windows_quote_argument(r#"a\"b"#), r#""a\\\"b""#);
        assert_eq!(windows_quote_argument(""), r#""""#);
    }

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

    /// A scratch directory that removes itself even when an assertion fails.
    struct ScratchDir(PathBuf);

    impl ScratchDir {
        fn new(name: &str) -> ScratchDir {
            let path = std::env::temp_dir()
                .join(format!("latchkey-service-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            ScratchDir(path)
        }
    }

    impl Drop for ScratchDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn install_to_writes_the_unit() {
        let dir = ScratchDir::new("install-to");
        let first = spec("/opt/latchkey/latchkey-agent", "/var/lib/latchkey");
        let path = install_to(&first, &dir.0).unwrap();
        assert_eq!(path, dir.0.join("latchkey-agent.service"));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            systemd_unit(&first)
        );

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o644);
        }

        // Reinstalling replaces the unit and leaves no temporary file behind.
        let second = spec("/opt/latchkey 2/latchkey-agent", "/var/lib/latchkey");
        install_to(&second, &dir.0).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            systemd_unit(&second)
        );
        let names: Vec<_> = std::fs::read_dir(&dir.0)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["latchkey-agent.service"]);
    }

    #[test]
    fn install_to_a_missing_directory_reports_the_path() {
        let dir = ScratchDir::new("missing");
        let missing = dir.0.join("no/such/dir");
        let err = install_to(&spec("/a", "/b"), &missing).unwrap_err();
        match err {
            InstallError::Io { path, .. } => assert!(path.starts_with(&missing), "{path:?}"),
            other => panic!("unexpected error {other}"),
        }
    }
}
