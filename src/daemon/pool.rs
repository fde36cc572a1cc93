//! A fixed set of pipelines, run on tokio's blocking threads so that decoding, inference and
//! encoding never stall the async tasks that poll SQS, send heartbeats and upload.

use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use crate::pipeline::{Anonymised, Engine, Pipeline, PipelineError};
use crate::rendition::Rendition;
use crate::runtime::RuntimeError;

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// A bug, not bad input: the pipeline panicked. It is replaced; the object is retried.
    #[error("the anonymisation pipeline crashed on this image")]
    Crashed,
}

pub struct PipelinePool {
    engine: Arc<Engine>,
    /// The pipelines' fingerprint (all pipelines of one engine on one host share it).
    pub fingerprint: String,
    idle: Mutex<Vec<Pipeline>>,
    permits: Semaphore,
}

impl PipelinePool {
    /// Builds `size` pipelines now, so a model or runtime problem stops veil at start.
    pub fn new(engine: Arc<Engine>, size: usize) -> Result<Self, RuntimeError> {
        let idle = (0..size)
            .map(|_| engine.pipeline())
            .collect::<Result<Vec<Pipeline>, _>>()?;
        let fingerprint = idle
            .first()
            .map_or_else(String::new, |p| p.fingerprint().to_string());
        Ok(Self {
            engine,
            fingerprint,
            idle: Mutex::new(idle),
            permits: Semaphore::new(size),
        })
    }

    /// Anonymises `bytes` into each rendition on the next free pipeline.
    pub async fn anonymise(
        &self,
        bytes: Arc<Vec<u8>>,
        renditions: Arc<Vec<Rendition>>,
    ) -> Result<Anonymised, PoolError> {
        let permit = self.permits.acquire().await.expect("never closed");
        let mut pipeline = self
            .idle
            .lock()
            .expect("pool lock")
            .pop()
            .expect("a permit guarantees an idle pipeline");
        let job = tokio::task::spawn_blocking(move || {
            let result = pipeline.anonymise(&bytes, &renditions);
            (pipeline, result)
        });
        let result = match job.await {
            Ok((pipeline, result)) => {
                self.idle.lock().expect("pool lock").push(pipeline);
                result.map_err(PoolError::from)
            }
            Err(e) => {
                tracing::error!(error = %e, "pipeline crashed; replacing it");
                match self.engine.pipeline() {
                    Ok(p) => self.idle.lock().expect("pool lock").push(p),
                    Err(e) => {
                        // Keep the permit out of circulation: one pipeline fewer from now on.
                        tracing::error!(error = %e, "cannot replace the crashed pipeline");
                        permit.forget();
                        return Err(PoolError::Crashed);
                    }
                }
                Err(PoolError::Crashed)
            }
        };
        drop(permit);
        result
    }
}
