//! A local LLM provider for the LLM probe's tests: one axum server on
//! 127.0.0.1 speaking OpenAI's wire format under `/openai/v1` and
//! Anthropic's under `/anthropic/v1` for the one call the probe makes
//! (listing models), with a good key, model lists, and switches for the
//! failures a real provider has.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

/// How the provider answers, whatever the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Checks the key and lists models.
    Normal,
    /// 429, rate limit.
    RateLimited,
    /// 429 `insufficient_quota` (OpenAI) / 400 credit balance (Anthropic).
    OutOfQuota,
    /// 403.
    Forbidden,
    /// 500 (OpenAI) / 529 overloaded (Anthropic).
    Down,
    /// Sleeps before answering.
    Slow(Duration),
    /// 401 whose message quotes the whole key (a careless provider).
    EchoKey,
}

#[derive(Debug)]
struct Config {
    key: String,
    openai: Vec<String>,
    anthropic: Vec<String>,
    anthropic_page: usize,
    mode: Mode,
    requests: Vec<Seen>,
}

/// One request the provider received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `openai` or `anthropic`.
    pub api: &'static str,
    /// The `anthropic-version` header.
    pub anthropic_version: Option<String>,
    /// The query string's `after_id`.
    pub after_id: Option<String>,
}

/// The running provider.
#[derive(Clone)]
pub struct Provider {
    addr: SocketAddr,
    config: Arc<Mutex<Config>>,
}

impl Provider {
    /// Starts a provider accepting `key`, listing `openai` and `anthropic`
    /// models (Anthropic in pages of two, so the probe must follow pages).
    pub async fn start(key: &str, openai: &[&str], anthropic: &[&str]) -> Self {
        let config = Arc::new(Mutex::new(Config {
            key: key.to_owned(),
            openai: openai.iter().map(|s| s.to_string()).collect(),
            anthropic: anthropic.iter().map(|s| s.to_string()).collect(),
            anthropic_page: 2,
            mode: Mode::Normal,
            requests: Vec::new(),
        }));
        let app = Router::new()
            .route("/openai/v1/models", get(openai_models))
            .route("/anthropic/v1/models", get(anthropic_models))
            .with_state(config.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, config }
    }

    /// The OpenAI-compatible `base_url`.
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/openai/v1", self.addr)
    }

    /// The Anthropic base URL (the probe appends `/v1/models`).
    pub fn anthropic_base_url(&self) -> String {
        format!("http://{}/anthropic", self.addr)
    }

    /// A URL on this server that serves no API.
    pub fn nowhere(&self) -> String {
        format!("http://{}/nothing-here", self.addr)
    }

    /// Sets how it answers.
    pub fn set_mode(&self, mode: Mode) {
        self.config.lock().unwrap().mode = mode;
    }

    /// The requests so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.config.lock().unwrap().requests.clone()
    }
}

type Shared = Arc<Mutex<Config>>;

#[derive(Deserialize)]
struct Page {
    after_id: Option<String>,
    limit: Option<usize>,
}

fn reply(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// What the mode says before the key is looked at, and the key check.
async fn gate(
    config: &Shared,
    headers: &HeaderMap,
    api: &'static str,
    after_id: Option<String>,
) -> Result<(), Mode> {
    let (mode, key) = {
        let mut c = config.lock().unwrap();
        c.requests.push(Seen {
            api,
            anthropic_version: header(headers, "anthropic-version"),
            after_id,
        });
        (c.mode, c.key.clone())
    };
    if let Mode::Slow(delay) = mode {
        tokio::time::sleep(delay).await;
    }
    let presented = match api {
        "openai" => header(headers, "authorization")
            .and_then(|v| v.strip_prefix("Bearer ").map(str::to_owned)),
        _ => header(headers, "x-api-key"),
    };
    match mode {
        Mode::Normal | Mode::Slow(_) if presented.as_deref() == Some(key.as_str()) => Ok(()),
        Mode::Normal | Mode::Slow(_) => Err(Mode::Normal),
        other => Err(other),
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn openai_models(State(config): State<Shared>, headers: HeaderMap) -> Response {
    let presented = header(&headers, "authorization").unwrap_or_default();
    match gate(&config, &headers, "openai", None).await {
        Ok(()) => {
            let models = config.lock().unwrap().openai.clone();
            let data: Vec<Value> = models
                .iter()
                .map(|id| json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": "system"}))
                .collect();
            reply(StatusCode::OK, json!({"object": "list", "data": data}))
        }
        Err(Mode::Normal) => {
            // As OpenAI does: the message quotes the key, masked but for
            // its last four characters.
            let key = presented.trim_start_matches("Bearer ");
            let tail: String = key.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
            reply(
                StatusCode::UNAUTHORIZED,
                json!({"error": {"message": format!("Incorrect API key provided: sk-proj-{}{tail}. You can find your API key at https://platform.openai.com/account/api-keys.", "*".repeat(20)),
                    "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}),
            )
        }
        Err(Mode::EchoKey) => reply(
            StatusCode::UNAUTHORIZED,
            json!({"error": {"message": format!("key {} is not valid", presented.trim_start_matches("Bearer ")), "type": "invalid_request_error", "code": "invalid_api_key"}}),
        ),
        Err(Mode::RateLimited) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "20")],
            axum::Json(json!({"error": {"message": "Rate limit reached for requests", "type": "requests", "param": null, "code": "rate_limit_exceeded"}})),
        )
            .into_response(),
        Err(Mode::OutOfQuota) => reply(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"error": {"message": "You exceeded your current quota, please check your plan and billing details.", "type": "insufficient_quota", "param": null, "code": "insufficient_quota"}}),
        ),
        Err(Mode::Forbidden) => reply(
            StatusCode::FORBIDDEN,
            json!({"error": {"message": "You have insufficient permissions for this operation. Missing scopes: api.model.read.", "type": "invalid_request_error", "param": null, "code": null}}),
        ),
        Err(Mode::Down) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": {"message": "The server had an error while processing your request.", "type": "server_error", "param": null, "code": null}}),
        ),
        Err(Mode::Slow(_)) => unreachable!(),
    }
}

async fn anthropic_models(
    State(config): State<Shared>,
    headers: HeaderMap,
    Query(page): Query<Page>,
) -> Response {
    let after_id = page.after_id.clone();
    let gated = gate(&config, &headers, "anthropic", after_id).await;
    let error = |status: StatusCode, kind: &str, message: &str| {
        reply(
            status,
            json!({"type": "error", "error": {"type": kind, "message": message}}),
        )
    };
    if header(&headers, "anthropic-version").is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "anthropic-version: header is required",
        );
    }
    match gated {
        Ok(()) => {
            let (models, size) = {
                let c = config.lock().unwrap();
                (c.anthropic.clone(), c.anthropic_page)
            };
            let size = page.limit.unwrap_or(20).min(size);
            let start = match &page.after_id {
                Some(after) => models
                    .iter()
                    .position(|m| m == after)
                    .map_or(models.len(), |i| i + 1),
                None => 0,
            };
            let chunk: Vec<&String> = models.iter().skip(start).take(size).collect();
            let data: Vec<Value> = chunk
                .iter()
                .map(|id| json!({"type": "model", "id": id, "display_name": id, "created_at": "2025-01-01T00:00:00Z"}))
                .collect();
            reply(
                StatusCode::OK,
                json!({"data": data, "has_more": start + size < models.len(),
                       "first_id": chunk.first(), "last_id": chunk.last()}),
            )
        }
        Err(Mode::Normal) => error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid x-api-key",
        ),
        Err(Mode::EchoKey) => error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            &format!(
                "invalid x-api-key {}",
                header(&headers, "x-api-key").unwrap_or_default()
            ),
        ),
        Err(Mode::RateLimited) => error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "Number of requests has exceeded your rate limit",
        ),
        Err(Mode::OutOfQuota) => error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.",
        ),
        Err(Mode::Forbidden) => error(
            StatusCode::FORBIDDEN,
            "permission_error",
            "Your API key does not have permission to use the specified resource.",
        ),
        Err(Mode::Down) => error(
            StatusCode::from_u16(529).unwrap(),
            "overloaded_error",
            "Overloaded",
        ),
        Err(Mode::Slow(_)) => unreachable!(),
    }
}
