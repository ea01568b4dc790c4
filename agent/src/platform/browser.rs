//! Opening a URL in the user's default browser: `$BROWSER` when it is set
//! (each `:`-separated entry a command, `%s` standing for the URL, as
//! `xdg-open` reads it), else `xdg-open` on Linux, `open` on macOS and the
//! default-browser association (`url.dll`) on Windows. The URL is passed
//! as one argument, never through a shell.

/// The commands to try, in order, to open `url`.
pub fn commands(url: &str, browser_env: Option<&str>) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    for entry in browser_env.unwrap_or("").split(':') {
        let mut words: Vec<String> = entry.split_whitespace().map(str::to_owned).collect();
        if words.is_empty() {
            continue;
        }
        if words.iter().any(|w| w.contains("%s")) {
            for word in &mut words {
                *word = word.replace("%s", url);
            }
        } else {
            words.push(url.to_owned());
        }
        commands.push(words);
    }
    let system: &[&str] = if cfg!(target_os = "macos") {
        &["open"]
    } else if cfg!(windows) {
        &["rundll32.exe", "url.dll,FileProtocolHandler"]
    } else {
        &["xdg-open"]
    };
    let mut default: Vec<String> = system.iter().map(|s| (*s).to_owned()).collect();
    default.push(url.to_owned());
    commands.push(default);
    commands
}

/// Opens `url` with the first command that starts; false when none did.
/// Only `https` URLs are opened. The browser is left running; a thread
/// reaps the launcher when it exits.
pub fn open(url: &str, browser_env: Option<&str>) -> bool {
    if !url.starts_with("https://") {
        return false;
    }
    for command in commands(url, browser_env) {
        let Some((program, args)) = command.split_first() else {
            continue;
        };
        let mut process = std::process::Command::new(program);
        process
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Ok(mut child) = process.spawn() {
            std::thread::spawn(move || {
                let _ = child.wait();
            });
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browser_entries_come_first_and_the_system_opener_last() {
        let url = "https://id.example.com/login/device/redeem?txn=a&proof=b";
        let commands = commands(url, Some("firefox --new-tab:chromium %s --incognito"));
        assert_eq!(commands[0], vec!["firefox", "--new-tab", url]);
        assert_eq!(commands[1], vec!["chromium", url, "--incognito"]);
        let last = commands.last().unwrap();
        assert_eq!(last.last().map(String::as_str), Some(url));
        if cfg!(target_os = "linux") {
            assert_eq!(last[0], "xdg-open");
        }
        assert_eq!(super::commands(url, None).len(), 1);
        assert_eq!(super::commands(url, Some(" : ")).len(), 1);
    }

    #[test]
    fn only_https_urls_are_opened() {
        assert!(!open("file:///etc/passwd", Some("true")));
        assert!(!open("javascript:alert(1)", Some("true")));
    }
}
