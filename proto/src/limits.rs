//! Limits both ends of the admin API check, so latchctl refuses at once
//! what the server would refuse, with the same words.

use std::time::Duration;

/// Longest enrollment-token lifetime.
pub const TOKEN_MAX_LIFETIME: Duration = Duration::from_secs(365 * 86400);
/// Most devices one enrollment token may enroll.
pub const TOKEN_MAX_USES: u32 = 1_000_000;

/// An enrollment token's settings outside what both ends accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenLimitError {
    #[error("the expiry must be between 1s and 365d")]
    Lifetime,
    #[error("the uses must be between 1 and {TOKEN_MAX_USES}")]
    Uses,
}

/// Checks an enrollment token's lifetime: 1 second to 365 days.
pub fn check_token_lifetime(lifetime: Duration) -> Result<(), TokenLimitError> {
    if lifetime < Duration::from_secs(1) || lifetime > TOKEN_MAX_LIFETIME {
        return Err(TokenLimitError::Lifetime);
    }
    Ok(())
}

/// Checks an enrollment token's number of uses: 1 to 1000000.
pub fn check_token_uses(uses: u32) -> Result<(), TokenLimitError> {
    if uses == 0 || uses > TOKEN_MAX_USES {
        return Err(TokenLimitError::Uses);
    }
    Ok(())
}

/// Most rows one user import takes.
pub const MAX_IMPORT_ROWS: usize = 50_000;
/// Largest import file: 50,000 rows of up to 335 bytes on average (an
/// address, a name in any script, a few groups). A typical row is 40 to
/// 80 bytes, so the row limit is reached long before this one.
pub const MAX_IMPORT_BYTES: usize = 16 * 1024 * 1024;
/// Largest admin request: an import file plus the message around it. The
/// server decodes and latchctl encodes up to this size.
pub const MAX_ADMIN_MESSAGE: usize = MAX_IMPORT_BYTES + 64 * 1024;
/// Largest admin answer latchctl reads (a user list of a large directory,
/// an import report naming every row).
pub const MAX_ADMIN_ANSWER: usize = 64 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_refused_not_taken_for_the_default() {
        assert!(check_token_lifetime(Duration::ZERO).is_err());
        assert!(check_token_lifetime(Duration::from_secs(1)).is_ok());
        assert!(check_token_lifetime(TOKEN_MAX_LIFETIME).is_ok());
        assert!(check_token_lifetime(TOKEN_MAX_LIFETIME + Duration::from_secs(1)).is_err());
        assert!(check_token_uses(0).is_err());
        assert!(check_token_uses(1).is_ok());
        assert!(check_token_uses(TOKEN_MAX_USES + 1).is_err());
    }
}
