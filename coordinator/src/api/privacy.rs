//! The admin API for tenants' privacy configuration:
//! `GET /api/v1/tenants/{id}/privacy` (viewer),
//! `PUT /api/v1/tenants/{id}/privacy` and
//! `PUT /api/v1/tenants/{id}/privacy/hosted-fallback` (operator). Changes go
//! through [`crate::privacy::change`], the same path as the CLI, with the
//! token's subject as the actor of the audit entry.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use stacks::ids::TenantId;

use super::{ApiError, AppState, internal};
use crate::manifest::Tenant;
use crate::manifest::raw::TokenRole;
use crate::privacy::PrivacyConfig;
use crate::privacy::change::{self, ChangeError, Changed};
use crate::privacy::view::PrivacyView;
use crate::probes::resolve::{MAX_VALIDATION_AGE, resolve};

/// Body of `PUT /api/v1/tenants/{id}/privacy`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPrivacy {
    /// The whole new configuration.
    pub config: PrivacyConfig,
    /// The version the caller read; refused with 409 if it changed since.
    pub expected_version: u64,
}

/// Body of `PUT /api/v1/tenants/{id}/privacy/hosted-fallback`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetFallback {
    /// Allow falling back to hosted storage and keys.
    pub enabled: bool,
    /// Why (required to enable).
    #[serde(default)]
    pub reason: Option<String>,
    /// The version the caller read.
    pub expected_version: u64,
}

pub(super) fn find_tenant<'a>(s: &'a AppState, id: &str) -> Result<&'a Tenant, ApiError> {
    let not_found = || {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("no tenant `{id}` in the manifest"),
        )
    };
    let tenant_id: TenantId = id.parse().map_err(|_| not_found())?;
    s.manifest.tenant(&tenant_id).ok_or_else(not_found)
}

/// A tenant's privacy view (also part of the tenant detail).
pub(super) async fn view_of(s: &AppState, tenant: &Tenant) -> Result<PrivacyView, ApiError> {
    let record = change::current(s.store.as_ref(), tenant)
        .await
        .map_err(internal)?;
    let probes = s.store.probes(Some(&tenant.id)).await.map_err(internal)?;
    Ok(PrivacyView::new(tenant, &record, &probes))
}

pub(super) async fn get_privacy(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<PrivacyView>, ApiError> {
    s.tokens.check(&headers, TokenRole::Viewer)?;
    let tenant = find_tenant(&s, &id)?;
    Ok(Json(view_of(&s, tenant).await?))
}

fn refused(e: ChangeError) -> Response {
    match e {
        ChangeError::Invalid { problems, .. } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({
                "error": "the configuration is not valid for this tenant; nothing changed",
                "problems": problems,
            })),
        )
            .into_response(),
        ChangeError::Conflict(e) => ApiError(StatusCode::CONFLICT, e.to_string()).into_response(),
        ChangeError::Store(e) => internal(e).into_response(),
    }
}

/// The response to a change: the outcome, or why it was refused.
fn respond(result: Result<Changed, ChangeError>) -> Response {
    match result {
        Ok(outcome) => Json(json!(outcome)).into_response(),
        Err(e) => refused(e),
    }
}

/// What every change request starts with: an operator token (its subject
/// is the actor), a known tenant, a well-formed body (422 otherwise).
fn change_request<'a, T>(
    s: &'a AppState,
    headers: &HeaderMap,
    id: &str,
    body: Result<Json<T>, JsonRejection>,
) -> Result<(&'a Tenant, T, String), ApiError> {
    let caller = s.tokens.check(headers, TokenRole::Operator)?;
    let tenant = find_tenant(s, id)?;
    let Json(body) = body.map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.body_text()))?;
    Ok((tenant, body, format!("token:{}", caller.subject)))
}

pub(super) async fn put_privacy(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<SetPrivacy>, JsonRejection>,
) -> Result<Response, ApiError> {
    let (tenant, body, actor) = change_request(&s, &headers, &id, body)?;
    let expected = Some(body.expected_version);
    let result = change::set_config(s.store.as_ref(), tenant, body.config, expected, &actor).await;
    Ok(respond(result))
}

pub(super) async fn put_fallback(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<SetFallback>, JsonRejection>,
) -> Result<Response, ApiError> {
    let (tenant, body, actor) = change_request(&s, &headers, &id, body)?;
    let result = change::set_fallback(
        s.store.as_ref(),
        tenant,
        body.enabled,
        body.reason.as_deref(),
        Some(body.expected_version),
        &actor,
    )
    .await;
    Ok(respond(result))
}

/// `GET /api/v1/tenants/{id}/effective-config` (service or operator
/// token): what the document workers must use for this tenant now. 200 when
/// every dependency may be used (hosted, validated customer, or an enabled
/// hosted fallback, each said so); 424 Failed Dependency with each refusal's
/// code, message and remedy when a customer-managed dependency is not
/// validated and fallback is disabled. Never the hosted default in silence.
pub(super) async fn effective_config(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    s.tokens.check(&headers, TokenRole::Service)?;
    let tenant = find_tenant(&s, &id)?;
    let record = change::current(s.store.as_ref(), tenant)
        .await
        .map_err(internal)?;
    let probes = s.store.probes(Some(&tenant.id)).await.map_err(internal)?;
    let effective = resolve(&record, &probes, MAX_VALIDATION_AGE, chrono::Utc::now());
    let refusals: Vec<_> = effective
        .refusals()
        .into_iter()
        .map(|(dependency, e)| json!({"dependency": dependency, "code": e.code, "message": e.message, "remedy": e.remedy}))
        .collect();
    if refusals.is_empty() {
        return Ok(Json(json!(effective)).into_response());
    }
    tracing::warn!(tenant = %tenant.id, refusals = refusals.len(), "effective configuration refused (fail closed)");
    Ok((
        StatusCode::FAILED_DEPENDENCY,
        Json(json!({
            "error": format!("tenant `{}` cannot be served: a customer-managed dependency is not validated and hosted fallback is disabled", tenant.id),
            "refusals": refusals,
            "effective": effective,
        })),
    )
        .into_response())
}
