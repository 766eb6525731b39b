//! The LLM probe's judgement, once the provider has listed its models: is
//! the configured model among them, and, when the tenant's documents are
//! sent as images, does it read them (Bedrock's own word when it gives one,
//! else the table in [`super::models`]). Pure, so every case is a unit test.
//!
//! What this module must never do: call anything, or pass a model whose
//! vision is unknown when vision is required (fail closed).

use stacks::ids::TenantId;

use super::models::{self, bedrock_base_id};
use super::{Listed, failures};
use crate::privacy::Provider;
use crate::privacy::config::Byok;
use crate::probes::Finding;

/// Judges `listed` (what the provider offers the key) against `byok`.
pub(super) fn judge(tenant: &TenantId, byok: &Byok, listed: &[Listed]) -> Finding {
    let provider = byok.provider;
    let Some(found) = find(provider, &byok.model, listed) else {
        return Finding::Fail(failures::unknown_model(
            tenant,
            provider,
            &byok.model,
            &suggestions(provider, listed, byok.vision),
        ));
    };
    let resolved = if found.id == byok.model {
        String::new()
    } else {
        format!(" (as `{}`)", found.id)
    };
    let reads_images = found
        .reads_images
        .or_else(|| models::lookup(provider, &found.id).map(|spec| spec.vision));
    let seen = format!("{} models visible to the key", listed.len());
    let model = &byok.model;
    if !byok.vision {
        let note = if models::lookup(provider, &found.id).is_none() {
            "; not in the supported-models table, which only matters for images"
        } else {
            ""
        };
        return Finding::Pass(Some(format!(
            "{provider} model `{model}`{resolved} is available; documents are sent as text{note}; {seen}"
        )));
    }
    match reads_images {
        Some(true) => Finding::Pass(Some(format!(
            "{provider} model `{model}`{resolved} is available and reads images; {seen}"
        ))),
        Some(false) => Finding::Fail(failures::model_without_vision(
            tenant,
            provider,
            model,
            &vision_models(provider, listed),
        )),
        None => Finding::Fail(failures::unsupported_model(
            tenant,
            provider,
            model,
            &vision_models(provider, listed),
        )),
    }
}

/// The listed model `configured` names: the same id; for Anthropic an
/// alias (`claude-sonnet-4-5`, `claude-3-5-sonnet-latest`) resolves to its
/// newest dated snapshot; for Bedrock an inference profile
/// (`eu.anthropic...`) to its model.
fn find<'a>(provider: Provider, configured: &str, listed: &'a [Listed]) -> Option<&'a Listed> {
    if let Some(exact) = listed.iter().find(|m| m.id == configured) {
        return Some(exact);
    }
    match provider {
        Provider::Anthropic => {
            let stem = configured.strip_suffix("-latest").unwrap_or(configured);
            listed
                .iter()
                .filter(|m| {
                    m.id.strip_prefix(stem)
                        .and_then(|rest| rest.strip_prefix('-'))
                        .is_some_and(|date| {
                            date.len() == 8 && date.chars().all(|c| c.is_ascii_digit())
                        })
                })
                .max_by(|a, b| a.id.cmp(&b.id))
        }
        Provider::Bedrock => {
            let base = bedrock_base_id(configured);
            listed.iter().find(|m| m.id == base)
        }
        Provider::OpenaiCompatible => None,
    }
}

/// Whether a listed model reads images, as far as anyone knows.
fn reads_images(provider: Provider, model: &Listed) -> bool {
    model
        .reads_images
        .or_else(|| models::lookup(provider, &model.id).map(|s| s.vision))
        .unwrap_or(false)
}

/// Listed models that read images, supported ones first.
fn vision_models(provider: Provider, listed: &[Listed]) -> Vec<String> {
    let mut ids: Vec<(bool, String)> = listed
        .iter()
        .filter(|m| reads_images(provider, m))
        .map(|m| (models::lookup(provider, &m.id).is_none(), m.id.clone()))
        .collect();
    ids.sort();
    ids.dedup();
    ids.into_iter().map(|(_, id)| id).collect()
}

/// Models to suggest instead of an unknown one: those that would pass
/// first (supported, and reading images when needed), then the rest.
fn suggestions(provider: Provider, listed: &[Listed], vision: bool) -> Vec<String> {
    let mut ids: Vec<(u8, String)> = listed
        .iter()
        .map(|m| {
            let supported = models::lookup(provider, &m.id).is_some();
            let fits = supported && (!vision || reads_images(provider, m));
            let rank = match (fits, supported) {
                (true, _) => 0,
                (false, true) => 1,
                (false, false) => 2,
            };
            (rank, m.id.clone())
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids.into_iter().map(|(_, id)| id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::ProbeError;

    fn byok(provider: Provider, model: &str, vision: bool) -> Byok {
        Byok {
            provider,
            model: model.into(),
            base_url: None,
            key: None,
            vision,
        }
    }

    fn listed(ids: &[&str]) -> Vec<Listed> {
        ids.iter().map(|id| Listed::new(*id)).collect()
    }

    fn fail(finding: Finding) -> ProbeError {
        match finding {
            Finding::Fail(e) => e,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    fn tenant() -> TenantId {
        "acme".parse().unwrap()
    }

    #[test]
    fn a_listed_vision_model_passes_with_the_model_in_the_detail() {
        let f = judge(
            &tenant(),
            &byok(Provider::OpenaiCompatible, "gpt-4o", true),
            &listed(&["gpt-4o", "gpt-3.5-turbo"]),
        );
        let Finding::Pass(Some(detail)) = f else {
            panic!("{f:?}")
        };
        assert!(
            detail.contains("`gpt-4o`") && detail.contains("reads images"),
            "{detail}"
        );
    }

    #[test]
    fn anthropic_aliases_resolve_to_the_newest_snapshot() {
        let models = listed(&[
            "claude-sonnet-4-5-20250929",
            "claude-3-5-sonnet-20240620",
            "claude-3-5-sonnet-20241022",
        ]);
        for alias in ["claude-sonnet-4-5", "claude-3-5-sonnet-latest"] {
            let f = judge(&tenant(), &byok(Provider::Anthropic, alias, true), &models);
            assert!(matches!(f, Finding::Pass(_)), "{alias}: {f:?}");
        }
        let Finding::Pass(Some(d)) = judge(
            &tenant(),
            &byok(Provider::Anthropic, "claude-3-5-sonnet-latest", true),
            &models,
        ) else {
            panic!()
        };
        assert!(d.contains("claude-3-5-sonnet-20241022"), "{d}");
        // The alias of another family does not match.
        let f = judge(
            &tenant(),
            &byok(Provider::Anthropic, "claude-sonnet-4", true),
            &models,
        );
        assert_eq!(fail(f).code, failures::UNKNOWN_MODEL);
    }

    #[test]
    fn unknown_models_suggest_models_that_would_pass() {
        let e = fail(judge(
            &tenant(),
            &byok(Provider::OpenaiCompatible, "gpt-4-omni", true),
            &listed(&["whisper-1", "gpt-3.5-turbo", "gpt-4o-mini", "gpt-4o"]),
        ));
        assert_eq!(e.code, failures::UNKNOWN_MODEL);
        let first = e.remedy.find("`gpt-4o`").unwrap();
        assert!(
            first < e.remedy.find("`gpt-3.5-turbo`").unwrap(),
            "{}",
            e.remedy
        );
        assert!(e.remedy.find("`gpt-3.5-turbo`").unwrap() < e.remedy.find("`whisper-1`").unwrap());
        assert!(e.message.contains("`gpt-4-omni`"), "{}", e.message);
    }

    #[test]
    fn vision_comes_from_bedrock_when_it_says_and_from_the_table_otherwise() {
        let bedrock = vec![
            Listed {
                id: "acme.new-model-v1:0".into(),
                reads_images: Some(true),
            },
            Listed {
                id: "amazon.nova-pro-v1:0".into(),
                reads_images: Some(false),
            },
        ];
        // The API wins over the table, both ways.
        let f = judge(
            &tenant(),
            &byok(Provider::Bedrock, "acme.new-model-v1:0", true),
            &bedrock,
        );
        assert!(matches!(f, Finding::Pass(_)), "{f:?}");
        let e = fail(judge(
            &tenant(),
            &byok(Provider::Bedrock, "amazon.nova-pro-v1:0", true),
            &bedrock,
        ));
        assert_eq!(e.code, failures::MODEL_WITHOUT_VISION);
        assert!(e.remedy.contains("`acme.new-model-v1:0`"), "{}", e.remedy);
        // An inference profile is its model.
        let f = judge(
            &tenant(),
            &byok(Provider::Bedrock, "eu.acme.new-model-v1:0", true),
            &bedrock,
        );
        assert!(matches!(f, Finding::Pass(_)), "{f:?}");
    }

    #[test]
    fn vision_fails_closed_for_models_outside_the_table() {
        let models = listed(&["llava-next", "gpt-4o"]);
        let e = fail(judge(
            &tenant(),
            &byok(Provider::OpenaiCompatible, "llava-next", true),
            &models,
        ));
        assert_eq!(e.code, failures::UNSUPPORTED_MODEL);
        assert!(e.remedy.contains("`gpt-4o`"), "{}", e.remedy);
        // Without images, any listed model will do.
        let f = judge(
            &tenant(),
            &byok(Provider::OpenaiCompatible, "llava-next", false),
            &models,
        );
        assert!(matches!(f, Finding::Pass(_)), "{f:?}");
    }

    #[test]
    fn a_text_only_model_passes_when_documents_are_text() {
        let models = listed(&["gpt-3.5-turbo"]);
        let f = judge(
            &tenant(),
            &byok(Provider::OpenaiCompatible, "gpt-3.5-turbo", false),
            &models,
        );
        assert!(matches!(f, Finding::Pass(_)), "{f:?}");
        let e = fail(judge(
            &tenant(),
            &byok(Provider::OpenaiCompatible, "gpt-3.5-turbo", true),
            &models,
        ));
        assert_eq!(e.code, failures::MODEL_WITHOUT_VISION);
        assert!(e.remedy.contains("none"), "{}", e.remedy);
    }
}
