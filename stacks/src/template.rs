//! A rendered CloudFormation template, checked and hashed.
//!
//! `Template::new` accepts a parsed JSON document only if it is a plausible
//! CloudFormation template whose references all resolve: every `Ref`,
//! `Fn::GetAtt`, `Fn::Sub` variable and `DependsOn` names a declared
//! parameter, resource or pseudo parameter. All problems are collected, not
//! just the first. The hash is SHA-256 over a canonical form (object keys
//! sorted, no insignificant whitespace), so two renderings that differ only
//! in formatting hash alike; the planner compares these hashes.
//!
//! This module knows nothing about particular stacks.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// One thing wrong with a template, located by JSON pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// JSON pointer to the offending node, e.g. `/Resources/Queue/Properties`.
    pub at: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// A template failed its checks; every problem found is listed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("template {name} failed {} check(s): {}", problems.len(), list(problems))]
pub struct TemplateError {
    /// Which template.
    pub name: String,
    /// Every problem found.
    pub problems: Vec<Problem>,
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// SHA-256 of a template's canonical form, as lowercase hex.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct TemplateHash(String);

impl TemplateHash {
    /// The hash as hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TemplateHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// A checked CloudFormation template.
#[derive(Debug, Clone)]
pub struct Template {
    body: Value,
    canonical: String,
    hash: TemplateHash,
}

/// Pseudo parameters CloudFormation defines in every template.
const PSEUDO_PARAMETERS: &[&str] = &[
    "AWS::AccountId",
    "AWS::NotificationARNs",
    "AWS::NoValue",
    "AWS::Partition",
    "AWS::Region",
    "AWS::StackId",
    "AWS::StackName",
    "AWS::URLSuffix",
];

impl Template {
    /// Checks `body` and computes its hash. `name` only labels errors.
    pub fn new(name: &str, body: Value) -> Result<Self, TemplateError> {
        let problems = check(&body);
        if !problems.is_empty() {
            return Err(TemplateError {
                name: name.to_owned(),
                problems,
            });
        }
        let mut canonical = String::new();
        write_canonical(&body, &mut canonical);
        let hash = TemplateHash(hex(&Sha256::digest(canonical.as_bytes())));
        Ok(Self {
            body,
            canonical,
            hash,
        })
    }

    /// The template as JSON.
    pub fn body(&self) -> &Value {
        &self.body
    }

    /// The canonical text: keys sorted, compact. This is what is hashed and
    /// what should be sent to CloudFormation, so the stored template and the
    /// hash agree byte for byte.
    pub fn canonical_json(&self) -> &str {
        &self.canonical
    }

    /// Indented text for people (files written by `render`, snapshots).
    pub fn pretty_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(&self.body).expect("a Value always serializes");
        text.push('\n');
        text
    }

    /// SHA-256 over the canonical form.
    pub fn hash(&self) -> &TemplateHash {
        &self.hash
    }

    /// Declared parameter names.
    pub fn parameter_names(&self) -> BTreeSet<&str> {
        section_keys(&self.body, "Parameters")
    }

    /// Declared output names.
    pub fn output_names(&self) -> BTreeSet<&str> {
        section_keys(&self.body, "Outputs")
    }

    /// Declared resources: logical id to resource type.
    pub fn resources(&self) -> BTreeMap<&str, &str> {
        self.body["Resources"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(id, r)| (id.as_str(), r["Type"].as_str().unwrap_or_default()))
            .collect()
    }
}

fn section_keys<'a>(body: &'a Value, section: &str) -> BTreeSet<&'a str> {
    body[section]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k.as_str())
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `value` as canonical JSON: object keys sorted, no whitespace. Used for
/// template hashes and anything else that is hashed (audit entries).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

/// Writes `value` with object keys sorted and no whitespace, independent of
/// whether serde_json preserves insertion order in this build.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            out.push('{');
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn check(body: &Value) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut problem = |at: &str, message: String| {
        problems.push(Problem {
            at: at.to_owned(),
            message,
        })
    };
    let Some(root) = body.as_object() else {
        problem("", "a template must be a JSON object".into());
        return problems;
    };
    if root.get("AWSTemplateFormatVersion") != Some(&Value::String("2010-09-09".into())) {
        problem("/AWSTemplateFormatVersion", "must be \"2010-09-09\"".into());
    }
    for (section, required) in [
        ("Resources", true),
        ("Parameters", false),
        ("Outputs", false),
    ] {
        match root.get(section) {
            Some(Value::Object(map)) if !(required && map.is_empty()) => {}
            None if !required => {}
            _ => problem(
                &format!("/{section}"),
                format!("{section} must be a non-empty object"),
            ),
        }
    }
    let parameters = section_keys(body, "Parameters");
    let resources = section_keys(body, "Resources");
    let mut refs = Vec::new();
    collect_refs(body, String::new(), &mut refs);
    for r in refs {
        let ok = match &r.kind {
            RefKind::Ref => {
                parameters.contains(r.name.as_str())
                    || resources.contains(r.name.as_str())
                    || PSEUDO_PARAMETERS.contains(&r.name.as_str())
            }
            RefKind::GetAtt | RefKind::DependsOn => resources.contains(r.name.as_str()),
            RefKind::Sub { locals } => {
                locals.contains(&r.name)
                    || parameters.contains(r.name.as_str())
                    || resources.contains(r.name.as_str())
                    || PSEUDO_PARAMETERS.contains(&r.name.as_str())
            }
            RefKind::Malformed(_) => false,
        };
        if !ok {
            let message = match r.kind {
                RefKind::Malformed(why) => why,
                RefKind::Ref => format!("Ref to undeclared parameter or resource {:?}", r.name),
                RefKind::GetAtt => format!("Fn::GetAtt of undeclared resource {:?}", r.name),
                RefKind::DependsOn => format!("DependsOn names undeclared resource {:?}", r.name),
                RefKind::Sub { .. } => format!("Fn::Sub variable ${{{}}} is not declared", r.name),
            };
            problem(&r.at, message);
        }
    }
    problems
}

#[derive(Debug)]
enum RefKind {
    Ref,
    GetAtt,
    DependsOn,
    Sub { locals: BTreeSet<String> },
    Malformed(String),
}

#[derive(Debug)]
struct Reference {
    at: String,
    name: String,
    kind: RefKind,
}

fn pointer_escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn collect_refs(value: &Value, at: String, out: &mut Vec<Reference>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let inner_at = format!("{at}/{}", pointer_escape(key));
                match (key.as_str(), inner) {
                    ("Ref", Value::String(name)) => out.push(Reference {
                        at: inner_at.clone(),
                        name: name.clone(),
                        kind: RefKind::Ref,
                    }),
                    ("Fn::GetAtt", v) => out.push(get_att(v, &inner_at)),
                    ("Fn::Sub", v) => sub_refs(v, &inner_at, out),
                    ("DependsOn", Value::String(name)) => out.push(Reference {
                        at: inner_at.clone(),
                        name: name.clone(),
                        kind: RefKind::DependsOn,
                    }),
                    ("DependsOn", Value::Array(names)) => {
                        for name in names.iter().filter_map(Value::as_str) {
                            out.push(Reference {
                                at: inner_at.clone(),
                                name: name.to_owned(),
                                kind: RefKind::DependsOn,
                            });
                        }
                    }
                    _ => {}
                }
                collect_refs(inner, inner_at, out);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_refs(item, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn get_att(v: &Value, at: &str) -> Reference {
    let name = match v {
        Value::Array(parts) if parts.len() == 2 => parts[0].as_str().map(str::to_owned),
        Value::String(s) => s.split_once('.').map(|(r, _)| r.to_owned()),
        _ => None,
    };
    match name {
        Some(name) => Reference {
            at: at.to_owned(),
            name,
            kind: RefKind::GetAtt,
        },
        None => Reference {
            at: at.to_owned(),
            name: String::new(),
            kind: RefKind::Malformed(
                "Fn::GetAtt must be [Resource, Attribute] or \"Resource.Attribute\"".into(),
            ),
        },
    }
}

fn sub_refs(v: &Value, at: &str, out: &mut Vec<Reference>) {
    let (text, locals) = match v {
        Value::String(s) => (s.as_str(), BTreeSet::new()),
        Value::Array(parts) if parts.len() == 2 => match (&parts[0], &parts[1]) {
            (Value::String(s), Value::Object(vars)) => (s.as_str(), vars.keys().cloned().collect()),
            _ => return malformed_sub(at, out),
        },
        _ => return malformed_sub(at, out),
    };
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push(Reference {
                at: at.to_owned(),
                name: String::new(),
                kind: RefKind::Malformed("Fn::Sub has an unterminated ${".into()),
            });
            return;
        };
        let var = &after[..end];
        if !var.starts_with('!') {
            // `${Res.Attr}` refers to resource Res; `${AWS::Region}` stays whole.
            let name = if var.starts_with("AWS::") {
                var
            } else {
                var.split('.').next().unwrap_or(var)
            };
            out.push(Reference {
                at: at.to_owned(),
                name: name.to_owned(),
                kind: RefKind::Sub {
                    locals: locals.clone(),
                },
            });
        }
        rest = &after[end + 1..];
    }
}

fn malformed_sub(at: &str, out: &mut Vec<Reference>) {
    out.push(Reference {
        at: at.to_owned(),
        name: String::new(),
        kind: RefKind::Malformed("Fn::Sub must be a string or [string, {variables}]".into()),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal(resources: Value) -> Value {
        json!({
            "AWSTemplateFormatVersion": "2010-09-09",
            "Parameters": {"P": {"Type": "String"}},
            "Resources": resources,
        })
    }

    #[test]
    fn resolving_references_pass() {
        let body = minimal(json!({
            "A": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Ref": "P"}}},
            "B": {"Type": "AWS::SQS::Queue", "DependsOn": ["A"], "Properties": {
                "QueueName": {"Fn::Sub": "${AWS::StackName}-${P}-${A.QueueName}-${!Literal}"},
                "X": {"Fn::GetAtt": ["A", "Arn"]},
                "Y": {"Fn::GetAtt": "A.Arn"},
                "Z": {"Fn::Sub": ["${Local}-${P}", {"Local": "v"}]},
            }},
        }));
        Template::new("t", body).unwrap();
    }

    #[test]
    fn every_dangling_reference_is_reported() {
        let body = minimal(json!({
            "A": {"Type": "AWS::SQS::Queue", "DependsOn": "Nope", "Properties": {
                "QueueName": {"Ref": "Missing"},
                "X": {"Fn::GetAtt": ["Gone", "Arn"]},
                "Y": {"Fn::Sub": "${Unknown}-${Gone2.Arn}"},
                "Z": {"Fn::GetAtt": 5},
            }},
        }));
        let err = Template::new("t", body).unwrap_err();
        let messages: Vec<&str> = err.problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(messages.len(), 6, "{messages:#?}");
        assert!(messages.iter().any(|m| m.contains("\"Missing\"")));
        assert!(messages.iter().any(|m| m.contains("\"Gone\"")));
        assert!(messages.iter().any(|m| m.contains("${Unknown}")));
        assert!(messages.iter().any(|m| m.contains("${Gone2}")));
        assert!(messages.iter().any(|m| m.contains("\"Nope\"")));
        assert!(
            err.problems
                .iter()
                .any(|p| p.at == "/Resources/A/Properties/QueueName/Ref")
        );
    }

    #[test]
    fn structure_is_required() {
        let err = Template::new("t", json!({"Resources": {}})).unwrap_err();
        assert_eq!(err.problems.len(), 2);
        assert!(Template::new("t", json!([])).is_err());
    }

    #[test]
    fn hash_ignores_formatting_and_key_order() {
        let a: Value = serde_json::from_str(
            r#"{"AWSTemplateFormatVersion":"2010-09-09","Resources":{"A":{"Type":"X","Properties":{"b":1,"a":2}}}}"#,
        )
        .unwrap();
        let b: Value = serde_json::from_str(
            "{\n \"Resources\": {\"A\": {\"Properties\": {\"a\": 2, \"b\": 1}, \"Type\": \"X\"}},\n \"AWSTemplateFormatVersion\": \"2010-09-09\"}",
        )
        .unwrap();
        let (ta, tb) = (
            Template::new("a", a).unwrap(),
            Template::new("b", b).unwrap(),
        );
        assert_eq!(ta.hash(), tb.hash());
        assert_eq!(ta.canonical_json(), tb.canonical_json());
        assert_eq!(ta.hash().as_str().len(), 64);
        let c = minimal(json!({"A": {"Type": "X", "Properties": {"a": 3, "b": 1}}}));
        assert_ne!(Template::new("c", c).unwrap().hash(), ta.hash());
    }
}
