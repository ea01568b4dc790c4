//! Security posture the agent reports: OS version, disk encryption, screen lock and firewall
//! state, read the way a root/SYSTEM service can read them.
//!
//! The server makes compliance decisions from these values, so a check the OS does not let a
//! service answer reliably is reported as [`CheckState::Unknown`] rather than guessed.

use std::path::Path;

/// The outcome of one posture check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckState {
    /// The protection is on.
    Enabled,
    /// The OS answered, and the protection is off.
    Disabled,
    /// The agent could not find out.
    Unknown,
}

impl CheckState {
    /// The wire name of the state: `"enabled"`, `"disabled"` or `"unknown"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckState::Enabled => "enabled",
            CheckState::Disabled => "disabled",
            CheckState::Unknown => "unknown",
        }
    }

    /// Maps a yes/no/don't-know verdict onto a state.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    fn from_verdict(verdict: Option<bool>) -> CheckState {
        match verdict {
            Some(true) => CheckState::Enabled,
            Some(false) => CheckState::Disabled,
            None => CheckState::Unknown,
        }
    }
}

/// The device's security posture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posture {
    /// Same comparable version string as [`super::facts::DeviceFacts::os_version`].
    pub os_version: String,
    /// Whether the system disk is encrypted.
    pub disk_encryption: CheckState,
    /// Whether the screen locks itself when the device is left alone.
    pub screen_lock: CheckState,
    /// Whether a host firewall filters traffic.
    pub firewall: CheckState,
}

/// Runs every posture check for the running device.
pub fn collect() -> Posture {
    Posture {
        os_version: super::facts::os_version(),
        disk_encryption: imp::disk_encryption(),
        screen_lock: imp::screen_lock(),
        firewall: imp::firewall(),
    }
}

/// The filesystem mounted at `/`, as the kernel describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
struct RootMount {
    /// `major:minor` of the backing device; absent when read from /proc/mounts.
    device_number: Option<(u32, u32)>,
    /// The mount source, such as `/dev/mapper/vg-root` or `overlay`.
    source: String,
    fstype: String,
}

/// Finds the root mount in /proc/self/mountinfo text. Later mounts on `/` hide earlier
/// ones, so the last entry wins.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn root_mount_from_mountinfo(text: &str) -> Option<RootMount> {
    let mut found = None;
    for line in text.lines() {
        // Optional fields vary in number, so the line is split at the ` - ` separator that
        // proc(5) guarantees; spaces inside fields are escaped as \040 and cannot match it.
        let Some((before, after)) = line.split_once(" - ") else {
            continue;
        };
        let mut fields = before.split_whitespace();
        let device_number = fields.nth(2);
        let mount_point = fields.nth(1);
        if mount_point != Some("/") {
            continue;
        }
        let mut fields = after.split_whitespace();
        let fstype = fields.next().unwrap_or_default();
        let source = fields.next().unwrap_or_default();
        found = Some(RootMount {
            device_number: device_number.and_then(parse_device_number),
            source: unescape_mount_field(source),
            fstype: unescape_mount_field(fstype),
        });
    }
    found
}

/// Finds the root mount in /proc/mounts text, the fallback when mountinfo is unavailable.
/// Old kernels list a `rootfs` entry first, which the real root mount then overrides.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn root_mount_from_mounts(text: &str) -> Option<RootMount> {
    text.lines().rev().find_map(|line| {
        let mut fields = line.split_whitespace();
        let source = fields.next()?;
        let mount_point = fields.next()?;
        let fstype = fields.next()?;
        (mount_point == "/").then(|| RootMount {
            device_number: None,
            source: unescape_mount_field(source),
            fstype: unescape_mount_field(fstype),
        })
    })
}

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_device_number(field: &str) -> Option<(u32, u32)> {
    let (major, minor) = field.split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Undoes the `\NNN` octal escapes the kernel uses for spaces and other awkward bytes in
/// mount fields.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn unescape_mount_field(field: &str) -> String {
    let mut bytes = Vec::with_capacity(field.len());
    let mut rest = field.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'\\' {
            let code = tail
                .get(..3)
                .filter(|digits| digits.iter().all(|d| (b'0'..=b'7').contains(d)))
                .and_then(|digits| std::str::from_utf8(digits).ok())
                .and_then(|digits| u8::from_str_radix(digits, 8).ok());
            if let Some(code) = code {
                bytes.push(code);
                rest = tail.get(3..).unwrap_or_default();
                continue;
            }
        }
        bytes.push(byte);
        rest = tail;
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Resolves the kernel name (`nvme0n1p3`, `dm-1`) of the block device behind the root mount,
/// looking under `sys` (normally `/sys`).
///
/// The device number is preferred because the mount source can be the unhelpful `/dev/root`.
/// Filesystems such as btrfs report an anonymous device number instead, and then the source's
/// `/dev` symlinks (`/dev/mapper/…`, `/dev/disk/by-uuid/…`) lead to the kernel name. Roots
/// that are not block devices at all (overlay in a container, tmpfs, ZFS datasets) give `None`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn root_block_device(sys: &Path, mount: &RootMount) -> Option<String> {
    if let Some((major, minor)) = mount.device_number {
        let link = sys.join("dev/block").join(format!("{major}:{minor}"));
        if let Some(name) = std::fs::read_link(link).ok().and_then(|target| {
            target
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_owned)
        }) {
            return Some(name);
        }
    }
    let source = Path::new(&mount.source);
    if !source.starts_with("/dev") {
        return None;
    }
    let resolved = std::fs::canonicalize(source).ok()?;
    let name = resolved.file_name()?.to_str()?.to_owned();
    sys.join("class/block").join(&name).exists().then_some(name)
}

/// Device-mapper stacks are shallow in practice; the limit only guards against a loop in a
/// corrupted or fake sysfs.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
const MAX_STACK_DEPTH: usize = 8;

/// Decides whether block device `name` (under `class_block`, normally `/sys/class/block`)
/// stores its data only through dm-crypt.
///
/// A device-mapper device whose `dm/uuid` starts with `CRYPT-` is a dm-crypt target (LUKS1,
/// LUKS2, plain, BitLocker, TrueCrypt). Anything else is encrypted only if every device it is
/// built from (`slaves/`) is, so LVM on LUKS counts, while an LVM volume group that spans one
/// encrypted and one plain disk does not. A leaf device without crypt is `Some(false)`; a
/// device that cannot be found is `None`. Self-encrypting drives are invisible here and
/// report as plain.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn block_device_encrypted(class_block: &Path, name: &str, depth: usize) -> Option<bool> {
    let device = class_block.join(name);
    if depth > MAX_STACK_DEPTH || !device.exists() {
        return None;
    }
    let dm_uuid = std::fs::read_to_string(device.join("dm/uuid")).unwrap_or_default();
    if dm_uuid.trim_start().starts_with("CRYPT-") {
        return Some(true);
    }
    // Partitions have no slaves directory, and whole disks have an empty one.
    let slaves: Vec<String> = std::fs::read_dir(device.join("slaves"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| entry.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    if slaves.is_empty() {
        return Some(false);
    }
    let mut verdict = Some(true);
    for slave in slaves {
        match block_device_encrypted(class_block, &slave, depth.saturating_add(1)) {
            Some(true) => {}
            Some(false) => return Some(false),
            None => verdict = None,
        }
    }
    verdict
}

/// A chain being scanned in `nft list ruleset` output.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
struct ChainScan {
    /// Brace depth of the chain body; the chain ends when the depth drops below it.
    depth: usize,
    filter_hook: bool,
    drop_policy: bool,
    rules: usize,
}

/// Whether `nft list ruleset` output contains a filtering base chain: a `type filter` chain
/// attached to a hook that drops by default or holds at least one rule.
///
/// Hooked chains that accept everything and hold no rules filter nothing, and iptables-nft
/// creates exactly such chains when it is merely listed, so they do not count. NAT and route
/// chains do not filter either.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn nft_ruleset_filters(text: &str) -> bool {
    let mut depth = 0usize;
    let mut chain: Option<ChainScan> = None;
    for line in text.lines().map(str::trim) {
        let opens = line.matches('{').count();
        let closes = line.matches('}').count();
        depth = depth.saturating_add(opens).saturating_sub(closes);

        let Some(scan) = chain.as_mut() else {
            if line.starts_with("chain ") && opens > closes {
                chain = Some(ChainScan {
                    depth,
                    filter_hook: false,
                    drop_policy: false,
                    rules: 0,
                });
            }
            continue;
        };
        if depth < scan.depth {
            if scan.filter_hook && (scan.drop_policy || scan.rules > 0) {
                return true;
            }
            chain = None;
        } else if line.starts_with("type ") {
            scan.filter_hook = line.starts_with("type filter ") && line.contains(" hook ");
            scan.drop_policy |= line.contains("policy drop");
        } else if line.starts_with("policy ") {
            scan.drop_policy |= line.contains("drop");
        } else if !(line.is_empty() || line.starts_with('#') || line.starts_with("comment ")) {
            scan.rules = scan.rules.saturating_add(1);
        }
    }
    false
}

/// Whether `iptables -S` output (the filter table) contains a rule or a non-ACCEPT policy;
/// user-defined chains (`-N`) alone filter nothing.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn iptables_rules_filter(text: &str) -> bool {
    text.lines().any(|line| {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("-A") => true,
            Some("-P") => words.nth(1).is_some_and(|policy| policy != "ACCEPT"),
            _ => false,
        }
    })
}

/// Reads `fdesetup status`. A volume being decrypted is reported as not protected, since
/// FileVault is on its way off.
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
fn fdesetup_state(text: &str) -> CheckState {
    if text.contains("Decryption in progress") || text.contains("FileVault is Off") {
        CheckState::Disabled
    } else if text.contains("FileVault is On") {
        CheckState::Enabled
    } else {
        CheckState::Unknown
    }
}

/// Reads `socketfilterfw --getglobalstate`: `Firewall is enabled. (State = 1)`, where state 2
/// means "block all incoming connections", which is also on.
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
fn socketfilterfw_state(text: &str) -> CheckState {
    let state = text
        .split_once("State = ")
        .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse::<u8>().ok());
    match state {
        Some(0) => CheckState::Disabled,
        Some(_) => CheckState::Enabled,
        None if text.contains("is disabled") => CheckState::Disabled,
        None if text.contains("is enabled") || text.contains("is blocking") => CheckState::Enabled,
        None => CheckState::Unknown,
    }
}

/// Reads `manage-bde -status <drive>`. "Protection Off" covers both an unencrypted volume and
/// suspended BitLocker, neither of which protects the data. Localized output has no
/// "Protection Status" line and is Unknown.
#[cfg_attr(not(target_os = "windows"), allow(dead_code))]
fn manage_bde_state(text: &str) -> CheckState {
    let status = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("Protection Status:"))
        .map(str::trim);
    match status {
        Some(status) if status.starts_with("Protection On") => CheckState::Enabled,
        Some(status) if status.starts_with("Protection Off") => CheckState::Disabled,
        _ => CheckState::Unknown,
    }
}

/// Reads `netsh advfirewall show allprofiles state`. The firewall counts as enabled only if
/// every profile is on, because the public profile is the one that matters on café Wi-Fi.
#[cfg_attr(not(target_os = "windows"), allow(dead_code))]
fn netsh_firewall_state(text: &str) -> CheckState {
    let mut seen = false;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("State") {
            continue;
        }
        match words.next() {
            Some(value) if value.eq_ignore_ascii_case("ON") => seen = true,
            Some(value) if value.eq_ignore_ascii_case("OFF") => return CheckState::Disabled,
            _ => return CheckState::Unknown,
        }
    }
    if seen {
        CheckState::Enabled
    } else {
        CheckState::Unknown
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use super::{
        CheckState, block_device_encrypted, iptables_rules_filter, nft_ruleset_filters,
        root_block_device, root_mount_from_mountinfo, root_mount_from_mounts,
    };
    use crate::platform::{QUERY_TIMEOUT, run_command};
    use std::fs;
    use std::path::Path;

    pub(super) fn disk_encryption() -> CheckState {
        let mount = fs::read_to_string("/proc/self/mountinfo")
            .ok()
            .and_then(|text| root_mount_from_mountinfo(&text))
            .or_else(|| {
                fs::read_to_string("/proc/mounts")
                    .ok()
                    .and_then(|text| root_mount_from_mounts(&text))
            });
        let sys = Path::new("/sys");
        let Some(name) = mount.and_then(|mount| root_block_device(sys, &mount)) else {
            return CheckState::Unknown;
        };
        CheckState::from_verdict(block_device_encrypted(&sys.join("class/block"), &name, 0))
    }

    /// Screen locking on Linux is a per-user, per-desktop setting (GNOME's dconf database,
    /// KDE's kscreenlockerrc, xscreensaver, swayidle, …) that lives inside each user's
    /// session and D-Bus; a system service has no reliable way to read it, and servers have
    /// no screen at all. A guess would mislead the server, so this is always Unknown.
    pub(super) fn screen_lock() -> CheckState {
        CheckState::Unknown
    }

    /// nftables is checked first and iptables second, because hosts still on the legacy
    /// iptables backend keep their rules where `nft` cannot see them.
    pub(super) fn firewall() -> CheckState {
        let nft = run_command("nft", &["list", "ruleset"], QUERY_TIMEOUT);
        if nft.as_deref().is_some_and(nft_ruleset_filters) {
            return CheckState::Enabled;
        }
        let iptables = run_command("iptables", &["-S"], QUERY_TIMEOUT);
        if iptables.as_deref().is_some_and(iptables_rules_filter) {
            return CheckState::Enabled;
        }
        if nft.is_some() || iptables.is_some() {
            CheckState::Disabled
        } else {
            CheckState::Unknown
        }
    }
}

#[cfg(target_os = "macos")]
mod imp {
    use super::{CheckState, fdesetup_state, socketfilterfw_state};
    use crate::platform::{QUERY_TIMEOUT, run_command};

    pub(super) fn disk_encryption() -> CheckState {
        run_command("/usr/bin/fdesetup", &["status"], QUERY_TIMEOUT)
            .map_or(CheckState::Unknown, |out| fdesetup_state(&out))
    }

    /// The "require password after sleep" setting belongs to each user and is not readable
    /// by a root daemon, so this is always Unknown.
    pub(super) fn screen_lock() -> CheckState {
        CheckState::Unknown
    }

    pub(super) fn firewall() -> CheckState {
        run_command(
            "/usr/libexec/ApplicationFirewall/socketfilterfw",
            &["--getglobalstate"],
            QUERY_TIMEOUT,
        )
        .map_or(CheckState::Unknown, |out| socketfilterfw_state(&out))
    }
}

#[cfg(target_os = "windows")]
mod imp {
    use super::{CheckState, manage_bde_state, netsh_firewall_state};
    use crate::platform::{QUERY_TIMEOUT, run_command};

    /// Checks the volume Windows booted from, which is not always C:.
    pub(super) fn disk_encryption() -> CheckState {
        let drive = std::env::var("SystemDrive")
            .ok()
            .filter(|drive| !drive.is_empty())
            .unwrap_or_else(|| "C:".to_owned());
        run_command("manage-bde", &["-status", &drive], QUERY_TIMEOUT)
            .map_or(CheckState::Unknown, |out| manage_bde_state(&out))
    }

    /// Screen-saver locking is a per-user setting that SYSTEM cannot read reliably, so this
    /// is always Unknown.
    pub(super) fn screen_lock() -> CheckState {
        CheckState::Unknown
    }

    pub(super) fn firewall() -> CheckState {
        run_command(
            "netsh",
            &["advfirewall", "show", "allprofiles", "state"],
            QUERY_TIMEOUT,
        )
        .map_or(CheckState::Unknown, |out| netsh_firewall_state(&out))
    }
}

/// Other systems are not supported targets; nothing about them is claimed.
#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
mod imp {
    use super::CheckState;

    pub(super) fn disk_encryption() -> CheckState {
        CheckState::Unknown
    }

    pub(super) fn screen_lock() -> CheckState {
        CheckState::Unknown
    }

    pub(super) fn firewall() -> CheckState {
        CheckState::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_have_wire_names() {
        assert_eq!(CheckState::Enabled.as_str(), "enabled");
        assert_eq!(CheckState::Disabled.as_str(), "disabled");
        assert_eq!(CheckState::Unknown.as_str(), "unknown");
    }

    const MOUNTINFO: &str = "\
22 1 0:21 / / rw,relatime - rootfs rootfs rw
25 22 259:3 / / rw,relatime shared:1 - ext4 /dev/root rw,errors=remount-ro
26 25 0:5 / /dev rw,nosuid shared:2 - devtmpfs udev rw
27 25 259:4 / /home/my\\040files rw - ext4 /dev/nvme0n1p4 rw
";

    #[test]
    fn mountinfo_root_is_the_last_root_mount() {
        let root = root_mount_from_mountinfo(MOUNTINFO).expect("root is mounted");
        assert_eq!(
            root,
            RootMount {
                device_number: Some((259, 3)),
                source: "/dev/root".to_owned(),
                fstype: "ext4".to_owned(),
            }
        );
        assert_eq!(
            root_mount_from_mountinfo("26 25 0:5 / /dev rw - devtmpfs udev rw\n"),
            None
        );
    }

    #[test]
    fn mountinfo_in_a_container_is_overlay() {
        let text = "612 540 0:52 / / rw,relatime master:262 - overlay overlay rw,lowerdir=/a:/b\n";
        let root = root_mount_from_mountinfo(text).expect("root is mounted");
        assert_eq!(root.fstype, "overlay");
        assert_eq!(root.source, "overlay");
        // The anonymous device and the non-/dev source both fail to resolve.
        let empty = std::env::temp_dir().join("latchkey-no-such-sysfs");
        assert_eq!(root_block_device(&empty, &root), None);
    }

    #[test]
    fn proc_mounts_root_overrides_rootfs() {
        let text = "rootfs / rootfs rw 0 0\n/dev/mapper/vg-root / ext4 rw,relatime 0 0\nproc /proc proc rw 0 0\n";
        let root = root_mount_from_mounts(text).expect("root is mounted");
        assert_eq!(root.source, "/dev/mapper/vg-root");
        assert_eq!(root.device_number, None);
    }

    #[test]
    fn mount_fields_are_unescaped() {
        assert_eq!(unescape_mount_field("/mnt/my\\040disk"), "/mnt/my disk");
        assert_eq!(
            unescape_mount_field("tab\\011back\\134slash"),
            "tab\tback\\slash"
        );
        assert_eq!(unescape_mount_field("odd\\9x\\"), "odd\\9x\\");
        assert_eq!(parse_device_number("253:1"), Some((253, 1)));
        assert_eq!(parse_device_number("x:1"), None);
    }

    /// A throwaway sysfs tree that removes itself even when an assertion fails.
    #[cfg(unix)]
    struct FakeSys(std::path::PathBuf);

    #[cfg(unix)]
    impl FakeSys {
        fn new(name: &str) -> FakeSys {
            let root = std::env::temp_dir()
                .join(format!("latchkey-posture-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(root.join("class/block")).unwrap();
            std::fs::create_dir_all(root.join("dev/block")).unwrap();
            FakeSys(root)
        }

        /// Adds a block device; `dm_uuid` makes it a device-mapper device.
        fn device(&self, name: &str, number: &str, dm_uuid: Option<&str>, slaves: &[&str]) {
            let dir = self.0.join("class/block").join(name);
            std::fs::create_dir_all(&dir).unwrap();
            if let Some(uuid) = dm_uuid {
                std::fs::create_dir_all(dir.join("dm")).unwrap();
                std::fs::write(dir.join("dm/uuid"), format!("{uuid}\n")).unwrap();
                std::fs::create_dir_all(dir.join("slaves")).unwrap();
            }
            for slave in slaves {
                std::fs::create_dir_all(dir.join("slaves").join(slave)).unwrap();
            }
            let target = format!("../../devices/virtual/block/{name}");
            std::os::unix::fs::symlink(target, self.0.join("dev/block").join(number)).unwrap();
        }

        fn root_state(&self, number: (u32, u32)) -> CheckState {
            let mount = RootMount {
                device_number: Some(number),
                source: "/dev/root".to_owned(),
                fstype: "ext4".to_owned(),
            };
            let name = root_block_device(&self.0, &mount);
            CheckState::from_verdict(
                name.and_then(|n| block_device_encrypted(&self.0.join("class/block"), &n, 0)),
            )
        }
    }

    #[cfg(unix)]
    impl Drop for FakeSys {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[cfg(unix)]
    #[test]
    fn lvm_on_luks_is_encrypted() {
        let sys = FakeSys::new("lvm-on-luks");
        sys.device("nvme0n1p3", "259:3", None, &[]);
        sys.device(
            "dm-0",
            "253:0",
            Some("CRYPT-LUKS2-0123abcd-luks-0123"),
            &["nvme0n1p3"],
        );
        sys.device("dm-1", "253:1", Some("LVM-abcdefgh"), &["dm-0"]);
        assert_eq!(sys.root_state((253, 1)), CheckState::Enabled);
        assert_eq!(sys.root_state((253, 0)), CheckState::Enabled);
        assert_eq!(sys.root_state((259, 3)), CheckState::Disabled);
    }

    #[cfg(unix)]
    #[test]
    fn lvm_spanning_a_plain_disk_is_not_encrypted() {
        let sys = FakeSys::new("mixed");
        sys.device("sda1", "8:1", None, &[]);
        sys.device("sdb1", "8:17", None, &[]);
        sys.device("dm-0", "253:0", Some("CRYPT-LUKS1-feed"), &["sda1"]);
        sys.device("dm-1", "253:1", Some("LVM-vg-root"), &["dm-0", "sdb1"]);
        assert_eq!(sys.root_state((253, 1)), CheckState::Disabled);
    }

    #[cfg(unix)]
    #[test]
    fn unresolvable_devices_are_unknown() {
        let sys = FakeSys::new("unresolvable");
        // dm-1 is built from a device that sysfs does not show.
        sys.device("dm-1", "253:1", Some("LVM-vg-root"), &["dm-9"]);
        assert_eq!(sys.root_state((253, 1)), CheckState::Unknown);
        assert_eq!(sys.root_state((7, 7)), CheckState::Unknown);
    }

    #[test]
    fn nft_filtering_chains_are_detected() {
        let desktop = "\
table inet filter {
\tchain input {
\t\ttype filter hook input priority filter; policy drop;
\t\tct state established,related accept
\t\tiif \"lo\" accept
\t\ttcp dport { 22, 443 } accept
\t}
\tchain forward {
\t\ttype filter hook forward priority filter; policy accept;
\t}
}
";
        assert!(nft_ruleset_filters(desktop));

        let drop_only = "table ip filter {\n\tchain INPUT {\n\t\ttype filter hook input priority filter; policy drop;\n\t}\n}\n";
        assert!(nft_ruleset_filters(drop_only));

        let rules_in_separate_chain = "\
table ip filter {
\tchain INPUT {
\t\ttype filter hook input priority filter; policy accept;
\t}
\tchain FORWARD {
\t\ttype filter hook forward priority filter; policy accept;
\t\tcounter packets 0 bytes 0 jump DOCKER-USER
\t}
}
";
        assert!(nft_ruleset_filters(rules_in_separate_chain));
    }

    #[test]
    fn nft_non_filtering_rulesets_are_not_a_firewall() {
        assert!(!nft_ruleset_filters(""));

        // What iptables-nft leaves behind after merely listing rules.
        let empty_chains = "\
table ip filter {
\tchain INPUT {
\t\ttype filter hook input priority filter; policy accept;
\t}
\tchain OUTPUT {
\t\ttype filter hook output priority filter; policy accept;
\t}
}
";
        assert!(!nft_ruleset_filters(empty_chains));

        let nat_only = "\
table ip nat {
\tchain POSTROUTING {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\toifname \"eth0\" masquerade
\t}
}
";
        assert!(!nft_ruleset_filters(nat_only));

        // Rules in a regular chain run only if a hooked chain jumps to them.
        let unhooked = "\
table inet t {
\tset blocked {
\t\ttype ipv4_addr
\t\telements = { 10.0.0.1,
\t\t\t     10.0.0.2 }
\t}
\tchain helper {
\t\tip saddr @blocked drop
\t}
\tchain input {
\t\ttype filter hook input priority 0; policy accept;
\t}
}
";
        assert!(!nft_ruleset_filters(unhooked));
    }

    #[test]
    fn nft_multi_line_sets_stay_inside_their_chain() {
        let text = "\
table inet t {
\tchain input {
\t\ttype filter hook input priority 0; policy accept;
\t\tip saddr { 10.0.0.1,
\t\t\t   10.0.0.2 } drop
\t}
}
";
        assert!(nft_ruleset_filters(text));
    }

    #[test]
    fn iptables_rules_and_policies_are_detected() {
        let open = "-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n";
        assert!(!iptables_rules_filter(open));
        assert!(!iptables_rules_filter(&format!("{open}-N DOCKER\n")));
        assert!(iptables_rules_filter(
            "-P INPUT DROP\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n"
        ));
        assert!(iptables_rules_filter(&format!(
            "{open}-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n"
        )));
    }

    #[test]
    fn fdesetup_output_is_read() {
        assert_eq!(fdesetup_state("FileVault is On.\n"), CheckState::Enabled);
        assert_eq!(fdesetup_state("FileVault is Off.\n"), CheckState::Disabled);
        assert_eq!(
            fdesetup_state("FileVault is On.\nEncryption in progress: Percent completed = 12.3\n"),
            CheckState::Enabled
        );
        assert_eq!(
            fdesetup_state("FileVault is On.\nDecryption in progress: Percent completed = 40.0\n"),
            CheckState::Disabled
        );
        assert_eq!(
            fdesetup_state("Error: something else\n"),
            CheckState::Unknown
        );
    }

    #[test]
    fn socketfilterfw_output_is_read() {
        assert_eq!(
            socketfilterfw_state("Firewall is enabled. (State = 1)\n"),
            CheckState::Enabled
        );
        assert_eq!(
            socketfilterfw_state("Firewall is disabled. (State = 0)\n"),
            CheckState::Disabled
        );
        assert_eq!(
            socketfilterfw_state(
                "Firewall is blocking all non-essential incoming connections. (State = 2)\n"
            ),
            CheckState::Enabled
        );
        assert_eq!(
            socketfilterfw_state("Firewall is enabled.\n"),
            CheckState::Enabled
        );
        assert_eq!(socketfilterfw_state(""), CheckState::Unknown);
    }

    const MANAGE_BDE_ON: &str = "\
BitLocker Drive Encryption: Configuration Tool version 10.0.22621
Copyright (C) 2013 Microsoft Corporation. All rights reserved.

Volume C: [OS]
[OS Volume]

    Size:                 475.83 GB
    BitLocker Version:    2.0
    Conversion Status:    Used Space Only Encrypted
    Percentage Encrypted: 100.0%
    Encryption Method:    XTS-AES 128
    Protection Status:    Protection On
    Lock Status:          Unlocked
    Identification Field: Unknown
    Key Protectors:
        TPM
        Numerical Password
";

    #[test]
    fn manage_bde_output_is_read() {
        assert_eq!(manage_bde_state(MANAGE_BDE_ON), CheckState::Enabled);
        let off = MANAGE_BDE_ON.replace("Protection On", "Protection Off");
        assert_eq!(manage_bde_state(&off), CheckState::Disabled);
        let suspended = MANAGE_BDE_ON.replace("Protection On", "Protection Off (1 reboots left)");
        assert_eq!(manage_bde_state(&suspended), CheckState::Disabled);
        assert_eq!(
            manage_bde_state("    Schutzstatus:    Der Schutz ist aktiviert.\n"),
            CheckState::Unknown
        );
    }

    const NETSH: &str = "\r
Domain Profile Settings: \r
----------------------------------------------------------------------\r
State                                 ON\r
\r
Private Profile Settings: \r
----------------------------------------------------------------------\r
State                                 ON\r
\r
Public Profile Settings: \r
----------------------------------------------------------------------\r
State                                 ON\r
Ok.\r
\r
";

    #[test]
    fn netsh_output_is_read() {
        assert_eq!(netsh_firewall_state(NETSH), CheckState::Enabled);
        let public_off = NETSH.replacen(
            "State                                 ON\r\nOk.",
            "State                                 OFF\r\nOk.",
            1,
        );
        assert_eq!(netsh_firewall_state(&public_off), CheckState::Disabled);
        assert_eq!(
            netsh_firewall_state("Status    EIN\r\n"),
            CheckState::Unknown
        );
    }

    #[test]
    fn collect_never_panics() {
        let posture = collect();
        assert_eq!(posture.os_version, crate::platform::facts::os_version());
        if cfg!(target_os = "linux") {
            assert_eq!(posture.screen_lock, CheckState::Unknown);
        }
    }
}
