//! The domain vocabulary: identifiers, the records the server works with
//! (admins, devices, commands, policies, users and groups, apps, sign-in
//! state, audit entries) and the pure rules over them (which policy
//! applies, the compliance verdict, address rules).
//!
//! Everything else builds on this module and it builds on nothing of the
//! server: it names no `core`, `store`, `ca`, `push` or `api` item, and no
//! transport or storage crate. These types are neither wire types nor
//! database rows; `api` and `store` convert.

pub mod admin;
pub mod app;
pub mod apple;
pub mod audit;
pub mod command;
pub mod device;
pub mod ids;
pub mod networks;
pub mod policy;
pub mod sign_in;
pub mod user;
