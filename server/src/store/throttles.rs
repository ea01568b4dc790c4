//! Sign-in throttling counts, shared by every replica through the database.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Statement};

use super::entities::login_throttles;
use super::{Db, StoreError, StoreResult, ms, time};
use crate::domain::sign_in::{LoginThrottle, ThrottleRule};

/// Where a throttling count stops growing (lockouts are capped long before).
pub(super) const MAX_COUNTED: i32 = 1_000_000;

/// A rule's lockout as an SQL expression of the column `failures`, in
/// milliseconds (0 below the threshold), for the statement that counts a
/// guess only while the key is not locked out.
pub fn lockout_sql(rule: &ThrottleRule) -> String {
    let mut sql = format!("CASE WHEN failures < {} THEN 0", rule.threshold);
    let mut failures = rule.threshold;
    let mut last = 0;
    while let Some(lockout) = rule.lockout(failures) {
        let ms = lockout.num_milliseconds();
        if ms == last {
            break;
        }
        sql.push_str(&format!(" WHEN failures = {failures} THEN {ms}"));
        last = ms;
        failures += 1;
    }
    sql.push_str(&format!(" ELSE {last} END"));
    sql
}

impl<C: ConnectionTrait> Db<C> {
    /// The counts kept for `keys` (those that have any).
    pub async fn login_throttles(&self, keys: &[String]) -> StoreResult<Vec<LoginThrottle>> {
        let rows = login_throttles::Entity::find()
            .filter(login_throttles::Column::Key.is_in(keys.iter().cloned()))
            .all(&self.0)
            .await?;
        rows.into_iter()
            .map(|row| {
                Ok(LoginThrottle {
                    failures: u32::try_from(row.failures)
                        .map_err(|_| StoreError::Corrupt(format!("failures {}", row.failures)))?,
                    last_failure: time(row.last_failure)?,
                    key: row.key,
                })
            })
            .collect()
    }

    /// Counts one guess against `key` unless the key is locked out at
    /// `now` under `rule`, in one statement: true when it was counted. A
    /// count whose last failure is the rule's window or longer ago starts
    /// again at one. Two guesses racing each see the other's count. A
    /// count below the threshold is never a lockout, whatever the times:
    /// a request's `now` may be older than a racing request's count.
    pub async fn reserve_throttle(
        &self,
        key: &str,
        rule: &ThrottleRule,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let backend = self.0.get_database_backend();
        let window = rule.window.num_milliseconds();
        let update = format!(
            "UPDATE login_throttles SET \
               failures = CASE WHEN $2 - last_failure >= $3 THEN 1 \
                 WHEN failures >= {MAX_COUNTED} THEN failures ELSE failures + 1 END, \
               last_failure = CASE WHEN $2 > last_failure THEN $2 ELSE last_failure END \
             WHERE key = $1 AND (({lockout}) = 0 OR last_failure + ({lockout}) <= $2)",
            lockout = lockout_sql(rule)
        );
        let insert = "INSERT INTO login_throttles (key, failures, last_failure) \
                      VALUES ($1, 1, $2) ON CONFLICT (key) DO NOTHING";
        for _ in 0..2 {
            let counted = self
                .0
                .execute_raw(Statement::from_sql_and_values(
                    backend,
                    &update,
                    [key.into(), ms(now).into(), window.into()],
                ))
                .await?
                .rows_affected();
            if counted == 1 {
                return Ok(true);
            }
            let inserted = self
                .0
                .execute_raw(Statement::from_sql_and_values(
                    backend,
                    insert,
                    [key.into(), ms(now).into()],
                ))
                .await?
                .rows_affected();
            if inserted == 1 {
                return Ok(true);
            }
            // The row exists: locked out, or another guess inserted it
            // between the two statements (then the update counts it).
        }
        Ok(false)
    }

    /// Takes back one guess counted against `key` (it turned out right).
    pub async fn release_throttle(&self, key: &str) -> StoreResult<()> {
        self.0
            .execute_raw(Statement::from_sql_and_values(
                self.0.get_database_backend(),
                "UPDATE login_throttles SET failures = failures - 1 WHERE key = $1 AND failures > 0",
                [key.into()],
            ))
            .await?;
        Ok(())
    }

    /// Forgets the count kept for `key`.
    pub async fn clear_login_throttle(&self, key: &str) -> StoreResult<()> {
        login_throttles::Entity::delete_many()
            .filter(login_throttles::Column::Key.eq(key))
            .exec(&self.0)
            .await?;
        Ok(())
    }
}
