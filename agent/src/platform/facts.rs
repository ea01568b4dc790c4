//! Device identity facts the agent reports at enrollment and check-in: hostname, platform,
//! OS version, a stable machine id, the hardware serial number and model.
//!
//! Collection is best effort and never panics: whatever the OS does not reveal to the
//! service becomes an empty string, and the server decides what a missing value means.

/// Identity facts about this device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFacts {
    /// Name of the device as its users know it.
    pub hostname: String,
    /// `"linux"`, `"macos"` or `"windows"`.
    pub platform: String,
    /// A version string the server can compare, such as `"24.04"`, `"14.5"` or
    /// `"10.0.22631.3155"`.
    pub os_version: String,
    /// Identifier that stays the same across reboots and hostname changes.
    pub machine_id: String,
    /// Hardware serial number, or `""` when the firmware does not provide a real one.
    pub serial: String,
    /// Hardware vendor and model.
    pub model: String,
}

/// Collects the facts of the running device.
pub fn collect() -> DeviceFacts {
    imp::collect()
}

/// The comparable OS version alone, for posture reports that must not pay for the slower
/// hardware queries.
pub(crate) fn os_version() -> String {
    imp::os_version()
}

/// Returns `VERSION_ID` from the text of an os-release file (`"12"` on Debian, `"24.04"` on
/// Ubuntu), or `None` on rolling distributions that do not set it.
pub fn os_release_version(text: &str) -> Option<String> {
    os_release_value(text, "VERSION_ID")
}

/// Returns `PRETTY_NAME` from the text of an os-release file. It is meant for display only:
/// it is not comparable, so it is never used as the OS version.
pub fn os_release_pretty_name(text: &str) -> Option<String> {
    os_release_value(text, "PRETTY_NAME")
}

/// Returns the non-empty value assigned to `key` in os-release text.
///
/// os-release(5) defines the file as shell-compatible assignments, so values are unquoted
/// and unescaped as the shell would, and a later assignment overrides an earlier one.
fn os_release_value(text: &str, key: &str) -> Option<String> {
    let mut found = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((name, raw)) = line.split_once('=') else {
            continue;
        };
        if name.trim() == key {
            found = Some(unquote_shell_value(raw.trim()));
        }
    }
    found.filter(|value| !value.is_empty())
}

/// Removes shell quoting from a single assignment value.
fn unquote_shell_value(raw: &str) -> String {
    let mut value = String::with_capacity(raw.len());
    let mut quote: Option<char> = None;
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(open), c) if c == open => quote = None,
            // Inside single quotes the shell treats every character literally.
            (Some('\''), c) => value.push(c),
            (_, '\\') => {
                let Some(next) = chars.next() else { break };
                // Inside double quotes a backslash escapes only these characters; before
                // anything else it is kept, as the shell keeps it.
                if quote.is_some() && !matches!(next, '$' | '"' | '\\' | '`') {
                    value.push('\\');
                }
                value.push(next);
            }
            (_, c) => value.push(c),
        }
    }
    value
}

/// The first line that is neither blank nor a `#` comment, trimmed; this is how
/// hostname(5) files and single-value tool outputs are read.
fn first_line(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
}

/// Accepts a machine-id file only if it holds the 32 hex digits machine-id(5) specifies;
/// early in first boot systemd writes `uninitialized` there, which must not become an id
/// shared by every new machine.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_machine_id(text: &str) -> Option<String> {
    let id = text.trim();
    (id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit())).then(|| id.to_ascii_lowercase())
}

/// Blanks the placeholder strings firmware vendors leave in SMBIOS fields. A placeholder is
/// shared by thousands of boards, and reporting it as a serial would make unrelated devices
/// look like one to the server.
#[cfg_attr(not(any(target_os = "linux", target_os = "windows")), allow(dead_code))]
fn clean_firmware_value(raw: &str) -> String {
    const PLACEHOLDERS: &[&str] = &[
        "",
        "0",
        "none",
        "default string",
        "not specified",
        "not applicable",
        "o.e.m.",
        "to be filled by o.e.m.",
        "system serial number",
        "system product name",
        "system manufacturer",
        "0123456789",
        "123456789",
    ];
    let value = raw.trim();
    if PLACEHOLDERS
        .iter()
        .any(|placeholder| value.eq_ignore_ascii_case(placeholder))
    {
        String::new()
    } else {
        value.to_owned()
    }
}

/// Joins vendor and product name into one model string without repeating the vendor when
/// the product name already starts with it (`"HP"` + `"HP EliteBook 840"`).
#[cfg_attr(not(any(target_os = "linux", target_os = "windows")), allow(dead_code))]
fn vendor_and_model(vendor: &str, product: &str) -> String {
    let vendor = clean_firmware_value(vendor);
    let product = clean_firmware_value(product);
    if vendor.is_empty() {
        product
    } else if product.is_empty() {
        vendor
    } else if product
        .to_ascii_lowercase()
        .starts_with(&vendor.to_ascii_lowercase())
    {
        product
    } else {
        format!("{vendor} {product}")
    }
}

/// Returns a string property from `ioreg -rd1 -c IOPlatformExpertDevice` output, such as
/// `"IOPlatformUUID" = "…"`; data properties printed as `<"MacBookPro18,3">` are accepted too.
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
fn ioreg_string(text: &str, key: &str) -> Option<String> {
    let quoted_key = format!("\"{key}\"");
    text.lines()
        .find_map(|line| {
            let line = line.trim_start_matches(|c: char| c == '|' || c.is_whitespace());
            let value = line
                .strip_prefix(&quoted_key)?
                .trim_start()
                .strip_prefix('=')?
                .trim();
            let value = value
                .strip_prefix('<')
                .and_then(|inner| inner.strip_suffix('>'))
                .unwrap_or(value);
            let inner = value.strip_prefix('"')?;
            let end = inner.find('"')?;
            inner.get(..end).map(str::to_owned)
        })
        .filter(|value| !value.is_empty())
}

/// Returns the data of value `name` from `reg query` output.
///
/// reg.exe prints value lines as four-space-indented `name    TYPE    data`; names and data
/// may contain spaces themselves, so the `REG_` type token anchors the split.
#[cfg_attr(not(target_os = "windows"), allow(dead_code))]
fn reg_query_value(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|line| {
        // Key lines (`HKEY_LOCAL_MACHINE\…`) are not indented and never match.
        let line = line.strip_prefix("    ")?;
        let type_start = line.find("    REG_")?;
        let value_name = line.get(..type_start)?;
        if !value_name.eq_ignore_ascii_case(name) {
            return None;
        }
        let typed = line.get(type_start..)?.trim_start();
        let data = typed.split_once("    ").map_or("", |(_, data)| data);
        Some(data.trim().to_owned())
    })
}

/// Parses a `REG_DWORD`/`REG_QWORD` datum, which reg.exe prints in hex (`0xc2b`).
#[cfg_attr(not(target_os = "windows"), allow(dead_code))]
fn parse_reg_number(data: &str) -> Option<u64> {
    let digits = data.trim().strip_prefix("0x")?;
    u64::from_str_radix(digits, 16).ok()
}

/// Builds `major.minor.build.revision` (e.g. `10.0.22631.3155`) from a
/// `reg query "HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion"` listing.
///
/// `DisplayVersion` (`23H2`) is not used because it does not compare; the build number is
/// what tells Windows 11 (22000 and later) from Windows 10, both of which report 10.0.
#[cfg_attr(not(target_os = "windows"), allow(dead_code))]
fn windows_version_from_reg(text: &str) -> Option<String> {
    let build = reg_query_value(text, "CurrentBuild").filter(|b| !b.is_empty())?;
    let major =
        reg_query_value(text, "CurrentMajorVersionNumber").and_then(|d| parse_reg_number(&d));
    let minor =
        reg_query_value(text, "CurrentMinorVersionNumber").and_then(|d| parse_reg_number(&d));
    // Releases before Windows 10 carry only the `6.1`-style CurrentVersion string.
    let major_minor = match (major, minor) {
        (Some(major), Some(minor)) => format!("{major}.{minor}"),
        _ => reg_query_value(text, "CurrentVersion").filter(|v| !v.is_empty())?,
    };
    let revision = reg_query_value(text, "UBR").and_then(|d| parse_reg_number(&d));
    Some(match revision {
        Some(revision) => format!("{major_minor}.{build}.{revision}"),
        None => format!("{major_minor}.{build}"),
    })
}

/// Returns the version from `cmd /c ver` output (`Microsoft Windows [Version 10.0.22631.3155]`).
/// The word `Version` is translated on localized Windows, so only the bracketed number is used.
#[cfg_attr(not(target_os = "windows"), allow(dead_code))]
fn ver_output_version(text: &str) -> Option<String> {
    let (_, bracketed) = text.split_once('[')?;
    let (inside, _) = bracketed.split_once(']')?;
    let version = inside.split_whitespace().next_back()?;
    version
        .starts_with(|c: char| c.is_ascii_digit())
        .then(|| version.to_owned())
}

/// Returns the non-empty value of `key` from `key=value` lines, the format of both
/// `wmic … /value` and the agent's own PowerShell query.
#[cfg_attr(not(target_os = "windows"), allow(dead_code))]
fn key_value_line(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (name, value) = line.trim().split_once('=')?;
        let value = value.trim();
        (name.trim().eq_ignore_ascii_case(key) && !value.is_empty()).then(|| value.to_owned())
    })
}

#[cfg(target_os = "linux")]
mod imp {
    use super::{
        DeviceFacts, clean_firmware_value, first_line, os_release_version, parse_machine_id,
        vendor_and_model,
    };
    use std::fs;

    /// Reads a small text file, treating any error as "no value".
    fn read(path: &str) -> String {
        fs::read_to_string(path).unwrap_or_default()
    }

    pub(super) fn collect() -> DeviceFacts {
        let hostname = first_line(&read("/proc/sys/kernel/hostname"))
            .or_else(|| first_line(&read("/etc/hostname")))
            .unwrap_or_default();
        // /var/lib/dbus/machine-id predates systemd and is still the only id on some
        // minimal systems.
        let machine_id = ["/etc/machine-id", "/var/lib/dbus/machine-id"]
            .iter()
            .find_map(|path| parse_machine_id(&read(path)))
            .unwrap_or_default();
        DeviceFacts {
            hostname,
            platform: std::env::consts::OS.to_owned(),
            os_version: os_version(),
            machine_id,
            // Readable by root only; an unprivileged run simply reports no serial.
            serial: clean_firmware_value(&read("/sys/class/dmi/id/product_serial")),
            model: vendor_and_model(
                &read("/sys/class/dmi/id/sys_vendor"),
                &read("/sys/class/dmi/id/product_name"),
            ),
        }
    }

    /// `VERSION_ID` when the distribution sets one, else the kernel release, which at least
    /// compares meaningfully on rolling distributions such as Arch.
    pub(super) fn os_version() -> String {
        ["/etc/os-release", "/usr/lib/os-release"]
            .iter()
            .find_map(|path| fs::read_to_string(path).ok())
            .and_then(|text| os_release_version(&text))
            .or_else(|| first_line(&read("/proc/sys/kernel/osrelease")))
            .unwrap_or_default()
    }
}

#[cfg(target_os = "macos")]
mod imp {
    use super::{DeviceFacts, first_line, ioreg_string};
    use crate::platform::{QUERY_TIMEOUT, run_command};

    fn command_line(program: &str, args: &[&str]) -> Option<String> {
        run_command(program, args, QUERY_TIMEOUT).and_then(|out| first_line(&out))
    }

    pub(super) fn collect() -> DeviceFacts {
        // Absolute paths keep a root daemon from running whatever PATH happens to offer.
        let ioreg = run_command(
            "/usr/sbin/ioreg",
            &["-rd1", "-c", "IOPlatformExpertDevice"],
            QUERY_TIMEOUT,
        )
        .unwrap_or_default();
        DeviceFacts {
            hostname: command_line("/usr/sbin/scutil", &["--get", "ComputerName"])
                .or_else(|| command_line("/bin/hostname", &[]))
                .unwrap_or_default(),
            platform: std::env::consts::OS.to_owned(),
            os_version: os_version(),
            machine_id: ioreg_string(&ioreg, "IOPlatformUUID").unwrap_or_default(),
            serial: ioreg_string(&ioreg, "IOPlatformSerialNumber").unwrap_or_default(),
            model: command_line("/usr/sbin/sysctl", &["-n", "hw.model"])
                .or_else(|| ioreg_string(&ioreg, "model"))
                .unwrap_or_default(),
        }
    }

    pub(super) fn os_version() -> String {
        command_line("/usr/bin/sw_vers", &["-productVersion"]).unwrap_or_default()
    }
}

#[cfg(target_os = "windows")]
mod imp {
    use super::{
        DeviceFacts, clean_firmware_value, first_line, key_value_line, reg_query_value,
        vendor_and_model, ver_output_version, windows_version_from_reg,
    };
    use crate::platform::{QUERY_TIMEOUT, run_command};
    use std::time::Duration;

    /// PowerShell and WMI start slowly on a cold machine, so the hardware query gets longer
    /// than ordinary queries before it is abandoned.
    const WMI_TIMEOUT: Duration = Duration::from_secs(15);

    /// Prints the same `Key=Value` lines as `wmic … /value`, so one parser reads either;
    /// wmic is kept only as a fallback because recent Windows releases no longer ship it.
    const HARDWARE_SCRIPT: &str = "$b = Get-CimInstance -ClassName Win32_BIOS; \
        $c = Get-CimInstance -ClassName Win32_ComputerSystem; \
        'SerialNumber=' + $b.SerialNumber; 'Manufacturer=' + $c.Manufacturer; 'Model=' + $c.Model";

    pub(super) fn collect() -> DeviceFacts {
        let hardware = run_command(
            "powershell.exe",
            &["-NoProfile", "-NonInteractive", "-Command", HARDWARE_SCRIPT],
            WMI_TIMEOUT,
        )
        .or_else(|| {
            let bios = run_command(
                "wmic",
                &["bios", "get", "SerialNumber", "/value"],
                WMI_TIMEOUT,
            )?;
            let system = run_command(
                "wmic",
                &["computersystem", "get", "Manufacturer,Model", "/value"],
                WMI_TIMEOUT,
            )
            .unwrap_or_default();
            Some(format!("{bios}\n{system}"))
        })
        .unwrap_or_default();
        let field = |key: &str| key_value_line(&hardware, key).unwrap_or_default();
        let machine_guid = run_command(
            "reg",
            &[
                "query",
                r"HKLM\SOFTWARE\Microsoft\Cryptography",
                "/v",
                "MachineGuid",
            ],
            QUERY_TIMEOUT,
        )
        .and_then(|out| reg_query_value(&out, "MachineGuid"));
        DeviceFacts {
            hostname: std::env::var("COMPUTERNAME")
                .ok()
                .filter(|name| !name.is_empty())
                .or_else(|| {
                    run_command("hostname", &[], QUERY_TIMEOUT).and_then(|o| first_line(&o))
                })
                .unwrap_or_default(),
            platform: std::env::consts::OS.to_owned(),
            os_version: os_version(),
            machine_id: machine_guid.unwrap_or_default(),
            serial: clean_firmware_value(&field("SerialNumber")),
            model: vendor_and_model(&field("Manufacturer"), &field("Model")),
        }
    }

    pub(super) fn os_version() -> String {
        run_command(
            "reg",
            &[
                "query",
                r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion",
            ],
            QUERY_TIMEOUT,
        )
        .and_then(|out| windows_version_from_reg(&out))
        .or_else(|| {
            run_command("cmd", &["/c", "ver"], QUERY_TIMEOUT).and_then(|o| ver_output_version(&o))
        })
        .unwrap_or_default()
    }
}

/// Other systems are not supported targets; they still report a hostname so that a device
/// that somehow runs the agent is recognisable.
#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
mod imp {
    use super::{DeviceFacts, first_line};
    use crate::platform::{QUERY_TIMEOUT, run_command};

    pub(super) fn collect() -> DeviceFacts {
        DeviceFacts {
            hostname: run_command("hostname", &[], QUERY_TIMEOUT)
                .and_then(|out| first_line(&out))
                .unwrap_or_default(),
            platform: std::env::consts::OS.to_owned(),
            os_version: os_version(),
            machine_id: String::new(),
            serial: String::new(),
            model: String::new(),
        }
    }

    pub(super) fn os_version() -> String {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = r#"PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
ID=debian
"#;

    #[test]
    fn os_release_reads_quoted_and_unquoted_values() {
        assert_eq!(os_release_version(DEBIAN).as_deref(), Some("12"));
        assert_eq!(
            os_release_pretty_name(DEBIAN).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(os_release_value(DEBIAN, "ID").as_deref(), Some("debian"));
        assert_eq!(
            os_release_version("NAME=Fedora\nVERSION_ID=40\n").as_deref(),
            Some("40")
        );
        assert_eq!(
            os_release_version("VERSION_ID='24.04'\r\n").as_deref(),
            Some("24.04")
        );
    }

    #[test]
    fn os_release_unescapes_like_the_shell() {
        let text = r#"NAME="My \"Linux\" \$HOME \n"
NAME2='single \ quoted'
"#;
        assert_eq!(
            os_release_value(text, "NAME").as_deref(),
            Some(r#"My "Linux" $HOME \n"#)
        );
        assert_eq!(
            os_release_value(text, "NAME2").as_deref(),
            Some(r"single \ quoted")
        );
    }

    #[test]
    fn os_release_skips_comments_and_treats_empty_as_missing() {
        let text = "# VERSION_ID=1\n\nVERSION_ID=\"\"\n";
        assert_eq!(os_release_version(text), None);
        // Arch Linux sets no VERSION_ID at all.
        assert_eq!(os_release_version("NAME=\"Arch Linux\"\nID=arch\n"), None);
        // A later assignment wins, as in the shell.
        assert_eq!(
            os_release_version("VERSION_ID=1\nVERSION_ID=2\n").as_deref(),
            Some("2")
        );
    }

    #[test]
    fn first_line_skips_blanks_and_comments() {
        assert_eq!(
            first_line("# set by installer\n\n  web-01  \nother\n").as_deref(),
            Some("web-01")
        );
        assert_eq!(first_line("\n\n"), None);
    }

    #[test]
    fn machine_id_must_be_32_hex_digits() {
        assert_eq!(
            parse_machine_id("0123456789ABCDEF0123456789abcdef\n").as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert_eq!(parse_machine_id("uninitialized\n"), None);
        assert_eq!(parse_machine_id(""), None);
    }

    #[test]
    fn firmware_placeholders_are_blanked() {
        assert_eq!(clean_firmware_value("To Be Filled By O.E.M.\n"), "");
        assert_eq!(clean_firmware_value("Default string"), "");
        assert_eq!(clean_firmware_value(" PF3ABC12 \n"), "PF3ABC12");
    }

    #[test]
    fn model_joins_vendor_once() {
        assert_eq!(
            vendor_and_model("Dell Inc.\n", "XPS 13 9310\n"),
            "Dell Inc. XPS 13 9310"
        );
        assert_eq!(
            vendor_and_model("HP", "HP EliteBook 840 G8"),
            "HP EliteBook 840 G8"
        );
        assert_eq!(vendor_and_model("", "ThinkPad"), "ThinkPad");
        assert_eq!(vendor_and_model("LENOVO", "System Product Name"), "LENOVO");
        assert_eq!(vendor_and_model("", ""), "");
    }

    const IOREG: &str = r##"+-o Mac14,2  <class IOPlatformExpertDevice, id 0x100000110, registered, matched, active, busy 0 (54 ms), retain 39>
    {
      "IOPolledInterface" = "AppleARMWatchdogTimerHibernateHandler is not serializable"
      "#address-cells" = <02000000>
      "model" = <"Mac14,2">
      "IOPlatformSerialNumber" = "C02XK1ABCDEF"
      "IOPlatformUUID" = "6E8F1C2A-1111-2222-3333-444455556666"
      "IOPlatformSerialNumberExtra" = "not this one"
    }
"##;

    #[test]
    fn ioreg_properties_are_found() {
        assert_eq!(
            ioreg_string(IOREG, "IOPlatformSerialNumber").as_deref(),
            Some("C02XK1ABCDEF")
        );
        assert_eq!(
            ioreg_string(IOREG, "IOPlatformUUID").as_deref(),
            Some("6E8F1C2A-1111-2222-3333-444455556666")
        );
        assert_eq!(ioreg_string(IOREG, "model").as_deref(), Some("Mac14,2"));
        assert_eq!(ioreg_string(IOREG, "#address-cells"), None);
        assert_eq!(ioreg_string(IOREG, "missing"), None);
        assert_eq!(
            ioreg_string("  |   \"IOPlatformUUID\" = \"ABC\"\n", "IOPlatformUUID").as_deref(),
            Some("ABC")
        );
    }

    const REG_CURRENT_VERSION: &str = "\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\r\n    SystemRoot    REG_SZ    C:\\WINDOWS\r\n    CurrentBuild    REG_SZ    22631\r\n    CurrentMajorVersionNumber    REG_DWORD    0xa\r\n    CurrentMinorVersionNumber    REG_DWORD    0x0\r\n    CurrentVersion    REG_SZ    6.3\r\n    DisplayVersion    REG_SZ    23H2\r\n    ProductName    REG_SZ    Windows 10 Pro\r\n    UBR    REG_DWORD    0xc53\r\n    EmptyValue    REG_SZ    \r\n\r\n";

    #[test]
    fn reg_query_values_are_found() {
        assert_eq!(
            reg_query_value(REG_CURRENT_VERSION, "ProductName").as_deref(),
            Some("Windows 10 Pro")
        );
        assert_eq!(
            reg_query_value(REG_CURRENT_VERSION, "displayversion").as_deref(),
            Some("23H2")
        );
        assert_eq!(
            reg_query_value(REG_CURRENT_VERSION, "UBR").as_deref(),
            Some("0xc53")
        );
        assert_eq!(
            reg_query_value(REG_CURRENT_VERSION, "EmptyValue").as_deref(),
            Some("")
        );
        assert_eq!(reg_query_value(REG_CURRENT_VERSION, "Missing"), None);
        let guid = "\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Cryptography\r\n    MachineGuid    REG_SZ    3f2a9c1e-7b4d-4e5f-9a8b-1c2d3e4f5a6b\r\n\r\n";
        assert_eq!(
            reg_query_value(guid, "MachineGuid").as_deref(),
            Some("3f2a9c1e-7b4d-4e5f-9a8b-1c2d3e4f5a6b")
        );
    }

    #[test]
    fn windows_version_is_comparable() {
        assert_eq!(
            windows_version_from_reg(REG_CURRENT_VERSION).as_deref(),
            Some("10.0.22631.3155")
        );
        let windows7 =
            "    CurrentVersion    REG_SZ    6.1\r\n    CurrentBuild    REG_SZ    7601\r\n";
        assert_eq!(
            windows_version_from_reg(windows7).as_deref(),
            Some("6.1.7601")
        );
        assert_eq!(
            windows_version_from_reg("    UBR    REG_DWORD    0x1\r\n"),
            None
        );
        assert_eq!(parse_reg_number("0xZZ"), None);
    }

    #[test]
    fn ver_output_is_parsed_in_any_language() {
        assert_eq!(
            ver_output_version("\r\nMicrosoft Windows [Version 10.0.22631.3155]\r\n").as_deref(),
            Some("10.0.22631.3155")
        );
        assert_eq!(
            ver_output_version("Microsoft Windows [Versión 10.0.19045.4170]").as_deref(),
            Some("10.0.19045.4170")
        );
        assert_eq!(ver_output_version("no version here"), None);
    }

    #[test]
    fn key_value_lines_are_parsed() {
        let wmic = "\r\r\n\r\r\nSerialNumber=PF3ABC12\r\r\n\r\r\nManufacturer=LENOVO\r\nModel=20XW\r\nEmpty=\r\n";
        assert_eq!(
            key_value_line(wmic, "SerialNumber").as_deref(),
            Some("PF3ABC12")
        );
        assert_eq!(key_value_line(wmic, "model").as_deref(), Some("20XW"));
        assert_eq!(key_value_line(wmic, "Empty"), None);
        assert_eq!(key_value_line(wmic, "Missing"), None);
    }

    #[test]
    fn collect_never_panics_and_names_the_platform() {
        let facts = collect();
        assert_eq!(facts.platform, std::env::consts::OS);
        assert_eq!(facts.os_version, os_version());
    }
}
