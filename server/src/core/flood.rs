//! Bounds the audit rows that unauthenticated callers can cause. Every
//! refused enrollment and every unknown admin token is recorded, but past
//! [`ROWS_PER_MINUTE`] in a minute the rest are counted, and one row says how
//! many were left out, so a flood of bad requests cannot fill the disk or
//! hold the database.

use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

use crate::domain::audit::{Actor, AuditAction, AuditEntry, AuditOutcome};

pub const ROWS_PER_MINUTE: u32 = 120;

#[derive(Debug, Default)]
struct Window {
    started: Option<DateTime<Utc>>,
    written: u32,
    suppressed: u32,
}

#[derive(Debug, Default)]
pub struct FloodGate {
    window: Mutex<Window>,
}

impl FloodGate {
    /// The rows to write for `entry` at `now`: itself while the minute has
    /// room, nothing past that, and a summary of the suppressed ones first
    /// when a new minute starts.
    pub fn admit(&self, entry: AuditEntry, now: DateTime<Utc>) -> Vec<AuditEntry> {
        let mut window = self
            .window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut rows = Vec::new();
        let expired = window
            .started
            .is_none_or(|started| now - started >= Duration::minutes(1));
        if expired {
            if window.suppressed > 0 {
                rows.push(AuditEntry {
                    at: now,
                    actor: Actor::System,
                    action: AuditAction::AuditSuppressed,
                    target: String::new(),
                    outcome: AuditOutcome::Denied,
                    detail: format!(
                        "{} more refused unauthenticated requests in the minute from {} were not recorded one by one",
                        window.suppressed,
                        window.started.map(|t| t.to_rfc3339()).unwrap_or_default()
                    ),
                });
            }
            *window = Window {
                started: Some(now),
                written: 0,
                suppressed: 0,
            };
        }
        if window.written < ROWS_PER_MINUTE {
            window.written += 1;
            rows.push(entry);
        } else {
            window.suppressed += 1;
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied(now: DateTime<Utc>) -> AuditEntry {
        AuditEntry {
            at: now,
            actor: Actor::Unknown,
            action: AuditAction::AdminAuthenticate,
            target: String::new(),
            outcome: AuditOutcome::Denied,
            detail: String::new(),
        }
    }

    #[test]
    fn a_flood_is_recorded_up_to_the_limit_then_summarised() {
        let gate = FloodGate::default();
        let now = Utc::now();
        let mut written = 0;
        for _ in 0..(ROWS_PER_MINUTE + 50) {
            written += gate.admit(denied(now), now).len();
        }
        assert_eq!(written, ROWS_PER_MINUTE as usize);
        let next = gate.admit(
            denied(now + Duration::seconds(61)),
            now + Duration::seconds(61),
        );
        assert_eq!(next.len(), 2);
        assert_eq!(next[0].action, AuditAction::AuditSuppressed);
        assert!(next[0].detail.starts_with("50 more"), "{}", next[0].detail);
    }
}
