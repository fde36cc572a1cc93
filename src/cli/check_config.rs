//! `veil check-config`: validates the file and, with `--connect`, that every AWS resource the
//! daemon needs can be reached with the credentials it will run with.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use veil::config::{Config, ConfigError};
use veil::daemon::aws::{self, Aws};
use veil::daemon::config::DaemonConfig;
use veil::daemon::destination::Destination;
use veil::daemon::queue::Queue;

#[derive(clap::Args)]
pub struct Args {
    /// Also check that the queue, the raw and audit buckets, and every destination role can be
    /// reached (assuming each role once).
    #[arg(long)]
    connect: bool,
}

pub fn run(config: &Config, args: Args) -> anyhow::Result<ExitCode> {
    let settings = DaemonConfig::from_config(config).map_err(ConfigError::Invalid)?;
    println!(
        "config is valid: {} destination(s), queue {}",
        settings.destinations.len(),
        settings.ingest.queue_url
    );
    if !args.connect {
        return Ok(ExitCode::SUCCESS);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let failures = runtime.block_on(connect(&settings));
    if failures == 0 {
        println!("every resource answered");
        Ok(ExitCode::SUCCESS)
    } else {
        anyhow::bail!("{failures} resource(s) could not be reached")
    }
}

/// Checks each resource, printing one line per check; returns how many failed.
async fn connect(settings: &DaemonConfig) -> usize {
    let aws = Aws::new(
        &settings.ingest,
        Duration::from_secs(settings.worker.aws_timeout_s),
    )
    .await;
    let mut results: Vec<(String, Result<(), String>)> = Vec::new();
    let queue = Queue::new(aws.sqs(), settings.ingest.queue_url.clone());
    results.push((
        format!("queue {}", queue.url()),
        queue.probe().await.map_err(|e| e.to_string()),
    ));
    let s3 = aws_sdk_s3::Client::from_conf(aws.s3(None).build());
    let buckets = settings
        .ingest
        .sources
        .iter()
        .map(|s| ("raw bucket", &s.bucket))
        .chain(std::iter::once(("audit bucket", &settings.audit.bucket)));
    for (what, bucket) in buckets {
        // ListBucket, which the ingest role needs anyway (so a vanished object reads as 404).
        let r = s3.list_objects_v2().bucket(bucket).max_keys(1).send().await;
        results.push((
            format!("{what} {bucket}"),
            r.map(|_| ()).map_err(|e| aws::describe(&e)),
        ));
    }
    for (d, template) in &settings.destinations {
        let destination = Destination::new(
            d.clone(),
            template.clone(),
            &aws,
            Duration::from_secs(settings.worker.role_session_s),
            prometheus::IntCounter::new("probe", "unused").expect("valid"),
        )
        .await;
        results.push((
            format!("destination {} (assume {})", d.name, d.role_arn),
            destination.probe().await.map_err(|e| e.to_string()),
        ));
    }
    let mut failures = 0;
    for (what, r) in results {
        match r {
            Ok(()) => println!("ok    {what}"),
            Err(e) => {
                failures += 1;
                println!("FAIL  {what}: {e}");
            }
        }
    }
    failures
}
