//! The typed-stack contract and the release that renders stacks.
//!
//! A [`Stack`] ties a template to three types: a render-time `Shape`
//! (structural choices), deploy-time `Parameters` (passed to CloudFormation)
//! and `Outputs` (parsed back from `DescribeStacks`). A [`Release`] holds the
//! compiled templates of one version and renders a stack into a checked
//! [`RenderedStack`]: the template, its hash, and the parameter list. On
//! every render the template is compared with the types: the declared
//! CloudFormation parameters must be exactly the `Parameters` fields, and the
//! declared outputs must cover the required `Outputs` fields and nothing the
//! type does not know.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::builtin::{bootstrap, storage, worker};
use crate::ids::ReleaseVersion;
use crate::outputs::OutputsError;
use crate::render::{Engine, RenderError, TemplateSource};
use crate::template::{Problem, Template, TemplateError, TemplateHash};

/// The vendor's stacks, in dependency order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum StackKind {
    /// Deployed once by the customer: the roles the coordinator uses.
    Bootstrap,
    /// Bucket and KMS key for documents.
    Storage,
    /// Queues, the LLM key secret and the worker role.
    Worker,
}

impl StackKind {
    /// Every stack kind, in dependency order.
    pub const ALL: &'static [StackKind] =
        &[StackKind::Bootstrap, StackKind::Storage, StackKind::Worker];

    /// The short name (`bootstrap`, `storage`, `worker`).
    pub fn as_str(self) -> &'static str {
        match self {
            StackKind::Bootstrap => "bootstrap",
            StackKind::Storage => "storage",
            StackKind::Worker => "worker",
        }
    }

    /// The CloudFormation stack name in the customer's account.
    pub fn stack_name(self) -> &'static str {
        match self {
            StackKind::Bootstrap => "docproc-bootstrap",
            StackKind::Storage => "docproc-storage",
            StackKind::Worker => "docproc-worker",
        }
    }

    /// The handlebars template name.
    fn template(self) -> &'static str {
        match self {
            StackKind::Bootstrap => "bootstrap.json",
            StackKind::Storage => "storage.json",
            StackKind::Worker => "worker.json",
        }
    }
}

impl fmt::Display for StackKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for StackKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        StackKind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!("unknown stack {s:?}: expected one of bootstrap, storage, worker")
            })
    }
}

/// A stack's typed contract.
pub trait Stack {
    /// Which stack this is.
    const KIND: StackKind;
    /// Render-time structural choices.
    type Shape: Serialize + JsonSchema;
    /// Deploy-time CloudFormation parameters; field names in PascalCase are
    /// the template's parameter names.
    type Parameters: Serialize + DeserializeOwned + JsonSchema;
    /// What the stack returns.
    type Outputs: Serialize + JsonSchema + Sized;

    /// The handlebars context for `shape`. The default exposes it as `shape`.
    fn context(shape: &Self::Shape) -> Value {
        json!({ "shape": shape })
    }

    /// Parses the raw outputs of a deployed stack.
    fn parse_outputs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self::Outputs, OutputsError>;
}

/// One CloudFormation parameter as sent to `CreateStack`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Parameter {
    /// The template's parameter name.
    pub parameter_key: String,
    /// The value, as CloudFormation takes it (always a string).
    pub parameter_value: String,
}

/// A stack ready to deploy: checked template plus parameters.
#[derive(Debug, Clone)]
pub struct RenderedStack {
    /// Which stack.
    pub kind: StackKind,
    /// The release it was rendered from.
    pub release: ReleaseVersion,
    /// The checked template.
    pub template: Template,
    /// Parameters in template order of names.
    pub parameters: Vec<Parameter>,
}

impl RenderedStack {
    /// The template's hash.
    pub fn template_hash(&self) -> &TemplateHash {
        self.template.hash()
    }
}

/// Why a stack could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// Handlebars failed or produced invalid JSON.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// The rendered template failed its checks.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// Parameters did not serialize to flat scalar values; a bug in a type.
    #[error("parameter {name} of the {stack} stack is not a string, number or boolean")]
    ParameterType {
        /// Which stack.
        stack: StackKind,
        /// The parameter.
        name: String,
    },
}

/// What a stack's types declare, computed once per release.
#[derive(Debug)]
struct Declaration {
    parameters: BTreeSet<String>,
    outputs_known: BTreeSet<String>,
    outputs_required: BTreeSet<String>,
}

impl Declaration {
    fn of<S: Stack>() -> Self {
        let params = schemars::schema_for!(S::Parameters);
        let outputs = schemars::schema_for!(S::Outputs);
        let keys = |schema: &schemars::Schema, field: &str| -> BTreeSet<String> {
            match schema.get(field) {
                Some(Value::Object(map)) => map.keys().cloned().collect(),
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                _ => BTreeSet::new(),
            }
        };
        Self {
            parameters: keys(&params, "properties"),
            outputs_known: keys(&outputs, "properties"),
            outputs_required: keys(&outputs, "required"),
        }
    }

    fn check(&self, template: &Template) -> Vec<Problem> {
        let mut problems = Vec::new();
        let declared: BTreeSet<String> = template
            .parameter_names()
            .into_iter()
            .map(str::to_owned)
            .collect();
        for missing in self.parameters.difference(&declared) {
            problems.push(Problem {
                at: "/Parameters".into(),
                message: format!("typed parameter {missing} is not declared in the template"),
            });
        }
        for extra in declared.difference(&self.parameters) {
            problems.push(Problem {
                at: format!("/Parameters/{extra}"),
                message: format!("template parameter {extra} has no typed field"),
            });
        }
        let outputs: BTreeSet<String> = template
            .output_names()
            .into_iter()
            .map(str::to_owned)
            .collect();
        for missing in self.outputs_required.difference(&outputs) {
            problems.push(Problem {
                at: "/Outputs".into(),
                message: format!("required output {missing} is not declared in the template"),
            });
        }
        for extra in outputs.difference(&self.outputs_known) {
            problems.push(Problem {
                at: format!("/Outputs/{extra}"),
                message: format!("template output {extra} has no typed field"),
            });
        }
        problems
    }
}

/// The templates of one release, compiled, with their typed declarations.
#[derive(Debug)]
pub struct Release {
    version: ReleaseVersion,
    engine: Engine,
    declarations: BTreeMap<StackKind, Declaration>,
}

/// The release this build of the crate ships.
pub const RELEASE_VERSION: &str = "2026.11.0";

const BUILTIN_TEMPLATES: &[TemplateSource] = &[
    (
        "bootstrap.json",
        include_str!("../templates/bootstrap.json.hbs"),
    ),
    (
        "storage.json",
        include_str!("../templates/storage.json.hbs"),
    ),
    ("worker.json", include_str!("../templates/worker.json.hbs")),
];

impl Release {
    /// The release compiled into this crate.
    pub fn builtin() -> &'static Release {
        static BUILTIN: std::sync::OnceLock<Release> = std::sync::OnceLock::new();
        BUILTIN.get_or_init(|| {
            let version = RELEASE_VERSION
                .parse()
                .expect("the built-in release version is valid");
            Release::from_sources(version, BUILTIN_TEMPLATES)
                .expect("the built-in templates compile")
        })
    }

    /// A release from other template sources (tests, release candidates).
    /// `sources` must name `bootstrap.json`, `storage.json` and `worker.json`.
    pub fn from_sources(
        version: ReleaseVersion,
        sources: &[(&'static str, &'static str)],
    ) -> Result<Release, RenderError> {
        let declarations = BTreeMap::from([
            (
                StackKind::Bootstrap,
                Declaration::of::<bootstrap::Bootstrap>(),
            ),
            (StackKind::Storage, Declaration::of::<storage::Storage>()),
            (StackKind::Worker, Declaration::of::<worker::Worker>()),
        ]);
        Ok(Release {
            version,
            engine: Engine::new(sources)?,
            declarations,
        })
    }

    /// The built-in template sources, for tools that derive a release from them.
    pub fn builtin_sources() -> &'static [(&'static str, &'static str)] {
        BUILTIN_TEMPLATES
    }

    /// This release's version.
    pub fn version(&self) -> &ReleaseVersion {
        &self.version
    }

    /// Renders and checks the template of stack `S` for `shape`. The template
    /// does not depend on parameters; use this when they are not all known
    /// yet (a worker's parameters come from the storage stack's outputs).
    pub fn render_template<S: Stack>(&self, shape: &S::Shape) -> Result<Template, StackError> {
        let kind = S::KIND;
        let body = self
            .engine
            .render_json(kind.template(), &S::context(shape))?;
        let template = Template::new(kind.stack_name(), body)?;
        let problems = self.declarations[&kind].check(&template);
        if !problems.is_empty() {
            return Err(TemplateError {
                name: kind.stack_name().to_owned(),
                problems,
            }
            .into());
        }
        Ok(template)
    }

    /// Renders and checks stack `S` with `shape` and `parameters`.
    pub fn render<S: Stack>(
        &self,
        shape: &S::Shape,
        parameters: &S::Parameters,
    ) -> Result<RenderedStack, StackError> {
        let kind = S::KIND;
        let template = self.render_template::<S>(shape)?;
        Ok(RenderedStack {
            kind,
            release: self.version.clone(),
            template,
            parameters: to_parameters(kind, parameters)?,
        })
    }
}

/// Flattens a typed parameters struct into CloudFormation's string pairs.
fn to_parameters(
    kind: StackKind,
    parameters: &impl Serialize,
) -> Result<Vec<Parameter>, StackError> {
    let value = serde_json::to_value(parameters).map_err(|_| StackError::ParameterType {
        stack: kind,
        name: "(all)".into(),
    })?;
    let Value::Object(map) = value else {
        return Err(StackError::ParameterType {
            stack: kind,
            name: "(all)".into(),
        });
    };
    let mut out = Vec::with_capacity(map.len());
    for (name, value) in map {
        let text = match value {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return Err(StackError::ParameterType { stack: kind, name }),
        };
        out.push(Parameter {
            parameter_key: name,
            parameter_value: text,
        });
    }
    out.sort();
    Ok(out)
}
