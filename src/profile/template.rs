//! JSON body templates with `{{column}}` placeholders.
//!
//! A template is a JSON tree compiled once per profile. Rendering rules, chosen so that a
//! sheet never blanks data it did not mention:
//! - a string leaf that is exactly one placeholder takes the column's *typed* value
//!   (number, bool, list, object);
//! - mixed text (`"{{a}} {{b}}"`, `"[{{tags}}]"`, `"{{a}}-x"`) renders exactly as written,
//!   literal text and spaces kept (nothing is trimmed), each value's text in place of its
//!   placeholder and an empty one as `""`: `"Ann "` when `b` is empty. When *every*
//!   placeholder of the string is empty the field is left out, as a lone `"{{a}}"` would be
//!   (a display name `" "` or a `"[]"` made of nothing is never sent); when every one is
//!   empty or cleared and at least one is cleared (`<clear>`), the field is sent as `null`.
//!   (JSON escaping is done when the text is written, so `O"Neil` is always safe);
//! - a placeholder whose cell is empty makes its field disappear (unless the column's
//!   `empty` rule says otherwise, which the scope decides); an object or array that ends up
//!   with nothing from the sheet disappears too;
//! - an object may carry `"$present": "col"` (or a list): it is sent only when those cells
//!   are filled (an email object with a literal `"type": "work"` must not be sent alone);
//! - the profile's clear marker (`<clear>`) sends `null`, blanking a field on purpose.

use std::borrow::Cow;
use std::sync::LazyLock;

use memchr::memmem;

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

    /// The same for a compiled placeholder; a scope that numbers its values uses the slot
    /// [`Template::resolve`] gave it instead of looking the name up.
    fn var_of(&self, name: &Name) -> Var<'_> {
        self.var(&name.text)
    }

    /// A filled value already serialised as JSON, when the scope keeps it so (a row's
    /// values are serialised once, then copied into every body that uses them). `None`
    /// means: ask [`Scope::var_of`].
    fn json_of(&self, _name: &Name) -> Option<&[u8]> {
        None
    }
}

/// A placeholder of a compiled template: its name and, once resolved, the slot (column
/// index) it names.
#[derive(Debug, Clone)]
pub struct Name {
    pub text: String,
    pub slot: Option<usize>,
}

impl Name {
    fn new(text: &str) -> Name {
        Name {
            text: text.to_string(),
            slot: None,
        }
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        self.text == other.text
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Var(Name),
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    /// No placeholder anywhere below: the JSON text, serialised once.
    Literal(Vec<u8>),
    /// A string that is exactly one placeholder.
    Exact(Name),
    /// Text with placeholders.
    Mixed(Vec<Part>),
    Object {
        /// Each field's key as JSON with its colon (`"city":`), serialised once.
        fields: Vec<(Vec<u8>, Node)>,
        present: Vec<Name>,
    },
    Array(Vec<Node>),
}

/// A compiled body template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    root: Node,
    /// Room for a typical body, so that rendering one does not grow its buffer.
    capacity: usize,
}

/// The bytes a node renders to when every value is about 24 bytes long.
fn size_hint(n: &Node) -> usize {
    match n {
        Node::Literal(json) => json.len(),
        Node::Exact(_) => 24,
        Node::Mixed(parts) => parts.len() * 24,
        Node::Object { fields, .. } => {
            2 + fields
                .iter()
                .map(|(k, c)| k.len() + size_hint(c))
                .sum::<usize>()
        }
        Node::Array(items) => 2 + items.iter().map(|c| 1 + size_hint(c)).sum::<usize>(),
    }
}

/// Splits text into literal parts and placeholders. `{{ name }}` (spaces allowed).
fn parse_parts(s: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut rest = s;
    while let Some(start) = find_pair(rest, b'{') {
        let Some(len) = find_pair(&rest[start + 2..], b'}') else {
            break;
        };
        if start > 0 {
            parts.push(Part::Lit(rest[..start].to_string()));
        }
        let name = rest[start + 2..start + 2 + len].trim();
        parts.push(Part::Var(Name::new(name)));
        rest = &rest[start + 2 + len + 2..];
    }
    if !rest.is_empty() {
        parts.push(Part::Lit(rest.to_string()));
    }
    parts
}

/// Where the first `{{` (or `}}`) is. Paths and defaults are interpolated for every row, so
/// the searchers are built once, not per call as `str::find` would.
fn find_pair(s: &str, c: u8) -> Option<usize> {
    static OPEN: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new("{{"));
    static CLOSE: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new("}}"));
    let finder = if c == b'{' { &OPEN } else { &CLOSE };
    finder.find(s.as_bytes())
}

/// The placeholder names in a text, in order.
pub fn placeholders(s: &str) -> Vec<String> {
    parse_parts(s)
        .into_iter()
        .filter_map(|p| match p {
            Part::Var(v) => Some(v.text),
            Part::Lit(_) => None,
        })
        .collect()
}

/// Interpolates a text once (see [`Text::fill`]; what rows fill is compiled once into a
/// [`Text`]). Returns `None` when every placeholder in it is empty (and it has at least
/// one). `encode` is applied to each value (URL paths).
pub fn interpolate(s: &str, scope: &dyn Scope, encode: &dyn Fn(&str) -> String) -> Option<String> {
    Text::compile(s).fill(scope, &|v, out| out.push_str(&encode(v)))
}

/// Text with `{{name}}` placeholders (a path, a query or header value, a column's
/// default), parsed once when the profile loads: rows only fill it in.
#[derive(Debug, Clone, Default)]
pub struct Text {
    parts: Vec<Part>,
    /// The text as written.
    source: String,
}

impl Text {
    pub fn compile(s: &str) -> Text {
        Text {
            parts: parse_parts(s),
            source: s.to_string(),
        }
    }

    /// The text as written, placeholders and all.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether a placeholder names `name`.
    pub fn uses(&self, name: &str) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Var(v) if v.text == name))
    }

    /// [`Text::compile`], then [`Text::resolve`].
    pub fn with_slots(s: &str, slot: &dyn Fn(&str) -> Option<usize>) -> Text {
        let mut t = Text::compile(s);
        t.resolve(slot);
        t
    }

    /// Gives every placeholder the slot `slot` names for it (see [`Template::resolve`]).
    pub fn resolve(&mut self, slot: &dyn Fn(&str) -> Option<usize>) {
        for p in &mut self.parts {
            if let Part::Var(name) = p {
                name.slot = slot(&name.text);
            }
        }
    }

    /// The text when it holds no placeholder.
    pub fn as_static(&self) -> Option<&str> {
        match &self.parts[..] {
            [] => Some(""),
            [Part::Lit(l)] => Some(l),
            _ => None,
        }
    }

    /// The same as [`interpolate`] on the source text: each value's text goes through
    /// `encode` (which appends it); `None` when every placeholder is empty.
    pub fn fill(&self, scope: &dyn Scope, encode: &dyn Fn(&str, &mut String)) -> Option<String> {
        let mut out = String::with_capacity(32);
        let mut vars = 0;
        let mut filled = 0;
        for p in &self.parts {
            match p {
                Part::Lit(l) => out.push_str(l),
                Part::Var(name) => {
                    vars += 1;
                    if let Var::Value(v) = scope.var_of(name) {
                        filled += 1;
                        encode(&value_text(&v), &mut out);
                    }
                }
            }
        }
        (vars == 0 || filled > 0).then_some(out)
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

fn literal(v: &Value) -> Node {
    let mut out = Vec::new();
    write_json(&mut out, v);
    Node::Literal(out)
}

fn compile(v: &Value) -> Node {
    match v {
        Value::String(s) => {
            if !s.contains("{{") {
                return literal(v);
            }
            let parts = parse_parts(s);
            match parts.as_slice() {
                [Part::Var(name)] => Node::Exact(name.clone()),
                _ if parts.iter().any(|p| matches!(p, Part::Var(_))) => Node::Mixed(parts),
                _ => literal(v),
            }
        }
        Value::Object(map) => {
            let mut present = Vec::new();
            let mut fields = Vec::with_capacity(map.len());
            for (k, child) in map {
                if k == "$present" {
                    match child {
                        Value::String(s) => present.push(Name::new(s)),
                        Value::Array(a) => {
                            present.extend(a.iter().filter_map(|x| x.as_str().map(Name::new)))
                        }
                        _ => {}
                    }
                    continue;
                }
                // With the comma that separates it from a field before (see render_members).
                let mut key = Vec::with_capacity(k.len() + 4);
                key.push(b',');
                write_json(&mut key, k);
                key.push(b':');
                fields.push((key, compile(child)));
            }
            if present.is_empty() && fields.iter().all(|(_, n)| !has_vars(n)) {
                literal(v)
            } else {
                Node::Object { fields, present }
            }
        }
        Value::Array(items) => {
            let nodes: Vec<Node> = items.iter().map(compile).collect();
            if nodes.iter().all(|n| !has_vars(n)) {
                literal(v)
            } else {
                Node::Array(nodes)
            }
        }
        other => literal(other),
    }
}

/// Writes `n` as JSON to `out`; returns false (and writes nothing) when the node is left
/// out. Rendering goes straight to bytes: no tree of values is built per row, and a field
/// that turns out empty is cut off the buffer again.
fn render(n: &Node, scope: &dyn Scope, out: &mut Vec<u8>) -> bool {
    match n {
        Node::Literal(json) => {
            out.extend_from_slice(json);
            true
        }
        Node::Exact(name) => match scope.json_of(name) {
            Some(json) => {
                out.extend_from_slice(json);
                true
            }
            None => render_var(scope.var_of(name), out),
        },
        Node::Mixed(parts) => {
            let mut text = String::new();
            let mut filled = false;
            let mut cleared = false;
            for p in parts {
                match p {
                    Part::Lit(l) => text.push_str(l),
                    Part::Var(name) => match scope.var_of(name) {
                        Var::Value(v) => {
                            filled = true;
                            text.push_str(&value_text(&v));
                        }
                        Var::Clear => cleared = true,
                        Var::Empty => {}
                    },
                }
            }
            if filled {
                // Exactly as written: no trimming (see the module's rules).
                write_str(out, &text);
            } else if cleared {
                out.extend_from_slice(b"null");
            }
            filled || cleared
        }
        Node::Object { fields, present } => {
            if present
                .iter()
                .any(|p| !matches!(scope.var_of(p), Var::Value(_)))
            {
                return false;
            }
            let start = out.len();
            let fields = fields.iter().map(|(k, child)| (&k[..], child));
            let from_sheet = render_members(fields, [b'{', b'}'], scope, out);
            // An object whose every sheet-fed field was left out is itself left out.
            let keep = from_sheet || !present.is_empty();
            if !keep {
                out.truncate(start);
            }
            keep
        }
        Node::Array(items) => {
            let start = out.len();
            let items = items.iter().map(|child| (&b","[..], child));
            let from_sheet = render_members(items, [b'[', b']'], scope, out);
            if !from_sheet {
                out.truncate(start);
            }
            from_sheet
        }
    }
}

/// Writes an object's fields (each with its `"key":` prefix) or an array's items (empty
/// prefix) between `brackets`, leaving out those that render to nothing, commas and keys
/// included. Returns whether any member kept came from the sheet.
fn render_members<'a>(
    members: impl Iterator<Item = (&'a [u8], &'a Node)>,
    brackets: [u8; 2],
    scope: &dyn Scope,
    out: &mut Vec<u8>,
) -> bool {
    out.push(brackets[0]);
    let mut first = true;
    let mut from_sheet = false;
    for (prefix, child) in members {
        // Each prefix starts with the comma that separates a member from the one before.
        let prefix = if first { &prefix[1..] } else { prefix };
        if let Node::Exact(name) = child {
            // Most members: one placeholder. Decided before anything is written, so an
            // empty one costs no write and no truncate.
            let json = scope.json_of(name);
            let var = match json {
                Some(_) => Var::Empty,
                None => scope.var_of(name),
            };
            if json.is_none() && matches!(var, Var::Empty) {
                continue;
            }
            out.extend_from_slice(prefix);
            match json {
                Some(json) => out.extend_from_slice(json),
                None => {
                    render_var(var, out);
                }
            }
            first = false;
            from_sheet = true;
            continue;
        }
        let mark = out.len();
        out.extend_from_slice(prefix);
        if render(child, scope, out) {
            first = false;
            from_sheet |= has_vars(child);
        } else {
            out.truncate(mark);
        }
    }
    out.push(brackets[1]);
    from_sheet
}

fn render_var(var: Var<'_>, out: &mut Vec<u8>) -> bool {
    match var {
        Var::Empty => false,
        Var::Clear => {
            out.extend_from_slice(b"null");
            true
        }
        Var::Value(v) => {
            write_value(out, &v);
            true
        }
    }
}

/// Serialises into a byte buffer; writing JSON into a `Vec` cannot fail.
fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    let _ = serde_json::to_writer(out, v);
}

/// Writes a value; strings that need no escaping (almost every cell) are copied as they are.
pub fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::String(s) => write_str(out, s),
        other => write_json(out, other),
    }
}

/// Writes a JSON string. JSON must escape only `"`, `\` and control characters; text
/// without them is copied between quotes, anything else goes through serde_json.
fn write_str(out: &mut Vec<u8>, s: &str) {
    // Folded without an early exit, so the compiler checks many bytes at a time.
    let plain = !s.bytes().fold(false, |bad, b| {
        bad | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if plain {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        write_json(out, s);
    }
}

fn collect_names(n: &Node, out: &mut Vec<String>) {
    match n {
        Node::Literal(_) => {}
        Node::Exact(name) => out.push(name.text.clone()),
        Node::Mixed(parts) => out.extend(parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v.text.clone()),
            Part::Lit(_) => None,
        })),
        Node::Object { fields, present } => {
            out.extend(present.iter().map(|p| p.text.clone()));
            for (_, c) in fields {
                collect_names(c, out);
            }
        }
        Node::Array(items) => items.iter().for_each(|c| collect_names(c, out)),
    }
}

fn uses(n: &Node, name: &str) -> bool {
    match n {
        Node::Literal(_) => false,
        Node::Exact(v) => v.text == name,
        Node::Mixed(parts) => parts
            .iter()
            .any(|p| matches!(p, Part::Var(v) if v.text == name)),
        Node::Object { fields, present } => {
            present.iter().any(|p| p.text == name) || fields.iter().any(|(_, c)| uses(c, name))
        }
        Node::Array(items) => items.iter().any(|c| uses(c, name)),
    }
}

fn resolve(n: &mut Node, slot: &dyn Fn(&str) -> Option<usize>) {
    let set = |name: &mut Name| name.slot = slot(&name.text);
    match n {
        Node::Literal(_) => {}
        Node::Exact(name) => set(name),
        Node::Mixed(parts) => parts.iter_mut().for_each(|p| {
            if let Part::Var(v) = p {
                set(v)
            }
        }),
        Node::Object { fields, present } => {
            present.iter_mut().for_each(set);
            fields.iter_mut().for_each(|(_, c)| resolve(c, slot));
        }
        Node::Array(items) => items.iter_mut().for_each(|c| resolve(c, slot)),
    }
}

impl Template {
    pub fn compile(v: &Value) -> Template {
        let root = compile(v);
        Template {
            capacity: size_hint(&root),
            root,
        }
    }

    /// Gives every placeholder the slot `slot` names for it (a profile's column index), so
    /// rendering a row finds values by position.
    pub fn resolve(&mut self, slot: &dyn Fn(&str) -> Option<usize>) {
        resolve(&mut self.root, slot)
    }

    /// Renders the body for one row as JSON bytes. An entirely empty result is `{}`.
    pub fn render(&self, scope: &dyn Scope) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.capacity);
        if !render(&self.root, scope, &mut out) {
            out.extend_from_slice(b"{}");
        }
        out
    }

    /// Renders the body for one row as a JSON value (for display and tests).
    pub fn render_value(&self, scope: &dyn Scope) -> Value {
        serde_json::from_slice(&self.render(scope)).unwrap_or_else(|_| Value::Object(Map::new()))
    }

    /// Every placeholder name used.
    pub fn names(&self) -> Vec<String> {
        let mut v = Vec::new();
        collect_names(&self.root, &mut v);
        v
    }

    /// Whether a placeholder is used (asked per row: walks the tree without allocating).
    pub fn uses(&self, name: &str) -> bool {
        uses(&self.root, name)
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
        let out = t.render_value(&m);
        assert_eq!(
            out,
            json!({"userId": "a@b", "ext": 1234, "aliases": ["x", "y"], "display": "Sean O\"Neil",
                   "dept": null, "fixed": {"a": 1}})
        );
        let bytes = String::from_utf8(t.render(&m)).unwrap();
        assert!(bytes.contains(r#"O\"Neil"#), "{bytes}");
        // Field order is the template's, and a left-out field leaves no stray comma.
        assert!(
            bytes.starts_with(r#"{"userId":"a@b","ext":1234,"aliases":["x","y"]"#),
            "{bytes}"
        );
    }

    #[test]
    fn strings_are_escaped_only_where_json_needs_it() {
        let t = Template::compile(&json!({"a": "{{a}}", "b": "x {{a}}"}));
        let m = M([("a", Some(json!("tab\there \\ \"q\" é/")))]
            .into_iter()
            .collect());
        let bytes = t.render(&m);
        let back: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            back,
            json!({"a": "tab\there \\ \"q\" é/", "b": "x tab\there \\ \"q\" é/"})
        );
        let plain = M([("a", Some(json!("Zoë O'Brien")))].into_iter().collect());
        assert_eq!(
            String::from_utf8(t.render(&plain)).unwrap(),
            r#"{"a":"Zoë O'Brien","b":"x Zoë O'Brien"}"#
        );
    }

    #[test]
    fn mixed_text_renders_exactly_and_an_all_empty_one_is_left_out() {
        let t = Template::compile(&json!({
            "display": "{{first}} {{last}}",
            "tags": "[{{tags}}]",
            "code": "{{first}}-x",
        }));
        let some = M([("first", Some(json!("Ann")))].into_iter().collect());
        assert_eq!(
            t.render_value(&some),
            json!({"display": "Ann ", "code": "Ann-x"})
        );
        let spaced = M([
            ("first", Some(json!(" Ann"))),
            ("last", Some(json!("Lee "))),
            ("tags", Some(json!(["a", "b"]))),
        ]
        .into_iter()
        .collect());
        assert_eq!(
            t.render_value(&spaced),
            json!({"display": " Ann Lee ", "tags": "[a,b]", "code": " Ann-x"})
        );
        // Every placeholder empty (`tags` above too): left out, as a lone placeholder
        // would be.
        let none = M(HashMap::new());
        assert_eq!(t.render(&none), b"{}");
        // Empty or cleared, one cleared: blanked on purpose.
        let cleared = M([("last", None)].into_iter().collect());
        assert_eq!(t.render_value(&cleared), json!({"display": null}));
        // A value that is the empty string counts as given.
        let blank = M([("first", Some(json!("")))].into_iter().collect());
        assert_eq!(
            t.render_value(&blank),
            json!({"display": " ", "code": "-x"})
        );
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
