//! The `pier` binary: parse arguments, run the subcommand, map the outcome to an exit code.

mod backup;
mod cli;
mod commands;
mod healthcheck;
mod telemetry;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match commands::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
