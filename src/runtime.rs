//! ONNX Runtime: loading the shared library at run time and building one session per model.
//!
//! veil links ONNX Runtime dynamically (`ort`'s `load-dynamic`), so the library comes from the
//! `onnxruntime` wheel that `scripts/setup.sh` installs, or from any path the user gives.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::ep::ExecutionProvider;
use ort::logging::LogLevel;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use serde::{Deserialize, Serialize};

/// Where inference runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    #[default]
    Cpu,
    Cuda,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Path of `libonnxruntime.so`; when unset, `ORT_DYLIB_PATH` is used.
    pub library: Option<PathBuf>,
    pub device: Device,
    /// With `device = "cuda"`: run on the CPU if CUDA cannot be used, instead of refusing to start.
    pub cuda_fallback_to_cpu: bool,
    /// Threads ONNX Runtime uses inside one inference; 0 lets it choose (all cores). veil runs
    /// one image per worker in parallel, so 1 avoids oversubscribing the cores.
    pub intra_threads: usize,
    /// Directory holding `manifest.toml` and the prepared model files.
    pub models_dir: PathBuf,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            library: None,
            device: Device::Cpu,
            cuda_fallback_to_cpu: false,
            intra_threads: 1,
            models_dir: PathBuf::from("models"),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "no ONNX Runtime library is configured: set runtime.library in the config or ORT_DYLIB_PATH \
         (scripts/setup.sh installs one at .cache/onnxruntime/libonnxruntime.so)"
    )]
    NoLibrary,
    #[error(
        "cannot load ONNX Runtime from {path}: {message} (run scripts/setup.sh, or fix runtime.library / ORT_DYLIB_PATH)"
    )]
    Load { path: PathBuf, message: String },
    #[error("cannot create a session for model {model}: {message}")]
    Session { model: String, message: String },
    #[error(
        "CUDA was requested for model {model} but cannot be used: {message} (set runtime.cuda_fallback_to_cpu = true to run on the CPU instead)"
    )]
    Cuda { model: String, message: String },
}

/// The process-wide ONNX Runtime environment. The library can be loaded once per process, so the
/// first successful load wins and later calls reuse it.
pub struct Runtime {
    env: Environment,
    config: RuntimeConfig,
}

static ENVIRONMENT: OnceLock<Result<Environment, RuntimeError>> = OnceLock::new();

impl Runtime {
    pub fn new(config: &RuntimeConfig) -> Result<Self, RuntimeError> {
        let env = ENVIRONMENT
            .get_or_init(|| load(config.library.as_deref()))
            .clone()?;
        Ok(Self {
            env,
            config: config.clone(),
        })
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// Builds a session from model bytes; returns it with the device it actually runs on.
    pub fn session(&self, model: &str, bytes: &[u8]) -> Result<(Session, Device), RuntimeError> {
        let err = |message: String| RuntimeError::Session {
            model: model.to_string(),
            message,
        };
        let mut builder = Session::builder(&self.env)
            .map_err(|e| err(e.to_string()))?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|e| err(e.to_string()))?
            .with_log_level(LogLevel::Error)
            .map_err(|e| err(e.to_string()))?
            .with_intra_threads(self.config.intra_threads)
            .map_err(|e| err(e.to_string()))?;
        let mut device = Device::Cpu;
        if self.config.device == Device::Cuda {
            match ort::ep::CUDA::default().register(&mut builder) {
                Ok(()) => device = Device::Cuda,
                Err(e) if self.config.cuda_fallback_to_cpu => {
                    tracing::warn!(model, error = %e, "CUDA unavailable, running on the CPU");
                }
                Err(e) => {
                    return Err(RuntimeError::Cuda {
                        model: model.to_string(),
                        message: e.to_string(),
                    });
                }
            }
        }
        let session = builder
            .commit_from_memory(bytes)
            .map_err(|e| err(e.to_string()))?;
        Ok((session, device))
    }
}

fn load(configured: Option<&Path>) -> Result<Environment, RuntimeError> {
    let path = match configured {
        Some(p) => p.to_path_buf(),
        None => std::env::var_os("ORT_DYLIB_PATH")
            .map(PathBuf::from)
            .ok_or(RuntimeError::NoLibrary)?,
    };
    if !path.exists() {
        return Err(RuntimeError::Load {
            path,
            message: "no such file".into(),
        });
    }
    let load_err = |message: String| RuntimeError::Load {
        path: path.clone(),
        message,
    };
    ort::init_from(&path)
        .map_err(|e| load_err(e.to_string()))?
        .with_name("veil")
        .build()
        .map_err(|e| load_err(e.to_string()))
}
