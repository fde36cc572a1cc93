//! Shared parts of the command line: config loading, logging, error reporting.

pub mod anonymise;
pub mod check_config;
pub mod health;
pub mod models;
pub mod run;

use std::path::Path;
use std::process::ExitCode;

use veil::config::{Config, ConfigError};

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Logs go to stderr, filtered by `VEIL_LOG` (e.g. `info`, `veil=debug`), else `default`.
pub fn init_logging(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VEIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    // A panic (a decoder bug that a damaged file reaches, say: veil refuses the file and goes
    // on) is logged like everything else, so a JSON log stays one JSON object per line.
    std::panic::set_hook(Box::new(|info| {
        tracing::error!(panic = %info, "a worker thread panicked");
    }));
}

/// The given config file, else `config/veil.toml` when it exists, else the built-in defaults;
/// `VEIL__…` environment variables override either.
pub fn load_config(path: Option<&Path>) -> Result<Config, ConfigError> {
    let default = Path::new("config/veil.toml");
    Config::load(path.or_else(|| default.exists().then_some(default)))
}

/// The exit code of an error that stops veil.
pub const FATAL: u8 = 2;

/// Prints an error that stops veil, with its causes, as one sentence; returns the exit code.
pub fn fatal(e: &anyhow::Error) -> ExitCode {
    eprintln!("veil: {e:#}");
    ExitCode::from(FATAL)
}
