//! The coordinator: deploys the vendor's stacks into customer AWS accounts
//! and watches them.
//!
//! Data flows one way: the fleet manifest ([`manifest`]) says what each
//! tenant should have; [`desired`] turns that into rendered stacks with their
//! parameters (templates come from the `stacks` crate); later stages observe
//! the accounts, plan, apply, roll out and heartbeat. [`cli`] is the
//! `coordinator` binary's front end; [`schemas`] publishes the JSON Schemas.

pub mod access;
pub mod api;
pub mod apply;
pub mod aws;
pub mod capability_changes;
pub mod cli;
pub mod deploy;
pub mod desired;
pub mod entitlement;
pub mod heartbeat;
pub mod history;
pub mod manifest;
pub mod observe;
pub mod plan;
pub mod privacy;
pub mod probes;
pub mod rollout;
pub mod schemas;
pub mod secrets;
pub mod store;
pub mod wait;
