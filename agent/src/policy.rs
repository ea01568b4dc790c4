//! The policy settings the agent applies: what `run` takes from the
//! server's policy message, what the state directory keeps between runs and
//! what `status` reports.

use serde::{Deserialize, Serialize};

/// The policy settings the agent applies.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AppliedPolicy {
    pub name: String,
    pub version: i64,
    pub posture_interval_seconds: u32,
}
