//! Waiting on a device-auth transaction for a client that asks "has it
//! moved yet?": the browser's `/login/wait` and the agent's
//! `AwaitDeviceAuthDelivery`. A change in this process wakes the wait at
//! once; one made by another replica is seen within a second.

use std::future::Future;
use std::time::Duration;

use crate::core::{Core, CoreError};
use crate::domain::ids::DeviceAuthTxnId;

/// How often the state is read again when nothing in this process wakes
/// the wait.
const REREAD: Duration = Duration::from_secs(1);

/// Reads `read` until it says the wait is over (`Some`) or `wait` passes;
/// then returns the last state read.
pub async fn until_moved<T, F, Fut>(
    core: &Core,
    txn_id: &DeviceAuthTxnId,
    wait: Duration,
    mut read: F,
) -> Result<T, CoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(T, bool), CoreError>>,
{
    let deadline = tokio::time::Instant::now() + wait;
    let outcome = loop {
        // Registered before the read, so a change in between is not missed.
        let waiter = core.sign_in.device_auth_waiter(txn_id);
        let notified = waiter.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (state, done) = match read().await {
            Ok(read) => read,
            Err(e) => break Err(e),
        };
        let now = tokio::time::Instant::now();
        if done || now >= deadline {
            break Ok(state);
        }
        let wake = (now + REREAD).min(deadline);
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep_until(wake) => {}
        }
    };
    core.sign_in.release_device_auth_waiter(txn_id);
    outcome
}
