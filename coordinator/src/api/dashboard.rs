//! The dashboard page and its assets, compiled into the binary (no CDN, no
//! external fonts: the machines have no internet).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::manifest::raw::TokenRole;

const INDEX: &str = include_str!("assets/index.html");
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("assets/app.css"),
    ),
];

/// `GET /` (viewer token or the login cookie).
pub async fn index(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.tokens.check(&headers, TokenRole::Viewer)?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        INDEX,
    )
        .into_response())
}

/// `GET /assets/{file}` (viewer token or the login cookie).
pub async fn asset(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    state.tokens.check(&headers, TokenRole::Viewer)?;
    let (_, content_type, body) = ASSETS
        .iter()
        .find(|(name, _, _)| *name == file)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, "no such asset".into()))?;
    Ok(([(header::CONTENT_TYPE, *content_type)], *body).into_response())
}
