//! Operating-system integration for the agent: device facts, security posture, device
//! actions and service installation. Each submodule keeps its per-OS code small and behind
//! `cfg(target_os)`, and puts the parsing of what the OS prints into pure, unit-tested
//! functions.
//!
//! This module owns [`run_command`], the only way the agent runs OS tools. The agent is a
//! long-running root/SYSTEM service, so a tool that hangs (a stuck D-Bus call, a slow WMI
//! query) must cost it a few seconds, never the service itself.

pub mod actions;
pub mod browser;
pub mod facts;
pub mod posture;
pub mod prompt;
pub mod service;

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long a fact or posture query may run; every query is optional, so a tool that takes
/// longer than this is treated as unavailable.
pub(crate) const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a running child is polled; short enough that fast tools return promptly,
/// long enough not to busy-spin on a two-core endpoint.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// What a finished child printed and how it exited.
struct CommandOutput {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Why an OS tool gave no answer. The texts end up in command results and
/// installation reports that an administrator reads.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("could not start {program}: {source}")]
    NotStarted {
        program: String,
        source: std::io::Error,
    },
    #[error("could not wait for {program}: {source}")]
    NotAwaited {
        program: String,
        source: std::io::Error,
    },
    #[error("{program} did not finish within {} ms and was stopped", .timeout.as_millis())]
    TimedOut { program: String, timeout: Duration },
    /// The tool ran and exited unsuccessfully; `said` is what it printed
    /// about it, trimmed, possibly empty.
    #[error("{}", exit_text(.status, .said))]
    ExitedUnsuccessfully { status: ExitStatus, said: String },
}

/// "exit status: 3: oops", or the status alone when the tool said nothing.
fn exit_text(status: &ExitStatus, said: &str) -> String {
    if said.is_empty() {
        status.to_string()
    } else {
        format!("{status}: {said}")
    }
}

/// Runs `program` with `args` and returns its standard output if it exited successfully.
///
/// Returns `None` when the program is missing, cannot be started, exits unsuccessfully or
/// does not finish within `timeout` (it is then killed). Callers treat all of these the same
/// way: the OS did not answer, so the value is unknown.
pub(crate) fn run_command(program: &str, args: &[&str], timeout: Duration) -> Option<String> {
    let output = run_command_output(program, args, timeout).ok()?;
    output.status.success().then_some(output.stdout)
}

/// Like [`run_command`], but explains a failure, for actions and installation, whose
/// results are shown to an administrator who needs to know why something did not happen.
pub(crate) fn run_checked(
    program: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<String, CommandError> {
    let output = run_command_output(program, args, timeout)?;
    if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(failure(&output))
    }
}

/// Summarises a failed run; many Windows tools print errors on stdout, so stdout is used
/// when stderr is empty.
fn failure(output: &CommandOutput) -> CommandError {
    let stderr = output.stderr.trim();
    let said = if stderr.is_empty() {
        output.stdout.trim()
    } else {
        stderr
    };
    CommandError::ExitedUnsuccessfully {
        status: output.status,
        said: said.to_owned(),
    }
}

/// Which pipe a reader thread drained.
enum Stream {
    Stdout,
    Stderr,
}

/// Spawns `program` and waits for it with a deadline, returning why it gave no answer on error.
///
/// The pipes are drained on helper threads because a child that fills a pipe buffer (a large
/// `nft list ruleset`, for example) would otherwise block forever while we wait for it to exit.
fn run_command_output(
    program: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<CommandOutput, CommandError> {
    run_command_full(program, args, None, timeout)
}

/// Runs a desktop dialog tool: `input` goes to its standard input (never
/// its command line, which every local user can read in the process
/// list), and it keeps the user's locale, so Japanese text shows.
pub(crate) fn run_dialog(
    program: &str,
    args: &[&str],
    input: &str,
    timeout: Duration,
) -> Option<String> {
    let output = run_command_full(program, args, Some(input), timeout).ok()?;
    output.status.success().then_some(output.stdout)
}

fn run_command_full(
    program: &str,
    args: &[&str],
    input: Option<&str>,
    timeout: Duration,
) -> Result<CommandOutput, CommandError> {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if input.is_none() {
        // The parsers expect the untranslated messages of Unix tools.
        command.env("LC_ALL", "C");
    }
    hide_console_window(&mut command);

    let start = Instant::now();
    let mut child = command.spawn().map_err(|source| CommandError::NotStarted {
        program: program.to_owned(),
        source,
    })?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        let text = text.to_owned();
        // Written from a thread, so a child that never reads cannot block us;
        // dropping the pipe afterwards ends its input.
        let _ = thread::Builder::new()
            .name("latchkey-command-input".to_owned())
            .spawn(move || {
                use std::io::Write as _;
                let _ = stdin.write_all(text.as_bytes());
            });
    }

    let (sender, receiver) = mpsc::channel();
    let mut readers = 0usize;
    if let Some(pipe) = child.stdout.take() {
        readers += usize::from(spawn_reader(pipe, Stream::Stdout, sender.clone()));
    }
    if let Some(pipe) = child.stderr.take() {
        readers += usize::from(spawn_reader(pipe, Stream::Stderr, sender));
    }

    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(source) => {
                kill_and_reap(&mut child);
                return Err(CommandError::NotAwaited {
                    program: program.to_owned(),
                    source,
                });
            }
        }
        if start.elapsed() >= timeout {
            kill_and_reap(&mut child);
            return Err(CommandError::TimedOut {
                program: program.to_owned(),
                timeout,
            });
        }
        thread::sleep(POLL_INTERVAL);
    };

    // A grandchild that inherited a pipe can keep it open after the child exits, so the
    // output is awaited only until the deadline; a reader still blocked then is abandoned.
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    for _ in 0..readers {
        let remaining = timeout.saturating_sub(start.elapsed()).max(POLL_INTERVAL);
        match receiver.recv_timeout(remaining) {
            Ok((Stream::Stdout, bytes)) => stdout = bytes,
            Ok((Stream::Stderr, bytes)) => stderr = bytes,
            Err(_) => break,
        }
    }

    Ok(CommandOutput {
        status,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}

/// Drains `pipe` on its own thread and sends everything read; returns whether a thread was
/// started, so the caller knows how many results to expect.
fn spawn_reader(
    mut pipe: impl Read + Send + 'static,
    stream: Stream,
    sender: mpsc::Sender<(Stream, Vec<u8>)>,
) -> bool {
    thread::Builder::new()
        .name("latchkey-command-output".to_owned())
        .spawn(move || {
            let mut bytes = Vec::new();
            // A read error mid-way still leaves useful partial output, so it is kept.
            let _ = pipe.read_to_end(&mut bytes);
            // The receiver is gone only if the caller already gave up waiting.
            let _ = sender.send((stream, bytes));
        })
        .is_ok()
}

/// Stops a child that overran its deadline and collects its exit status so it does not
/// linger as a zombie.
fn kill_and_reap(child: &mut Child) {
    // Killing fails only if the child already exited, in which case waiting reaps it.
    let _ = child.kill();
    let _ = child.wait();
}

/// Keeps console tools from flashing a window on the user's desktop when the agent runs in
/// an interactive session.
#[cfg(windows)]
fn hide_console_window(command: &mut Command) {
    use std::os::windows::process::CommandExt;
    const CREATE_NO_WINDOW: u32 = 0x0800_0000;
    command.creation_flags(CREATE_NO_WINDOW);
}

#[cfg(not(windows))]
fn hide_console_window(_command: &mut Command) {}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_dialog_gets_its_text_on_standard_input_not_its_command_line() {
        let out = run_dialog(
            "sh",
            &["-c", "cat; tr '\\0' ' ' < /proc/self/cmdline"],
            "code 1234 5678",
            Duration::from_secs(5),
        );
        let out = out.expect("sh runs");
        assert!(out.starts_with("code 1234 5678"), "{out}");
        assert_eq!(out.matches("1234 5678").count(), 1, "{out}");
    }

    #[test]
    fn returns_stdout_of_successful_command() {
        let out = run_command("echo", &["hello"], QUERY_TIMEOUT);
        assert_eq!(out.as_deref(), Some("hello\n"));
    }

    #[test]
    fn missing_program_is_none() {
        assert_eq!(
            run_command("latchkey-no-such-program", &[], QUERY_TIMEOUT),
            None
        );
    }

    #[test]
    fn failing_program_is_none() {
        assert_eq!(run_command("false", &[], QUERY_TIMEOUT), None);
    }

    #[test]
    fn slow_program_is_killed_at_the_deadline() {
        let start = Instant::now();
        let out = run_command("sleep", &["10"], Duration::from_millis(200));
        assert_eq!(out, None);
        assert!(start.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn large_output_does_not_deadlock() {
        let out = run_command("sh", &["-c", "yes | head -c 300000"], QUERY_TIMEOUT);
        assert_eq!(out.map(|text| text.len()), Some(300_000));
    }

    #[test]
    fn checked_failure_explains_itself() {
        let err = run_checked("sh", &["-c", "echo oops >&2; exit 3"], QUERY_TIMEOUT)
            .expect_err("the command exits with 3")
            .to_string();
        assert!(err.contains("oops"), "{err}");
        assert!(err.contains('3'), "{err}");

        let err = run_checked("latchkey-no-such-program", &[], QUERY_TIMEOUT)
            .expect_err("the program does not exist")
            .to_string();
        assert!(err.contains("could not start"), "{err}");
    }

    #[test]
    fn checked_failures_read_as_before() {
        let said_nothing = run_checked("false", &[], QUERY_TIMEOUT).expect_err("false fails");
        assert_eq!(said_nothing.to_string(), "exit status: 1");
        let said_on_stdout = run_checked("sh", &["-c", "echo ' out '; exit 2"], QUERY_TIMEOUT)
            .expect_err("the command exits with 2");
        assert_eq!(said_on_stdout.to_string(), "exit status: 2: out");
        let slow = run_checked("sleep", &["10"], Duration::from_millis(200))
            .expect_err("sleep outlasts the deadline");
        assert_eq!(
            slow.to_string(),
            "sleep did not finish within 200 ms and was stopped"
        );
    }
}
