//! veil: anonymise camera images — detect faces and licence plates with ONNX models, redact them,
//! strip metadata — as a library, a one-shot CLI and a queue-draining daemon ([`daemon`]).
//!
//! Data flow of one image, module by module:
//! [`codec::decode`] (limits, orientation) → [`detect`] (tiles, models, NMS) → [`redact`]
//! → [`rendition`] (size) → [`codec::encode`] (no metadata), driven by [`pipeline`], which also
//! re-checks what it publishes (`recheck`: what a second look still sees) and builds the
//! [`report`]. [`config`] and [`manifest`] set it up; [`runtime`] loads ONNX Runtime.

pub mod codec;
pub mod config;
pub mod daemon;
pub mod detect;
pub mod geometry;
pub mod manifest;
pub mod pipeline;
mod recheck;
pub mod redact;
pub mod rendition;
pub mod report;
pub mod runtime;
