//! Commands apart from their delivery: a command is stored first, its
//! device's channel is told that the device has work, and the channel
//! either carries it (the agent's MQTT) or only wakes the device, which
//! then fetches it and acknowledges it once. Core and store on a migrated
//! database with a fixed clock; no listener runs.
//!
//! The `fake` platform below is what a new platform adds: one file with
//! its port, and one line that registers it (`CoreFixture::with_ports`
//! here, `Ports::register` where the server is assembled).

// Helpers of a test file: a panic is the failed check.
#![allow(clippy::expect_used, clippy::indexing_slicing)]

use std::sync::{Arc, Mutex, OnceLock};

use chrono::Duration;
use futures_util::future::BoxFuture;
use latchkey_tests::fixture::CoreFixture;
use latchkeyd::domain::command::{Command, CommandStatus};
use latchkeyd::domain::device::{Channel, Device, DeviceState};
use latchkeyd::domain::ids::{CommandId, DeviceId};
use latchkeyd::push::port::{Handover, PortError, WorkPort};
use latchkeyd::store::Store;

/// A platform whose devices fetch their commands after a wake-up (as
/// Apple's and Windows' do). It records each wake-up and whether every
/// command it was told about was already in the outbox at that moment.
#[derive(Default)]
struct FakeWakingPlatform {
    store: OnceLock<Store>,
    wakes: Mutex<Vec<(DeviceId, Vec<CommandId>, bool)>>,
}

impl WorkPort for FakeWakingPlatform {
    fn channel(&self) -> &'static str {
        "fake"
    }

    fn has_work<'a>(
        &'a self,
        device: &'a DeviceId,
        commands: &'a [Command],
        _now: chrono::DateTime<chrono::Utc>,
    ) -> BoxFuture<'a, Result<Handover, PortError>> {
        Box::pin(async move {
            let mut stored = true;
            if let Some(store) = self.store.get() {
                for command in commands {
                    stored &= matches!(store.command(&command.id).await, Ok(Some(_)));
                }
            }
            let ids = commands.iter().map(|c| c.id.clone()).collect();
            self.wakes
                .lock()
                .expect("not poisoned")
                .push((device.clone(), ids, stored));
            Ok(Handover::default())
        })
    }
}

impl FakeWakingPlatform {
    fn wakes(&self) -> Vec<(DeviceId, Vec<CommandId>, bool)> {
        self.wakes.lock().expect("not poisoned").clone()
    }
}

async fn add_device(fixture: &CoreFixture, channel: &str) -> anyhow::Result<DeviceId> {
    let id = DeviceId::generate();
    let device = Device {
        id: id.clone(),
        hostname: "iPhone (営業部)".into(),
        platform: "ios".into(),
        os_version: "18.1".into(),
        machine_id: String::new(),
        serial: "F2LX0000TEST".into(),
        model: "iPhone16,1".into(),
        state: DeviceState::Active,
        user: None,
        group: None,
        enrolled_at: fixture.now,
        last_seen: Some(fixture.now),
        posture: None,
        posture_at: None,
        certificate_expires_at: None,
        channel: Channel::parse(channel).expect("a channel name"),
    };
    fixture.store.insert_devices(&[device]).await?;
    Ok(id)
}

async fn start_with_fake() -> anyhow::Result<(CoreFixture, Arc<FakeWakingPlatform>)> {
    let fake = Arc::new(FakeWakingPlatform::default());
    let fixture = CoreFixture::with_ports(vec![fake.clone()]).await?;
    let _ = fake.store.set(fixture.store.clone());
    Ok((fixture, fake))
}

#[tokio::test]
async fn a_lock_wakes_a_fetching_device_which_takes_it_and_acknowledges_it_once()
-> anyhow::Result<()> {
    let (fixture, fake) = start_with_fake().await?;
    let owner = fixture.owner().await?;
    let id = add_device(&fixture, "fake").await?;
    let now = fixture.now;

    let (view, lock) = fixture
        .core
        .devices
        .lock_device(
            &owner,
            id.as_str(),
            latchkeyd::core::LockRequest::showing("落とし物です"),
            now,
        )
        .await?;
    assert_eq!(view.device.state, DeviceState::Locked);
    // The channel only woke the device: nothing was handed over yet.
    assert_eq!(lock.status, CommandStatus::Pending);
    assert_eq!(
        fake.wakes(),
        vec![(id.clone(), vec![lock.id.clone()], true)]
    );
    assert!(
        fixture.agent.wakes().is_empty(),
        "the agent's channel saw it"
    );

    // The device checks in and fetches its work.
    let device = fixture
        .core
        .devices
        .authenticate_broker_device(id.as_str())
        .await?;
    let fetched = fixture
        .core
        .devices
        .next_command(&device, now + Duration::seconds(5))
        .await?
        .expect("the lock waits for the device");
    assert_eq!(fetched.id, lock.id);
    assert_eq!(fetched.message, "落とし物です");
    assert_eq!(fetched.status, CommandStatus::Sent);

    // Acknowledged twice (the device repeats itself): counted once.
    for _ in 0..2 {
        fixture
            .core
            .devices
            .acknowledge_command(
                &device,
                lock.id.as_str(),
                true,
                "locked",
                now + Duration::seconds(6),
            )
            .await?;
    }
    let commands = fixture
        .core
        .devices
        .list_commands(&owner, id.as_str(), now + Duration::seconds(7))
        .await?;
    assert_eq!(commands.len(), 1);
    assert_eq!(commands[0].status, CommandStatus::Acknowledged);
    assert_eq!(commands[0].result.as_deref(), Some("locked"));
    let acknowledgements = fixture
        .core
        .audit
        .list(&owner, now, 100, now + Duration::seconds(7))
        .await?
        .into_iter()
        .filter(|e| e.action == "command.acknowledge")
        .count();
    assert_eq!(acknowledgements, 1);

    // Nothing is left to fetch or to offer again.
    assert!(
        fixture
            .core
            .devices
            .next_command(&device, now + Duration::seconds(8))
            .await?
            .is_none()
    );
    fixture
        .core
        .devices
        .redeliver(Duration::seconds(60), now + Duration::minutes(10))
        .await?;
    assert_eq!(
        fake.wakes().len(),
        1,
        "woken again after the acknowledgement"
    );
    fixture.stop().await
}

#[tokio::test]
async fn a_device_that_never_fetched_is_woken_again_and_finds_its_commands_in_order()
-> anyhow::Result<()> {
    let (fixture, fake) = start_with_fake().await?;
    let owner = fixture.owner().await?;
    let id = add_device(&fixture, "fake").await?;
    let now = fixture.now;
    let (_, lock) = fixture
        .core
        .devices
        .lock_device(
            &owner,
            id.as_str(),
            latchkeyd::core::LockRequest::showing(""),
            now,
        )
        .await?;
    let (_, unlock) = fixture
        .core
        .devices
        .unlock_device(&owner, id.as_str(), now + Duration::seconds(1))
        .await?;

    // Not yet due: a wake-up a second ago is not repeated.
    fixture
        .core
        .devices
        .redeliver(Duration::seconds(60), now + Duration::seconds(2))
        .await?;
    assert_eq!(fake.wakes().len(), 2);
    // Due: one wake-up for the device, with both commands, oldest first.
    let offered = fixture
        .core
        .devices
        .redeliver(Duration::seconds(60), now + Duration::minutes(2))
        .await?;
    assert_eq!(offered, 2);
    let wakes = fake.wakes();
    assert_eq!(wakes.len(), 3);
    assert_eq!(
        wakes[2],
        (id.clone(), vec![lock.id.clone(), unlock.id.clone()], true)
    );

    let device = fixture
        .core
        .devices
        .authenticate_broker_device(id.as_str())
        .await?;
    let first = fixture
        .core
        .devices
        .next_command(&device, now + Duration::minutes(3))
        .await?;
    assert_eq!(first.map(|c| c.id), Some(lock.id));
    fixture.stop().await
}

#[tokio::test]
async fn the_agents_channel_carries_the_command_itself() -> anyhow::Result<()> {
    let fixture = CoreFixture::start().await?;
    let owner = fixture.owner().await?;
    let id = add_device(&fixture, Channel::AGENT).await?;
    let (_, wipe) = fixture
        .core
        .devices
        .wipe_device(&owner, id.as_str(), fixture.now)
        .await?;
    // Handed over, so recorded as sent at once.
    assert_eq!(wipe.status, CommandStatus::Sent);
    assert_eq!(wipe.sent_at, Some(fixture.now));
    let wakes = fixture.agent.wakes();
    assert_eq!(wakes.len(), 1);
    assert_eq!(wakes[0].device, id);
    assert_eq!(wakes[0].commands, vec![wipe.id]);
    fixture.stop().await
}

#[tokio::test]
async fn a_device_whose_channel_is_not_running_keeps_its_command_queued() -> anyhow::Result<()> {
    let fixture = CoreFixture::start().await?;
    let owner = fixture.owner().await?;
    let id = add_device(&fixture, "windows").await?;
    let (view, lock) = fixture
        .core
        .devices
        .lock_device(
            &owner,
            id.as_str(),
            latchkeyd::core::LockRequest::showing(""),
            fixture.now,
        )
        .await?;
    // Stored and the device locked (sign-ins from it end now); it waits in
    // the outbox until a channel can carry it.
    assert_eq!(view.device.state, DeviceState::Locked);
    assert_eq!(lock.status, CommandStatus::Pending);
    let stored = fixture
        .store
        .command(&lock.id)
        .await?
        .expect("the command is in the outbox");
    assert_eq!(stored.status, CommandStatus::Pending);
    fixture.stop().await
}

#[tokio::test]
async fn another_device_can_neither_fetch_nor_acknowledge_a_devices_command() -> anyhow::Result<()>
{
    let (fixture, _fake) = start_with_fake().await?;
    let owner = fixture.owner().await?;
    let victim = add_device(&fixture, "fake").await?;
    let attacker = add_device(&fixture, "fake").await?;
    let now = fixture.now;
    let (_, lock) = fixture
        .core
        .devices
        .lock_device(
            &owner,
            victim.as_str(),
            latchkeyd::core::LockRequest::showing(""),
            now,
        )
        .await?;

    // The attacker's own device, authenticated as itself, asks for work and
    // answers the victim's command by its id.
    let device = fixture
        .core
        .devices
        .authenticate_broker_device(attacker.as_str())
        .await?;
    assert!(
        fixture
            .core
            .devices
            .next_command(&device, now + Duration::seconds(1))
            .await?
            .is_none(),
        "the victim's lock was handed to another device"
    );
    fixture
        .core
        .devices
        .acknowledge_command(&device, lock.id.as_str(), false, "ignored", now)
        .await?;
    let stored = fixture
        .store
        .command(&lock.id)
        .await?
        .expect("the lock is in the outbox");
    assert_eq!(
        stored.status,
        CommandStatus::Pending,
        "closed by another device"
    );
    assert_eq!(stored.result, None);

    // The victim still gets it.
    let victim_device = fixture
        .core
        .devices
        .authenticate_broker_device(victim.as_str())
        .await?;
    let fetched = fixture
        .core
        .devices
        .next_command(&victim_device, now + Duration::seconds(2))
        .await?;
    assert_eq!(fetched.map(|c| c.id), Some(lock.id));
    fixture.stop().await
}

#[tokio::test]
async fn commands_no_channel_can_carry_do_not_hold_back_other_devices_redelivery()
-> anyhow::Result<()> {
    let fixture = CoreFixture::start().await?;
    let owner = fixture.owner().await?;
    let now = fixture.now;
    // A device of a channel this server does not run, with more open
    // commands than one redelivery round takes, all older than any other.
    let stranded = add_device(&fixture, "windows").await?;
    let tx = fixture.store.begin().await?;
    for i in 0..1000 {
        let at = now - Duration::minutes(10) + Duration::milliseconds(i);
        tx.insert_command(&Command {
            id: CommandId::generate(),
            device_id: stranded.clone(),
            kind: latchkeyd::domain::command::CommandKind::Lock,
            message: String::new(),
            args: Default::default(),
            status: CommandStatus::Pending,
            result: None,
            created_at: at,
            sent_at: None,
            acked_at: None,
            created_by: "owner@example.test".into(),
        })
        .await?;
    }
    tx.commit().await?;
    // An agent's lock, carried once and never acknowledged.
    let secret = fixture.enrollment_token(&owner, None, 1).await?;
    let agent = fixture.enroll(&secret, "laptop").await?.device_id;
    let (_, lock) = fixture
        .core
        .devices
        .lock_device(
            &owner,
            agent.as_str(),
            latchkeyd::core::LockRequest::showing(""),
            now,
        )
        .await?;
    assert_eq!(fixture.agent.wakes().len(), 1);

    // The job's rounds, 15 s apart, from when the lock is due.
    for round in 0..4 {
        fixture
            .core
            .devices
            .redeliver(
                Duration::seconds(60),
                now + Duration::seconds(61 + 15 * round),
            )
            .await?;
    }
    let wakes = fixture.agent.wakes();
    assert!(
        wakes.iter().skip(1).any(|w| w.commands.contains(&lock.id)),
        "the agent's lock is offered again: {wakes:?}"
    );
    // The stranded commands stay queued for a channel that can carry them.
    let open = fixture.store.open_commands(&stranded).await?;
    assert_eq!(open.len(), 1000);
    assert!(open.iter().all(|c| c.status == CommandStatus::Pending));
    fixture.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_lock_of_more_devices_than_one_statement_takes_locks_audits_and_wakes_them_all()
-> anyhow::Result<()> {
    let (fixture, fake) = start_with_fake().await?;
    let owner = fixture.owner().await?;
    // More than two statements' worth (500 rows each), and one device of
    // another group that stays as it is.
    let n = 1_201;
    let devices: Vec<Device> = (0..=n)
        .map(|i| Device {
            id: DeviceId::generate(),
            hostname: format!("端末-{i}"),
            platform: "ios".into(),
            os_version: "18.1".into(),
            machine_id: String::new(),
            serial: format!("F2LX{i:08}"),
            model: "iPhone16,1".into(),
            state: DeviceState::Active,
            user: None,
            group: Some(if i < n { "floor-3" } else { "floor-4" }.into()),
            enrolled_at: fixture.now,
            last_seen: Some(fixture.now),
            posture: None,
            posture_at: None,
            certificate_expires_at: None,
            channel: Channel::parse("fake").expect("a channel name"),
        })
        .collect();
    fixture.store.insert_devices(&devices).await?;

    let done = fixture
        .core
        .devices
        .lock_devices(
            &owner,
            latchkeyd::core::BulkLockRequest {
                group: Some("floor-3".into()),
                message: "Locked by IT".into(),
                ..Default::default()
            },
            fixture.now,
        )
        .await?;
    assert_eq!(done.locked.len(), n);
    assert!(done.skipped.is_empty());

    // Woken in the background, each once, with its command already stored.
    latchkey_tests::wait_until(
        "every device woken",
        std::time::Duration::from_secs(30),
        || async { (fake.wakes().len() >= n).then_some(()) },
    )
    .await?;
    let wakes = fake.wakes();
    assert_eq!(wakes.len(), n);
    assert!(
        wakes
            .iter()
            .all(|(_, commands, stored)| commands.len() == 1 && *stored)
    );
    for device in &devices[..n] {
        let stored = fixture.store.device(&device.id).await?.expect("stored");
        assert_eq!(stored.state, DeviceState::Locked, "{}", device.hostname);
        let commands = fixture.store.list_commands(&device.id).await?;
        assert_eq!(commands.len(), 1);
        assert_eq!(commands[0].message, "Locked by IT");
    }
    let other = fixture.store.device(&devices[n].id).await?.expect("stored");
    assert_eq!(other.state, DeviceState::Active);
    let audited = fixture
        .store
        .list_audit(fixture.now - Duration::minutes(1), 10_000)
        .await?
        .into_iter()
        .filter(|e| e.action == "device.lock" && e.detail.contains("bulk lock of group"))
        .count();
    assert_eq!(audited, n);

    // The same lock again sends nothing twice.
    let again = fixture
        .core
        .devices
        .lock_devices(
            &owner,
            latchkeyd::core::BulkLockRequest {
                group: Some("floor-3".into()),
                ..Default::default()
            },
            fixture.now,
        )
        .await?;
    assert!(again.locked.is_empty());
    assert_eq!(again.skipped.len(), n);
    assert!(again.skipped.iter().all(|s| s.reason == "already locked"));
    fixture.stop().await
}
