//! How latchctl prints: aligned tables, key-value blocks, pretty JSON, and
//! times as people read them and as JSON carries them. Nothing here knows
//! a command or a wire message.

use chrono::{DateTime, Utc};
use unicode_width::UnicodeWidthStr;

/// A JSON value as latchctl prints it: indented, with a final newline.
pub fn pretty(value: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// Unix seconds as JSON carries them; none for 0 (never).
pub fn rfc3339(unix: i64) -> Option<String> {
    (unix != 0)
        .then(|| DateTime::from_timestamp(unix, 0).map(|t| t.to_rfc3339()))
        .flatten()
}

/// Unix seconds for a table or a key-value block; `-` for 0 (never).
pub fn time(unix: i64) -> String {
    if unix == 0 {
        return "-".to_owned();
    }
    DateTime::from_timestamp(unix, 0).map_or_else(
        || "-".to_owned(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// How long before `now`, in the largest whole unit.
pub fn ago(unix: i64, now: DateTime<Utc>) -> String {
    if unix == 0 {
        return "never".to_owned();
    }
    let seconds = (now.timestamp() - unix).max(0);
    match seconds {
        0..60 => format!("{seconds}s ago"),
        60..3600 => format!("{}m ago", seconds / 60),
        3600..86400 => format!("{}h ago", seconds / 3600),
        _ => format!("{}d ago", seconds / 86400),
    }
}

/// `-` for an empty cell.
pub fn or_dash(text: &str) -> &str {
    if text.is_empty() { "-" } else { text }
}

/// Columns aligned by display width, a header row, and `(none)` when empty.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Table {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    pub fn render(&self) -> String {
        // Columns line up on a terminal: 営業部 takes six columns, not three.
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.width()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(cell.width());
                }
            }
        }
        let line = |cells: &[String]| {
            let mut out = String::new();
            for (i, cell) in cells.iter().enumerate() {
                let last = i + 1 == cells.len();
                if last {
                    out.push_str(cell);
                } else {
                    let width = widths.get(i).copied().unwrap_or(0);
                    out.push_str(cell);
                    out.push_str(&" ".repeat(width.saturating_sub(cell.width()) + 2));
                }
            }
            out.trim_end().to_owned() + "\n"
        };
        let mut out = line(&self.header);
        for row in &self.rows {
            out.push_str(&line(row));
        }
        if self.rows.is_empty() {
            out.push_str("(none)\n");
        }
        out
    }
}

/// A key-value block, the values aligned after the longest key.
#[derive(Default)]
pub struct Fields {
    pairs: Vec<(String, String)>,
}

impl Fields {
    pub fn add(&mut self, key: &str, value: &str) {
        self.pairs.push((key.to_owned(), value.to_owned()));
    }

    pub fn render(&self) -> String {
        let width = self.pairs.iter().map(|(k, _)| k.width()).max().unwrap_or(0);
        self.pairs
            .iter()
            .map(|(k, v)| format!("{k:<width$}  {v}\n"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn japanese_names_line_up_in_a_table() {
        let mut table = Table::new(&["NAME", "MEMBERS"]);
        table.row(vec!["営業部".into(), "3".into()]);
        table.row(vec!["staff".into(), "12".into()]);
        let text = table.render();
        let columns: Vec<usize> = text
            .lines()
            .map(|line| {
                let at = line.rfind("  ").map_or(0, |i| i + 2);
                line.get(..at).map_or(0, UnicodeWidthStr::width)
            })
            .collect();
        assert_eq!(columns, [8, 8, 8], "{text}");
    }
}
