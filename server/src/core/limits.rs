//! Sign-in throttling: failures are counted per account name and per client
//! IP. Past a threshold each further failure locks the key out for a time
//! that doubles up to a cap; a full sign-in clears the account's count.
//!
//! Account keys are whatever was typed, known or not, so a lockout says
//! nothing about whether an account exists. The counts live in this
//! process: with several replicas each keeps its own, which multiplies the
//! allowance by the replica count but keeps every replica's bound.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

/// Failures allowed per account before lockouts start.
const ACCOUNT_THRESHOLD: u32 = 5;
/// Failures allowed per IP (shared NATs carry many users).
const IP_THRESHOLD: u32 = 30;
/// A quiet period after which a key's count starts again.
const WINDOW: Duration = Duration::minutes(15);
const FIRST_LOCKOUT: Duration = Duration::seconds(30);
const MAX_LOCKOUT: Duration = Duration::minutes(15);
/// Bound on tracked keys; stale ones are dropped first.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: DateTime<Utc>,
    locked_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Default)]
pub struct LoginLimits {
    keys: Mutex<HashMap<String, Entry>>,
}

fn lockout(failures: u32, threshold: u32) -> Option<Duration> {
    let over = failures.checked_sub(threshold)?;
    let factor = 1i32 << over.min(10);
    Some((FIRST_LOCKOUT * factor).min(MAX_LOCKOUT))
}

fn account_key(login: &str) -> String {
    format!("a:{}", login.trim().to_lowercase())
}

fn ip_key(ip: &str) -> String {
    format!("i:{ip}")
}

impl LoginLimits {
    /// When the account or the IP is locked out at `now`, how long is left.
    pub fn locked_for(&self, login: &str, ip: &str, now: DateTime<Utc>) -> Option<Duration> {
        let keys = self.keys.lock().ok()?;
        [account_key(login), ip_key(ip)]
            .iter()
            .filter_map(|k| keys.get(k)?.locked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max()
    }

    /// Counts a failed attempt against the account and the IP.
    pub fn record_failure(&self, login: &str, ip: &str, now: DateTime<Utc>) {
        let Ok(mut keys) = self.keys.lock() else {
            return;
        };
        if keys.len() >= MAX_KEYS {
            keys.retain(|_, e| now - e.last_failure < WINDOW);
        }
        for (key, threshold) in [
            (account_key(login), ACCOUNT_THRESHOLD),
            (ip_key(ip), IP_THRESHOLD),
        ] {
            if keys.len() >= MAX_KEYS && !keys.contains_key(&key) {
                continue;
            }
            let entry = keys.entry(key).or_insert(Entry {
                failures: 0,
                last_failure: now,
                locked_until: None,
            });
            if now - entry.last_failure >= WINDOW {
                entry.failures = 0;
            }
            entry.failures = entry.failures.saturating_add(1);
            entry.last_failure = now;
            entry.locked_until = lockout(entry.failures, threshold).map(|d| now + d);
        }
    }

    /// Clears the account's count after every factor passed.
    pub fn record_success(&self, login: &str) {
        if let Ok(mut keys) = self.keys.lock() {
            keys.remove(&account_key(login));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockouts_start_at_the_threshold_and_double() {
        let limits = LoginLimits::default();
        let now = Utc::now();
        for _ in 0..ACCOUNT_THRESHOLD - 1 {
            limits.record_failure("Alice@example.com", "10.0.0.1", now);
        }
        assert_eq!(
            limits.locked_for("alice@example.com", "10.0.0.2", now),
            None
        );
        limits.record_failure("alice@example.com", "10.0.0.1", now);
        assert_eq!(
            limits.locked_for("alice@example.com", "10.0.0.2", now),
            Some(FIRST_LOCKOUT)
        );
        limits.record_failure("alice@example.com", "10.0.0.1", now);
        assert_eq!(
            limits.locked_for("ALICE@example.com", "10.0.0.2", now),
            Some(FIRST_LOCKOUT * 2)
        );
        // Another account from another IP is not affected.
        assert_eq!(limits.locked_for("bob@example.com", "10.0.0.2", now), None);
        // The lockout ends by itself; success clears the count.
        assert_eq!(
            limits.locked_for("alice@example.com", "10.0.0.2", now + MAX_LOCKOUT),
            None
        );
        limits.record_success("alice@example.com");
        assert_eq!(
            limits.locked_for("alice@example.com", "10.0.0.2", now),
            None
        );
    }

    #[test]
    fn an_ip_is_locked_out_across_accounts() {
        let limits = LoginLimits::default();
        let now = Utc::now();
        for i in 0..IP_THRESHOLD {
            limits.record_failure(&format!("user{i}@example.com"), "192.0.2.7", now);
        }
        assert!(
            limits
                .locked_for("new@example.com", "192.0.2.7", now)
                .is_some()
        );
        assert!(
            limits
                .locked_for("new@example.com", "192.0.2.8", now)
                .is_none()
        );
    }

    #[test]
    fn lockouts_are_capped() {
        assert_eq!(
            lockout(ACCOUNT_THRESHOLD + 40, ACCOUNT_THRESHOLD),
            Some(MAX_LOCKOUT)
        );
        assert_eq!(lockout(1, ACCOUNT_THRESHOLD), None);
    }
}
