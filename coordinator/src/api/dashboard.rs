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

/// Shown instead of the dashboard when the browser has no valid session.
const LOGIN_NEEDED: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>docproc fleet: log in</title></head>\
<body style=\"font-family:system-ui,sans-serif;background:#0d1117;color:#e6edf3;padding:3rem;font-size:1.2rem\">\
<h1>Log in to the docproc fleet dashboard</h1><p>Your session is missing or has expired. Open \
<code>/login?token=&lt;viewer token&gt;</code> with a token from <code>coordinator token new</code>.</p></body></html>";

/// `GET /` (viewer token or the login cookie); without one, a page that
/// says how to log in (a browser cannot show a bare JSON 401 usefully).
pub async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match state.tokens.check(&headers, TokenRole::Viewer) {
        Ok(_) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            INDEX,
        )
            .into_response(),
        Err(code) => (
            code,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            LOGIN_NEEDED,
        )
            .into_response(),
    }
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
