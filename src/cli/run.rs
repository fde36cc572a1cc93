//! `veil run`: the daemon, until SIGTERM or SIGINT.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use veil::config::{Config, ConfigError};
use veil::daemon::Daemon;
use veil::daemon::config::DaemonConfig;

pub fn run(config: Config) -> anyhow::Result<()> {
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
    result
}

/// Ends the process with `run`'s outcome, without the C and C++ exit handlers.
///
/// ONNX Runtime's static destructors are registered with exit(3). A model still loading when
/// SIGTERM arrived, or a pipeline abandoned at the end of the grace period, is still inside the
/// runtime on a blocking thread, and those destructors would tear the runtime down under it:
/// veil would die of SIGSEGV instead of exiting cleanly. When `run` returns, every effect veil
/// had is already in S3 and SQS and the logs are written to the unbuffered stderr, so nothing
/// is lost by leaving through _exit(2).
pub fn exit(result: anyhow::Result<()>) -> ! {
    let code = match result {
        Ok(()) => 0,
        Err(e) => {
            super::fatal(&e);
            i32::from(super::FATAL)
        }
    };
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: _exit only ends the process; it touches no memory of this one.
    unsafe { libc::_exit(code) }
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
