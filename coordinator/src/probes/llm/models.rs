//! The table of supported LLM models and whether each reads images: the
//! one place this is written down. The LLM probe looks models up here, and
//! `docs/admin/llm-bring-your-own-keys.md` shows [`markdown_table`] (a test
//! fails when the two disagree).
//!
//! An entry names a model id as the provider lists it without its dated
//! snapshot suffix. A listed id matches an entry when it is the entry's id,
//! or the id followed by a snapshot or version suffix: `-` and at least four
//! digits (`gpt-4o-2024-08-06`, `gpt-4-0613`, `claude-sonnet-4-20250514`,
//! `anthropic.claude-3-5-sonnet-20240620-v1:0`), `-v` and a digit
//! (`amazon.nova-pro-v1:0`), `:` (a Bedrock version), or `-latest`. The
//! longest matching entry wins, so `gpt-4-turbo-2024-04-09` is
//! `gpt-4-turbo`, not `gpt-4`, and a variant such as `gpt-4o-audio-preview`
//! matches nothing: the table never guesses.
//!
//! Bedrock ids may carry a cross-region inference profile prefix
//! (`us.`, `eu.`, `apac.`, ...), which is ignored for the lookup. For
//! Bedrock the API's own `inputModalities` decide vision when it reports
//! them; the Bedrock rows say what to expect.
//!
//! What this module must never do: call a provider. It is data and pure
//! functions.

use crate::privacy::Provider;
use Provider::{Anthropic, Bedrock, OpenaiCompatible as OpenAi};

/// One supported model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelSpec {
    /// Whose model.
    pub provider: Provider,
    /// The model id without a snapshot suffix, e.g. `gpt-4o`.
    pub id: &'static str,
    /// Whether it reads images (document pages sent as images).
    pub vision: bool,
}

const fn spec(provider: Provider, id: &'static str, vision: bool) -> ModelSpec {
    ModelSpec {
        provider,
        id,
        vision,
    }
}

/// Every supported model, by provider. To add one: a row here, then run the
/// `llm` tests and paste the table they print into the admin doc.
pub const MODELS: &[ModelSpec] = &[
    // OpenAI (and OpenAI-compatible services serving these models).
    spec(OpenAi, "gpt-5", true),
    spec(OpenAi, "gpt-5-mini", true),
    spec(OpenAi, "gpt-5-nano", true),
    spec(OpenAi, "gpt-4.1", true),
    spec(OpenAi, "gpt-4.1-mini", true),
    spec(OpenAi, "gpt-4.1-nano", true),
    spec(OpenAi, "gpt-4o", true),
    spec(OpenAi, "gpt-4o-mini", true),
    spec(OpenAi, "chatgpt-4o", true),
    spec(OpenAi, "gpt-4-turbo", true),
    spec(OpenAi, "o1", true),
    spec(OpenAi, "o3", true),
    spec(OpenAi, "o4-mini", true),
    spec(OpenAi, "o1-mini", false),
    spec(OpenAi, "o3-mini", false),
    spec(OpenAi, "gpt-4", false),
    spec(OpenAi, "gpt-3.5-turbo", false),
    // Anthropic.
    spec(Anthropic, "claude-opus-4-5", true),
    spec(Anthropic, "claude-opus-4-1", true),
    spec(Anthropic, "claude-opus-4", true),
    spec(Anthropic, "claude-sonnet-4-5", true),
    spec(Anthropic, "claude-sonnet-4", true),
    spec(Anthropic, "claude-haiku-4-5", true),
    spec(Anthropic, "claude-3-7-sonnet", true),
    spec(Anthropic, "claude-3-5-sonnet", true),
    spec(Anthropic, "claude-3-opus", true),
    spec(Anthropic, "claude-3-haiku", true),
    spec(Anthropic, "claude-3-5-haiku", false),
    // AWS Bedrock (vision as Bedrock's inputModalities report it).
    spec(Bedrock, "anthropic.claude-sonnet-4-5", true),
    spec(Bedrock, "anthropic.claude-sonnet-4", true),
    spec(Bedrock, "anthropic.claude-haiku-4-5", true),
    spec(Bedrock, "anthropic.claude-3-7-sonnet", true),
    spec(Bedrock, "anthropic.claude-3-5-sonnet", true),
    spec(Bedrock, "anthropic.claude-3-haiku", true),
    spec(Bedrock, "anthropic.claude-3-5-haiku", false),
    spec(Bedrock, "amazon.nova-pro", true),
    spec(Bedrock, "amazon.nova-lite", true),
    spec(Bedrock, "amazon.nova-micro", false),
    spec(Bedrock, "meta.llama3-2-90b-instruct", true),
    spec(Bedrock, "meta.llama3-2-11b-instruct", true),
    spec(Bedrock, "meta.llama3-1-70b-instruct", false),
];

/// Prefixes of Bedrock cross-region inference profiles.
const INFERENCE_PROFILE_PREFIXES: &[&str] = &[
    "us.", "eu.", "apac.", "us-gov.", "jp.", "au.", "ca.", "global.",
];

/// A Bedrock model id without its inference profile prefix
/// (`eu.anthropic.claude-...` → `anthropic.claude-...`); other ids as given.
pub fn bedrock_base_id(id: &str) -> &str {
    INFERENCE_PROFILE_PREFIXES
        .iter()
        .find_map(|prefix| id.strip_prefix(prefix))
        .unwrap_or(id)
}

/// Whether `rest`, what follows an entry's id in a listed id, is a
/// snapshot or version suffix.
fn is_snapshot_suffix(rest: &str) -> bool {
    if rest.is_empty() || rest == "-latest" || rest.starts_with(':') {
        return true;
    }
    let Some(rest) = rest.strip_prefix('-') else {
        return false;
    };
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    digits >= 4
        || rest
            .strip_prefix('v')
            .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()))
}

/// The table's entry for `model` of `provider`, if any.
pub fn lookup(provider: Provider, model: &str) -> Option<&'static ModelSpec> {
    let model = match provider {
        Bedrock => bedrock_base_id(model),
        _ => model,
    };
    MODELS
        .iter()
        .filter(|spec| spec.provider == provider)
        .filter(|spec| model.strip_prefix(spec.id).is_some_and(is_snapshot_suffix))
        .max_by_key(|spec| spec.id.len())
}

/// The table as Markdown, exactly as the admin doc shows it.
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| Provider | Model id (and its dated snapshots) | Reads images |\n|---|---|---|\n",
    );
    for spec in MODELS {
        out.push_str(&format!(
            "| `{}` | `{}` | {} |\n",
            spec.provider,
            spec.id,
            if spec.vision { "yes" } else { "no" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vision(provider: Provider, model: &str) -> Option<bool> {
        lookup(provider, model).map(|s| s.vision)
    }

    #[test]
    fn snapshots_match_their_family_and_the_longest_entry_wins() {
        assert_eq!(vision(OpenAi, "gpt-4o"), Some(true));
        assert_eq!(vision(OpenAi, "gpt-4o-2024-08-06"), Some(true));
        assert_eq!(
            lookup(OpenAi, "gpt-4o-mini-2024-07-18").unwrap().id,
            "gpt-4o-mini"
        );
        assert_eq!(
            lookup(OpenAi, "gpt-4-turbo-2024-04-09").unwrap().id,
            "gpt-4-turbo"
        );
        assert_eq!(vision(OpenAi, "gpt-4-0613"), Some(false));
        assert_eq!(vision(OpenAi, "o1-2024-12-17"), Some(true));
        assert_eq!(vision(OpenAi, "o1-mini-2024-09-12"), Some(false));
        assert_eq!(vision(Anthropic, "claude-sonnet-4-5-20250929"), Some(true));
        assert_eq!(
            lookup(Anthropic, "claude-sonnet-4-20250514").unwrap().id,
            "claude-sonnet-4"
        );
        assert_eq!(vision(Anthropic, "claude-3-5-haiku-latest"), Some(false));
        assert_eq!(vision(Bedrock, "amazon.nova-pro-v1:0"), Some(true));
        assert_eq!(vision(Bedrock, "amazon.nova-micro-v1:0"), Some(false));
    }

    #[test]
    fn variants_and_other_providers_match_nothing() {
        assert_eq!(lookup(OpenAi, "gpt-4o-audio-preview"), None);
        assert_eq!(lookup(OpenAi, "gpt-4o-realtime-preview-2024-12-17"), None);
        assert_eq!(lookup(OpenAi, "gpt-40"), None);
        assert_eq!(lookup(Anthropic, "gpt-4o"), None);
        assert_eq!(lookup(OpenAi, "claude-3-haiku-20240307"), None);
        // "-5-..." is not a snapshot: claude-sonnet-4 does not claim 4.5's ids.
        assert!(!is_snapshot_suffix("-5-20250929"));
    }

    #[test]
    fn bedrock_inference_profiles_are_looked_up_by_their_model() {
        assert_eq!(
            bedrock_base_id("eu.anthropic.claude-3-7-sonnet-20250219-v1:0"),
            "anthropic.claude-3-7-sonnet-20250219-v1:0"
        );
        assert_eq!(
            lookup(Bedrock, "us.anthropic.claude-sonnet-4-5-20250929-v1:0")
                .unwrap()
                .id,
            "anthropic.claude-sonnet-4-5"
        );
        assert_eq!(
            bedrock_base_id("amazon.nova-pro-v1:0"),
            "amazon.nova-pro-v1:0"
        );
    }

    #[test]
    fn every_entry_is_unique_and_has_a_vision_model_per_provider() {
        for (i, a) in MODELS.iter().enumerate() {
            for b in &MODELS[i + 1..] {
                assert!(
                    !(a.provider == b.provider && a.id == b.id),
                    "duplicate {a:?}"
                );
            }
        }
        for provider in [OpenAi, Anthropic, Bedrock] {
            assert!(
                MODELS.iter().any(|s| s.provider == provider && s.vision),
                "{provider} needs at least one model that reads images"
            );
        }
    }

    /// The admin doc shows the table as [`markdown_table`] renders it.
    #[test]
    fn the_admin_doc_lists_every_model() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/admin/llm-bring-your-own-keys.md"
        );
        let doc = std::fs::read_to_string(path).expect("the admin doc exists");
        let table = markdown_table();
        assert!(
            doc.contains(&table),
            "docs/admin/llm-bring-your-own-keys.md must contain the supported-models table exactly as models.rs renders it; replace the table there with:\n\n{table}"
        );
        for spec in MODELS {
            assert!(doc.contains(&format!("`{}`", spec.id)), "{}", spec.id);
        }
    }
}
