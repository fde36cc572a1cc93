//! Face and licence-plate detection through ONNX Runtime.
//!
//! A [`Detector`] owns one ONNX Runtime session and a [`Family`] that knows its model's input
//! format and how to decode its outputs. Everything else is shared by all families: the tile plan
//! ([`tiles`]), resizing and padding ([`input`]), mapping boxes back to the source and NMS ([`nms`]).

pub mod centerface;
pub mod edges;
pub mod input;
pub mod nms;
pub mod sheets;
pub mod tiles;
mod views;
pub mod yolov8;
pub mod yunet;

use std::borrow::Cow;
use std::ops::RangeInclusive;

use image::RgbImage;
use ndarray::ArrayViewD;
use ort::session::Session;
use ort::value::TensorRef;
use serde::{Deserialize, Serialize};

use crate::geometry::BoxF;
use input::{Canvas, InputSpec, Preparer};
use tiles::{Plan, Tile, TilingConfig};
use views::View;

/// What a detection is of; each class has its own redaction settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    Face,
    Plate,
}

impl Class {
    pub fn as_str(&self) -> &'static str {
        match self {
            Class::Face => "face",
            Class::Plate => "plate",
        }
    }

    /// Whether an object of this class close to an edge of a picture can be hidden by its mirror
    /// image, so that the edges are looked at again with grey beyond them ([`edges`]). A face
    /// head to head with an inverted face, or cheek to cheek with its reflection, is no longer
    /// one face to a detector. A plate and its reflection make a larger plate-like shape: on
    /// the small-object set a second look at the top and bottom edges found no plate more, for
    /// about a tenth more of platedet's time.
    pub fn hidden_by_its_mirror(&self) -> bool {
        matches!(self, Class::Face)
    }

    /// Whether a detector of this class looks at every picture a second time mirrored left to
    /// right, unless configured otherwise. A face model is not symmetric: it scores a face in
    /// profile or three-quarter view differently facing left and right (on the small-object
    /// set, camera.png's profile at 24 px cut by the top edge scored 0.26 one way and 0.06 the
    /// other; the held-apart three-quarter profile of zidane.jpg, missed at 10 px one way, is
    /// found the other), and a face turned either way is a face. A plate read backwards is not
    /// a plate.
    pub fn looked_at_mirrored(&self) -> bool {
        matches!(self, Class::Face)
    }

    /// How far the re-check's window around a redacted region of this class reaches beyond
    /// it, as a fraction of the region's size on every side. A face model scores a head by
    /// what lies around it (hair, neck, shoulders): with windows a quarter of the region beyond
    /// it, full detection of the outputs of the small-object set still found four blurred
    /// heads of 16 and 24 px (at 0.10–0.17, over their thresholds of 0.08 and 0.15) and a 16 px
    /// face cut by the frame that the re-check's window showed too little of; at half, none
    /// (at three eighths, two), for a re-check of 21 % of detection's time instead of 15 %.
    /// A plate's windows half as large again found no plate more.
    pub fn recheck_reach(&self) -> f32 {
        match self {
            Class::Face => 0.5,
            Class::Plate => 0.25,
        }
    }

    /// The size of an object of this class, as the guarantees and `min_object` measure it: a
    /// face's height, a plate's width.
    pub fn size(&self, b: &BoxF) -> f32 {
        match self {
            Class::Face => b.height(),
            Class::Plate => b.width(),
        }
    }
}

/// One object found in the source image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub class: Class,
    /// Name of the model (manifest entry) that found it.
    pub model: String,
    pub score: f32,
    #[serde(rename = "box")]
    pub bbox: BoxF,
    /// 0 when found by detection; n when found by the n-th re-check of redacted regions (at a
    /// lower threshold), which then redacted it too.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub verify_pass: u8,
}

fn is_zero(n: &u8) -> bool {
    *n == 0
}

/// The first pair of `boxes` that `pair_up` accepts, if any.
fn first_pair(boxes: &[BoxF], pair_up: impl Fn(&BoxF, &BoxF) -> bool) -> Option<(usize, usize)> {
    (0..boxes.len())
        .flat_map(|i| (i + 1..boxes.len()).map(move |j| (i, j)))
        .find(|&(i, j)| pair_up(&boxes[i], &boxes[j]))
}

/// `boxes` with every pair that `pair_up` accepts replaced by their union, until no pair is.
fn merged(mut boxes: Vec<BoxF>, pair_up: impl Fn(&BoxF, &BoxF) -> bool) -> Vec<BoxF> {
    while let Some((i, j)) = first_pair(&boxes, &pair_up) {
        boxes[i] = boxes[i].union(&boxes[j]);
        boxes.swap_remove(j);
    }
    boxes
}

/// How much more model time a run over the span of two groups of windows may cost than one run
/// over each, for the two to be run as one piece (see [`spans`]).
const SPAN_SHARING: f32 = 2.0;

/// The windows of a tile run as one piece, gathered into the spans that are each run as a
/// piece of their own ([`spanned`]): two spans become one where a run over their union costs
/// at most [`SPAN_SHARING`] times the two runs apart (the model's time follows the area it
/// sees). Windows side by side, up to about twice their size apart, share a run and the
/// picture between them, where a blurred head beside another can be scored as one larger face
/// that neither window holds (t1.jpg, a group photo: two heads scored 0.19 as one); windows far
/// apart do not make the model look at everything between them (a portrait's face and a false
/// box in a corner of the picture: the whole picture, where the face's span is a tenth of it).
fn spans(windows: Vec<BoxF>) -> Vec<BoxF> {
    merged(windows, |a, b| {
        a.union(b).area() <= SPAN_SHARING * (a.area() + b.area())
    })
}

/// The part of `tile` that holds `span` (a group of windows, see [`spans`]), if they meet: a
/// model that takes any input size need not look at the rest of the tile (a portrait's face
/// alone, not the whole picture). The part starts where the tile's own grid of
/// [`sheets::ALIGN`] model pixels falls, so that the model's output grid lies on the pixels as
/// it did in detection.
fn spanned(tile: &Tile, span: &BoxF) -> Option<Tile> {
    let (x1, y1, width, height) = span
        .intersection(&tile.bbox())?
        .pixel_rect(tile.x + tile.width, tile.y + tile.height)?;
    let step = ((sheets::ALIGN as f32 / tile.scale).round() as u32).max(1);
    let x = tile.x + (x1 - tile.x) / step * step;
    let y = tile.y + (y1 - tile.y) / step * step;
    Some(Tile {
        x,
        y,
        width: x1 + width - x,
        height: y1 + height - y,
        scale: tile.scale,
    })
}

/// Whether the re-check looks at `redacted` (a region, and the object it was grown from) in the
/// pass that `pass` is a tile of, in `plan`:
///
/// - where the pass shows the region grown by a quarter on every side at
///   least at half the model's smallest object, or is the finest pass (a blurred face can still
///   be scored as a face on an upscale meant for smaller ones);
/// - where the pass's tiles can hold the region, as far as it lies in `image`, whole. Where
///   they cannot, detection could not have seen the object whole there either, and the blurred
///   inside of so large a region shows that pass only smooth shading. A pass whose one tile is
///   the whole image holds every region;
/// - where the pass keeps objects of the object's size ([`TilingConfig::kept`]; the whole
///   pass keeps every size): detection finds it again only there, and a finer pass sees a
///   large blurred head as parts, at a cost of the region's area times the square of its scale
///   (a 200 px face's window at 4× is as large as a 1080p frame).
fn rechecked_at(
    class: Class,
    tiling: &TilingConfig,
    plan: &Plan,
    redacted: &Redacted,
    image: &BoxF,
    pass: &Tile,
) -> bool {
    let (scale, region) = (pass.scale, &redacted.region);
    let grown = region.grow(0.25);
    let shown = class.size(&grown) * scale >= tiling.min_object / 2.0 || scale == plan.finest();
    let held = pass.bbox().contains(image)
        || region
            .intersection(image)
            .is_some_and(|r| r.width().max(r.height()) * scale <= tiling.tile_size as f32);
    let kept = tiling
        .kept(scale, plan.whole)
        .contains(&class.size(&redacted.object));
    shown && held && kept
}

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
    /// searched image by `place` (dropped where it gives none); `large` where the tile is of
    /// the large-object pass.
    fn add(
        &mut self,
        found: Vec<Candidate>,
        (tile, large): (&Tile, bool),
        image: (u32, u32),
        place: impl Fn(BoxF) -> Option<BoxF>,
    ) {
        for c in found {
            let cut = tile.cuts(&c.bbox, image);
            if let Some(bbox) = place(c.bbox) {
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

/// A region the re-check looks at, and the object whose redaction it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Redacted {
    pub object: BoxF,
    pub region: BoxF,
}

/// A scored box before it is attributed to a class and model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub bbox: BoxF,
    pub score: f32,
}

/// The model families veil can decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FamilyKind {
    Yunet,
    Centerface,
    Yolov8,
}

impl FamilyKind {
    pub fn family(self) -> Box<dyn Family> {
        match self {
            FamilyKind::Yunet => Box::new(yunet::YuNet),
            FamilyKind::Centerface => Box::new(centerface::CenterFace),
            FamilyKind::Yolov8 => Box::new(yolov8::Yolov8),
        }
    }
}

/// Per-family defaults, chosen for recall: a missed face is worse than a blurred background.
#[derive(Debug, Clone, Copy)]
pub struct FamilyDefaults {
    pub threshold: f32,
    /// Threshold for objects no larger than twice the smallest guaranteed size (see
    /// [`Thresholds`]).
    pub small_threshold: f32,
    /// Threshold for objects no larger than 1.4 times the smallest guaranteed size.
    pub tiny_threshold: f32,
    /// Threshold for objects cut by the frame (see [`Thresholds`]).
    pub cut_threshold: f32,
    pub nms_iou: f32,
    pub tiling: TilingConfig,
}

/// A model's outputs for one run, by position and name, as float32 arrays.
pub struct Outputs<'a> {
    pub names: Vec<&'a str>,
    pub arrays: Vec<ArrayViewD<'a, f32>>,
}

impl<'a> Outputs<'a> {
    pub fn by_name(&self, name: &str) -> Result<&ArrayViewD<'a, f32>, String> {
        self.names
            .iter()
            .position(|n| *n == name)
            .map(|i| &self.arrays[i])
            .ok_or_else(|| format!("the model has no output named {name:?}"))
    }

    /// Fails on any NaN or infinite value: a model run that produced one cannot be trusted to
    /// have found everything (a NaN score compares as neither above nor below a threshold).
    pub fn check_finite(&self) -> Result<(), String> {
        for (name, a) in self.names.iter().zip(&self.arrays) {
            if let Some(v) = a.iter().find(|v| !v.is_finite()) {
                return Err(format!("output {name} holds a non-finite value ({v})"));
            }
        }
        Ok(())
    }

    pub fn at(&self, index: usize) -> Result<&ArrayViewD<'a, f32>, String> {
        self.arrays
            .get(index)
            .ok_or_else(|| format!("the model has fewer than {} outputs", index + 1))
    }
}

/// What differs between model families: input format and output decoding.
pub trait Family: Send {
    fn input(&self) -> InputSpec;
    fn defaults(&self) -> FamilyDefaults;
    /// Decodes one run into candidates in canvas pixels, keeping those scoring at least `threshold`.
    fn decode(
        &self,
        outputs: &Outputs,
        canvas: (u32, u32),
        threshold: f32,
    ) -> Result<Vec<Candidate>, String>;
}

/// A detection failure, with the model it came from.
#[derive(Debug, thiserror::Error)]
#[error("detection with model {model} failed: {message}")]
pub struct DetectError {
    pub model: String,
    pub message: String,
}

/// The share of an object's width or height beyond the frame from which it counts as cut by
/// it (see [`Thresholds`]). The objects the frame cuts in the small-object set have 30–50 % of
/// themselves outside.
pub const CUT_SHARE: f32 = 0.25;

/// The score a candidate must reach to be kept: `tiny` for objects no larger than `tiny_up_to`
/// (source pixels, measured as [`Class::size`]), `small` for the others no larger than
/// `small_up_to`, `large` for the rest, and `cut` for objects cut by the frame, whatever their
/// size, unless their size's own is lower (centerface-int8's small objects: 0.08 against a cut
/// threshold of 0.1). A model scores the smallest objects lowest (it sees them upscaled, with
/// little detail), and a false box over a small object's area changes few pixels; a false large
/// box blurs a patch of background anyone notices. So the small objects get a lower threshold,
/// and those at the limit of the guarantee a lower one still: a face there that a camera
/// recorded soft, or seen in profile, scores under the small objects' threshold, and a false
/// box of its size changes fewest pixels of all. An object cut by the frame shows only
/// part of itself (the mirrored border completes it only as a reflection), scores lower still,
/// and a false box there changes only the part inside the frame. It counts as cut when at
/// least [`CUT_SHARE`] of it lies beyond the frame: a box that only overhangs the edge shows
/// the model nearly all of its object, and at the plates' cut threshold (0.01) a helmet at the
/// bottom of a portrait, overhanging by 4 %, was blurred as a 224 × 192 px plate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub large: f32,
    pub small: f32,
    pub small_up_to: f32,
    pub tiny: f32,
    pub tiny_up_to: f32,
    pub cut: f32,
}

impl Thresholds {
    /// The lowest score a candidate can be kept at: what decoding keeps.
    fn floor(&self, frame: Option<&BoxF>) -> f32 {
        let lowest = self.large.min(self.small).min(self.tiny);
        if frame.is_some() {
            lowest.min(self.cut)
        } else {
            lowest
        }
    }

    /// Every threshold times `factor` (the re-check of redacted regions uses a fraction).
    pub fn scaled(self, factor: f32) -> Self {
        Self {
            large: self.large * factor,
            small: self.small * factor,
            tiny: self.tiny * factor,
            cut: self.cut * factor,
            ..self
        }
    }

    /// Whether `c` scores enough for its size; `frame`, where given, is the picture's frame
    /// within a searched image extended beyond it, and a box with at least [`CUT_SHARE`] of
    /// itself beyond it is cut by it.
    fn keeps(&self, class: Class, c: &Candidate, frame: Option<&BoxF>) -> bool {
        c.score >= self.needed(class, &c.bbox, frame)
    }

    /// The score an object of class `class` at `bbox` must reach (see `Thresholds::keeps`).
    pub fn needed(&self, class: Class, bbox: &BoxF, frame: Option<&BoxF>) -> f32 {
        let size = class.size(bbox);
        let by_size = if size <= self.tiny_up_to {
            self.tiny
        } else if size <= self.small_up_to {
            self.small
        } else {
            self.large
        };
        // A cut object shows less of itself than a whole one of its size: never held higher.
        if frame.is_some_and(|f| bbox.share_outside(f) >= CUT_SHARE) {
            self.cut.min(by_size)
        } else {
            by_size
        }
    }
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
    /// ([`Found`]).
    pub fn detect(
        &mut self,
        img: &RgbImage,
        frame: Option<&BoxF>,
    ) -> Result<Vec<Detection>, DetectError> {
        let plan = self.plan(img.width(), img.height());
        let mut found = Found::default();
        for (view, picture) in self.settings.views(img, &plan.tiles) {
            let frame = frame.map(|f| view.map(*f));
            self.run_plan(&picture, frame.as_ref(), &plan, view, &mut found)?;
        }
        if let Some(frame) = frame {
            self.detect_at_edges(img, frame, plan.finest(), &mut found)?;
        }
        Ok(self.finish(img, found))
    }

    /// Runs every tile of `plan` that looks at `view` ([`DetectorSettings::looks`]) over `img`,
    /// the searched image as `view` shows it, and adds what each finds to `found`, mapped back
    /// to the image as drawn.
    fn run_plan(
        &mut self,
        img: &RgbImage,
        frame: Option<&BoxF>,
        plan: &Plan,
        view: View,
        found: &mut Found,
    ) -> Result<(), DetectError> {
        let settings = self.settings;
        for tile in plan.tiles.iter().filter(|t| settings.looks(view, t)) {
            let sizes = settings.tiling.kept(tile.scale, plan.whole);
            let on_tile = self.run_tile(img, tile, settings.thresholds, frame, sizes)?;
            let large = tile.scale < plan.whole;
            found.add(on_tile, (tile, large), img.dimensions(), |b| {
                Some(view.map(b))
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
        Some(tiles::Pass::new(first.scale, tiles.len() as u32, sizes))
    }

    /// The sizes of object, in source pixels, an edge strip's tile at `scale` keeps: those of
    /// the finest pass, up to its reach. The bands are as deep as the objects a mirrored twin
    /// can hide; larger ones are the other passes'.
    fn edge_sizes(&self, scale: f32) -> RangeInclusive<f32> {
        0.0..=self.settings.tiling.reach(scale)
    }

    /// Adds to `found` the candidates in the bands along the edges of `frame` within `img`,
    /// seen with grey beyond the edge ([`edges`]); `scale` is the finest pass over `img`.
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
        for (pair, band, plan) in self.edge_plan(img.dimensions(), picture, scale) {
            let strip = edges::Strip::new(img, pair, pair.across((columns, rows)).0, band);
            for tile in &plan {
                let sizes = self.edge_sizes(tile.scale);
                let on_strip =
                    self.run_tile(&strip.image, tile, self.settings.thresholds, None, sizes)?;
                found.add(on_strip, (tile, false), strip.image.dimensions(), |b| {
                    strip.to_extended(&b)
                });
            }
        }
        Ok(())
    }

    /// Looks again, at `thresholds`, only around the `redacted` regions (each grown into a
    /// window by [`Class::recheck_reach`] of its size on every side), in the passes of the
    /// tile plan that `rechecked_at` picks for each: a cheap check of redacted regions.
    /// Each window goes to the first tile of a pass that holds it whole (the tiles overlap, so
    /// most windows have one), and only a window that no tile holds is cut by the tiles it
    /// reaches. Within a tile, overlapping windows are merged while their union fits on a
    /// sheet; a tile mostly covered by windows is run in pieces, over the parts of it its
    /// windows span (`spans`, `spanned`), and so is a pass of one tile (the coarse pass for
    /// large objects: runs at the model's own size, and a blurred head next to another can be
    /// scored as one large box that neither window holds; t1.jpg, two heads scored 0.19 as one
    /// by a whole-image run); the other windows, of every pass, are scaled to their pass and
    /// laid out together on sheets ([`sheets`]), one run each.
    pub fn detect_around(
        &mut self,
        img: &RgbImage,
        redacted: &[Redacted],
        thresholds: Thresholds,
    ) -> Result<Vec<Detection>, DetectError> {
        let plan = self.plan(img.width(), img.height());
        let tiling = self.settings.tiling;
        let class = self.class;
        // The windows each tile checks, found in one walk over windows and passes.
        let image_box = BoxF::frame(img.dimensions());
        let mut passes: Vec<&Tile> = plan.tiles.iter().collect();
        passes.dedup_by_key(|t| t.scale);
        let mut per_tile: Vec<Vec<BoxF>> = vec![Vec::new(); plan.tiles.len()];
        for r in redacted {
            let window = r.region.grow(class.recheck_reach());
            let Some(inside) = window.intersection(&image_box) else {
                continue;
            };
            for scale in passes
                .iter()
                .filter(|p| rechecked_at(class, &tiling, &plan, r, &image_box, p))
                .map(|p| p.scale)
            {
                let pass = || {
                    plan.tiles
                        .iter()
                        .enumerate()
                        .filter(|(_, t)| t.scale == scale)
                };
                match pass().find(|(_, t)| t.bbox().contains(&inside)) {
                    Some((home, _)) => per_tile[home].push(inside),
                    None => {
                        for (index, tile) in pass() {
                            per_tile[index].extend(window.intersection(&tile.bbox()));
                        }
                    }
                }
            }
        }
        // A sheet's side and the gutter between its windows, in model pixels.
        let (side, gutter) = (tiling.tile_size, sheets::gutter(tiling.min_object));
        let room = sheets::room(side, gutter) as f32;
        let alone = |t: &Tile| plan.tiles.iter().filter(|u| u.scale == t.scale).count() == 1;
        let mut whole = Vec::new();
        let mut windows_at_scale: Vec<Tile> = Vec::new();
        for (tile, windows) in plan.tiles.iter().zip(per_tile) {
            let tile_box = tile.bbox();
            // Overlapping windows are merged only while the union still fits on a sheet: a
            // window too large for one costs a run of its own, while two overlapping windows
            // side by side on a sheet only repeat a few pixels. (2 px for rounding to pixels.)
            let fits = |b: &BoxF| {
                (b.width() + 2.0) * tile.scale <= room && (b.height() + 2.0) * tile.scale <= room
            };
            let windows = merged(windows, |a, b| {
                a.intersection(b).is_some() && fits(&a.union(b))
            });
            let covered = windows.iter().map(BoxF::area).sum::<f32>();
            if !windows.is_empty() && (alone(tile) || covered >= 0.5 * tile_box.area()) {
                whole.extend(spans(windows).iter().filter_map(|span| spanned(tile, span)));
                continue;
            }
            windows_at_scale.extend(
                windows
                    .iter()
                    .filter_map(|w| w.pixel_rect(img.width(), img.height()))
                    .map(|(x, y, width, height)| Tile {
                        x,
                        y,
                        width,
                        height,
                        scale: tile.scale,
                    }),
            );
        }
        windows_at_scale.sort_unstable_by_key(|t| (t.scale.to_bits(), t.x, t.y, t.width, t.height));
        windows_at_scale.dedup();
        // Windows of the passes that look both ways go on sheets of their own.
        let settings = self.settings;
        let (both_ways, one_way): (Vec<Tile>, Vec<Tile>) = windows_at_scale
            .into_iter()
            .partition(|w| settings.mirrors(w.scale));
        let preparer = &mut self.preparer;
        let mut sheets = Vec::new();
        let mut alone = whole;
        for (windows, mirrored) in [(both_ways, true), (one_way, false)] {
            let (laid, too_large) =
                sheets::lay_out(&windows, side, gutter, |w| preparer.pixels(img, w));
            sheets.extend(laid.into_iter().map(|sheet| (sheet, mirrored)));
            // Windows too large for a sheet run on their own.
            alone.extend(too_large);
        }
        let mut found = Vec::new();
        if !alone.is_empty() {
            for (view, picture) in settings.views(img, &alone) {
                for tile in alone.iter().filter(|t| settings.looks(view, t)) {
                    let every = 0.0..=f32::INFINITY;
                    let on_tile =
                        self.run_tile(&picture, &view.tile(tile), thresholds, None, every)?;
                    found.extend(on_tile.into_iter().map(|c| view.back(c)));
                }
            }
        }
        for (sheet, mirrored) in &sheets {
            let on_sheet = self.on_sheet(&sheet.image, thresholds.floor(None), *mirrored)?;
            let in_image = on_sheet
                .into_iter()
                .filter_map(|c| sheet.to_image(&c.bbox).map(|bbox| Candidate { bbox, ..c }));
            found.extend(self.kept(in_image, thresholds, None));
        }
        // Windows are cut to their regions on purpose: none of their finds counts as cut.
        let found = Found {
            whole: found,
            ..Found::default()
        };
        Ok(self.finish(img, found))
    }

    /// Candidates found on a sheet of the re-check's windows at `floor`, in sheet pixels; where
    /// `mirrored` (its windows' passes look both ways), also on the sheet mirrored left to
    /// right (each window mirrored in place of its mirror image's: a box found there, mirrored
    /// back, lies on the window it was found on).
    fn on_sheet(
        &mut self,
        sheet: &RgbImage,
        floor: f32,
        mirrored: bool,
    ) -> Result<Vec<Candidate>, DetectError> {
        let (width, height) = sheet.dimensions();
        let tile = Tile {
            x: 0,
            y: 0,
            width,
            height,
            scale: 1.0,
        };
        let mut found = Vec::new();
        for (view, picture) in View::of(sheet, mirrored) {
            let on_view = self.candidates(&picture, &tile, floor)?;
            found.extend(on_view.into_iter().map(|c| view.back(c)));
        }
        Ok(found)
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
    use super::*;
    use ndarray::ArrayD;

    /// Thresholds with every level apart: tiny objects up to 14 px, small up to 20 px.
    fn thresholds() -> Thresholds {
        Thresholds {
            large: 0.15,
            small: 0.1,
            small_up_to: 20.0,
            tiny: 0.07,
            tiny_up_to: 14.0,
            cut: 0.05,
        }
    }

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

    #[test]
    fn tiny_small_and_cut_objects_are_held_to_their_thresholds_and_others_to_the_large_one() {
        let t = thresholds();
        let c = |height: f32, score| Candidate {
            bbox: BoxF::new(10.0, 10.0, 110.0, 10.0 + height),
            score,
        };
        assert!(t.keeps(Class::Face, &c(14.0, 0.07), None), "14 px is tiny");
        assert!(!t.keeps(Class::Face, &c(14.0, 0.06), None));
        assert!(
            !t.keeps(Class::Face, &c(15.0, 0.09), None),
            "15 px is small"
        );
        assert!(t.keeps(Class::Face, &c(20.0, 0.1), None), "20 px is small");
        assert!(!t.keeps(Class::Face, &c(20.0, 0.09), None));
        assert!(!t.keeps(Class::Face, &c(21.0, 0.14), None), "21 px is not");
        assert!(t.keeps(Class::Face, &c(21.0, 0.15), None));
        // a plate's size is its width: 100 px here, whatever the height
        assert!(!t.keeps(Class::Plate, &c(10.0, 0.12), None));
        // inside the frame the cut threshold does not apply; across its edge it does, once a
        // quarter of the box is beyond it (the box spans 10..110 × 10..60; 25 % and 5 % here)
        let frame = BoxF::new(0.0, 0.0, 200.0, 200.0);
        assert!(!t.keeps(Class::Face, &c(50.0, 0.06), Some(&frame)));
        let across = BoxF::new(35.0, 0.0, 120.0, 200.0);
        assert!(t.keeps(Class::Face, &c(50.0, 0.05), Some(&across)));
        assert!(!t.keeps(Class::Face, &c(50.0, 0.04), Some(&across)));
        let overhung = BoxF::new(15.0, 0.0, 120.0, 200.0);
        assert!(!t.keeps(Class::Face, &c(50.0, 0.06), Some(&overhung)));
        // a cut threshold above the small one (as centerface-int8's: cut 0.1, small 0.08)
        // never holds a small cut object higher than a whole one of its size
        let high_cut = Thresholds { cut: 0.12, ..t };
        assert!(high_cut.keeps(Class::Face, &c(20.0, 0.1), Some(&across)));
        assert!(!high_cut.keeps(Class::Face, &c(50.0, 0.11), Some(&across)));
        assert_eq!(t.floor(None), 0.07);
        assert_eq!(t.floor(Some(&frame)), 0.05);
        let half = t.scaled(0.5);
        assert_eq!(
            (half.large, half.small, half.tiny, half.cut),
            (0.075, 0.05, 0.035, 0.025)
        );
        assert_eq!((half.small_up_to, half.tiny_up_to), (20.0, 14.0));
    }

    #[test]
    fn a_tile_run_in_pieces_is_cut_to_its_spans_on_its_own_grid() {
        let tile = Tile {
            x: 100,
            y: 50,
            width: 1000,
            height: 800,
            scale: 1.0,
        };
        let span = BoxF::new(213.4, 300.2, 470.5, 500.0);
        let part = spanned(&tile, &span).unwrap();
        // starts on the tile's 8 px grid at or before the span, ends past it
        assert_eq!((part.x, part.y), (212, 298));
        assert_eq!((part.x + part.width, part.y + part.height), (471, 500));
        // at 4× the grid is 2 source pixels
        let fine = spanned(&Tile { scale: 4.0, ..tile }, &span).unwrap();
        assert_eq!((fine.x, fine.y), (212, 300));
        // never beyond the tile, and nothing for a span beside it
        let past = spanned(&tile, &BoxF::new(0.0, 0.0, 2000.0, 2000.0));
        assert_eq!(past, Some(tile));
        assert_eq!(spanned(&tile, &BoxF::new(0.0, 0.0, 90.0, 40.0)), None);
    }

    #[test]
    fn overlapping_windows_pair_up_only_while_their_union_fits() {
        let boxes = [
            BoxF::new(0.0, 0.0, 60.0, 20.0),
            BoxF::new(50.0, 0.0, 110.0, 20.0),
            BoxF::new(100.0, 10.0, 130.0, 30.0),
            BoxF::new(300.0, 0.0, 310.0, 10.0),
        ];
        let overlap_fitting = |width: f32| {
            move |a: &BoxF, b: &BoxF| a.intersection(b).is_some() && a.union(b).width() <= width
        };
        assert_eq!(first_pair(&boxes, overlap_fitting(1000.0)), Some((0, 1)));
        // 0 ∪ 1 is 110 px wide: too wide; 1 ∪ 2 (80 px) fits
        assert_eq!(first_pair(&boxes, overlap_fitting(100.0)), Some((1, 2)));
        assert_eq!(first_pair(&boxes, overlap_fitting(50.0)), None);
        assert_eq!(merged(boxes.to_vec(), overlap_fitting(1000.0)).len(), 2);
    }

    #[test]
    fn windows_side_by_side_share_a_span_and_windows_far_apart_do_not() {
        let window = |x: f32, y: f32| BoxF::new(x, y, x + 40.0, y + 50.0);
        // two heads a window apart, and a false box in a far corner of a 1280 × 886 photo
        let heads = [window(300.0, 200.0), window(380.0, 205.0)];
        let corner = window(1240.0, 836.0);
        let spans = spans(vec![heads[0], corner, heads[1]]);
        assert_eq!(spans.len(), 2, "{spans:?}");
        assert!(spans.contains(&heads[0].union(&heads[1])));
        assert!(spans.contains(&corner));
        // a run over three small windows spread over the photo costs more than twice theirs
        let spread = [
            window(0.0, 0.0),
            window(600.0, 400.0),
            window(1200.0, 800.0),
        ];
        assert_eq!(super::spans(spread.to_vec()).len(), 3);
    }

    #[test]
    fn the_recheck_skips_coarse_passes_for_small_regions_and_fine_ones_for_large_objects() {
        let tiling = TilingConfig {
            tile_size: 1536,
            min_object: 40.0,
            overlap: 160,
            ..tiles::ANY_SIZE_TILING
        };
        let image = BoxF::new(0.0, 0.0, 4000.0, 3000.0);
        // a face's region is 1.8 times its box, as by default
        let face = |side: f32| Redacted {
            object: BoxF::new(100.0, 100.0, 100.0 + side / 1.8, 100.0 + side / 1.8),
            region: BoxF::new(100.0, 100.0, 100.0 + side, 100.0 + side),
        };
        let tile = |scale: f32| Tile {
            x: 0,
            y: 0,
            width: (1536.0 / scale) as u32,
            height: (1536.0 / scale) as u32,
            scale,
        };
        let plan = Plan {
            tiles: vec![tile(4.0)],
            whole: 0.24,
        };
        let at = |side: f32, scale: f32| {
            rechecked_at(
                Class::Face,
                &tiling,
                &plan,
                &face(side),
                &image,
                &tile(scale),
            )
        };
        // an 18 px region at 4×: the finest pass, always looked at
        assert!(at(18.0, 4.0));
        // … at 1× its window is 27 px, above half of 40
        assert!(at(18.0, 1.0));
        // … at 0.5× 13.5 px: too small to be seen
        assert!(!at(18.0, 0.5));
        // the 4× pass keeps faces up to 80 px (twice its overlap of 160 model pixels): a
        // region of 144 px (an 80 px face) is looked at there, one of 270 px (150 px) only
        // at 1×, which keeps faces up to 320 px
        assert!(at(144.0, 4.0));
        assert!(!at(270.0, 4.0));
        assert!(at(270.0, 1.0));
        // a 1100 px region (a 611 px face): no tile of 1536 holds it at 4× or 2×, and 1× does
        // not keep faces that large
        assert!(!at(1100.0, 4.0));
        assert!(!at(1100.0, 2.0));
        assert!(!at(1100.0, 1.0));
        // a region larger than any tile is held by the pass over the whole image, the last
        let whole = Tile {
            x: 0,
            y: 0,
            width: 4000,
            height: 3000,
            scale: 0.24,
        };
        let frame_filling = Redacted {
            object: BoxF::new(0.0, 0.0, 4000.0, 3000.0),
            region: BoxF::new(-500.0, -500.0, 4500.0, 3500.0),
        };
        let at_scale =
            |t: &Tile| rechecked_at(Class::Face, &tiling, &plan, &frame_filling, &image, t);
        assert!(at_scale(&whole));
        assert!(!at_scale(&tile(1.0)));
        // the large-object pass looks again only at the objects the whole pass shows larger
        // than the model boxes whole (448 px: faces from 1867 px)
        let tiling = TilingConfig {
            largest_object: Some(448.0),
            ..tiling
        };
        let large = Tile {
            scale: 448.0 / 4000.0,
            ..whole
        };
        let at_large = |r: &Redacted| rechecked_at(Class::Face, &tiling, &plan, r, &image, &large);
        assert!(at_large(&face(1.8 * 1900.0)));
        assert!(!at_large(&face(1.8 * 1800.0)));
        assert!(at_large(&frame_filling));
    }

    #[test]
    fn a_nan_or_infinite_output_is_an_error() {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut scores = ArrayD::<f32>::zeros(vec![1, 5, 4]);
            scores[[0, 4, 2]] = bad;
            let outputs = Outputs {
                names: vec!["output0"],
                arrays: vec![scores.view()],
            };
            let err = outputs.check_finite().unwrap_err();
            assert!(
                err.contains("output0") && err.contains("non-finite"),
                "{err}"
            );
        }
        let fine = ArrayD::<f32>::from_elem(vec![1, 5, 4], 0.5);
        let outputs = Outputs {
            names: vec!["output0"],
            arrays: vec![fine.view()],
        };
        assert!(outputs.check_finite().is_ok());
    }
}
