//! veil's configuration: one TOML file, typed, with documented defaults (config/veil.toml).
//!
//! Loading reports every problem at once, each naming its key, so a user fixes a file in one
//! pass. Unknown keys are errors: a misspelt threshold must not silently fall back to a default.
//!
//! Environment variables override the file, for containers: `VEIL__SECTION__KEY=value` sets
//! `section.key` (`VEIL__INGEST__QUEUE_URL`, `VEIL__DESTINATIONS__0__ROLE_ARN`). The value is read
//! as a TOML value when it is one (`8`, `true`, `[1, 2]`) and as a string otherwise, and always as
//! a string where it replaces a string of the file (`VEIL__DESTINATIONS__0__ACCOUNT_ID=222222222222`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::codec::Limits;
use crate::daemon::config::{
    AuditConfig, DestinationConfig, IngestConfig, MetricsConfig, RawConfig, WorkerConfig,
};
use crate::detect::{DetectorSettings, FamilyDefaults, Thresholds};
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
    pub recall: RecallConfig,
    #[serde(default)]
    pub redaction: RedactionConfig,
    #[serde(default)]
    pub limits: Limits,
    /// The rendition `veil anonymise` writes.
    #[serde(default)]
    pub output: Rendition,
    /// The daemon's sections (`veil run`); see [`crate::daemon::config`].
    pub ingest: Option<IngestConfig>,
    #[serde(default)]
    pub destinations: Vec<DestinationConfig>,
    #[serde(default)]
    pub raw: RawConfig,
    pub audit: Option<AuditConfig>,
    #[serde(default)]
    pub worker: WorkerConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            runtime: RuntimeConfig::default(),
            detectors: default_detectors(),
            recall: RecallConfig::default(),
            redaction: RedactionConfig::default(),
            limits: Limits::default(),
            output: Rendition::default(),
            ingest: None,
            destinations: Vec::new(),
            raw: RawConfig::default(),
            audit: None,
            worker: WorkerConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

/// One detector: a model from the manifest, with optional overrides of its family's defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorConfig {
    pub model: String,
    pub threshold: Option<f32>,
    /// Threshold for objects up to twice the smallest guaranteed size of the class (see
    /// `detect::Thresholds`). Unset, it is the family's default, or `threshold` when that is
    /// set: one explicit threshold then holds for every size.
    pub small_threshold: Option<f32>,
    /// Threshold for objects up to 1.4 times the smallest guaranteed size (see
    /// `detect::Thresholds`). Unset, the model's default, or `small_threshold` (else
    /// `threshold`) when that is set.
    pub tiny_threshold: Option<f32>,
    /// Threshold for objects cut by the frame (`detect::CUT_SHARE` of them or more beyond it),
    /// whatever their size (never above `threshold`).
    /// Unset, the family's default, or `threshold` when that is set.
    pub cut_threshold: Option<f32>,
    pub nms_iou: Option<f32>,
    /// Whether the passes that upscale the picture also look at it mirrored left to right, in
    /// detection, in its second look at the edges and in the re-check (about twice their
    /// time). Unset: yes for faces, no for plates
    /// (see `detect::Class::looked_at_mirrored` and `detect::DetectorSettings::mirrors`).
    pub mirrored: Option<bool>,
    #[serde(default)]
    pub tiling: TilingOverrides,
}

impl DetectorConfig {
    /// The thresholds this detector keeps objects of `class` at: the small-object one holds up
    /// to the `recall` small-object size (twice the smallest guaranteed), the tiny-object one up
    /// to 1.4 times the smallest.
    fn thresholds(
        &self,
        defaults: &FamilyDefaults,
        recall: &RecallConfig,
        class: crate::detect::Class,
    ) -> Thresholds {
        let smallest = recall.smallest(class);
        Thresholds {
            large: self.threshold.unwrap_or(defaults.threshold),
            small: self
                .small_threshold
                .or(self.threshold)
                .unwrap_or(defaults.small_threshold),
            small_up_to: recall.small_up_to(class),
            tiny: self
                .tiny_threshold
                .or(self.small_threshold)
                .or(self.threshold)
                .unwrap_or(defaults.tiny_threshold),
            tiny_up_to: 1.4 * smallest,
            cut: self
                .cut_threshold
                .or(self.threshold)
                .unwrap_or(defaults.cut_threshold),
        }
    }
}

/// Overrides of a family's tile plan; see `detect::tiles::TilingConfig` for each field.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TilingOverrides {
    pub whole_size: Option<u32>,
    pub tile_size: Option<u32>,
    pub min_object: Option<f32>,
    pub overlap: Option<u32>,
    pub max_scale: Option<f32>,
    pub largest_object: Option<f32>,
}

/// The smallest objects veil guarantees to find, in source pixels. Detection passes are planned
/// from these sizes (see `detect::tiles`): halving one roughly quadruples that class's cost.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecallConfig {
    /// Height of the smallest face.
    pub face_min_px: f32,
    /// Width of the smallest licence plate.
    pub plate_min_px: f32,
}

impl Default for RecallConfig {
    fn default() -> Self {
        Self {
            face_min_px: 10.0,
            plate_min_px: 20.0,
        }
    }
}

impl RecallConfig {
    pub fn smallest(&self, class: crate::detect::Class) -> f32 {
        match class {
            crate::detect::Class::Face => self.face_min_px,
            crate::detect::Class::Plate => self.plate_min_px,
        }
    }

    /// The small-object size of `class`: twice its smallest guaranteed size. Objects up to it
    /// are held to the small objects' threshold, and redacted with the class's `small_method`.
    pub fn small_up_to(&self, class: crate::detect::Class) -> f32 {
        2.0 * self.smallest(class)
    }
}

fn default_detectors() -> Vec<DetectorConfig> {
    ["centerface-int8", "platedet-int8"]
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
    /// Reads `path` (if given) and applies the `VEIL__…` environment overrides.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let text = match path {
            Some(p) => std::fs::read_to_string(p).map_err(|e| ConfigError::Read {
                path: p.to_path_buf(),
                message: e.to_string(),
            })?,
            None => String::new(),
        };
        Self::parse_with(&text, std::env::vars()).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.map_or_else(|| PathBuf::from("(defaults)"), Path::to_path_buf),
                message,
            },
            other => other,
        })
    }

    /// Parses a file's text without environment overrides.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        Self::parse_with(text, std::iter::empty())
    }

    fn parse_with(
        text: &str,
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let parse_error = |message: String| ConfigError::Parse {
            path: PathBuf::new(),
            message,
        };
        let mut table: toml::Table = toml::from_str(text)
            .map_err(|e| parse_error(e.to_string().trim().replace('\n', " ")))?;
        for (name, value) in env {
            if let Some(path) = name.strip_prefix("VEIL__") {
                apply_override(&mut table, path, &value)
                    .map_err(|e| parse_error(format!("environment variable {name}: {e}")))?;
            }
        }
        let config: Config = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| parse_error(format!("{}: {}", e.path(), e.inner())))?;
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
            for (name, value) in [
                ("threshold", d.threshold),
                ("small_threshold", d.small_threshold),
                ("tiny_threshold", d.tiny_threshold),
                ("cut_threshold", d.cut_threshold),
            ] {
                if let Some(t) = value.filter(|t| !(0.0..=1.0).contains(t)) {
                    errors.push(format!("{key}.{name} must be in [0, 1], got {t}"));
                }
            }
            if let Some(t) = d.nms_iou.filter(|t| !(0.0..=1.0).contains(t)) {
                errors.push(format!("{key}.nms_iou must be in [0, 1], got {t}"));
            }
        }
        for (key, v) in [
            ("recall.face_min_px", self.recall.face_min_px),
            ("recall.plate_min_px", self.recall.plate_min_px),
        ] {
            if !(4.0..=1000.0).contains(&v) {
                errors.push(format!("{key} must be in [4, 1000], got {v}"));
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
            let defaults = model.entry.defaults();
            let o = d.tiling;
            let tiling = crate::detect::tiles::TilingConfig {
                whole_size: o.whole_size.unwrap_or(defaults.tiling.whole_size),
                tile_size: o.tile_size.unwrap_or(defaults.tiling.tile_size),
                min_object: o.min_object.unwrap_or(defaults.tiling.min_object),
                overlap: o.overlap.unwrap_or(defaults.tiling.overlap),
                max_scale: o.max_scale.unwrap_or(defaults.tiling.max_scale),
                largest_object: o.largest_object.or(defaults.tiling.largest_object),
            };
            if let Err(e) = tiling.validate() {
                errors.push(format!("detectors[{i}] ({}).tiling: {e}", d.model));
            }
            let smallest = self.recall.smallest(model.entry.class);
            let settings = DetectorSettings {
                thresholds: d.thresholds(&defaults, &self.recall, model.entry.class),
                nms_iou: d.nms_iou.unwrap_or(defaults.nms_iou),
                tiling,
                smallest,
                mirrored: d.mirrored.unwrap_or(model.entry.class.looked_at_mirrored()),
            };
            models.push((model, settings));
        }
        if !errors.is_empty() {
            return Err(ConfigError::Invalid(errors));
        }
        let runtime = Runtime::new(&self.runtime)?;
        let redaction = RedactionConfig {
            recall: self.recall,
            ..self.redaction
        };
        Ok(Engine::new(runtime, models, redaction, self.limits))
    }
}

/// Sets the key `path` (`INGEST__QUEUE_URL`, `DESTINATIONS__0__BUCKET`) in `table`.
fn apply_override(table: &mut toml::Table, path: &str, raw: &str) -> Result<(), String> {
    let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.into()));
    let segments: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
    let mut root = toml::Value::Table(std::mem::take(table));
    let result = set_path(&mut root, &segments, value, raw);
    if let toml::Value::Table(t) = root {
        *table = t;
    }
    result
}

/// Walks sections by name and lists of sections by index, creating missing sections.
fn set_path(
    node: &mut toml::Value,
    path: &[String],
    value: toml::Value,
    raw: &str,
) -> Result<(), String> {
    let Some((seg, rest)) = path.split_first() else {
        // Over text, a value that TOML reads as something else (`222222222222`) stays text.
        *node = match (&node, value) {
            (toml::Value::String(_), v @ toml::Value::String(_)) => v,
            (toml::Value::String(_), _) => toml::Value::String(raw.into()),
            (_, v) => v,
        };
        return Ok(());
    };
    let child = match node {
        toml::Value::Table(t) => {
            let next_is_index = rest.first().is_some_and(|r| r.parse::<usize>().is_ok());
            if next_is_index && !t.contains_key(seg) {
                return Err(format!("{seg} has no items in the file to override"));
            }
            t.entry(seg.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        }
        toml::Value::Array(a) => {
            let i: usize = seg
                .parse()
                .map_err(|_| format!("{seg:?} is not an index into a list"))?;
            a.get_mut(i)
                .ok_or_else(|| format!("index {i} is past the end of its list"))?
        }
        _ => return Err(format!("{seg:?} is inside a value that is not a section")),
    };
    set_path(child, rest, value, raw)
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
            ["centerface-int8", "platedet-int8"]
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
        let text = "[output]\njpeg_quality = 0\n[[detectors]]\nmodel = \"yunet\"\nthreshold = 2.0\nsmall_threshold = -1\n[limits]\nmax_bytes = 0\n";
        let err = Config::parse(text).unwrap_err().to_string();
        for key in [
            "output.jpeg_quality",
            "detectors[0] (yunet).threshold",
            "detectors[0] (yunet).small_threshold",
            "limits.max_bytes",
        ] {
            assert!(err.contains(key), "{key} missing from: {err}");
        }
    }

    #[test]
    fn an_explicit_threshold_holds_for_every_size_and_cut_objects_unless_overridden() {
        let defaults = crate::detect::FamilyKind::Centerface.family().defaults();
        let t = |threshold, small_threshold| {
            DetectorConfig {
                model: "centerface".into(),
                threshold,
                small_threshold,
                ..Default::default()
            }
            .thresholds(
                &defaults,
                &RecallConfig::default(),
                crate::detect::Class::Face,
            )
        };
        let family = t(None, None);
        assert_eq!(
            (family.large, family.small, family.tiny, family.cut),
            (
                defaults.threshold,
                defaults.small_threshold,
                defaults.tiny_threshold,
                defaults.cut_threshold
            )
        );
        assert_eq!((family.small_up_to, family.tiny_up_to), (20.0, 14.0));
        let one = t(Some(0.3), None);
        assert_eq!(
            (one.large, one.small, one.tiny, one.cut),
            (0.3, 0.3, 0.3, 0.3)
        );
        let both = t(Some(0.3), Some(0.05));
        assert_eq!((both.large, both.small, both.tiny), (0.3, 0.05, 0.05));
        let small_only = t(None, Some(0.05));
        assert_eq!(
            (small_only.large, small_only.small, small_only.tiny),
            (defaults.threshold, 0.05, 0.05)
        );
        let tiny_only = DetectorConfig {
            model: "centerface".into(),
            tiny_threshold: Some(0.04),
            ..Default::default()
        }
        .thresholds(
            &defaults,
            &RecallConfig::default(),
            crate::detect::Class::Face,
        );
        assert_eq!(
            (tiny_only.small, tiny_only.tiny),
            (defaults.small_threshold, 0.04)
        );
    }

    #[test]
    fn the_shipped_config_file_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/veil.toml");
        Config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn environment_variables_override_sections_and_list_items() {
        let text = "[worker]\nheartbeat_s = 10\n[[destinations]]\nname = \"a\"\naccount_id = \"111111111111\"\nrole_arn = \"r\"\nbucket = \"b\"\n";
        let env = [
            ("VEIL__WORKER__HEARTBEAT_S", "30"),
            ("VEIL__INGEST__QUEUE_URL", "http://q"),
            ("VEIL__INGEST__REGION", "eu-west-1"),
            ("VEIL__INGEST__SOURCES", "[{ bucket = \"raw\" }]"),
            ("VEIL__DESTINATIONS__0__BUCKET", "other-bucket"),
            ("VEIL__REDACTION__FACE__STRENGTH", "0.8"),
            ("UNRELATED", "x"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let c = Config::parse_with(text, env.into_iter()).unwrap();
        assert_eq!(c.worker.heartbeat_s, 30);
        // one key of a class's redaction, the rest as by default
        assert_eq!(c.redaction.face.strength, 0.8);
        assert_eq!(
            c.redaction.face.method,
            RedactionConfig::default().face.method
        );
        let ingest = c.ingest.unwrap();
        assert_eq!(ingest.queue_url, "http://q");
        assert_eq!(ingest.sources[0].bucket, "raw");
        assert_eq!(c.destinations[0].bucket, "other-bucket");
    }

    #[test]
    fn numeric_looking_overrides_of_text_keys_stay_text() {
        let text = "[[destinations]]\nname = \"a\"\naccount_id = \"111111111111\"\nrole_arn = \"r\"\nbucket = \"b\"\nexternal_id = \"x\"\n[[destinations]]\nname = \"b\"\nrole_arn = \"r\"\nbucket = \"c\"\n";
        let env = [
            ("VEIL__DESTINATIONS__0__ACCOUNT_ID", "222222222222"),
            ("VEIL__DESTINATIONS__0__EXTERNAL_ID", "12345"),
            ("VEIL__DESTINATIONS__0__BUCKET", "\"quoted\""),
            // Not in the file: read as a number, and an account id accepts one.
            ("VEIL__DESTINATIONS__1__ACCOUNT_ID", "333333333333"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let c = Config::parse_with(text, env.into_iter()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.destinations[0].account_id, "222222222222");
        assert_eq!(c.destinations[0].external_id.as_deref(), Some("12345"));
        assert_eq!(
            c.destinations[0].bucket, "quoted",
            "a TOML string is read as one"
        );
        assert_eq!(c.destinations[1].account_id, "333333333333");
    }

    #[test]
    fn a_type_error_names_the_key_path() {
        let env = [("VEIL__DESTINATIONS__0__BUCKET", "x")].map(|(k, v)| (k.into(), v.into()));
        let err = Config::parse_with("", env.into_iter())
            .unwrap_err()
            .to_string();
        assert!(err.contains("VEIL__DESTINATIONS__0__BUCKET"), "{err}");
        let err = Config::parse("[worker]\nheartbeat_s = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("worker.heartbeat_s"), "{err}");
    }
}
