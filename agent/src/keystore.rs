//! Where the device key lives. Today a software key in a 0600 file in the
//! state directory; hardware-backed stores (TPM, Secure Enclave) can take its
//! place behind the same functions. The key never leaves this module except
//! as the PEM handed to the TLS stack.

use latchkey_certs::PrivateKeyPem;

use crate::state::{StateDir, StateError};

pub const KEY_FILE: &str = "device.key";

/// How the key is protected, as reported in `status`.
pub const PROTECTION: &str = "software (file, mode 0600)";

pub fn load(state: &StateDir) -> Result<PrivateKeyPem, StateError> {
    state
        .read(KEY_FILE)?
        .map(PrivateKeyPem::new)
        .ok_or(StateError::NotEnrolled)
}

pub fn store(state: &StateDir, key: &PrivateKeyPem) -> Result<(), StateError> {
    state.write(KEY_FILE, key.expose(), true)
}

/// Removes the device key (a wipe). A key that is not there is already
/// removed.
pub fn remove(state: &StateDir) -> Result<(), StateError> {
    state.remove(KEY_FILE)
}
