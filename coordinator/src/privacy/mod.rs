//! Tenant privacy configuration: where a tenant's documents are stored and
//! whose LLM keys process them, and whether it may ever fall back to the
//! vendor's hosted defaults.
//!
//! The configuration is kept in the coordinator's store, versioned, and
//! every change is an audit entry with the actor ([`change`]). The manifest
//! says what a tenant is *entitled* to (capabilities); this says what it
//! *uses*, and a mode the tenant is not entitled to is refused.

pub mod change;
pub mod config;
pub mod view;

pub use config::{ConfigProblem, LlmMode, ManagedBy, PrivacyConfig, Provider, StorageMode};
