//! Face and licence-plate detection through ONNX Runtime.
//!
//! A [`Detector`] owns one ONNX Runtime session and a [`Family`] that knows its model's input
//! format and how to decode its outputs. Everything else is shared by all families: the tile plan
//! ([`tiles`]), resizing and padding ([`input`]), mapping boxes back to the source and NMS ([`nms`]),
//! the thresholds by size (`thresholds`), and the re-check's runs around redacted regions
//! (`around`).

mod around;
pub mod centerface;
mod class;
pub mod edges;
mod family;
pub mod input;
pub mod nms;
pub mod sheets;
mod thresholds;
pub mod tiles;
mod views;
pub mod yolov8;
pub mod yunet;

pub use around::Redacted;
pub use class::{Class, Detection};
pub use family::{Candidate, Family, FamilyDefaults, FamilyKind, Outputs};
pub use thresholds::{CUT_SHARE, Thresholds};

use std::borrow::Cow;
use std::ops::RangeInclusive;

use image::RgbImage;
use ort::session::Session;
use ort::value::TensorRef;

use crate::geometry::BoxF;
use input::{Canvas, InputSpec, Preparer};
use tiles::{Plan, Tile, TilingConfig};
use views::View;

/// The width and height of a model's image input where it declares fixed ones: a model exported
/// for one size (Ultralytics' YOLOv8 exports: 640 × 640) rather than prepared by setup for any.
fn fixed_input(session: &Session) -> Option<(u32, u32)> {
    let shape = session.inputs().first()?.dtype().tensor_shape()?;
    match **shape {
        [_, _, height, width] if height > 0 && width > 0 => Some((width as u32, height as u32)),
        _ => None,
    }
}

/// What the tiles of a plan found, split by whether an edge the tile shares with a neighbour
/// cuts it ([`Tile::cuts`]). A model's box of an object it sees in part is of that part, and
/// can outscore the whole object seen by the neighbour: on a 4K frame of faces 20 px high,
/// six faces across the edge between two tiles were kept with the box of their upper or lower
/// half and a band of chin or brow stayed sharp. Where both are found, the whole one's box is
/// kept, whatever the scores ([`Found::settle`]): from the neighbouring tile for an object no
/// larger than the tiles' overlap, from a coarser pass for a larger one, which every tile of
/// the finer pass cuts. A cut find that nothing whole overlaps is kept as well. What the
/// large-object pass finds is joined to what it overlaps ([`nms::joined`]).
#[derive(Default)]
struct Found {
    whole: Vec<Candidate>,
    cut: Vec<Candidate>,
    large: Vec<Candidate>,
}

impl Found {
    /// The candidates kept: see [`nms::nms_preferring`] and [`nms::joined`].
    fn settle(self, iou: f32) -> Vec<Candidate> {
        nms::joined(
            nms::nms_preferring(self.whole, self.cut, iou),
            self.large,
            iou,
        )
    }

    /// Adds what `tile` of an image of `image` size found, each box then placed in the
    /// searched image by `place`, which also says whether the image the tile looked at cut it
    /// beyond the tile's own edges (dropped where it gives none); `large` where the tile is of
    /// the large-object pass.
    fn add(
        &mut self,
        found: Vec<Candidate>,
        (tile, large): (&Tile, bool),
        image: (u32, u32),
        place: impl Fn(BoxF) -> Option<(BoxF, bool)>,
    ) {
        for c in found {
            if let Some((bbox, cut_there)) = place(c.bbox) {
                let cut = cut_there || tile.cuts(&c.bbox, image);
                let c = Candidate { bbox, ..c };
                if large {
                    self.large.push(c);
                } else if cut {
                    self.cut.push(c);
                } else {
                    self.whole.push(c);
                }
            }
        }
    }
}

/// A detection failure, with the model it came from.
#[derive(Debug, thiserror::Error)]
#[error("detection with model {model} failed: {message}")]
pub struct DetectError {
    pub model: String,
    pub message: String,
}

/// Settings of one detector, resolved against its family's defaults.
#[derive(Debug, Clone, Copy)]
pub struct DetectorSettings {
    pub thresholds: Thresholds,
    pub nms_iou: f32,
    pub tiling: TilingConfig,
    /// The smallest object to find, in source pixels (`recall` in the config).
    pub smallest: f32,
    /// Whether the picture is also looked at mirrored left to right, in detection and in the
    /// re-check (see [`Class::looked_at_mirrored`]), by the passes that upscale it
    /// ([`DetectorSettings::mirrors`]).
    pub mirrored: bool,
}

impl DetectorSettings {
    /// Whether a pass at `scale` also looks at the picture mirrored left to right: where
    /// [`Self::mirrored`] and the pass upscales. A model's asymmetry decides at the limit of
    /// what it finds, where the objects a pass is responsible for are shown upscaled, with
    /// little detail: the faces in profile that the mirrored look gained on the small-object
    /// set are the finest pass's, at 4×. A pass at the picture's own size or smaller shows
    /// every object it is responsible for at least at the model's `min_object`, with its own
    /// detail. Its mirrored look there drew false faces rather than real ones: on a group
    /// photo (t1.jpg) the re-check's mirrored whole-image run scored two blurred heads side by
    /// side as one face of 274 px, and 7.5 % of the pixels away from the faces changed instead
    /// of 12.1 %; on the small-object set 0.86–1.23 % of the background instead of
    /// 1.15–1.41 %. It found one face the upscaled passes miss (camera.png's profile at 16 px,
    /// cut by a side edge, as drawn and mirrored), and doubled the cost of a plan that needs
    /// no upscale (faces from 40 px for CenterFace).
    pub fn mirrors(&self, scale: f32) -> bool {
        self.mirrored && scale > 1.0
    }

    /// The views of `img` that some tile of `tiles` looks at, each with the picture it
    /// searches ([`Self::looks`]).
    fn views<'a>(&self, img: &'a RgbImage, tiles: &[Tile]) -> Vec<(View, Cow<'a, RgbImage>)> {
        View::of(img, tiles.iter().any(|t| self.mirrors(t.scale)))
    }

    /// Whether `tile` is run over `view`: every tile over the picture as drawn, those of the
    /// passes that look both ways ([`Self::mirrors`]) over the mirrored one as well.
    fn looks(&self, view: View, tile: &Tile) -> bool {
        view == View::AsDrawn || self.mirrors(tile.scale)
    }
}

/// One model, its session and its settings. Not shared between threads: `Session::run` needs
/// `&mut`, so each worker owns its detectors.
pub struct Detector {
    pub name: String,
    pub class: Class,
    family: Box<dyn Family>,
    session: Session,
    settings: DetectorSettings,
    /// The family's input, on the canvas the model itself declares (see [`Detector::new`]).
    input: InputSpec,
    preparer: Preparer,
}

impl Detector {
    pub fn new(
        name: String,
        class: Class,
        family: Box<dyn Family>,
        session: Session,
        mut settings: DetectorSettings,
    ) -> Self {
        let mut input = family.input();
        if let Some((width, height)) = fixed_input(&session) {
            input.canvas = Canvas::Fixed { width, height };
            settings.tiling = settings.tiling.within(width.min(height));
        }
        Self {
            name,
            class,
            family,
            session,
            settings,
            input,
            preparer: Preparer::default(),
        }
    }

    /// The smallest object this detector must find, in source pixels.
    pub fn smallest(&self) -> f32 {
        self.settings.smallest
    }

    pub fn thresholds(&self) -> Thresholds {
        self.settings.thresholds
    }

    /// The passes of `plan` as reported, each with whether it also looks at the picture
    /// mirrored ([`DetectorSettings::mirrors`]).
    pub fn passes(&self, plan: &Plan) -> Vec<tiles::Pass> {
        let mut passes = tiles::passes(plan, &self.settings.tiling);
        for p in &mut passes {
            p.mirrored = self.settings.mirrors(p.scale);
        }
        passes
    }

    /// The passes this detector makes over a `width × height` image.
    pub fn plan(&self, width: u32, height: u32) -> Plan {
        self.settings
            .tiling
            .plan(width, height, self.settings.smallest)
    }

    /// Finds every object of this detector's class in `img`, in source pixels. Each pass keeps
    /// the objects of its sizes ([`TilingConfig::kept`]); the passes that
    /// [look both ways](DetectorSettings::mirrors) are run again over `img` mirrored left to
    /// right. `frame` is the picture's frame where `img` extends it with a border (see
    /// `Thresholds`); its edges are then looked at a second time with grey beyond them, for
    /// classes [`Class::hidden_by_its_mirror`] ([`edges`]). Where one tile saw an object whole
    /// and another cut by an edge it shares with a neighbour, the whole one's box is kept
    /// (`Found`).
    pub fn detect(
        &mut self,
        img: &RgbImage,
        frame: Option<&BoxF>,
    ) -> Result<Vec<Detection>, DetectError> {
        let plan = self.plan(img.width(), img.height());
        let mut found = Found::default();
        let thresholds = self.settings.thresholds;
        for (view, picture) in self.settings.views(img, &plan.tiles) {
            let frame = frame.map(|f| view.map(*f));
            let at = (thresholds, frame.as_ref());
            self.run_plan(&picture, at, &plan, view, &mut found)?;
        }
        if let Some(frame) = frame {
            self.detect_at_edges(img, frame, plan.finest(), &mut found)?;
        }
        Ok(self.finish(img, found))
    }

    /// Runs every tile of `plan` that looks at `view` ([`DetectorSettings::looks`]) over `img`,
    /// the searched image as `view` shows it, at `thresholds` (for the picture at `frame`), and
    /// adds what each finds to `found`, mapped back to the image as drawn.
    fn run_plan(
        &mut self,
        img: &RgbImage,
        (thresholds, frame): (Thresholds, Option<&BoxF>),
        plan: &Plan,
        view: View,
        found: &mut Found,
    ) -> Result<(), DetectError> {
        let settings = self.settings;
        for tile in plan.tiles.iter().filter(|t| settings.looks(view, t)) {
            let sizes = settings.tiling.kept(tile.scale, plan.whole);
            let on_tile = self.run_tile(img, tile, thresholds, frame, sizes)?;
            let large = tile.scale < plan.whole;
            found.add(on_tile, (tile, large), img.dimensions(), |b| {
                Some((view.map(b), false))
            });
        }
        Ok(())
    }

    /// For each pair of opposite edges ([`edges`]), for classes [`Class::hidden_by_its_mirror`]
    /// and where the finest pass (at `scale`) upscales: the depth of their bands and the tiles
    /// of their strip, in an image of `size` extending a picture of `picture` size. Bands are as
    /// deep as the largest object the finest pass is responsible for, the objects a mirrored
    /// twin can hide; the strip is seen at its own finest pass.
    ///
    /// A twin hides the objects a model sees at the limit of what it finds, shown upscaled with
    /// little detail. Where the guarantee lies within what the model finds at the picture's own
    /// size (`face_min_px = 40` for CenterFace), the bands would be as deep as the largest
    /// object of a pass at 1× and their strips would cost up to three times the face passes on
    /// a small photo, for objects the model sees at their own size: there is no second look.
    pub fn edge_plan(
        &self,
        size: (u32, u32),
        picture: (u32, u32),
        scale: f32,
    ) -> Vec<(edges::Pair, u32, Vec<Tile>)> {
        if !self.class.hidden_by_its_mirror() || scale <= 1.0 || picture.0 == 0 || picture.1 == 0 {
            return Vec::new();
        }
        let tiling = self.settings.tiling;
        let depth = tiling.overlap as f32 / scale;
        edges::Pair::BOTH
            .into_iter()
            .map(|pair| {
                let band = edges::band(depth, pair.across(picture).0);
                let (w, h) = pair.strip_size(size, band);
                let mut plan = tiling.plan(w, h, self.settings.smallest).tiles;
                let finest = plan.first().map_or(scale, |t| t.scale);
                plan.retain(|t| t.scale == finest);
                (pair, band, plan)
            })
            .collect()
    }

    /// The edge strips' pass ([`Self::edge_plan`]) as reported, where there is one: all its
    /// tiles, which keep objects up to the finest pass's reach.
    pub fn edge_pass(
        &self,
        size: (u32, u32),
        picture: (u32, u32),
        scale: f32,
    ) -> Option<tiles::Pass> {
        let tiles: Vec<Tile> = self
            .edge_plan(size, picture, scale)
            .into_iter()
            .flat_map(|(_, _, tiles)| tiles)
            .collect();
        let first = tiles.first()?;
        let sizes = self.edge_sizes(first.scale);
        let mut pass = tiles::Pass::new(first.scale, tiles.len() as u32, sizes);
        pass.mirrored = self.settings.mirrors(first.scale);
        Some(pass)
    }

    /// The sizes of object, in source pixels, an edge strip's tile at `scale` keeps: those of
    /// the finest pass, up to its reach. The bands are as deep as the objects a mirrored twin
    /// can hide; larger ones are the other passes'.
    fn edge_sizes(&self, scale: f32) -> RangeInclusive<f32> {
        0.0..=self.settings.tiling.reach(scale)
    }

    /// Adds to `found` the candidates in the bands along the edges of `frame` within `img`,
    /// seen with grey beyond the edge ([`edges`]); `scale` is the finest pass over `img`. The
    /// strips are looked at both ways where that pass is ([`DetectorSettings::mirrors`]): a
    /// face the frame cuts shows the model least of itself, and one way of looking at it can
    /// find what the other misses (camera.png's 10 px face cut by the bottom edge of the
    /// small-object set's 1080p edge-cut frame scored 0.06 mirrored, under 0.06 as drawn).
    fn detect_at_edges(
        &mut self,
        img: &RgbImage,
        frame: &BoxF,
        scale: f32,
        found: &mut Found,
    ) -> Result<(), DetectError> {
        let clip = |from: f32, to: f32, len: u32| (from.max(0.0) as u32, (to as u32).min(len));
        let rows = clip(frame.y1, frame.y2, img.height());
        let columns = clip(frame.x1, frame.x2, img.width());
        let picture = (
            columns.1.saturating_sub(columns.0),
            rows.1.saturating_sub(rows.0),
        );
        let settings = self.settings;
        for (pair, band, plan) in self.edge_plan(img.dimensions(), picture, scale) {
            let strip = edges::Strip::new(img, pair, pair.across((columns, rows)).0, band);
            for (view, searched) in settings.views(&strip.image, &plan) {
                for tile in plan.iter().filter(|t| settings.looks(view, t)) {
                    let sizes = self.edge_sizes(tile.scale);
                    let on_strip =
                        self.run_tile(&searched, tile, settings.thresholds, None, sizes)?;
                    found.add(on_strip, (tile, false), searched.dimensions(), |b| {
                        let on_strip = view.map(b);
                        let cut = strip.cuts(&on_strip, tile.edge_margin());
                        strip.to_extended(&on_strip).map(|b| (b, cut))
                    });
                }
            }
        }
        Ok(())
    }

    /// Candidates found in one tile, in `img` pixels, of `sizes` (source pixels, as
    /// [`Class::size`] measures it) and held to their thresholds (see [`Detector::kept`]).
    fn run_tile(
        &mut self,
        img: &RgbImage,
        tile: &Tile,
        thresholds: Thresholds,
        frame: Option<&BoxF>,
        sizes: RangeInclusive<f32>,
    ) -> Result<Vec<Candidate>, DetectError> {
        let found = self.candidates(img, tile, thresholds.floor(frame))?;
        let class = self.class;
        let within = found
            .into_iter()
            .filter(|c| sizes.contains(&class.size(&c.bbox)));
        Ok(self.kept(within, thresholds, frame))
    }

    /// Everything scoring at least `floor` in one tile, in `img` pixels.
    fn candidates(
        &mut self,
        img: &RgbImage,
        tile: &Tile,
        floor: f32,
    ) -> Result<Vec<Candidate>, DetectError> {
        let prepared = self.preparer.prepare(img, tile, &self.input);
        let found = self
            .run(&prepared.tensor, prepared.canvas, floor)
            .map_err(|message| DetectError {
                model: self.name.clone(),
                message,
            })?;
        Ok(found
            .into_iter()
            .map(|c| Candidate {
                bbox: c.bbox.unscale(prepared.scale, prepared.offset),
                score: c.score,
            })
            .collect())
    }

    /// The candidates of one run that score enough for their size in the source image, with
    /// overlapping ones merged. Each is held to its threshold before the merge, so that a
    /// low-scoring large box cannot suppress a small one and then be dropped itself.
    fn kept(
        &self,
        found: impl IntoIterator<Item = Candidate>,
        thresholds: Thresholds,
        frame: Option<&BoxF>,
    ) -> Vec<Candidate> {
        let kept = found
            .into_iter()
            .filter(|c| thresholds.keeps(self.class, c, frame))
            .collect();
        nms::nms(kept, self.settings.nms_iou)
    }

    /// Merges candidates from all tiles into detections ([`Found::settle`]).
    fn finish(&self, img: &RgbImage, found: Found) -> Vec<Detection> {
        // Boxes keep the model's estimate of the whole object, also past the frame, so that an
        // object cut by the edge is redacted as far as it shows.
        let frame = BoxF::frame(img.dimensions());
        found
            .settle(self.settings.nms_iou)
            .into_iter()
            .filter(|c| c.bbox.intersection(&frame).is_some())
            .map(|c| Detection {
                class: self.class,
                model: self.name.clone(),
                score: c.score,
                bbox: c.bbox,
                verify_pass: 0,
            })
            .collect()
    }

    fn run(
        &mut self,
        tensor: &ndarray::Array4<f32>,
        canvas: (u32, u32),
        threshold: f32,
    ) -> Result<Vec<Candidate>, String> {
        let input = TensorRef::from_array_view(tensor).map_err(|e| e.to_string())?;
        let outputs = self
            .session
            .run(ort::inputs![input])
            .map_err(|e| e.to_string())?;
        let names: Vec<&str> = outputs.keys().collect();
        let mut arrays = Vec::with_capacity(outputs.len());
        for (i, name) in names.iter().enumerate() {
            arrays.push(
                outputs[i]
                    .try_extract_array::<f32>()
                    .map_err(|e| format!("output {name}: {e}"))?,
            );
        }
        let outputs = Outputs { names, arrays };
        outputs.check_finite()?;
        self.family.decode(&outputs, canvas, threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::thresholds::tests::thresholds;
    use super::*;

    #[test]
    fn only_the_passes_that_upscale_look_at_the_mirrored_picture() {
        let settings = |mirrored| DetectorSettings {
            thresholds: thresholds(),
            nms_iou: 0.3,
            tiling: tiles::ANY_SIZE_TILING,
            smallest: 10.0,
            mirrored,
        };
        assert!(settings(true).mirrors(4.0));
        assert!(settings(true).mirrors(1.01));
        assert!(!settings(true).mirrors(1.0), "the picture's own size");
        assert!(!settings(true).mirrors(0.7));
        assert!(!settings(false).mirrors(4.0), "mirrored = false");
    }
}
