//! The periodic clean-up of sign-in state whose time has passed.

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use super::{Db, StoreResult, ms};

impl<C: ConnectionTrait> Db<C> {
    /// Deletes what can no longer be used: sessions, sign-in attempts,
    /// device-auth transactions and ADE sign-ins over before `cutoff`,
    /// grants ended before it or whose every refresh token expired before
    /// it (with those tokens),
    /// second-factor challenges expired at `now`, and sign-in history older
    /// than `history_cutoff`. Returns the rows deleted.
    pub async fn purge_expired(
        &self,
        cutoff: DateTime<Utc>,
        history_cutoff: DateTime<Utc>,
        throttle_cutoffs: (DateTime<Utc>, DateTime<Utc>),
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let (cutoff, history, throttle, daily, now) = (
            ms(cutoff),
            ms(history_cutoff),
            ms(throttle_cutoffs.0),
            ms(throttle_cutoffs.1),
            ms(now),
        );
        // Only integers are formatted into these statements.
        let dead_grants = format!(
            "(grants.ended_at IS NOT NULL AND grants.ended_at < {cutoff}) \
             OR (grants.created_at < {cutoff} AND NOT EXISTS (SELECT 1 FROM refresh_tokens r \
             WHERE r.grant_id = grants.id AND r.expires_at >= {cutoff}))"
        );
        let statements = [
            format!(
                "DELETE FROM refresh_tokens WHERE expires_at < {cutoff} \
                 OR grant_id IN (SELECT id FROM grants WHERE {dead_grants})"
            ),
            format!("DELETE FROM grants WHERE {dead_grants}"),
            format!(
                "DELETE FROM sso_sessions WHERE expires_at < {cutoff} \
                 OR (ended_at IS NOT NULL AND ended_at < {cutoff})"
            ),
            format!("DELETE FROM auth_requests WHERE expires_at < {cutoff}"),
            format!("DELETE FROM device_auth_txns WHERE expires_at < {cutoff}"),
            format!("DELETE FROM apple_dep_sign_ins WHERE expires_at < {cutoff}"),
            // A challenge past its expiry enrolls nothing, used or not.
            format!("DELETE FROM apple_scep_challenges WHERE expires_at < {cutoff}"),
            format!("DELETE FROM second_factor_challenges WHERE expires_at < {now}"),
            format!("DELETE FROM login_events WHERE at < {history}"),
            // Daily counts (`d:`) keep their day.
            format!(
                "DELETE FROM login_throttles WHERE last_failure < {throttle} \
                 AND (key NOT LIKE 'd:%' OR last_failure < {daily})"
            ),
        ];
        let mut deleted = 0;
        for statement in statements {
            deleted += self.0.execute_unprepared(&statement).await?.rows_affected();
        }
        Ok(deleted)
    }
}
