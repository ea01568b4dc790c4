//! The agent as a launchd daemon on macOS: the property list, the
//! AppleScript applet that makes `open-url` the `latchkey://` handler, and
//! their installation. The renderers are pure and tested on every build
//! host; only `install` (macOS builds) runs launchctl, osacompile,
//! codesign and lsregister.

#[cfg(target_os = "macos")]
use std::path::Path;

use super::ServiceSpec;
#[cfg(target_os = "macos")]
use super::{InstallError, absolute_spec, create_dir, run_step, write_service_file};

/// launchd job label, which is also the plist's file name stem.
pub const LAUNCHD_LABEL: &str = "jp.latchkey.agent";

#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
const LAUNCHD_PLIST_PATH: &str = "/Library/LaunchDaemons/jp.latchkey.agent.plist";
const LAUNCHD_LOG_DIR: &str = "/Library/Logs/Latchkey";

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

/// Writes the property list, bootstraps the job into the system domain and
/// registers the `latchkey://` applet.
#[cfg(target_os = "macos")]
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
#[cfg(target_os = "macos")]
fn register_url_applet(spec: &ServiceSpec) -> Result<std::path::PathBuf, InstallError> {
    let applet = Path::new(MACOS_URL_APPLET);
    if let Some(parent) = applet.parent() {
        create_dir(parent, false)?;
    }
    let source = std::env::temp_dir().join("latchkey-sign-in.applescript");
    write_service_file(&source, macos_url_applet_script(spec).as_bytes())?;
    let app = applet.to_string_lossy();
    let compiled = run_step(
        "/usr/bin/osacompile",
        &["-o", &app, &source.to_string_lossy()],
    );
    let _ = std::fs::remove_file(&source);
    compiled?;
    write_service_file(
        &applet.join("Contents/Info.plist"),
        macos_url_applet_info_plist().as_bytes(),
    )?;
    run_step("/usr/bin/codesign", &["--force", "--sign", "-", &app])?;
    run_step(
        "/System/Library/Frameworks/CoreServices.framework/Frameworks/LaunchServices.framework/Support/lsregister",
        &["-f", &app],
    )?;
    Ok(applet.to_owned())
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
}
