//! Text forms shared by configuration files, policy documents and the CLI.

use std::time::Duration;

/// Why a duration's text was refused. The texts are what an admin reads
/// after a config key, a policy field or a latchctl flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("duration {text:?} needs a unit: s, m, h or d (e.g. 24h)")]
    MissingUnit { text: String },
    #[error("duration {text:?} must start with a whole number (e.g. 24h)")]
    NotAWholeNumber { text: String },
    #[error("duration {text:?} has unknown unit {unit:?}; use s, m, h or d")]
    UnknownUnit { text: String, unit: String },
    #[error("duration {text:?} is too long")]
    TooLong { text: String },
}

/// Parses a duration such as `90s`, `15m`, `24h` or `7d` (one number and one unit).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    let split =
        text.find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| DurationError::MissingUnit {
                text: text.to_owned(),
            })?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| DurationError::NotAWholeNumber {
        text: text.to_owned(),
    })?;
    let seconds_per_unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => {
            return Err(DurationError::UnknownUnit {
                text: text.to_owned(),
                unit: unit.to_owned(),
            });
        }
    };
    number
        .checked_mul(seconds_per_unit)
        .map(Duration::from_secs)
        .ok_or_else(|| DurationError::TooLong {
            text: text.to_owned(),
        })
}

/// The shortest exact text for a duration, the inverse of [`parse_duration`].
pub fn format_duration(duration: Duration) -> String {
    let s = duration.as_secs();
    if s != 0 && s.is_multiple_of(86400) {
        format!("{}d", s / 86400)
    } else if s != 0 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s != 0 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// An error and its causes on one line ("a: b: c"); transport errors keep
/// the useful part (connection refused, certificate unknown) in a cause.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Why an MQTT URL was refused, with the URL as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MqttUrlError {
    #[error("{url:?}: an MQTT URL must start with mqtts://")]
    NotMqtts { url: String },
    #[error("{url:?}: the MQTT URL needs a port")]
    MissingPort { url: String },
    #[error("{url:?}: {port:?} is not a port")]
    BadPort { url: String, port: String },
    #[error("{url:?}: the MQTT URL needs a host")]
    MissingHost { url: String },
}

/// `mqtts://host:port` -> (host, port).
pub fn parse_mqtts_url(url: &str) -> Result<(String, u16), MqttUrlError> {
    let rest = url
        .strip_prefix("mqtts://")
        .ok_or_else(|| MqttUrlError::NotMqtts {
            url: url.to_owned(),
        })?;
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| MqttUrlError::MissingPort {
            url: url.to_owned(),
        })?;
    let port = port.parse().map_err(|_| MqttUrlError::BadPort {
        url: url.to_owned(),
        port: port.to_owned(),
    })?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(MqttUrlError::MissingHost {
            url: url.to_owned(),
        });
    }
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mqtts_urls_parse() {
        assert_eq!(
            parse_mqtts_url("mqtts://mq.example:8883"),
            Ok(("mq.example".into(), 8883))
        );
        assert!(parse_mqtts_url("mqtt://mq:1883").is_err());
        assert!(parse_mqtts_url("mqtts://mq").is_err());
        assert!(parse_mqtts_url("mqtts://:1").is_err());
    }

    #[test]
    fn durations_parse_and_print() {
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86400)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(format_duration(Duration::from_secs(86400)), "1d");
        assert!(
            parse_duration("24")
                .unwrap_err()
                .to_string()
                .contains("unit")
        );
        assert!(
            parse_duration("h")
                .unwrap_err()
                .to_string()
                .contains("whole number")
        );
        assert!(
            parse_duration("3w")
                .unwrap_err()
                .to_string()
                .contains("unknown unit")
        );
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn refusals_read_as_the_admin_sees_them() {
        let duration = |text: &str| parse_duration(text).unwrap_err().to_string();
        assert_eq!(
            duration("24"),
            r#"duration "24" needs a unit: s, m, h or d (e.g. 24h)"#
        );
        assert_eq!(
            duration(" h "),
            r#"duration "h" must start with a whole number (e.g. 24h)"#
        );
        assert_eq!(
            duration("3w"),
            r#"duration "3w" has unknown unit "w"; use s, m, h or d"#
        );
        assert_eq!(
            duration("99999999999999999d"),
            r#"duration "99999999999999999d" is too long"#
        );
        let url = |text: &str| parse_mqtts_url(text).unwrap_err().to_string();
        assert_eq!(
            url("mqtt://mq:1883"),
            r#""mqtt://mq:1883": an MQTT URL must start with mqtts://"#
        );
        assert_eq!(
            url("mqtts://mq"),
            r#""mqtts://mq": the MQTT URL needs a port"#
        );
        assert_eq!(url("mqtts://mq:x"), r#""mqtts://mq:x": "x" is not a port"#);
        assert_eq!(
            url("mqtts://[]:1"),
            r#""mqtts://[]:1": the MQTT URL needs a host"#
        );
    }
}

/// "Chrome 156 · Linux" from a `User-Agent` header, or the header itself
/// (shortened, without control characters) when it names nothing
/// familiar. Shown wherever a person must recognise a browser: the sign-in
/// history, and the pages and device dialogs that ask whether a sign-in
/// was theirs.
pub fn browser_summary(user_agent: &str) -> String {
    let version_of = |name: &str| {
        user_agent.split_whitespace().find_map(|token| {
            let version = token.strip_prefix(name)?.strip_prefix('/')?;
            Some(version.split('.').next().unwrap_or(version).to_owned())
        })
    };
    // A browser's own token comes before any it borrows: Edge, Opera,
    // Samsung Internet and LINE's in-app browser also say `Chrome/`, and
    // every browser on iOS says `Safari/` (Edge for iOS `Version/` too).
    let browser = [
        ("Line", "LINE"),
        ("Edg", "Edge"),
        ("EdgA", "Edge"),
        ("EdgiOS", "Edge"),
        ("OPR", "Opera"),
        ("SamsungBrowser", "Samsung Internet"),
        ("CriOS", "Chrome"),
        ("FxiOS", "Firefox"),
        ("Firefox", "Firefox"),
        ("HeadlessChrome", "Chrome (headless)"),
        ("Chrome", "Chrome"),
    ]
    .iter()
    .find_map(|(token, name)| version_of(token).map(|v| format!("{name} {v}")))
    .or_else(|| {
        (user_agent.contains("Safari/") && user_agent.contains("Version/"))
            .then(|| format!("Safari {}", version_of("Version").unwrap_or_default()))
    });
    let os = [
        ("Windows", "Windows"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("Android", "Android"),
        ("Mac OS X", "macOS"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(token, _)| user_agent.contains(token))
    .map(|(_, name)| *name);
    match (browser, os) {
        (Some(b), Some(o)) => format!("{b} · {o}"),
        (Some(b), None) => b,
        (None, Some(o)) => o.to_owned(),
        (None, None) => {
            let shown: String = user_agent
                .chars()
                .filter(|c| !c.is_control())
                .take(60)
                .collect();
            if shown.trim().is_empty() {
                "?".to_owned()
            } else {
                shown
            }
        }
    }
}

#[cfg(test)]
mod browser_summary_tests {
    use super::browser_summary;

    #[test]
    fn browsers_are_named_as_people_know_them() {
        let chrome_linux = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";
        assert_eq!(browser_summary(chrome_linux), "Chrome 156 · Linux");
        let edge = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36 Edg/130.0";
        assert_eq!(browser_summary(edge), "Edge 130 · Windows");
        let safari_iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1";
        assert_eq!(browser_summary(safari_iphone), "Safari 18 · iOS");
        assert_eq!(browser_summary("curl/8.5.0"), "curl/8.5.0");
        assert_eq!(browser_summary(""), "?");
        assert_eq!(browser_summary("\u{7}\n"), "?");
    }

    #[test]
    fn a_browser_is_not_taken_for_the_engine_it_borrows() {
        for (user_agent, shown) in [
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
                "Chrome 131 · iOS",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/133.0 Mobile/15E148 Safari/605.1.15",
                "Firefox 133 · iOS",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 EdgiOS/131.2903.68 Mobile/15E148 Safari/605.1.15",
                "Edge 131 · iOS",
            ),
            (
                "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36 EdgA/131.0.0.0",
                "Edge 131 · Android",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
                "Samsung Internet 26 · Android",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Safari Line/14.9.0",
                "LINE 14 · iOS",
            ),
            (
                "Mozilla/5.0 (Linux; Android 13; SO-51C Build/64.1.C.0.123; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/126.0.6478.134 Mobile Safari/537.36 Line/14.10.1/IAB",
                "LINE 14 · Android",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0",
                "Opera 115 · Windows",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0",
                "Firefox 133 · macOS",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
                "Safari 18 · macOS",
            ),
            (
                "Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
                "Safari 18 · iPadOS",
            ),
            (
                "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
                "Chrome 131 · ChromeOS",
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
                "Chrome (headless) 131 · Linux",
            ),
            ("LatchkeyTest/1.0 (X11; Linux x86_64)", "Linux"),
        ] {
            assert_eq!(browser_summary(user_agent), shown, "{user_agent}");
        }
    }
}
