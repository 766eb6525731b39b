//! The stacks this release ships, each a [`crate::Stack`] with its shape,
//! parameters and outputs. Templates live in `stacks/templates/`.

pub mod bootstrap;
pub mod examples;
pub mod storage;
pub mod worker;
