//! Configuration from code, environment and a YAML file, and their precedence.

use std::time::Duration;

use dynamodb_session_store::config::BillingMode;
use dynamodb_session_store::{Config, Error};

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

#[test]
fn enable_locking_and_concurrency_are_one_setting_with_one_precedence() {
    use dynamodb_session_store::Concurrency;
    let mode =
        |builder: dynamodb_session_store::ConfigBuilder| builder.build().unwrap().concurrency;

    // The builder wins over the environment, whichever name each uses.
    let builder_off = Config::builder()
        .enable_locking(false)
        .env([("AWS_DYNAMO_DB_SESSION_CONCURRENCY", "pessimistic")]);
    assert_eq!(mode(builder_off), Concurrency::None);
    let builder_optimistic = Config::builder()
        .concurrency(Concurrency::Optimistic)
        .env([("AWS_DYNAMO_DB_SESSION_ENABLE_LOCKING", "true")]);
    assert_eq!(mode(builder_optimistic), Concurrency::Optimistic);

    // The environment wins over the file.
    let file = write_file("concurrency: optimistic\n");
    let env_on = Config::builder().env([
        ("AWS_DYNAMO_DB_SESSION_CONFIG_FILE", file.to_str().unwrap()),
        ("AWS_DYNAMO_DB_SESSION_ENABLE_LOCKING", "true"),
    ]);
    assert_eq!(mode(env_on), Concurrency::Pessimistic);
    let file = write_file("enable_locking: true\n");
    let env_none = Config::builder().env([
        ("AWS_DYNAMO_DB_SESSION_CONFIG_FILE", file.to_str().unwrap()),
        ("AWS_DYNAMO_DB_SESSION_CONCURRENCY", "none"),
    ]);
    assert_eq!(mode(env_none), Concurrency::None);
    assert_eq!(
        mode(Config::builder().config_file(&file)),
        Concurrency::Pessimistic
    );

    // Within one source the two must agree; the error names both.
    let err = Config::builder()
        .env([
            ("AWS_DYNAMO_DB_SESSION_CONCURRENCY", "optimistic"),
            ("AWS_DYNAMO_DB_SESSION_ENABLE_LOCKING", "true"),
        ])
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("AWS_DYNAMO_DB_SESSION_CONCURRENCY")
            && err.contains("AWS_DYNAMO_DB_SESSION_ENABLE_LOCKING"),
        "{err}"
    );
    let file = write_file("concurrency: pessimistic\nenable_locking: false\n");
    let err = Config::builder()
        .config_file(&file)
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(":concurrency") && err.contains(":enable_locking"),
        "{err}"
    );
    let err = Config::builder()
        .concurrency(Concurrency::None)
        .enable_locking(true)
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ConfigBuilder::concurrency") && err.contains("ConfigBuilder::enable_locking"),
        "{err}"
    );
}

#[test]
fn lock_delays_must_be_positive_in_every_source() {
    for (variable, option) in [
        ("AWS_DYNAMO_DB_SESSION_LOCK_RETRY_DELAY", "lock_retry_delay"),
        ("AWS_DYNAMO_DB_SESSION_LOCK_EXPIRY_TIME", "lock_expiry_time"),
    ] {
        let err = Config::builder()
            .env([(variable, "0ms")])
            .build()
            .unwrap_err();
        assert!(err.to_string().contains(variable), "{err}");
        let file = write_file(&format!("{option}: 0\n"));
        let err = Config::builder().config_file(&file).build().unwrap_err();
        assert!(err.to_string().contains(option), "{err}");
    }
    let err = Config::builder()
        .lock_expiry_time(Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("lock_expiry_time"), "{err}");
}

/// Log lines written while `f` runs, at every level.
fn logs_of<T>(f: impl FnOnce() -> T) -> (T, String) {
    let logs = integration_tests::capture::Captured::default();
    let result = tracing::subscriber::with_default(logs.subscriber(), f);
    (result, logs.text())
}

#[test]
fn a_misspelt_variable_is_warned_about_with_the_closest_option() {
    let (config, logs) = logs_of(|| {
        Config::builder()
            .env([
                ("AWS_DYNAMO_DB_SESSION_TABEL_NAME", "typo-value-not-logged"),
                ("DYNAMO_DB_SESSION_MAX_STAIL", "60"),
                ("AWS_DYNAMO_DB_SESSION_COOKIE_SECURE", "false"),
                ("UNRELATED_VARIABLE", "x"),
            ])
            .build()
    });
    assert_eq!(
        config.unwrap().table_name,
        "sessions",
        "the typo set nothing"
    );
    assert!(
        logs.contains("AWS_DYNAMO_DB_SESSION_TABEL_NAME")
            && logs.contains("AWS_DYNAMO_DB_SESSION_TABLE_NAME"),
        "{logs}"
    );
    assert!(
        logs.contains("DYNAMO_DB_SESSION_MAX_STAIL")
            && logs.contains("AWS_DYNAMO_DB_SESSION_MAX_STALE"),
        "{logs}"
    );
    assert!(!logs.contains("typo-value-not-logged"), "{logs}");
    assert!(
        !logs.contains("COOKIE_SECURE\""),
        "layer options are known: {logs}"
    );
    assert!(!logs.contains("UNRELATED_VARIABLE"), "{logs}");
}

#[test]
fn no_configuration_error_shows_a_secret() {
    const SECRET: &str = "hunter2-secret";
    let long = "a".repeat(40);
    let shows = |err: &Error| {
        let mut text = format!("{err} {err:?}");
        let mut source = std::error::Error::source(err);
        while let Some(cause) = source {
            text.push_str(&format!(" {cause} {cause:?}"));
            source = cause.source();
        }
        text.contains("hunter2")
    };
    let mut errors = vec![
        Config::builder().secret_key(SECRET).build().unwrap_err(),
        Config::builder()
            .previous_secret_keys([long.as_str(), SECRET])
            .build()
            .unwrap_err(),
        Config::builder()
            .env([("AWS_DYNAMO_DB_SESSION_SECRET_KEY", SECRET)])
            .build()
            .unwrap_err(),
        Config::builder()
            .env([(
                "AWS_DYNAMO_DB_SESSION_PREVIOUS_SECRET_KEYS",
                format!("{long},{SECRET}").as_str(),
            )])
            .build()
            .unwrap_err(),
    ];
    for file in [
        format!("secret_key: {SECRET}\n"),
        format!("secret_key: [{SECRET}-a, {SECRET}-b]\n"),
        format!("secret_key: {{k: {SECRET}}}\n"),
        format!("previous_secret_keys: [{long}, {{k: {SECRET}}}]\n"),
        format!("secert_key: {SECRET}-misspelt-{long}\n"),
        format!("secret_key: \"{SECRET}-unclosed\n"),
    ] {
        errors.push(
            Config::builder()
                .config_file(write_file(&file))
                .build()
                .unwrap_err(),
        );
    }
    for err in &errors {
        assert!(!shows(err), "{err:?}");
    }
}
