//! Passwords: Argon2id hashing (OWASP parameters: 19 MiB, 2 passes, one
//! lane) with at most one hash per core in flight, since each costs about
//! 15 ms of CPU and 19 MiB of memory; temporary passwords for resets.

use std::sync::Arc;

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use super::CoreError;

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

fn argon2() -> Result<Argon2<'static>, CoreError> {
    let params = Params::new(19 * 1024, 2, 1, None)
        .map_err(|e| CoreError::Internal(format!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// The password hasher, shared by every login and reset.
#[derive(Debug, Clone)]
pub struct Passwords {
    in_flight: Arc<Semaphore>,
    /// A hash of nothing anyone knows, verified when there is no real hash
    /// so that every check costs the same.
    dummy: Arc<tokio::sync::OnceCell<String>>,
}

impl Default for Passwords {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Passwords {
            in_flight: Arc::new(Semaphore::new(cores)),
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
            .map_err(|e| CoreError::Internal(e.to_string()))?;
        let password = password.clone();
        let salt = latchkey_certs::random_bytes::<16>()?;
        tokio::task::spawn_blocking(move || {
            let hash = argon2()?
                .hash_password_with_salt(password.expose().as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(|e| CoreError::Internal(format!("argon2: {e}")));
            drop(permit);
            hash
        })
        .await
        .map_err(|e| CoreError::Internal(e.to_string()))?
    }

    /// Whether `password` matches the PHC string `hash`.
    pub async fn verify(&self, password: &Password, hash: &str) -> Result<bool, CoreError> {
        let permit = self
            .in_flight
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| CoreError::Internal(e.to_string()))?;
        let (password, hash) = (password.clone(), hash.to_owned());
        tokio::task::spawn_blocking(move || {
            let matches = argon2()?
                .verify_password(password.expose().as_bytes(), hash.as_str())
                .is_ok();
            drop(permit);
            Ok(matches)
        })
        .await
        .map_err(|e| CoreError::Internal(e.to_string()))?
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
        assert_eq!(format!("{secret:?}"), "Password([redacted])");
    }
}
