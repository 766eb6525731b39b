//! The OpenAPI 3.1 document of the JSON API, generated from the response
//! types in [`super::views`] (JSON Schema 2020-12 is OpenAPI 3.1's schema
//! dialect, so schemars' output is used as is). A test snapshots it.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

use super::privacy::{SetFallback, SetPrivacy};
use super::views::{AuditPage, FleetSummary, TenantDetail, TenantView};
use super::{ApiError, AppState};
use crate::manifest::raw::TokenRole;
use crate::privacy::view::PrivacyView;
use crate::probes::resolve::Effective;

fn ok(description: &str, schema: Value) -> Value {
    json!({
        "200": { "description": description, "content": { "application/json": { "schema": schema } } },
        "401": { "description": "missing or invalid bearer token" },
        "403": { "description": "the token's role may not do this" },
    })
}

fn change_responses() -> Value {
    let mut responses = ok(
        "written (`result: written`, with the new version) or unchanged",
        json!({ "type": "object" }),
    );
    responses["404"] = json!({ "description": "no such tenant" });
    responses["409"] = json!({ "description": "the configuration changed since `expected_version`; nothing written" });
    responses["422"] = json!({ "description": "not valid for this tenant (every problem listed, with the missing capability where that is why); nothing written" });
    responses
}

fn effective_responses(effective: Value) -> Value {
    let mut responses = ok(
        "every dependency may be used: hosted, validated customer, or an enabled hosted fallback (each says which)",
        effective,
    );
    responses["404"] = json!({ "description": "no such tenant" });
    responses["424"] = json!({ "description": "refused, failing closed: a customer-managed dependency is not validated and hosted fallback is disabled; `refusals` lists each with its code, message and remedy" });
    responses
}

/// The document.
pub fn document() -> Value {
    // OpenAPI 3.1 uses JSON Schema 2020-12 itself (`null` in type unions, no
    // `nullable`), with definitions under /components/schemas.
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    settings.meta_schema = None;
    let mut generator = settings.into_generator();
    let fleet = generator.subschema_for::<FleetSummary>().to_value();
    let tenant = generator.subschema_for::<TenantView>().to_value();
    let detail = generator.subschema_for::<TenantDetail>().to_value();
    let audit = generator.subschema_for::<AuditPage>().to_value();
    let privacy = generator.subschema_for::<PrivacyView>().to_value();
    let set_privacy = generator.subschema_for::<SetPrivacy>().to_value();
    let set_fallback = generator.subschema_for::<SetFallback>().to_value();
    let effective = generator.subschema_for::<Effective>().to_value();
    let components: serde_json::Map<String, Value> =
        generator.take_definitions(true).into_iter().collect();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "docproc coordinator status API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Status of the fleet (tenants, stacks, heartbeats, audit) and tenants' privacy configuration. Every path needs a bearer token (viewer role unless noted); changes need the operator role and are audited with the token's subject."
        },
        "components": {
            "schemas": components,
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } }
        },
        "security": [{ "bearer": [] }],
        "paths": {
            "/api/v1/fleet": { "get": { "summary": "Fleet summary", "operationId": "fleet", "responses": ok("the fleet at a glance", fleet) } },
            "/api/v1/tenants": { "get": {
                "summary": "Every tenant, optionally filtered",
                "operationId": "tenants",
                "parameters": [
                    { "name": "state", "in": "query", "required": false, "schema": { "type": "string" }, "description": "heartbeat state, e.g. healthy" },
                    { "name": "wave", "in": "query", "required": false, "schema": { "type": "string" } }
                ],
                "responses": ok("tenants in manifest order", json!({ "type": "array", "items": tenant }))
            } },
            "/api/v1/tenants/{id}": { "get": {
                "summary": "One tenant in detail",
                "operationId": "tenant",
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": ok("the tenant", detail)
            } },
            "/api/v1/tenants/{id}/privacy": {
                "get": {
                    "summary": "A tenant's privacy configuration: storage and LLM, who manages each, hosted fallback",
                    "operationId": "tenantPrivacy",
                    "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
                    "responses": ok("the configuration", privacy)
                },
                "put": {
                    "summary": "Replace a tenant's storage and LLM configuration (operator role)",
                    "operationId": "setTenantPrivacy",
                    "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
                    "requestBody": { "required": true, "content": { "application/json": { "schema": set_privacy } } },
                    "responses": change_responses()
                }
            },
            "/api/v1/tenants/{id}/privacy/hosted-fallback": { "put": {
                "summary": "Enable (with a reason) or disable hosted fallback (operator role)",
                "operationId": "setTenantHostedFallback",
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
                "requestBody": { "required": true, "content": { "application/json": { "schema": set_fallback } } },
                "responses": change_responses()
            } },
            "/api/v1/tenants/{id}/effective-config": { "get": {
                "summary": "What the document workers must use for this tenant now, failing closed (service or operator role)",
                "operationId": "tenantEffectiveConfig",
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": effective_responses(effective)
            } },
            "/api/v1/audit": { "get": {
                "summary": "The audit log, paged",
                "operationId": "audit",
                "parameters": [
                    { "name": "after", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 0 } },
                    { "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 500 } }
                ],
                "responses": ok("entries after `after`, oldest first", audit)
            } },
            "/api/v1/heartbeat/round": { "post": {
                "summary": "Run a heartbeat round now (operator role)",
                "operationId": "heartbeatRound",
                "responses": ok("the round ran", json!({ "type": "object" }))
            } },
            "/metrics": { "get": { "summary": "Prometheus metrics", "operationId": "metrics", "responses": {
                "200": { "description": "text exposition format", "content": { "text/plain": { "schema": { "type": "string" } } } }
            } } },
            "/healthz": { "get": { "summary": "Liveness probe (no token)", "operationId": "healthz", "security": [], "responses": {
                "200": { "description": "ok", "content": { "text/plain": { "schema": { "type": "string" } } } }
            } } }
        }
    })
}

/// `GET /api/v1/openapi.json` (viewer token).
pub async fn handler(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    state.tokens.check(&headers, TokenRole::Viewer)?;
    Ok(Json(document()))
}
