//! Apple MDM wire forms: property lists in (check-in messages, command
//! reports) and out (commands, check-in answers), as pure functions over `domain::apple` types.

pub mod checkin;
pub mod commands;
pub mod machine_info;
pub mod report;
pub mod wire;
