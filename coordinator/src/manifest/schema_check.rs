//! Structural validation of the manifest against its JSON Schema, with each
//! schema error turned into a finding a person can act on: the field, what
//! is wrong in words, and a hint taken from the schema's own description
//! (or a "did you mean" for a misspelt key).

use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

use super::diagnostics::Finding;
use super::raw::RawManifest;
use super::source::FieldPath;

/// The manifest's JSON Schema, generated from [`RawManifest`].
pub fn manifest_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        serde_json::to_value(schemars::schema_for!(RawManifest)).expect("schemas serialize")
    })
}

fn validator() -> &'static Validator {
    static VALIDATOR: OnceLock<Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        jsonschema::validator_for(manifest_schema()).expect("the generated schema is valid")
    })
}

/// Every structural problem in `instance`.
pub fn check(instance: &Value) -> Vec<Finding> {
    let mut findings: Vec<Finding> = validator()
        .iter_errors(instance)
        .flat_map(|e| describe(&e))
        .collect();
    findings.sort_by(|a, b| a.path.cmp(&b.path));
    findings
}

/// The schema node that holds the failing keyword.
fn schema_node(error: &ValidationError<'_>) -> Option<&'static Value> {
    let pointer = error.schema_path().as_str();
    let parent = &pointer[..pointer.rfind('/').unwrap_or(0)];
    manifest_schema().pointer(parent)
}

/// A schema description as a phrase: one line, no final period, and a
/// lowercase start unless it begins with an acronym ("The SQLite state
/// file." -> "the SQLite state file").
fn description(node: Option<&Value>) -> Option<String> {
    let text = node
        .and_then(|n| n.get("description"))
        .and_then(Value::as_str)?
        .replace('\n', " ");
    let text = text.trim().trim_end_matches('.');
    let mut chars = text.chars();
    let first = chars.next()?;
    if chars.next().is_some_and(char::is_lowercase) {
        Some(format!(
            "{}{}",
            first.to_lowercase(),
            &text[first.len_utf8()..]
        ))
    } else {
        Some(text.to_owned())
    }
}

/// Describes the value a field should hold, from its schema node.
fn field_description(property_schema: Option<&Value>) -> Option<String> {
    let node = property_schema?;
    if let Some(reference) = node.get("$ref").and_then(Value::as_str) {
        let target = manifest_schema().pointer(reference.trim_start_matches('#'));
        return description(Some(node)).or_else(|| description(target));
    }
    description(Some(node))
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a table",
    }
}

fn expected_type(kind: &TypeKind) -> String {
    let name = |t: &jsonschema::JsonType| match t.to_string().as_str() {
        "object" => "a table".to_owned(),
        "array" => "an array".to_owned(),
        "integer" => "an integer".to_owned(),
        other => format!("a {other}"),
    };
    match kind {
        TypeKind::Single(t) => name(t),
        TypeKind::Multiple(ts) => ts.iter().map(|t| name(&t)).collect::<Vec<_>>().join(" or "),
    }
}

/// Short rendering of a value for messages.
fn shown(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}

/// Allowed values of an enum-like schema node (`enum`, or `oneOf` of consts).
fn allowed_values(node: &Value) -> Vec<String> {
    let node = match node.get("$ref").and_then(Value::as_str) {
        Some(r) => manifest_schema()
            .pointer(r.trim_start_matches('#'))
            .unwrap_or(node),
        None => node,
    };
    if let Some(values) = node.get("enum").and_then(Value::as_array) {
        return values
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
    }
    node.get("oneOf")
        .and_then(Value::as_array)
        .map(|alts| {
            alts.iter()
                .filter_map(|a| a.get("const").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn describe(error: &ValidationError<'_>) -> Vec<Finding> {
    let path = FieldPath::from_pointer(error.instance_path().as_str());
    let node = schema_node(error);
    let instance = error.instance();
    let one = |f: Finding| vec![f];
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let known: Vec<String> = node
                .and_then(|n| n.get("properties"))
                .and_then(Value::as_object)
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default();
            unexpected
                .iter()
                .map(|key| {
                    let section = if path.0.is_empty() {
                        "at the top level".to_owned()
                    } else {
                        format!("in {path}")
                    };
                    let hint = match closest(key, &known) {
                        Some(k) => format!("did you mean `{k}`?"),
                        None => format!("known keys here: {}", known.join(", ")),
                    };
                    Finding::error(path.key(key), format!("unknown key `{key}` {section}"))
                        .at_key()
                        .hint(hint)
                })
                .collect()
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            let prop_schema = node.and_then(|n| n.pointer(&format!("/properties/{name}")));
            let what = field_description(prop_schema);
            let target = if path.0.is_empty() {
                format!("section [{name}]")
            } else {
                format!("key `{name}`")
            };
            let place = if path.0.is_empty() {
                String::new()
            } else {
                format!(" in {path}")
            };
            let mut f = Finding::error(path.clone(), format!("missing {target}{place}"));
            if let Some(w) = what {
                f = f.hint(format!("add `{name}`: {w}"));
            }
            one(f)
        }
        ValidationErrorKind::Type { kind } => {
            let found = match instance.as_ref() {
                Value::Object(_) | Value::Array(_) => json_type(instance).to_owned(),
                scalar => format!("{} {}", json_type(scalar), shown(scalar)),
            };
            let hint = match (path.to_string().as_str(), instance.as_ref()) {
                ("tenants", Value::Object(_)) => Some(
                    "write each tenant as its own [[tenants]] table, with double brackets"
                        .to_owned(),
                ),
                _ => description(node).map(|d| format!("{path} is {d}")),
            };
            let message = format!("{path} must be {}, found {found}", expected_type(kind));
            one(Finding::error(path.clone(), message).hint_opt(hint))
        }
        ValidationErrorKind::MinLength { .. } if instance.as_str() == Some("") => one(
            Finding::error(path.clone(), format!("{path} must not be empty"))
                .hint_opt(description(node).map(|d| format!("{path} is {d}"))),
        ),
        ValidationErrorKind::Pattern { .. }
        | ValidationErrorKind::MinLength { .. }
        | ValidationErrorKind::MaxLength { .. } => one(Finding::error(
            path.clone(),
            format!("invalid {}: {}", last_key(&path), shown(instance)),
        )
        .hint_opt(description(node).map(|d| format!("expected {d}")))),
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context }
            if node.map(allowed_values).unwrap_or_default().is_empty() =>
        {
            // An optional value (`anyOf [T, null]`) or a union: explain why
            // the most plausible alternative rejected it.
            let best = context.iter().min_by_key(|branch| {
                branch
                    .iter()
                    .filter(|e| matches!(e.kind(), ValidationErrorKind::Type { .. }))
                    .count()
            });
            match best {
                Some(branch) if !branch.is_empty() => {
                    branch.iter().flat_map(|e| describe(e)).collect()
                }
                _ => one(Finding::error(path.clone(), format!("{path}: {error}"))),
            }
        }
        ValidationErrorKind::Enum { .. }
        | ValidationErrorKind::Constant { .. }
        | ValidationErrorKind::OneOfNotValid { .. }
        | ValidationErrorKind::AnyOf { .. } => {
            let allowed = node.map(allowed_values).unwrap_or_default();
            let value = instance
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| shown(instance));
            let message = match path.0.last() {
                Some(super::source::Segment::Index(_)) => {
                    let mut parent = path.clone();
                    parent.0.pop();
                    format!("unknown entry `{value}` in {parent}")
                }
                _ => format!("unknown {} `{value}`", last_key(&path)),
            };
            let mut f = Finding::error(path.clone(), message);
            if let Some(k) = closest(&value, &allowed) {
                f = f.hint(format!(
                    "did you mean `{k}`? (known: {})",
                    allowed.join(", ")
                ));
            } else if !allowed.is_empty() {
                f = f.hint(format!("known values: {}", allowed.join(", ")));
            }
            one(f)
        }
        ValidationErrorKind::MinItems { limit } => one(Finding::error(
            path.clone(),
            format!("{path} must list at least {limit} item(s)"),
        )
        .hint_opt(description(node))),
        ValidationErrorKind::MaxItems { limit } => one(Finding::error(
            path.clone(),
            format!("{path} may list at most {limit} items"),
        )),
        ValidationErrorKind::UniqueItems => {
            let dupes = duplicates(instance);
            one(Finding::error(
                path.clone(),
                format!("{path} lists {} more than once", dupes.join(", ")),
            )
            .hint("remove the repeated entries"))
        }
        ValidationErrorKind::Minimum { limit } | ValidationErrorKind::Maximum { limit } => {
            one(Finding::error(
                path.clone(),
                format!(
                    "{path} is out of range: {} (limit {limit})",
                    shown(instance)
                ),
            )
            .hint_opt(description(node)))
        }
        _ => one(Finding::error(path.clone(), format!("{path}: {error}"))),
    }
}

fn last_key(path: &FieldPath) -> String {
    use super::source::Segment;
    path.0
        .iter()
        .rev()
        .find_map(|s| match s {
            Segment::Key(k) => Some(k.replace('_', " ")),
            Segment::Index(_) => None,
        })
        .unwrap_or_else(|| "value".into())
}

fn duplicates(instance: &Value) -> Vec<String> {
    let mut seen = Vec::new();
    let mut dupes = Vec::new();
    for item in instance.as_array().into_iter().flatten() {
        if seen.contains(&item) {
            if !dupes.contains(&shown(item)) {
                dupes.push(shown(item));
            }
        } else {
            seen.push(item);
        }
    }
    dupes
}

/// The candidate closest to `word` by edit distance, if close enough to be a
/// plausible typo.
pub fn closest(word: &str, candidates: &[String]) -> Option<String> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.clone())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

trait HintOpt {
    fn hint_opt(self, hint: Option<String>) -> Self;
}

impl HintOpt for Finding {
    fn hint_opt(self, hint: Option<String>) -> Self {
        match hint {
            Some(h) => self.hint(h),
            None => self,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_suggests_typos_only() {
        let keys = vec![
            "account_id".to_owned(),
            "region".to_owned(),
            "wave".to_owned(),
        ];
        assert_eq!(closest("acount_id", &keys).as_deref(), Some("account_id"));
        assert_eq!(closest("regoin", &keys).as_deref(), Some("region"));
        assert_eq!(closest("colour", &keys), None);
    }
}
