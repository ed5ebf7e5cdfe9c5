//! The tracing subscriber: text or JSON to stdout, and optionally JSON to daily-rotated files.

use anyhow::Context;
use pier_config::{Config, LogFormat, LogLevel};
use pier_ops::access_log;
use tracing::level_filters::LevelFilter;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Keeps the background log writers alive; dropping it flushes them (the request log first,
/// since it writes through the others).
pub(crate) struct Guards {
    _requests: Option<access_log::Guard>,
    _writers: Vec<WorkerGuard>,
}

fn level(l: LogLevel) -> LevelFilter {
    match l {
        LogLevel::Trace => LevelFilter::TRACE,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Error => LevelFilter::ERROR,
    }
}

/// Installs the global subscriber for `config.log`.
///
/// # Errors
/// The logs folder cannot be used, or a subscriber is already installed.
pub(crate) fn init(config: &Config) -> anyhow::Result<Guards> {
    let log = &config.log;
    let lvl = level(log.level);
    // Dependencies speak at warn unless pier itself is at debug or finer.
    let deps = if lvl >= LevelFilter::DEBUG {
        lvl
    } else {
        LevelFilter::WARN
    };
    let filter = Targets::new()
        .with_default(deps)
        .with_target("pier", lvl)
        .with_target("pier_server", lvl)
        .with_target("pier_storage", lvl)
        .with_target("pier_api", lvl)
        .with_target("pier_ops", lvl);
    let mut guards = Vec::new();

    let (stdout, g) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stdout());
    guards.push(g);
    let console_format = match log.format {
        LogFormat::Json => access_log::Format::Json,
        LogFormat::Text => access_log::Format::Text,
    };
    let mut request_sinks: Vec<access_log::Sink> = vec![(console_format, Box::new(stdout.clone()))];
    let console = match log.format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(stdout)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(stdout)
            .with_ansi(false)
            .boxed(),
    };

    let file = if log.file {
        let appender = tracing_appender::rolling::Builder::new()
            .rotation(tracing_appender::rolling::Rotation::DAILY)
            .filename_prefix("pier")
            .filename_suffix("log")
            .max_log_files(log.max_files)
            .build(&config.paths.logs_dir)
            .with_context(|| {
                format!(
                    "failed to open the logs folder `{}`",
                    config.paths.logs_dir.display()
                )
            })?;
        let (writer, g) = tracing_appender::non_blocking::NonBlockingBuilder::default()
            .lossy(false)
            .finish(appender);
        guards.push(g);
        request_sinks.push((access_log::Format::Json, Box::new(writer.clone())));
        Some(
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .with_writer(writer)
                .boxed(),
        )
    } else {
        None
    };

    tracing_subscriber::registry()
        .with(console.and_then(file).with_filter(filter))
        .try_init()
        .context("failed to install the log subscriber")?;
    let requests = if log.requests {
        access_log::install(request_sinks)
    } else {
        None
    };
    Ok(Guards {
        _requests: requests,
        _writers: guards,
    })
}
