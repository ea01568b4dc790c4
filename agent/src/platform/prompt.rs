//! What the person at the device sees during a sign-in: the number prompt
//! of `confirm` mode (type the number the browser shows) and the dialog
//! that shows a `bound` sign-in's code. Both go through the desktop's own
//! dialog tool where one is reachable; without one a number prompt answers
//! "no" (an unattended device never approves) and the code is not shown.
//! The texts are built by pure functions, tested here on every platform.

use std::time::Duration;

/// How long the person has to answer.
const PROMPT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the code stays on screen (the time a proof may take to arrive).
const CODE_TIMEOUT: Duration = Duration::from_secs(120);

fn clean(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(120).collect()
}

/// `confirm` mode: the person types the number the browser shows.
#[derive(Debug, Clone)]
pub struct NumberPrompt {
    pub app: String,
    pub user: String,
    /// The browser that started the sign-in ("Chrome 156 · Windows").
    pub browser: String,
    pub ip: String,
}

impl NumberPrompt {
    pub fn text(&self) -> String {
        format!(
            "Sign in to {} as {}?\nRequested by {} at {}.\n\nType the number your sign-in page shows. If you did not start this sign-in, cancel: someone may know your password.\n\n{} に {} としてサインインしますか?\n要求元: {} ({})\n\nサインイン画面に表示されている番号を入力してください。心当たりがない場合はキャンセルしてください。",
            clean(&self.app),
            clean(&self.user),
            clean(&self.browser),
            clean(&self.ip),
            clean(&self.app),
            clean(&self.user),
            clean(&self.browser),
            clean(&self.ip),
        )
    }

    /// Shows the prompt; the typed number, or `None` when the person
    /// cancelled or no prompt could be shown.
    pub fn ask(&self) -> Option<String> {
        let text = self.text();
        #[cfg(target_os = "linux")]
        let typed = graphical()
            .then(|| {
                super::run_dialog(
                    "zenity",
                    &["--entry", "--title=Latchkey", "--text", &text],
                    "",
                    PROMPT_TIMEOUT,
                )
            })
            .flatten();
        #[cfg(target_os = "macos")]
        let typed = {
            let script = format!(
                "text returned of (display dialog \"{}\" with title \"Latchkey\" default answer \"\" buttons {{\"Cancel\", \"OK\"}} default button \"OK\" giving up after 60)",
                applescript_escape(&text)
            );
            super::run_dialog("osascript", &[], &script, PROMPT_TIMEOUT)
        };
        #[cfg(not(any(target_os = "linux", target_os = "macos")))]
        let typed: Option<String> = {
            let _ = (text, PROMPT_TIMEOUT);
            None
        };
        typed.and_then(|t| typed_number(&t))
    }
}

/// The number in what the person typed: one or two digits (full-width
/// digits from a Japanese input method count), nothing else.
pub fn typed_number(typed: &str) -> Option<String> {
    let digits: String = typed
        .trim()
        .chars()
        .map(|c| match c {
            '０'..='９' => char::from_digit(u32::from(c) - u32::from('０'), 10).unwrap_or(c),
            other => other,
        })
        .collect();
    (!digits.is_empty() && digits.len() <= 2 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then_some(digits)
}

/// `bound` mode: the code for a sign-in the redemption link did not reach.
#[derive(Debug, Clone)]
pub struct CodeDialog {
    pub code: String,
    pub app: String,
    pub browser: String,
    pub ip: String,
    /// The issuer URL: the one sign-in page that may receive the code.
    pub issuer: String,
}

impl CodeDialog {
    /// The code in two groups of four, as people read it out.
    pub fn grouped_code(&self) -> String {
        let code = clean(&self.code);
        match code.char_indices().nth(4) {
            Some((split, _)) => format!("{} {}", &code[..split], &code[split..]),
            None => code,
        }
    }

    pub fn text(&self) -> String {
        format!(
            "Latchkey sign-in code: {code}\n\nFor: {app}\nRequested by {browser} at {ip}\n\nType this only into the Latchkey sign-in page at {issuer}. If you did not start this sign-in, do not type it anywhere: someone may know your password. Tell your IT department.\n\nLatchkey サインインコード: {code}\n対象: {app}\n要求元: {browser} ({ip})\n\nこのコードは {issuer} の Latchkey サインイン画面にのみ入力してください。心当たりがない場合はどこにも入力せず、IT 部門に知らせてください。第三者があなたのパスワードを知っている可能性があります。",
            code = self.grouped_code(),
            app = clean(&self.app),
            browser = clean(&self.browser),
            ip = clean(&self.ip),
            issuer = clean(&self.issuer),
        )
    }

    /// Shows the dialog until the person closes it (or it times out);
    /// false when no dialog could be shown. The code reaches the dialog
    /// tool on its standard input, never on its command line (which other
    /// local users can read in the process list).
    pub fn show(&self) -> bool {
        let text = self.text();
        #[cfg(target_os = "linux")]
        {
            graphical()
                && super::run_dialog(
                    "zenity",
                    &[
                        "--text-info",
                        "--title=Latchkey",
                        "--width=520",
                        "--height=420",
                    ],
                    &text,
                    CODE_TIMEOUT,
                )
                .is_some()
        }
        #[cfg(target_os = "macos")]
        {
            // osascript reads the script from standard input when given none.
            let script = format!(
                "display dialog \"{}\" with title \"Latchkey\" buttons {{\"OK\"}} default button \"OK\" with icon caution giving up after 120",
                applescript_escape(&text)
            );
            super::run_dialog("osascript", &[], &script, CODE_TIMEOUT).is_some()
        }
        #[cfg(not(any(target_os = "linux", target_os = "macos")))]
        {
            let _ = (text, CODE_TIMEOUT);
            false
        }
    }
}

#[cfg(target_os = "linux")]
fn graphical() -> bool {
    std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some()
}

#[cfg(any(target_os = "macos", test))]
fn applescript_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_number_prompt_names_app_user_and_browser_without_control_characters() {
        let prompt = NumberPrompt {
            app: "Payroll\u{1b}[31m".into(),
            user: "alice@example.com".into(),
            browser: "Chrome 156 · Windows".into(),
            ip: "203.0.113.7".into(),
        };
        let text = prompt.text();
        assert!(text.contains("Payroll[31m"));
        assert!(text.contains("alice@example.com"));
        assert!(text.contains("Chrome 156 · Windows at 203.0.113.7"));
        assert!(!text.contains('\u{1b}'));
    }

    #[test]
    fn only_a_one_or_two_digit_number_counts_as_typed() {
        assert_eq!(typed_number(" 42\n").as_deref(), Some("42"));
        assert_eq!(typed_number("４２").as_deref(), Some("42"));
        assert_eq!(typed_number("7").as_deref(), Some("7"));
        assert_eq!(typed_number(""), None);
        assert_eq!(typed_number("123"), None);
        assert_eq!(typed_number("4a"), None);
    }

    #[test]
    fn the_code_dialog_warns_where_the_code_may_go() {
        let dialog = CodeDialog {
            code: "12345678".into(),
            app: "勤怠管理".into(),
            browser: "Edge 130 · Windows".into(),
            ip: "10.0.0.5".into(),
            issuer: "https://id.example.co.jp".into(),
        };
        let text = dialog.text();
        assert!(text.contains("1234 5678"));
        assert!(text.contains("勤怠管理"));
        assert!(text.contains("Edge 130 · Windows at 10.0.0.5"));
        assert!(
            text.contains(
                "Type this only into the Latchkey sign-in page at https://id.example.co.jp"
            )
        );
        assert!(text.contains("someone may know your password"));
        assert_eq!(applescript_escape(r#"a "b" \c"#), r#"a \"b\" \\c"#);
    }
}
