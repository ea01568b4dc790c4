//! Sign-in throttling: failures are counted per account name and per client
//! IP. Past a threshold each further failure locks the key out for a time
//! that doubles up to a cap. Passwords and second-factor codes are counted
//! apart for the account, so knowing the password does not clear the count
//! of wrong codes; a passed step clears its own count.
//!
//! Account keys are whatever was typed, known or not, so a lockout says
//! nothing about whether an account exists. The counts live in the
//! database, so every replica counts against the same limit; a count whose
//! last failure is older than the window starts again, and the periodic
//! clean-up removes it.

use chrono::{DateTime, Duration, Utc};

use super::model::LoginThrottle;
use super::{Core, CoreError};

/// Failures allowed per account before lockouts start.
const ACCOUNT_THRESHOLD: u32 = 5;
/// Failures allowed per IP (shared NATs carry many users).
const IP_THRESHOLD: u32 = 30;
/// A quiet period after which a key's count starts again.
pub const WINDOW: Duration = Duration::minutes(15);
const FIRST_LOCKOUT: Duration = Duration::seconds(30);
const MAX_LOCKOUT: Duration = Duration::minutes(15);

const IP: &str = "i:";

/// What an attempt guessed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guess {
    Password,
    /// A second-factor code (authenticator app or email).
    Code,
}

fn lockout(failures: u32, threshold: u32) -> Option<Duration> {
    let over = failures.checked_sub(threshold)?;
    let factor = 1i32 << over.min(10);
    Some((FIRST_LOCKOUT * factor).min(MAX_LOCKOUT))
}

fn account_key(guess: Guess, login: &str) -> String {
    let prefix = match guess {
        Guess::Password => "a:",
        Guess::Code => "c:",
    };
    format!("{prefix}{}", login.trim().to_lowercase())
}

/// The keys an attempt by `login` from `ip` counts against.
fn keys(guess: Guess, login: &str, ip: &str) -> [String; 2] {
    [account_key(guess, login), format!("{IP}{ip}")]
}

/// How long is left of the longest lockout among `counts` at `now`.
fn locked_for(counts: &[LoginThrottle], now: DateTime<Utc>) -> Option<Duration> {
    counts
        .iter()
        .filter_map(|c| {
            let threshold = if c.key.starts_with(IP) {
                IP_THRESHOLD
            } else {
                ACCOUNT_THRESHOLD
            };
            Some(c.last_failure + lockout(c.failures, threshold)?)
        })
        .filter(|until| *until > now)
        .map(|until| until - now)
        .max()
}

impl Core {
    /// When the account (for this kind of guess) or the IP is locked out at
    /// `now`, how long is left.
    pub(crate) async fn login_locked_for(
        &self,
        guess: Guess,
        login: &str,
        ip: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Duration>, CoreError> {
        let counts = self.store.login_throttles(&keys(guess, login, ip)).await?;
        Ok(locked_for(&counts, now))
    }

    /// Counts a failed attempt against the account and the IP.
    pub(crate) async fn record_login_failure(
        &self,
        guess: Guess,
        login: &str,
        ip: &str,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        Ok(self
            .store
            .count_login_failure(&keys(guess, login, ip), WINDOW, now)
            .await?)
    }

    /// Clears the account's count for this kind of guess once it passed.
    pub(crate) async fn record_login_success(
        &self,
        guess: Guess,
        login: &str,
    ) -> Result<(), CoreError> {
        Ok(self
            .store
            .clear_login_throttle(&account_key(guess, login))
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the store holds after `failures` failures, the last at `at`.
    fn count(key: &str, failures: u32, at: DateTime<Utc>) -> LoginThrottle {
        LoginThrottle {
            key: key.to_owned(),
            failures,
            last_failure: at,
        }
    }

    #[test]
    fn lockouts_start_at_the_threshold_and_double() {
        let now = Utc::now();
        let [account, ip] = keys(Guess::Password, " Alice@Example.com ", "10.0.0.1");
        assert_eq!(account, "a:alice@example.com");
        assert_eq!(ip, "i:10.0.0.1");
        let [codes, same_ip] = keys(Guess::Code, "alice@example.com", "10.0.0.1");
        assert_eq!(
            (codes.as_str(), same_ip),
            ("c:alice@example.com", ip.clone())
        );
        let below = [count(&account, ACCOUNT_THRESHOLD - 1, now)];
        assert_eq!(locked_for(&below, now), None);
        let at = [count(&account, ACCOUNT_THRESHOLD, now)];
        assert_eq!(locked_for(&at, now), Some(FIRST_LOCKOUT));
        let past = [count(&account, ACCOUNT_THRESHOLD + 1, now)];
        assert_eq!(locked_for(&past, now), Some(FIRST_LOCKOUT * 2));
        // Time passes from the last failure; the lockout ends by itself.
        let later = now + Duration::seconds(45);
        assert_eq!(locked_for(&past, later), Some(Duration::seconds(15)));
        assert_eq!(locked_for(&past, now + MAX_LOCKOUT), None);
    }

    #[test]
    fn an_ip_has_its_own_threshold_and_the_longer_lockout_counts() {
        let now = Utc::now();
        let [account, ip] = keys(Guess::Code, "new@example.com", "192.0.2.7");
        let shared_nat = [count(&ip, ACCOUNT_THRESHOLD + 3, now)];
        assert_eq!(locked_for(&shared_nat, now), None);
        let both = [
            count(&ip, IP_THRESHOLD + 2, now),
            count(&account, ACCOUNT_THRESHOLD, now),
        ];
        assert_eq!(locked_for(&both, now), Some(FIRST_LOCKOUT * 4));
    }

    #[test]
    fn lockouts_are_capped() {
        assert_eq!(
            lockout(ACCOUNT_THRESHOLD + 40, ACCOUNT_THRESHOLD),
            Some(MAX_LOCKOUT)
        );
        assert_eq!(lockout(1, ACCOUNT_THRESHOLD), None);
        assert!(MAX_LOCKOUT <= WINDOW, "a purged count holds no lockout");
    }
}
