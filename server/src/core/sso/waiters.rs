//! Browsers waiting on device-auth transactions in this process. An answer
//! taken here wakes its waiters at once; one taken by another replica is
//! seen by the waiter's next look at the database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::domain::ids::DeviceAuthTxnId;

#[derive(Debug, Default)]
pub struct Waiters {
    by_txn: Mutex<HashMap<DeviceAuthTxnId, Arc<Notify>>>,
}

impl Waiters {
    /// The notifier for a transaction, created on first use.
    pub fn waiter(&self, txn_id: &DeviceAuthTxnId) -> Arc<Notify> {
        match self.by_txn.lock() {
            Ok(mut map) => map.entry(txn_id.clone()).or_default().clone(),
            Err(_) => Arc::new(Notify::new()),
        }
    }

    /// Wakes everyone waiting on the transaction.
    pub fn wake(&self, txn_id: &DeviceAuthTxnId) {
        if let Ok(map) = self.by_txn.lock()
            && let Some(notify) = map.get(txn_id)
        {
            notify.notify_waiters();
        }
    }

    /// Forgets a transaction nobody waits on any more.
    pub fn prune(&self, txn_id: &DeviceAuthTxnId) {
        if let Ok(mut map) = self.by_txn.lock()
            && map.get(txn_id).is_some_and(|n| Arc::strong_count(n) == 1)
        {
            map.remove(txn_id);
        }
    }
}
