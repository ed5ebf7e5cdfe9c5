//! What each subcommand does.

use anyhow::Context;
use pier_config::{Config, Env, Flag, LoadOptions, Role};
use pier_server::{Application, DevIssue, Gateway, MIGRATIONS};
use pier_storage::Store;

use crate::cli::{
    BackupCommand, CertCommand, Cli, Command, DataArgs, MigrateAction, ServeArgs, SuperuserCommand,
};
use crate::telemetry;

pub(crate) fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Healthcheck(a) => {
            let mut flags = data_flags(&a.data);
            push(&mut flags, "http.addr", a.http, "--http");
            let role = if a.backend {
                Role::Backend
            } else {
                Role::Serve
            };
            let config = load(role, a.data.config, flags)?;
            let tls = !matches!(config.tls.mode, pier_config::TlsMode::Off);
            crate::healthcheck::check(config.http.addr, tls)
        }
        Command::Version => {
            println!("pier version {}", pier_core::VERSION);
            Ok(())
        }
        Command::Serve(a) => {
            let flags = serve_flags(&a);
            serve(Role::Serve, a.data.config, flags)
        }
        Command::Backend(a) => {
            let mut flags = data_flags(&a.data);
            push(&mut flags, "http.addr", a.http, "--http");
            serve(Role::Backend, a.data.config, flags)
        }
        Command::Gateway(a) => {
            let mut flags = data_flags(&a.data);
            push(&mut flags, "http.addr", a.http, "--http");
            push(&mut flags, "tls.mode", a.tls, "--tls");
            push_path(
                &mut flags,
                "paths.public_dir",
                a.public_dir.as_deref(),
                "--public-dir",
            );
            if !a.upstreams.is_empty() {
                push(
                    &mut flags,
                    "gateway.upstreams",
                    Some(a.upstreams.join(",")),
                    "--upstream",
                );
            }
            serve(Role::Gateway, a.data.config, flags)
        }
        Command::Cert(CertCommand::Dev(a)) => {
            let flags = data_flags(&a);
            let config = load(Role::Tool, a.config, flags)?;
            let dev = pier_server::ensure_dev_certificate(
                &config.paths.certs_dir,
                &config.dev_certificate_names(),
            )
            .context("failed to make the development certificate")?;
            let ca = &dev.ca_cert;
            match &dev.issue {
                DevIssue::Kept => println!("the development certificate is up to date"),
                DevIssue::Issued { new_ca: true } => {
                    println!("made a development CA and a certificate signed by it");
                }
                DevIssue::Issued { new_ca: false } => {
                    println!("made a certificate signed by the kept development CA");
                }
                DevIssue::Reissued { missing } => println!(
                    "re-issued the certificate from the kept development CA; it lacked {}",
                    missing.join(", ")
                ),
            }
            println!("certificate for {}:", dev.names.join(", "));
            println!("  {}", dev.files.cert_file.display());
            println!("  {}", dev.files.key_file.display());
            println!("signed by the development CA {}", ca.display());
            println!();
            println!("Trust the CA once on this machine (development only):");
            println!(
                "  Debian/Ubuntu: sudo cp {} /usr/local/share/ca-certificates/pier-dev-ca.crt && sudo update-ca-certificates",
                ca.display()
            );
            println!(
                "  Chromium/Firefox (NSS): certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n pier-dev -i {}",
                ca.display()
            );
            println!(
                "  macOS: sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain {}",
                ca.display()
            );
            println!();
            println!("Then run `pier serve --tls dev`.");
            Ok(())
        }
        Command::Check(a) => {
            let flags = serve_flags(&a);
            let config = load(Role::Serve, a.data.config, flags)?;
            config.check_folders()?;
            crate::backup::check_schedule(&config)?;
            for warning in config.warnings() {
                eprintln!("warning: {warning}");
            }
            print!("{}", config.describe());
            println!("# configuration is valid");
            Ok(())
        }
        Command::Superuser(SuperuserCommand::Upsert(a)) => {
            let flags = data_flags(&a.data);
            let config = load(Role::Tool, a.data.config, flags)?;
            config.prepare_folders()?;
            runtime()?.block_on(upsert_superuser(config, a.email, a.password))
        }
        Command::Backup(command) => {
            let data = match &command {
                BackupCommand::Create(a) => &a.data,
                BackupCommand::List(a) => &a.data,
                BackupCommand::Verify(a) => &a.data,
                BackupCommand::Prune(a) => &a.data,
            };
            let flags = data_flags(data);
            let config = load(Role::Tool, data.config.clone(), flags)?;
            runtime()?.block_on(crate::backup::run(config, command))
        }
        Command::Restore(a) => {
            let mut flags = data_flags(&a.data);
            push_path(
                &mut flags,
                "paths.public_dir",
                a.public_dir.as_deref(),
                "--public-dir",
            );
            let config = load(Role::Tool, a.data.config, flags)?;
            config.prepare_folders()?;
            runtime()?.block_on(crate::backup::restore(config, a.backup))
        }
        Command::Migrate(a) => {
            let flags = data_flags(&a.data);
            let config = load(Role::Tool, a.data.config, flags)?;
            config.prepare_folders()?;
            let _guards = telemetry::init(&config)?;
            runtime()?.block_on(migrate(config, a.action))
        }
    }
}

fn load(
    role: Role,
    config_file: Option<std::path::PathBuf>,
    flags: Vec<Flag>,
) -> anyhow::Result<Config> {
    let config = Config::load(
        LoadOptions {
            role,
            config_file,
            flags,
        },
        &Env::from_process(),
    )?;
    Ok(config)
}

fn push(flags: &mut Vec<Flag>, key: &'static str, value: Option<String>, name: &'static str) {
    if let Some(value) = value {
        flags.push(Flag { key, value, name });
    }
}

fn push_path(
    flags: &mut Vec<Flag>,
    key: &'static str,
    value: Option<&std::path::Path>,
    name: &'static str,
) {
    push(
        flags,
        key,
        value.map(|p| p.to_string_lossy().into_owned()),
        name,
    );
}

/// The flags `serve` and `check` share.
fn serve_flags(a: &ServeArgs) -> Vec<Flag> {
    let mut flags = data_flags(&a.data);
    push(&mut flags, "http.addr", a.http.clone(), "--http");
    push(&mut flags, "tls.mode", a.tls.clone(), "--tls");
    push_path(
        &mut flags,
        "paths.public_dir",
        a.public_dir.as_deref(),
        "--public-dir",
    );
    flags
}

fn data_flags(data: &DataArgs) -> Vec<Flag> {
    let mut flags = Vec::new();
    push_path(&mut flags, "paths.data_dir", data.dir.as_deref(), "--dir");
    flags
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("pier-worker")
        .build()
        .context("failed to start the async runtime")
}

fn serve(
    role: Role,
    config_file: Option<std::path::PathBuf>,
    flags: Vec<Flag>,
) -> anyhow::Result<()> {
    let config = load(role, config_file, flags.clone())?;
    config.prepare_folders()?;
    crate::backup::check_schedule(&config)?;
    let _guards = telemetry::init(&config)?;
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    tracing::info!(
        version = pier_core::VERSION,
        env = ?config.app_env,
        database = match &config.database {
            pier_config::DatabaseConfig::Sqlite(_) => "sqlite",
            pier_config::DatabaseConfig::Postgres(_) => "postgres",
        },
        "starting pier"
    );
    let rt = runtime()?;
    let restart = rt.block_on(async move {
        if role == Role::Gateway {
            let listener = tokio::net::TcpListener::bind(config.http.addr)
                .await
                .with_context(|| format!("failed to listen on {}", config.http.addr))?;
            let addr = listener
                .local_addr()
                .context("failed to read the bound address")?;
            let metrics = std::sync::Arc::new(pier_ops::Metrics::new());
            let gateway = Gateway::new(&config, None, metrics).context("failed to start")?;
            tokio::spawn(reload_on_change(
                gateway.clone(),
                role,
                config.file.clone(),
                flags,
            ));
            // The signal handlers are installed here, before the first poll.
            let signal = shutdown_signal();
            let shutdown = async move {
                signal.await;
                pier_server::systemd::stopping();
            };
            let scheme = gateway.scheme();
            tracing::info!(addr = %addr, "listening on {scheme}://{addr}");
            pier_server::systemd::ready();
            gateway
                .serve(listener, shutdown)
                .await
                .context("server stopped with an error")?;
            tracing::info!("stopped");
            return anyhow::Ok(false);
        }
        let backups = crate::backup::backups(&config);
        // A restore scheduled through the API runs here, before the database is opened.
        match backups
            .run_pending_restore(&|step| tracing::info!(step, "restoring a backup"))
            .await
        {
            Ok(Some(m)) => tracing::info!(
                created = %m.created,
                schema_version = m.schema_version,
                "backup restored"
            ),
            Ok(None) => {}
            Err(error) => tracing::error!(
                error = %error.chain(),
                "the scheduled restore failed; starting on the current data"
            ),
        }
        let file = config.file.clone();
        let app = Application::build(config)
            .await
            .context("failed to start")?;
        if let Some(gateway) = app.gateway() {
            tokio::spawn(reload_on_change(gateway, role, file, flags));
        }
        app.run_until_stopped(shutdown_signal())
            .await
            .context("server stopped with an error")?;
        anyhow::Ok(backups.restore_pending())
    })?;
    drop(rt);
    if restart {
        tracing::info!("starting again to restore a backup");
        drop(_guards);
        return Err(reexec());
    }
    Ok(())
}

/// Replaces this process with a fresh run of the same command line (same pid, same output),
/// as PocketBase does after a restore. Returns only when that fails.
fn reexec() -> anyhow::Error {
    use std::os::unix::process::CommandExt;
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return anyhow::Error::new(e).context("failed to find the pier executable"),
    };
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .exec();
    anyhow::Error::new(err).context("failed to start pier again after scheduling a restore")
}

/// Reloads the gateway's routes, members, limits and public folder on SIGHUP, or when the
/// configuration file changes. A configuration that does not load is logged and ignored.
async fn reload_on_change(
    gateway: Gateway,
    role: Role,
    file: Option<std::path::PathBuf>,
    flags: Vec<Flag>,
) {
    let modified = |f: &Option<std::path::PathBuf>| {
        f.as_ref()
            .and_then(|p| std::fs::metadata(p).ok())
            .and_then(|m| m.modified().ok())
    };
    let mut seen = modified(&file);
    #[cfg(unix)]
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGHUP");
            None
        }
    };
    loop {
        #[cfg(unix)]
        let hangup = async {
            match hup.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let hangup = std::future::pending::<()>();
        let reason = tokio::select! {
            () = hangup => "SIGHUP",
            () = tokio::time::sleep(std::time::Duration::from_secs(2)) => {
                let now = modified(&file);
                if now == seen {
                    continue;
                }
                seen = now;
                "configuration file changed"
            }
        };
        tracing::info!(reason, "reloading the gateway");
        match load(role, file.clone(), flags.clone()) {
            Ok(config) => {
                if let Err(e) = gateway.reload(&config) {
                    tracing::error!(error = %format!("{e:#}"), "gateway not reloaded; the previous configuration keeps serving");
                }
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "configuration not reloaded; the previous one keeps serving");
            }
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    // The handlers are installed now, not at the first poll: a signal that comes right after
    // the "listening" line must stop the server cleanly, not kill it.
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            let wait = |s: std::io::Result<tokio::signal::unix::Signal>, name: &'static str| async move {
                match s {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(error) => {
                        tracing::error!(%error, "cannot listen for {name}");
                        std::future::pending::<()>().await;
                    }
                }
            };
            tokio::select! {
                () = wait(interrupt, "SIGINT") => tracing::info!(signal = "SIGINT", "shutting down"),
                () = wait(terminate, "SIGTERM") => tracing::info!(signal = "SIGTERM", "shutting down"),
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        tracing::info!(signal = "SIGINT", "shutting down");
    }
}

async fn migrate(config: Config, action: MigrateAction) -> anyhow::Result<()> {
    let store = Store::open(&config.database)
        .await
        .context("failed to open the database")?;
    let result = async {
        match action {
            MigrateAction::Up => {
                let applied = store.migrate(MIGRATIONS).await?;
                if applied.is_empty() {
                    println!("no pending migrations");
                } else {
                    for v in applied {
                        let name = MIGRATIONS
                            .iter()
                            .find(|m| m.version == v)
                            .map_or("", |m| m.name);
                        println!("applied {v} {name}");
                    }
                }
            }
            MigrateAction::List => {
                for m in store.migration_state(MIGRATIONS).await? {
                    let state = match m.applied_at_ms {
                        Some(ms) => format!("applied (unix ms {ms})"),
                        None => "pending".to_owned(),
                    };
                    println!("{:>4}  {:<24} {state}", m.version, m.name);
                }
            }
        }
        anyhow::Ok(())
    }
    .await;
    store.close().await;
    result
}

async fn upsert_superuser(config: Config, email: String, password: String) -> anyhow::Result<()> {
    let store = Store::open(&config.database)
        .await
        .context("failed to open the database")?;
    let result = async {
        store.migrate(MIGRATIONS).await?;
        // A one-shot command that publishes no record events: no outbox listener for it.
        let events = pier_config::EventsConfig {
            outbox: false,
            ..config.events.clone()
        };
        let engine = pier_records::Engine::open(store.clone(), events)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        engine
            .upsert_superuser(&email, &password)
            .await
            .map_err(|e| match e {
                pier_records::RecordError::Validation { fields, .. } => anyhow::anyhow!(
                    "invalid superuser: {}",
                    fields
                        .iter()
                        .map(|(k, v)| format!("{k}: {}", v["message"].as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                other => anyhow::anyhow!("{other}"),
            })?;
        println!("superuser {email} saved");
        anyhow::Ok(())
    }
    .await;
    store.close().await;
    result
}
