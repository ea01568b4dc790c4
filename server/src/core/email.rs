//! E-mail addresses as a mail system reads them: one RFC 5322 addr-spec
//! with a dot-atom local part (quoted local parts and domain literals are
//! not accepted) and a domain of dot-separated host-name labels, within
//! RFC 5321's limits (local part 64 octets, domain 255, whole address 254
//! as a forward path allows). A domain may be written in Unicode (IDNA);
//! it is kept in its ASCII (A-label) form so one mailbox has one spelling.
//!
//! User names, admin names, token bindings and import rows all pass through
//! [`normalize`], so an address stored anywhere is one a mailer can use and
//! never carries commas, quotes, angle brackets or spaces.

/// Longest address (RFC 5321 §4.5.3.1.3: a 256-octet path less the angle
/// brackets).
const MAX_ADDRESS: usize = 254;
/// RFC 5321 §4.5.3.1.1.
const MAX_LOCAL_PART: usize = 64;
/// RFC 5321 §4.5.3.1.2.
const MAX_DOMAIN: usize = 255;
/// RFC 1035 §2.3.4.
const MAX_LABEL: usize = 63;

/// Why an address was refused, in words for the admin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("it needs exactly one @ between a local part and a domain")]
    NoSingleAt,
    #[error("it contains {0:?}, which an address cannot hold outside quotes")]
    Forbidden(char),
    #[error("the part before @ must be 1-{MAX_LOCAL_PART} characters")]
    LocalLength,
    #[error("the part before @ may not start or end with a dot or hold two dots in a row")]
    LocalDots,
    #[error("the domain {0:?} is not a host name")]
    Domain(String),
    #[error("the domain may be at most {MAX_DOMAIN} characters")]
    DomainLength,
    #[error("the address may be at most {MAX_ADDRESS} characters")]
    TooLong,
}

/// RFC 5322 §3.2.3 atext, less nothing: letters, digits and these.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
}

/// Checks `text` as one address and returns its stored form: trimmed,
/// lower-case, the domain in ASCII.
pub fn normalize(text: &str) -> Result<String, AddressError> {
    let text = text.trim();
    if let Some(bad) = text
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || "\",<>()[]\\;:".contains(*c))
    {
        return Err(AddressError::Forbidden(bad));
    }
    let (local, domain) = match text.split_once('@') {
        Some((local, domain)) if !domain.contains('@') => (local, domain),
        _ => return Err(AddressError::NoSingleAt),
    };
    if local.is_empty() || local.len() > MAX_LOCAL_PART {
        return Err(AddressError::LocalLength);
    }
    if let Some(bad) = local.chars().find(|c| *c != '.' && !is_atext(*c)) {
        return Err(AddressError::Forbidden(bad));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(AddressError::LocalDots);
    }
    let domain = ascii_domain(domain)?;
    let address = format!("{}@{domain}", local.to_ascii_lowercase());
    if address.len() > MAX_ADDRESS {
        return Err(AddressError::TooLong);
    }
    Ok(address)
}

/// The domain in lower-case ASCII (IDNA, UTS #46), each label a host-name
/// label: letters, digits and inner hyphens, 1-63 characters.
fn ascii_domain(domain: &str) -> Result<String, AddressError> {
    let refused = || AddressError::Domain(domain.to_owned());
    if domain.is_empty() {
        return Err(refused());
    }
    let ascii = if domain.is_ascii() {
        domain.to_ascii_lowercase()
    } else {
        match url::Host::parse(domain) {
            Ok(url::Host::Domain(ascii)) => ascii,
            _ => return Err(refused()),
        }
    };
    if ascii.len() > MAX_DOMAIN {
        return Err(AddressError::DomainLength);
    }
    let labels_ok = ascii.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= MAX_LABEL
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    });
    // A name of digits alone is an IPv4 address, which needs a literal.
    let numeric = ascii
        .rsplit('.')
        .next()
        .is_some_and(|top| top.chars().all(|c| c.is_ascii_digit()));
    if !labels_ok || numeric {
        return Err(refused());
    }
    Ok(ascii)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_addresses_are_kept_in_lower_case() {
        for (given, stored) in [
            ("Alice@Example.com", "alice@example.com"),
            ("  bob@example.co.jp ", "bob@example.co.jp"),
            (
                "o'brien+mdm@mail.example.org",
                "o'brien+mdm@mail.example.org",
            ),
            (
                "first.last@sub-domain.example",
                "first.last@sub-domain.example",
            ),
            ("owner@localhost", "owner@localhost"),
            ("x@xn--r8jz45g.jp", "x@xn--r8jz45g.jp"),
        ] {
            assert_eq!(normalize(given).as_deref(), Ok(stored), "{given}");
        }
    }

    #[test]
    fn a_unicode_domain_is_stored_in_its_ascii_form() {
        assert_eq!(
            normalize("taro@例え.jp").as_deref(),
            Ok("taro@xn--r8jz45g.jp")
        );
    }

    #[test]
    fn a_csv_row_pasted_into_the_address_is_refused() {
        assert_eq!(
            normalize("q4@example.com,unterminated,staff,user"),
            Err(AddressError::Forbidden(','))
        );
    }

    #[test]
    fn quotes_brackets_spaces_and_display_names_are_refused() {
        for (given, error) in [
            (
                "\"John Smith\" <john@example.com>",
                AddressError::Forbidden('"'),
            ),
            ("<john@example.com>", AddressError::Forbidden('<')),
            ("john smith@example.com", AddressError::Forbidden(' ')),
            ("a@b@example.com", AddressError::NoSingleAt),
            ("no-at-sign.example.com", AddressError::NoSingleAt),
            ("@example.com", AddressError::LocalLength),
            (".a@example.com", AddressError::LocalDots),
            ("a..b@example.com", AddressError::LocalDots),
            ("tarō@example.com", AddressError::Forbidden('ō')),
        ] {
            assert_eq!(normalize(given), Err(error), "{given:?}");
        }
    }

    #[test]
    fn domains_must_be_host_names() {
        for given in [
            "a@",
            "a@example..com",
            "a@example.com.",
            "a@-example.com",
            "a@example-.com",
            "a@exa_mple.com",
            "a@192.168.0.1",
            "a@ex!ample.com",
        ] {
            assert!(
                matches!(normalize(given), Err(AddressError::Domain(_))),
                "{given}: {:?}",
                normalize(given)
            );
        }
    }

    #[test]
    fn length_limits_are_those_of_smtp() {
        let local64 = "l".repeat(64);
        assert!(normalize(&format!("{local64}@example.com")).is_ok());
        assert_eq!(
            normalize(&format!("{local64}l@example.com")),
            Err(AddressError::LocalLength)
        );
        let label63 = "d".repeat(63);
        assert!(normalize(&format!("a@{label63}.com")).is_ok());
        assert!(matches!(
            normalize(&format!("a@{label63}d.com")),
            Err(AddressError::Domain(_))
        ));
        // 64 + 1 + 189 = 254 octets is the longest address.
        let domain189 = format!(
            "{}.{}.{}.com",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(57)
        );
        assert_eq!(domain189.len(), 189);
        assert!(normalize(&format!("{local64}@{domain189}")).is_ok());
        let domain190 = format!(
            "{}.{}.{}.com",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(58)
        );
        assert_eq!(
            normalize(&format!("{local64}@{domain190}")),
            Err(AddressError::TooLong)
        );
    }
}
