//! Rules that span fields, which a JSON Schema cannot express: uniqueness
//! across tenants, waves that exist, role ARNs in the right account, the
//! release this build ships, exclusive capabilities.
//!
//! The rules read the manifest as loose JSON, so they run even when the
//! schema check found problems elsewhere and every error is reported at once.
//! A rule skips a value that is missing or of the wrong type: the schema
//! check reports that one.

use std::collections::BTreeMap;

use serde_json::Value;
use stacks::ids::{AccountId, RoleArn};

use super::diagnostics::Finding;
use super::schema_check::closest;
use super::source::FieldPath;

/// Every cross-field problem in `manifest`, given the release this build ships.
pub fn check(manifest: &Value, shipped_release: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    let root = FieldPath::root();
    let str_at = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);

    let vendor_account = manifest
        .get("coordinator")
        .and_then(|c| str_at(c, "account_id"));
    if let (Some(vendor), Some(principal)) = (
        vendor_account.as_deref(),
        manifest
            .get("coordinator")
            .and_then(|c| str_at(c, "principal_arn")),
    ) && let Ok(arn) = principal.parse::<RoleArn>()
        && arn.account_id().as_str() != vendor
    {
        findings.push(
                    Finding::error(
                        root.key("coordinator").key("principal_arn"),
                        format!("principal_arn is in account {}, not the coordinator's account {vendor}", arn.account_id()),
                    )
                    .hint("the coordinator's own role lives in the vendor account: fix the ARN or remove it to use the default"),
                );
    }

    if let Some(version) = manifest.get("release").and_then(|r| str_at(r, "version"))
        && version.parse::<stacks::ids::ReleaseVersion>().is_ok()
        && version != shipped_release
    {
        findings.push(
                Finding::error(
                    root.key("release").key("version"),
                    format!("this coordinator ships release {shipped_release}, but the manifest asks for {version}"),
                )
                .hint(format!(
                    "run the coordinator build of release {version}, or set version = \"{shipped_release}\" to deploy this one"
                )),
            );
    }

    // The wave rules need a usable waves list; when it is missing or of the
    // wrong shape the schema check reports that, and blaming each tenant's
    // wave as well would only bury the real error.
    let waves: Option<Vec<String>> = manifest
        .get("rollout")
        .and_then(|r| r.get("waves"))
        .and_then(Value::as_array)
        .filter(|w| !w.is_empty() && w.iter().all(Value::is_string))
        .map(|w| {
            w.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        });
    let wave_check = waves.is_some();
    let waves = waves.unwrap_or_default();
    let tenants: Vec<&Value> = manifest
        .get("tenants")
        .and_then(Value::as_array)
        .map(|t| t.iter().collect())
        .unwrap_or_default();

    let mut ids: BTreeMap<String, usize> = BTreeMap::new();
    let mut external_ids: BTreeMap<String, usize> = BTreeMap::new();
    let mut accounts: BTreeMap<String, usize> = BTreeMap::new();
    let mut wave_sizes: BTreeMap<&str, usize> = waves.iter().map(|w| (w.as_str(), 0)).collect();

    for (i, tenant) in tenants.iter().enumerate() {
        let at = root.key("tenants").index(i);
        let id = str_at(tenant, "id");
        let name = id.clone().unwrap_or_else(|| format!("tenants[{i}]"));

        if let Some(id) = &id
            && let Some(first) = ids.insert(id.clone(), i)
        {
            ids.insert(id.clone(), first);
            findings.push(
                Finding::error(at.key("id"), format!("duplicate tenant id `{id}`")).hint(format!(
                    "tenant ids must be unique; `{id}` is already tenants[{first}]"
                )),
            );
        }

        if let Some(external_id) = str_at(tenant, "external_id")
            && let Some(first) = external_ids.insert(external_id.clone(), i)
        {
            external_ids.insert(external_id, first);
            findings.push(
                    Finding::error(
                        at.key("external_id"),
                        format!("tenant `{name}` reuses the ExternalId of tenants[{first}]"),
                    )
                    .hint(format!(
                        "each tenant needs its own ExternalId, or one customer's trust could be used against another's account (confused deputy); generate one with `coordinator tenant onboard {name}`"
                    )),
                );
        }

        let account = str_at(tenant, "account_id").filter(|a| a.parse::<AccountId>().is_ok());
        if let Some(account) = &account {
            if Some(account) == vendor_account.as_ref() {
                findings.push(
                    Finding::error(at.key("account_id"), format!("tenant `{name}` uses the vendor's own account {account}"))
                        .hint("stacks are deployed only into customer accounts; use the customer's account id"),
                );
            }
            if let Some(first) = accounts.insert(account.clone(), i) {
                accounts.insert(account.clone(), first);
                findings.push(
                    Finding::error(at.key("account_id"), format!("tenant `{name}` shares account {account} with tenants[{first}]"))
                        .hint("one AWS account serves one tenant: its bootstrap roles and stack names are per account"),
                );
            }
        }

        if let (Some(account), Some(role)) = (&account, str_at(tenant, "role_arn"))
            && let Ok(arn) = role.parse::<RoleArn>()
            && arn.account_id().as_str() != account
        {
            findings.push(
                        Finding::error(
                            at.key("role_arn"),
                            format!("role_arn is in account {}, but tenant `{name}` is account {account}", arn.account_id()),
                        )
                        .hint("the coordinator only assumes roles in the tenant's own account: fix the ARN, or remove it to use the bootstrap stack's deploy role"),
                    );
        }

        if let Some(wave) = str_at(tenant, "wave").filter(|_| wave_check) {
            match wave_sizes.get_mut(wave.as_str()) {
                Some(n) => *n += 1,
                None if wave.parse::<stacks::ids::WaveName>().is_ok() => {
                    let hint = match closest(&wave, &waves) {
                        Some(w) => format!(
                            "did you mean `{w}`? waves are declared in [rollout] waves: {}",
                            waves.join(", ")
                        ),
                        None => format!(
                            "add it to [rollout] waves or use one of: {}",
                            waves.join(", ")
                        ),
                    };
                    findings.push(
                        Finding::error(at.key("wave"), format!("unknown wave `{wave}`")).hint(hint),
                    );
                }
                None => {}
            }
        }

        let capabilities: Vec<&str> = tenant
            .get("capabilities")
            .and_then(Value::as_array)
            .map(|c| c.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if capabilities.contains(&"self_hosted") && capabilities.contains(&"dedicated_aws") {
            findings.push(
                Finding::error(at.key("capabilities"), format!("tenant `{name}` has both self_hosted and dedicated_aws"))
                    .hint("a tenant runs either the self-hosted distribution or the stacks in its AWS account; keep one"),
            );
        }
    }

    for (wave, count) in wave_sizes {
        if count == 0 && !tenants.is_empty() {
            let index = waves.iter().position(|w| w == wave).unwrap_or_default();
            findings.push(
                Finding::warning(
                    root.key("rollout").key("waves").index(index),
                    format!("wave `{wave}` has no tenants"),
                )
                .hint(
                    "a rollout passes through it with nothing to do; remove it or assign tenants",
                ),
            );
        }
    }
    // Overrides must name a declared wave.
    if let Some(overrides) = manifest
        .get("rollout")
        .and_then(|r| r.get("overrides"))
        .and_then(Value::as_object)
        .filter(|_| wave_check)
    {
        for name in overrides.keys() {
            if !waves.contains(name) {
                let hint = match closest(name, &waves) {
                    Some(w) => format!(
                        "did you mean `{w}`? overrides apply to the waves in [rollout] waves: {}",
                        waves.join(", ")
                    ),
                    None => format!(
                        "overrides apply to the waves in [rollout] waves: {}",
                        waves.join(", ")
                    ),
                };
                findings.push(
                    Finding::error(
                        root.key("rollout").key("overrides").key(name),
                        format!("override for unknown wave `{name}`"),
                    )
                    .hint(hint),
                );
            }
        }
    }
    if let Some(rollout) = manifest.get("rollout") {
        let at = root.key("rollout");
        let sections = std::iter::once((at.clone(), rollout)).chain(
            rollout
                .get("overrides")
                .and_then(Value::as_object)
                .into_iter()
                .flat_map(|o| o.iter())
                .map(|(k, v)| (at.key("overrides").key(k), v)),
        );
        for (at, section) in sections {
            if let Some(text) = section.get("bake_time").and_then(Value::as_str)
                && let Ok(bake) = text.parse::<super::duration::HumanDuration>()
                && bake.get() > std::time::Duration::from_secs(24 * 3600)
            {
                findings.push(
                    Finding::error(
                        at.key("bake_time"),
                        format!("bake_time {text} is longer than a day"),
                    )
                    .hint("use 0s (no bake) to 24h; 10m is the default"),
                );
            }
        }
    }
    if let Some(text) = manifest
        .get("heartbeat")
        .and_then(|h| h.get("interval"))
        .and_then(Value::as_str)
        && let Ok(interval) = text.parse::<super::duration::HumanDuration>()
        && !(std::time::Duration::from_secs(1)..=std::time::Duration::from_secs(3600))
            .contains(&interval.get())
    {
        findings.push(
            Finding::error(
                root.key("heartbeat").key("interval"),
                format!("heartbeat interval {text} is out of range"),
            )
            .hint("use 1s to 1h; 30s is the default"),
        );
    }
    // Token subjects name the actor of audit entries, and a hash names one
    // token: both must be unique.
    let tokens: Vec<&Value> = manifest
        .get("api")
        .and_then(|a| a.get("tokens"))
        .and_then(Value::as_array)
        .map(|t| t.iter().collect())
        .unwrap_or_default();
    let mut subjects: BTreeMap<&str, usize> = BTreeMap::new();
    let mut hashes: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, token) in tokens.iter().enumerate() {
        let at = root.key("api").key("tokens").index(i);
        if let Some(subject) = token.get("subject").and_then(Value::as_str)
            && let Some(first) = subjects.insert(subject, i)
        {
            subjects.insert(subject, first);
            findings.push(
                Finding::error(
                    at.key("subject"),
                    format!("duplicate token subject `{subject}`"),
                )
                .hint(format!(
                    "each token needs its own subject; `{subject}` is already api.tokens[{first}]"
                )),
            );
        }
        if let Some(hash) = token.get("sha256").and_then(Value::as_str)
            && let Some(first) = hashes.insert(hash, i)
        {
            hashes.insert(hash, first);
            findings.push(
                Finding::error(
                    at.key("sha256"),
                    format!("api.tokens[{i}] has the same hash as api.tokens[{first}]"),
                )
                .hint("make a separate token for each subject with `coordinator token new`"),
            );
        }
    }
    findings.extend(super::secrets::check(manifest));
    let no_tenants = manifest
        .get("tenants")
        .is_none_or(|t| t.as_array().is_some_and(Vec::is_empty));
    if no_tenants && manifest.is_object() {
        findings.push(
            Finding::warning(root, "the manifest lists no tenants").hint("add [[tenants]] entries"),
        );
    }
    findings
}
