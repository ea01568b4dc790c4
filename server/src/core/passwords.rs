//! Passwords: Argon2id hashing (OWASP parameters: 19 MiB, 2 passes, one
//! lane) with at most one hash per core in flight, since each costs about
//! 15 ms of CPU and 19 MiB of memory; temporary passwords for resets.
//!
//! The 19 MiB work areas are allocated once per core and reused: a fresh
//! allocation per hash costs page faults, and the allocator keeps freed
//! areas of that size, so memory would grow with every burst of sign-ins.
//! Hashes are PHC strings (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).

use std::sync::{Arc, Mutex};

use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine;
use tokio::sync::Semaphore;

use super::{CoreError, InternalError};

/// How long a temporary password from `user reset-password` is valid.
pub const TEMPORARY_PASSWORD_DAYS: i64 = 7;

/// Letters and digits that cannot be mistaken for one another when read
/// aloud or typed from a printout (no 0/O, 1/l/I).
const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
const TEMPORARY_LENGTH: usize = 16;

/// A password in clear. `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(text: String) -> Self {
        Self(text)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// Memory (KiB), passes and lanes of new hashes.
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;
const OUTPUT_LEN: usize = 32;
/// Stored hashes asking for more memory than this are refused, not run.
const MAX_MEMORY_KIB: u32 = 256 * 1024;

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD_NO_PAD
}

/// A parsed PHC string of an Argon2id hash.
struct Stored {
    memory_kib: u32,
    passes: u32,
    lanes: u32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl Stored {
    fn parse(phc: &str) -> Option<Stored> {
        let mut parts = phc.split('$');
        let (Some(""), Some("argon2id"), Some("v=19"), Some(params), Some(salt), Some(hash), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let (mut m, mut t, mut p) = (None, None, None);
        for pair in params.split(',') {
            let (key, value) = pair.split_once('=')?;
            let value: u32 = value.parse().ok()?;
            match key {
                "m" => m = Some(value),
                "t" => t = Some(value),
                "p" => p = Some(value),
                _ => return None,
            }
        }
        Some(Stored {
            memory_kib: m.filter(|m| *m <= MAX_MEMORY_KIB)?,
            passes: t?,
            lanes: p?,
            salt: b64().decode(salt).ok()?,
            hash: b64()
                .decode(hash)
                .ok()
                .filter(|h| (4..=64).contains(&h.len()))?,
        })
    }
}

/// The password hasher, shared by every login and reset.
#[derive(Debug, Clone)]
pub struct Passwords {
    in_flight: Arc<Semaphore>,
    /// Work areas of the default size, one per hash in flight at most.
    areas: Arc<Mutex<Vec<Vec<Block>>>>,
    /// A hash of nothing anyone knows, verified when there is no real hash
    /// so that every check costs the same.
    dummy: Arc<tokio::sync::OnceCell<String>>,
}

/// Runs Argon2id into `out` with a reused work area when the size fits.
fn compute(
    areas: &Mutex<Vec<Vec<Block>>>,
    (memory_kib, passes, lanes): (u32, u32, u32),
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), CoreError> {
    let params = Params::new(memory_kib, passes, lanes, Some(out.len()))
        .map_err(InternalError::PasswordHash)?;
    let needed = params.block_count();
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let reused = areas.lock().ok().and_then(|mut a| a.pop());
    let mut area = match reused {
        Some(area) if area.len() == needed => area,
        _ => vec![Block::default(); needed],
    };
    let result = argon2
        .hash_password_into_with_memory(password, salt, out, &mut area[..])
        .map_err(|e| CoreError::from(InternalError::PasswordHash(e)));
    if memory_kib == MEMORY_KIB
        && let Ok(mut areas) = areas.lock()
    {
        areas.push(area);
    }
    result
}

impl Default for Passwords {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Passwords {
            in_flight: Arc::new(Semaphore::new(cores)),
            areas: Arc::new(Mutex::new(Vec::with_capacity(cores))),
            dummy: Arc::new(tokio::sync::OnceCell::new()),
        }
    }
}

impl Passwords {
    /// An Argon2id PHC string for `password` with a fresh salt.
    pub async fn hash(&self, password: &Password) -> Result<String, CoreError> {
        // The permit moves into the blocking task: a caller that goes away
        // does not free a core that is still hashing.
        let permit = self
            .in_flight
            .clone()
            .acquire_owned()
            .await
            .map_err(InternalError::from)?;
        let password = password.clone();
        let salt = latchkey_certs::random_bytes::<16>()?;
        let areas = self.areas.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = [0u8; OUTPUT_LEN];
            let computed = compute(
                &areas,
                (MEMORY_KIB, PASSES, LANES),
                password.expose().as_bytes(),
                &salt,
                &mut out,
            );
            drop(permit);
            computed?;
            Ok(format!(
                "$argon2id$v=19$m={MEMORY_KIB},t={PASSES},p={LANES}${}${}",
                b64().encode(salt),
                b64().encode(out)
            ))
        })
        .await
        .map_err(InternalError::from)?
    }

    /// Whether `password` matches the PHC string `hash`.
    pub async fn verify(&self, password: &Password, hash: &str) -> Result<bool, CoreError> {
        let permit = self
            .in_flight
            .clone()
            .acquire_owned()
            .await
            .map_err(InternalError::from)?;
        let Some(stored) = Stored::parse(hash) else {
            return Ok(false);
        };
        let password = password.clone();
        let areas = self.areas.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = vec![0u8; stored.hash.len()];
            let computed = compute(
                &areas,
                (stored.memory_kib, stored.passes, stored.lanes),
                password.expose().as_bytes(),
                &stored.salt,
                &mut out,
            );
            drop(permit);
            computed?;
            // Constant time: every byte is compared.
            let differ = out
                .iter()
                .zip(&stored.hash)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            Ok(differ == 0)
        })
        .await
        .map_err(InternalError::from)?
    }

    /// Spends what [`Passwords::verify`] spends, on a hash nothing matches.
    pub async fn verify_dummy(&self, password: &Password) -> Result<(), CoreError> {
        let dummy = self
            .dummy
            .get_or_try_init(|| async { self.hash(&temporary_password()?).await })
            .await?;
        self.verify(password, dummy).await?;
        Ok(())
    }
}

/// A random temporary password of 16 unambiguous letters and digits
/// (about 93 bits).
pub fn temporary_password() -> Result<Password, CoreError> {
    let mut out = String::with_capacity(TEMPORARY_LENGTH);
    // Rejection sampling keeps every character equally likely.
    let limit = 256 - 256 % ALPHABET.len();
    while out.len() < TEMPORARY_LENGTH {
        for byte in latchkey_certs::random_bytes::<32>()? {
            if usize::from(byte) < limit
                && out.len() < TEMPORARY_LENGTH
                && let Some(c) = ALPHABET.get(usize::from(byte) % ALPHABET.len())
            {
                out.push(char::from(*c));
            }
        }
    }
    Ok(Password(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_only_their_password() {
        let passwords = Passwords::default();
        let secret = temporary_password().unwrap();
        assert_eq!(secret.expose().len(), 16);
        assert!(secret.expose().bytes().all(|b| ALPHABET.contains(&b)));
        let hash = passwords.hash(&secret).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(passwords.verify(&secret, &hash).await.unwrap());
        let wrong = Password::new("not it".into());
        assert!(!passwords.verify(&wrong, &hash).await.unwrap());
        assert!(!passwords.verify(&secret, "garbage").await.unwrap());
        // A hash written by the argon2 crate's own PHC encoder verifies too.
        use argon2::password_hash::PasswordHasher;
        let crate_hash = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(MEMORY_KIB, PASSES, LANES, None).unwrap(),
        )
        .hash_password_with_salt(secret.expose().as_bytes(), b"0123456789abcdef")
        .unwrap()
        .to_string();
        assert!(passwords.verify(&secret, &crate_hash).await.unwrap());
        assert!(!passwords.verify(&wrong, &crate_hash).await.unwrap());
        // Absurd memory in a stored hash is refused rather than run.
        let huge = hash.replace("m=19456", "m=4194304");
        assert!(!passwords.verify(&secret, &huge).await.unwrap());
        assert_eq!(format!("{secret:?}"), "Password([redacted])");
    }
}
