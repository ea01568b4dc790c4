//! Identifier newtypes. Ids are 32 lower-case hex digits (simple-form
//! UUIDs, or for the sign-in state 16 random or derived bytes), which are
//! valid in MQTT topics, certificate names and URLs alike. Secrets (cookie
//! secrets, codes, link secrets) are not ids and have no type here.

use std::fmt;

/// What every id newtype has: `parse`, `as_str`, `from_store` and
/// `Display`.
macro_rules! id_common {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Accepts only the canonical form this server hands out, so an
            /// id read from a topic, a certificate or a request can be used
            /// safely in topics and queries.
            pub fn parse(text: &str) -> Option<Self> {
                let canonical = text.len() == 32
                    && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
                canonical.then(|| Self(text.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// For ids read back from our own store.
            pub(crate) fn from_store(text: String) -> Self {
                Self(text)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// An id the server makes itself: a new random one is `generate`d.
macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        id_common!($(#[$meta])* $name);

        impl $name {
            /// A new random id.
            pub fn generate() -> Self {
                Self(uuid::Uuid::new_v4().simple().to_string())
            }
        }
    };
}

/// An id of the sign-in state, made from 16 bytes the caller chose: random
/// ones from the server's one source of randomness, or a digest's first
/// bytes when the id is derived from a secret or a handle. Its text is the
/// same canonical form as every other id.
macro_rules! sign_in_id_type {
    ($(#[$meta:meta])* $name:ident) => {
        id_common!($(#[$meta])* $name);

        impl $name {
            /// The id whose text is `bytes` in lower-case hex.
            pub fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(hex::encode(bytes))
            }

            /// The id derived from a SHA-256 `digest`: its first 16 bytes.
            pub fn from_digest(digest: &[u8; 32]) -> Self {
                let mut bytes = [0u8; 16];
                for (byte, from) in bytes.iter_mut().zip(digest) {
                    *byte = *from;
                }
                Self::from_bytes(bytes)
            }
        }
    };
}

id_type!(
    /// A device enrolled in Latchkey.
    DeviceId
);
id_type!(
    /// A command in the outbox.
    CommandId
);
id_type!(
    /// An admin (latchctl user).
    AdminId
);
id_type!(
    /// An enrollment token (the public id, not the secret).
    TokenId
);
id_type!(
    /// A user of the SSO layer (an employee).
    UserId
);
id_type!(
    /// An SSO app: its OAuth 2.0 client id.
    ClientId
);
sign_in_id_type!(
    /// A browser's session with the sign-in pages (`SsoSession`). A new
    /// session's id is derived from its first cookie secret; the cookie
    /// carries the secret, never the id.
    SsoSessionId
);
sign_in_id_type!(
    /// An `/authorize` request's key in the store (`AuthRequest`): the
    /// digest of the sealed handle the pages carry, which names the
    /// request as well.
    AuthRequestId
);
sign_in_id_type!(
    /// A device-auth transaction (`DeviceAuthTxn`): the one id the
    /// `latchkey://` link, the waiting page and the device's calls name.
    DeviceAuthTxnId
);
sign_in_id_type!(
    /// A sign-in Setup Assistant's web view started for a device listed
    /// by Automated Device Enrollment (`DepSignIn`): derived from the
    /// secret in the web view's cookie, and the `state` its sign-in
    /// carries.
    DepSignInId
);
sign_in_id_type!(
    /// A grant: one authorization code and the tokens issued for it
    /// (`Grant`); access tokens name it as their `sid`.
    GrantId
);

#[cfg(test)]
mod tests {
    use super::{DeviceAuthTxnId, DeviceId};

    #[test]
    fn only_canonical_ids_parse() {
        let id = DeviceId::generate();
        assert_eq!(DeviceId::parse(id.as_str()), Some(id.clone()));
        assert_eq!(DeviceId::parse("+"), None);
        assert_eq!(DeviceId::parse(&id.as_str().to_uppercase()), None);
        assert_eq!(DeviceId::parse(&format!("{id}/x")), None);
    }

    #[test]
    fn sign_in_ids_are_their_bytes_in_hex() {
        let id = DeviceAuthTxnId::from_bytes([0xab; 16]);
        assert_eq!(id.as_str(), "ab".repeat(16));
        assert_eq!(DeviceAuthTxnId::parse(id.as_str()), Some(id));
        assert_eq!(DeviceAuthTxnId::parse(&"AB".repeat(16)), None);
        assert_eq!(DeviceAuthTxnId::parse(""), None);
        let mut digest = [0u8; 32];
        digest[0] = 0x01;
        digest[16] = 0xff;
        let derived = DeviceAuthTxnId::from_digest(&digest);
        assert_eq!(derived.as_str(), format!("01{}", "00".repeat(15)));
    }
}
