//! Bearer tokens: configured as SHA-256 hashes, presented as
//! `Authorization: Bearer <token>` or, for the dashboard in a browser, as the
//! `docproc_token` cookie set by `/login`. Comparison is constant-time over
//! the hash. The token itself is never stored, logged or returned.

use axum::http::{HeaderMap, StatusCode, header};
use sha2::{Digest, Sha256};

use crate::manifest::raw::{RawToken, TokenRole};

/// Name of the session cookie the dashboard uses.
pub const COOKIE: &str = "docproc_token";

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's subject (the actor of audit entries).
    pub subject: String,
    /// Its role.
    pub role: TokenRole,
}

/// The configured tokens.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    entries: Vec<RawToken>,
}

/// SHA-256 of a token, as configured.
pub fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A new random token: `dpt_` and 64 hex digits (256 bits).
pub fn generate() -> String {
    format!(
        "dpt_{:032x}{:032x}",
        rand::random::<u128>(),
        rand::random::<u128>()
    )
}

impl Tokens {
    /// The tokens from the manifest.
    pub fn new(entries: Vec<RawToken>) -> Self {
        Self { entries }
    }

    /// The caller a token belongs to.
    pub fn resolve(&self, token: &str) -> Option<Caller> {
        let presented = hash(token);
        // Check every entry so timing does not reveal which one matched.
        let mut found = None;
        for entry in &self.entries {
            if constant_time_eq(presented.as_bytes(), entry.sha256.as_bytes()) {
                found = Some(Caller {
                    subject: entry.subject.clone(),
                    role: entry.role,
                });
            }
        }
        found
    }

    /// Authenticates a request and checks its role: 401 without a valid
    /// token, 403 with one whose role is not enough.
    pub fn check(&self, headers: &HeaderMap, needed: TokenRole) -> Result<Caller, StatusCode> {
        let token = bearer(headers)
            .or_else(|| cookie(headers))
            .ok_or(StatusCode::UNAUTHORIZED)?;
        let caller = self.resolve(&token).ok_or(StatusCode::UNAUTHORIZED)?;
        let allowed = match needed {
            // A service token reads nothing but what it is for.
            TokenRole::Viewer => caller.role != TokenRole::Service,
            TokenRole::Operator => caller.role == TokenRole::Operator,
            TokenRole::Service => caller.role != TokenRole::Viewer,
        };
        if allowed {
            Ok(caller)
        } else {
            Err(StatusCode::FORBIDDEN)
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?;
    (!token.trim().is_empty()).then(|| token.trim().to_owned())
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE && !value.is_empty()).then(|| value.to_owned())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn tokens() -> (Tokens, String, String) {
        let (viewer, operator) = (generate(), generate());
        let t = Tokens::new(vec![
            RawToken {
                subject: "wall".into(),
                role: TokenRole::Viewer,
                sha256: hash(&viewer),
            },
            RawToken {
                subject: "sre".into(),
                role: TokenRole::Operator,
                sha256: hash(&operator),
            },
        ]);
        (t, viewer, operator)
    }

    fn headers(auth: Option<&str>, cookie: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(a).unwrap());
        }
        if let Some(c) = cookie {
            h.insert(header::COOKIE, HeaderValue::from_str(c).unwrap());
        }
        h
    }

    #[test]
    fn roles_and_failures() {
        let (t, viewer, operator) = tokens();
        assert_eq!(
            t.check(&headers(None, None), TokenRole::Viewer),
            Err(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            t.check(&headers(Some("Bearer nope"), None), TokenRole::Viewer),
            Err(StatusCode::UNAUTHORIZED)
        );
        let v = format!("Bearer {viewer}");
        assert_eq!(
            t.check(&headers(Some(&v), None), TokenRole::Viewer)
                .unwrap()
                .subject,
            "wall"
        );
        assert_eq!(
            t.check(&headers(Some(&v), None), TokenRole::Operator),
            Err(StatusCode::FORBIDDEN)
        );
        let o = format!("Bearer {operator}");
        assert_eq!(
            t.check(&headers(Some(&o), None), TokenRole::Operator)
                .unwrap()
                .subject,
            "sre"
        );
        let c = format!("theme=dark; {COOKIE}={viewer}");
        assert_eq!(
            t.check(&headers(None, Some(&c)), TokenRole::Viewer)
                .unwrap()
                .role,
            TokenRole::Viewer
        );
    }

    #[test]
    fn tokens_are_long_and_random() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert_eq!(a.len(), 68);
        assert_eq!(hash(&a).len(), 64);
    }
}
