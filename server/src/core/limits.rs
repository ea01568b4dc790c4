//! Sign-in throttling: guesses are counted per account name and per client
//! IP, and second-factor codes also per account per day. Past a threshold
//! each further failure locks the key out for a time that doubles up to a
//! cap. Passwords and second-factor codes are counted apart for the
//! account, so knowing the password does not clear the count of wrong
//! codes; a passed step clears its own count.
//!
//! A guess is counted before it is checked, in one statement per key that
//! refuses to count it while the key is locked out (`reserve_guess`). So
//! guesses sent in parallel cannot all be checked: once the count reaches
//! the threshold the rest are refused unchecked. A guess that turns out
//! right takes its address's count back and clears its account's.
//!
//! Account keys are whatever was typed, known or not, so a lockout says
//! nothing about whether an account exists. The counts live in the
//! database, so every replica counts against the same limit; a count whose
//! last failure is older than its window starts again, and the periodic
//! clean-up removes it.

use chrono::{DateTime, Duration, Utc};

use super::CoreError;
use super::sso::SignIn;
use crate::domain::sign_in::{Lockout, LoginThrottle, ThrottleRule};

/// Failures allowed per account before lockouts start.
const ACCOUNT_THRESHOLD: u32 = 5;
/// Failures allowed per IP (shared NATs carry many users).
const IP_THRESHOLD: u32 = 30;
/// Wrong second-factor codes allowed per account in a day; then no code is
/// checked for that account until a day has passed since the last one.
pub const DAILY_CODE_CAP: u32 = 20;
/// A quiet period after which a key's count starts again.
pub const WINDOW: Duration = Duration::minutes(15);
/// How long a daily count lasts after its last failure.
pub const DAILY_WINDOW: Duration = Duration::hours(24);
const FIRST_LOCKOUT: Duration = Duration::seconds(30);
const MAX_LOCKOUT: Duration = Duration::minutes(15);

const IP: &str = "i:";
const DAILY: &str = "d:";

/// What an attempt guessed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guess {
    Password,
    /// A second-factor code (authenticator app or email).
    Code,
}

pub const ACCOUNT_RULE: ThrottleRule = ThrottleRule {
    threshold: ACCOUNT_THRESHOLD,
    window: WINDOW,
    lockout: DOUBLING,
};
const IP_RULE: ThrottleRule = ThrottleRule {
    threshold: IP_THRESHOLD,
    window: WINDOW,
    lockout: DOUBLING,
};
const DAILY_RULE: ThrottleRule = ThrottleRule {
    threshold: DAILY_CODE_CAP,
    window: DAILY_WINDOW,
    lockout: Lockout::Window,
};
const DOUBLING: Lockout = Lockout::Doubling {
    first: FIRST_LOCKOUT,
    max: MAX_LOCKOUT,
};

fn rule_of(key: &str) -> ThrottleRule {
    if key.starts_with(IP) {
        IP_RULE
    } else if key.starts_with(DAILY) {
        DAILY_RULE
    } else {
        ACCOUNT_RULE
    }
}

/// The account a login names, as the user table spells it: every way of
/// typing one address (case, a Unicode domain, full-width or soft-hyphen
/// variants that normalise to it) counts against one key. Text that is not
/// an address is counted as typed, lower-cased.
fn account_name(login: &str) -> String {
    super::email::normalize(login).unwrap_or_else(|_| login.trim().to_lowercase())
}

fn account_key(guess: Guess, login: &str) -> String {
    let prefix = match guess {
        Guess::Password => "a:",
        Guess::Code => "c:",
    };
    format!("{prefix}{}", account_name(login))
}

/// The key of a client address: an IPv4 address itself; an IPv6 address
/// by its /64, which one client usually holds whole.
fn address_key(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>().map(|a| a.to_canonical()) {
        Ok(std::net::IpAddr::V6(v6)) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            format!("{IP}{}/64", std::net::Ipv6Addr::from(prefix))
        }
        Ok(v4) => format!("{IP}{v4}"),
        Err(_) => format!("{IP}{ip}"),
    }
}

/// The keys an attempt by `login` from `ip` counts against: the address,
/// the account, and for codes the account's day.
fn keys(guess: Guess, login: &str, ip: &str) -> Vec<String> {
    let mut keys = vec![address_key(ip), account_key(guess, login)];
    if guess == Guess::Code {
        keys.push(format!("{DAILY}{}", account_name(login)));
    }
    keys
}

/// How long is left of the longest lockout among `counts` at `now`.
fn locked_for(counts: &[LoginThrottle], now: DateTime<Utc>) -> Option<Duration> {
    counts
        .iter()
        .filter_map(|c| Some(c.last_failure + rule_of(&c.key).lockout(c.failures)?))
        .filter(|until| *until > now)
        .map(|until| until - now)
        .max()
}

/// A guess counted before it was checked.
#[derive(Debug)]
pub(crate) struct Reserved {
    guess: Guess,
    login: String,
    ip: String,
}

impl SignIn {
    /// Counts a guess by `login` from `ip` before it is checked, unless the
    /// account or the address is locked out: then nothing is counted and
    /// the time left is returned.
    pub(crate) async fn reserve_guess(
        &self,
        guess: Guess,
        login: &str,
        ip: &str,
        now: DateTime<Utc>,
    ) -> Result<Result<Reserved, Duration>, CoreError> {
        let keys = keys(guess, login, ip);
        let mut counted = Vec::new();
        for key in &keys {
            if self.store.reserve_throttle(key, &rule_of(key), now).await? {
                counted.push(key.clone());
                continue;
            }
            // Locked out: take back what this guess counted so far.
            for key in &counted {
                self.store.release_throttle(key).await?;
            }
            let counts = self.store.login_throttles(&keys).await?;
            return Ok(Err(locked_for(&counts, now).unwrap_or(FIRST_LOCKOUT)));
        }
        Ok(Ok(Reserved {
            guess,
            login: login.to_owned(),
            ip: ip.to_owned(),
        }))
    }

    /// The reserved guess was right: its account's count for this kind of
    /// guess is cleared and its address's count taken back.
    pub(crate) async fn guess_passed(&self, reserved: Reserved) -> Result<(), CoreError> {
        self.store
            .clear_login_throttle(&account_key(reserved.guess, &reserved.login))
            .await?;
        self.store
            .release_throttle(&address_key(&reserved.ip))
            .await?;
        if reserved.guess == Guess::Code {
            self.store
                .release_throttle(&format!("{DAILY}{}", account_name(&reserved.login)))
                .await?;
        }
        Ok(())
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
        let password = keys(Guess::Password, " Alice@Example.com ", "10.0.0.1");
        assert_eq!(password, ["i:10.0.0.1", "a:alice@example.com"]);
        let account = password[1].clone();
        let codes = keys(Guess::Code, "alice@example.com", "10.0.0.1");
        assert_eq!(
            codes,
            ["i:10.0.0.1", "c:alice@example.com", "d:alice@example.com"]
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
        let keys = keys(Guess::Code, "new@example.com", "192.0.2.7");
        let (ip, account) = (keys[0].clone(), keys[1].clone());
        let shared_nat = [count(&ip, ACCOUNT_THRESHOLD + 3, now)];
        assert_eq!(locked_for(&shared_nat, now), None);
        let both = [
            count(&ip, IP_THRESHOLD + 2, now),
            count(&account, ACCOUNT_THRESHOLD, now),
        ];
        assert_eq!(locked_for(&both, now), Some(FIRST_LOCKOUT * 4));
    }

    #[test]
    fn every_spelling_of_one_address_counts_against_one_account() {
        let plain = account_key(Guess::Password, "alice@example.com");
        for spelling in [
            " Alice@Example.COM ",
            "alice@\u{ff45}xample.com",
            "alice@exam\u{ad}ple.com",
            "alice@example\u{ff0e}com",
            "alice@example\u{3002}com",
        ] {
            assert_eq!(
                account_key(Guess::Password, spelling),
                plain,
                "{spelling:?}"
            );
        }
        assert_eq!(
            account_key(Guess::Password, "not an address"),
            "a:not an address"
        );
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64() {
        assert_eq!(address_key("2001:db8:1:2:3:4:5:6"), "i:2001:db8:1:2::/64");
        assert_eq!(
            address_key("2001:db8:1:2:ffff::1"),
            address_key("2001:db8:1:2::9")
        );
        assert_eq!(address_key("::ffff:192.0.2.7"), "i:192.0.2.7");
        assert_eq!(address_key("192.0.2.7"), "i:192.0.2.7");
    }

    #[test]
    fn lockouts_are_capped() {
        assert_eq!(
            ACCOUNT_RULE.lockout(ACCOUNT_THRESHOLD + 40),
            Some(MAX_LOCKOUT)
        );
        assert_eq!(ACCOUNT_RULE.lockout(1), None);
        assert!(MAX_LOCKOUT <= WINDOW, "a purged count holds no lockout");
    }

    #[test]
    fn a_day_of_wrong_codes_locks_codes_for_a_day() {
        let now = Utc::now();
        let day = count("d:alice@example.com", DAILY_CODE_CAP, now);
        assert_eq!(locked_for(&[day], now), Some(DAILY_WINDOW));
        let below = count("d:alice@example.com", DAILY_CODE_CAP - 1, now);
        assert_eq!(locked_for(&[below], now), None);
    }

    #[test]
    fn the_lockout_in_sql_is_the_lockout_in_rust() {
        assert_eq!(
            crate::store::lockout_sql(&ACCOUNT_RULE),
            "CASE WHEN failures < 5 THEN 0 WHEN failures = 5 THEN 30000 \
             WHEN failures = 6 THEN 60000 WHEN failures = 7 THEN 120000 \
             WHEN failures = 8 THEN 240000 WHEN failures = 9 THEN 480000 \
             WHEN failures = 10 THEN 900000 ELSE 900000 END"
        );
        assert_eq!(
            crate::store::lockout_sql(&DAILY_RULE),
            "CASE WHEN failures < 20 THEN 0 WHEN failures = 20 THEN 86400000 ELSE 86400000 END"
        );
    }
}
