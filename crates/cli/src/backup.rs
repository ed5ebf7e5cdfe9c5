//! `pier backup …` and `pier restore`: thin wrappers over `pier_ops::backup`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use anyhow::Context;
use pier_config::Config;
use pier_ops::backup::{
    BackupKey, BackupMetrics, BackupSettings, Backups, CronSchedule, RetentionPolicy,
};

use crate::cli::{BackupCommand, BackupPruneArgs};

pub(crate) fn backups(config: &Config) -> Backups {
    Backups::new(
        BackupSettings::from_config(config),
        Arc::new(BackupMetrics::default()),
    )
}

/// Progress goes to stderr, so stdout carries only results: plain lines, or on a terminal one
/// status line rewritten at each step (the next output starts on a clean line).
fn progress(line: &str) {
    use std::io::{IsTerminal, Write};
    let mut err = std::io::stderr().lock();
    if err.is_terminal() {
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
    } else {
        let _ = writeln!(err, "{line}");
    }
}

/// Ends a rewritten status line before results or errors are printed.
fn end_progress() {
    use std::io::{IsTerminal, Write};
    let mut err = std::io::stderr().lock();
    if err.is_terminal() {
        let _ = writeln!(err);
    }
}

/// A name in the backups folder, or else a path to an archive.
fn locate(backups: &Backups, backup: &str) -> anyhow::Result<PathBuf> {
    if let Ok(key) = BackupKey::parse_stored(backup)
        && let Ok(path) = backups.path(&key)
    {
        return Ok(path);
    }
    let path = PathBuf::from(backup);
    if path.is_file() {
        return Ok(path);
    }
    anyhow::bail!(
        "backup `{backup}` not found (neither in `{}` nor as a file)",
        backups.settings().backups_dir.display()
    )
}

/// Checks the schedule settings (`pier check`, and before serving).
///
/// # Errors
/// The cron expression is invalid.
pub(crate) fn check_schedule(config: &Config) -> anyhow::Result<()> {
    if let Some(cron) = &config.backups.cron {
        CronSchedule::parse(cron).context("invalid value for `backups.cron`")?;
    }
    Ok(())
}

pub(crate) async fn run(config: Config, command: BackupCommand) -> anyhow::Result<()> {
    let result = run_command(config, command).await;
    end_progress();
    result
}

async fn run_command(config: Config, command: BackupCommand) -> anyhow::Result<()> {
    let backups = backups(&config);
    match command {
        BackupCommand::Create(a) => {
            let name = a.name.as_deref().map(BackupKey::parse).transpose()?;
            let created = backups.create(name, false, &progress).await?;
            println!("{}", created.key);
        }
        BackupCommand::List(_) => {
            for entry in backups.list()? {
                let ms = entry
                    .modified
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                println!(
                    "{}\t{}\t{}",
                    entry.key,
                    entry.size,
                    pier_core::time::format_unix_millis(ms)
                );
            }
        }
        BackupCommand::Verify(a) => {
            let path = locate(&backups, &a.backup)?;
            let report = backups.verify(&path, &progress).await?;
            let m = &report.manifest;
            if let Some(note) = &report.note {
                progress(note);
            }
            println!(
                "backup `{}` is sound: {} files, {} bytes, {} database made {} by pier {} (schema version {}), {} tables{}",
                a.backup,
                m.files.len(),
                m.total_bytes,
                m.engine,
                m.created,
                m.pier_version,
                m.schema_version,
                m.tables.len(),
                if report.restored_tables.is_some() {
                    ", row counts match"
                } else {
                    ""
                }
            );
        }
        BackupCommand::Prune(BackupPruneArgs {
            keep_daily,
            keep_weekly,
            ..
        }) => {
            let policy = RetentionPolicy {
                keep_daily: keep_daily.unwrap_or(config.backups.keep_daily),
                keep_weekly: keep_weekly.unwrap_or(config.backups.keep_weekly),
            };
            let pruned = backups.prune(&policy)?;
            for key in &pruned {
                println!("deleted {key}");
            }
            progress(&format!("{} scheduled backup(s) deleted", pruned.len()));
        }
    }
    Ok(())
}

pub(crate) async fn restore(config: Config, backup: String) -> anyhow::Result<()> {
    let backups = backups(&config);
    let path = locate(&backups, &backup)?;
    let result = backups.restore(&path, &progress).await;
    end_progress();
    result?;
    println!("restored {backup}");
    Ok(())
}
