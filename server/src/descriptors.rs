//! The process's file-descriptor budget. Every TCP connection, database
//! connection and open file costs one descriptor; a device's MQTT session
//! costs three with the embedded broker (the device's socket, the
//! gateway's connection to the internal listener and the broker's end of
//! it). When descriptors run out, `accept` fails with EMFILE for every
//! waiting connection, so the server raises its soft limit to the hard
//! limit at start and admits only as many MQTT sessions as fit, keeping a
//! reserve for everything else.

/// Descriptors kept for what is not an MQTT session: listeners, the
/// database pool, HTTPS and gRPC connections, files, the runtime.
pub const RESERVED: u64 = 256;
/// Descriptors one MQTT session holds with the embedded broker.
pub const PER_MQTT_SESSION: u64 = 3;

/// The soft and hard limits on open descriptors; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// The current limit, `None` where the platform has none to read.
pub fn current() -> Option<Limit> {
    #[cfg(unix)]
    {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        Some(Limit {
            soft: limit.current,
            hard: limit.maximum,
        })
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Raises the soft limit to the hard limit (a process may do this without
/// privileges) and returns the limit in force afterwards.
pub fn raise_soft_to_hard() -> std::io::Result<Option<Limit>> {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        if limit.current != limit.maximum {
            setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: limit.maximum,
                    maximum: limit.maximum,
                },
            )?;
        }
        Ok(current())
    }
    #[cfg(not(unix))]
    {
        Ok(None)
    }
}

/// How many MQTT sessions fit in `soft` descriptors besides the reserve.
pub fn mqtt_sessions_within(soft: Option<u64>) -> usize {
    match soft {
        None => usize::MAX,
        Some(soft) => {
            usize::try_from(soft.saturating_sub(RESERVED) / PER_MQTT_SESSION).unwrap_or(usize::MAX)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_counted_at_three_descriptors_after_the_reserve() {
        assert_eq!(mqtt_sessions_within(Some(1024)), 256);
        assert_eq!(mqtt_sessions_within(Some(1_048_576)), 349_440);
        assert_eq!(mqtt_sessions_within(Some(100)), 0);
        assert_eq!(mqtt_sessions_within(None), usize::MAX);
    }
}
