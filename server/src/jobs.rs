//! The server's background jobs, one task each, all stopped by the one
//! cancellation token: redelivery of unacknowledged commands (and, on the
//! same tick, asking Apple devices whose facts have aged), the daily
//! CRL refresh, the purge of sign-in state whose time has passed, and the
//! sync of every Automated Device Enrollment token's device list, and the
//! renewal of Apple identity certificates about to expire. Each
//! job only calls a core operation with the current time; what it does is
//! in the core.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::core::Core;

/// How often open commands are checked for redelivery, and how long an
/// unacknowledged command waits before it is offered again.
const REDELIVERY_PERIOD: Duration = Duration::from_secs(15);
const REDELIVERY_AFTER: chrono::TimeDelta = chrono::TimeDelta::seconds(60);
/// The CRL says when the next one comes (7 days); brokers refuse every
/// device once it is past, so it is renewed daily.
const CRL_REFRESH: Duration = Duration::from_secs(24 * 3600);
/// How often expired sign-in state is deleted.
const SSO_PURGE_PERIOD: Duration = Duration::from_secs(10 * 60);

/// Starts every job on `tasks`.
pub fn spawn(
    tasks: &mut JoinSet<()>,
    core: &Arc<Core>,
    shutdown: &CancellationToken,
    dep_sync_interval: Duration,
    identity_renewal_interval: Duration,
) {
    tasks.spawn(redelivery(core.clone(), shutdown.clone()).instrument(info_span!("redelivery")));
    tasks.spawn(crl_refresh(core.clone(), shutdown.clone()).instrument(info_span!("crl_refresh")));
    tasks.spawn(purge(core.clone(), shutdown.clone()).instrument(info_span!("purge")));
    tasks.spawn(
        dep_sync(core.clone(), shutdown.clone(), dep_sync_interval)
            .instrument(info_span!("dep_sync")),
    );
    tasks.spawn(
        identity_renewal(core.clone(), shutdown.clone(), identity_renewal_interval)
            .instrument(info_span!("identity_renewal")),
    );
}

/// Starts the renewal of every Apple identity certificate about to expire
/// (`[apple] identity_renewal_interval`), the first pass at start. A
/// device has at most one renewal open, whichever replica starts it.
async fn identity_renewal(core: Arc<Core>, shutdown: CancellationToken, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        match core.apple.renew_expiring_identities(Utc::now()).await {
            Ok(pass) if pass.is_empty() => {}
            Ok(pass) => info!(
                started = pass.started.len(),
                closed = pass.closed.len(),
                "Apple identity renewals"
            ),
            Err(e) => warn!(error = %e, "Apple identity renewal failed"),
        }
    }
}

/// Syncs every ADE token's device list, the first time one interval after
/// start (a restart does not hit Apple at once). Replicas share each
/// token's cursor and lease in the database, so running this job on
/// every replica syncs each token once per interval or so.
async fn dep_sync(core: Arc<Core>, shutdown: CancellationToken, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.reset();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        if let Err(e) = core.apple.sync_all_dep(Utc::now()).await {
            warn!(error = %e, "ADE sync failed");
        }
    }
}

/// Offers open commands again through their devices' channels, and asks
/// Apple devices whose facts are older than the inventory interval.
async fn redelivery(core: Arc<Core>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(REDELIVERY_PERIOD);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        match core.devices.redeliver(REDELIVERY_AFTER, Utc::now()).await {
            Ok(0) => {}
            Ok(n) => info!(commands = n, "redelivered unacknowledged commands"),
            Err(e) => warn!(error = %e, "redelivery failed"),
        }
        match core.apple.refresh_inventory(Utc::now()).await {
            Ok(0) => {}
            Ok(n) => info!(devices = n, "asked Apple devices for their facts again"),
            Err(e) => warn!(error = %e, "the Apple inventory refresh failed"),
        }
    }
}

/// Rewrites the CRL file once a day (it was written at start).
async fn crl_refresh(core: Arc<Core>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(CRL_REFRESH);
    tick.reset();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => core.enrollment.publish_crl(Utc::now()).await,
        }
    }
}

/// Deletes expired sign-in sessions, requests, transactions, grants and
/// throttling counts.
async fn purge(core: Arc<Core>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(SSO_PURGE_PERIOD);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        match core.sign_in.purge_sso(Utc::now()).await {
            Ok(0) => {}
            Ok(n) => info!(rows = n, "removed expired sign-in state"),
            Err(e) => warn!(error = %e, "sign-in clean-up failed"),
        }
    }
}
