//! Apple enrollments (one row per Apple device: UDID, identity, push
//! triple, check-in times), the one-time SCEP challenges, and what Apple's
//! command queue asks of the outbox (the next command to fetch, NotNow).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, Set, Statement,
};

use super::certificates::{CertificateRecord, certificate_and_device_from};
use super::commands::command_from;
use super::entities::{apple_enrollments as e, apple_scep_challenges as ch, commands};
use super::{Db, StoreResult, ms, opt_time, time};
use crate::domain::apple::enrollment::{AppleEnrollment, ScepChallenge};
use crate::domain::command::{Command, CommandStatus};
use crate::domain::device::{Channel, DeviceState};
use crate::domain::ids::{CommandId, DeviceId};

fn enrollment_from(row: e::Model) -> StoreResult<AppleEnrollment> {
    Ok(AppleEnrollment {
        device: DeviceId::from_store(row.device_id),
        udid: row.udid,
        identity_sha256: row.identity_sha256,
        topic: row.topic,
        awaiting_configuration: row.awaiting_configuration,
        token_updates: row.token_updates,
        enabled: row.enabled,
        authenticated_at: opt_time(row.authenticated_at)?,
        last_seen_at: opt_time(row.last_seen_at)?,
        last_idle_at: opt_time(row.last_idle_at)?,
        last_push_at: opt_time(row.last_push_at)?,
        last_push_result: row.last_push_result,
        push_token_invalid_at: opt_time(row.push_token_invalid_at)?,
        supervised: row.supervised,
    })
}

/// What a TokenUpdate sets.
#[derive(Debug, Clone)]
pub struct StoredTokenUpdate {
    pub push_token_hex: String,
    pub push_magic: String,
    pub unlock_token_sealed: Option<String>,
    pub awaiting_configuration: bool,
}

impl<C: ConnectionTrait> Db<C> {
    /// The row of a device whose identity certificate was just issued: not
    /// yet authenticated, nothing to push to.
    pub async fn insert_apple_enrollment(&self, device: &DeviceId) -> StoreResult<()> {
        e::Entity::insert(e::ActiveModel {
            device_id: Set(device.to_string()),
            udid: Set(None),
            identity_sha256: Set(None),
            topic: Set(None),
            push_token: Set(None),
            push_magic: Set(None),
            unlock_token_sealed: Set(None),
            bootstrap_token_sealed: Set(None),
            awaiting_configuration: Set(false),
            token_updates: Set(0),
            enabled: Set(false),
            authenticated_at: Set(None),
            last_seen_at: Set(None),
            last_idle_at: Set(None),
            last_push_at: Set(None),
            last_push_result: Set(None),
            push_token_invalid_at: Set(None),
            supervised: Set(None),
        })
        .exec_without_returning(&self.0)
        .await?;
        Ok(())
    }

    pub async fn apple_enrollment(
        &self,
        device: &DeviceId,
    ) -> StoreResult<Option<AppleEnrollment>> {
        e::Entity::find_by_id(device.to_string())
            .one(&self.0)
            .await?
            .map(enrollment_from)
            .transpose()
    }

    /// A presented certificate with its device's state and the device's
    /// Apple enrollment (absent when it has none), in one statement: what
    /// each message of an Apple device is admitted and checked on.
    pub async fn certificate_with_apple_enrollment(
        &self,
        serial_hex: &str,
    ) -> StoreResult<
        Option<(
            CertificateRecord,
            Option<(DeviceState, Channel)>,
            Option<AppleEnrollment>,
            Option<DateTime<Utc>>,
        )>,
    > {
        let statement = Statement::from_sql_and_values(
            self.0.get_database_backend(),
            concat!(
                "SELECT ",
                certificate_columns!(),
                ", d.state AS d_state, d.channel AS d_channel, d.last_seen AS d_last_seen, \
                 e.device_id AS e_device_id, e.udid AS e_udid, \
                 e.identity_sha256 AS e_identity_sha256, e.topic AS e_topic, \
                 e.push_token AS e_push_token, e.push_magic AS e_push_magic, \
                 e.unlock_token_sealed AS e_unlock_token_sealed, \
                 e.bootstrap_token_sealed AS e_bootstrap_token_sealed, \
                 e.awaiting_configuration AS e_awaiting_configuration, \
                 e.token_updates AS e_token_updates, e.enabled AS e_enabled, \
                 e.authenticated_at AS e_authenticated_at, e.last_seen_at AS e_last_seen_at, \
                 e.last_idle_at AS e_last_idle_at, e.last_push_at AS e_last_push_at, \
                 e.last_push_result AS e_last_push_result, \
                 e.push_token_invalid_at AS e_push_token_invalid_at, \
                 e.supervised AS e_supervised \
                 FROM device_certificates c \
                 LEFT JOIN devices d ON d.id = c.device_id \
                 LEFT JOIN apple_enrollments e ON e.device_id = c.device_id \
                 WHERE c.serial = $1"
            ),
            [serial_hex.into()],
        );
        let Some(row) = self.0.query_one_raw(statement).await? else {
            return Ok(None);
        };
        let (certificate, state) = certificate_and_device_from(&row)?;
        let enrollment = match row.try_get::<Option<String>>("", "e_device_id")? {
            Some(_) => Some(enrollment_from(e::Model::from_query_result(&row, "e_")?)?),
            None => None,
        };
        let last_seen = opt_time(row.try_get::<Option<i64>>("", "d_last_seen")?)?;
        Ok(Some((certificate, state, enrollment, last_seen)))
    }

    pub async fn apple_enrollment_by_udid(
        &self,
        udid: &str,
    ) -> StoreResult<Option<AppleEnrollment>> {
        e::Entity::find()
            .filter(e::Column::Udid.eq(udid))
            .one(&self.0)
            .await?
            .map(enrollment_from)
            .transpose()
    }

    /// Releases a UDID from the device that held it (the hardware enrolled
    /// again as another device record).
    pub async fn release_apple_udid(&self, device: &DeviceId) -> StoreResult<()> {
        e::Entity::update_many()
            .col_expr(e::Column::Udid, Expr::value(Option::<String>::None))
            .col_expr(e::Column::Enabled, Expr::value(false))
            .filter(e::Column::DeviceId.eq(device.to_string()))
            .exec(&self.0)
            .await?;
        Ok(())
    }

    /// Forgets the UDID and identity an enrollment was bound to (a listed
    /// device awaiting enrollment given a new identity): the next
    /// Authenticate binds afresh.
    pub async fn unbind_apple_identity(&self, device: &DeviceId) -> StoreResult<()> {
        e::Entity::update_many()
            .col_expr(e::Column::Udid, Expr::value(Option::<String>::None))
            .col_expr(
                e::Column::IdentitySha256,
                Expr::value(Option::<String>::None),
            )
            .col_expr(e::Column::Enabled, Expr::value(false))
            .filter(e::Column::DeviceId.eq(device.to_string()))
            .exec(&self.0)
            .await?;
        Ok(())
    }

    /// Authenticate: binds the UDID and the identity certificate, and
    /// disables pushes until the TokenUpdate that follows.
    pub async fn authenticate_apple(
        &self,
        device: &DeviceId,
        udid: &str,
        identity_sha256: &str,
        topic: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        e::Entity::update_many()
            .col_expr(e::Column::Udid, Expr::value(udid))
            .col_expr(e::Column::IdentitySha256, Expr::value(identity_sha256))
            .col_expr(e::Column::Topic, Expr::value(topic))
            .col_expr(e::Column::PushToken, Expr::value(Option::<String>::None))
            .col_expr(e::Column::PushMagic, Expr::value(Option::<String>::None))
            .col_expr(e::Column::Enabled, Expr::value(false))
            .col_expr(e::Column::AuthenticatedAt, Expr::value(ms(now)))
            .col_expr(e::Column::LastSeenAt, Expr::value(ms(now)))
            .col_expr(e::Column::LastIdleAt, Expr::value(Option::<i64>::None))
            .filter(e::Column::DeviceId.eq(device.to_string()))
            .exec(&self.0)
            .await?;
        Ok(())
    }

    /// TokenUpdate: the push triple, and pushes enabled.
    pub async fn apple_token_update(
        &self,
        device: &DeviceId,
        update: &StoredTokenUpdate,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut query = e::Entity::update_many()
            .col_expr(
                e::Column::PushToken,
                Expr::value(update.push_token_hex.clone()),
            )
            .col_expr(e::Column::PushMagic, Expr::value(update.push_magic.clone()))
            .col_expr(
                e::Column::AwaitingConfiguration,
                Expr::value(update.awaiting_configuration),
            )
            .col_expr(
                e::Column::TokenUpdates,
                Expr::col(e::Column::TokenUpdates).add(1),
            )
            .col_expr(e::Column::Enabled, Expr::value(true))
            .col_expr(
                e::Column::PushTokenInvalidAt,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(e::Column::LastSeenAt, Expr::value(ms(now)));
        if let Some(sealed) = &update.unlock_token_sealed {
            query = query.col_expr(e::Column::UnlockTokenSealed, Expr::value(sealed.clone()));
        }
        query
            .filter(e::Column::DeviceId.eq(device.to_string()))
            .exec(&self.0)
            .await?;
        Ok(())
    }

    /// CheckOut: no more pushes.
    pub async fn apple_check_out(&self, device: &DeviceId, now: DateTime<Utc>) -> StoreResult<()> {
        e::Entity::update_many()
            .col_expr(e::Column::Enabled, Expr::value(false))
            .col_expr(e::Column::LastSeenAt, Expr::value(ms(now)))
            .filter(e::Column::DeviceId.eq(device.to_string()))
            .exec(&self.0)
            .await?;
        Ok(())
    }

    /// A check-in or command report arrived; `idle` when it was Idle.
    pub async fn apple_seen(
        &self,
        device: &DeviceId,
        idle: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut query =
            e::Entity::update_many().col_expr(e::Column::LastSeenAt, Expr::value(ms(now)));
        if idle {
            query = query.col_expr(e::Column::LastIdleAt, Expr::value(ms(now)));
        }
        query
            .filter(e::Column::DeviceId.eq(device.to_string()))
            .exec(&self.0)
            .await?;
        Ok(())
    }

    pub async fn set_apple_supervised(
        &self,
        device: &DeviceId,
        supervised: bool,
    ) -> StoreResult<()> {
        e::Entity::update_many()
            .col_expr(e::Column::Supervised, Expr::value(supervised))
            .filter(e::Column::DeviceId.eq(device.to_string()))
            .exec(&self.0)
            .await?;
        Ok(())
    }

    pub async fn set_apple_bootstrap_token(
        &self,
        device: &DeviceId,
        sealed: Option<&str>,
    ) -> StoreResult<()> {
        e::Entity::update_many()
            .col_expr(
                e::Column::BootstrapTokenSealed,
                Expr::value(sealed.map(str::to_owned)),
            )
            .filter(e::Column::DeviceId.eq(device.to_string()))
            .exec(&self.0)
            .await?;
        Ok(())
    }

    pub async fn apple_bootstrap_token(&self, device: &DeviceId) -> StoreResult<Option<String>> {
        Ok(e::Entity::find_by_id(device.to_string())
            .one(&self.0)
            .await?
            .and_then(|r| r.bootstrap_token_sealed))
    }

    /// The next command an Apple device fetches, marked sent, in one
    /// statement: its oldest open command, except those it answered NotNow
    /// after its latest Idle (Apple: a NotNow command is offered again only
    /// after the next Idle, never on the same connection).
    pub async fn take_next_apple_command(
        &self,
        device: &DeviceId,
        last_idle: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Command>> {
        let statement = Statement::from_sql_and_values(
            self.0.get_database_backend(),
            "UPDATE commands SET status = $1, sent_at = $2, offered_at = $2 \
             WHERE id = (SELECT id FROM commands WHERE device_id = $3 \
               AND status IN ($4, $1) AND (not_now_at IS NULL OR not_now_at < $5) \
               ORDER BY created_at, id LIMIT 1) \
             RETURNING *",
            [
                CommandStatus::Sent.as_str().into(),
                ms(now).into(),
                device.to_string().into(),
                CommandStatus::Pending.as_str().into(),
                last_idle.map(ms).into(),
            ],
        );
        self.0
            .query_one_raw(statement)
            .await?
            .map(|row| command_from(commands::Model::from_query_result(&row, "")?))
            .transpose()
    }

    /// The device answered NotNow: the command stays open.
    pub async fn mark_command_not_now(
        &self,
        command: &CommandId,
        device: &DeviceId,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let result = commands::Entity::update_many()
            .col_expr(commands::Column::NotNowAt, Expr::value(ms(now)))
            .col_expr(
                commands::Column::NotNowCount,
                Expr::col(commands::Column::NotNowCount).add(1),
            )
            .filter(commands::Column::Id.eq(command.to_string()))
            .filter(commands::Column::DeviceId.eq(device.to_string()))
            .filter(commands::Column::Status.is_in([
                CommandStatus::Pending.as_str(),
                CommandStatus::Sent.as_str(),
            ]))
            .exec(&self.0)
            .await?;
        Ok(result.rows_affected == 1)
    }

    pub async fn insert_scep_challenge(&self, challenge: &ScepChallenge) -> StoreResult<()> {
        ch::Entity::insert(ch::ActiveModel {
            challenge_sha256: Set(challenge.challenge_sha256.clone()),
            user_email: Set(challenge.user.clone()),
            device_id: Set(challenge.device.as_ref().map(ToString::to_string)),
            created_by: Set(challenge.created_by.clone()),
            created_at: Set(ms(challenge.created_at)),
            expires_at: Set(ms(challenge.expires_at)),
            used_at: Set(None),
            used_by_transaction: Set(None),
        })
        .exec_without_returning(&self.0)
        .await?;
        Ok(())
    }

    /// Keeps at most `keep` unused challenges of a listed device, the
    /// newest, besides any an open identity renewal holds: a serial that
    /// is asked for its profile again and again does not grow the table.
    pub async fn prune_device_challenges(&self, device: &DeviceId, keep: u64) -> StoreResult<u64> {
        let id = device.to_string();
        let statement = sea_orm::Statement::from_sql_and_values(
            self.0.get_database_backend(),
            "DELETE FROM apple_scep_challenges WHERE device_id = $1 AND used_at IS NULL \
               AND challenge_sha256 NOT IN (SELECT challenge_sha256 \
                   FROM apple_identity_renewals WHERE closed_at IS NULL) \
               AND challenge_sha256 NOT IN (SELECT challenge_sha256 FROM ( \
                   SELECT challenge_sha256 FROM apple_scep_challenges \
                   WHERE device_id = $2 AND used_at IS NULL \
                   ORDER BY created_at DESC, challenge_sha256 LIMIT $3) AS newest)",
            [
                id.clone().into(),
                id.into(),
                i64::try_from(keep).unwrap_or(i64::MAX).into(),
            ],
        );
        Ok(self.0.execute_raw(statement).await?.rows_affected())
    }

    /// Uses a challenge once: only an unused, unexpired challenge is
    /// marked used (one statement, so two requests racing with the same
    /// challenge cannot both enroll), and returned.
    pub async fn use_scep_challenge(
        &self,
        challenge_sha256: &str,
        transaction: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ScepChallenge>> {
        let used = ch::Entity::update_many()
            .col_expr(ch::Column::UsedAt, Expr::value(ms(now)))
            .col_expr(ch::Column::UsedByTransaction, Expr::value(transaction))
            .filter(ch::Column::ChallengeSha256.eq(challenge_sha256))
            .filter(ch::Column::UsedAt.is_null())
            .filter(ch::Column::ExpiresAt.gt(ms(now)))
            .exec(&self.0)
            .await?;
        if used.rows_affected != 1 {
            return Ok(None);
        }
        let Some(row) = ch::Entity::find_by_id(challenge_sha256.to_owned())
            .one(&self.0)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(ScepChallenge {
            challenge_sha256: row.challenge_sha256,
            user: row.user_email,
            device: row.device_id.map(DeviceId::from_store),
            created_by: row.created_by,
            created_at: time(row.created_at)?,
            expires_at: time(row.expires_at)?,
        }))
    }
}

impl<C: ConnectionTrait> Db<C> {
    /// What an Apple device says about itself (Authenticate,
    /// DeviceInformation); an absent name keeps the one the device has.
    #[allow(clippy::too_many_arguments)]
    pub async fn set_apple_device_facts(
        &self,
        device: &DeviceId,
        name: Option<&str>,
        platform: &str,
        os_version: &str,
        serial: &str,
        model: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        use super::entities::devices as d;
        let mut query = d::Entity::update_many()
            .col_expr(d::Column::Platform, Expr::value(platform))
            .col_expr(d::Column::LastSeen, Expr::value(ms(now)));
        for (column, value) in [
            (d::Column::OsVersion, os_version),
            (d::Column::Serial, serial),
            (d::Column::Model, model),
        ] {
            if !value.is_empty() {
                query = query.col_expr(column, Expr::value(value));
            }
        }
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            query = query.col_expr(d::Column::Hostname, Expr::value(name));
        }
        query
            .filter(d::Column::Id.eq(device.to_string()))
            .exec(&self.0)
            .await?;
        Ok(())
    }
}
