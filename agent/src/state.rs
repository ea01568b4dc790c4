//! The agent's state directory: enrollment record, certificate chain, the
//! server's CA, the last policy, handled commands and the connection status.
//! Files holding secrets are written 0600; every write is atomic.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::policy::AppliedPolicy;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error(
        "this agent is not enrolled; run `latchkey-agent enroll --server URL --token T --ca FILE` first"
    )]
    NotEnrolled,
}

/// What enrollment left behind.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Enrollment {
    pub device_id: String,
    /// gRPC URL of the server, e.g. `https://localhost:7443`.
    pub server_url: String,
    pub mqtt_url: String,
    /// Unix seconds.
    pub enrolled_at: i64,
}

/// Written by `run`, read by `status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConnectionStatus {
    /// "connected", "reconnecting", "refused" or "stopped".
    pub state: String,
    pub detail: String,
    /// Unix seconds of the change.
    pub since: i64,
}

/// Commands already executed, so a redelivered one is acknowledged again
/// without running twice.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HandledCommands {
    pub entries: Vec<HandledCommand>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HandledCommand {
    pub id: String,
    pub success: bool,
    pub result: String,
}

const MAX_HANDLED: usize = 256;

impl HandledCommands {
    pub fn find(&self, id: &str) -> Option<&HandledCommand> {
        self.entries.iter().find(|c| c.id == id)
    }

    pub fn push(&mut self, command: HandledCommand) {
        self.entries.retain(|c| c.id != command.id);
        self.entries.push(command);
        let excess = self.entries.len().saturating_sub(MAX_HANDLED);
        self.entries.drain(..excess);
    }
}

#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

const ENROLLMENT: &str = "enrollment.json";
const CHAIN: &str = "device.pem";
const CA: &str = "ca.pem";
const STATUS: &str = "status.json";
const HANDLED: &str = "handled-commands.json";
const POLICY: &str = "policy.json";

impl StateDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn ensure(&self) -> Result<(), StateError> {
        std::fs::create_dir_all(&self.dir).map_err(|source| StateError::Io {
            path: self.dir.clone(),
            source,
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700));
        }
        Ok(())
    }

    pub fn write(&self, name: &str, contents: &str, private: bool) -> Result<(), StateError> {
        self.ensure()?;
        let path = self.file(name);
        let io = |source| StateError::Io {
            path: path.clone(),
            source,
        };
        let access = if private {
            latchkey_certs::files::Access::OwnerOnly
        } else {
            latchkey_certs::files::Access::Public
        };
        latchkey_certs::files::write_atomic(&path, contents.as_bytes(), access).map_err(io)
    }

    pub fn read(&self, name: &str) -> Result<Option<String>, StateError> {
        let path = self.file(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::Io { path, source }),
        }
    }

    fn read_json<T: for<'de> Deserialize<'de>>(&self, name: &str) -> Result<Option<T>, StateError> {
        let Some(text) = self.read(name)? else {
            return Ok(None);
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| StateError::Corrupt {
                path: self.file(name),
                message: e.to_string(),
            })
    }

    fn write_json<T: Serialize>(
        &self,
        name: &str,
        value: &T,
        private: bool,
    ) -> Result<(), StateError> {
        let text = serde_json::to_string_pretty(value).map_err(|e| StateError::Corrupt {
            path: self.file(name),
            message: e.to_string(),
        })?;
        self.write(name, &text, private)
    }

    pub fn enrollment(&self) -> Result<Enrollment, StateError> {
        self.read_json(ENROLLMENT)?.ok_or(StateError::NotEnrolled)
    }

    pub fn save_enrollment(&self, enrollment: &Enrollment) -> Result<(), StateError> {
        self.write_json(ENROLLMENT, enrollment, false)
    }

    pub fn certificate_chain(&self) -> Result<String, StateError> {
        self.read(CHAIN)?.ok_or(StateError::NotEnrolled)
    }

    pub fn save_certificate_chain(&self, pem: &str) -> Result<(), StateError> {
        self.write(CHAIN, pem, false)
    }

    pub fn ca(&self) -> Result<Option<String>, StateError> {
        self.read(CA)
    }

    pub fn save_ca(&self, pem: &str) -> Result<(), StateError> {
        self.write(CA, pem, false)
    }

    pub fn status(&self) -> Result<Option<ConnectionStatus>, StateError> {
        self.read_json(STATUS)
    }

    pub fn save_status(&self, status: &ConnectionStatus) -> Result<(), StateError> {
        self.write_json(STATUS, status, false)
    }

    pub fn handled_commands(&self) -> Result<HandledCommands, StateError> {
        Ok(self.read_json(HANDLED)?.unwrap_or_default())
    }

    pub fn save_handled_commands(&self, handled: &HandledCommands) -> Result<(), StateError> {
        self.write_json(HANDLED, handled, false)
    }

    pub fn policy(&self) -> Result<Option<AppliedPolicy>, StateError> {
        self.read_json(POLICY)
    }

    pub fn save_policy(&self, policy: &AppliedPolicy) -> Result<(), StateError> {
        self.write_json(POLICY, policy, false)
    }

    /// Removes the files enrollment wrote here (wipe/unenroll); the
    /// directory stays. The device key is the keystore's to remove
    /// (`keystore::remove`), since a hardware-backed key is no file here.
    pub fn remove_enrollment(&self) -> Result<(), StateError> {
        for name in [ENROLLMENT, CHAIN, CA, STATUS, HANDLED, POLICY] {
            self.remove(name)?;
        }
        Ok(())
    }

    /// Removes one file; a file that is not there is already removed.
    pub fn remove(&self, name: &str) -> Result<(), StateError> {
        let path = self.file(name);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StateError::Io { path, source }),
        }
    }
}
