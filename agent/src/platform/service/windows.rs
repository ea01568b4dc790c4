//! The agent as a Windows service: the `sc.exe` arguments, the registry
//! entries that make `open-url` the `latchkey://` handler, and their
//! installation. The renderers are pure and tested on every build host;
//! only `install` (Windows builds) runs sc.exe and reg.exe.

use super::ServiceSpec;
#[cfg(target_os = "windows")]
use super::{InstallError, absolute_spec, create_dir, run_step};

/// Name the service is registered under with the Windows service control manager.
pub const WINDOWS_SERVICE_NAME: &str = "LatchkeyAgent";

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

/// Creates the service with restarts on failure, starts it and registers
/// the `latchkey://` handler.
#[cfg(target_os = "windows")]
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
    for args in windows_url_handler_reg_args(&spec) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_step("reg.exe", &args)?;
    }
    Ok(format!(
        "created, configured restarts for and started service {WINDOWS_SERVICE_NAME}; registered latchkey:// links under {WINDOWS_URL_KEY}"
    ))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn spec(executable: &str, state_dir: &str) -> ServiceSpec {
        ServiceSpec {
            executable: PathBuf::from(executable),
            state_dir: PathBuf::from(state_dir),
        }
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
}
