//! JSON body templates with `{{column}}` placeholders.
//!
//! A template is a JSON tree compiled once per profile. Rendering rules, chosen so that a
//! sheet never blanks data it did not mention:
//! - a string leaf that is exactly one placeholder takes the column's *typed* value
//!   (number, bool, list, object);
//! - mixed text interpolates the values (JSON escaping is done by serde_json when the tree
//!   is serialised, so `O"Neil` is always safe);
//! - a placeholder whose cell is empty makes its field disappear; an object or array that
//!   ends up with nothing from the sheet disappears too;
//! - an object may carry `"$present": "col"` (or a list): it is sent only when those cells
//!   are filled (an email object with a literal `"type": "work"` must not be sent alone);
//! - the profile's clear marker (`<clear>`) sends `null`, blanking a field on purpose.

use std::borrow::Cow;

use serde_json::{Map, Value};

/// The value of one placeholder during rendering.
#[derive(Debug, Clone)]
pub enum Var<'a> {
    /// The cell is empty: leave the field out.
    Empty,
    /// The cell holds the clear marker: send `null`.
    Clear,
    Value(Cow<'a, Value>),
}

/// Where placeholders get their values.
pub trait Scope {
    fn var(&self, name: &str) -> Var<'_>;
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Var(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    /// No placeholder anywhere below.
    Literal(Value),
    /// A string that is exactly one placeholder.
    Exact(String),
    /// Text with placeholders.
    Mixed(Vec<Part>),
    Object {
        fields: Vec<(String, Node)>,
        present: Vec<String>,
    },
    Array(Vec<Node>),
}

/// A compiled body template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    root: Node,
}

/// Splits text into literal parts and placeholders. `{{ name }}` (spaces allowed).
fn parse_parts(s: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start + 2..].find("}}") else {
            break;
        };
        if start > 0 {
            parts.push(Part::Lit(rest[..start].to_string()));
        }
        let name = rest[start + 2..start + 2 + len].trim();
        parts.push(Part::Var(name.to_string()));
        rest = &rest[start + 2 + len + 2..];
    }
    if !rest.is_empty() {
        parts.push(Part::Lit(rest.to_string()));
    }
    parts
}

/// The placeholder names in a text, in order.
pub fn placeholders(s: &str) -> Vec<String> {
    parse_parts(s)
        .into_iter()
        .filter_map(|p| match p {
            Part::Var(v) => Some(v),
            Part::Lit(_) => None,
        })
        .collect()
}

/// Interpolates a text (path, query value, default). Returns `None` when every placeholder
/// in it is empty (and it has at least one). `encode` is applied to each value (URL paths).
pub fn interpolate(s: &str, scope: &dyn Scope, encode: &dyn Fn(&str) -> String) -> Option<String> {
    // Runs for every row (paths, queries, headers, defaults): scans the text in place, the
    // same way as `parse_parts`, without building a list of parts first.
    let mut out = String::with_capacity(s.len() + 16);
    let mut vars = 0;
    let mut filled = 0;
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start + 2..].find("}}") else {
            break;
        };
        out.push_str(&rest[..start]);
        let name = rest[start + 2..start + 2 + len].trim();
        vars += 1;
        if let Var::Value(val) = scope.var(name) {
            filled += 1;
            out.push_str(&encode(&value_text(&val)));
        }
        rest = &rest[start + 2 + len + 2..];
    }
    out.push_str(rest);
    if vars > 0 && filled == 0 {
        None
    } else {
        Some(out)
    }
}

/// The text of a value as it appears inside interpolated text.
pub fn value_text(v: &Value) -> Cow<'_, str> {
    match v {
        Value::String(s) => Cow::Borrowed(s),
        Value::Null => Cow::Borrowed(""),
        Value::Array(items) => Cow::Owned(
            items
                .iter()
                .map(|i| value_text(i).into_owned())
                .collect::<Vec<_>>()
                .join(","),
        ),
        other => Cow::Owned(other.to_string()),
    }
}

fn has_vars(n: &Node) -> bool {
    !matches!(n, Node::Literal(_))
}

fn compile(v: &Value) -> Node {
    match v {
        Value::String(s) => {
            if !s.contains("{{") {
                return Node::Literal(v.clone());
            }
            let parts = parse_parts(s);
            match parts.as_slice() {
                [Part::Var(name)] => Node::Exact(name.clone()),
                _ if parts.iter().any(|p| matches!(p, Part::Var(_))) => Node::Mixed(parts),
                _ => Node::Literal(v.clone()),
            }
        }
        Value::Object(map) => {
            let mut present = Vec::new();
            let mut fields = Vec::with_capacity(map.len());
            for (k, child) in map {
                if k == "$present" {
                    match child {
                        Value::String(s) => present.push(s.clone()),
                        Value::Array(a) => {
                            present.extend(a.iter().filter_map(|x| x.as_str().map(str::to_string)))
                        }
                        _ => {}
                    }
                    continue;
                }
                fields.push((k.clone(), compile(child)));
            }
            if present.is_empty() && fields.iter().all(|(_, n)| !has_vars(n)) {
                Node::Literal(v.clone())
            } else {
                Node::Object { fields, present }
            }
        }
        Value::Array(items) => {
            let nodes: Vec<Node> = items.iter().map(compile).collect();
            if nodes.iter().all(|n| !has_vars(n)) {
                Node::Literal(v.clone())
            } else {
                Node::Array(nodes)
            }
        }
        other => Node::Literal(other.clone()),
    }
}

fn render(n: &Node, scope: &dyn Scope) -> Option<Value> {
    match n {
        Node::Literal(v) => Some(v.clone()),
        Node::Exact(name) => match scope.var(name) {
            Var::Empty => None,
            Var::Clear => Some(Value::Null),
            Var::Value(v) => Some(v.into_owned()),
        },
        Node::Mixed(parts) => {
            let mut out = String::new();
            let mut filled = false;
            for p in parts {
                match p {
                    Part::Lit(l) => out.push_str(l),
                    Part::Var(name) => {
                        if let Var::Value(v) = scope.var(name) {
                            filled = true;
                            out.push_str(&value_text(&v));
                        }
                    }
                }
            }
            filled.then(|| Value::String(out.trim().to_string()))
        }
        Node::Object { fields, present } => {
            if present
                .iter()
                .any(|p| !matches!(scope.var(p), Var::Value(_)))
            {
                return None;
            }
            let mut map = Map::with_capacity(fields.len());
            let mut from_sheet = false;
            for (k, child) in fields {
                if let Some(v) = render(child, scope) {
                    from_sheet |= has_vars(child);
                    map.insert(k.clone(), v);
                }
            }
            // An object whose every sheet-fed field was left out is itself left out.
            (from_sheet || !present.is_empty()).then_some(Value::Object(map))
        }
        Node::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            let mut from_sheet = false;
            for child in items {
                if let Some(v) = render(child, scope) {
                    from_sheet |= has_vars(child);
                    out.push(v);
                }
            }
            from_sheet.then_some(Value::Array(out))
        }
    }
}

fn collect_names(n: &Node, out: &mut Vec<String>) {
    match n {
        Node::Literal(_) => {}
        Node::Exact(name) => out.push(name.clone()),
        Node::Mixed(parts) => out.extend(parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v.clone()),
            Part::Lit(_) => None,
        })),
        Node::Object { fields, present } => {
            out.extend(present.iter().cloned());
            for (_, c) in fields {
                collect_names(c, out);
            }
        }
        Node::Array(items) => items.iter().for_each(|c| collect_names(c, out)),
    }
}

impl Template {
    pub fn compile(v: &Value) -> Template {
        Template { root: compile(v) }
    }

    /// Renders the body for one row. An entirely empty result is an empty object.
    pub fn render(&self, scope: &dyn Scope) -> Value {
        render(&self.root, scope).unwrap_or_else(|| Value::Object(Map::new()))
    }

    /// Every placeholder name used.
    pub fn names(&self) -> Vec<String> {
        let mut v = Vec::new();
        collect_names(&self.root, &mut v);
        v
    }

    pub fn uses(&self, name: &str) -> bool {
        self.names().iter().any(|n| n == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    struct M(HashMap<&'static str, Option<Value>>);
    impl Scope for M {
        fn var(&self, name: &str) -> Var<'_> {
            match self.0.get(name) {
                None => Var::Empty,
                Some(None) => Var::Clear,
                Some(Some(v)) => Var::Value(Cow::Borrowed(v)),
            }
        }
    }

    #[test]
    fn typed_values_mixed_text_and_omission() {
        let t = Template::compile(&json!({
            "userId": "{{userId}}",
            "ext": "{{extension}}",
            "aliases": "{{aliases}}",
            "display": "{{first}} {{last}}",
            "address": {"city": "{{city}}", "zip": "{{zip}}"},
            "emails": [{"$present": "email", "value": "{{email}}", "type": "work"}],
            "dept": "{{dept}}",
            "fixed": {"a": 1}
        }));
        let m = M([
            ("userId", Some(json!("a@b"))),
            ("extension", Some(json!(1234))),
            ("aliases", Some(json!(["x", "y"]))),
            ("first", Some(json!("Sean"))),
            ("last", Some(json!("O\"Neil"))),
            ("dept", None),
        ]
        .into_iter()
        .collect());
        let out = t.render(&m);
        assert_eq!(
            out,
            json!({"userId": "a@b", "ext": 1234, "aliases": ["x", "y"], "display": "Sean O\"Neil",
                   "dept": null, "fixed": {"a": 1}})
        );
        assert!(serde_json::to_string(&out).unwrap().contains(r#"O\"Neil"#));
    }

    #[test]
    fn interpolation_and_placeholders() {
        let m = M([("name", Some(json!("a b/c")))].into_iter().collect());
        let enc = |s: &str| s.replace(' ', "%20").replace('/', "%2F");
        assert_eq!(
            interpolate("/User/{{name}}", &m, &enc).as_deref(),
            Some("/User/a%20b%2Fc")
        );
        assert_eq!(interpolate("{{missing}}", &m, &enc), None);
        assert_eq!(placeholders("{{ a }}x{{b}}"), vec!["a", "b"]);
    }
}
