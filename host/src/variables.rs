//! `fermyon:spin/variables@2.0.0` (spin-sdk 5) and `spin:variables@3.0.0`
//! (spin-sdk 7, an async `get`): the settings a manifest gives a component,
//! resolved once at start-up. A component sees only its own variables.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{Accessor, HasData};

use crate::bindings::fermyon::spin::variables::{self as wit, Error};
use crate::bindings::spin::variables::variables as wit3;

/// What the variables interface needs from a request's store.
pub struct VariablesView<'a> {
    pub values: &'a Arc<BTreeMap<String, String>>,
}

pub struct HasVariables;

impl HasData for HasVariables {
    type Data<'a> = VariablesView<'a>;
}

pub fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    view: fn(&mut T) -> VariablesView<'_>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasVariables>(linker, view)?;
    wit3::add_to_linker::<T, HasVariables>(linker, view)
}

impl wit::Host for VariablesView<'_> {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, Error>> {
        Ok(lookup(self.values, &name))
    }
}

impl wit3::Host for VariablesView<'_> {}

impl<T: Send> wit3::HostWithStore<T> for HasVariables {
    async fn get(accessor: &Accessor<T, Self>, name: String) -> wasmtime::Result<Result<String, wit3::Error>> {
        let found = accessor.with(|mut access| lookup(access.get().values, &name));
        Ok(found.map_err(|e| match e {
            Error::InvalidName(n) => wit3::Error::InvalidName(n),
            Error::Undefined(n) => wit3::Error::Undefined(n),
            Error::Provider(m) => wit3::Error::Provider(m),
            Error::Other(m) => wit3::Error::Other(m),
        }))
    }
}

fn lookup(values: &BTreeMap<String, String>, name: &str) -> Result<String, Error> {
    let started = std::time::Instant::now();
    let found = find(values, name);
    crate::host_call::record("variables", "get", found.is_ok(), started);
    found
}

fn find(values: &BTreeMap<String, String>, name: &str) -> Result<String, Error> {
    // Spin's rule for names: lower-case ASCII letters, digits and `_`,
    // starting with a letter.
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        return Err(Error::InvalidName(name.to_owned()));
    }
    values.get(name).cloned().ok_or_else(|| Error::Undefined(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_distinguishes_invalid_and_undefined() {
        let values = BTreeMap::from([("secret_key".to_string(), "k".to_string())]);
        assert!(matches!(lookup(&values, "secret_key"), Ok(v) if v == "k"));
        assert!(matches!(lookup(&values, "other"), Err(Error::Undefined(_))));
        assert!(matches!(lookup(&values, "Secret-Key"), Err(Error::InvalidName(_))));
        assert!(matches!(lookup(&values, ""), Err(Error::InvalidName(_))));
    }
}
