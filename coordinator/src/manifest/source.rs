//! The manifest's text: reading it safely, parsing TOML with positions kept,
//! converting it to JSON for schema validation, and mapping a field path
//! back to a line and column.
//!
//! Reading refuses what is not a manifest before parsing: files over
//! [`MAX_MANIFEST_BYTES`], and bytes that are not UTF-8 text.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use toml_edit::{Document, Item};

/// The largest manifest accepted: 8 MiB holds well over 10,000 tenants.
pub const MAX_MANIFEST_BYTES: u64 = 8 * 1024 * 1024;

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Segment {
    /// A table key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// A field path such as `tenants[2].account_id`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct FieldPath(pub Vec<Segment>);

impl FieldPath {
    /// The root of the document.
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// Parses a JSON pointer (`/tenants/2/account_id`).
    pub fn from_pointer(pointer: &str) -> Self {
        let segments = pointer
            .split('/')
            .skip(1)
            .map(|raw| {
                let key = raw.replace("~1", "/").replace("~0", "~");
                match key.parse::<usize>() {
                    Ok(i) if !key.starts_with('+') => Segment::Index(i),
                    _ => Segment::Key(key),
                }
            })
            .collect();
        Self(segments)
    }

    /// This path extended by `key`.
    pub fn key(&self, key: &str) -> Self {
        let mut next = self.clone();
        next.0.push(Segment::Key(key.to_owned()));
        next
    }

    /// This path extended by `index`.
    pub fn index(&self, index: usize) -> Self {
        let mut next = self.clone();
        next.0.push(Segment::Index(index));
        next
    }
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(k) if i == 0 => f.write_str(k)?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Why the manifest's bytes could not even be parsed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// The manifest path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than any real manifest.
    #[error(
        "{} is {size} bytes; a fleet manifest is at most {MAX_MANIFEST_BYTES} bytes (8 MiB): is this the right file?",
        path.display()
    )]
    TooLarge {
        /// The manifest path.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// The file is not UTF-8 text.
    #[error(
        "{} is not UTF-8 text (invalid byte at offset {offset}): a fleet manifest is a TOML file",
        path.display()
    )]
    NotText {
        /// The manifest path.
        path: PathBuf,
        /// Where the first invalid byte is.
        offset: usize,
    },
}

/// Reads a manifest file, refusing oversized and binary input.
pub fn read(path: &Path) -> Result<String, ReadError> {
    let io = |source| ReadError::Io {
        path: path.to_owned(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_MANIFEST_BYTES {
        return Err(ReadError::TooLarge {
            path: path.to_owned(),
            size,
        });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    String::from_utf8(bytes).map_err(|e| ReadError::NotText {
        path: path.to_owned(),
        offset: e.utf8_error().valid_up_to(),
    })
}

/// A parsed TOML document that still knows where each value came from.
#[derive(Debug)]
pub struct Source {
    document: Document<String>,
}

impl Source {
    /// Parses `text`; on a syntax error returns its message and byte span.
    pub fn parse(text: String) -> Result<Self, (String, Option<Range<usize>>)> {
        Document::parse(text)
            .map(|document| Self { document })
            .map_err(|e| (e.message().trim().to_owned(), e.span()))
    }

    /// The original text.
    pub fn text(&self) -> &str {
        self.document.raw()
    }

    /// The document as JSON (TOML datetimes become strings).
    pub fn to_json(&self) -> Value {
        item_to_json(self.document.as_item())
    }

    /// The byte span of the value at `path`, or of the nearest ancestor that
    /// exists. With `key_span`, the span of the last key instead of its value
    /// (used for "unknown key" errors).
    pub fn span_of(&self, path: &FieldPath, key_span: bool) -> Option<Range<usize>> {
        let mut item = self.document.as_item();
        let mut best = None;
        for (i, segment) in path.0.iter().enumerate() {
            let last = i + 1 == path.0.len();
            match segment {
                Segment::Key(k) => {
                    let (key, value) = item.as_table_like()?.get_key_value(k)?;
                    best = if last && key_span {
                        key.span()
                    } else {
                        value.span().or(key.span()).or(best)
                    };
                    item = value;
                }
                Segment::Index(n) => match item {
                    Item::ArrayOfTables(tables) => {
                        let table = tables.get(*n)?;
                        return self.span_in_table(table, &path.0[i + 1..], key_span);
                    }
                    Item::Value(toml_edit::Value::Array(array)) => {
                        let value = array.get(*n)?;
                        best = value.span().or(best);
                        if let toml_edit::Value::InlineTable(t) = value {
                            return self.span_in_inline(t, &path.0[i + 1..], key_span);
                        }
                        return best;
                    }
                    _ => return best,
                },
            }
        }
        best
    }

    fn span_in_table(
        &self,
        table: &toml_edit::Table,
        rest: &[Segment],
        key_span: bool,
    ) -> Option<Range<usize>> {
        let Some(Segment::Key(k)) = rest.first() else {
            return table.span();
        };
        let (key, value) = table.get_key_value(k)?;
        if rest.len() == 1 {
            return if key_span {
                key.span()
            } else {
                value.span().or(key.span())
            };
        }
        let sub = FieldPath(rest[1..].to_vec());
        match value {
            Item::Table(t) => self.span_in_table(t, &sub.0, key_span).or(value.span()),
            Item::Value(toml_edit::Value::Array(array)) => match sub.0.first() {
                Some(Segment::Index(n)) => array
                    .get(*n)
                    .and_then(toml_edit::Value::span)
                    .or(value.span()),
                _ => value.span(),
            },
            Item::Value(toml_edit::Value::InlineTable(t)) => {
                self.span_in_inline(t, &sub.0, key_span).or(value.span())
            }
            _ => value.span(),
        }
    }

    fn span_in_inline(
        &self,
        table: &toml_edit::InlineTable,
        rest: &[Segment],
        key_span: bool,
    ) -> Option<Range<usize>> {
        let Some(Segment::Key(k)) = rest.first() else {
            return table.span();
        };
        let (key, value) = table.get_key_value(k)?;
        if key_span && rest.len() == 1 {
            key.span()
        } else {
            value.span().or(key.span())
        }
    }

    /// 1-based line and column of byte `offset`.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        line_col(self.text(), offset)
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

fn item_to_json(item: &Item) -> Value {
    match item {
        Item::None => Value::Null,
        Item::Value(v) => value_to_json(v),
        Item::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.to_owned(), item_to_json(v)))
                .collect::<Map<_, _>>(),
        ),
        Item::ArrayOfTables(a) => Value::Array(
            a.iter()
                .map(|t| {
                    Value::Object(
                        t.iter()
                            .map(|(k, v)| (k.to_owned(), item_to_json(v)))
                            .collect(),
                    )
                })
                .collect(),
        ),
    }
}

fn value_to_json(value: &toml_edit::Value) -> Value {
    use toml_edit::Value as T;
    match value {
        T::String(s) => Value::String(s.value().clone()),
        T::Integer(i) => Value::from(*i.value()),
        T::Float(f) => serde_json::Number::from_f64(*f.value()).map_or(Value::Null, Value::Number),
        T::Boolean(b) => Value::Bool(*b.value()),
        T::Datetime(d) => Value::String(d.value().to_string()),
        T::Array(a) => Value::Array(a.iter().map(value_to_json).collect()),
        T::InlineTable(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.to_owned(), value_to_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[coordinator]\naccount_id = \"111\"\n\n[[tenants]]\nid = \"a\"\ncapabilities = [\"x\", \"y\"]\n\n[[tenants]]\nid = \"b\"\nextra = { k = 1 }\n";

    #[test]
    fn spans_point_at_values_and_keys() {
        let source = Source::parse(TEXT.to_owned()).unwrap();
        let at = |pointer: &str, key: bool| {
            let span = source
                .span_of(&FieldPath::from_pointer(pointer), key)
                .unwrap();
            (source.line_col(span.start), &TEXT[span])
        };
        assert_eq!(at("/coordinator/account_id", false), ((2, 14), "\"111\""));
        assert_eq!(at("/coordinator/account_id", true), ((2, 1), "account_id"));
        assert_eq!(at("/tenants/1/id", false), ((9, 6), "\"b\""));
        assert_eq!(at("/tenants/0/capabilities/1", false), ((6, 22), "\"y\""));
        assert_eq!(at("/tenants/1/extra/k", true), ((10, 11), "k"));
        // A missing key falls back to nothing; callers then use the parent.
        assert!(
            source
                .span_of(&FieldPath::from_pointer("/tenants/1/nope"), false)
                .is_none()
        );
    }

    #[test]
    fn converts_to_json() {
        let source = Source::parse(TEXT.to_owned()).unwrap();
        let json = source.to_json();
        assert_eq!(json["tenants"][0]["capabilities"][1], "y");
        assert_eq!(json["tenants"][1]["extra"]["k"], 1);
    }

    #[test]
    fn paths_display_like_fields() {
        assert_eq!(
            FieldPath::from_pointer("/tenants/2/account_id").to_string(),
            "tenants[2].account_id"
        );
        assert_eq!(FieldPath::root().to_string(), "(top level)");
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncé\nd", 6), (2, 3));
        assert_eq!(line_col("", 10), (1, 1));
    }
}
