//! Device actions the server can request; today that is locking the screen.
//!
//! Each action returns a human-readable result for the command's audit record. Where the OS
//! can only be asked, not made, to do something, the result says so instead of claiming
//! success.

// Unsupported systems use none of the shared helpers below.
#![cfg_attr(
    not(any(target_os = "linux", target_os = "macos", target_os = "windows")),
    allow(dead_code)
)]

use std::fmt;
use std::time::Duration;

/// Why an action did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// An OS tool failed, could not be started or did not finish.
    #[error("{program} failed: {detail}")]
    CommandFailed { program: String, detail: String },
    /// This operating system offers no way to perform the action.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
}

/// Locking can wait on a session manager or the window server, which may be slow on a busy
/// machine, but must still not hold up the command loop for long.
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Locks the screen of the interactive session(s) and returns what was done.
///
/// No supported OS lets a service show text on the lock screen, so `message` is only
/// recorded in the result.
pub fn lock_screen(message: Option<&str>) -> Result<String, ActionError> {
    imp::lock_screen(message)
}

/// Appends the note that the message was recorded but not shown.
fn with_message_note(result: String, message: Option<&str>) -> String {
    match message.map(str::trim).filter(|message| !message.is_empty()) {
        Some(message) => {
            format!("{result}; message {message:?} recorded only, the lock screen cannot show it")
        }
        None => result,
    }
}

/// Wraps a failed tool run as an [`ActionError`].
fn command_failed(program: &str, detail: impl fmt::Display) -> ActionError {
    ActionError::CommandFailed {
        program: program.to_owned(),
        detail: detail.to_string(),
    }
}

/// Counts the sessions in `loginctl list-sessions --no-legend` output, one per line.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn count_sessions(list_output: &str) -> usize {
    list_output
        .lines()
        .filter(|line| !line.trim().is_empty())
        .count()
}

#[cfg(target_os = "linux")]
mod imp {
    use super::{ActionError, LOCK_TIMEOUT, command_failed, count_sessions, with_message_note};
    use crate::platform::{run_checked, run_command};

    /// logind sends every session a Lock signal; each session's screen locker then locks
    /// it. The session count is best effort and only makes the result more informative.
    pub(super) fn lock_screen(message: Option<&str>) -> Result<String, ActionError> {
        let sessions = run_command(
            "loginctl",
            &["list-sessions", "--no-legend", "--no-pager"],
            LOCK_TIMEOUT,
        )
        .map(|out| count_sessions(&out));
        run_checked("loginctl", &["lock-sessions"], LOCK_TIMEOUT)
            .map_err(|detail| command_failed("loginctl", detail))?;
        let result = match sessions {
            Some(1) => "asked 1 login session to lock".to_owned(),
            Some(count) => format!("asked {count} login sessions to lock"),
            None => "asked all login sessions to lock".to_owned(),
        };
        Ok(with_message_note(result, message))
    }
}

#[cfg(target_os = "macos")]
mod imp {
    use super::{ActionError, LOCK_TIMEOUT, command_failed, with_message_note};
    use crate::platform::run_checked;

    /// Switching to the login window locks the user's session without needing the user's
    /// own context, which a root daemon does not have.
    const CGSESSION: &str =
        "/System/Library/CoreServices/Menu Extras/User.menu/Contents/Resources/CGSession";

    pub(super) fn lock_screen(message: Option<&str>) -> Result<String, ActionError> {
        match run_checked(CGSESSION, &["-suspend"], LOCK_TIMEOUT) {
            Ok(_) => Ok(with_message_note(
                "switched to the login window".to_owned(),
                message,
            )),
            // Recent macOS releases no longer ship CGSession. Sleeping the display is the
            // remaining root-level lever, and it locks only if the user requires a password
            // after sleep, which the result must admit.
            Err(cgsession_error) => {
                run_checked("/usr/bin/pmset", &["displaysleepnow"], LOCK_TIMEOUT).map_err(
                    |detail| {
                        command_failed(
                            "pmset",
                            format!("{detail} (after CGSession failed: {cgsession_error})"),
                        )
                    },
                )?;
                Ok(with_message_note(
                    format!(
                        "put the display to sleep, which locks only if a password is required \
                         after sleep (CGSession failed: {cgsession_error})"
                    ),
                    message,
                ))
            }
        }
    }
}

#[cfg(target_os = "windows")]
mod imp {
    use super::{ActionError, LOCK_TIMEOUT, command_failed, with_message_note};
    use crate::platform::run_checked;

    /// LockWorkStation locks only the session it runs in. A service runs in session 0, which
    /// has no user desktop, and rundll32 reports success either way, so the result says when
    /// the lock may not have reached the user.
    pub(super) fn lock_screen(message: Option<&str>) -> Result<String, ActionError> {
        run_checked(
            "rundll32.exe",
            &["user32.dll,LockWorkStation"],
            LOCK_TIMEOUT,
        )
        .map_err(|detail| command_failed("rundll32.exe", detail))?;
        // Windows sets SESSIONNAME only for interactive logon sessions, never for services.
        let result = if std::env::var_os("SESSIONNAME").is_some() {
            "locked the workstation".to_owned()
        } else {
            "asked Windows to lock the workstation; the agent is not running in an \
             interactive session, so the user's desktop may not be locked"
                .to_owned()
        };
        Ok(with_message_note(result, message))
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
mod imp {
    use super::ActionError;

    pub(super) fn lock_screen(_message: Option<&str>) -> Result<String, ActionError> {
        Err(ActionError::Unsupported(
            "screen lock is not supported on this operating system",
        ))
    }
}

// lock_screen itself is deliberately not called here: it would lock the sessions of
// whoever runs the tests.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_display_their_cause() {
        let failed = command_failed("loginctl", "exit status: 1: no session bus".to_owned());
        assert_eq!(
            failed.to_string(),
            "loginctl failed: exit status: 1: no session bus"
        );
        let unsupported = ActionError::Unsupported("screen lock is not supported here");
        assert_eq!(
            unsupported.to_string(),
            "unsupported: screen lock is not supported here"
        );
        let boxed: Box<dyn std::error::Error> = Box::new(unsupported);
        assert!(boxed.source().is_none());
    }

    #[test]
    fn message_is_noted_as_recorded_only() {
        assert_eq!(with_message_note("locked".to_owned(), None), "locked");
        assert_eq!(with_message_note("locked".to_owned(), Some("  ")), "locked");
        assert_eq!(
            with_message_note("locked".to_owned(), Some("Call \"IT\"")),
            "locked; message \"Call \\\"IT\\\"\" recorded only, the lock screen cannot show it"
        );
    }

    #[test]
    fn sessions_are_counted() {
        let out = "     2 1000 alice seat0 tty2\n    c1  120 gdm   seat0 tty1\n\n";
        assert_eq!(count_sessions(out), 2);
        assert_eq!(count_sessions(""), 0);
    }
}
