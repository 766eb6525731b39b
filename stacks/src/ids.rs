//! Validated identifiers shared by the stacks and the coordinator.
//!
//! Every identifier that crosses a module boundary is a newtype that can only
//! be built through its validating constructor (`FromStr`/`TryFrom<String>`),
//! so code that holds an `AccountId` never re-checks it. Each type also
//! describes itself as a JSON Schema whose `pattern` matches exactly what the
//! constructor accepts (a unit test keeps the two in step), which is how the
//! manifest's schema and the code cannot disagree.
//!
//! This module must never depend on the AWS SDK or do I/O.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// Why a string is not a valid identifier of some kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {kind}: {expected}")]
pub struct InvalidId {
    /// What kind of identifier was expected ("AWS account id", ...).
    pub kind: &'static str,
    /// The rejected input.
    pub value: String,
    /// What a valid value looks like, in words.
    pub expected: &'static str,
}

/// Declares a string newtype with a validating constructor, serde via
/// `TryFrom<String>`, `Display`, and a JSON Schema carrying `pattern`.
macro_rules! string_id {
    (@debug $name:ident) => {
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
    (@debug $name:ident redacted) => {
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}(<redacted, {} chars>)", stringify!($name), self.0.len())
            }
        }
    };
    (
        $(#[$meta:meta])*
        $name:ident, kind = $kind:literal, pattern = $pattern:literal,
        expected = $expected:literal, max_len = $max:expr, check = $check:expr
        $(, debug = $redact:ident)?
    ) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The regular expression (JSON Schema dialect) a valid value matches.
            pub const PATTERN: &'static str = $pattern;
            /// What a valid value looks like, in words.
            pub const EXPECTED: &'static str = $expected;

            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                let check: fn(&str) -> bool = $check;
                if !s.is_empty() && s.len() <= $max && check(s) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(InvalidId { kind: $kind, value: s.to_owned(), expected: $expected })
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(s: String) -> Result<Self, InvalidId> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        string_id!(@debug $name $($redact)?);

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({
                    "type": "string",
                    "pattern": $pattern,
                    "maxLength": $max,
                    "description": $expected,
                })
            }
        }
    };
}

fn is_lower_alnum_or_dash(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
}

string_id!(
    /// A tenant (customer) id: lowercase letters, digits and dashes, starting
    /// with a letter. It appears in tags, resource names and URLs.
    TenantId,
    kind = "tenant id",
    pattern = "^[a-z][a-z0-9-]{0,31}$",
    expected = "1 to 32 lowercase letters, digits or dashes, starting with a letter",
    max_len = 32,
    check = |s| s.starts_with(|c: char| c.is_ascii_lowercase()) && s.chars().all(is_lower_alnum_or_dash)
);

string_id!(
    /// A 12-digit AWS account id.
    AccountId,
    kind = "AWS account id",
    pattern = "^[0-9]{12}$",
    expected = "exactly 12 digits",
    max_len = 12,
    check = |s| s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
);

string_id!(
    /// The `sts:ExternalId` a tenant's deploy role requires. Vendor-generated,
    /// unique per tenant, at least 32 characters from the set AWS allows.
    /// Not a secret by AWS's definition, but never logged needlessly.
    ExternalId,
    kind = "ExternalId",
    pattern = "^[A-Za-z0-9+=,.@:/_-]{32,1224}$",
    expected = "32 to 1224 characters from A-Z a-z 0-9 + = , . @ : / _ - (generate one with `coordinator tenant onboard`)",
    max_len = 1224,
    check = |s| s.len() >= 32 && s.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@:/_-".contains(c)),
    debug = redacted
);

string_id!(
    /// The name of a rollout wave, as listed in `[rollout] waves`.
    WaveName,
    kind = "wave name",
    pattern = "^[a-z][a-z0-9_-]{0,31}$",
    expected = "1 to 32 lowercase letters, digits, `_` or `-`, starting with a letter",
    max_len = 32,
    check = |s| s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars().all(|c| is_lower_alnum_or_dash(c) || c == '_')
);

string_id!(
    /// A release version in calendar form: `YYYY.MM.N`.
    ReleaseVersion,
    kind = "release version",
    pattern = "^[0-9]{4}\\.[0-9]{1,2}\\.[0-9]{1,4}$",
    expected = "a calendar version YYYY.MM.N, e.g. 2026.11.0",
    max_len = 12,
    check = |s| {
        let parts: Vec<&str> = s.split('.').collect();
        parts.len() == 3
            && parts[0].len() == 4
            && (1..=2).contains(&parts[1].len())
            && (1..=4).contains(&parts[2].len())
            && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_digit()))
    }
);

string_id!(
    /// An IAM role ARN: `arn:<partition>:iam::<12 digits>:role/<path/name>`.
    RoleArn,
    kind = "IAM role ARN",
    pattern = "^arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$",
    expected = "an IAM role ARN like arn:aws:iam::222222222222:role/docproc-coordinator-deploy",
    max_len = 600,
    check = |s| parse_role_arn(s).is_some()
);

/// Splits a role ARN into (partition, account, role path and name).
fn parse_role_arn(s: &str) -> Option<(&str, &str, &str)> {
    let rest = s.strip_prefix("arn:")?;
    let (partition, rest) = rest.split_once(':')?;
    if !matches!(partition, "aws" | "aws-cn" | "aws-us-gov") {
        return None;
    }
    let rest = rest.strip_prefix("iam::")?;
    let (account, rest) = rest.split_once(':')?;
    let name = rest.strip_prefix("role/")?;
    let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    let name_ok = !name.is_empty()
        && name.len() <= 512
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_/-".contains(c));
    (account_ok && name_ok).then_some((partition, account, name))
}

impl RoleArn {
    /// The role ARN for `name` in `account` in the standard partition.
    pub fn for_role(account: &AccountId, name: &str) -> Result<Self, InvalidId> {
        format!("arn:aws:iam::{account}:role/{name}").parse()
    }

    /// The account the role lives in.
    pub fn account_id(&self) -> AccountId {
        let (_, account, _) = parse_role_arn(&self.0).expect("validated at construction");
        AccountId(account.to_owned())
    }
}

/// An AWS region this release supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[allow(missing_docs)]
pub enum Region {
    UsEast1,
    UsEast2,
    UsWest1,
    UsWest2,
    CaCentral1,
    EuWest1,
    EuWest2,
    EuWest3,
    EuCentral1,
    EuCentral2,
    EuNorth1,
    EuSouth1,
    EuSouth2,
    ApSoutheast1,
    ApSoutheast2,
    ApNortheast1,
    ApNortheast2,
    ApNortheast3,
    ApSouth1,
    SaEast1,
    MeCentral1,
    AfSouth1,
}

impl Region {
    /// Every supported region, in declaration order.
    pub const ALL: &'static [Region] = &[
        Region::UsEast1,
        Region::UsEast2,
        Region::UsWest1,
        Region::UsWest2,
        Region::CaCentral1,
        Region::EuWest1,
        Region::EuWest2,
        Region::EuWest3,
        Region::EuCentral1,
        Region::EuCentral2,
        Region::EuNorth1,
        Region::EuSouth1,
        Region::EuSouth2,
        Region::ApSoutheast1,
        Region::ApSoutheast2,
        Region::ApNortheast1,
        Region::ApNortheast2,
        Region::ApNortheast3,
        Region::ApSouth1,
        Region::SaEast1,
        Region::MeCentral1,
        Region::AfSouth1,
    ];

    /// The region code, e.g. `eu-west-1`.
    pub fn as_str(self) -> &'static str {
        match self {
            Region::UsEast1 => "us-east-1",
            Region::UsEast2 => "us-east-2",
            Region::UsWest1 => "us-west-1",
            Region::UsWest2 => "us-west-2",
            Region::CaCentral1 => "ca-central-1",
            Region::EuWest1 => "eu-west-1",
            Region::EuWest2 => "eu-west-2",
            Region::EuWest3 => "eu-west-3",
            Region::EuCentral1 => "eu-central-1",
            Region::EuCentral2 => "eu-central-2",
            Region::EuNorth1 => "eu-north-1",
            Region::EuSouth1 => "eu-south-1",
            Region::EuSouth2 => "eu-south-2",
            Region::ApSoutheast1 => "ap-southeast-1",
            Region::ApSoutheast2 => "ap-southeast-2",
            Region::ApNortheast1 => "ap-northeast-1",
            Region::ApNortheast2 => "ap-northeast-2",
            Region::ApNortheast3 => "ap-northeast-3",
            Region::ApSouth1 => "ap-south-1",
            Region::SaEast1 => "sa-east-1",
            Region::MeCentral1 => "me-central-1",
            Region::AfSouth1 => "af-south-1",
        }
    }
}

impl FromStr for Region {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, InvalidId> {
        Region::ALL
            .iter()
            .copied()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| InvalidId {
                kind: "AWS region",
                value: s.to_owned(),
                expected: "a supported AWS region code such as us-east-1 or eu-west-1",
            })
    }
}

impl Serialize for Region {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Region {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Region {
    fn schema_name() -> Cow<'static, str> {
        "Region".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let codes: Vec<&str> = Region::ALL.iter().map(|r| r.as_str()).collect();
        json_schema!({
            "type": "string",
            "enum": codes,
            "description": "a supported AWS region code, e.g. eu-west-1",
        })
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A tenant entitlement. Operations that need one check it and refuse
/// explicitly when the tenant lacks it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Documents live in a bucket the customer controls.
    CustomerStorage,
    /// The customer brings its own LLM provider keys.
    ByoAiKeys,
    /// The vendor's stacks are deployed into the customer's AWS account.
    DedicatedAws,
    /// The customer runs the self-hosted (Docker) distribution.
    SelfHosted,
}

impl Capability {
    /// Every capability.
    pub const ALL: &'static [Capability] = &[
        Capability::CustomerStorage,
        Capability::ByoAiKeys,
        Capability::DedicatedAws,
        Capability::SelfHosted,
    ];

    /// The capability's name as written in `deploy.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::CustomerStorage => "customer_storage",
            Capability::ByoAiKeys => "byo_ai_keys",
            Capability::DedicatedAws => "dedicated_aws",
            Capability::SelfHosted => "self_hosted",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids() {
        assert!("222222222222".parse::<AccountId>().is_ok());
        for bad in [
            "",
            "22222222222",
            "2222222222222",
            "22222222222a",
            " 222222222222",
        ] {
            let err = bad.parse::<AccountId>().unwrap_err();
            assert_eq!(err.kind, "AWS account id");
        }
    }

    #[test]
    fn role_arns_know_their_account() {
        let arn: RoleArn = "arn:aws:iam::222222222222:role/path/deploy"
            .parse()
            .unwrap();
        assert_eq!(arn.account_id().as_str(), "222222222222");
        for bad in [
            "arn:aws:iam::22222222222:role/x",
            "arn:aws:iam::222222222222:user/x",
            "arn:aws:s3:::bucket",
            "arn:aws:iam::222222222222:role/",
            "arn:aws:iam::222222222222:role/a b",
            "arn:other:iam::222222222222:role/x",
        ] {
            assert!(bad.parse::<RoleArn>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn tenant_ids_and_waves() {
        assert!("acme-corp-2".parse::<TenantId>().is_ok());
        for bad in ["", "Acme", "1acme", "acme_corp", "a".repeat(33).as_str()] {
            assert!(bad.parse::<TenantId>().is_err(), "{bad} accepted");
        }
        assert!("general_2".parse::<WaveName>().is_ok());
        assert!("General".parse::<WaveName>().is_err());
    }

    #[test]
    fn external_ids_are_redacted_in_debug() {
        let id: ExternalId = "s3cr3t-looking-value-0123456789abcdef".parse().unwrap();
        let debug = format!("{id:?}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
        let err = "short".parse::<ExternalId>().unwrap_err();
        assert_eq!(err.kind, "ExternalId");
    }

    #[test]
    fn external_ids() {
        assert!("a".repeat(32).parse::<ExternalId>().is_ok());
        assert!("a".repeat(31).parse::<ExternalId>().is_err());
        assert!(
            format!("{}\"", "a".repeat(32))
                .parse::<ExternalId>()
                .is_err()
        );
    }

    #[test]
    fn release_versions() {
        assert!("2026.11.0".parse::<ReleaseVersion>().is_ok());
        for bad in [
            "2026.11",
            "26.11.0",
            "2026.111.0",
            "2026.11.x",
            "2026.11.0.1",
        ] {
            assert!(bad.parse::<ReleaseVersion>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn regions_round_trip() {
        for r in Region::ALL {
            assert_eq!(r.as_str().parse::<Region>().unwrap(), *r);
            let json = serde_json::to_string(r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.as_str()));
        }
        assert!("eu-west-9".parse::<Region>().is_err());
    }
}
