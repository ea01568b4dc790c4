//! Accepting connections without spinning. When `accept` fails (EMFILE
//! when descriptors run out, ENOBUFS, ENOMEM) the waiting connection stays
//! in the backlog and the listener stays readable, so retrying at once
//! turns into a busy loop writing one log line per attempt. Every accept
//! loop goes through [`Acceptor`]: after a failure it pauses, 10 ms at
//! first and doubling up to 1 s, and it logs the first failure, then at
//! most one line per [`LOG_EVERY`] with the number of failures in between,
//! and one line when accepting works again.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

const FIRST_PAUSE: Duration = Duration::from_millis(10);
const LONGEST_PAUSE: Duration = Duration::from_secs(1);
/// At most one line about a failing listener per this period.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// One listener's accept loop state: the pause and the log throttle.
#[derive(Debug)]
pub struct Acceptor {
    listener: &'static str,
    pause: Duration,
    failures: u64,
    unlogged: u64,
    last_logged: Option<Instant>,
}

impl Acceptor {
    pub fn new(listener: &'static str) -> Self {
        Acceptor {
            listener,
            pause: FIRST_PAUSE,
            failures: 0,
            unlogged: 0,
            last_logged: None,
        }
    }

    /// The next connection, or `None` once `shutdown` fires.
    pub async fn accept(
        &mut self,
        listener: &TcpListener,
        shutdown: &CancellationToken,
    ) -> Option<(TcpStream, SocketAddr)> {
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => return None,
                a = listener.accept() => a,
            };
            match accepted {
                Ok(connection) => {
                    self.succeeded();
                    return Some(connection);
                }
                // The peer gave up before it was accepted: nothing is wrong
                // with this process, try the next one at once.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionAborted
                            | std::io::ErrorKind::ConnectionReset
                            | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    let pause = self.failed(&e);
                    tokio::select! {
                        () = shutdown.cancelled() => return None,
                        () = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
    }

    fn succeeded(&mut self) {
        if self.failures > 0 {
            info!(
                listener = self.listener,
                failures = self.failures,
                "accepting connections again after {} failed accepts",
                self.failures
            );
        }
        self.pause = FIRST_PAUSE;
        self.failures = 0;
        self.unlogged = 0;
        self.last_logged = None;
    }

    /// Counts a failure, logs it if the throttle allows, and returns how
    /// long to wait before the next attempt.
    fn failed(&mut self, error: &std::io::Error) -> Duration {
        self.failures += 1;
        let now = Instant::now();
        if self
            .last_logged
            .is_none_or(|at| now.duration_since(at) >= LOG_EVERY)
        {
            warn!(
                listener = self.listener,
                error = %error,
                failures_not_logged = self.unlogged,
                retry_in_ms = u64::try_from(self.pause.as_millis()).unwrap_or(u64::MAX),
                "accept failed; pausing before the next attempt"
            );
            self.unlogged = 0;
            self.last_logged = Some(now);
        } else {
            self.unlogged += 1;
        }
        let pause = self.pause;
        self.pause = (self.pause * 2).min(LONGEST_PAUSE);
        pause
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_from_10ms_to_1s_and_reset_after_a_success() {
        let mut acceptor = Acceptor::new("test");
        let error = std::io::Error::from_raw_os_error(24);
        let pauses: Vec<u128> = (0..9)
            .map(|_| acceptor.failed(&error).as_millis())
            .collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert_eq!(acceptor.unlogged, 8, "one line for nine failures");
        acceptor.succeeded();
        assert_eq!(acceptor.failed(&error).as_millis(), 10);
    }
}
