//! The handlebars engine that turns a stack's template and shape into JSON text.
//!
//! Rules that make rendering safe, enforced here and not by convention:
//! - strict mode: a variable missing from the shape is an error, not an empty
//!   string;
//! - values enter the template only through the `json` helper, which writes
//!   them JSON-encoded (`"a\"b"`, `30`, `true`), so no value can end a string
//!   early or add structure;
//! - the escape function JSON-encodes too, so a plain `{{value}}` that slipped
//!   past review still yields a quoted string rather than raw text (a unit
//!   test also rejects any template that uses one);
//! - the output is parsed as JSON before anyone sees it.
//!
//! This module never does I/O: templates are compiled into the crate.

use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, JsonTruthy, Output, RenderContext,
    RenderErrorReason, Renderable,
};
use serde::Serialize;

/// A template source compiled into the crate: (name, handlebars text).
pub(crate) type TemplateSource = (&'static str, &'static str);

/// Why a template could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The template itself does not compile; a bug in the crate.
    #[error("template {template} does not compile")]
    Compile {
        /// Template name.
        template: &'static str,
        /// Handlebars' own error.
        #[source]
        source: Box<handlebars::TemplateError>,
    },
    /// Rendering failed, most often because the shape lacks a variable the
    /// template uses (strict mode).
    #[error("rendering template {template} failed")]
    Render {
        /// Template name.
        template: &'static str,
        /// Handlebars' own error.
        #[source]
        source: Box<handlebars::RenderError>,
    },
    /// The rendered text is not JSON; a bug in the template.
    #[error("template {template} rendered text that is not valid JSON")]
    NotJson {
        /// Template name.
        template: &'static str,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
}

/// A compiled set of templates with the safety rules applied.
#[derive(Debug)]
pub struct Engine {
    registry: Handlebars<'static>,
}

impl Engine {
    /// Compiles `sources` into a strict registry with the `json` helper.
    pub(crate) fn new(sources: &[TemplateSource]) -> Result<Self, RenderError> {
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        registry.set_prevent_indent(true);
        registry.register_escape_fn(json_escape);
        registry.register_helper("json", Box::new(json_helper));
        registry.register_helper("if", Box::new(StrictIf));
        for (name, text) in sources {
            registry
                .register_template_string(name, text)
                .map_err(|source| RenderError::Compile {
                    template: name,
                    source: Box::new(source),
                })?;
        }
        Ok(Self { registry })
    }

    /// Renders template `name` with `context` and parses the result as JSON.
    pub(crate) fn render_json(
        &self,
        name: &'static str,
        context: &impl Serialize,
    ) -> Result<serde_json::Value, RenderError> {
        let text = self
            .registry
            .render(name, context)
            .map_err(|source| RenderError::Render {
                template: name,
                source: Box::new(source),
            })?;
        serde_json::from_str(&text).map_err(|source| RenderError::NotJson {
            template: name,
            source,
        })
    }
}

/// Escape function: whatever reaches the output through a plain `{{value}}`
/// becomes a JSON string literal.
fn json_escape(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

/// `{{#if value}}...{{else}}...{{/if}}` that, unlike the built-in, treats a
/// missing variable as an error: a typo in a condition must not silently drop
/// a resource.
#[derive(Debug, Clone, Copy)]
struct StrictIf;

impl HelperDef for StrictIf {
    fn call<'reg: 'rc, 'rc>(
        &self,
        helper: &Helper<'rc>,
        registry: &'reg Handlebars<'reg>,
        context: &'rc Context,
        rc: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        strict_if(helper, registry, context, rc, out)
    }
}

fn strict_if<'reg: 'rc, 'rc>(
    helper: &Helper<'rc>,
    registry: &'reg Handlebars<'reg>,
    context: &'rc Context,
    rc: &mut RenderContext<'reg, 'rc>,
    out: &mut dyn Output,
) -> HelperResult {
    let param = helper
        .param(0)
        .ok_or(RenderErrorReason::ParamNotFoundForIndex("if", 0))?;
    if param.is_value_missing() {
        let path = param.relative_path().cloned().unwrap_or_default();
        return Err(RenderErrorReason::MissingVariable(Some(path)).into());
    }
    let branch = if param.value().is_truthy(false) {
        helper.template()
    } else {
        helper.inverse()
    };
    match branch {
        Some(template) => template.render(registry, context, rc, out),
        None => Ok(()),
    }
}

/// `{{json value}}`: writes `value` JSON-encoded. Exactly one parameter.
fn json_helper(
    helper: &Helper<'_>,
    _: &Handlebars<'_>,
    _: &Context,
    _: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    if helper.params().len() != 1 {
        return Err(RenderErrorReason::Other("`json` takes exactly one parameter".into()).into());
    }
    let param = helper
        .param(0)
        .ok_or_else(|| RenderErrorReason::ParamNotFoundForIndex("json", 0))?;
    if param.is_value_missing() {
        let path = param.relative_path().cloned().unwrap_or_default();
        return Err(RenderErrorReason::MissingVariable(Some(path)).into());
    }
    out.write(&param.value().to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn engine(text: &'static str) -> Engine {
        Engine::new(&[("t", text)]).unwrap()
    }

    #[test]
    fn hostile_values_stay_values() {
        let e = engine(r#"{"A": {{json a}}, "B": [{{json b}}], "C": {{json c}}}"#);
        let hostile = [
            "\"}, \"Injected\": {\"x\": \"",
            "line1\nline2\r\n\t",
            "{{json a}} {{{a}}} {{> partial}}",
            "\\\"\\\\",
            "</script><!--",
            "\u{0000}\u{2028}",
        ];
        for value in hostile {
            let rendered = e
                .render_json("t", &json!({"a": value, "b": value, "c": {"k": value}}))
                .unwrap();
            assert_eq!(rendered["A"], json!(value));
            assert_eq!(rendered["B"], json!([value]));
            assert_eq!(rendered["C"], json!({"k": value}));
            assert_eq!(
                rendered.as_object().unwrap().len(),
                3,
                "structure injected by {value:?}"
            );
        }
    }

    #[test]
    fn plain_mustache_is_escaped_to_a_string() {
        let e = engine(r#"{"A": {{a}}}"#);
        let rendered = e
            .render_json("t", &json!({"a": "x\", \"B\": \"y"}))
            .unwrap();
        assert_eq!(rendered, json!({"A": "x\", \"B\": \"y"}));
    }

    #[test]
    fn missing_variables_are_errors() {
        let e = engine(r#"{"A": {{json missing}}}"#);
        let err = e.render_json("t", &json!({})).unwrap_err();
        assert!(matches!(err, RenderError::Render { .. }), "{err:?}");
        let e = engine(r#"{ {{#if missing}}"A": 1{{/if}} }"#);
        assert!(e.render_json("t", &json!({})).is_err());
    }

    #[test]
    fn numbers_and_booleans_keep_their_type() {
        let e = engine(r#"{"N": {{json n}}, "B": {{json b}}, "Z": {{json z}}}"#);
        let rendered = e
            .render_json("t", &json!({"n": 30, "b": true, "z": null}))
            .unwrap();
        assert_eq!(rendered, json!({"N": 30, "B": true, "Z": null}));
    }

    #[test]
    fn invalid_output_is_reported() {
        let e = engine(r#"{"A": }"#);
        assert!(matches!(
            e.render_json("t", &json!({})),
            Err(RenderError::NotJson { .. })
        ));
    }
}
