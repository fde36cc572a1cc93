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
        // Handlers first: veil is PID 1 in its container, where a signal without a handler is
        // ignored, and loading the models takes seconds.
        let shutdown = shutdown_signal().context("cannot install the signal handlers")?;
        tokio::pin!(shutdown);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut endpoints_stop = stop_rx.clone();
        let start = Daemon::start(&config, settings, async move {
            let _ = endpoints_stop.wait_for(|stop| *stop).await;
        });
        let daemon = tokio::select! {
            daemon = start => daemon?,
            () = &mut shutdown => {
                tracing::info!("stopped while starting: nothing was received yet");
                return anyhow::Ok(());
            }
        };
        daemon.run(shutdown).await;
        let _ = stop_tx.send(true);
        anyhow::Ok(())
    });
    // A pipeline abandoned at the end of the grace period may still be running on a blocking
    // thread; its result would be dropped anyway, so do not wait for it.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result.map(|()| ExitCode::SUCCESS)
}

/// Installs the SIGTERM (ECS stopping the task) and SIGINT (Ctrl-C) handlers now; the returned
/// future resolves on the first of them.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}
