//! Identifier newtypes. Ids are simple-form UUIDs (32 lower-case hex digits),
//! which are valid in MQTT topics, certificate names and URLs alike.

use std::fmt;

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// A new random id.
            pub fn generate() -> Self {
                Self(uuid::Uuid::new_v4().simple().to_string())
            }

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

#[cfg(test)]
mod tests {
    use super::DeviceId;

    #[test]
    fn only_canonical_ids_parse() {
        let id = DeviceId::generate();
        assert_eq!(DeviceId::parse(id.as_str()), Some(id.clone()));
        assert_eq!(DeviceId::parse("+"), None);
        assert_eq!(DeviceId::parse(&id.as_str().to_uppercase()), None);
        assert_eq!(DeviceId::parse(&format!("{id}/x")), None);
    }
}
