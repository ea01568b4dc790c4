//! A reader for the BER that SCEP messages arrive in (X.690 §8): definite
//! and indefinite lengths, constructed OCTET STRINGs, single-byte tags.
//!
//! Every read is bounded by the input: a length is checked against the
//! bytes that are left before anything is sliced, lengths longer than four
//! octets are refused, and nesting stops at [`MAX_DEPTH`]. A device can make
//! this reader return [`BerError`], never panic and never allocate more than
//! the size of its own input. (yasna's reader, which the writer side uses,
//! adds a length to a position unchecked when it skips an element, so a
//! length near `usize::MAX` overflows; and CMS needs the raw bytes of the
//! signed attributes, which this reader hands out as slices.)

use std::borrow::Cow;
use std::fmt;

/// Deep enough for a certificate inside a SignedData inside an
/// EnvelopedData; far below what would strain the stack.
const MAX_DEPTH: usize = 32;

pub(super) const TAG_INTEGER: u8 = 0x02;
pub(super) const TAG_OCTET_STRING: u8 = 0x04;
pub(super) const TAG_OID: u8 = 0x06;
pub(super) const TAG_UTF8_STRING: u8 = 0x0c;
pub(super) const TAG_PRINTABLE_STRING: u8 = 0x13;
pub(super) const TAG_SEQUENCE: u8 = 0x30;
pub(super) const TAG_SET: u8 = 0x31;
/// `[0]` constructed, context-specific.
pub(super) const TAG_CONTEXT_0: u8 = 0xa0;
/// `[1]` constructed, context-specific.
pub(super) const TAG_CONTEXT_1: u8 = 0xa1;
const CONSTRUCTED: u8 = 0x20;

/// Why a BER input could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum BerError {
    #[error("the input ends inside an element")]
    Truncated,
    #[error("a length of more than four octets")]
    LengthTooLarge,
    #[error("an indefinite length on a primitive element")]
    IndefinitePrimitive,
    #[error("elements nested more than {MAX_DEPTH} deep")]
    TooDeep,
    #[error("a multi-byte tag")]
    UnsupportedTag,
    #[error("expected tag {expected:#04x}, found {found:#04x}")]
    UnexpectedTag { expected: u8, found: u8 },
    #[error("bytes after the last expected element")]
    TrailingBytes,
    #[error("a missing element")]
    Missing,
    #[error("an object identifier that is not well formed")]
    BadOid,
    #[error("a string that is not a well-formed {0}")]
    BadString(&'static str),
}

/// One element: its tag, its contents and its whole encoding.
#[derive(Clone, Copy)]
pub(super) struct Element<'a> {
    pub(super) tag: u8,
    /// The contents octets; for an indefinite length, without the
    /// end-of-contents marker.
    pub(super) body: &'a [u8],
    /// Identifier, length, contents (and end-of-contents) as received.
    pub(super) raw: &'a [u8],
    depth: usize,
}

impl fmt::Debug for Element<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Element(tag {:#04x}, {} bytes)",
            self.tag,
            self.body.len()
        )
    }
}

/// Reads one element from the start of `input`; returns it and the rest.
fn read_element(input: &[u8], depth: usize) -> Result<(Element<'_>, &[u8]), BerError> {
    if depth > MAX_DEPTH {
        return Err(BerError::TooDeep);
    }
    let (&tag, rest) = input.split_first().ok_or(BerError::Truncated)?;
    if tag & 0x1f == 0x1f {
        return Err(BerError::UnsupportedTag);
    }
    let (&first, rest) = rest.split_first().ok_or(BerError::Truncated)?;
    let (body, after) = match first {
        0x00..=0x7f => rest
            .split_at_checked(usize::from(first))
            .ok_or(BerError::Truncated)?,
        0x80 => {
            if tag & CONSTRUCTED == 0 {
                return Err(BerError::IndefinitePrimitive);
            }
            // The contents are whole elements up to a pair of zero octets.
            let mut cursor = rest;
            loop {
                if let Some(after_end) = cursor.strip_prefix(&[0, 0]) {
                    let body_len = rest.len() - cursor.len();
                    let body = rest.get(..body_len).ok_or(BerError::Truncated)?;
                    break (body, after_end);
                }
                let (_, next) = read_element(cursor, depth + 1)?;
                cursor = next;
            }
        }
        0x81..=0x84 => {
            let count = usize::from(first & 0x7f);
            let (length_octets, rest) = rest.split_at_checked(count).ok_or(BerError::Truncated)?;
            let length = length_octets
                .iter()
                .fold(0usize, |length, &octet| (length << 8) | usize::from(octet));
            rest.split_at_checked(length).ok_or(BerError::Truncated)?
        }
        _ => return Err(BerError::LengthTooLarge),
    };
    let raw_len = input.len() - after.len();
    let raw = input.get(..raw_len).ok_or(BerError::Truncated)?;
    Ok((
        Element {
            tag,
            body,
            raw,
            depth,
        },
        after,
    ))
}

/// Reads exactly one element spanning all of `input`.
pub(super) fn parse(input: &[u8]) -> Result<Element<'_>, BerError> {
    let (element, rest) = read_element(input, 0)?;
    if !rest.is_empty() {
        return Err(BerError::TrailingBytes);
    }
    Ok(element)
}

impl<'a> Element<'a> {
    /// This element if it has `tag`.
    pub(super) fn expect(self, tag: u8) -> Result<Self, BerError> {
        if self.tag == tag {
            Ok(self)
        } else {
            Err(BerError::UnexpectedTag {
                expected: tag,
                found: self.tag,
            })
        }
    }

    /// The elements inside a constructed element.
    pub(super) fn children(&self) -> Result<Children<'a>, BerError> {
        if self.tag & CONSTRUCTED == 0 {
            return Err(BerError::UnexpectedTag {
                expected: self.tag | CONSTRUCTED,
                found: self.tag,
            });
        }
        Ok(Children {
            rest: self.body,
            depth: self.depth + 1,
        })
    }

    /// The single element inside an explicitly tagged element.
    pub(super) fn explicit_inner(&self) -> Result<Element<'a>, BerError> {
        let mut children = self.children()?;
        let inner = children.next()?;
        children.finish()?;
        Ok(inner)
    }

    /// The octets of an OCTET STRING, joined from its segments when it is
    /// constructed (BER only).
    pub(super) fn octets(&self) -> Result<Cow<'a, [u8]>, BerError> {
        match self.tag {
            TAG_OCTET_STRING => Ok(Cow::Borrowed(self.body)),
            tag if tag == TAG_OCTET_STRING | CONSTRUCTED => {
                let mut joined = Vec::with_capacity(self.body.len());
                let mut children = self.children()?;
                while let Some(segment) = children.next_optional()? {
                    joined.extend_from_slice(&segment.octets()?);
                }
                Ok(Cow::Owned(joined))
            }
            found => Err(BerError::UnexpectedTag {
                expected: TAG_OCTET_STRING,
                found,
            }),
        }
    }

    /// The arcs of an OBJECT IDENTIFIER (X.690 §8.19).
    pub(super) fn oid(&self) -> Result<Oid, BerError> {
        let body = self.expect(TAG_OID)?.body;
        if body.is_empty() || body.last().is_some_and(|last| last & 0x80 != 0) {
            return Err(BerError::BadOid);
        }
        let mut arcs = Vec::with_capacity(body.len() + 1);
        let mut value: u64 = 0;
        let mut first = true;
        for &octet in body {
            if value == 0 && octet == 0x80 {
                // A leading 0x80 pads a subidentifier, which X.690 forbids.
                return Err(BerError::BadOid);
            }
            value = value
                .checked_mul(128)
                .ok_or(BerError::BadOid)?
                .checked_add(u64::from(octet & 0x7f))
                .ok_or(BerError::BadOid)?;
            if octet & 0x80 == 0 {
                if first {
                    let (arc0, arc1) = match value {
                        0..40 => (0, value),
                        40..80 => (1, value - 40),
                        _ => (2, value - 80),
                    };
                    arcs.push(arc0);
                    arcs.push(arc1);
                    first = false;
                } else {
                    arcs.push(value);
                }
                value = 0;
            }
        }
        Ok(Oid(arcs))
    }

    /// A PrintableString (X.680 §41.4) or, where `utf8` allows, a
    /// UTF8String.
    pub(super) fn text(&self, utf8: bool) -> Result<&'a str, BerError> {
        match self.tag {
            TAG_PRINTABLE_STRING => {
                let text = std::str::from_utf8(self.body)
                    .map_err(|_| BerError::BadString("PrintableString"))?;
                if is_printable(text) {
                    Ok(text)
                } else {
                    Err(BerError::BadString("PrintableString"))
                }
            }
            TAG_UTF8_STRING if utf8 => {
                std::str::from_utf8(self.body).map_err(|_| BerError::BadString("UTF8String"))
            }
            found => Err(BerError::UnexpectedTag {
                expected: TAG_PRINTABLE_STRING,
                found,
            }),
        }
    }
}

/// Whether every character of `text` may appear in a PrintableString.
pub(super) fn is_printable(text: &str) -> bool {
    text.bytes().all(|byte| {
        byte.is_ascii_alphanumeric()
            || matches!(
                byte,
                b' ' | b'\'' | b'(' | b')' | b'+' | b',' | b'-' | b'.' | b'/' | b':' | b'=' | b'?'
            )
    })
}

/// An object identifier's arcs, compared against the constants in `oid`.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Oid(Vec<u64>);

impl Oid {
    pub(super) fn is(&self, arcs: &[u64]) -> bool {
        self.0 == arcs
    }
}

impl fmt::Display for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut separator = "";
        for arc in &self.0 {
            write!(f, "{separator}{arc}")?;
            separator = ".";
        }
        Ok(())
    }
}

impl fmt::Debug for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The elements of a constructed element, read in order.
pub(super) struct Children<'a> {
    rest: &'a [u8],
    depth: usize,
}

impl<'a> Children<'a> {
    /// The next element, which must exist.
    pub(super) fn next(&mut self) -> Result<Element<'a>, BerError> {
        self.next_optional()?.ok_or(BerError::Missing)
    }

    /// The next element, if any is left.
    pub(super) fn next_optional(&mut self) -> Result<Option<Element<'a>>, BerError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let (element, rest) = read_element(self.rest, self.depth)?;
        self.rest = rest;
        Ok(Some(element))
    }

    /// The next element if it has `tag`; nothing is consumed otherwise.
    pub(super) fn next_if(&mut self, tag: u8) -> Result<Option<Element<'a>>, BerError> {
        if self.rest.first() != Some(&tag) {
            return Ok(None);
        }
        self.next_optional()
    }

    /// Fails unless every element has been read.
    pub(super) fn finish(self) -> Result<(), BerError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(BerError::TrailingBytes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definite_and_indefinite_lengths_read_the_same_sequence() {
        let definite = [0x30, 0x06, 0x02, 0x01, 0x05, 0x04, 0x01, 0xaa];
        let indefinite = [0x30, 0x80, 0x02, 0x01, 0x05, 0x04, 0x01, 0xaa, 0x00, 0x00];
        for input in [&definite[..], &indefinite[..]] {
            let element = parse(input).unwrap();
            assert_eq!(element.raw, input);
            let mut children = element.children().unwrap();
            assert_eq!(
                children.next().unwrap().expect(TAG_INTEGER).unwrap().body,
                [5]
            );
            assert_eq!(&*children.next().unwrap().octets().unwrap(), [0xaa]);
            children.finish().unwrap();
        }
    }

    #[test]
    fn a_constructed_octet_string_is_joined() {
        let input = [
            0x24, 0x80, 0x04, 0x01, 0x01, 0x04, 0x02, 0x02, 0x03, 0x00, 0x00,
        ];
        assert_eq!(&*parse(&input).unwrap().octets().unwrap(), [1, 2, 3]);
    }

    #[test]
    fn lengths_beyond_the_input_are_refused_without_panicking() {
        // Four length octets of 0xff: about 4 GiB promised, 1 byte given.
        let huge = [0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x00];
        assert_eq!(parse(&huge).unwrap_err(), BerError::Truncated);
        // Eight length octets: refused before they are added up.
        let longer = [0x30, 0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(parse(&longer).unwrap_err(), BerError::LengthTooLarge);
        assert_eq!(parse(&[0x30]).unwrap_err(), BerError::Truncated);
        assert_eq!(parse(&[]).unwrap_err(), BerError::Truncated);
        // An indefinite length that never ends.
        assert_eq!(
            parse(&[0x30, 0x80, 0x02, 0x01, 0x05]).unwrap_err(),
            BerError::Truncated
        );
        assert_eq!(
            parse(&[0x04, 0x80, 0x00, 0x00]).unwrap_err(),
            BerError::IndefinitePrimitive
        );
    }

    #[test]
    fn deep_nesting_stops_at_the_limit() {
        let mut input = Vec::new();
        for _ in 0..10_000 {
            input.extend_from_slice(&[0x30, 0x80]);
        }
        assert_eq!(parse(&input).unwrap_err(), BerError::TooDeep);
    }

    #[test]
    fn object_identifiers_decode_to_their_arcs() {
        // 2.16.840.1.113733.1.9.2, SCEP messageType.
        let input = [
            0x06, 0x0a, 0x60, 0x86, 0x48, 0x01, 0x86, 0xf8, 0x45, 0x01, 0x09, 0x02,
        ];
        let oid = parse(&input).unwrap().oid().unwrap();
        assert!(oid.is(&[2, 16, 840, 1, 113733, 1, 9, 2]));
        assert_eq!(oid.to_string(), "2.16.840.1.113733.1.9.2");
        assert_eq!(
            parse(&[0x06, 0x01, 0x81]).unwrap().oid().unwrap_err(),
            BerError::BadOid
        );
        assert_eq!(
            parse(&[0x06, 0x00]).unwrap().oid().unwrap_err(),
            BerError::BadOid
        );
    }

    #[test]
    fn printable_strings_hold_only_their_alphabet() {
        assert_eq!(parse(b"\x13\x0219").unwrap().text(false).unwrap(), "19");
        assert!(parse(b"\x13\x01*").unwrap().text(false).is_err());
        assert!(parse(b"\x0c\x01x").unwrap().text(false).is_err());
        assert_eq!(parse(b"\x0c\x01x").unwrap().text(true).unwrap(), "x");
    }
}
