//! The heartbeat protocol: the coordinator sends a [`Ping`] into a tenant's
//! heartbeat request queue; an agent answers with a [`Pong`] on the reply
//! queue, echoing the ping's nonce.
//!
//! Messages are JSON objects with a `type` (`ping` or `pong`) and a protocol
//! version `v`. Decoding tolerates unknown fields (a newer peer may add
//! some) but refuses unknown versions and malformed bodies with a typed
//! [`DecodeError`], so a receiver can count and delete bad messages instead
//! of crashing or retrying them forever. This crate has no AWS or async
//! dependencies so the vendor's worker can embed it.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;

/// Largest message body accepted, in bytes (SQS allows far more).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// A random 128-bit value, as 32 lowercase hex digits, that ties a pong to
/// its ping.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct Nonce(#[schemars(regex(pattern = r"^[0-9a-f]{32}$"))] String);

impl Nonce {
    /// A fresh random nonce.
    pub fn random() -> Self {
        Self(format!("{:032x}", rand::random::<u128>()))
    }

    /// The nonce as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn is_valid(&self) -> bool {
        self.0.len() == 32
            && self
                .0
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }
}

/// The coordinator's question: are you there?
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Ping {
    /// Protocol version.
    pub v: u32,
    /// The tenant the ping is for.
    pub tenant: String,
    /// Per-tenant sequence number, increasing.
    pub seq: u64,
    /// Random; the pong must echo it.
    pub nonce: Nonce,
    /// When the coordinator sent it.
    pub sent_at: DateTime<Utc>,
    /// Which coordinator sent it (several may share a fleet).
    pub coordinator: String,
}

/// The agent's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Pong {
    /// Protocol version.
    pub v: u32,
    /// The tenant, echoed from the ping.
    pub tenant: String,
    /// The ping's sequence number.
    pub seq: u64,
    /// The ping's nonce.
    pub nonce: Nonce,
    /// Which worker answered.
    pub worker_id: String,
    /// The agent's version.
    pub agent_version: String,
    /// When the agent received the ping.
    pub received_at: DateTime<Utc>,
    /// When it replied.
    pub replied_at: DateTime<Utc>,
    /// Approximate number of jobs waiting, if the agent could read it.
    pub job_queue_depth: Option<u64>,
    /// Approximate number of dead-lettered jobs, if known.
    #[serde(default)]
    pub dead_letter_depth: Option<u64>,
}

impl Ping {
    /// A new ping for `tenant` with a fresh nonce, sent now.
    pub fn new(tenant: impl Into<String>, seq: u64, coordinator: impl Into<String>) -> Self {
        Self {
            v: VERSION,
            tenant: tenant.into(),
            seq,
            nonce: Nonce::random(),
            sent_at: Utc::now(),
            coordinator: coordinator.into(),
        }
    }

    /// The pong that answers this ping.
    pub fn answer(
        &self,
        worker_id: &str,
        agent_version: &str,
        received_at: DateTime<Utc>,
        job_queue_depth: Option<u64>,
        dead_letter_depth: Option<u64>,
    ) -> Pong {
        Pong {
            v: VERSION,
            tenant: self.tenant.clone(),
            seq: self.seq,
            nonce: self.nonce.clone(),
            worker_id: worker_id.to_owned(),
            agent_version: agent_version.to_owned(),
            received_at,
            replied_at: Utc::now(),
            job_queue_depth,
            dead_letter_depth,
        }
    }
}

/// Why a message body was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Too large to be ours.
    #[error("message of {0} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge(usize),
    /// Not JSON, or not the expected shape.
    #[error("malformed {expected} message: {reason}")]
    Malformed {
        /// `ping` or `pong`.
        expected: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A `type` other than the one expected.
    #[error("expected a {expected} message, got type {found:?}")]
    WrongType {
        /// What was expected.
        expected: &'static str,
        /// What came.
        found: String,
    },
    /// A protocol version this build does not speak.
    #[error("unsupported protocol version {0} (this build speaks {VERSION})")]
    UnsupportedVersion(u64),
}

/// Encodes a ping as a message body.
pub fn encode_ping(ping: &Ping) -> String {
    encode("ping", ping)
}

/// Encodes a pong as a message body.
pub fn encode_pong(pong: &Pong) -> String {
    encode("pong", pong)
}

fn encode<T: Serialize>(kind: &str, message: &T) -> String {
    let mut value = serde_json::to_value(message).expect("protocol messages serialize");
    if let serde_json::Value::Object(map) = &mut value {
        map.insert("type".into(), kind.into());
    }
    value.to_string()
}

/// Decodes a ping.
pub fn decode_ping(body: &str) -> Result<Ping, DecodeError> {
    let ping: Ping = decode("ping", body)?;
    if !ping.nonce.is_valid() {
        return Err(DecodeError::Malformed {
            expected: "ping",
            reason: "nonce is not 32 hex digits".into(),
        });
    }
    Ok(ping)
}

/// Decodes a pong.
pub fn decode_pong(body: &str) -> Result<Pong, DecodeError> {
    let pong: Pong = decode("pong", body)?;
    if !pong.nonce.is_valid() {
        return Err(DecodeError::Malformed {
            expected: "pong",
            reason: "nonce is not 32 hex digits".into(),
        });
    }
    Ok(pong)
}

fn decode<T: for<'de> Deserialize<'de>>(
    expected: &'static str,
    body: &str,
) -> Result<T, DecodeError> {
    if body.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::TooLarge(body.len()));
    }
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| DecodeError::Malformed {
            expected,
            reason: e.to_string(),
        })?;
    let Some(object) = value.as_object() else {
        return Err(DecodeError::Malformed {
            expected,
            reason: "not a JSON object".into(),
        });
    };
    match object.get("type").and_then(serde_json::Value::as_str) {
        Some(t) if t == expected => {}
        Some(t) => {
            return Err(DecodeError::WrongType {
                expected,
                found: t.to_owned(),
            });
        }
        None => {
            return Err(DecodeError::Malformed {
                expected,
                reason: "no `type` field".into(),
            });
        }
    }
    match object.get("v").and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(VERSION) => {}
        Some(v) => return Err(DecodeError::UnsupportedVersion(v)),
        None => {
            return Err(DecodeError::Malformed {
                expected,
                reason: "no numeric `v` field".into(),
            });
        }
    }
    serde_json::from_value(value).map_err(|e| DecodeError::Malformed {
        expected,
        reason: e.to_string(),
    })
}

/// JSON Schemas of the two messages, for `schemas/`.
pub fn schemas() -> Vec<(&'static str, serde_json::Value)> {
    let with_type = |kind: &str, mut schema: serde_json::Value| {
        if let Some(props) = schema.get_mut("properties").and_then(|p| p.as_object_mut()) {
            props.insert(
                "type".into(),
                serde_json::json!({ "const": kind, "description": "message type" }),
            );
        }
        if let Some(required) = schema.get_mut("required").and_then(|r| r.as_array_mut()) {
            required.push("type".into());
        }
        schema
    };
    vec![
        (
            "ping",
            with_type(
                "ping",
                serde_json::to_value(schemars::schema_for!(Ping)).expect("schemas serialize"),
            ),
        ),
        (
            "pong",
            with_type(
                "pong",
                serde_json::to_value(schemars::schema_for!(Pong)).expect("schemas serialize"),
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let ping = Ping::new("acme", 7, "coord-1");
        assert_eq!(decode_ping(&encode_ping(&ping)).unwrap(), ping);
        let pong = ping.answer("worker-1", "0.1.0", Utc::now(), Some(3), None);
        let decoded = decode_pong(&encode_pong(&pong)).unwrap();
        assert_eq!(decoded, pong);
        assert_eq!(decoded.nonce, ping.nonce);
    }

    #[test]
    fn unknown_fields_are_tolerated() {
        let ping = Ping::new("acme", 1, "c");
        let mut value: serde_json::Value = serde_json::from_str(&encode_ping(&ping)).unwrap();
        value["added_in_a_later_release"] = serde_json::json!({"x": 1});
        assert_eq!(decode_ping(&value.to_string()).unwrap(), ping);
    }

    #[test]
    fn bad_messages_are_typed_errors() {
        let ping = Ping::new("acme", 1, "c");
        let mut v2: serde_json::Value = serde_json::from_str(&encode_ping(&ping)).unwrap();
        v2["v"] = 2.into();
        assert_eq!(
            decode_ping(&v2.to_string()),
            Err(DecodeError::UnsupportedVersion(2))
        );
        assert!(matches!(
            decode_ping("not json"),
            Err(DecodeError::Malformed { .. })
        ));
        assert!(matches!(
            decode_ping("[1,2]"),
            Err(DecodeError::Malformed { .. })
        ));
        assert!(matches!(
            decode_ping(r#"{"type":"ping"}"#),
            Err(DecodeError::Malformed { .. })
        ));
        assert!(matches!(
            decode_pong(&encode_ping(&ping)),
            Err(DecodeError::WrongType { .. })
        ));
        let mut bad_nonce: serde_json::Value = serde_json::from_str(&encode_ping(&ping)).unwrap();
        bad_nonce["nonce"] = "xyz".into();
        assert!(matches!(
            decode_ping(&bad_nonce.to_string()),
            Err(DecodeError::Malformed { .. })
        ));
        assert!(matches!(
            decode_ping(&"x".repeat(MAX_MESSAGE_BYTES + 1)),
            Err(DecodeError::TooLarge(_))
        ));
    }

    #[test]
    fn nonces_are_random_and_well_formed() {
        let (a, b) = (Nonce::random(), Nonce::random());
        assert_ne!(a, b);
        assert!(a.is_valid() && b.is_valid());
    }
}
