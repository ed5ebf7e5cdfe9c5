//! Property tests: whatever the environment, flags or file hold, loading never panics, and a
//! secret's value never appears in an error message.

use pier_config::{Config, Env, Flag, LoadOptions, Role};
use proptest::prelude::*;

const KEYS: &[&str] = &[
    "APP_ENV",
    "DEBUG",
    "LOG_LEVEL",
    "DB_HOST",
    "DB_PORT",
    "DB_NAME",
    "DB_USER",
    "DATABASE_URL",
    "PIER_HTTP__ADDR",
    "PIER_HTTP__BODY_LIMIT_BYTES",
    "PIER_LOG__FORMAT",
    "PIER_LOG__FILE",
    "PIER_METRICS__ALLOW",
    "PIER_DATABASE__DURABILITY",
    "PIER_DATABASE__POOL_SIZE",
    "PIER_DATABASE__TLS",
    "PIER_X",
    "PIER_A__B__C",
    "API_URL_X",
    "API_KEY_X",
];

fn load(env: Vec<(String, String)>, file: Option<&std::path::Path>) -> Result<Config, String> {
    Config::load(
        LoadOptions {
            role: Role::Serve,
            config_file: file.map(std::path::Path::to_path_buf),
            flags: Vec::<Flag>::new(),
        },
        &Env::from_pairs(env),
    )
    .map_err(|e| e.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_environment_loads_or_errors_without_panicking(
        pairs in proptest::collection::vec((proptest::sample::select(KEYS), ".{0,40}"), 0..8)
    ) {
        let env: Vec<(String, String)> =
            pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let _ = load(env, None);
    }

    #[test]
    fn a_password_never_appears_in_an_error(pw in "[a-zA-Z0-9]{12,20}", port in ".{1,8}") {
        let env = vec![
            ("DB_HOST".to_owned(), "db".to_owned()),
            ("DB_PASSWORD".to_owned(), pw.clone()),
            ("DB_PORT".to_owned(), port),
            ("DATABASE_URL".to_owned(), format!("postgres://u:{pw}@h:x/db")),
        ];
        if let Err(e) = load(env, None) {
            prop_assert!(!e.contains(&pw), "{}", e);
        }
    }

    #[test]
    fn any_config_file_loads_or_errors_without_panicking(text in "(\\[[a-z]{1,8}\\]\n)?([a-z_]{1,12} = (\"[^\"\n]{0,10}\"|[0-9]{1,6}|true|\\[\\])\n){0,6}") {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pier.toml");
        std::fs::write(&path, text).unwrap();
        let _ = load(Vec::new(), Some(&path));
    }
}

#[test]
fn every_default_is_valid_in_both_environments() {
    for env in ["development", "production"] {
        let c = load(vec![("APP_ENV".into(), env.into())], None).unwrap();
        assert_eq!(c.is_production(), env == "production");
    }
}

#[test]
fn production_defaults_follow_the_infrastructure_table() {
    let c = load(vec![("APP_ENV".into(), "production".into())], None).unwrap();
    assert_eq!(c.http.addr.to_string(), "0.0.0.0:8080");
    assert_eq!(c.paths.data_dir.to_str(), Some("/var/lib/pier"));
    assert_eq!(c.paths.public_dir.to_str(), Some("/srv/pier/static"));
    assert_eq!(c.paths.backups_dir.to_str(), Some("/srv/pier/backups"));
    assert_eq!(c.paths.certs_dir.to_str(), Some("/etc/ssl/pier"));
    assert_eq!(c.paths.logs_dir.to_str(), Some("/var/log/pier"));
    assert!(c.log.file);
    assert_eq!(c.log.format, pier_config::LogFormat::Json);
    let d = load(Vec::new(), None).unwrap();
    assert_eq!(d.http.addr.to_string(), "127.0.0.1:8080");
    assert_eq!(d.paths.database_file.to_str(), Some("./pier_data/data.db"));
    assert_eq!(d.log.format, pier_config::LogFormat::Text);
    assert!(!d.log.file);
}

#[test]
fn debug_true_means_debug_logs_unless_log_level_is_set() {
    let c = load(vec![("DEBUG".into(), "true".into())], None).unwrap();
    assert_eq!(c.log.level, pier_config::LogLevel::Debug);
    let c = load(
        vec![
            ("DEBUG".into(), "true".into()),
            ("LOG_LEVEL".into(), "warn".into()),
        ],
        None,
    )
    .unwrap();
    assert_eq!(c.log.level, pier_config::LogLevel::Warn);
}

#[test]
fn outside_apis_are_collected_from_pairs() {
    let c = load(
        vec![
            ("API_URL_WEATHER".into(), "https://w.example/v1".into()),
            ("API_KEY_WEATHER".into(), "k1".into()),
            ("API_URL_MAPS".into(), "http://maps.internal".into()),
        ],
        None,
    )
    .unwrap();
    let names: Vec<_> = c.apis.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["maps", "weather"]);
    let w = &c.apis[1];
    assert_eq!(pier_config::expose(w.key.as_ref().unwrap()), "k1");
    assert_eq!(w.header, "authorization");
    assert!(c.apis[0].key.is_none());
}

#[test]
fn database_url_selects_postgres_and_db_host_too() {
    let c = load(
        vec![("DATABASE_URL".into(), "postgres://a:b@h:6000/n".into())],
        None,
    )
    .unwrap();
    match c.database {
        pier_config::DatabaseConfig::Postgres(p) => {
            assert_eq!((p.host.as_str(), p.port, p.name.as_str()), ("h", 6000, "n"));
        }
        other => panic!("{other:?}"),
    }
    let c = load(vec![("DB_HOST".into(), "/run/pg".into())], None).unwrap();
    assert!(matches!(
        c.database,
        pier_config::DatabaseConfig::Postgres(_)
    ));
    let c = load(Vec::new(), None).unwrap();
    assert!(matches!(c.database, pier_config::DatabaseConfig::Sqlite(_)));
}

#[test]
fn secrets_from_files_lose_their_trailing_newline() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("pw");
    std::fs::write(&f, "s3cret\n").unwrap();
    let c = load(
        vec![
            ("DB_HOST".into(), "h".into()),
            ("DB_PASSWORD_FILE".into(), f.display().to_string()),
        ],
        None,
    )
    .unwrap();
    match c.database {
        pier_config::DatabaseConfig::Postgres(p) => {
            assert_eq!(pier_config::expose(p.password.as_ref().unwrap()), "s3cret");
        }
        other => panic!("{other:?}"),
    }
    // The same in pier.toml.
    let toml = dir.path().join("pier.toml");
    std::fs::write(
        &toml,
        format!(
            "[database]\nhost = \"h\"\npassword_file = \"{}\"\n",
            f.display()
        ),
    )
    .unwrap();
    let c = load(Vec::new(), Some(&toml)).unwrap();
    assert!(
        matches!(c.database, pier_config::DatabaseConfig::Postgres(ref p) if p.password.is_some())
    );
    assert!(!c.describe().contains("s3cret"));
}
