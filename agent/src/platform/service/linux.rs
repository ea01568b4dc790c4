//! The agent as a systemd service on Linux: the unit, the freedesktop entry
//! that makes `open-url` the `latchkey://` handler, and their installation.
//! The renderers are pure and tested on every build host; only `install`
//! runs systemd's tools.

use std::path::{Path, PathBuf};

use super::{InstallError, ServiceSpec, write_service_file};
#[cfg(target_os = "linux")]
use super::{absolute_spec, create_dir, run_step};

/// File name of the systemd unit.
pub const SYSTEMD_UNIT_NAME: &str = "latchkey-agent.service";

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
const SYSTEMD_UNIT_DIR: &str = "/etc/systemd/system";

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

/// Writes the systemd unit for `spec` into `unit_dir` with mode 0644 and returns its path.
/// It neither reloads nor starts anything, which is what [`super::install`] adds.
pub fn install_to(spec: &ServiceSpec, unit_dir: &Path) -> Result<PathBuf, InstallError> {
    let path = unit_dir.join(SYSTEMD_UNIT_NAME);
    write_service_file(&path, systemd_unit(spec).as_bytes())?;
    Ok(path)
}

/// Writes the unit, reloads systemd, enables and starts the service and
/// registers the `latchkey://` handler.
#[cfg(target_os = "linux")]
pub(super) fn install(spec: &ServiceSpec) -> Result<String, InstallError> {
    let spec = absolute_spec(spec)?;
    // ReadWritePaths= refuses to start the unit if the directory is missing.
    create_dir(&spec.state_dir, true)?;
    let unit = install_to(&spec, Path::new(SYSTEMD_UNIT_DIR))?;
    run_step("systemctl", &["daemon-reload"])?;
    run_step("systemctl", &["enable", "--now", SYSTEMD_UNIT_NAME])?;
    let handler = Path::new(URL_HANDLER_DESKTOP_FILE);
    write_service_file(handler, url_handler_desktop_entry(&spec).as_bytes())?;
    // Desktops read the MIME cache; a system without the tool still
    // finds the entry when it rescans.
    let _ = run_step("update-desktop-database", &["/usr/share/applications"]);
    Ok(format!(
        "wrote {}, reloaded systemd, enabled and started {SYSTEMD_UNIT_NAME}; registered latchkey:// links in {}",
        unit.display(),
        handler.display()
    ))
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
