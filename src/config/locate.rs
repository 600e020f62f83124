//! Locating keys in the config text, so that every error names a line and a dotted key.

use std::ops::Range;
use std::path::Path;

use super::ConfigError;

// ---------------------------------------------------------------------------------------
// Locating keys in the text, so that every error can name a line.

pub(super) fn invalid(
    file: &Path,
    text: &str,
    span: Option<Range<usize>>,
    key: String,
    message: String,
) -> ConfigError {
    let (line, column) = span.map(|s| line_col(text, s.start)).unwrap_or((1, 1));
    // A message may quote the offending value: its control characters are shown escaped, so
    // an error is always one line wherever it is printed.
    let message = message
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect();
    ConfigError::Invalid {
        file: file.to_path_buf(),
        line,
        column,
        key,
        message,
    }
}

/// 1-based line and column of a byte offset.
pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map(|i| before.len() - i)
        .unwrap_or(before.len() + 1);
    (line, col)
}

/// `["hosts", "de:00:..", "ip"]` as `hosts."de:00:..".ip`.
pub(super) fn dotted(path: &[&str]) -> String {
    path.iter()
        .map(|k| {
            if !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                k.to_string()
            } else {
                // Escaped, so a key with a newline cannot break the error's line.
                format!("\"{}\"", k.escape_debug())
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Span of the key at `path` (or of its table header), if the text parses.
pub(super) fn span_of(text: &str, path: &[&str]) -> Option<Range<usize>> {
    let doc = toml_edit::Document::parse(text.to_string()).ok()?;
    let mut table: &dyn toml_edit::TableLike = doc.as_table();
    let mut best = None;
    let mut i = 0;
    while i < path.len() {
        let (key, item) = table.get_key_value(path[i])?;
        best = key.span().or_else(|| item.span()).or(best);
        i += 1;
        if i == path.len() {
            break;
        }
        // An array of tables is entered by the index that follows its key.
        let next = match item {
            toml_edit::Item::ArrayOfTables(a) => {
                let t = a.get(path[i].parse().ok()?)?;
                best = t.span().or(best);
                i += 1;
                t as &dyn toml_edit::TableLike
            }
            _ => item.as_table_like()?,
        };
        table = next;
    }
    best
}

/// Dotted path of the innermost key whose key or value contains byte `pos`.
pub(super) fn key_at(text: &str, pos: usize) -> Option<String> {
    let doc = toml_edit::Document::parse(text.to_string()).ok()?;
    let mut best: Option<Vec<String>> = None;
    let mut stack = Vec::new();
    walk(doc.as_table(), pos, &mut stack, &mut best);
    best.map(|p| {
        let refs: Vec<&str> = p.iter().map(String::as_str).collect();
        dotted(&refs)
    })
}

pub(super) fn walk(
    table: &dyn toml_edit::TableLike,
    pos: usize,
    stack: &mut Vec<String>,
    best: &mut Option<Vec<String>>,
) {
    for (k, item) in table.iter() {
        stack.push(k.to_string());
        let key_span = table.get_key_value(k).and_then(|(key, _)| key.span());
        let hit = [key_span, item.span()]
            .into_iter()
            .flatten()
            .any(|s| s.start <= pos && pos < s.end.max(s.start + 1));
        if hit && best.as_ref().is_none_or(|b| b.len() < stack.len()) {
            *best = Some(stack.clone());
        }
        if let Some(t) = item.as_table_like() {
            walk(t, pos, stack, best);
        } else if let toml_edit::Item::ArrayOfTables(a) = item {
            for (i, t) in a.iter().enumerate() {
                stack.push(i.to_string());
                walk(t, pos, stack, best);
                stack.pop();
            }
        }
        stack.pop();
    }
}
