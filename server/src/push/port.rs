//! The port every device channel implements: "this device has work".
//!
//! A command is stored in the outbox first, whatever channel manages its
//! device (`store::commands`). Then the core tells the device's channel
//! that the device has work, and the channel does what its platform does:
//! the agent's channel (MQTT) carries the commands themselves; a channel
//! whose devices fetch their commands when they check in (Apple's MDM,
//! Windows' OMA-DM) only wakes the device; a cloud API (Android's) is called
//! with the command. A channel reports which commands it handed over, and
//! the core marks those sent; the others wait for the device to fetch them
//! (`Devices::next_command`) or for the next redelivery.
//!
//! Adding a channel is a file that implements [`WorkPort`] and one line
//! that registers it in [`Ports`] where the server is assembled.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;

use crate::domain::command::Command;
use crate::domain::device::Channel;
use crate::domain::ids::{CommandId, DeviceId};

#[derive(Debug, Clone, thiserror::Error)]
pub enum PortError {
    /// The channel could not reach the device or its platform's service;
    /// the commands stay in the outbox and are offered again later.
    #[error("the {channel} channel is unavailable: {reason}")]
    Unavailable {
        channel: &'static str,
        reason: String,
    },
    #[error("no channel is registered for devices managed by {0:?}")]
    NoChannel(String),
}

/// What a channel did with the work it was told about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Handover {
    /// Commands the channel carried to the device (or to the platform's
    /// service, which accepted them): the core marks these sent.
    pub delivered: Vec<CommandId>,
}

/// One device's open commands, oldest first (at least one).
#[derive(Debug, Clone)]
pub struct Work {
    pub device: DeviceId,
    pub commands: Vec<Command>,
}

/// Devices [`WorkPort::have_work`] tells at once by default: a wake-up is
/// a network call for some channels, so thousands of devices are told
/// concurrently, not one after another.
pub const CONCURRENT_OFFERS: usize = 256;

/// Tells one channel's devices that they have work.
pub trait WorkPort: Send + Sync {
    /// The channel's name, as devices record it ([`Channel`]).
    fn channel(&self) -> &'static str;

    /// `device` has these open commands, oldest first (at least one), at
    /// `now`.
    fn has_work<'a>(
        &'a self,
        device: &'a DeviceId,
        commands: &'a [Command],
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Handover, PortError>>;

    /// Several devices have work: one answer for each, in the order given.
    /// By default each device is told on its own, [`CONCURRENT_OFFERS`] at
    /// a time; a channel that does better in bulk (one read and one write
    /// for the lot) does it here.
    fn have_work<'a>(
        &'a self,
        work: &'a [Work],
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Vec<Result<Handover, PortError>>> {
        Box::pin(
            futures_util::stream::iter(work)
                .map(move |w| self.has_work(&w.device, &w.commands, now))
                .buffered(CONCURRENT_OFFERS)
                .collect(),
        )
    }
}

/// Every channel this server runs, by name; built once at start.
#[derive(Clone, Default)]
pub struct Ports {
    ports: BTreeMap<&'static str, Arc<dyn WorkPort>>,
}

impl Ports {
    /// Registers a channel; a later registration of the same name replaces
    /// the earlier one.
    pub fn register(&mut self, port: Arc<dyn WorkPort>) -> &mut Self {
        self.ports.insert(port.channel(), port);
        self
    }

    pub fn get(&self, channel: &Channel) -> Result<&Arc<dyn WorkPort>, PortError> {
        self.ports
            .get(channel.as_str())
            .ok_or_else(|| PortError::NoChannel(channel.as_str().to_owned()))
    }
}

/// What a [`RecordingPort`] was told: a device and the commands it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wake {
    pub device: DeviceId,
    pub commands: Vec<CommandId>,
}

/// A channel for tests: it records every wake-up and hands nothing over
/// (the device fetches), or, built with [`RecordingPort::delivering`],
/// reports every command delivered as the agent's channel does.
pub struct RecordingPort {
    channel: &'static str,
    delivers: bool,
    wakes: Mutex<Vec<Wake>>,
}

impl RecordingPort {
    /// A channel whose devices fetch their commands after a wake-up.
    pub fn waking(channel: &'static str) -> Self {
        RecordingPort {
            channel,
            delivers: false,
            wakes: Mutex::new(Vec::new()),
        }
    }

    /// A channel that carries the commands itself.
    pub fn delivering(channel: &'static str) -> Self {
        RecordingPort {
            delivers: true,
            ..Self::waking(channel)
        }
    }

    /// Every wake-up so far, oldest first.
    pub fn wakes(&self) -> Vec<Wake> {
        self.wakes.lock().map(|w| w.clone()).unwrap_or_default()
    }
}

impl WorkPort for RecordingPort {
    fn channel(&self) -> &'static str {
        self.channel
    }

    fn has_work<'a>(
        &'a self,
        device: &'a DeviceId,
        commands: &'a [Command],
        _now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Handover, PortError>> {
        let ids: Vec<CommandId> = commands.iter().map(|c| c.id.clone()).collect();
        if let Ok(mut wakes) = self.wakes.lock() {
            wakes.push(Wake {
                device: device.clone(),
                commands: ids.clone(),
            });
        }
        let delivered = if self.delivers { ids } else { Vec::new() };
        Box::pin(async move { Ok(Handover { delivered }) })
    }
}
