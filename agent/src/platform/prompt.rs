//! Asking the person at the device to confirm a sign-in (`confirm` mode).
//! The agent runs as a service, so the prompt goes through the desktop's
//! own dialog tool where one is reachable; without one the answer is "no"
//! (an unattended device never approves on its own unless the explicit
//! auto-approve setting is on).

use std::time::Duration;

/// How long the person has to answer.
const PROMPT_TIMEOUT: Duration = Duration::from_secs(60);

/// The question, with the code the browser shows.
pub fn question(app: &str, user: &str, code: &str) -> String {
    let clean = |s: &str| -> String { s.chars().filter(|c| !c.is_control()).take(120).collect() };
    format!(
        "Sign in to {} as {}?\n\nConfirm only if your browser shows the code {}.",
        clean(app),
        clean(user),
        clean(code)
    )
}

/// Shows the question; true only if the person approved.
pub fn confirm_sign_in(app: &str, user: &str, code: &str) -> bool {
    let text = question(app, user, code);
    #[cfg(target_os = "linux")]
    {
        let graphical =
            std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
        graphical
            && super::run_command(
                "zenity",
                &["--question", "--title=Latchkey", "--text", &text],
                PROMPT_TIMEOUT,
            )
            .is_some()
    }
    #[cfg(target_os = "macos")]
    {
        let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
        let script = format!(
            "display dialog \"{escaped}\" with title \"Latchkey\" buttons {{\"Deny\", \"Approve\"}} default button \"Deny\" giving up after 60"
        );
        super::run_command("osascript", &["-e", &script], PROMPT_TIMEOUT)
            .is_some_and(|out| out.contains("button returned:Approve"))
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    {
        let _ = (text, PROMPT_TIMEOUT);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_question_names_app_user_and_code_without_control_characters() {
        let q = question("Payroll\u{1b}[31m", "alice@example.com", "123456");
        assert!(q.contains("Payroll[31m"));
        assert!(q.contains("alice@example.com"));
        assert!(q.contains("123456"));
        assert!(!q.contains('\u{1b}'));
    }
}
