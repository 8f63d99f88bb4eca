//! The rule in the OpenAPI document: a `pattern` on every string a request carries.

use std::collections::BTreeSet;

use utoipa::openapi::RefOr;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayItems, KnownFormat, Schema, SchemaFormat, SchemaType, Type,
};

use crate::api::input::{BODY_PATTERN, PARAMETER_PATTERN};

/// Declares the control-character rule of [`crate::api::input`]: the matching `pattern` on
/// every string path or query parameter and every string of a JSON request body
/// (in the components those bodies reach) that no pattern, enum or format
/// (other than `password`) constrains already.
pub fn declare_input_rules(spec: &mut utoipa::openapi::OpenApi) {
    let mut reached = BTreeSet::new();
    for item in spec.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            declare_in_operation(operation, &mut reached);
        }
    }
    let Some(components) = spec.components.as_mut() else {
        return;
    };
    let mut pending: Vec<String> = reached.iter().cloned().collect();
    while let Some(name) = pending.pop() {
        let Some(schema) = components.schemas.get_mut(&name) else {
            continue;
        };
        let mut found = BTreeSet::new();
        add_pattern(schema, BODY_PATTERN, &mut found);
        for name in found {
            if reached.insert(name.clone()) {
                pending.push(name);
            }
        }
    }
}

/// Patterns on the operation's parameters and inline body; the components its body names go to `reached`.
fn declare_in_operation(operation: &mut Operation, reached: &mut BTreeSet<String>) {
    for parameter in operation.parameters.iter_mut().flatten() {
        if let RefOr::T(parameter) = parameter
            && matches!(
                parameter.parameter_in,
                ParameterIn::Path | ParameterIn::Query
            )
            && let Some(schema) = parameter.schema.as_mut()
        {
            add_pattern(schema, PARAMETER_PATTERN, &mut BTreeSet::new());
        }
    }
    if let Some(RefOr::T(body)) = operation.request_body.as_mut() {
        for (media_type, content) in &mut body.content {
            if let (true, RefOr::T(content)) = (media_type.ends_with("json"), content)
                && let Some(schema) = content.schema.as_mut()
            {
                add_pattern(schema, BODY_PATTERN, reached);
            }
        }
    }
}

/// Sets `pattern` on the unconstrained strings of `schema`, inline parts included;
/// the components it refers to are added to `refs`.
fn add_pattern(schema: &mut RefOr<Schema>, pattern: &str, refs: &mut BTreeSet<String>) {
    let schema = match schema {
        RefOr::Ref(r) => {
            refs.extend(
                r.ref_location
                    .strip_prefix("#/components/schemas/")
                    .map(str::to_string),
            );
            return;
        }
        RefOr::T(schema) => schema,
    };
    match schema {
        Schema::Object(object) => {
            let is_string = match &object.schema_type {
                SchemaType::Type(t) => *t == Type::String,
                SchemaType::Array(types) => types.contains(&Type::String),
                SchemaType::AnyValue => false,
            };
            let free_format = matches!(
                object.format,
                None | Some(SchemaFormat::KnownFormat(KnownFormat::Password))
            );
            if is_string && free_format && object.pattern.is_none() && object.enum_values.is_none()
            {
                object.pattern = Some(pattern.to_string());
            }
            for property in object.properties.values_mut() {
                add_pattern(property, pattern, refs);
            }
            if let Some(additional) = object.additional_properties.as_deref_mut()
                && let AdditionalProperties::RefOr(additional) = additional
            {
                add_pattern(additional, pattern, refs);
            }
        }
        Schema::Array(array) => {
            if let ArrayItems::RefOrSchema(items) = &mut array.items {
                add_pattern(items, pattern, refs);
            }
        }
        Schema::OneOf(one_of) => one_of
            .items
            .iter_mut()
            .for_each(|s| add_pattern(s, pattern, refs)),
        Schema::AllOf(all_of) => all_of
            .items
            .iter_mut()
            .for_each(|s| add_pattern(s, pattern, refs)),
        Schema::AnyOf(any_of) => any_of
            .items
            .iter_mut()
            .for_each(|s| add_pattern(s, pattern, refs)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::{BODY_PATTERN, PARAMETER_PATTERN};
    use crate::api::input::forbidden_in_parameter;
    use crate::domain::webhooks::Secret;

    fn spec() -> Value {
        serde_json::to_value(crate::api::openapi()).expect("spec")
    }

    fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
        match schema["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
        {
            Some(name) => &spec["components"]["schemas"][name],
            None => schema,
        }
    }

    /// Every string schema under `schema` (components followed once), with where it is.
    fn strings<'a>(
        spec: &'a Value,
        schema: &'a Value,
        at: String,
        seen: &mut Vec<String>,
        out: &mut Vec<(String, &'a Value)>,
    ) {
        if let Some(name) = schema["$ref"].as_str() {
            if seen.iter().any(|s| s == name) {
                return;
            }
            seen.push(name.to_string());
            return strings(spec, resolve(spec, schema), name.to_string(), seen, out);
        }
        let string = schema["type"] == "string"
            || schema["type"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "string"));
        if string {
            out.push((at.clone(), schema));
        }
        for (name, property) in schema["properties"].as_object().into_iter().flatten() {
            strings(spec, property, format!("{at}/{name}"), seen, out);
        }
        for key in ["items", "additionalProperties"] {
            if schema[key].is_object() {
                strings(spec, &schema[key], format!("{at}/{key}"), seen, out);
            }
        }
        for union in ["oneOf", "allOf", "anyOf"] {
            for part in schema[union].as_array().into_iter().flatten() {
                strings(spec, part, at.clone(), seen, out);
            }
        }
    }

    #[test]
    fn every_string_a_request_carries_declares_a_pattern_that_refuses_control_characters() {
        let spec = spec();
        let mut seen = Vec::new();
        let mut found = Vec::new();
        for (path, item) in spec["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                for p in op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["in"] == "path" || p["in"] == "query")
                {
                    strings(
                        &spec,
                        &p["schema"],
                        format!("{method} {path} {}", p["name"]),
                        &mut seen,
                        &mut found,
                    );
                }
                if let Some(schema) = op["requestBody"]["content"]
                    .get("application/json")
                    .map(|c| &c["schema"])
                {
                    strings(
                        &spec,
                        schema,
                        format!("{method} {path} body"),
                        &mut seen,
                        &mut found,
                    );
                }
            }
        }
        assert!(found.len() > 40, "{}", found.len());
        for (at, schema) in found {
            // An enum or a format (a uuid, a date) admits no control character already.
            if schema.get("enum").is_some()
                || schema["format"].as_str().is_some_and(|f| f != "password")
            {
                continue;
            }
            let pattern = schema["pattern"]
                .as_str()
                .unwrap_or_else(|| panic!("{at} declares no pattern: {schema}"));
            let pattern = regex::Regex::new(pattern).expect("a pattern the regex crate reads");
            for c in ['\u{0}', '\u{1b}', '\u{7f}', '\u{9b}'] {
                assert!(
                    !pattern.is_match(&format!("abc{c}def")),
                    "{at} admits U+{:04X}",
                    u32::from(c)
                );
            }
        }
        let schemas = &spec["components"]["schemas"];
        assert_eq!(
            schemas["CreateWebhook"]["properties"]["description"]["pattern"],
            BODY_PATTERN
        );
        assert_eq!(
            schemas["SourceCredentials"]["properties"]["password"]["pattern"],
            BODY_PATTERN
        );
        assert_eq!(schemas["NodeId"]["pattern"], BODY_PATTERN);
        let group_id =
            &spec["paths"]["/api/v1/workspaces/{id}/groups/{group_id}"]["get"]["parameters"][1];
        assert_eq!(
            (&group_id["name"], &group_id["schema"]["pattern"]),
            (&"group_id".into(), &PARAMETER_PATTERN.into())
        );
        // Answers are not requests: what they hold came from the source, so no pattern is promised.
        assert!(
            schemas["Workspace"]["properties"]["name"]
                .get("pattern")
                .is_none()
        );
        assert!(
            schemas["Hit"]["properties"]["name"]
                .get("pattern")
                .is_none()
        );
    }

    fn declared(pointer: &str) -> regex::Regex {
        let spec = spec();
        regex::Regex::new(
            spec.pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("no pattern at {pointer}")),
        )
        .expect("pattern")
    }

    #[test]
    fn the_search_pattern_is_the_search_rule() {
        let parameters = "/paths/~1api~1v1~1workspaces~1{id}~1hierarchy~1search/get/parameters";
        let spec = spec();
        let index = spec
            .pointer(parameters)
            .and_then(Value::as_array)
            .and_then(|p| p.iter().position(|p| p["name"] == "q"))
            .expect("q");
        let pattern = declared(&format!("{parameters}/{index}/schema/pattern"));
        let rule = |q: &str| !q.chars().any(forbidden_in_parameter) && !q.trim().is_empty();
        let mut cases: Vec<String> = [
            "a", " a ", "  ", "", "\u{3000}", "\u{a0}x", "a\u{0}", "\u{feff}", "\t", "\u{85}",
        ]
        .map(String::from)
        .to_vec();
        cases.extend(
            (0..=0x10FFFF)
                .filter_map(char::from_u32)
                .flat_map(|c| [c.to_string(), format!(" {c} "), format!("x{c}")]),
        );
        for q in cases {
            assert_eq!(pattern.is_match(&q), rule(&q), "{q:?}");
        }
    }

    #[test]
    fn the_webhook_secret_pattern_is_what_a_secret_parses_as() {
        use base64::Engine;
        use base64::engine::general_purpose::STANDARD;
        let pattern = declared("/components/schemas/CreateWebhook/properties/secret/pattern");
        let mut cases: Vec<String> = vec![
            "whsec_".into(),
            "whsec_x".into(),
            "nope".into(),
            format!("whsec_{}", STANDARD.encode([1u8; 25]).trim_end_matches('=')),
        ];
        for n in 0..=70usize {
            for fill in [0u8, 1, 0x7f, 0xff] {
                let key: Vec<u8> = (0..n).map(|i| fill.wrapping_add(i as u8)).collect();
                let encoded = STANDARD.encode(&key);
                cases.push(format!("whsec_{encoded}"));
                // The same with bits the padding leaves over set: not canonical base64.
                if let Some(stripped) = encoded
                    .strip_suffix("==")
                    .or_else(|| encoded.strip_suffix('='))
                {
                    let (head, last) = stripped.split_at(stripped.len() - 1);
                    let bumped = if last == "/" { "A" } else { "/" };
                    cases.push(format!(
                        "whsec_{head}{bumped}{}",
                        &encoded[stripped.len()..]
                    ));
                }
            }
        }
        for case in cases {
            assert_eq!(
                pattern.is_match(&case),
                Secret::parse(&case).is_some(),
                "{case}"
            );
        }
    }
}
