//! Templates as the fake's CloudFormation reads them: parameter resolution
//! and constraints, required capabilities, intrinsic functions, physical
//! names of resources, outputs, and the resource diff of a change set.
//!
//! Physical names are deterministic: generated parts are derived from the
//! stack id and the logical id, so they are stable for the life of a stack
//! and differ between two stacks of the same name.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use stacks::Parameter;
use stacks::ids::{AccountId, Region};

use crate::aws::{ResourceChange, StackCapability};

/// Resource-name hops allowed while resolving a reference (a deeper chain is
/// taken for a cycle).
const MAX_HOPS: usize = 16;

/// Properties whose change replaces the resource, by type.
const REPLACING: &[(&str, &[&str])] = &[
    ("AWS::SQS::Queue", &["QueueName", "FifoQueue"]),
    ("AWS::S3::Bucket", &["BucketName"]),
    ("AWS::KMS::Key", &["KeySpec", "KeyUsage"]),
    ("AWS::KMS::Alias", &["AliasName"]),
    ("AWS::SecretsManager::Secret", &["Name"]),
    ("AWS::IAM::Role", &["RoleName", "Path"]),
    ("AWS::IAM::ManagedPolicy", &["ManagedPolicyName", "Path"]),
];

/// IAM resource types and the property that names them (empty: never named).
const IAM_TYPES: &[(&str, &str)] = &[
    ("AWS::IAM::Role", "RoleName"),
    ("AWS::IAM::ManagedPolicy", "ManagedPolicyName"),
    ("AWS::IAM::User", "UserName"),
    ("AWS::IAM::Group", "GroupName"),
    ("AWS::IAM::InstanceProfile", "InstanceProfileName"),
    ("AWS::IAM::Policy", ""),
    ("AWS::IAM::AccessKey", ""),
    ("AWS::IAM::UserToGroupAddition", ""),
];

/// Types whose attributes the fake knows; `Fn::GetAtt` of another attribute
/// of these is a template error, as in CloudFormation.
const KNOWN_TYPES: &[&str] = &[
    "AWS::SQS::Queue",
    "AWS::S3::Bucket",
    "AWS::KMS::Key",
    "AWS::KMS::Alias",
    "AWS::IAM::Role",
    "AWS::IAM::ManagedPolicy",
    "AWS::SecretsManager::Secret",
];

/// Parses and minimally checks a template body; errors are CloudFormation's
/// `ValidationError` messages.
pub(super) fn parse_template(body: &str) -> Result<Value, String> {
    let template: Value = serde_json::from_str(body)
        .map_err(|_| "Template format error: JSON not well-formed.".to_owned())?;
    let resources = template
        .get("Resources")
        .and_then(Value::as_object)
        .filter(|r| !r.is_empty())
        .ok_or("Template format error: At least one Resources member must be defined.")?;
    for (id, resource) in resources {
        if resource.get("Type").and_then(Value::as_str).is_none() {
            return Err(format!(
                "Template format error: [/Resources/{id}] Every Resources object must contain a Type member."
            ));
        }
    }
    Ok(template)
}

/// The `Resources` section (empty if absent).
pub(super) fn resources(template: &Value) -> impl Iterator<Item = (&String, &Value)> {
    template
        .get("Resources")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
}

/// The type of resource `logical` in `template`.
pub(super) fn resource_type<'a>(template: &'a Value, logical: &str) -> Option<&'a str> {
    template
        .get("Resources")?
        .get(logical)?
        .get("Type")?
        .as_str()
}

/// Parameter values after defaults, and the names of `NoEcho` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ResolvedParameters {
    pub values: BTreeMap<String, String>,
    pub no_echo: BTreeSet<String>,
}

/// Applies defaults and checks the declared constraints (`AllowedPattern`
/// is not checked: no regular expressions here).
pub(super) fn resolve_parameters(
    template: &Value,
    provided: &[Parameter],
) -> Result<ResolvedParameters, String> {
    let empty = Map::new();
    let declared = template
        .get("Parameters")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let unknown: Vec<&str> = provided
        .iter()
        .map(|p| p.parameter_key.as_str())
        .filter(|k| !declared.contains_key(*k))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "Parameters: [{}] do not exist in the template",
            unknown.join(", ")
        ));
    }
    let given: BTreeMap<&str, &str> = provided
        .iter()
        .map(|p| (p.parameter_key.as_str(), p.parameter_value.as_str()))
        .collect();
    let mut values = BTreeMap::new();
    let mut no_echo = BTreeSet::new();
    let mut missing = Vec::new();
    for (name, declaration) in declared {
        let value = given
            .get(name.as_str())
            .map(|v| (*v).to_owned())
            .or_else(|| declaration.get("Default").and_then(scalar));
        let Some(value) = value else {
            missing.push(name.as_str());
            continue;
        };
        check_constraints(name, declaration, &value)?;
        if declaration.get("NoEcho").is_some_and(is_true) {
            no_echo.insert(name.clone());
        }
        values.insert(name.clone(), value);
    }
    if !missing.is_empty() {
        return Err(format!(
            "Parameters: [{}] must have values",
            missing.join(", ")
        ));
    }
    Ok(ResolvedParameters { values, no_echo })
}

fn is_true(v: &Value) -> bool {
    v.as_bool() == Some(true) || v.as_str() == Some("true")
}

fn number(v: &Value) -> Option<f64> {
    v.as_f64().or_else(|| v.as_str()?.parse().ok())
}

fn check_constraints(name: &str, declaration: &Value, value: &str) -> Result<(), String> {
    let get = |key: &str| declaration.get(key);
    if get("Type").and_then(Value::as_str) == Some("Number") {
        let n: f64 = value
            .parse()
            .map_err(|_| format!("Parameter '{name}' must be a number."))?;
        if let Some(min) = get("MinValue").filter(|m| number(m).is_some_and(|m| n < m)) {
            return Err(format!(
                "Parameter '{name}' must be a number not less than {}",
                scalar(min).unwrap_or_default()
            ));
        }
        if let Some(max) = get("MaxValue").filter(|m| number(m).is_some_and(|m| n > m)) {
            return Err(format!(
                "Parameter '{name}' must be a number not greater than {}",
                scalar(max).unwrap_or_default()
            ));
        }
    }
    let length = value.chars().count() as f64;
    if let Some(min) = get("MinLength").filter(|m| number(m).is_some_and(|m| length < m)) {
        return Err(format!(
            "Parameter '{name}' must contain at least {} characters",
            scalar(min).unwrap_or_default()
        ));
    }
    if let Some(max) = get("MaxLength").filter(|m| number(m).is_some_and(|m| length > m)) {
        return Err(format!(
            "Parameter '{name}' must contain at most {} characters",
            scalar(max).unwrap_or_default()
        ));
    }
    if let Some(allowed) = get("AllowedValues").and_then(Value::as_array)
        && !allowed.iter().any(|a| scalar(a).as_deref() == Some(value))
    {
        return Err(format!("Parameter '{name}' must be one of AllowedValues"));
    }
    Ok(())
}

/// A string, number or boolean as CloudFormation stringifies it.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The capability the template needs to be deployed, if any.
pub(super) fn required_capability(template: &Value) -> Option<StackCapability> {
    let mut needed = None;
    for (_, resource) in resources(template) {
        let ty = resource
            .get("Type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Some((_, name_prop)) = IAM_TYPES.iter().find(|(t, _)| *t == ty) {
            let named = !name_prop.is_empty()
                && resource
                    .get("Properties")
                    .and_then(|p| p.get(*name_prop))
                    .is_some();
            if named {
                return Some(StackCapability::NamedIam);
            }
            needed = Some(StackCapability::Iam);
        }
    }
    needed
}

/// Deterministic characters from `alphabet` derived from `seed`.
pub(super) fn derived(seed: &str, alphabet: &[u8], n: usize) -> String {
    let mut out = String::with_capacity(n);
    let mut block = 0u32;
    while out.len() < n {
        let digest = Sha256::new()
            .chain_update(seed.as_bytes())
            .chain_update(block.to_be_bytes())
            .finalize();
        for byte in digest.iter().take(n - out.len()) {
            out.push(char::from(alphabet[usize::from(*byte) % alphabet.len()]));
        }
        block += 1;
    }
    out
}

/// Uppercase letters and digits.
pub(super) const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
/// Lowercase letters.
pub(super) const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const HEX: &[u8] = b"0123456789abcdef";

/// A UUID-shaped value derived from `seed`.
pub(super) fn uuid_like(seed: &str) -> String {
    let h = derived(seed, HEX, 32);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// `tail` after as much of `prefix` as fits in `max` characters.
fn fit(prefix: &str, tail: &str, max: usize) -> String {
    let room = max.saturating_sub(tail.len());
    let prefix: String = prefix.chars().take(room).collect();
    format!("{prefix}{tail}")
}

/// Evaluates a template in one stack: its account, region, name, id and
/// resolved parameters.
#[derive(Debug, Clone, Copy)]
pub(super) struct Scope<'a> {
    pub account: &'a AccountId,
    pub region: Region,
    pub stack_name: &'a str,
    pub stack_id: &'a str,
    pub template: &'a Value,
    pub parameters: &'a BTreeMap<String, String>,
}

impl Scope<'_> {
    /// Every output, evaluated. Also evaluates every resource's properties,
    /// so unresolved references anywhere fail here, as at CreateStack.
    pub fn check(&self) -> Result<BTreeMap<String, String>, String> {
        for (logical, _) in resources(self.template) {
            self.properties(logical)?;
        }
        self.outputs()
    }

    /// The physical names of the template's `AWS::SQS::Queue` resources.
    pub fn queue_names(&self) -> Result<BTreeSet<String>, String> {
        resources(self.template)
            .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some("AWS::SQS::Queue"))
            .map(|(logical, _)| self.queue_name(logical, 0))
            .collect()
    }

    /// The outputs, evaluated.
    pub fn outputs(&self) -> Result<BTreeMap<String, String>, String> {
        let mut outputs = BTreeMap::new();
        let declared = self.template.get("Outputs").and_then(Value::as_object);
        for (key, output) in declared.into_iter().flatten() {
            let value = output.get("Value").ok_or_else(|| {
                format!("Template format error: Every Outputs member must contain a Value object ({key})")
            })?;
            let value = self.eval(value, 0)?;
            let text = scalar(&value).ok_or_else(|| {
                format!("Template error: output {key} does not evaluate to a string")
            })?;
            outputs.insert(key.clone(), text);
        }
        Ok(outputs)
    }

    /// A resource's `Properties`, with every intrinsic function evaluated.
    pub fn properties(&self, logical: &str) -> Result<Value, String> {
        let properties = self.template["Resources"][logical].get("Properties");
        match properties {
            Some(p) => self.eval(p, 0),
            None => Ok(Value::Object(Map::new())),
        }
    }

    fn eval(&self, value: &Value, hops: usize) -> Result<Value, String> {
        if hops > MAX_HOPS {
            return Err("Template format error: Circular dependency between resources".into());
        }
        match value {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    let v = self.eval(item, hops)?;
                    if !v.is_null() {
                        out.push(v);
                    }
                }
                Ok(Value::Array(out))
            }
            Value::Object(map) if map.len() == 1 => {
                let (key, arg) = map.iter().next().expect("one entry");
                match key.as_str() {
                    "Ref" => {
                        let name = arg
                            .as_str()
                            .ok_or("Template format error: Ref takes a string")?;
                        self.reference(name, hops)
                    }
                    "Fn::GetAtt" => {
                        let (resource, attribute) = get_att_args(arg)?;
                        self.attribute(resource, attribute, hops).map(Value::String)
                    }
                    "Fn::Sub" => self.sub(arg, hops).map(Value::String),
                    "Fn::Join" => self.join(arg, hops).map(Value::String),
                    "Fn::Select" => self.select(arg, hops),
                    other if other.starts_with("Fn::") => Err(format!(
                        "Template error: the fake CloudFormation does not evaluate {other}"
                    )),
                    _ => self.eval_object(map, hops),
                }
            }
            Value::Object(map) => self.eval_object(map, hops),
            other => Ok(other.clone()),
        }
    }

    fn eval_object(&self, map: &Map<String, Value>, hops: usize) -> Result<Value, String> {
        let mut out = Map::new();
        for (k, v) in map {
            let v = self.eval(v, hops)?;
            if !v.is_null() {
                out.insert(k.clone(), v);
            }
        }
        Ok(Value::Object(out))
    }

    fn string(&self, value: &Value, hops: usize, what: &str) -> Result<String, String> {
        let v = self.eval(value, hops)?;
        scalar(&v).ok_or_else(|| format!("Template error: {what} does not resolve to a string"))
    }

    fn reference(&self, name: &str, hops: usize) -> Result<Value, String> {
        let s = |v: &str| Ok(Value::String(v.to_owned()));
        match name {
            "AWS::StackName" => s(self.stack_name),
            "AWS::StackId" => s(self.stack_id),
            "AWS::Region" => s(self.region.as_str()),
            "AWS::AccountId" => s(self.account.as_str()),
            "AWS::Partition" => s("aws"),
            "AWS::URLSuffix" => s("amazonaws.com"),
            "AWS::NoValue" => Ok(Value::Null),
            "AWS::NotificationARNs" => Ok(Value::Array(Vec::new())),
            _ => {
                if let Some(value) = self.parameters.get(name) {
                    return s(value);
                }
                if resource_type(self.template, name).is_some() {
                    return self.resource_ref(name, hops + 1).map(Value::String);
                }
                Err(format!(
                    "Template format error: Unresolved resource dependencies [{name}] in the Resources block of the template"
                ))
            }
        }
    }

    fn ty(&self, logical: &str) -> Result<&str, String> {
        resource_type(self.template, logical).ok_or_else(|| {
            format!(
                "Template error: instance of Fn::GetAtt references undefined resource {logical}"
            )
        })
    }

    /// `Ref` of a resource.
    fn resource_ref(&self, logical: &str, hops: usize) -> Result<String, String> {
        let (account, region) = (self.account, self.region);
        Ok(match self.ty(logical)? {
            "AWS::SQS::Queue" => {
                let name = self.queue_name(logical, hops)?;
                format!("https://sqs.{region}.amazonaws.com/{account}/{name}")
            }
            "AWS::S3::Bucket" => self.bucket_name(logical, hops)?,
            "AWS::KMS::Key" => self.key_id(logical),
            "AWS::KMS::Alias" => self
                .prop(logical, "AliasName", hops)?
                .unwrap_or_else(|| format!("alias/{}", self.generated(logical, 64))),
            "AWS::IAM::Role" => self.named(logical, "RoleName", 64, hops)?,
            "AWS::IAM::ManagedPolicy" => self.policy_arn(logical, hops)?,
            "AWS::SecretsManager::Secret" => self.secret_arn(logical, hops)?,
            _ => self.generated(logical, 128),
        })
    }

    /// `Fn::GetAtt` of a resource.
    fn attribute(&self, logical: &str, attribute: &str, hops: usize) -> Result<String, String> {
        let hops = hops + 1;
        let (account, region) = (self.account, self.region);
        let ty = self.ty(logical)?;
        let value = match (ty, attribute) {
            ("AWS::SQS::Queue", "Arn") => {
                let name = self.queue_name(logical, hops)?;
                format!("arn:aws:sqs:{region}:{account}:{name}")
            }
            ("AWS::SQS::Queue", "QueueName") => self.queue_name(logical, hops)?,
            ("AWS::SQS::Queue", "QueueUrl") => self.resource_ref(logical, hops)?,
            ("AWS::S3::Bucket", "Arn") => {
                format!("arn:aws:s3:::{}", self.bucket_name(logical, hops)?)
            }
            ("AWS::S3::Bucket", "DomainName") => {
                format!("{}.s3.amazonaws.com", self.bucket_name(logical, hops)?)
            }
            ("AWS::S3::Bucket", "RegionalDomainName") => {
                format!(
                    "{}.s3.{region}.amazonaws.com",
                    self.bucket_name(logical, hops)?
                )
            }
            ("AWS::KMS::Key", "Arn") => {
                format!(
                    "arn:aws:kms:{region}:{account}:key/{}",
                    self.key_id(logical)
                )
            }
            ("AWS::KMS::Key", "KeyId") => self.key_id(logical),
            ("AWS::IAM::Role", "Arn") => {
                let path = self
                    .prop(logical, "Path", hops)?
                    .unwrap_or_else(|| "/".into());
                let name = self.named(logical, "RoleName", 64, hops)?;
                format!("arn:aws:iam::{account}:role{path}{name}")
            }
            ("AWS::IAM::Role", "RoleId") => {
                format!(
                    "AROA{}",
                    derived(&format!("{}/{logical}/id", self.stack_id), UPPER, 17)
                )
            }
            ("AWS::IAM::ManagedPolicy", "PolicyArn") => self.policy_arn(logical, hops)?,
            ("AWS::SecretsManager::Secret", "Id") => self.secret_arn(logical, hops)?,
            (ty, _) if KNOWN_TYPES.contains(&ty) => {
                return Err(format!(
                    "Template error: resource {logical} does not support attribute type {attribute} in Fn::GetAtt"
                ));
            }
            (ty, "Arn") => {
                let service = ty.split("::").nth(1).unwrap_or("unknown").to_lowercase();
                format!(
                    "arn:aws:{service}:{region}:{account}:{}",
                    self.generated(logical, 128)
                )
            }
            (_, attribute) => format!("{}-{attribute}", self.generated(logical, 128)),
        };
        Ok(value)
    }

    /// A property of a resource evaluated to a string; `None` when absent.
    fn prop(&self, logical: &str, name: &str, hops: usize) -> Result<Option<String>, String> {
        let Some(value) = self.template["Resources"][logical]
            .get("Properties")
            .and_then(|p| p.get(name))
        else {
            return Ok(None);
        };
        let value = self.eval(value, hops)?;
        if value.is_null() {
            return Ok(None);
        }
        scalar(&value)
            .map(Some)
            .ok_or_else(|| format!("Template error: {logical}.{name} does not resolve to a string"))
    }

    /// `<stack>-<logical>-<12 uppercase>`, cut to `max` characters.
    fn generated(&self, logical: &str, max: usize) -> String {
        let suffix = derived(&format!("{}/{logical}", self.stack_id), UPPER, 12);
        fit(
            &format!("{}-{logical}", self.stack_name),
            &format!("-{suffix}"),
            max,
        )
    }

    /// The name from `property`, or a generated one.
    fn named(
        &self,
        logical: &str,
        property: &str,
        max: usize,
        hops: usize,
    ) -> Result<String, String> {
        Ok(match self.prop(logical, property, hops)? {
            Some(name) => name,
            None => self.generated(logical, max),
        })
    }

    fn queue_name(&self, logical: &str, hops: usize) -> Result<String, String> {
        if let Some(name) = self.prop(logical, "QueueName", hops)? {
            return Ok(name);
        }
        let fifo = self.prop(logical, "FifoQueue", hops)?.as_deref() == Some("true");
        Ok(if fifo {
            format!("{}.fifo", self.generated(logical, 75))
        } else {
            self.generated(logical, 80)
        })
    }

    fn bucket_name(&self, logical: &str, hops: usize) -> Result<String, String> {
        if let Some(name) = self.prop(logical, "BucketName", hops)? {
            return Ok(name);
        }
        let suffix = derived(&format!("{}/{logical}", self.stack_id), LOWER, 6);
        let prefix = format!("{}-{}", self.stack_name, logical).to_lowercase();
        Ok(fit(&prefix, &format!("-{suffix}"), 63))
    }

    fn key_id(&self, logical: &str) -> String {
        uuid_like(&format!("{}/{logical}/key", self.stack_id))
    }

    fn policy_arn(&self, logical: &str, hops: usize) -> Result<String, String> {
        let path = self
            .prop(logical, "Path", hops)?
            .unwrap_or_else(|| "/".into());
        let name = self.named(logical, "ManagedPolicyName", 128, hops)?;
        Ok(format!("arn:aws:iam::{}:policy{path}{name}", self.account))
    }

    fn secret_arn(&self, logical: &str, hops: usize) -> Result<String, String> {
        let name = match self.prop(logical, "Name", hops)? {
            Some(name) => name,
            None => fit(
                logical,
                &format!(
                    "-{}",
                    derived(&format!("{}/{logical}", self.stack_id), UPPER, 12)
                ),
                256,
            ),
        };
        let suffix = derived(&format!("{}/{logical}/secret", self.stack_id), LOWER, 6);
        Ok(format!(
            "arn:aws:secretsmanager:{}:{}:secret:{name}-{suffix}",
            self.region, self.account
        ))
    }

    fn sub(&self, arg: &Value, hops: usize) -> Result<String, String> {
        let (text, vars) = match arg {
            Value::String(text) => (text.as_str(), None),
            Value::Array(items) => match items.as_slice() {
                [Value::String(text), Value::Object(vars)] => (text.as_str(), Some(vars)),
                _ => return Err("Template error: Fn::Sub takes a string or [string, map]".into()),
            },
            _ => return Err("Template error: Fn::Sub takes a string or [string, map]".into()),
        };
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or("Template error: unterminated ${ in Fn::Sub")?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(value) = vars.and_then(|v| v.get(name)) {
                out.push_str(&self.string(value, hops, name)?);
            } else if let Some((resource, attribute)) = name.split_once('.') {
                out.push_str(&self.attribute(resource, attribute, hops)?);
            } else {
                let v = self.reference(name, hops)?;
                out.push_str(&scalar(&v).ok_or_else(|| {
                    format!("Template error: variable {name} in Fn::Sub is not a string")
                })?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn join(&self, arg: &Value, hops: usize) -> Result<String, String> {
        let bad = || "Template error: Fn::Join takes [delimiter, [values]]".to_owned();
        let [Value::String(delimiter), list] = arg.as_array().ok_or_else(bad)?.as_slice() else {
            return Err(bad());
        };
        let list = self.eval(list, hops)?;
        let items = list.as_array().ok_or_else(bad)?;
        let parts: Option<Vec<String>> = items.iter().map(scalar).collect();
        Ok(parts.ok_or_else(bad)?.join(delimiter))
    }

    fn select(&self, arg: &Value, hops: usize) -> Result<Value, String> {
        let bad = || "Template error: Fn::Select takes [index, [values]]".to_owned();
        let [index, list] = arg.as_array().ok_or_else(bad)?.as_slice() else {
            return Err(bad());
        };
        let index = self.eval(index, hops)?;
        let index: usize = scalar(&index)
            .and_then(|i| i.parse().ok())
            .ok_or_else(bad)?;
        let list = self.eval(list, hops)?;
        list.as_array()
            .and_then(|l| l.get(index))
            .cloned()
            .ok_or_else(|| "Template error: Fn::Select index out of range".into())
    }
}

fn get_att_args(arg: &Value) -> Result<(&str, &str), String> {
    let bad = || "Template error: Fn::GetAtt takes [resource, attribute]".to_owned();
    match arg {
        Value::String(s) => s.split_once('.').ok_or_else(bad),
        Value::Array(items) => match items.as_slice() {
            [Value::String(r), Value::String(a)] => Ok((r.as_str(), a.as_str())),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

/// The resource changes from `old` to `new` (both scopes of the same stack):
/// added, removed, and modified resources whose evaluated properties differ,
/// with `replacement` "True" when a replacing property changed. A changed
/// resource type is an error, as in CloudFormation.
pub(super) fn diff(old: &Scope<'_>, new: &Scope<'_>) -> Result<Vec<ResourceChange>, String> {
    let mut changes = Vec::new();
    for (logical, resource) in resources(new.template) {
        let ty = resource["Type"].as_str().unwrap_or_default();
        let change = |action: &str, replacement: Option<&str>| ResourceChange {
            action: action.to_owned(),
            logical_id: logical.clone(),
            resource_type: ty.to_owned(),
            replacement: replacement.map(str::to_owned),
        };
        let Some(old_ty) = resource_type(old.template, logical) else {
            changes.push(change("Add", None));
            continue;
        };
        if old_ty != ty {
            return Err(format!(
                "Update of resource type is not permitted. The new template modifies resource type of the following resources: [{logical}]"
            ));
        }
        let (before, after) = (old.properties(logical)?, new.properties(logical)?);
        if before == after {
            continue;
        }
        let empty = Map::new();
        let before = before.as_object().unwrap_or(&empty);
        let after = after.as_object().unwrap_or(&empty);
        let changed: BTreeSet<&String> = before
            .keys()
            .chain(after.keys())
            .filter(|k| before.get(*k) != after.get(*k))
            .collect();
        let replacing = REPLACING
            .iter()
            .find(|(t, _)| *t == ty)
            .map(|(_, props)| *props)
            .unwrap_or_default();
        let replaced = changed.iter().any(|k| replacing.contains(&k.as_str()));
        changes.push(change(
            "Modify",
            Some(if replaced { "True" } else { "False" }),
        ));
    }
    for (logical, resource) in resources(old.template) {
        if resource_type(new.template, logical).is_none() {
            changes.push(ResourceChange {
                action: "Remove".into(),
                logical_id: logical.clone(),
                resource_type: resource["Type"].as_str().unwrap_or_default().to_owned(),
                replacement: None,
            });
        }
    }
    changes.sort_by(|a, b| a.logical_id.cmp(&b.logical_id));
    Ok(changes)
}
