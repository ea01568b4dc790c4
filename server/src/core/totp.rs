//! Time-based one-time passwords (RFC 6238, HOTP of RFC 4226 underneath):
//! the second factor employees enroll with an authenticator app. SHA-1,
//! 6 digits, 30-second steps — what every authenticator app accepts.
//! A code is accepted one step either side of now, and a step once used is
//! refused after (the caller stores the last accepted step).

use chrono::{DateTime, Utc};
use ring::hmac;

use super::CoreError;

pub const DIGITS: u32 = 6;
pub const STEP_SECONDS: i64 = 30;
/// Steps accepted either side of the current one (clock skew).
pub const WINDOW: i64 = 1;

/// A TOTP shared secret (20 random bytes, as RFC 4226 recommends).
/// `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret([redacted])")
    }
}

impl TotpSecret {
    pub fn generate() -> Result<Self, CoreError> {
        Ok(Self(latchkey_certs::random_bytes::<20>()?.to_vec()))
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// Reads the key as an authenticator app takes it typed in: base32,
    /// case and spaces ignored, padding optional.
    pub fn from_base32(text: &str) -> Option<Self> {
        let (mut buffer, mut bits, mut out) = (0u32, 0u32, Vec::new());
        for c in text.chars().filter(|c| !c.is_whitespace() && *c != '=') {
            let upper = c.to_ascii_uppercase();
            let value = BASE32.iter().position(|b| char::from(*b) == upper)?;
            buffer = (buffer << 5) | u32::try_from(value).ok()?;
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                out.push(u8::try_from((buffer >> bits) & 0xff).ok()?);
            }
        }
        (!out.is_empty()).then_some(Self(out))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Base32 without padding (RFC 4648 §6), as authenticator apps take it
    /// when typed in by hand.
    pub fn base32(&self) -> String {
        base32(&self.0)
    }

    /// The `otpauth://` URI an authenticator app reads from a QR code.
    pub fn provisioning_uri(&self, issuer: &str, account: &str) -> String {
        let label = format!("{}:{}", percent(issuer), percent(account));
        format!(
            "otpauth://totp/{label}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
            self.base32(),
            percent(issuer)
        )
    }
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn base32_char(index: u32) -> char {
    BASE32
        .get(index as usize & 0x1f)
        .map_or('A', |b| char::from(*b))
}

fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in bytes {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(base32_char(buffer >> bits));
        }
    }
    if bits > 0 {
        out.push(base32_char(buffer << (5 - bits)));
    }
    out
}

/// Percent-encodes everything but unreserved characters (RFC 3986 §2.3).
fn percent(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The step (counter) a time falls in.
pub fn step_at(time: DateTime<Utc>) -> i64 {
    time.timestamp().div_euclid(STEP_SECONDS)
}

/// HOTP (RFC 4226 §5.3) with `digits` digits for counter `step`.
fn hotp(secret: &TotpSecret, step: i64, digits: u32) -> u32 {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
    let tag = hmac::sign(&key, &step.to_be_bytes());
    let mac = tag.as_ref();
    // Dynamic truncation: the low nibble of the last byte picks 4 bytes.
    let offset = usize::from(mac.last().copied().unwrap_or(0) & 0x0f);
    let word = mac
        .get(offset..offset + 4)
        .and_then(|w| <[u8; 4]>::try_from(w).ok())
        .map_or(0, u32::from_be_bytes);
    (word & 0x7fff_ffff) % 10u32.pow(digits)
}

/// The code an authenticator app shows at `time`.
pub fn code_at(secret: &TotpSecret, time: DateTime<Utc>) -> String {
    format!(
        "{:0width$}",
        hotp(secret, step_at(time), DIGITS),
        width = DIGITS as usize
    )
}

/// Checks `code` at `now`; returns the step it matched, which the caller
/// stores so the same code (or an older one) is refused next time.
pub fn verify(
    secret: &TotpSecret,
    code: &str,
    now: DateTime<Utc>,
    last_used_step: Option<i64>,
) -> Option<i64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let given: u32 = code.parse().ok()?;
    let current = step_at(now);
    // Every candidate is computed, so the time taken does not say which matched.
    let mut matched = None;
    for step in (current - WINDOW)..=(current + WINDOW) {
        let fresh = last_used_step.is_none_or(|last| step > last);
        if hotp(secret, step, DIGITS) == given && fresh && matched.is_none() {
            matched = Some(step);
        }
    }
    matched
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn at(unix: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(unix, 0).unwrap()
    }

    /// RFC 6238 Appendix B, SHA-1 rows (8 digits there; the last 6 here).
    #[test]
    fn rfc_6238_test_vectors() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        for (time, eight_digits) in [
            (59, 94287082u32),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ] {
            assert_eq!(
                hotp(&secret, step_at(at(time)), 8),
                eight_digits,
                "t={time}"
            );
            assert_eq!(
                code_at(&secret, at(time)),
                format!("{:06}", eight_digits % 1_000_000)
            );
        }
    }

    #[test]
    fn codes_are_accepted_one_step_either_side_and_only_once() {
        let secret = TotpSecret::generate().unwrap();
        let now = at(1_800_000_015);
        let code = code_at(&secret, now);
        let step = verify(&secret, &code, now, None).unwrap();
        assert_eq!(verify(&secret, &code, now, Some(step)), None, "replayed");
        let earlier = code_at(&secret, now - chrono::Duration::seconds(30));
        assert!(
            verify(&secret, &earlier, now, None).is_some(),
            "one step behind"
        );
        let too_old = code_at(&secret, now - chrono::Duration::seconds(90));
        assert_eq!(verify(&secret, &too_old, now, None), None);
        assert_eq!(verify(&secret, "12345", now, None), None);
        assert_eq!(verify(&secret, "abcdef", now, None), None);
    }

    /// A code from one step ahead is accepted (a phone clock running fast),
    /// two steps ahead is not, and once a step is used every code up to it is
    /// refused, even one still inside the window.
    #[test]
    fn a_used_step_closes_every_step_up_to_it() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        let now = at(1_800_000_015);
        let step = Duration::seconds(STEP_SECONDS);
        let two_ahead = code_at(&secret, now + step * 2);
        assert_eq!(verify(&secret, &two_ahead, now, None), None);
        let ahead = code_at(&secret, now + step);
        assert_eq!(verify(&secret, &ahead, now, None), Some(step_at(now) + 1));
        let used = Some(step_at(now) + 1);
        for earlier in [now - step, now, now + step] {
            let code = code_at(&secret, earlier);
            assert_eq!(verify(&secret, &code, now, used), None, "{earlier}");
        }
        let later = code_at(&secret, now + step * 2);
        let later_now = now + step;
        assert_eq!(
            verify(&secret, &later, later_now, used),
            Some(step_at(now) + 2)
        );
    }

    #[test]
    fn base32_keys_read_back_as_typed() {
        let secret = TotpSecret::generate().unwrap();
        let typed = secret.base32().to_lowercase();
        let spaced: String = typed
            .chars()
            .enumerate()
            .flat_map(|(i, c)| (i % 4 == 0 && i > 0).then_some(' ').into_iter().chain([c]))
            .collect();
        assert_eq!(TotpSecret::from_base32(&spaced), Some(secret));
        assert_eq!(TotpSecret::from_base32("not base32!"), None);
        assert_eq!(TotpSecret::from_base32(""), None);
    }

    #[test]
    fn secrets_print_as_base32_and_provision_by_uri() {
        // RFC 4648 §10 test vector.
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        assert_eq!(secret.base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        let uri = secret.provisioning_uri("Latchkey", "山田@example.co.jp");
        assert!(uri.starts_with("otpauth://totp/Latchkey:%E5%B1%B1%E7%94%B0%40example.co.jp?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Latchkey"), "{uri}");
        assert_eq!(format!("{secret:?}"), "TotpSecret([redacted])");
    }
}
