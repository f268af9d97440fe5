//! What a load run sends: an optional login step, then a weighted mix of
//! requests whose paths, headers and bodies may name variables — the login's
//! token, the credentials, values captured from earlier answers.
//!
//! A scenario file in TOML (JSON has the same shape):
//!
//! ```toml
//! base_url = "http://127.0.0.1:8080"
//!
//! [login]
//! path = "/auth/api/v1/login/access-token"
//! form = { username = "{username}", password = "{password}" }
//! token = "/access_token"
//!
//! [[request]]
//! name = "create item"
//! weight = 1
//! method = "POST"
//! path = "/items/api/v1/items/"
//! json = { title = "item {seq}" }
//! capture = { id = "/id" }
//!
//! [[request]]
//! name = "read item"
//! weight = 3
//! path = "/items/api/v1/items/{id}"
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::Path;

use anyhow::{Context as _, bail, ensure};
use serde::Deserialize;

/// Variables every scenario may use without capturing them.
pub const BUILT_IN_VARIABLES: &[&str] = &["token", "username", "password", "seq"];

/// How many captured values of one variable are kept; later requests pick
/// one of them at random.
const KEPT_PER_VARIABLE: usize = 1024;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Scheme, host and port that relative paths are joined to
    /// (`https://gatehouse.example.com`); `--base-url` overrides it.
    pub base_url: Option<String>,
    /// Headers sent with every request. Unless one of them is
    /// `authorization`, a token (from the login or `--token`) is sent as
    /// `authorization: Bearer {token}`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Logs in once before the run; the token it returns is `{token}`.
    pub login: Option<LoginStep>,
    /// The mix: each request is picked with a probability proportional to
    /// its weight, among those whose variables have values.
    #[serde(rename = "request")]
    pub requests: Vec<RequestTemplate>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginStep {
    /// Path (joined to the base URL) or full URL the form is posted to.
    pub path: String,
    /// The form's fields; `{username}` and `{password}` are the credentials
    /// given on the command line or in the environment.
    #[serde(default = "default_login_form")]
    pub form: BTreeMap<String, String>,
    /// JSON pointer to the token in the answer.
    #[serde(default = "default_token_pointer")]
    pub token: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestTemplate {
    /// How the results name it; `METHOD path` by default.
    pub name: Option<String>,
    /// Relative frequency in the mix (1 by default).
    #[serde(default = "default_weight")]
    pub weight: u32,
    #[serde(default = "default_method")]
    pub method: String,
    /// Path (joined to the base URL) or full URL.
    pub path: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A JSON body; variables are replaced in its strings.
    pub json: Option<serde_json::Value>,
    /// A form body (`application/x-www-form-urlencoded`).
    pub form: Option<BTreeMap<String, String>>,
    /// A raw body, sent as it is once variables are replaced.
    pub body: Option<String>,
    /// Variables to take from the JSON answer: name → JSON pointer
    /// (`{ id = "/id" }`).
    #[serde(default)]
    pub capture: BTreeMap<String, String>,
}

fn default_login_form() -> BTreeMap<String, String> {
    BTreeMap::from([("username".into(), "{username}".into()), ("password".into(), "{password}".into())])
}

fn default_token_pointer() -> String {
    "/access_token".into()
}

fn default_weight() -> u32 {
    1
}

fn default_method() -> String {
    "GET".into()
}

impl Scenario {
    /// Reads a scenario from a `.toml` or `.json` file and checks it.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let scenario: Scenario = match path.extension().and_then(|e| e.to_str()) {
            Some("json") => serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?,
            _ => toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?,
        };
        scenario.check()?;
        Ok(scenario)
    }

    /// One request to one URL, as `--url` asks.
    pub fn single(method: &str, url: &str, headers: BTreeMap<String, String>, body: Option<String>) -> Self {
        Scenario {
            base_url: None,
            headers,
            login: None,
            requests: vec![RequestTemplate {
                name: None,
                weight: 1,
                method: method.to_owned(),
                path: url.to_owned(),
                headers: BTreeMap::new(),
                json: None,
                form: None,
                body,
                capture: BTreeMap::new(),
            }],
        }
    }

    /// Refuses what could never run: unknown methods, two bodies, a
    /// variable that nothing sets, a mix with nothing to start from.
    pub fn check(&self) -> anyhow::Result<()> {
        ensure!(!self.requests.is_empty(), "the scenario has no [[request]]");
        let captured: BTreeSet<&str> =
            self.requests.iter().flat_map(|r| r.capture.keys().map(String::as_str)).collect();
        for name in &captured {
            ensure!(is_variable_name(name), "`{name}` cannot be a variable's name (letters, digits and _)");
            ensure!(!BUILT_IN_VARIABLES.contains(name), "`{name}` is a built-in variable and cannot be captured");
        }
        let mut startable = false;
        for request in &self.requests {
            let name = request.display_name();
            http::Method::from_bytes(request.method.as_bytes())
                .with_context(|| format!("{name}: `{}` is not an HTTP method", request.method))?;
            let bodies = [request.json.is_some(), request.form.is_some(), request.body.is_some()];
            ensure!(bodies.iter().filter(|b| **b).count() <= 1, "{name}: give one of json, form and body");
            for pointer in request.capture.values() {
                ensure!(pointer.is_empty() || pointer.starts_with('/'), "{name}: `{pointer}` is not a JSON pointer");
            }
            for variable in request.variables() {
                ensure!(
                    BUILT_IN_VARIABLES.contains(&variable.as_str()) || captured.contains(variable.as_str()),
                    "{name} uses {{{variable}}}, which no request captures"
                );
            }
            startable |= request.weight > 0 && request.captured_variables().is_empty();
        }
        for value in self.headers.values() {
            for variable in variables_in(value) {
                ensure!(
                    BUILT_IN_VARIABLES.contains(&variable.as_str()),
                    "the scenario's headers use {{{variable}}}: only built-in variables can be used there"
                );
            }
        }
        if !startable {
            bail!("every request of the mix needs a captured variable: nothing can be sent first");
        }
        if let Some(login) = &self.login {
            ensure!(
                login.token.is_empty() || login.token.starts_with('/'),
                "login: `{}` is not a JSON pointer",
                login.token
            );
        }
        Ok(())
    }
}

impl RequestTemplate {
    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| format!("{} {}", self.method, self.path))
    }

    /// Every variable the request names, in path, headers and body.
    pub fn variables(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        let mut add = |text: &str| names.extend(variables_in(text));
        add(&self.path);
        self.headers.values().for_each(|v| add(v));
        self.form.iter().flat_map(|f| f.values()).for_each(|v| add(v));
        if let Some(body) = &self.body {
            add(body);
        }
        if let Some(json) = &self.json {
            json_strings(json, &mut |s| add(s));
        }
        names
    }

    /// The variables it needs that only a captured answer can give.
    pub fn captured_variables(&self) -> Vec<String> {
        self.variables().into_iter().filter(|v| !BUILT_IN_VARIABLES.contains(&v.as_str())).collect()
    }
}

fn json_strings(value: &serde_json::Value, visit: &mut dyn FnMut(&str)) {
    match value {
        serde_json::Value::String(s) => visit(s),
        serde_json::Value::Array(items) => items.iter().for_each(|v| json_strings(v, visit)),
        serde_json::Value::Object(map) => map.values().for_each(|v| json_strings(v, visit)),
        _ => {}
    }
}

fn is_variable_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The `{name}`s in a template. Braces around anything else (a JSON
/// object in a raw body, say) are left alone.
pub fn variables_in(template: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        rest = &rest[open + 1..];
        if let Some(close) = rest.find('}') {
            let name = &rest[..close];
            if is_variable_name(name) {
                names.push(name.to_owned());
                rest = &rest[close + 1..];
            }
        }
    }
    names
}

/// Replaces each `{name}` that `lookup` knows; anything else stays as it is.
pub fn render(template: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}').map(|close| (&after[..close], close)) {
            Some((name, close)) if is_variable_name(name) && lookup(name).is_some() => {
                out.push_str(&lookup(name).unwrap_or_default());
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Replaces variables in every string of a JSON value.
pub fn render_json(value: &serde_json::Value, lookup: &dyn Fn(&str) -> Option<String>) -> serde_json::Value {
    match value {
        serde_json::Value::String(s) => serde_json::Value::String(render(s, lookup)),
        serde_json::Value::Array(items) => items.iter().map(|v| render_json(v, lookup)).collect(),
        serde_json::Value::Object(map) => {
            map.iter().map(|(k, v)| (k.clone(), render_json(v, lookup))).collect::<serde_json::Map<_, _>>().into()
        }
        other => other.clone(),
    }
}

/// Joins a path to the base URL, or takes a full URL as it is.
pub fn join_url(base: Option<&str>, path: &str) -> anyhow::Result<String> {
    if path.starts_with("http://") || path.starts_with("https://") {
        return Ok(path.to_owned());
    }
    let base = base.context("a relative path needs a base URL (base_url in the scenario, or --base-url)")?;
    Ok(format!("{}/{}", base.trim_end_matches('/'), path.trim_start_matches('/')))
}

/// Values captured from answers, shared by every worker: the latest
/// [`KEPT_PER_VARIABLE`] of each variable.
#[derive(Default)]
pub struct CapturedValues {
    values: HashMap<String, VecDeque<String>>,
}

impl CapturedValues {
    pub fn has(&self, name: &str) -> bool {
        self.values.get(name).is_some_and(|v| !v.is_empty())
    }

    pub fn keep(&mut self, name: &str, value: String) {
        let kept = self.values.entry(name.to_owned()).or_default();
        if kept.len() == KEPT_PER_VARIABLE {
            kept.pop_front();
        }
        kept.push_back(value);
    }

    /// One of the kept values of `name`, chosen by `pick` among `len`.
    pub fn pick(&self, name: &str, pick: impl FnOnce(usize) -> usize) -> Option<String> {
        let kept = self.values.get(name)?;
        if kept.is_empty() {
            return None;
        }
        kept.get(pick(kept.len())).cloned()
    }
}

/// A captured JSON value as text: strings as they are, anything else as JSON.
pub fn capture_text(answer: &serde_json::Value, pointer: &str) -> Option<String> {
    match answer.pointer(pointer)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<String> {
        match name {
            "id" => Some("42".into()),
            "token" => Some("t".into()),
            _ => None,
        }
    }

    #[test]
    fn variables_are_replaced_and_other_braces_kept() {
        assert_eq!(render("/items/{id}?x={id}", &lookup), "/items/42?x=42");
        assert_eq!(render(r#"{"a": {id}}"#, &lookup), r#"{"a": 42}"#);
        assert_eq!(render("{unknown}/{", &lookup), "{unknown}/{");
        assert_eq!(variables_in(r#"{"a":1} {id} {x y} {token}"#), ["id", "token"]);
        let json = serde_json::json!({"title": "item {id}", "n": [1, "{token}"]});
        assert_eq!(render_json(&json, &lookup), serde_json::json!({"title": "item 42", "n": [1, "t"]}));
    }

    #[test]
    fn a_scenario_is_checked() {
        let parse = |text: &str| toml::from_str::<Scenario>(text).unwrap().check();
        parse("[[request]]\npath = \"/a\"\ncapture = { id = \"/id\" }\n[[request]]\npath = \"/b/{id}\"").unwrap();
        let err = parse("[[request]]\npath = \"/b/{id}\"").unwrap_err().to_string();
        assert!(err.contains("no request captures"), "{err}");
        let err = parse("[[request]]\npath = \"/b/{id}\"\ncapture = { id = \"/id\" }").unwrap_err().to_string();
        assert!(err.contains("nothing can be sent first"), "{err}");
        let err = parse("[[request]]\npath = \"/a\"\nbody = \"x\"\njson = {}").unwrap_err().to_string();
        assert!(err.contains("one of json, form and body"), "{err}");
        assert!(toml::from_str::<Scenario>("[[request]]\npath = \"/a\"\nwieght = 2").is_err());
    }

    #[test]
    fn urls_are_joined() {
        assert_eq!(join_url(Some("http://h:1/"), "/a/b").unwrap(), "http://h:1/a/b");
        assert_eq!(join_url(Some("http://h:1"), "a").unwrap(), "http://h:1/a");
        assert_eq!(join_url(None, "https://x/y").unwrap(), "https://x/y");
        assert!(join_url(None, "/a").is_err());
    }

    #[test]
    fn captured_values_are_bounded() {
        let mut kept = CapturedValues::default();
        for n in 0..(KEPT_PER_VARIABLE + 10) {
            kept.keep("id", n.to_string());
        }
        assert_eq!(kept.pick("id", |_| 0).as_deref(), Some("10"));
        assert!(!kept.has("other"));
        let answer = serde_json::json!({"id": 7, "name": "x", "none": null});
        assert_eq!(capture_text(&answer, "/id").as_deref(), Some("7"));
        assert_eq!(capture_text(&answer, "/name").as_deref(), Some("x"));
        assert_eq!(capture_text(&answer, "/none"), None);
    }
}
