//! veil's configuration: one TOML file, typed, with documented defaults (config/veil.toml).
//!
//! Loading reports every problem at once, each naming its key, so a user fixes a file in one
//! pass. Unknown keys are errors: a misspelt threshold must not silently fall back to a default.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::codec::Limits;
use crate::detect::DetectorSettings;
use crate::manifest::{Manifest, ModelError};
use crate::pipeline::Engine;
use crate::redact::RedactionConfig;
use crate::rendition::Rendition;
use crate::runtime::{Runtime, RuntimeConfig, RuntimeError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// The models to run, in order; each finds one class.
    #[serde(default = "default_detectors")]
    pub detectors: Vec<DetectorConfig>,
    #[serde(default)]
    pub redaction: RedactionConfig,
    #[serde(default)]
    pub limits: Limits,
    /// The rendition `veil anonymise` writes.
    #[serde(default)]
    pub output: Rendition,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            runtime: RuntimeConfig::default(),
            detectors: default_detectors(),
            redaction: RedactionConfig::default(),
            limits: Limits::default(),
            output: Rendition::default(),
        }
    }
}

/// One detector: a model from the manifest, with optional overrides of its family's defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorConfig {
    pub model: String,
    pub threshold: Option<f32>,
    pub nms_iou: Option<f32>,
    #[serde(default)]
    pub tiling: TilingOverrides,
}

/// Overrides of a family's tile plan; see `detect::tiles::TilingConfig` for each field.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TilingOverrides {
    pub whole_size: Option<u32>,
    pub tile_size: Option<u32>,
    pub tile_when: Option<f32>,
    pub tile_scale: Option<f32>,
    pub overlap: Option<f32>,
}

fn default_detectors() -> Vec<DetectorConfig> {
    ["yunet", "platedet"]
        .map(|m| DetectorConfig {
            model: m.into(),
            ..Default::default()
        })
        .into()
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("config {path} is invalid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config is invalid:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        let errors = config.validate();
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(errors))
        }
    }

    /// Every semantic problem in the file, each naming its key.
    pub fn validate(&self) -> Vec<String> {
        let mut errors = self.redaction.validate();
        errors.extend(self.output.validate("output"));
        if self.detectors.is_empty() {
            errors.push("detectors: at least one detector is required".into());
        }
        for (i, d) in self.detectors.iter().enumerate() {
            let key = format!("detectors[{i}] ({})", d.model);
            if let Some(t) = d.threshold.filter(|t| !(0.0..=1.0).contains(t)) {
                errors.push(format!("{key}.threshold must be in [0, 1], got {t}"));
            }
            if let Some(t) = d.nms_iou.filter(|t| !(0.0..=1.0).contains(t)) {
                errors.push(format!("{key}.nms_iou must be in [0, 1], got {t}"));
            }
        }
        if self.limits.max_bytes == 0 || self.limits.max_pixels == 0 {
            errors.push("limits.max_bytes and limits.max_pixels must be positive".into());
        }
        errors
    }

    /// Loads the runtime and every configured model, verifying each against the manifest.
    pub fn engine(&self) -> Result<Engine, ConfigError> {
        let manifest = Manifest::load(&self.runtime.models_dir)?;
        let mut models = Vec::with_capacity(self.detectors.len());
        let mut errors = Vec::new();
        for (i, d) in self.detectors.iter().enumerate() {
            let model = manifest.verify(&self.runtime.models_dir, &d.model)?;
            let defaults = model.entry.family.family().defaults();
            let o = d.tiling;
            let tiling = crate::detect::tiles::TilingConfig {
                whole_size: o.whole_size.unwrap_or(defaults.tiling.whole_size),
                tile_size: o.tile_size.unwrap_or(defaults.tiling.tile_size),
                tile_when: o.tile_when.unwrap_or(defaults.tiling.tile_when),
                tile_scale: o.tile_scale.unwrap_or(defaults.tiling.tile_scale),
                overlap: o.overlap.unwrap_or(defaults.tiling.overlap),
            };
            if let Err(e) = tiling.validate() {
                errors.push(format!("detectors[{i}] ({}).tiling: {e}", d.model));
            }
            let settings = DetectorSettings {
                threshold: d.threshold.unwrap_or(defaults.threshold),
                nms_iou: d.nms_iou.unwrap_or(defaults.nms_iou),
                tiling,
            };
            models.push((model, settings));
        }
        if !errors.is_empty() {
            return Err(ConfigError::Invalid(errors));
        }
        let runtime = Runtime::new(&self.runtime)?;
        Ok(Engine::new(runtime, models, self.redaction, self.limits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_gives_the_documented_defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(
            c.detectors
                .iter()
                .map(|d| d.model.as_str())
                .collect::<Vec<_>>(),
            ["yunet", "platedet"]
        );
        assert_eq!(c.output.jpeg_quality, 90);
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let err = Config::parse("[redaction.face]\nmethod = \"gaussian\"\nshape = \"ellipse\"\npadding = 0.3\nstrength = 0.2\nfeather = 0.1\ncolour = [0,0,0]\nstrenght = 1\n").unwrap_err();
        assert!(err.to_string().contains("strenght"), "{err}");
    }

    #[test]
    fn every_semantic_error_is_reported_at_once() {
        let text = "[output]\njpeg_quality = 0\n[[detectors]]\nmodel = \"yunet\"\nthreshold = 2.0\n[limits]\nmax_bytes = 0\n";
        let err = Config::parse(text).unwrap_err().to_string();
        for key in [
            "output.jpeg_quality",
            "detectors[0] (yunet).threshold",
            "limits.max_bytes",
        ] {
            assert!(err.contains(key), "{key} missing from: {err}");
        }
    }

    #[test]
    fn the_shipped_config_file_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/veil.toml");
        Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    }
}
