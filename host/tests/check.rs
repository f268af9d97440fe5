//! `gatehouse-host --check`: compiles and links every component the
//! manifest names and reports every problem at once, each naming the
//! component, its file and the cause.

use std::path::{Path, PathBuf};
use std::process::Command;

use testkit::components_dir;

fn check(manifest: &str) -> (bool, String) {
    check_with(manifest, &[])
}

fn check_with(manifest: &str, env: &[(&str, &Path)]) -> (bool, String) {
    let dir = std::env::temp_dir().join(format!("gatehouse-check-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("host.toml");
    std::fs::write(&path, manifest).unwrap();
    std::fs::write(dir.join("notes.wasm"), "not a component").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_gatehouse-host"))
        .args(["--check", "--manifest"])
        .arg(&path)
        .env_remove("DATABASE_URL")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

fn component(name: &str, route: &str, file: &Path) -> String {
    format!("[component.{name}]\nroute = {route:?}\nfile = {:?}\n", file.display().to_string())
}

fn guest() -> PathBuf {
    components_dir().join("test_guest.wasm")
}

#[test]
fn a_sound_manifest_checks_ok() {
    let (ok, out) = check(&component("guest", "/guest/...", &guest()));
    assert!(ok, "{out}");
    assert!(out.contains(": ok"), "{out}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let manifest = [
        component("guest", "/guest/...", &guest()),
        component("notes", "/notes/...", Path::new("notes.wasm")),
        component("gone", "/gone/...", Path::new("nowhere/gone.wasm")),
        component("redis", "/redis/...", &components_dir().join("redis_guest.wasm")),
        "[database.app]\nurl_env = \"GATEHOUSE_CHECK_UNSET_URL\"\n".to_owned(),
    ]
    .concat();
    let (ok, out) = check(&manifest);
    assert!(!ok, "{out}");
    assert!(out.contains("component `notes`") && out.contains("notes.wasm"), "{out}");
    assert!(out.contains("component `gone`") && out.contains("gone.wasm"), "{out}");
    assert!(out.contains("GATEHOUSE_CHECK_UNSET_URL"), "{out}");
    assert!(
        out.contains("component `redis`") && out.contains("imports `fermyon:spin/redis@2.0.0` (Redis)"),
        "an interface the host leaves out is named: {out}"
    );
    assert!(!out.contains("component `guest`"), "the sound component is not blamed: {out}");
    assert!(out.contains("4 problem(s)"), "{out}");
}

/// The compiled code in the cache folder (not its usage statistics), and
/// when each file was last written.
fn cache_files(dir: &Path) -> Vec<(std::ffi::OsString, std::time::SystemTime)> {
    let compiled = |p: &PathBuf| {
        let name = p.file_name().unwrap_or_default().to_string_lossy().into_owned();
        !name.starts_with('.') && !name.ends_with(".stats")
    };
    let mut files: Vec<_> = walk(dir)
        .into_iter()
        .filter(compiled)
        .map(|p| (p.clone().into_os_string(), p.metadata().unwrap().modified().unwrap()))
        .collect();
    files.sort();
    files
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries.flatten().flat_map(|e| if e.path().is_dir() { walk(&e.path()) } else { vec![e.path()] }).collect()
        })
        .unwrap_or_default()
}

#[test]
fn compiled_components_are_kept_and_reused() {
    let cache = std::env::temp_dir().join(format!("gatehouse-cache-{}", uuid::Uuid::new_v4()));
    let manifest = component("guest", "/guest/...", &guest());
    let env = [("GATEHOUSE_COMPILE_CACHE", cache.as_path())];
    let (ok, out) = check_with(&manifest, &env);
    assert!(ok, "{out}");
    let first = cache_files(&cache);
    assert!(!first.is_empty(), "the compiled component is kept");
    let (ok, out) = check_with(&manifest, &env);
    assert!(ok, "{out}");
    assert_eq!(cache_files(&cache), first, "the second start compiles nothing new");
    let _ = std::fs::remove_dir_all(&cache);
}
