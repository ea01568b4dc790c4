//! Apple configuration profiles as documents: the enrollment profile
//! (`enrollment.rs`) and a Latchkey policy rendered as configuration
//! profiles (`policy.rs`), XML property lists built to Apple's schema
//! (`apple/device-management`, `mdm/profiles/`). Pure functions over the
//! domain's types, below `core`: the core hands out an enrollment profile
//! and queues a policy's profile for installation; the front-ends only
//! carry the bytes.

pub mod enrollment;
pub mod policy;

use plist::Value;

/// Why a command or a response could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// XML 1.0 cannot carry the text: it holds a control character other
    /// than tab, line feed and carriage return, or U+FFFE/U+FFFF.
    #[error("{key} holds a character a property list cannot carry")]
    UnencodableText { key: &'static str },
    #[error("writing the property list failed: {0}")]
    Plist(String),
}

/// Whether XML 1.0 can carry `c` (its `Char` production).
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// `value` as a string value, refused if XML cannot carry it.
pub fn text(key: &'static str, value: &str) -> Result<Value, EncodeError> {
    if value.chars().all(xml_char) {
        Ok(Value::String(value.to_owned()))
    } else {
        Err(EncodeError::UnencodableText { key })
    }
}

/// `value` as an XML property list.
pub fn to_xml(value: &Value) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    value
        .to_writer_xml(&mut out)
        .map_err(|e| EncodeError::Plist(e.to_string()))?;
    out.push(b'\n');
    Ok(out)
}
