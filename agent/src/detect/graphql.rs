//! GraphQL awareness: a request to `/graphql` (or with a GraphQL body) is parsed with
//! `graphql-parser` into its operations — type, name, nesting depth, aliases, introspection
//! fields — so the inventory can name operations and three rules can judge them: GQL-1
//! introspection answered (schema disclosure in production), GQL-2 many operations batched or
//! many aliases in one request (brute force or enumeration through one HTTP request), GQL-3 a
//! query nested deeper than allowed (resource exhaustion).
//!
//! The text is attacker-chosen: nesting is measured by a linear scan first, and a document
//! nested beyond [`MAX_PARSED_NESTING`] is judged on that depth alone, never handed to the
//! recursive-descent parser.

use graphql_parser::query::{Definition, OperationDefinition, Selection, SelectionSet};
use serde_json::Value;

/// Deeper documents are not parsed (the parser recurses per level).
const MAX_PARSED_NESTING: usize = 64;
/// Operations looked at in one batched request.
const MAX_BATCH_PARSED: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// `query`, `mutation` or `subscription`.
    pub kind: &'static str,
    pub name: Option<String>,
    /// Selection-set nesting (or `{ [ (` nesting when the document was too deep to parse).
    pub depth: usize,
    pub aliases: usize,
    pub introspection: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Operations sent in one HTTP request (a JSON array body batches them).
    pub batch: usize,
    pub operations: Vec<Operation>,
}

/// `{ [ (` nesting outside strings and comments: the depth a parser would recurse to.
fn nesting(text: &str) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped, mut comment) =
        (0usize, 0, false, false, false);
    for c in text.chars() {
        if comment {
            comment = c != '\n';
            continue;
        }
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '#' => comment = true,
            '{' | '[' | '(' => {
                depth += 1;
                max = max.max(depth);
            }
            '}' | ']' | ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

fn walk<'a>(set: &SelectionSet<'a, &'a str>, level: usize, op: &mut Operation) {
    op.depth = op.depth.max(level);
    for item in &set.items {
        match item {
            Selection::Field(f) => {
                if f.alias.is_some() {
                    op.aliases += 1;
                }
                if level == 1 && (f.name == "__schema" || f.name == "__type") {
                    op.introspection = true;
                }
                if !f.selection_set.items.is_empty() {
                    walk(&f.selection_set, level + 1, op);
                }
            }
            Selection::InlineFragment(i) => walk(&i.selection_set, level, op),
            Selection::FragmentSpread(_) => {}
        }
    }
}

/// The operations of one GraphQL document; None when it does not parse.
pub fn operations(text: &str) -> Option<Vec<Operation>> {
    let deep = nesting(text);
    if deep > MAX_PARSED_NESTING {
        return Some(vec![Operation {
            kind: "query",
            name: None,
            depth: deep,
            aliases: 0,
            introspection: false,
        }]);
    }
    let doc = graphql_parser::parse_query::<&str>(text).ok()?;
    let mut out = Vec::new();
    for definition in &doc.definitions {
        let Definition::Operation(op) = definition else {
            continue;
        };
        let (kind, name, set) = match op {
            OperationDefinition::SelectionSet(s) => ("query", None, s),
            OperationDefinition::Query(q) => ("query", q.name, &q.selection_set),
            OperationDefinition::Mutation(m) => ("mutation", m.name, &m.selection_set),
            OperationDefinition::Subscription(s) => ("subscription", s.name, &s.selection_set),
        };
        let mut operation = Operation {
            kind,
            name: name.map(str::to_owned),
            depth: 0,
            aliases: 0,
            introspection: false,
        };
        walk(set, 1, &mut operation);
        out.push(operation);
    }
    Some(out)
}

/// The GraphQL request an exchange carries, if any: by the path (`…/graphql`), a GraphQL
/// media type, or a JSON body `{"query": …}` (an array of them is a batch).
pub fn request(v: &super::view::View<'_>) -> Option<Request> {
    let req = v.event.request.as_ref()?;
    let content_type = req.headers.get("content-type").unwrap_or("");
    let by_path = v.path.trim_end_matches('/').ends_with("/graphql");
    if content_type.starts_with("application/graphql") {
        let text = std::str::from_utf8(v.request_body).ok()?;
        let operations = operations(text)?;
        return Some(Request {
            batch: 1,
            operations,
        });
    }
    let body = v.request_body.trim_ascii_start();
    // Most JSON bodies are not GraphQL: parsed only when the path says so or a `"query"`
    // member appears (a scan, far cheaper than parsing every JSON request).
    let maybe_graphql = by_path
        || (matches!(body.first(), Some(b'{' | b'['))
            && memchr::memmem::find(body, b"\"query\"").is_some());
    if !maybe_graphql {
        return None;
    }
    let from_json = |item: &Value| {
        item.get("query")
            .and_then(Value::as_str)
            .and_then(operations)
    };
    match body.first() {
        Some(b'{') | Some(b'[') => {
            let value: Value = serde_json::from_slice(body).ok()?;
            match &value {
                Value::Array(items) => {
                    let mut operations = Vec::new();
                    for item in items.iter().take(MAX_BATCH_PARSED) {
                        operations.extend(from_json(item).unwrap_or_default());
                    }
                    (by_path || !operations.is_empty()).then_some(Request {
                        batch: items.len(),
                        operations,
                    })
                }
                Value::Object(_) => from_json(&value).map(|operations| Request {
                    batch: 1,
                    operations,
                }),
                _ => None,
            }
        }
        _ if by_path => {
            // GET /graphql?query=…
            let query = v.params().iter().find(|(k, _)| k == "query")?;
            Some(Request {
                batch: 1,
                operations: operations(&query.1)?,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_depth_aliases_introspection() {
        let ops = operations(
            "query GetUser { user(id: 1) { name friends { name friends { name } } } } \
             mutation { a1: login(u: \"a\", p: \"1\") { ok } a2: login(u: \"a\", p: \"2\") { ok } }",
        )
        .expect("parses");
        assert_eq!(ops.len(), 2);
        assert_eq!(
            (ops[0].kind, ops[0].name.as_deref(), ops[0].depth),
            ("query", Some("GetUser"), 4)
        );
        assert_eq!((ops[1].kind, ops[1].aliases), ("mutation", 2));
        let intro = operations("{ __schema { types { name } } }").expect("parses");
        assert!(intro[0].introspection);
        assert!(operations("not graphql {").is_none());
    }

    #[test]
    fn hostile_nesting_is_measured_not_parsed() {
        let deep = "{a".repeat(5_000) + &"}".repeat(5_000);
        let ops = operations(&deep).expect("judged");
        assert_eq!(ops[0].depth, 5_000);
        // Braces inside strings and comments do not count.
        assert_eq!(nesting("{ a(s: \"{{{{\") # {{{{\n }"), 2);
    }
}

#[cfg(test)]
mod engine_tests {
    use serde_json::json;

    use crate::detect::{
        DetectConfig, Engine,
        content::Bodies,
        test_events::{T0, exchange},
    };

    fn ids(findings: &[serde_json::Value]) -> Vec<String> {
        findings
            .iter()
            .map(|f| f["rule"]["id"].as_str().unwrap_or("").to_owned())
            .collect()
    }

    #[test]
    fn introspection_batches_aliases_and_depth() {
        let mut engine = Engine::new(DetectConfig::default());
        let post = || {
            exchange(
                "POST",
                "/graphql",
                200,
                json!({ "content-type": "application/json" }),
            )
        };
        let intro = engine.inspect_json(
            &post(),
            T0,
            &Bodies::from_raw(
                br#"{"query":"query IntrospectionQuery { __schema { types { name } } }"}"#,
                br#"{"data":{"__schema":{"types":[{"name":"Query"}]}}}"#,
                None,
            ),
        );
        assert_eq!(ids(&intro), ["GQL-1"]);
        let batch: Vec<serde_json::Value> = (0..20)
            .map(|i| json!({ "query": format!("mutation Login{i} {{ login(u: \"a\", p: \"{i}\") {{ ok }} }}") }))
            .collect();
        let body = serde_json::to_vec(&batch).expect("json");
        let found = engine.inspect_json(&post(), T0 + 1, &Bodies::from_raw(&body, b"[]", None));
        assert_eq!(ids(&found), ["GQL-2"]);
        assert_eq!(found[0]["evidence"]["batched_operations"], 20);
        let deep = format!(
            "{{\"query\":\"{{ {}x{} }}\"}}",
            "a { ".repeat(12),
            " }".repeat(12)
        );
        let found = engine.inspect_json(
            &exchange(
                "POST",
                "/api/graphql",
                200,
                json!({ "content-type": "application/json" }),
            ),
            T0 + 2,
            &Bodies::from_raw(deep.as_bytes(), b"{}", None),
        );
        assert_eq!(ids(&found), ["GQL-3"]);
        assert_eq!(found[0]["evidence"]["depth"], 13);
        // The inventory names the operations.
        let dump = engine.dump(T0 + 3);
        let ops = &dump["hosts"]["api.local"]["POST /graphql"]["shape"]["graphql"];
        assert_eq!(ops["query IntrospectionQuery"], 1);
        assert_eq!(ops["mutation Login0"], 1);
    }
}
