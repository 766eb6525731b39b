//! The seam over the one Bedrock call the coordinator makes:
//! `ListFoundationModels` in a tenant's account and region, through the
//! tenant's role, for the LLM probe (which checks that a tenant's
//! configured Bedrock model exists and, where documents are sent as
//! images, that it reads them).
//!
//! The SDK implementation lives in `sdk/bedrock.rs`, the in-memory fake in
//! `fake/bedrock.rs` (the moto emulator does not implement this call).
//!
//! What this module must never do: invoke a model. Listing is free and has
//! no side effects; an invocation would cost the customer money and send
//! data to the model.

use std::fmt;

use async_trait::async_trait;

use super::AwsError;

/// A kind of input or output a model handles, as Bedrock names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Modality {
    /// `TEXT`.
    Text,
    /// `IMAGE`: the model reads (or, as an output, draws) images.
    Image,
    /// `EMBEDDING`.
    Embedding,
    /// Anything newer, as sent.
    Other(String),
}

impl Modality {
    /// Bedrock's spelling, e.g. `IMAGE`.
    pub fn as_str(&self) -> &str {
        match self {
            Modality::Text => "TEXT",
            Modality::Image => "IMAGE",
            Modality::Embedding => "EMBEDDING",
            Modality::Other(other) => other,
        }
    }

    /// From Bedrock's spelling.
    pub fn parse(text: &str) -> Self {
        match text {
            "TEXT" => Modality::Text,
            "IMAGE" => Modality::Image,
            "EMBEDDING" => Modality::Embedding,
            other => Modality::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for Modality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// One foundation model as `ListFoundationModels` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundationModel {
    /// The model id, e.g. `anthropic.claude-3-5-sonnet-20240620-v1:0`.
    pub id: String,
    /// What it reads (`inputModalities`).
    pub input_modalities: Vec<Modality>,
}

impl FoundationModel {
    /// A model with this id reading these modalities.
    pub fn new(id: impl Into<String>, input_modalities: &[Modality]) -> Self {
        Self {
            id: id.into(),
            input_modalities: input_modalities.to_vec(),
        }
    }

    /// Whether Bedrock says the model reads images.
    pub fn reads_images(&self) -> bool {
        self.input_modalities.contains(&Modality::Image)
    }
}

/// The Bedrock calls the coordinator makes, in one account and region.
#[async_trait]
pub trait Bedrock: Send + Sync + fmt::Debug {
    /// `ListFoundationModels` (every model the region offers, whether or not
    /// the account was granted access to it).
    async fn list_foundation_models(&self) -> Result<Vec<FoundationModel>, AwsError>;
}
