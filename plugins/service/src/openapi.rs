//! Each service's OpenAPI 3.1 document is a file next to its code; this
//! checks it against the route table, so a documented route always exists
//! and an answered route is always documented.

use std::collections::BTreeSet;

use crate::router::Route;

/// The HTTP methods an OpenAPI path item may name.
const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// `(method, path)` pairs the document describes, methods upper-case.
pub fn documented_routes(document: &str) -> Result<BTreeSet<(String, String)>, String> {
    let doc: serde_json::Value = serde_json::from_str(document).map_err(|e| format!("not JSON: {e}"))?;
    if !doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")) {
        return Err("not an OpenAPI 3.1 document".into());
    }
    let paths = doc["paths"].as_object().ok_or("no paths")?;
    let mut routes = BTreeSet::new();
    for (path, item) in paths {
        let item = item.as_object().ok_or_else(|| format!("{path}: not an object"))?;
        for method in item.keys().filter(|k| METHODS.contains(&k.as_str())) {
            routes.insert((method.to_ascii_uppercase(), path.clone()));
        }
    }
    Ok(routes)
}

/// What differs between the document and the route table, one line each;
/// empty when they agree.
pub fn mismatches(document: &str, routes: &[Route]) -> Vec<String> {
    let documented = match documented_routes(document) {
        Ok(documented) => documented,
        Err(e) => return vec![e],
    };
    let answered: BTreeSet<(String, String)> =
        routes.iter().map(|r| (r.method.to_string().to_ascii_uppercase(), r.path.to_owned())).collect();
    let mut problems: Vec<String> =
        answered.difference(&documented).map(|(m, p)| format!("{m} {p} is answered but not documented")).collect();
    problems.extend(documented.difference(&answered).map(|(m, p)| format!("{m} {p} is documented but not answered")));
    problems
}
