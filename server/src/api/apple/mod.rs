//! Apple MDM wire forms: property lists in (check-in messages, command
//! reports) and out (commands, check-in answers, the enrollment profile,
//! policy profiles), as pure functions over `domain::apple` types.

pub mod checkin;
pub mod commands;
pub mod enrollment;
pub mod machine_info;
pub mod policy_profile;
pub mod profile;
pub mod wire;
