//! Reading a property list a device sent, within bounds, and the typed
//! errors every Apple decoder answers with.
//!
//! Devices send XML or binary property lists; both are read here. What a
//! body may cost is bounded before any value is built: at most
//! [`MAX_DEPTH`] levels of nesting (Apple's messages use fewer than ten),
//! and at most two values per byte of body, which any honest encoding
//! keeps (an XML value takes several bytes, a binary one at least one
//! reference byte) while a binary list whose objects reference one another
//! many times over (a few kilobytes that unfold into billions of values) is
//! refused. The bytes of data and text the values hold are bounded the same
//! way, at most twice the body's length: a binary list may reference one
//! large data or text object many times, and each reference is a copy.
//! Size limits on the body itself are the HTTP layer's.

use std::io::Cursor;

use plist::stream::{Event, Reader};
use plist::{Dictionary, Value};

/// The deepest nesting of arrays and dictionaries a body may have.
pub const MAX_DEPTH: usize = 32;

/// The longest text an error quotes from a body, in characters.
const QUOTE_LIMIT: usize = 64;

/// Why a device's property list was refused. Each names the key at fault
/// where there is one (`QueryResponses.UDID`, `ErrorChain[0].ErrorCode`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("the body is not a property list: {0}")]
    NotAPlist(String),
    #[error("the property list holds {found} at the top level, not a dictionary")]
    NotADictionary { found: &'static str },
    #[error("missing key {key}")]
    MissingKey { key: String },
    #[error("key {key} is {found}, expected {expected}")]
    WrongType {
        key: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("unknown MessageType {0}")]
    UnknownMessageType(String),
    #[error("unknown Status {0}")]
    UnknownStatus(String),
    #[error("a report with Status {status} has no CommandUUID")]
    MissingCommandUuid { status: &'static str },
    #[error("key {key}: {detail}")]
    InvalidValue { key: String, detail: String },
    #[error("the property list nests deeper than {limit} levels")]
    TooDeep { limit: usize },
    #[error("the property list unfolds into more than {limit} values")]
    TooManyValues { limit: usize },
    #[error("the property list unfolds into more than {limit} bytes of data and text")]
    TooManyBytes { limit: usize },
}

/// `text` in quotes, cut to [`QUOTE_LIMIT`] characters, for an error
/// message that quotes what a device sent.
pub fn quote(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(QUOTE_LIMIT).collect();
    let rest = chars.count();
    if rest == 0 {
        format!("{head:?}")
    } else {
        format!("{head:?}… ({rest} more characters)")
    }
}

/// A collection being built: an array, or a dictionary with the key whose
/// value comes next.
enum Open {
    Array(Vec<Value>),
    Dictionary(Dictionary, Option<String>),
}

/// Reads `body`, XML or binary, into a value within the bounds above. The
/// value is built without recursion, and the bounds keep it shallow enough
/// to drop without recursing deeply.
pub fn read_plist(body: &[u8]) -> Result<Value, WireError> {
    let limit = body.len().saturating_mul(2).saturating_add(64);
    let byte_limit = body.len().saturating_mul(2).saturating_add(64);
    let mut open: Vec<Open> = Vec::new();
    let mut root: Option<Value> = None;
    let mut count = 0usize;
    let mut bytes = 0usize;
    for event in Reader::new(Cursor::new(body)) {
        let event = event.map_err(|e| WireError::NotAPlist(quote(&e.to_string())))?;
        count += 1;
        if count > limit {
            return Err(WireError::TooManyValues { limit });
        }
        if let Event::Data(held) = &event {
            bytes = bytes.saturating_add(held.len());
        } else if let Event::String(held) = &event {
            bytes = bytes.saturating_add(held.len());
        }
        if bytes > byte_limit {
            return Err(WireError::TooManyBytes { limit: byte_limit });
        }
        if root.is_some() {
            return Err(WireError::NotAPlist(
                "a value after the top-level value".into(),
            ));
        }
        let value = match event {
            Event::StartArray(_) | Event::StartDictionary(_) if open.len() >= MAX_DEPTH => {
                return Err(WireError::TooDeep { limit: MAX_DEPTH });
            }
            Event::StartArray(_) => {
                open.push(Open::Array(Vec::new()));
                continue;
            }
            Event::StartDictionary(_) => {
                open.push(Open::Dictionary(Dictionary::new(), None));
                continue;
            }
            Event::EndCollection => match open.pop() {
                Some(Open::Array(items)) => Value::Array(items),
                Some(Open::Dictionary(entries, None)) => Value::Dictionary(entries),
                Some(Open::Dictionary(_, Some(_))) | None => {
                    return Err(WireError::NotAPlist("an unbalanced collection".into()));
                }
            },
            Event::Boolean(b) => Value::Boolean(b),
            Event::Data(bytes) => Value::Data(bytes.into_owned()),
            Event::Date(date) => Value::Date(date),
            Event::Integer(n) => Value::Integer(n),
            Event::Real(r) => Value::Real(r),
            Event::String(text) => Value::String(text.into_owned()),
            Event::Uid(uid) => Value::Uid(uid),
            _ => return Err(WireError::NotAPlist("an element of an unknown kind".into())),
        };
        match open.last_mut() {
            None => root = Some(value),
            Some(Open::Array(items)) => items.push(value),
            Some(Open::Dictionary(_, key @ None)) => match value {
                Value::String(text) => *key = Some(text),
                _ => {
                    return Err(WireError::NotAPlist(
                        "a dictionary key that is not text".into(),
                    ));
                }
            },
            Some(Open::Dictionary(entries, key @ Some(_))) => {
                if let Some(key) = key.take() {
                    entries.insert(key, value);
                }
            }
        }
    }
    if !open.is_empty() {
        return Err(WireError::NotAPlist(
            "the body ends inside a collection".into(),
        ));
    }
    root.ok_or_else(|| WireError::NotAPlist("the body holds no value".into()))
}

/// What kind of value `value` is, as error messages name it.
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "an array",
        Value::Dictionary(_) => "a dictionary",
        Value::Boolean(_) => "a boolean",
        Value::Data(_) => "data",
        Value::Date(_) => "a date",
        Value::Real(_) => "a real",
        Value::Integer(_) => "an integer",
        Value::String(_) => "a string",
        Value::Uid(_) => "a UID",
        _ => "a value of an unknown kind",
    }
}

/// The top-level dictionary of a message.
pub fn top_dictionary(value: &Value) -> Result<Fields<'_>, WireError> {
    match value {
        Value::Dictionary(entries) => Ok(Fields {
            entries,
            at: String::new(),
        }),
        other => Err(WireError::NotADictionary {
            found: kind_of(other),
        }),
    }
}

/// A dictionary of a message and where it sits in the message, so that
/// errors name the full key path.
pub struct Fields<'a> {
    entries: &'a Dictionary,
    at: String,
}

impl<'a> Fields<'a> {
    /// The full path of `key` in this dictionary.
    pub fn path(&self, key: &str) -> String {
        format!("{}{key}", self.at)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    fn wrong_type(&self, key: &str, expected: &'static str, found: &Value) -> WireError {
        WireError::WrongType {
            key: self.path(key),
            expected,
            found: kind_of(found),
        }
    }

    fn missing(&self, key: &str) -> WireError {
        WireError::MissingKey {
            key: self.path(key),
        }
    }

    pub fn string(&self, key: &str) -> Result<Option<String>, WireError> {
        match self.entries.get(key) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(other) => Err(self.wrong_type(key, "a string", other)),
        }
    }

    /// A string that counts as absent when it is empty.
    pub fn non_empty_string(&self, key: &str) -> Result<Option<String>, WireError> {
        Ok(self.string(key)?.filter(|text| !text.is_empty()))
    }

    pub fn required_string(&self, key: &str) -> Result<String, WireError> {
        self.string(key)?.ok_or_else(|| self.missing(key))
    }

    pub fn boolean(&self, key: &str) -> Result<Option<bool>, WireError> {
        match self.entries.get(key) {
            None => Ok(None),
            Some(Value::Boolean(b)) => Ok(Some(*b)),
            Some(other) => Err(self.wrong_type(key, "a boolean", other)),
        }
    }

    pub fn data(&self, key: &str) -> Result<Option<Vec<u8>>, WireError> {
        match self.entries.get(key) {
            None => Ok(None),
            Some(Value::Data(bytes)) => Ok(Some(bytes.clone())),
            Some(other) => Err(self.wrong_type(key, "data", other)),
        }
    }

    pub fn required_data(&self, key: &str) -> Result<Vec<u8>, WireError> {
        self.data(key)?.ok_or_else(|| self.missing(key))
    }

    pub fn integer(&self, key: &str) -> Result<Option<i64>, WireError> {
        match self.entries.get(key) {
            None => Ok(None),
            Some(Value::Integer(n)) => {
                n.as_signed()
                    .map(Some)
                    .ok_or_else(|| WireError::InvalidValue {
                        key: self.path(key),
                        detail: "the integer does not fit 64 signed bits".into(),
                    })
            }
            Some(other) => Err(self.wrong_type(key, "an integer", other)),
        }
    }

    pub fn required_integer(&self, key: &str) -> Result<i64, WireError> {
        self.integer(key)?.ok_or_else(|| self.missing(key))
    }

    /// A real; an integer is taken as one too, since encoders write whole
    /// numbers either way.
    pub fn real(&self, key: &str) -> Result<Option<f64>, WireError> {
        match self.entries.get(key) {
            None => Ok(None),
            Some(Value::Real(r)) => Ok(Some(*r)),
            Some(Value::Integer(n)) => Ok(n
                .as_signed()
                .map(|n| n as f64)
                .or_else(|| n.as_unsigned().map(|n| n as f64))),
            Some(other) => Err(self.wrong_type(key, "a real", other)),
        }
    }

    pub fn required_real(&self, key: &str) -> Result<f64, WireError> {
        self.real(key)?.ok_or_else(|| self.missing(key))
    }

    pub fn dictionary(&self, key: &str) -> Result<Option<Fields<'a>>, WireError> {
        match self.entries.get(key) {
            None => Ok(None),
            Some(Value::Dictionary(entries)) => Ok(Some(Fields {
                entries,
                at: format!("{}{key}.", self.at),
            })),
            Some(other) => Err(self.wrong_type(key, "a dictionary", other)),
        }
    }

    pub fn required_dictionary(&self, key: &str) -> Result<Fields<'a>, WireError> {
        self.dictionary(key)?.ok_or_else(|| self.missing(key))
    }

    /// The dictionaries of an array of dictionaries, each knowing its index.
    pub fn dictionaries(&self, key: &str) -> Result<Option<Vec<Fields<'a>>>, WireError> {
        let items = match self.entries.get(key) {
            None => return Ok(None),
            Some(Value::Array(items)) => items,
            Some(other) => return Err(self.wrong_type(key, "an array", other)),
        };
        items
            .iter()
            .enumerate()
            .map(|(index, item)| match item {
                Value::Dictionary(entries) => Ok(Fields {
                    entries,
                    at: format!("{}{key}[{index}].", self.at),
                }),
                other => Err(WireError::WrongType {
                    key: format!("{}{key}[{index}]", self.at),
                    expected: "a dictionary",
                    found: kind_of(other),
                }),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

/// What the Apple codec tests share: the golden files and conversions.
#[cfg(test)]
pub(crate) mod tests_support {
    use std::path::PathBuf;

    use plist::Value;

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test_data/apple")
    }

    /// The golden file `name` (a path under `server/test_data/apple`).
    pub fn golden(name: &str) -> Vec<u8> {
        std::fs::read(root().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// The file names of the golden folder `folder`, sorted.
    pub fn golden_names(folder: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(root().join(folder))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".plist"))
            .collect();
        names.sort();
        assert!(!names.is_empty(), "no golden files in {folder}");
        names
    }

    /// `xml` converted to a binary property list by the plist crate.
    pub fn to_binary(xml: &[u8]) -> Vec<u8> {
        let value = Value::from_reader_xml(xml).unwrap();
        let mut out = Vec::new();
        value.to_writer_binary(&mut out).unwrap();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_cut() {
        assert_eq!(quote("Idle"), "\"Idle\"");
        let long = "x".repeat(1000);
        let quoted = quote(&long);
        assert!(quoted.len() < 120, "{quoted}");
        assert!(quoted.ends_with("… (936 more characters)"), "{quoted}");
    }

    #[test]
    fn nesting_up_to_the_limit_is_read() {
        let depth = MAX_DEPTH;
        let xml = format!(
            "<plist version=\"1.0\">{}{}</plist>",
            "<array>".repeat(depth),
            "</array>".repeat(depth)
        );
        assert!(matches!(read_plist(xml.as_bytes()), Ok(Value::Array(_))));
        let deeper = format!(
            "<plist version=\"1.0\">{}{}</plist>",
            "<array>".repeat(depth + 1),
            "</array>".repeat(depth + 1)
        );
        assert_eq!(
            read_plist(deeper.as_bytes()),
            Err(WireError::TooDeep { limit: MAX_DEPTH })
        );
    }
}
