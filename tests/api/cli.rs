//! The binary: commands, configuration layering and start-up refusals.

use std::process::{Command, Output};

fn run(args: &[&str], env: &[(&str, &str)], dir: &std::path::Path) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_migration-portal"));
    command.args(args).current_dir(dir);
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("MP_")) {
        command.env_remove(key);
    }
    command.envs(env.iter().copied());
    command.output().expect("the binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn migrate_creates_the_sqlite_database_and_is_repeatable() {
    let dir = tempfile::tempdir().expect("dir");
    for _ in 0..2 {
        let output = run(
            &["migrate"],
            &[("MP_DATABASE__URL", "sqlite://fresh.db")],
            dir.path(),
        );
        assert!(output.status.success(), "{}", stderr(&output));
    }
    assert!(
        dir.path().join("fresh.db").exists(),
        "database file created"
    );
    let tables = sqlite_tables(&dir.path().join("fresh.db"));
    for table in ["workspaces", "idempotency_records", "seaql_migrations"] {
        assert!(
            tables.iter().any(|t| t == table),
            "{table} missing from {tables:?}"
        );
    }
}

fn sqlite_tables(file: &std::path::Path) -> Vec<String> {
    use sea_orm::{ConnectionTrait, Database, Statement};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let db = Database::connect(format!("sqlite://{}", file.display()))
            .await
            .expect("open");
        let rows = db
            .query_all_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT name FROM sqlite_master WHERE type = 'table'",
            ))
            .await
            .expect("query");
        rows.iter()
            .map(|r| r.try_get::<String>("", "name").expect("name"))
            .collect()
    })
}

#[test]
fn the_environment_overrides_the_file_which_overrides_the_defaults() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("mp.toml"),
        "log_format = \"json\"\n[database]\nurl = \"sqlite://from-file.db\"\n",
    )
    .expect("write");
    let output = run(&["--config", "mp.toml", "migrate"], &[], dir.path());
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        dir.path().join("from-file.db").exists(),
        "the file's setting applied"
    );
    let first_line = String::from_utf8_lossy(&output.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(
        serde_json::from_str::<serde_json::Value>(&first_line).is_ok(),
        "log_format from the file: {first_line}"
    );

    let output = run(
        &["--config", "mp.toml", "migrate"],
        &[("MP_DATABASE__URL", "sqlite://from-env.db")],
        dir.path(),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        dir.path().join("from-env.db").exists(),
        "the environment won"
    );
    assert!(
        !dir.path().join("migration-portal.db").exists(),
        "the default was never used"
    );
}

#[test]
fn a_missing_or_malformed_setting_stops_start_up_naming_it() {
    let dir = tempfile::tempdir().expect("dir");
    let key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let cases: Vec<(Vec<&str>, Vec<(&str, &str)>, &str)> = vec![
        (
            vec!["serve"],
            vec![("MP_BIND", "not-an-address")],
            "MP_BIND",
        ),
        (
            vec!["serve"],
            vec![("MP_DATABASE__MAX_CONNECTIONS", "many")],
            "database.max_connections",
        ),
        (vec!["serve"], vec![("MP_LOG_FORMAT", "xml")], "log_format"),
        (vec!["serve"], vec![], "secret_key"),
        (
            vec!["serve"],
            vec![("MP_SECRET_KEY", "too-short")],
            "secret_key",
        ),
        (vec!["serve"], vec![("MP_SECRET_KEY", key)], "auth.issuer"),
        (
            vec!["serve"],
            vec![
                ("MP_SECRET_KEY", key),
                ("MP_AUTH__ISSUER", "http://127.0.0.1:9"),
            ],
            "auth.audience",
        ),
        (
            vec!["serve", "--insecure-dev-key"],
            vec![("MP_AUTH__ISSUER", "http://127.0.0.1:9")],
            "auth.audience",
        ),
        (
            vec!["migrate"],
            vec![("MP_DATABASE__URL", "mysql://x")],
            "database.url",
        ),
        (
            vec!["--config", "missing.toml", "migrate"],
            vec![],
            "missing.toml",
        ),
    ];
    for (args, env, named) in cases {
        let output = run(&args, &env, dir.path());
        assert!(
            !output.status.success(),
            "{args:?} {env:?} should not start"
        );
        assert!(
            stderr(&output).contains(named),
            "{args:?} {env:?}: stderr does not name {named}: {}",
            stderr(&output)
        );
    }
    assert!(
        !dir.path().join("migration-portal.db").exists(),
        "nothing was created before refusing"
    );
}

#[test]
fn openapi_prints_the_committed_document_and_gen_key_a_usable_key() {
    let dir = tempfile::tempdir().expect("dir");
    let output = run(&["openapi"], &[], dir.path());
    assert!(output.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let committed: serde_json::Value =
        serde_json::from_str(include_str!("../../openapi/openapi.json")).expect("JSON");
    assert_eq!(printed, committed);

    let output = run(&["gen-key"], &[], dir.path());
    let key = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let key = secrecy::SecretString::from(key);
    assert!(migration_portal::crypto::SecretBox::from_base64(&key).is_ok());
}

/// Instances starting together each migrate; none fails and the schema is whole.
#[tokio::test]
async fn concurrent_migrations_all_succeed() {
    use crate::helpers::{Backend, fresh_postgres_database};
    for backend in Backend::enabled() {
        let dir = tempfile::tempdir().expect("dir");
        let url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("race.db").display()),
            Backend::Postgres => fresh_postgres_database().await,
        };
        let config = migration_portal::config::DatabaseConfig {
            url,
            max_connections: 4,
            busy_timeout_ms: 30_000,
            acquire_timeout_ms: 10_000,
        };
        let runs = (0..4).map(|_| async {
            let db = migration_portal::db::connect(&config)
                .await
                .expect("connect");
            migration_portal::db::upgrade_schema(&db).await
        });
        for result in futures_util::future::join_all(runs).await {
            result.unwrap_or_else(|e| panic!("{backend:?}: a concurrent migration failed: {e}"));
        }
        let db = migration_portal::db::connect(&config)
            .await
            .expect("connect");
        use migration::MigratorTrait;
        let pending = migration::Migrator::get_pending_migrations(&db)
            .await
            .expect("status");
        assert!(pending.is_empty(), "{backend:?}: migrations left");
    }
}

/// `serve` and `serve --worker-only` start, then stop cleanly on SIGTERM.
#[test]
fn serve_stops_gracefully_on_sigterm_in_every_role() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = tempfile::tempdir().expect("dir");
    for (args, ready) in [
        (vec!["serve"], "serving"),
        (vec!["serve", "--api-only"], "serving"),
        (vec!["serve", "--worker-only"], "worker running"),
    ] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_migration-portal"));
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("MP_")) {
            command.env_remove(key);
        }
        let mut child = command
            .args(&args)
            .current_dir(dir.path())
            .envs([
                ("MP_BIND", "127.0.0.1:0"),
                ("MP_DATABASE__URL", "sqlite://roles.db"),
                (
                    "MP_SECRET_KEY",
                    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                ),
                ("MP_AUTH__ISSUER", "http://127.0.0.1:9"),
                ("MP_AUTH__AUDIENCE", "migration-portal"),
                ("MP_LOG_FORMAT", "json"),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let started = lines
            .by_ref()
            .map_while(Result::ok)
            .any(|line| line.contains(ready));
        assert!(started, "{args:?} never logged {ready:?}");
        let killed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(killed.success());
        let status = child.wait().expect("exits");
        assert!(status.success(), "{args:?} exited with {status}");
    }
}
