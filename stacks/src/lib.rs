//! The vendor's CloudFormation stacks as typed templates.
//!
//! A stack ([`Stack`]) has three typed parts:
//! - a **shape**, chosen at render time, that decides which resources exist
//!   (create a KMS key or use the customer's, create the LLM key secret);
//! - **parameters**, passed to CloudFormation at deploy time;
//! - **outputs**, parsed back from `DescribeStacks` and validated.
//!
//! [`Release::render`] turns a shape and parameters into a [`RenderedStack`]:
//! handlebars in strict mode with every value JSON-encoded ([`render`]), then
//! parsed, checked and hashed ([`template`]), then compared with the types.
//! The built-in stacks are in [`builtin`].
//!
//! ```
//! use stacks::builtin::storage::{Storage, StorageParameters, StorageShape, RetentionDays};
//! use stacks::Release;
//!
//! let release = Release::builtin();
//! let params = StorageParameters {
//!     tenant_id: "acme".parse().unwrap(),
//!     retention_days: RetentionDays::new(30).unwrap(),
//! };
//! let stack = release.render::<Storage>(&StorageShape::default(), &params).unwrap();
//! assert!(stack.template.resources().contains_key("DocumentsBucket"));
//! assert_eq!(stack.template_hash().as_str().len(), 64);
//! ```
//!
//! This crate has no AWS SDK, no async runtime and does no I/O.

#[macro_use]
pub mod ids;
pub mod aws_names;
pub mod builtin;
pub mod outputs;
pub mod render;
pub mod stack;
pub mod template;

pub use stack::{Parameter, RELEASE_VERSION, Release, RenderedStack, Stack, StackError, StackKind};
pub use template::{Template, TemplateHash};
