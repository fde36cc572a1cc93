//! `veil run`: the daemon, until SIGTERM or SIGINT.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use veil::config::{Config, ConfigError};
use veil::daemon::Daemon;
use veil::daemon::config::DaemonConfig;

pub fn run(config: Config) -> anyhow::Result<ExitCode> {
    let settings = DaemonConfig::from_config(&config).map_err(ConfigError::Invalid)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("veil")
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut endpoints_stop = stop_rx.clone();
        let daemon = Daemon::start(&config, settings, async move {
            let _ = endpoints_stop.wait_for(|stop| *stop).await;
        })
        .await?;
        daemon.run(shutdown_signal()).await;
        let _ = stop_tx.send(true);
        anyhow::Ok(())
    });
    // A pipeline abandoned at the end of the grace period may still be running on a blocking
    // thread; its result would be dropped anyway, so do not wait for it.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result.map(|()| ExitCode::SUCCESS)
}

/// Resolves on the first SIGTERM (ECS stopping the task) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}
