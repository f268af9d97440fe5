//! The `gatehouse-setup` binary as a deployment's Job runs it: a missing or
//! unreachable database is one clear line and a failing exit, with no
//! credential in it.

use std::process::Command;

fn setup() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse-setup"));
    command.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).args(["--manifest", "deploy/host.toml"]);
    command.env_remove("DATABASE_URL");
    command
}

#[test]
fn a_missing_database_url_is_named() {
    let out = setup().output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("DATABASE_URL is not set"), "{stderr}");
}

#[test]
fn an_unreachable_database_is_one_line_without_its_password() {
    let out = setup().env("DATABASE_URL", "postgres://app:do-not-print@127.0.0.1:1/app").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("cannot connect"), "{stderr}");
    assert!(!stderr.contains("do-not-print"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
