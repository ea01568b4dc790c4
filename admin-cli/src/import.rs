//! Reading a user import file: its text encoding and whether one import
//! takes it, decided before anything is sent.
//!
//! Excel saves "CSV UTF-8" with a byte order mark, and plain "CSV" in the
//! system's code page, which on Japanese Windows is CP932 (Shift_JIS with
//! Microsoft's extensions). Both are read: UTF-8 first (a file that decodes
//! as UTF-8 is taken to be UTF-8), CP932 otherwise. A file in neither is
//! refused with what to do about it.

use std::path::Path;

use latchkey_proto::limits::{MAX_IMPORT_BYTES, MAX_IMPORT_ROWS};

use crate::CliError;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The text of an import file: UTF-8 without its byte order mark, or CP932
/// converted to UTF-8.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<String, CliError> {
    let bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Ok(text.to_owned());
    }
    // encoding_rs's Shift_JIS is the WHATWG one, which is CP932 (it has
    // the NEC and IBM extensions Windows uses).
    encoding_rs::SHIFT_JIS
        .decode_without_bom_handling_and_without_replacement(bytes)
        .map(std::borrow::Cow::into_owned)
        .ok_or_else(|| {
            CliError::Usage(format!(
                "{} is neither UTF-8 nor Shift_JIS (CP932) text; save it as \"CSV UTF-8\" and import it again",
                path.display()
            ))
        })
}

/// Refuses a file one import cannot take, saying how to split it.
pub fn check_size(path: &Path, text: &str) -> Result<(), CliError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut rows: usize = 0;
    let mut record = csv::ByteRecord::new();
    // An unreadable row still counts; the server names it.
    while !matches!(reader.read_byte_record(&mut record), Ok(false)) {
        rows += 1;
        if rows > MAX_IMPORT_ROWS + 1 {
            break;
        }
    }
    if rows > MAX_IMPORT_ROWS {
        return Err(CliError::Usage(format!(
            "{} has more than {MAX_IMPORT_ROWS} rows, too large for one import: split it into files of at most {MAX_IMPORT_ROWS} rows, each with the header row",
            path.display()
        )));
    }
    if text.len() > MAX_IMPORT_BYTES {
        // Rows that fit in the byte limit at this file's average row size.
        let per_file = (rows.max(1) * MAX_IMPORT_BYTES / text.len()).clamp(1, MAX_IMPORT_ROWS);
        return Err(CliError::Usage(format!(
            "{} is {} bytes, too large for one import (at most {MAX_IMPORT_BYTES} bytes): split it into files of at most {per_file} rows, each with the header row",
            path.display(),
            text.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_excel_csv_utf8_file_loses_its_byte_order_mark() {
        let text = decode(Path::new("u.csv"), b"\xEF\xBB\xBFemail,name\n").unwrap();
        assert_eq!(text, "email,name\n");
    }

    #[test]
    fn a_file_saved_by_excel_in_japan_is_read_as_cp932() {
        // "email,name,groups\na@example.com,山田 太郎,営業部\n" in CP932,
        // including the NEC extension ① (0x87 0x40).
        let mut bytes = b"email,name,groups\na@example.com,".to_vec();
        bytes.extend_from_slice(&[0x8E, 0x52, 0x93, 0x63, 0x20, 0x91, 0xBE, 0x98, 0x59]);
        bytes.extend_from_slice(b",");
        bytes.extend_from_slice(&[0x89, 0x63, 0x8B, 0xC6, 0x95, 0x94, 0x87, 0x40]);
        bytes.extend_from_slice(b"\n");
        let text = decode(Path::new("jp.csv"), &bytes).unwrap();
        assert_eq!(text, "email,name,groups\na@example.com,山田 太郎,営業部①\n");
    }

    #[test]
    fn a_file_in_neither_encoding_says_to_save_it_as_csv_utf8() {
        let error = decode(Path::new("x.csv"), b"email\n\x82\xFF\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("save it as \"CSV UTF-8\""), "{error}");
    }

    #[test]
    fn a_file_over_the_row_limit_is_refused_before_sending() {
        let mut text = String::from("email,name\n");
        for i in 0..=MAX_IMPORT_ROWS {
            text.push_str(&format!("u{i}@example.com,U\n"));
        }
        let error = check_size(Path::new("big.csv"), &text)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("split it into files of at most 50000 rows"),
            "{error}"
        );
        let at_limit = text
            .lines()
            .take(MAX_IMPORT_ROWS + 1)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(check_size(Path::new("ok.csv"), &at_limit).is_ok());
    }
}
