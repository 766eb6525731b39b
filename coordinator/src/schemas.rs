//! The JSON Schemas the project publishes in `schemas/`, generated from the
//! Rust types: the fleet manifest, each stack's shape, parameters and
//! outputs, and the heartbeat protocol's messages. `coordinator schema --out schemas` regenerates them; a test fails
//! when the committed files drift from the types.

use schemars::JsonSchema;
use stacks::Stack;
use stacks::builtin::bootstrap::Bootstrap;
use stacks::builtin::storage::Storage;
use stacks::builtin::worker::Worker;

use crate::manifest::schema_check::manifest_schema;

/// One generated schema: its path under `schemas/` and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaFile {
    /// Relative path, e.g. `stacks/worker.outputs.schema.json`.
    pub path: String,
    /// Pretty JSON with a trailing newline.
    pub text: String,
}

fn pretty(value: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("schemas serialize");
    text.push('\n');
    text
}

fn schema_of<T: JsonSchema>() -> String {
    pretty(&serde_json::to_value(schemars::schema_for!(T)).expect("schemas serialize"))
}

fn stack_schemas<S: Stack>(out: &mut Vec<SchemaFile>) {
    let name = S::KIND.as_str();
    out.push(SchemaFile {
        path: format!("stacks/{name}.shape.schema.json"),
        text: schema_of::<S::Shape>(),
    });
    out.push(SchemaFile {
        path: format!("stacks/{name}.parameters.schema.json"),
        text: schema_of::<S::Parameters>(),
    });
    out.push(SchemaFile {
        path: format!("stacks/{name}.outputs.schema.json"),
        text: schema_of::<S::Outputs>(),
    });
}

/// Every schema the project publishes, in a stable order.
pub fn all() -> Vec<SchemaFile> {
    let mut out = vec![SchemaFile {
        path: "deploy.schema.json".into(),
        text: pretty(manifest_schema()),
    }];
    stack_schemas::<Bootstrap>(&mut out);
    stack_schemas::<Storage>(&mut out);
    stack_schemas::<Worker>(&mut out);
    for (name, schema) in protocol::schemas() {
        out.push(SchemaFile {
            path: format!("protocol/{name}.schema.json"),
            text: pretty(&schema),
        });
    }
    out
}
