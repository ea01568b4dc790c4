//! Text forms shared by configuration files, policy documents and the CLI.

use std::time::Duration;

/// Parses a duration such as `90s`, `15m`, `24h` or `7d` (one number and one unit).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("duration {text:?} needs a unit: s, m, h or d (e.g. 24h)"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("duration {text:?} must start with a whole number (e.g. 24h)"))?;
    let seconds_per_unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => {
            return Err(format!(
                "duration {text:?} has unknown unit {unit:?}; use s, m, h or d"
            ));
        }
    };
    number
        .checked_mul(seconds_per_unit)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("duration {text:?} is too long"))
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

/// `mqtts://host:port` -> (host, port).
pub fn parse_mqtts_url(url: &str) -> Result<(String, u16), String> {
    let rest = url
        .strip_prefix("mqtts://")
        .ok_or_else(|| format!("{url:?}: an MQTT URL must start with mqtts://"))?;
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("{url:?}: the MQTT URL needs a port"))?;
    let port = port
        .parse()
        .map_err(|_| format!("{url:?}: {port:?} is not a port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("{url:?}: the MQTT URL needs a host"));
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
        assert!(parse_duration("24").unwrap_err().contains("unit"));
        assert!(parse_duration("h").unwrap_err().contains("whole number"));
        assert!(parse_duration("3w").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("99999999999999999999d").is_err());
    }
}
