//! Which parts of an image a detector looks at, and at what scale.
//!
//! The plan follows from object sizes, not from the image size. Each class has a guaranteed
//! smallest size in source pixels (faces 10 px high, plates 20 px wide by default) and each model
//! a smallest size it reliably finds in its own input pixels (`min_object`, measured: see
//! models/README.md). The finest pass is taken at the scale that shows the guaranteed size at the
//! model's minimum, upscaling where needed, and is tiled so that neighbouring tiles share
//! `overlap` model pixels: every object up to that size is whole in some tile. Larger objects are
//! left to coarser passes, each at most `overlap / min_object` times coarser than the last, so
//! that every size is covered by some pass; the coarsest pass sees the whole image at
//! `whole_size`. A pass finer than that keeps objects up to twice its overlap
//! ([`TilingConfig::reach`]). Where the whole pass can show an object larger than the model
//! boxes whole (`largest_object`, measured for CenterFace), one more pass shows the whole image
//! small enough for the largest object it can hold, and keeps only the objects the whole pass
//! shows too large ([`TilingConfig::kept`]). NMS merges the passes.

use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

/// One region of the source image and the scale at which the model sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tile {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    /// Model pixels per source pixel (above 1 when the pass upscales).
    pub scale: f32,
}

/// How a model covers an image; every field has a per-family default.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TilingConfig {
    /// Longest side, in model pixels, of the coarsest pass, which sees the whole image.
    pub whole_size: u32,
    /// Side of a tile in model pixels.
    pub tile_size: u32,
    /// Smallest object (face height, plate width), in model pixels, the model finds reliably.
    pub min_object: f32,
    /// Pixels, in model pixels, shared by neighbouring tiles: the largest object a tiled pass is
    /// responsible for.
    pub overlap: u32,
    /// Largest upscale of the finest pass.
    pub max_scale: f32,
    /// Largest object, in model pixels, the model boxes whole, where measured. Beyond it a box
    /// can hold only part of its object: CenterFace boxes a face of 700–800 px from the brow to
    /// above the mouth (models/README.md, "Largest faces"). Where the whole pass can show a
    /// larger object, the large-object pass shows the whole image with its long side at this
    /// size. `None`: no pass for large objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub largest_object: Option<f32>,
}

/// `w × h` times `s`, rounded, at least one pixel each way.
pub fn scaled(w: u32, h: u32, s: f32) -> (u32, u32) {
    (
        ((w as f32 * s).round() as u32).max(1),
        ((h as f32 * s).round() as u32).max(1),
    )
}

/// How near, in model pixels, a box must come to an edge a tile shares with its neighbour to
/// count as cut by it ([`Tile::cuts`]): one output cell of CenterFace's grid. A box that only
/// ends near the edge is seen whole by the neighbour as well, so counting it cut loses nothing.
const TILE_EDGE: f32 = 4.0;

/// Tiling for models that accept any input size (YuNet, CenterFace): tiles of 1536 px sharing
/// 160, and a whole pass at 960 px. `min_object` and `largest_object` are each family's own
/// (models/README.md).
pub const ANY_SIZE_TILING: TilingConfig = TilingConfig {
    whole_size: 960,
    tile_size: 1536,
    min_object: 32.0,
    overlap: 160,
    max_scale: 4.0,
    largest_object: None,
};

impl Tile {
    /// The tile's size in model pixels (before a fixed-canvas model shrinks it to fit).
    pub fn model_size(&self) -> (u32, u32) {
        scaled(self.width, self.height, self.scale)
    }

    /// Whether `b` (image pixels) reaches an edge this tile shares with a neighbouring tile,
    /// in an image of `image` size: within `TILE_EDGE` model pixels of it, or past it. The
    /// model then saw only part of that object, and its box is of that part; the neighbour,
    /// whose tile shares the overlap, sees an object no larger than the overlap whole.
    pub fn cuts(&self, b: &crate::geometry::BoxF, image: (u32, u32)) -> bool {
        let margin = self.edge_margin();
        let t = self.bbox();
        (self.x > 0 && b.x1 <= t.x1 + margin)
            || (self.y > 0 && b.y1 <= t.y1 + margin)
            || (self.x + self.width < image.0 && b.x2 >= t.x2 - margin)
            || (self.y + self.height < image.1 && b.y2 >= t.y2 - margin)
    }

    /// How near, in image pixels, a box must come to an edge of this tile to count as cut by
    /// it (`TILE_EDGE` model pixels).
    pub fn edge_margin(&self) -> f32 {
        TILE_EDGE / self.scale
    }

    pub fn bbox(&self) -> crate::geometry::BoxF {
        crate::geometry::BoxF::new(
            self.x as f32,
            self.y as f32,
            (self.x + self.width) as f32,
            (self.y + self.height) as f32,
        )
    }
}

/// One pass of a plan, as reported: its scale, how many tiles it takes, whether it is run a
/// second time over the picture mirrored left to right, and the sizes of object (source pixels,
/// a face's height or a plate's width) it keeps, where bounded ([`TilingConfig::kept`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Pass {
    pub scale: f32,
    pub tiles: u32,
    #[serde(default)]
    pub mirrored: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects_from: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects_up_to: Option<f32>,
}

impl Pass {
    /// A pass at `scale` of `tiles` tiles that keeps objects of `sizes`.
    pub fn new(scale: f32, tiles: u32, sizes: RangeInclusive<f32>) -> Self {
        Self {
            scale,
            tiles,
            mirrored: false,
            objects_from: (*sizes.start() > 0.0).then_some(*sizes.start()),
            objects_up_to: sizes.end().is_finite().then_some(*sizes.end()),
        }
    }
}

/// Summarises `plan` pass by pass, finest first, each with the sizes `tiling` keeps at its
/// scale.
pub fn passes(plan: &Plan, tiling: &TilingConfig) -> Vec<Pass> {
    let mut passes: Vec<Pass> = Vec::new();
    for t in &plan.tiles {
        match passes.last_mut() {
            Some(p) if p.scale == t.scale => p.tiles += 1,
            _ => passes.push(Pass::new(t.scale, 1, tiling.kept(t.scale, plan.whole))),
        }
    }
    passes
}

/// The passes over one image: the tiles of every pass, finest first; the whole pass, which
/// keeps every size; and, last, where the model has a `largest_object` the whole pass can
/// exceed, the large-object pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub tiles: Vec<Tile>,
    /// The scale of the whole pass.
    pub whole: f32,
}

impl Plan {
    /// The scale of the finest pass.
    pub fn finest(&self) -> f32 {
        self.tiles.first().map_or(self.whole, |t| t.scale)
    }

    /// Whether `tile`'s pass is that one tile: a pass that sees the whole image in one run.
    pub fn in_one_run(&self, tile: &Tile) -> bool {
        self.tiles.iter().filter(|t| t.scale == tile.scale).count() == 1
    }
}

/// How far beyond the objects it is responsible for a pass keeps what it finds, as a multiple of
/// its tiles' overlap (see [`TilingConfig::reach`]).
const REACH: f32 = 2.0;

impl TilingConfig {
    /// The largest object, in source pixels, that a pass at `scale` keeps when it is not the
    /// plan's last: `REACH` times the largest it is responsible for (its tiles' overlap). The
    /// passes after it see larger objects whole and at most `overlap / min_object` times
    /// smaller, nearer the sizes the model was measured at; a finer pass shows them upscaled,
    /// or in parts, and what a model scores there is mostly texture: on a portrait (biden.jpg of
    /// the portrait bench) CenterFace's 1× pass scored a suit as a face of 341 × 434 px at 0.18
    /// that the last pass, which saw it at 176 px, did not, and its 4× pass scores the eyes and
    /// mouth of a 260 px face as faces of about 100 px.
    pub fn reach(&self, scale: f32) -> f32 {
        REACH * self.overlap as f32 / scale
    }

    /// The sizes of object, in source pixels, that a pass at `scale` keeps in a plan whose
    /// whole pass is at `whole`: up to its [`Self::reach`] for a finer pass, every size for the
    /// whole pass, and for the large-object pass those the whole pass shows larger than
    /// `largest_object`. Of those, the whole pass's box may hold only a part; the large-object
    /// pass shows them at most at `largest_object`, and its box is joined to the whole pass's
    /// ([`super::nms::joined`]).
    pub fn kept(&self, scale: f32, whole: f32) -> RangeInclusive<f32> {
        if scale > whole {
            0.0..=self.reach(scale)
        } else if scale == whole {
            0.0..=f32::INFINITY
        } else {
            self.largest_object.map_or(f32::INFINITY, |l| l / whole)..=f32::INFINITY
        }
    }

    /// This tiling for a model that takes inputs of `side` model pixels at most: tiles and the
    /// whole pass no larger, and tiles sharing at most half of themselves.
    pub fn within(self, side: u32) -> Self {
        let tile_size = self.tile_size.min(side);
        Self {
            whole_size: self.whole_size.min(side),
            tile_size,
            overlap: self.overlap.min(tile_size / 2),
            ..self
        }
    }

    /// Checks the ranges; returns the first problem, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.whole_size < 32 || self.tile_size < 32 {
            return Err("whole_size and tile_size must be at least 32".into());
        }
        if self.min_object.is_nan() || self.min_object < 1.0 {
            return Err("min_object must be at least 1".into());
        }
        if !(self.overlap as f32 >= 2.0 * self.min_object && 2 * self.overlap <= self.tile_size) {
            return Err(
                "overlap must be at least twice min_object and at most half of tile_size".into(),
            );
        }
        if !(1.0..=8.0).contains(&self.max_scale) {
            return Err("max_scale must be in [1, 8]".into());
        }
        // The large-object pass must show the smallest object it keeps, which the whole pass
        // shows at `largest_object` (at most at `whole_size`), at least at `min_object`.
        if let Some(l) = self.largest_object
            && !(l * l >= self.min_object * self.whole_size as f32 && l <= self.whole_size as f32)
        {
            return Err(
                "largest_object must be at least the square root of min_object × whole_size \
                 and at most whole_size"
                    .into(),
            );
        }
        Ok(())
    }

    /// The passes over a `width × height` image that find every object at least `smallest`
    /// source pixels in size: finest first, then the whole image, then the large-object pass
    /// where the whole pass can show an object larger than `largest_object`.
    pub fn plan(&self, width: u32, height: u32, smallest: f32) -> Plan {
        let long = width.max(height) as f32;
        let whole = self.whole_size as f32 / long;
        let mut scale = (self.min_object / smallest.max(1.0)).min(self.max_scale);
        let mut plan = Vec::new();
        // half a pixel of slack, so that a pass that fits exactly is not tiled for a rounding
        while long * scale > self.whole_size as f32 + 0.5 {
            let side = ((self.tile_size as f32 / scale).round() as u32).max(1);
            let shared = (self.overlap as f32 / scale).round() as u32;
            let (tw, xs) = spans(width, side, shared);
            let (th, ys) = spans(height, side, shared);
            for &y in &ys {
                for &x in &xs {
                    plan.push(Tile {
                        x,
                        y,
                        width: tw,
                        height: th,
                        scale,
                    });
                }
            }
            scale *= self.min_object / self.overlap as f32;
            if scale <= whole {
                scale = whole;
                break;
            }
        }
        let whole_image = |scale| Tile {
            x: 0,
            y: 0,
            width,
            height,
            scale,
        };
        plan.push(whole_image(scale));
        // half a pixel of slack, as above
        if let Some(largest) = self.largest_object
            && long * scale > largest + 0.5
        {
            plan.push(whole_image(largest / long));
        }
        Plan {
            tiles: plan,
            whole: scale,
        }
    }
}

/// Tiles along one axis of `length`: the fewest tiles of at most `side` pixels whose
/// neighbours share at least `shared`, all of one size and spread evenly from edge to edge (a
/// model that takes any input size then wastes nothing on padding). Returns (size, origins).
fn spans(length: u32, side: u32, shared: u32) -> (u32, Vec<u32>) {
    if length <= side {
        return (length, vec![0]);
    }
    let step = side.saturating_sub(shared).max(1);
    let n = (length - shared).div_ceil(step).max(2);
    // one pixel more than the exact share, so that rounding the origins never loses overlap
    let size = ((length + (n - 1) * shared).div_ceil(n) + 1)
        .min(side)
        .min(length);
    let origins = (0..n)
        .map(|i| ((length - size) as u64 * i as u64 / (n - 1) as u64) as u32)
        .collect();
    (size, origins)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::BoxF;

    const PLATES: TilingConfig = TilingConfig {
        whole_size: 640,
        tile_size: 640,
        min_object: 16.0,
        overlap: 128,
        max_scale: 4.0,
        largest_object: None,
    };

    /// CenterFace's tiling.
    const FACES: TilingConfig = TilingConfig {
        min_object: 40.0,
        largest_object: Some(448.0),
        ..ANY_SIZE_TILING
    };

    fn covers(tiles: &[Tile], px: u32, py: u32) -> bool {
        tiles
            .iter()
            .any(|t| px >= t.x && px < t.x + t.width && py >= t.y && py < t.y + t.height)
    }

    #[test]
    fn a_box_is_cut_by_the_edges_a_tile_shares_and_not_by_the_image_border() {
        // the middle tile of three across a 1000 px wide image, at 4x: 1 px of margin
        let tile = Tile {
            x: 300,
            y: 0,
            width: 400,
            height: 200,
            scale: 4.0,
        };
        let cuts =
            |x1: f32, y1: f32, x2: f32, y2: f32| tile.cuts(&BoxF::new(x1, y1, x2, y2), (1000, 200));
        assert!(!cuts(320.0, 50.0, 340.0, 70.0), "inside");
        assert!(cuts(300.0, 50.0, 320.0, 70.0), "on the left edge");
        assert!(cuts(300.8, 50.0, 320.0, 70.0), "within the margin");
        assert!(!cuts(301.5, 50.0, 320.0, 70.0), "beyond the margin");
        assert!(cuts(680.0, 50.0, 703.0, 70.0), "past the right edge");
        assert!(
            !cuts(320.0, 0.0, 340.0, 200.0),
            "top and bottom are the image's"
        );
        let first = Tile { x: 0, ..tile };
        assert!(!first.cuts(&BoxF::new(0.0, 5.0, 9.0, 9.0), (1000, 200)));
    }

    /// Every object from the smallest guaranteed size up is seen at `min_object` or more by a
    /// pass that keeps it: the whole pass, or one whose reach it is within.
    #[test]
    fn every_size_is_kept_by_a_pass_that_sees_it_large_enough() {
        for tiling in [PLATES, ANY_SIZE_TILING, FACES] {
            for (w, h) in [
                (512, 512),
                (1280, 720),
                (1920, 1080),
                (4000, 3000),
                (970, 2204),
            ] {
                let plan = tiling.plan(w, h, 10.0);
                let passes: Vec<f32> = passes(&plan, &tiling).iter().map(|p| p.scale).collect();
                for size in (10..=w.max(h)).step_by(3).map(|s| s as f32) {
                    let kept = passes.iter().any(|&s| {
                        size * s >= tiling.min_object - 0.01
                            && tiling.kept(s, plan.whole).contains(&size)
                    });
                    assert!(
                        kept,
                        "{size} px in {w}x{h} with {tiling:?}: passes {passes:?}"
                    );
                }
            }
        }
    }

    /// Every object the whole pass shows larger than `largest_object`, up to the image's long
    /// side, is kept by the large-object pass, which shows it between `min_object` and
    /// `largest_object`; the smaller ones are the other passes' alone.
    #[test]
    fn a_large_object_is_kept_by_a_pass_that_shows_it_no_larger_than_the_model_boxes_whole() {
        for (w, h) in [(1434, 2333), (4000, 3000), (1280, 720), (300, 200)] {
            let plan = FACES.plan(w, h, 10.0);
            let large = plan.tiles.last().unwrap();
            assert_eq!((large.x, large.y, large.width, large.height), (0, 0, w, h));
            assert!(large.scale < plan.whole, "{w}x{h}: {plan:?}");
            let kept = FACES.kept(large.scale, plan.whole);
            for size in (10..=w.max(h)).step_by(7).map(|s| s as f32) {
                let shown = size * large.scale;
                if size * plan.whole > 448.0 {
                    assert!(kept.contains(&size), "{w}x{h}: {size}");
                    assert!(
                        (FACES.min_object..=448.01).contains(&shown),
                        "{w}x{h}: {size}"
                    );
                } else {
                    assert!(!kept.contains(&size), "{w}x{h}: {size}");
                }
            }
        }
        // the report gives each pass's sizes: up to the reach of a finer pass, none for the
        // whole pass, from 448 px at the whole pass's scale for the large-object pass
        let plan = FACES.plan(1434, 2333, 10.0);
        let reported = passes(&plan, &FACES);
        let [.., finer, whole, large] = reported.as_slice() else {
            panic!("{reported:?}");
        };
        assert_eq!(finer.objects_up_to, Some(FACES.reach(finer.scale)));
        assert_eq!((whole.objects_from, whole.objects_up_to), (None, None));
        assert_eq!(large.objects_from, Some(448.0 / plan.whole));
        assert_eq!(large.objects_up_to, None);
        // the whole pass of a small photo shows nothing larger than largest_object
        let small = FACES.plan(400, 300, 40.0);
        assert_eq!(passes(&small, &FACES).len(), 1, "{small:?}");
        assert!(PLATES.plan(4000, 3000, 20.0).tiles.last().unwrap().scale == 0.16);
    }

    #[test]
    fn an_image_small_enough_for_the_finest_scale_gets_one_pass_at_that_scale() {
        // 20 px plates at 16 px: scale 0.8; 640 × 0.8 fits the whole pass
        assert_eq!(
            PLATES.plan(640, 480, 20.0).tiles,
            vec![Tile {
                x: 0,
                y: 0,
                width: 640,
                height: 480,
                scale: 0.8
            }]
        );
        // faces of 10 px for a model that needs 20: a small image is upscaled twice
        let twenty = TilingConfig {
            min_object: 20.0,
            ..ANY_SIZE_TILING
        };
        let faces = twenty.plan(400, 300, 10.0).tiles;
        assert_eq!(faces.len(), 1);
        assert_eq!(faces[0].scale, 2.0);
    }

    #[test]
    fn the_finest_pass_shows_the_smallest_object_at_the_models_minimum() {
        for (w, h) in [(1280, 720), (1920, 1080), (4000, 3000), (720, 1280)] {
            for smallest in [10.0, 20.0, 40.0] {
                let plan = PLATES.plan(w, h, smallest).tiles;
                let finest = plan.iter().map(|t| t.scale).fold(0.0, f32::max);
                assert!(
                    (finest * smallest - PLATES.min_object).abs() < 1e-3,
                    "{w}x{h} {smallest}"
                );
                // every pixel is inside a tile of the finest pass
                let tiles: Vec<Tile> = plan.iter().copied().filter(|t| t.scale == finest).collect();
                for (px, py) in [
                    (0, 0),
                    (w - 1, h - 1),
                    (w / 2, h / 2),
                    (w - 1, 0),
                    (0, h - 1),
                ] {
                    assert!(covers(&tiles, px, py), "{w}x{h} {smallest}: ({px},{py})");
                }
                // the last pass sees the whole image within whole_size
                let last = plan.last().unwrap();
                assert_eq!((last.width, last.height), (w, h));
                assert!(w.max(h) as f32 * last.scale <= 640.0 + 1e-3);
            }
        }
    }

    #[test]
    fn every_object_size_is_whole_in_some_pass_at_or_above_the_models_minimum() {
        for (w, h) in [
            (1280, 720),
            (1920, 1080),
            (4000, 3000),
            (3000, 4000),
            (8000, 500),
        ] {
            let plan = PLATES.plan(w, h, 20.0);
            let summary = passes(&plan, &PLATES);
            let plan = plan.tiles;
            // pass k sees objects from min_object / s_k up to overlap / s_k (all sizes when
            // it is the whole image): consecutive passes leave no gap
            for pair in summary.windows(2) {
                let largest_fine = PLATES.overlap as f32 / pair[0].scale;
                let smallest_coarse = PLATES.min_object / pair[1].scale;
                assert!(
                    smallest_coarse <= largest_fine + 1e-3,
                    "{w}x{h}: {summary:?}"
                );
            }
            // neighbouring tiles of a pass share at least `overlap` model pixels
            for p in &summary[..summary.len() - 1] {
                let row: Vec<&Tile> = plan
                    .iter()
                    .filter(|t| t.scale == p.scale && t.y == 0)
                    .collect();
                let shared = (PLATES.overlap as f32 / p.scale).round() as u32;
                let side = (PLATES.tile_size as f32 / p.scale).round() as u32;
                assert!(row.iter().all(|t| t.width <= side));
                assert!(
                    row.windows(2)
                        .all(|t| t[0].x + t[0].width >= t[1].x + shared),
                    "{row:?}"
                );
            }
        }
    }

    #[test]
    fn a_1080p_frame_for_20_px_plates_takes_six_tiles_and_a_whole_pass() {
        // at 0.8, 1536 × 864 model pixels: 3 × 2 tiles of at most 640 sharing 128
        let summary = passes(&PLATES.plan(1920, 1080, 20.0), &PLATES);
        assert_eq!(summary.len(), 2, "{summary:?}");
        assert_eq!((summary[0].scale, summary[0].tiles), (0.8, 6));
        assert_eq!(summary[1].tiles, 1);
    }

    #[test]
    fn a_model_with_a_fixed_input_gets_tiles_and_a_whole_pass_no_larger() {
        let large = TilingConfig {
            tile_size: 1536,
            overlap: 400,
            whole_size: 960,
            ..PLATES
        };
        let fitted = large.within(640);
        assert_eq!(
            (fitted.tile_size, fitted.overlap, fitted.whole_size),
            (640, 320, 640)
        );
        assert_eq!(PLATES.within(640), PLATES);
        assert!(fitted.validate().is_ok());
    }

    #[test]
    fn validation_names_the_field() {
        assert!(PLATES.validate().is_ok());
        assert!(ANY_SIZE_TILING.validate().is_ok());
        let bad = TilingConfig {
            overlap: 20,
            ..PLATES
        };
        assert!(bad.validate().unwrap_err().contains("overlap"));
        assert!(FACES.validate().is_ok());
        let too_small = TilingConfig {
            largest_object: Some(100.0),
            ..FACES
        };
        assert!(too_small.validate().unwrap_err().contains("largest_object"));
    }
}
