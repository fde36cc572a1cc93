//! The re-check's detection: a detector run again only in windows around redacted regions,
//! in the passes of its tile plan that could see each again, the windows gathered into as few
//! runs as they allow (pieces of a tile, or [`sheets`] of windows side by side).

use image::RgbImage;

use super::tiles::{Plan, Tile, TilingConfig};
use super::views::View;
use super::{Candidate, Class, DetectError, Detection, Detector, Found, Thresholds, sheets};
use crate::geometry::BoxF;

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
/// apart do not make the model look at everything between them (a face and a false box in the
/// far corner of a tile: the whole tile, where the face's span is a tenth of it).
fn spans(windows: Vec<BoxF>) -> Vec<BoxF> {
    merged(windows, |a, b| {
        a.union(b).area() <= SPAN_SHARING * (a.area() + b.area())
    })
}

/// The part of `tile` that holds `span` (a group of windows, see [`spans`]), if they meet: a
/// model that takes any input size need not look at the rest of the tile. The part starts
/// where the tile's own grid of [`sheets::ALIGN`] model pixels falls, so that the model's
/// output grid lies on the pixels as it did in detection.
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

/// A region the re-check looks at, and the object whose redaction it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Redacted {
    pub object: BoxF,
    pub region: BoxF,
}

impl Detector {
    /// Looks again, at `thresholds`, only around the `redacted` regions (each grown into a
    /// window by [`Class::recheck_reach`] of its size on every side), in the passes of several
    /// tiles that `rechecked_at` picks for each: a cheap check of redacted regions. A pass of
    /// one tile sees the whole image in one run, and the re-check runs it whole
    /// ([`Self::detect_in_one_run`]).
    ///
    /// Each window goes to the first tile of a pass that holds it whole (the tiles overlap, so
    /// most windows have one), and only a window that no tile holds is cut by the tiles it
    /// reaches. Within a tile, overlapping windows are merged while their union fits on a
    /// sheet; a tile mostly covered by windows is run in pieces, over the parts of it its
    /// windows span (`spans`, `spanned`); the other windows, of every pass, are scaled to their
    /// pass and laid out together on sheets ([`sheets`]), one run each.
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
        // The passes of one tile are run whole (`detect_in_one_run`), not over windows.
        let mut passes: Vec<&Tile> = plan.tiles.iter().filter(|t| !plan.in_one_run(t)).collect();
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
        let mut pieces = Vec::new();
        let mut windows_at_scale: Vec<Tile> = Vec::new();
        for (tile, windows) in plan.tiles.iter().zip(per_tile) {
            if windows.is_empty() {
                continue;
            }
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
            if covered >= 0.5 * tile_box.area() {
                pieces.extend(spans(windows).iter().filter_map(|span| spanned(tile, span)));
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
        let mut alone = pieces;
        for (windows, mirrored) in [(both_ways, true), (one_way, false)] {
            let (laid, too_large) =
                sheets::lay_out(&windows, side, gutter, |w| preparer.pixels(img, w));
            sheets.extend(laid.into_iter().map(|sheet| (sheet, mirrored)));
            // Windows too large for a sheet run on their own.
            alone.extend(too_large);
        }
        let mut found = Found::default();
        // Windows are cut to their regions on purpose: none of their finds counts as cut.
        if !alone.is_empty() {
            for (view, picture) in settings.views(img, &alone) {
                for tile in alone.iter().filter(|t| settings.looks(view, t)) {
                    let every = 0.0..=f32::INFINITY;
                    let on_tile =
                        self.run_tile(&picture, &view.tile(tile), thresholds, None, every)?;
                    found
                        .whole
                        .extend(on_tile.into_iter().map(|c| view.back(c)));
                }
            }
        }
        for (sheet, mirrored) in &sheets {
            let on_sheet = self.on_sheet(&sheet.image, thresholds.floor(None), *mirrored)?;
            let in_image = on_sheet
                .into_iter()
                .filter_map(|c| sheet.to_image(&c.bbox).map(|bbox| Candidate { bbox, ..c }));
            found.whole.extend(self.kept(in_image, thresholds, None));
        }
        Ok(self.finish(img, found))
    }

    /// Looks again, at `thresholds`, at all of `img` in the passes of one tile that
    /// `rechecked_at` picks for some of the `redacted` regions, as detection of `img` runs
    /// them: one model run each, over the whole image, with the sizes each pass keeps and the
    /// thresholds for objects the frame cuts, the large-object pass's finds joined to the
    /// others' (`Found`). A window shows a large blurred head less of what lies around it than
    /// the whole picture does (t1.jpg's in a 1280 px copy: 0.108 in its window, 0.167 in the
    /// whole picture, where the threshold is 0.15), and two blurred heads side by side can be
    /// scored as one larger face that neither window holds (t1.jpg: 0.19).
    ///
    /// `img` is the published picture itself, with no mirrored border: a border changes the
    /// scale of a pass planned for the whole image, and with it the scores (t1.jpg's blurred
    /// head in a 1798 px copy: 0.16 at the copy's own coarse scale, none at 0.1125 or more
    /// with the border), and whoever looks at the copy sees it without one.
    pub fn detect_in_one_run(
        &mut self,
        img: &RgbImage,
        redacted: &[Redacted],
        thresholds: Thresholds,
    ) -> Result<Vec<Detection>, DetectError> {
        let plan = self.plan(img.width(), img.height());
        let (tiling, class) = (self.settings.tiling, self.class);
        let image = BoxF::frame(img.dimensions());
        let looked_at = |t: &&Tile| {
            plan.in_one_run(t)
                && redacted
                    .iter()
                    .any(|r| rechecked_at(class, &tiling, &plan, r, &image, t))
        };
        let plan = Plan {
            tiles: plan.tiles.iter().filter(looked_at).copied().collect(),
            whole: plan.whole,
        };
        let mut found = Found::default();
        for (view, picture) in self.settings.views(img, &plan.tiles) {
            let frame = view.map(image);
            self.run_plan(
                &picture,
                (thresholds, Some(&frame)),
                &plan,
                view,
                &mut found,
            )?;
        }
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::tiles;

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
}
