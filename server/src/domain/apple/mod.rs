//! Apple MDM vocabulary: the check-in messages a device sends, the commands
//! the server sends it and the reports that answer them (`checkin`,
//! `command`), the device's enrollment (`enrollment`), and the push certificates and pushes that wake a device
//! (`push`), as typed values. Nothing here knows the plist wire form (that
//! is `api::apple`), HTTP or the store.

pub mod checkin;
pub mod command;
pub mod dep;
pub mod enrollment;
pub mod push;
