//! Configuration from code, environment and a YAML file, and their precedence.

use std::time::Duration;

use dynamodb_session_store::{BillingMode, Config, Error};

fn write_file(contents: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let path = std::env::temp_dir().join(format!(
        "session-config-{}-{}.yml",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn explicit_beats_environment_beats_file_beats_default() {
    let file = write_file(
        "table_name: from-file\n\
         table_key: file_key\n\
         max_age: 100\n\
         max_stale: 50\n\
         lock_retry_delay: 250\n\
         billing_mode: PROVISIONED\n\
         read_capacity: 20\n",
    );
    let config = Config::builder()
        .table_name("explicit")
        .env([
            ("AWS_DYNAMO_DB_SESSION_CONFIG_FILE", file.to_str().unwrap()),
            ("AWS_DYNAMO_DB_SESSION_TABLE_NAME", "from-env"),
            ("AWS_DYNAMO_DB_SESSION_TABLE_KEY", "env_key"),
            ("AWS_DYNAMO_DB_SESSION_MAX_AGE", "200"),
        ])
        .build()
        .unwrap();
    assert_eq!(
        config.table_name, "explicit",
        "explicit wins over env and file"
    );
    assert_eq!(config.table_key, "env_key", "env wins over file");
    assert_eq!(
        config.max_age,
        Some(Duration::from_secs(200)),
        "env wins over file"
    );
    assert_eq!(
        config.max_stale,
        Some(Duration::from_secs(50)),
        "file wins over default"
    );
    assert_eq!(
        config.lock_retry_delay,
        Duration::from_millis(250),
        "milliseconds as in the gem"
    );
    assert_eq!(config.billing_mode, BillingMode::Provisioned);
    assert_eq!((config.read_capacity, config.write_capacity), (20, 5));
    assert_eq!(config.lock_max_wait_time, Duration::from_secs(1), "default");
    assert_eq!(config.config_file.as_deref(), Some(file.as_path()));
}

#[test]
fn explicit_config_file_wins_over_the_environments() {
    let env_file = write_file("table_name: env-file\n");
    let explicit_file = write_file("table_name: explicit-file\n");
    let config = Config::builder()
        .config_file(&explicit_file)
        .env([(
            "AWS_DYNAMO_DB_SESSION_CONFIG_FILE",
            env_file.to_str().unwrap(),
        )])
        .build()
        .unwrap();
    assert_eq!(config.table_name, "explicit-file");
}

#[test]
fn both_environment_forms_are_read_and_the_current_one_wins() {
    let legacy = Config::builder()
        .env([
            ("DYNAMO_DB_SESSION_TABLE_NAME", "legacy-name"),
            ("DYNAMO_DB_SESSION_ENABLE_LOCKING", "true"),
            (
                "DYNAMO_DB_SESSION_SECRET_KEY",
                "legacy-secret-0123456789abcdef0123456789",
            ),
        ])
        .build()
        .unwrap();
    assert_eq!(legacy.table_name, "legacy-name");
    assert_eq!(
        legacy.concurrency,
        dynamodb_session_store::Concurrency::Pessimistic
    );
    assert!(legacy.secret_key.is_some());

    let both = Config::builder()
        .env([
            ("DYNAMO_DB_SESSION_TABLE_NAME", "legacy-name"),
            ("AWS_DYNAMO_DB_SESSION_TABLE_NAME", "current-name"),
        ])
        .build()
        .unwrap();
    assert_eq!(both.table_name, "current-name");

    // Lower-case option names after the prefix are not how the gem reads them, and other
    // variables are ignored.
    let other = Config::builder()
        .env([
            ("PATH", "/bin"),
            ("AWS_DYNAMO_DB_SESSION_SECRET_ARN", "arn:aws:..."),
        ])
        .build()
        .unwrap();
    assert_eq!(other.table_name, "sessions");
}

#[test]
fn every_option_is_read_from_the_environment() {
    let config = Config::builder()
        .env([
            ("AWS_DYNAMO_DB_SESSION_TABLE_NAME", "table-1"),
            ("AWS_DYNAMO_DB_SESSION_TABLE_KEY", "k1"),
            ("AWS_DYNAMO_DB_SESSION_SECRET_KEY", "s".repeat(40).as_str()),
            (
                "AWS_DYNAMO_DB_SESSION_PREVIOUS_SECRET_KEYS",
                &format!("{},{}", "p".repeat(32), "q".repeat(32)),
            ),
            ("AWS_DYNAMO_DB_SESSION_CONSISTENT_READ", "false"),
            ("AWS_DYNAMO_DB_SESSION_BILLING_MODE", "provisioned"),
            ("AWS_DYNAMO_DB_SESSION_READ_CAPACITY", "3"),
            ("AWS_DYNAMO_DB_SESSION_WRITE_CAPACITY", "4"),
            ("AWS_DYNAMO_DB_SESSION_RAISE_ERRORS", "TRUE"),
            ("AWS_DYNAMO_DB_SESSION_MAX_AGE", "86400"),
            ("AWS_DYNAMO_DB_SESSION_MAX_STALE", "3600"),
            ("AWS_DYNAMO_DB_SESSION_ENABLE_LOCKING", "true"),
            ("AWS_DYNAMO_DB_SESSION_LOCK_EXPIRY_TIME", "700"),
            ("AWS_DYNAMO_DB_SESSION_LOCK_RETRY_DELAY", "100"),
            ("AWS_DYNAMO_DB_SESSION_LOCK_MAX_WAIT_TIME", "2"),
            ("AWS_DYNAMO_DB_SESSION_SERIALIZER", "json"),
            ("AWS_DYNAMO_DB_SESSION_TOUCH_AFTER", "30"),
        ])
        .build()
        .unwrap();
    assert_eq!(
        (config.table_name.as_str(), config.table_key.as_str()),
        ("table-1", "k1")
    );
    assert!(config.secret_key.is_some());
    assert_eq!(config.previous_secret_keys.len(), 2);
    assert!(!config.consistent_read);
    assert_eq!(config.billing_mode, BillingMode::Provisioned);
    assert_eq!((config.read_capacity, config.write_capacity), (3, 4));
    assert!(config.raise_errors);
    assert_eq!(config.max_age, Some(Duration::from_secs(86400)));
    assert_eq!(config.max_stale, Some(Duration::from_secs(3600)));
    assert_eq!(
        config.concurrency,
        dynamodb_session_store::Concurrency::Pessimistic
    );
    assert_eq!(config.lock_expiry_time, Duration::from_millis(700));
    assert_eq!(config.lock_retry_delay, Duration::from_millis(100));
    assert_eq!(config.lock_max_wait_time, Duration::from_secs(2));
    assert_eq!(config.touch_after, Duration::from_secs(30));
    assert!(format!("{:?}", config.error_handler).contains("raise_errors: true"));
}

#[test]
fn bad_values_are_errors_naming_their_origin_and_value() {
    let cases = [
        ("AWS_DYNAMO_DB_SESSION_ENABLE_LOCKING", "maybe"),
        ("AWS_DYNAMO_DB_SESSION_MAX_STALE", "-1"),
        ("AWS_DYNAMO_DB_SESSION_LOCK_MAX_WAIT_TIME", "a while"),
        ("AWS_DYNAMO_DB_SESSION_WRITE_CAPACITY", "1.5"),
        ("DYNAMO_DB_SESSION_RAISE_ERRORS", "1"),
        ("AWS_DYNAMO_DB_SESSION_SERIALIZER", "marshal"),
    ];
    for (variable, value) in cases {
        let err = Config::builder()
            .env([(variable, value)])
            .build()
            .unwrap_err();
        let Error::InvalidConfig {
            origin,
            value: shown,
            ..
        } = &err
        else {
            panic!("{variable}={value}: {err:?}");
        };
        assert_eq!((origin.as_str(), shown.as_str()), (variable, value));
    }

    // Checks that span the whole value name its origin too.
    let err = Config::builder()
        .env([("AWS_DYNAMO_DB_SESSION_READ_CAPACITY", "0")])
        .build()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("AWS_DYNAMO_DB_SESSION_READ_CAPACITY"),
        "{err}"
    );
    let err = Config::builder().table_name("x").build().unwrap_err();
    assert!(
        err.to_string().contains("ConfigBuilder::table_name"),
        "{err}"
    );

    let file = write_file("enable_locking: maybe\n");
    let err = Config::builder().config_file(&file).build().unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("enable_locking") && message.contains("maybe"),
        "{message}"
    );

    let file = write_file("tabel_name: typo\n");
    let err = Config::builder().config_file(&file).build().unwrap_err();
    assert!(
        err.to_string().contains("tabel_name"),
        "unknown keys are reported: {err}"
    );

    let err = Config::builder()
        .config_file("/nonexistent/session.yml")
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::ConfigFile { .. }), "{err:?}");

    let file = write_file("table_name: [unclosed\n");
    assert!(matches!(
        Config::builder().config_file(&file).build(),
        Err(Error::ConfigFile { .. })
    ));
}

#[test]
fn yaml_file_reads_lists_of_previous_secrets_and_gem_style_symbol_keys() {
    let file = write_file(&format!(
        ":table_name: gem-style\nprevious_secret_keys:\n  - {}\n  - {}\nconsistent_read: false\n",
        "a".repeat(32),
        "b".repeat(32)
    ));
    let config = Config::builder().config_file(&file).build().unwrap();
    assert_eq!(config.table_name, "gem-style");
    assert_eq!(config.previous_secret_keys.len(), 2);
    assert!(!config.consistent_read);
}
