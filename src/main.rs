//! The `veil` command line: the daemon, one-shot anonymisation of files, and checks.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "veil",
    version,
    about = "Anonymise camera images: blur faces and licence plates, strip metadata"
)]
struct Args {
    /// Configuration file (TOML). Without it, config/veil.toml is used if present, else defaults.
    #[arg(long, short, global = true, env = "VEIL_CONFIG")]
    config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "VEIL_LOG_FORMAT"
    )]
    log_format: cli::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Anonymise image files and folders into an output folder.
    Anonymise(cli::anonymise::Args),
    /// Run the daemon: drain S3 notifications from SQS and replicate anonymised copies.
    Run,
    /// Validate the configuration (and, with --connect, reach every AWS resource it names).
    CheckConfig(cli::check_config::Args),
    /// Exit 0 if the daemon on metrics.listen answers /healthz with 200, else 1 (for container
    /// health checks).
    Health,
    /// Manage the detector models.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Check every model file against models/manifest.toml and load it into ONNX Runtime.
    Verify,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // The daemon reports every object at info; one-shot commands only warnings.
    let level = if matches!(args.command, Command::Run) {
        "info"
    } else {
        "warn"
    };
    cli::init_logging(args.log_format, level);
    let config = match cli::load_config(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => return cli::fatal(&e.into()),
    };
    let result = match args.command {
        Command::Anonymise(a) => cli::anonymise::run(config, a),
        Command::Run => cli::run::exit(cli::run::run(config)),
        Command::CheckConfig(a) => cli::check_config::run(&config, a),
        Command::Health => return cli::health::run(&config),
        Command::Models {
            command: ModelsCommand::Verify,
        } => cli::models::verify(&config),
    };
    result.unwrap_or_else(|e| cli::fatal(&e))
}
