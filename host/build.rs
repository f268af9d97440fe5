//! Assembles the WIT the host's bindings are generated from: our own world in
//! `wit/host.wit`, plus the upstream interfaces it imports, taken from the
//! spin-sdk crate that the plugins' lock file pins. Nothing upstream is
//! copied into the repository, and the host cannot drift from the SDK.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs};

/// Upstream WIT files the world imports: (spin-sdk major version whose
/// `wit/deps` holds it, file there, folder under our `deps`, package line to
/// prepend when the upstream file declares its package in a sibling file we
/// do not take). spin-sdk 5 brings the WASIp2 generation's interfaces,
/// spin-sdk 7 the newer ones (async functions, WASIp3).
const UPSTREAM: &[(u32, &str, &str, Option<&str>)] = &[
    (7, "spin-postgres@4.2.0/postgres.wit", "spin-postgres", None),
    (7, "spin-variables@3.0.0/variables.wit", "spin-variables", None),
    (7, "spin-key-value@3.0.0/key-value.wit", "spin-key-value", None),
    (5, "spin@2.0.0/variables.wit", "fermyon-spin", Some("package fermyon:spin@2.0.0;")),
    (5, "spin@2.0.0/key-value.wit", "fermyon-spin", Some("package fermyon:spin@2.0.0;")),
    (5, "spin@2.0.0/postgres.wit", "fermyon-spin", Some("package fermyon:spin@2.0.0;")),
    (5, "spin@2.0.0/rdbms-types.wit", "fermyon-spin", Some("package fermyon:spin@2.0.0;")),
    (5, "spin-postgres@3.0.0/postgres.wit", "spin-postgres-3", None),
];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap();
    let plugins_manifest = root.join("plugins/Cargo.toml");
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    println!("cargo:rerun-if-changed={}", root.join("plugins/Cargo.lock").display());

    let sdk_wits = spin_sdk_wit_dirs(&plugins_manifest);
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    let wit_dir = out_dir.join("wit");
    let _ = fs::remove_dir_all(&wit_dir);
    fs::create_dir_all(&wit_dir).unwrap();
    fs::copy(root.join("wit/host.wit"), wit_dir.join("host.wit")).unwrap();
    for (major, file, folder, package_line) in UPSTREAM {
        let sdk_wit = sdk_wits.get(major).unwrap_or_else(|| panic!("the plugins' lock file has no spin-sdk {major}.x"));
        let source = sdk_wit.join("deps").join(file);
        let text = fs::read_to_string(&source).unwrap_or_else(|e| panic!("reading {}: {e}", source.display()));
        let text = match package_line {
            Some(line) => format!("{line}\n\n{text}"),
            None => text,
        };
        let dest = wit_dir.join("deps").join(folder);
        fs::create_dir_all(&dest).unwrap();
        fs::write(dest.join(Path::new(file).file_name().unwrap()), text).unwrap();
    }

    let bindings = format!(
        r#"wasmtime::component::bindgen!({{
    path: {path:?},
    world: "gatehouse:host/service-imports",
    // No `tracing`: generated tracing logs every argument and result,
    // which would put signing keys (`variables.get`) and SQL in the log.
    imports: {{ default: async | trappable }},
    with: {{
        "spin:postgres/postgres.connection": crate::postgres::GuestConnection,
        "fermyon:spin/postgres.connection": crate::postgres::GuestConnection,
        "spin:postgres/postgres.connection-builder": crate::postgres::GuestConnectionBuilder,
        "fermyon:spin/key-value.store": crate::key_value::GuestStore,
        "spin:key-value/key-value.store": crate::key_value::GuestStore,
    }},
    require_store_data_send: true,
}});
"#,
        path = wit_dir.display().to_string()
    );
    fs::write(out_dir.join("bindings.rs"), bindings).unwrap();
}

/// The `wit` folder of each spin-sdk version the plugins' lock file pins, by
/// major version, found with `cargo metadata` (which downloads the crates if
/// they are not cached yet).
fn spin_sdk_wit_dirs(plugins_manifest: &Path) -> std::collections::BTreeMap<u32, PathBuf> {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--manifest-path"])
        .arg(plugins_manifest)
        .output()
        .expect("running cargo metadata for the plugins");
    assert!(output.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"] == "spin-sdk")
        .filter_map(|p| {
            let major = p["version"].as_str()?.split('.').next()?.parse().ok()?;
            let manifest = p["manifest_path"].as_str()?;
            Some((major, Path::new(manifest).parent()?.join("wit")))
        })
        .collect()
}
