//! The built binary answers for itself without a table. Beyond that, being an integration
//! test makes `cargo test --workspace` build `target/debug/sessionctl`, which
//! `tests/tests/sessionctl.rs` (package `integration-tests`) runs against the local DynamoDB.

use std::process::Command;

#[test]
fn help_lists_every_command_and_version_names_the_binary() {
    let binary = env!("CARGO_BIN_EXE_sessionctl");
    let help = Command::new(binary).arg("--help").output().expect("runs");
    assert!(help.status.success(), "{help:?}");
    let text = String::from_utf8(help.stdout).expect("UTF-8");
    for command in [
        "create-table",
        "delete-table",
        "gc",
        "stats",
        "inspect",
        "revoke",
    ] {
        assert!(
            text.lines()
                .any(|line| line.trim_start().starts_with(command)),
            "`{command}` missing from:\n{text}"
        );
    }

    let version = Command::new(binary)
        .arg("--version")
        .output()
        .expect("runs");
    assert!(version.status.success(), "{version:?}");
    assert_eq!(
        String::from_utf8(version.stdout).expect("UTF-8").trim(),
        format!("sessionctl {}", env!("CARGO_PKG_VERSION"))
    );
}
