//! The status service behind `coordinator serve`: a JSON API under
//! `/api/v1/`, its OpenAPI document, Prometheus metrics at `/metrics`, and
//! the dashboard at `/`.
//!
//! Every route but `/healthz` needs a bearer token ([`auth`]); the
//! dashboard gets one through `/login?token=...`, which sets an HttpOnly
//! cookie. Handlers only read: the store, the manifest, and the heartbeat
//! monitor's snapshot. Writes (`POST /api/v1/heartbeat/round`, the privacy configuration in
//! [`privacy`]) need the operator role and are audited with the token's
//! subject as the actor.

pub mod auth;
pub mod dashboard;
pub mod metrics;
pub mod openapi;
pub mod privacy;
pub mod views;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use self::auth::{COOKIE, Tokens};
use self::views::{AuditPage, AuditView, TenantDetail, TenantView};
use crate::heartbeat::detector::TenantHealth;
use crate::heartbeat::monitor::Monitor;
use crate::manifest::Manifest;
use crate::manifest::raw::TokenRole;
use crate::store::{NewAuditEntry, Store};

/// What every handler can read.
#[derive(Clone)]
pub struct AppState {
    /// Desired state.
    pub manifest: Arc<Manifest>,
    /// Recorded state.
    pub store: Arc<dyn Store>,
    /// The heartbeat monitor (live states and counters).
    pub monitor: Arc<Monitor>,
    /// Accepted tokens.
    pub tokens: Tokens,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// A JSON error with a status code.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<StatusCode> for ApiError {
    fn from(code: StatusCode) -> Self {
        let message = match code {
            StatusCode::UNAUTHORIZED => "a valid bearer token is required",
            StatusCode::FORBIDDEN => "this token's role may not do that",
            _ => code.canonical_reason().unwrap_or("error"),
        };
        ApiError(code, message.to_owned())
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "API request failed");
    ApiError(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the coordinator could not read its state; see its logs".into(),
    )
}

/// The routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/login", get(login))
        .route("/", get(dashboard::index))
        .route("/assets/{file}", get(dashboard::asset))
        .route("/metrics", get(metrics::handler))
        .route("/api/v1/openapi.json", get(openapi::handler))
        .route("/api/v1/fleet", get(fleet))
        .route("/api/v1/tenants", get(tenants))
        .route("/api/v1/tenants/{id}", get(tenant))
        .route(
            "/api/v1/tenants/{id}/privacy",
            get(privacy::get_privacy).put(privacy::put_privacy),
        )
        .route(
            "/api/v1/tenants/{id}/privacy/hosted-fallback",
            put(privacy::put_fallback),
        )
        .route(
            "/api/v1/tenants/{id}/effective-config",
            get(privacy::effective_config),
        )
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/heartbeat/round", post(heartbeat_round))
        .with_state(state)
}

/// Serves `router` on `listen` until `shutdown` resolves; returns the bound
/// address through `bound` as soon as the socket listens.
pub async fn serve(
    state: AppState,
    listen: SocketAddr,
    bound: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    bound(listener.local_addr()?);
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

impl AppState {
    fn health(&self) -> BTreeMap<String, TenantHealth> {
        self.monitor
            .snapshot()
            .into_iter()
            .map(|s| (s.tenant.to_string(), s.health))
            .collect()
    }

    async fn tenant_views(&self) -> Result<Vec<TenantView>, ApiError> {
        let states = self.store.stack_states().await.map_err(internal)?;
        let health = self.health();
        Ok(self
            .manifest
            .tenants
            .iter()
            .map(|t| views::tenant_view(t, &states, health.get(t.id.as_str())))
            .collect())
    }
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    token: String,
}

/// Exchanges a token in the URL for an HttpOnly cookie, then shows the
/// dashboard (so the token leaves the address bar at once).
async fn login(State(s): State<AppState>, Query(q): Query<LoginQuery>) -> Response {
    if s.tokens.resolve(&q.token).is_none() {
        return ApiError::from(StatusCode::UNAUTHORIZED).into_response();
    }
    let cookie = format!("{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/", q.token);
    let mut response = Redirect::to("/").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn fleet(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<views::FleetSummary>, ApiError> {
    s.tokens.check(&headers, TokenRole::Viewer)?;
    Ok(Json(views::fleet_summary(&s.manifest, &s.health())))
}

#[derive(Debug, Deserialize)]
struct TenantFilter {
    state: Option<String>,
    wave: Option<String>,
}

async fn tenants(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(filter): Query<TenantFilter>,
) -> Result<Json<Vec<TenantView>>, ApiError> {
    s.tokens.check(&headers, TokenRole::Viewer)?;
    let mut views = s.tenant_views().await?;
    if let Some(state) = &filter.state {
        views.retain(|v| v.heartbeat.as_ref().is_some_and(|h| &h.state == state));
    }
    if let Some(wave) = &filter.wave {
        views.retain(|v| &v.wave == wave);
    }
    Ok(Json(views))
}

async fn tenant(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<TenantDetail>, ApiError> {
    s.tokens.check(&headers, TokenRole::Viewer)?;
    let tenant = privacy::find_tenant(&s, &id)?;
    let tenant_id = tenant.id.clone();
    let states = s.store.stack_states().await.map_err(internal)?;
    let health = s.health();
    let mut outputs = Vec::new();
    for kind in tenant.deployed_stacks() {
        if let Some(o) = s.store.outputs(&tenant_id, *kind).await.map_err(internal)? {
            outputs.push((&o).into());
        }
    }
    let deployments = s
        .store
        .deployments(Some(&tenant_id), 50)
        .await
        .map_err(internal)?;
    let history = s
        .store
        .heartbeat_history(&tenant_id, 50)
        .await
        .map_err(internal)?;
    // Audit entries about this tenant, newest first (scan from the end).
    let mut audit = Vec::new();
    let mut after = 0;
    loop {
        let page = s.store.audit_entries(after, 1000).await.map_err(internal)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        audit.extend(
            page.iter()
                .filter(|e| e.tenant.as_ref() == Some(&tenant_id))
                .map(AuditView::from),
        );
    }
    audit.reverse();
    audit.truncate(50);
    Ok(Json(TenantDetail {
        tenant: views::tenant_view(tenant, &states, health.get(tenant_id.as_str())),
        outputs,
        deployments: deployments.iter().map(Into::into).collect(),
        heartbeat_history: history.iter().map(Into::into).collect(),
        audit,
        privacy: privacy::view_of(&s, tenant).await?,
    }))
}

#[derive(Debug, Deserialize)]
struct AuditQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

async fn audit(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    s.tokens.check(&headers, TokenRole::Viewer)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 500);
    let entries = s
        .store
        .audit_entries(q.after.unwrap_or(0), limit)
        .await
        .map_err(internal)?;
    let next_after = (entries.len() == limit)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    Ok(Json(AuditPage {
        entries: entries.iter().map(AuditView::from).collect(),
        next_after,
    }))
}

/// Runs a heartbeat round now (operator only), e.g. after fixing a tenant.
async fn heartbeat_round(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let caller = s.tokens.check(&headers, TokenRole::Operator)?;
    s.store
        .append_audit(NewAuditEntry {
            actor: format!("token:{}", caller.subject),
            tenant: None,
            action: "heartbeat.round".into(),
            details: json!({ "trigger": "api" }),
        })
        .await
        .map_err(internal)?;
    s.monitor.round(s.monitor.interval().mul_f32(0.8)).await;
    Ok(Json(json!({ "tenants": s.monitor.snapshot().len() })))
}
