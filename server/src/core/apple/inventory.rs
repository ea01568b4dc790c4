//! Keeping an Apple device's facts current. A device reports only what it
//! is asked, so its posture (passcode, FileVault or Data Protection) and
//! its OS version are asked again once they are older than
//! `[apple] inventory_interval`: compliance judges a device by facts no
//! older than the policy's `max_posture_age`, and without the question an
//! Apple device would fail that check a day after enrolling, or pass on
//! facts from the day it enrolled.

use chrono::{DateTime, Utc};

use super::Apple;
use crate::core::CoreError;
use crate::domain::audit::Actor;
use crate::domain::command::{Command, CommandArgs, CommandKind};
use crate::domain::device::Channel;
use crate::push::port::Work;

/// How many devices one pass asks; the next pass takes the rest.
const BATCH: u64 = 1000;

impl Apple {
    /// Queues DeviceInformation and SecurityInfo for every managed Apple
    /// device whose posture is older than the interval and which has no
    /// such question open (a device that is away is not asked twice), and
    /// wakes the devices concurrently. Returns how many were asked.
    pub async fn refresh_inventory(&self, now: DateTime<Utc>) -> Result<usize, CoreError> {
        let due = self
            .store
            .apple_devices_due_inventory(now - self.settings.inventory_interval, BATCH)
            .await?;
        if due.is_empty() {
            return Ok(0);
        }
        let mut queued = Vec::with_capacity(due.len());
        let tx = self.store.begin().await?;
        for device in &due {
            let mut commands = Vec::with_capacity(2);
            for (i, kind) in [CommandKind::Inventory, CommandKind::SecurityInfo]
                .into_iter()
                .enumerate()
            {
                let command = Command::pending(
                    device.clone(),
                    kind,
                    "facts older than the inventory interval".into(),
                    CommandArgs::default(),
                    Actor::System.to_string(),
                    // Distinct times keep the order the device fetches in.
                    now + chrono::Duration::milliseconds(i64::from(i == 1)),
                );
                tx.insert_command(&command).await?;
                commands.push(command);
            }
            queued.push((device.clone(), commands));
        }
        tx.commit().await?;
        let offers = queued
            .into_iter()
            .map(|(device, commands)| (Channel::apple(), Work { device, commands }))
            .collect();
        self.devices.offer_all(offers, now).await;
        Ok(due.len())
    }
}
