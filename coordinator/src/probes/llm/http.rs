//! The two HTTP calls of the LLM probe: list the models a key can use at an
//! OpenAI-compatible API (`GET {base_url}/models`, `Authorization: Bearer`)
//! and at Anthropic (`GET /v1/models` with `x-api-key` and
//! `anthropic-version`, paged), and the mapping of every HTTP failure to a
//! probe error ([`super::failures`]).
//!
//! One `reqwest` client, with connect and overall timeouts, no redirects
//! (a redirect means a wrong base URL, and following it could carry the key
//! elsewhere) and a cap on how much of a body is read.
//!
//! What this module must never do: put the key anywhere but the one request
//! header (marked sensitive, so `reqwest` never shows it), or pass the
//! provider's error text on without [`scrub`] (OpenAI's 401 message quotes
//! part of the key).

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use stacks::ids::TenantId;

use super::Listed;
use super::failures;
use crate::privacy::Provider;
use crate::probes::ProbeError;
use crate::secrets::SecretName;

/// OpenAI's API root, when `base_url` is not set.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
/// Anthropic's API root.
pub const ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";
/// The Anthropic API version the probe speaks.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
/// Longest wait for a TCP/TLS connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest one request may take, body included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Most bytes of a response body read (a model list is a few KiB).
const MAX_BODY: usize = 4 << 20;
/// Most Anthropic pages followed (1,000 models each).
const MAX_PAGES: usize = 10;
/// Most characters of a provider's error text shown.
const MAX_SAID: usize = 300;

/// Builds the client every LLM probe request goes through.
pub(super) fn client(
    connect_timeout: Duration,
    request_timeout: Duration,
) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .timeout(request_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("docproc-coordinator/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// What a probe request needs to know, for messages.
pub(super) struct Call<'a> {
    pub tenant: &'a TenantId,
    pub provider: Provider,
    pub secret: &'a SecretName,
    pub key: &'a SecretString,
}

/// `{"data": [{"id": ...}], "has_more": ..., "last_id": ...}`: both
/// providers' list shape (OpenAI sends no `has_more`).
#[derive(Deserialize)]
struct ModelPage {
    data: Vec<ModelEntry>,
    #[serde(default)]
    has_more: bool,
    #[serde(default)]
    last_id: Option<String>,
}

#[derive(Deserialize)]
struct ModelEntry {
    id: String,
}

/// The models `key` can use at an OpenAI-compatible API rooted at
/// `base_url`.
pub(super) async fn list_openai(
    client: &reqwest::Client,
    base_url: &str,
    call: &Call<'_>,
) -> Result<Vec<Listed>, ProbeError> {
    let url = format!("{}/models", base_url.trim_end_matches('/'));
    let headers = auth_headers(call, "authorization", |key| format!("Bearer {key}"))?;
    let page = get_page(client, &url, headers, call).await?;
    Ok(page.data.into_iter().map(|m| Listed::new(m.id)).collect())
}

/// The models `key` can use at Anthropic's API rooted at `base_url`,
/// following pages.
pub(super) async fn list_anthropic(
    client: &reqwest::Client,
    base_url: &str,
    call: &Call<'_>,
) -> Result<Vec<Listed>, ProbeError> {
    let mut headers = auth_headers(call, "x-api-key", str::to_owned)?;
    headers.insert(
        "anthropic-version",
        HeaderValue::from_static(ANTHROPIC_VERSION),
    );
    let root = format!("{}/v1/models?limit=1000", base_url.trim_end_matches('/'));
    let mut models = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let url = match &after {
            Some(id) => format!("{root}&after_id={}", encode(id)),
            None => root.clone(),
        };
        let page = get_page(client, &url, headers.clone(), call).await?;
        models.extend(page.data.into_iter().map(|m| Listed::new(m.id)));
        match (page.has_more, page.last_id) {
            (true, Some(last)) => after = Some(last),
            _ => break,
        }
    }
    Ok(models)
}

/// The one header carrying the key, marked sensitive. A key no header can
/// carry (a line break, a control character) is reported as malformed,
/// never shown.
fn auth_headers(
    call: &Call<'_>,
    name: &'static str,
    value: impl Fn(&str) -> String,
) -> Result<HeaderMap, ProbeError> {
    let key = call.key.expose_secret();
    let malformed = || failures::key_malformed(call.tenant, call.secret);
    if key.is_empty() || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(malformed());
    }
    let mut header = HeaderValue::from_str(&value(key)).map_err(|_| malformed())?;
    header.set_sensitive(true);
    let mut headers = HeaderMap::new();
    headers.insert(HeaderName::from_static(name), header);
    Ok(headers)
}

/// One GET, its failures classified, its body parsed as a model page.
async fn get_page(
    client: &reqwest::Client,
    url: &str,
    headers: HeaderMap,
    call: &Call<'_>,
) -> Result<ModelPage, ProbeError> {
    let (tenant, provider) = (call.tenant, call.provider);
    let mut response = client
        .get(url)
        .headers(headers)
        .send()
        .await
        .map_err(|e| transport_error(call, url, &e))?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(40).collect::<String>());
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(call, url, &e))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(failures::unexpected_response(
                tenant,
                provider,
                &format!("GET {url} answered with more than {MAX_BODY} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    if status.is_success() {
        return serde_json::from_slice::<ModelPage>(&body).map_err(|_| {
            failures::unexpected_response(
                tenant,
                provider,
                &format!(
                    "GET {url} answered HTTP {status} with a body that is not a model list ({{\"data\": [{{\"id\": ...}}]}})"
                ),
            )
        });
    }
    Err(classify(call, url, status, &body, retry_after.as_deref()))
}

/// A request that got no HTTP answer.
fn transport_error(call: &Call<'_>, url: &str, error: &reqwest::Error) -> ProbeError {
    // Our own words: reqwest's text names the URL (no key), but its sources
    // may quote anything.
    let what = if error.is_timeout() {
        format!("GET {url} timed out")
    } else if error.is_connect() {
        format!("could not connect for GET {url} (refused, DNS or TLS failure)")
    } else if error.is_body() || error.is_decode() {
        format!("GET {url}: the answer broke off")
    } else {
        format!("GET {url} failed before an answer")
    };
    failures::provider_unavailable(call.tenant, call.provider, &what)
}

/// The error part of an error body: OpenAI's `{"error": {"message", "type",
/// "code"}}` and Anthropic's `{"type": "error", "error": {"type",
/// "message"}}`; anything else yields nothing.
#[derive(Default)]
struct ErrorBody {
    kind: String,
    code: String,
    message: String,
}

fn error_body(body: &[u8]) -> ErrorBody {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return ErrorBody::default();
    };
    let error = &value["error"];
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    ErrorBody {
        kind: text(&error["type"]),
        code: text(&error["code"]),
        message: match error {
            serde_json::Value::String(s) => s.clone(),
            _ => text(&error["message"]),
        },
    }
}

/// Maps an HTTP error status (and the provider's error body) to a probe
/// error.
fn classify(
    call: &Call<'_>,
    url: &str,
    status: StatusCode,
    body: &[u8],
    retry_after: Option<&str>,
) -> ProbeError {
    let (tenant, provider, secret) = (call.tenant, call.provider, call.secret);
    let error = error_body(body);
    let said = match scrub(&error.message, call.key) {
        s if s.is_empty() => String::new(),
        s => format!(": \"{s}\""),
    };
    let out_of_credit = ["insufficient_quota", "billing_error"]
        .iter()
        .any(|c| error.code == *c || error.kind == *c)
        || error.message.contains("credit balance");
    match status.as_u16() {
        _ if out_of_credit => failures::quota_exceeded(tenant, provider, &said),
        401 => failures::invalid_key(tenant, provider, secret, &said),
        402 => failures::quota_exceeded(tenant, provider, &said),
        403 => failures::key_without_access(tenant, provider, secret, &said),
        429 => {
            let wait = retry_after
                .map(|s| format!(" (retry after {s})"))
                .unwrap_or_default();
            failures::rate_limited(tenant, provider, &format!("{wait}{said}"))
        }
        408 | 500..=599 => failures::provider_unavailable(
            tenant,
            provider,
            &format!("GET {url} answered HTTP {status}{said}"),
        ),
        300..=399 => failures::unexpected_response(
            tenant,
            provider,
            &format!("GET {url} redirected (HTTP {status}); redirects are not followed"),
        ),
        _ => failures::unexpected_response(
            tenant,
            provider,
            &format!("GET {url} answered HTTP {status}{said}"),
        ),
    }
}

/// A provider's error text fit to show: the key (and any word that looks
/// like a piece of it or of another key) replaced, one line, cut short.
pub(super) fn scrub(text: &str, key: &SecretString) -> String {
    let key = key.expose_secret();
    let text = if key.is_empty() {
        text.to_owned()
    } else {
        text.replace(key, "<redacted>")
    };
    let looks_like_key = |word: &str| {
        let word = word.trim_matches(|c: char| !c.is_alphanumeric() && c != '*');
        word.contains("***")
            || word.starts_with("sk-")
            || word.starts_with("sk_")
            || (word.len() >= 8 && key.contains(word))
            || key
                .get(..8)
                .is_some_and(|head| word.len() >= 8 && word.contains(head))
    };
    let words: Vec<&str> = text
        .split_whitespace()
        .map(|w| if looks_like_key(w) { "<redacted>" } else { w })
        .collect();
    let mut out = words.join(" ");
    if out.chars().count() > MAX_SAID {
        out = out.chars().take(MAX_SAID).collect::<String>() + "…";
    }
    out
}

/// Percent-encodes a query value (model ids are plain, but be safe).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_the_key_and_pieces_of_keys() {
        let key = SecretString::from("sk-proj-PLANTEDsecret0123456789");
        let openai = "Incorrect API key provided: sk-proj-***********************6789. You can find your API key at https://platform.openai.com/account/api-keys.";
        let out = scrub(openai, &key);
        assert!(!out.contains("6789"), "{out}");
        assert!(
            out.starts_with("Incorrect API key provided: <redacted>"),
            "{out}"
        );
        let echoed = format!("key '{}' is wrong", key.expose_secret());
        let out = scrub(&echoed, &key);
        assert!(!out.contains("PLANTED"), "{out}");
        let long = "x ".repeat(400);
        assert!(scrub(&long, &key).chars().count() <= MAX_SAID + 1);
    }

    #[test]
    fn error_bodies_of_both_providers_are_read() {
        let openai = br#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#;
        let e = error_body(openai);
        assert_eq!(e.code, "insufficient_quota");
        let anthropic =
            br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#;
        let e = error_body(anthropic);
        assert_eq!(
            (e.kind.as_str(), e.message.as_str()),
            ("rate_limit_error", "slow down")
        );
        assert_eq!(error_body(b"<html>").message, "");
        assert_eq!(error_body(br#"{"error":"plain"}"#).message, "plain");
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            encode("claude-3-5-sonnet-20241022"),
            "claude-3-5-sonnet-20241022"
        );
        assert_eq!(encode("a&b c"), "a%26b%20c");
    }
}
