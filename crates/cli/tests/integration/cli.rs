//! The command line: help, version, configuration errors and `pier check`.

use crate::helpers::{pier, run};

#[test]
fn help_lists_every_subcommand_and_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(pier(dir.path()).arg("--help"));
    assert_eq!(out.code, Some(0));
    for cmd in ["serve", "backend", "migrate", "check", "version"] {
        assert!(
            out.stdout.contains(cmd),
            "{cmd} missing from:\n{}",
            out.stdout
        );
    }
    let serve = run(pier(dir.path()).args(["serve", "--help"]));
    for flag in ["--http", "--dir", "--public-dir", "--config"] {
        assert!(
            serve.stdout.contains(flag),
            "{flag} missing from:\n{}",
            serve.stdout
        );
    }
}

#[test]
fn version_prints_the_version() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(pier(dir.path()).arg("version"));
    assert_eq!(out.code, Some(0));
    assert_eq!(
        out.stdout.trim(),
        format!("pier version {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn unknown_flags_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(pier(dir.path()).args(["serve", "--htp", "x"]));
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("--htp"), "{}", out.stderr);
}

#[test]
fn check_prints_the_effective_config_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("metrics-token"), "file-secret-999\n").unwrap();
    let out = run(pier(dir.path())
        .args(["check", "--dir", "data"])
        .env("DB_HOST", "db.internal")
        .env("DB_PASSWORD", "hunter2-secret")
        .env("PIER_METRICS__TOKEN_FILE", dir.path().join("metrics-token"))
        .env("API_URL_WEATHER", "https://weather.example/v1")
        .env("API_KEY_WEATHER", "weather-key-777")
        .env("LOG_LEVEL", "warn"));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let text = out.stdout;
    for secret in ["hunter2-secret", "file-secret-999", "weather-key-777"] {
        assert!(!text.contains(secret), "{secret} leaked:\n{text}");
    }
    assert!(
        text.contains(r#"database.password = "<redacted>"  # environment variable `DB_PASSWORD`"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"metrics.token = "<redacted>"  # environment variable `PIER_METRICS__TOKEN_FILE`"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"database.host = "db.internal"  # environment variable `DB_HOST`"#),
        "{text}"
    );
    assert!(text.contains(r#"log.level = "warn""#), "{text}");
    assert!(
        text.contains(r#"paths.data_dir = "data"  # flag `--dir`"#),
        "{text}"
    );
    assert!(
        text.contains(r#"apis.weather.url = "https://weather.example/v1""#),
        "{text}"
    );
    assert!(text.contains("configuration is valid"));
}

#[test]
fn precedence_is_defaults_then_file_then_env_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pier.toml"),
        "[http]\naddr = \"127.0.0.1:7000\"\nshutdown_timeout_seconds = 3\n[log]\nlevel = \"error\"\n",
    )
    .unwrap();
    let out = run(pier(dir.path())
        .args(["check", "--config", "pier.toml", "--http", "127.0.0.1:7002"])
        .env("PIER_HTTP__ADDR", "127.0.0.1:7001")
        .env("LOG_LEVEL", "debug"));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let t = out.stdout;
    assert!(
        t.contains(r#"http.addr = "127.0.0.1:7002"  # flag `--http`"#),
        "{t}"
    );
    assert!(
        t.contains("http.shutdown_timeout_seconds = 3  # file `pier.toml`"),
        "{t}"
    );
    assert!(
        t.contains(r#"log.level = "debug"  # environment variable `LOG_LEVEL`"#),
        "{t}"
    );
    // PIER_CONFIG names the file when --config does not.
    let out = run(pier(dir.path())
        .arg("check")
        .env("PIER_CONFIG", "pier.toml"));
    assert!(
        out.stdout
            .contains(r#"http.addr = "127.0.0.1:7000"  # file `pier.toml`"#),
        "{}",
        out.stdout
    );
}

fn check_fails(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)], expect: &[&str]) {
    let mut cmd = pier(dir);
    cmd.arg("check").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run(&mut cmd);
    assert_eq!(
        out.code,
        Some(1),
        "stdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
    for e in expect {
        assert!(out.stderr.contains(e), "{e:?} not in: {}", out.stderr);
    }
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

#[test]
fn bad_configuration_names_the_key_the_source_and_the_expectation() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("typo.toml"), "[http]\nadr = \"x\"\n").unwrap();
    check_fails(
        d,
        &["--config", "typo.toml"],
        &[],
        &["unknown setting `http.adr`", "typo.toml"],
    );
    std::fs::write(d.join("bad.toml"), "[http\n").unwrap();
    check_fails(
        d,
        &["--config", "bad.toml"],
        &[],
        &["bad.toml", "not valid TOML"],
    );
    std::fs::write(d.join("type.toml"), "[database]\nport = \"five\"\n").unwrap();
    check_fails(
        d,
        &["--config", "type.toml"],
        &[],
        &["database.port", "type.toml"],
    );
    check_fails(d, &["--config", "missing.toml"], &[], &["missing.toml"]);
    check_fails(
        d,
        &[],
        &[("DB_PORT", "abc")],
        &["database.port", "`DB_PORT`", "whole number"],
    );
    check_fails(
        d,
        &[],
        &[("APP_ENV", "staging")],
        &["app_env", "`APP_ENV`", "development"],
    );
    check_fails(
        d,
        &[],
        &[("DEBUG", "maybe")],
        &["debug", "`DEBUG`", "true or false"],
    );
    check_fails(
        d,
        &[],
        &[("LOG_LEVEL", "loud")],
        &["log.level", "`LOG_LEVEL`"],
    );
    check_fails(
        d,
        &[],
        &[("PIER_HTTP__ADRESS", "x")],
        &["unknown setting `http.adress`", "PIER_HTTP__ADRESS"],
    );
    // A bare PIER_SOMETHING that is no setting may belong to a script: only a warning.
    let out = run(pier(d).arg("check").env("PIER_BIN", "/usr/bin/pier"));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("ignoring environment variable `PIER_BIN`"),
        "{}",
        out.stderr
    );
    check_fails(
        d,
        &["--http", "nowhere"],
        &[],
        &["http.addr", "flag `--http`", "host:port"],
    );
    check_fails(
        d,
        &[],
        &[("DB_PASSWORD_FILE", "/nonexistent/pw")],
        &["/nonexistent/pw", "DB_PASSWORD_FILE"],
    );
    check_fails(
        d,
        &[],
        &[("DB_PASSWORD", "a"), ("DB_PASSWORD_FILE", "/x")],
        &["DB_PASSWORD", "DB_PASSWORD_FILE", "give one"],
    );
    check_fails(
        d,
        &[],
        &[
            ("DATABASE_URL", "postgres://u:topsecret@h/db"),
            ("DB_HOST", "h"),
        ],
        &["database.url", "database.host"],
    );
    let out = run(pier(d)
        .arg("check")
        .env("DATABASE_URL", "mysql://u:topsecret@h/db"));
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("database.url") && !out.stderr.contains("topsecret"),
        "{}",
        out.stderr
    );
    check_fails(
        d,
        &["--public-dir", "no-such-folder"],
        &[],
        &["paths.public_dir", "no-such-folder"],
    );
    std::fs::write(d.join("afile"), "x").unwrap();
    check_fails(
        d,
        &["--dir", "afile"],
        &[],
        &["paths.data_dir", "flag `--dir`", "is a file"],
    );
    check_fails(
        d,
        &[],
        &[("API_KEY_ORPHAN", "k")],
        &["apis.orphan.url", "no URL"],
    );
}

#[test]
fn a_data_folder_that_is_a_file_stops_serve_before_it_listens() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("afile"), "x").unwrap();
    let out = run(pier(dir.path()).args(["serve", "--http", "127.0.0.1:0", "--dir", "afile"]));
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("is a file, not a folder"),
        "{}",
        out.stderr
    );
    assert!(!out.stdout.contains("listening on"));
}

#[test]
fn migrate_applies_then_lists() {
    let dir = tempfile::tempdir().unwrap();
    let up = run(pier(dir.path()).args(["migrate", "--dir", "d"]));
    assert_eq!(up.code, Some(0), "{}", up.stderr);
    assert!(up.stdout.contains("applied 1 params"), "{}", up.stdout);
    let again = run(pier(dir.path()).args(["migrate", "--dir", "d"]));
    assert!(
        again.stdout.contains("no pending migrations"),
        "{}",
        again.stdout
    );
    let list = run(pier(dir.path()).args(["migrate", "list", "--dir", "d"]));
    assert_eq!(list.code, Some(0));
    assert!(
        list.stdout.contains("params") && list.stdout.contains("applied"),
        "{}",
        list.stdout
    );
}

// Regression test for issue 11, item 3: the development certificate names each host.
#[test]
fn cert_dev_names_every_development_host_and_reissues_from_the_kept_ca() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(pier(dir.path()).args(["cert", "dev", "--dir", "data"]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("made a development CA"),
        "{}",
        out.stdout
    );
    for name in [
        "localhost,",
        "api.localhost",
        "admin.localhost",
        "docs.localhost",
        "dev.localhost",
        "app.localhost",
        "*.localhost",
        "127.0.0.1",
        "::1",
    ] {
        assert!(out.stdout.contains(name), "{name} in {}", out.stdout);
    }
    let ca = dir.path().join("data/certs/dev-ca.pem");
    let ca_before = std::fs::read(&ca).unwrap();
    let out = run(pier(dir.path()).args(["cert", "dev", "--dir", "data"]));
    assert!(out.stdout.contains("up to date"), "{}", out.stdout);

    // A route under `.localhost` added later: its name is missing, so the certificate is
    // issued again, by the same CA.
    std::fs::write(
        dir.path().join("pier.toml"),
        "[[gateway.routes]]\nhost = \"shop.localhost\"\nto = \"frontend\"\n",
    )
    .unwrap();
    let out = run(pier(dir.path()).args(["cert", "dev", "--dir", "data", "--config", "pier.toml"]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("re-issued") && out.stdout.contains("lacked shop.localhost"),
        "{}",
        out.stdout
    );
    assert_eq!(std::fs::read(&ca).unwrap(), ca_before);
}
