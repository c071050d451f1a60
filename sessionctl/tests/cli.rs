//! The built binary answers for itself without a table. Beyond that, being an integration
//! test makes `cargo test --workspace` build `target/debug/sessionctl`, which
//! `tests/tests/sessionctl.rs` (package `integration-tests`) runs against the local DynamoDB.

use std::process::Command;

#[test]
fn help_lists_every_command_each_has_its_own_and_version_names_the_binary() {
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
        let help = Command::new(binary)
            .args([command, "--help"])
            .output()
            .expect("runs");
        assert!(help.status.success(), "{command} --help: {help:?}");
        let usage = format!("Usage: sessionctl {command}");
        assert!(
            String::from_utf8_lossy(&help.stdout).contains(&usage),
            "`{usage}` missing: {help:?}"
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
