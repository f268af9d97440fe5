//! Spin interfaces this host does not provide, named in words when a
//! component imports one, so a refusal at load time says what is missing
//! instead of failing a request later.

use wasmtime::Engine;
use wasmtime::component::Component;

/// Interface families (package and interface name, any version) a Spin
/// component may import that this host leaves out, with what they are.
const NOT_PROVIDED: &[(&str, &str)] = &[
    ("fermyon:spin/redis", "Redis"),
    ("spin:redis/redis", "Redis"),
    ("fermyon:spin/mqtt", "MQTT"),
    ("spin:mqtt/mqtt", "MQTT"),
    ("fermyon:spin/mysql", "MySQL"),
    ("spin:mysql/mysql", "MySQL"),
    ("fermyon:spin/sqlite", "SQLite"),
    ("spin:sqlite/sqlite", "SQLite"),
    ("fermyon:spin/llm", "LLM inferencing"),
    ("wasi:keyvalue/", "wasi:keyvalue (use Spin's key-value interface)"),
    ("wasi:config/", "wasi:config (use Spin's variables interface)"),
    ("wasi:otel/", "OpenTelemetry"),
];

/// One line per import this host does not provide (empty if none of the
/// known ones): the interface as the component names it, and what it is.
pub fn unprovided_imports(engine: &Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .imports(engine)
        .filter_map(|(name, _)| {
            let (_, what) = NOT_PROVIDED.iter().find(|(family, _)| name.starts_with(family))?;
            Some(format!("imports `{name}` ({what}), which this host does not provide"))
        })
        .collect()
}
