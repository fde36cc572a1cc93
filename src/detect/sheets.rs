//! Many small windows of an image, each scaled to the pass it is checked at and copied side by
//! side onto a few sheets, so that a model sees them in one run instead of one run each.
//!
//! Re-checking redacted regions looks only around each region, at several scales; a run costs
//! more than its pixels (a window of 60 × 25 px costs a whole 640 × 640 run on a model with a
//! fixed input, and a few milliseconds of fixed cost on any). Laid out on a
//! sheet in model pixels (shelves of windows separated by a gutter of neutral grey, half as wide
//! as the smallest object the model finds, see [`gutter`]), one run covers dozens of windows,
//! whatever scale each was taken at. A box found on a sheet belongs to the window holding its
//! centre and most of its area, and is mapped back to the image; one made across a gutter of
//! two windows' pixels is dropped, so that no window lends another an object.

use image::{Rgb, RgbImage};

use super::tiles::Tile;
use crate::geometry::BoxF;

/// The share of a box found on a sheet that must lie on the window holding its centre (see
/// [`Sheet::to_image`]).
const ON_WINDOW: f32 = 2.0 / 3.0;

/// The gutter between windows on a sheet, in model pixels, for a model whose smallest object
/// is `min_object` model pixels: half of it. A grey gutter keeps each window's content apart
/// (no hard seam between two windows' pixels); a box reaching across one into a neighbour is
/// dropped ([`Sheet::to_image`]), so it need not be as wide as an object. A neighbour this
/// close still lends a window some context: on the small-object set the background blurred
/// rose from 0.72 to 0.75 % with the defaults and from 0.70 to 0.81 % with a 48 px plan, for a
/// re-check 3 points of detection cheaper (README, "Verify").
pub fn gutter(min_object: f32) -> u32 {
    (min_object / 2.0).ceil() as u32
}

/// Where one window of the image lies on its sheet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    /// The window in source pixels, and the scale it is seen at.
    pub window: Tile,
    /// Top-left corner on the sheet.
    pub at: (u32, u32),
}

impl Placement {
    /// Size on the sheet: the window's size times its scale.
    pub fn size(&self) -> (u32, u32) {
        self.window.model_size()
    }
}

/// One sheet and the windows on it.
pub struct Sheet {
    pub image: RgbImage,
    pub placements: Vec<Placement>,
}

impl Sheet {
    /// Maps a box found on the sheet back to the image, if it lies on a window: its centre in
    /// the window, and at least `ON_WINDOW` of its area on it. The model saw only the window's
    /// pixels of the image; a box reaching further across the gutter is made of grey and of a
    /// neighbouring window's pixels, not an object of this one.
    pub fn to_image(&self, b: &BoxF) -> Option<BoxF> {
        let (cx, cy) = ((b.x1 + b.x2) / 2.0, (b.y1 + b.y2) / 2.0);
        let on_sheet = |p: &Placement| {
            let (w, h) = p.size();
            let (x, y) = (p.at.0 as f32, p.at.1 as f32);
            BoxF::new(x, y, x + w as f32, y + h as f32)
        };
        // Windows never overlap: at most one holds the centre, and it alone decides.
        let p = self.placements.iter().find(|p| {
            let r = on_sheet(p);
            cx >= r.x1 && cx < r.x2 && cy >= r.y1 && cy < r.y2
        })?;
        let r = on_sheet(p);
        let on = r.intersection(b).map_or(0.0, |i| i.area());
        (on >= ON_WINDOW * b.area()).then(|| {
            let scale = (
                r.width() / p.window.width as f32,
                r.height() / p.window.height as f32,
            );
            let offset = (
                p.window.x as f32 - r.x1 / scale.0,
                p.window.y as f32 - r.y1 / scale.1,
            );
            b.unscale(scale, offset)
        })
    }
}

/// Grey between windows (and beyond a picture's edges, see [`super::edges`]): carries no edge a
/// detector could take for part of an object.
pub(super) const NEUTRAL_GREY: Rgb<u8> = Rgb([114, 114, 114]);

/// Windows start at multiples of this many model pixels. A model's output grid (a stride of 4
/// to 32 pixels) then falls on a window taken at a whole-number scale as it fell on the same
/// pixels in the detection pass, whose tiles start at whole source pixels; a face's score
/// depends on where the grid falls on it.
pub(super) const ALIGN: u32 = 8;

fn aligned(v: u32) -> u32 {
    v.div_ceil(ALIGN) * ALIGN
}

/// The shelves of one sheet being filled.
struct Layout {
    placements: Vec<Placement>,
    /// Top, height and next free x of each shelf.
    shelves: Vec<(u32, u32, u32)>,
    /// Top of the next shelf.
    next_y: u32,
}

impl Layout {
    fn new(gutter: u32) -> Self {
        Self {
            placements: Vec::new(),
            shelves: Vec::new(),
            next_y: aligned(gutter),
        }
    }

    /// Places `window` on this sheet if there is room left: at the end of a shelf at least as
    /// tall, else on a new shelf below the others.
    fn place(&mut self, window: Tile, side: u32, gutter: u32) -> bool {
        let (w, h) = window.model_size();
        let free = |&(_, height, x): &(u32, u32, u32)| x + w + gutter <= side && h <= height;
        let at = if let Some(shelf) = self.shelves.iter_mut().find(|s| free(s)) {
            let at = (shelf.2, shelf.0);
            shelf.2 = aligned(shelf.2 + w + gutter);
            at
        } else if self.next_y + h + gutter <= side {
            let x = aligned(gutter);
            self.shelves.push((self.next_y, h, aligned(x + w + gutter)));
            let at = (x, self.next_y);
            self.next_y = aligned(self.next_y + h + gutter);
            at
        } else {
            return false;
        };
        self.placements.push(Placement { window, at });
        true
    }
}

/// The widest and tallest window a sheet of `side` pixels holds with `gutter` pixels around it:
/// the first window of a sheet starts at the gutter rounded up to `ALIGN`, and a gutter
/// follows the last.
pub fn room(side: u32, gutter: u32) -> u32 {
    side.saturating_sub(aligned(gutter) + gutter)
}

/// Lays out `windows` (rectangles of an image, each with the scale it is to be seen at) on
/// sheets of at most `side` × `side` model pixels, tallest first, in shelves, with `gutter`
/// pixels around each window: each window goes to the first shelf of any sheet with room left
/// (the end of a shelf is often wide enough for a shorter window that came later), else onto a
/// new shelf, else onto a new sheet. `pixels` gives a window's pixels at its scale. Windows
/// larger than a sheet are returned apart: the caller runs them on their own.
pub fn lay_out(
    windows: &[Tile],
    side: u32,
    gutter: u32,
    mut pixels: impl FnMut(&Tile) -> RgbImage,
) -> (Vec<Sheet>, Vec<Tile>) {
    let room = room(side, gutter);
    let (mut order, too_large): (Vec<usize>, Vec<usize>) = (0..windows.len()).partition(|&i| {
        let (w, h) = windows[i].model_size();
        w <= room && h <= room
    });
    order.sort_by_key(|&i| std::cmp::Reverse(windows[i].model_size().1));
    let mut layouts: Vec<Layout> = Vec::new();
    for i in order {
        // `any` stops at the first sheet that takes the window.
        if !layouts
            .iter_mut()
            .any(|l| l.place(windows[i], side, gutter))
        {
            let mut fresh = Layout::new(gutter);
            let placed = fresh.place(windows[i], side, gutter);
            // Never false: the window was kept because it fits a sheet. Checked, as a window left
            // off a sheet would go unchecked.
            assert!(placed, "a window that fits a sheet fits an empty one");
            layouts.push(fresh);
        }
    }
    let sheets = layouts
        .into_iter()
        .map(|Layout { placements, .. }| {
            let width = placements
                .iter()
                .map(|p| p.at.0 + p.size().0 + gutter)
                .max()
                .unwrap_or(side);
            let height = placements
                .iter()
                .map(|p| p.at.1 + p.size().1 + gutter)
                .max()
                .unwrap_or(side);
            let mut image = RgbImage::from_pixel(width, height, NEUTRAL_GREY);
            for p in &placements {
                let view = pixels(&p.window);
                debug_assert_eq!(view.dimensions(), p.size());
                image::imageops::replace(&mut image, &view, p.at.0 as i64, p.at.1 as i64);
            }
            Sheet { image, placements }
        })
        .collect();
    (sheets, too_large.into_iter().map(|i| windows[i]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(x: u32, y: u32, width: u32, height: u32, scale: f32) -> Tile {
        Tile {
            x,
            y,
            width,
            height,
            scale,
        }
    }

    /// A window's pixels at its scale, resized by nearest neighbour.
    fn pixels_of(img: &RgbImage) -> impl FnMut(&Tile) -> RgbImage + '_ {
        |t| {
            let (w, h) = t.model_size();
            let crop = image::imageops::crop_imm(img, t.x, t.y, t.width, t.height).to_image();
            image::imageops::resize(&crop, w, h, image::imageops::FilterType::Nearest)
        }
    }

    #[test]
    fn a_short_window_fills_the_end_of_an_earlier_shelf_and_windows_never_overlap() {
        let img = RgbImage::new(400, 300);
        // Two shelves of 40 px; the 20 × 10 window fits only at the end of the first one.
        let windows = [
            window(0, 0, 60, 40, 1.0),
            window(100, 0, 90, 40, 1.0),
            window(200, 0, 20, 10, 1.0),
        ];
        let (sheets, too_large) = lay_out(&windows, 112, 5, pixels_of(&img));
        assert!(too_large.is_empty());
        assert_eq!(sheets.len(), 1, "one sheet holds all three");
        let placed = &sheets[0].placements;
        assert_eq!(placed.len(), 3);
        for (i, a) in placed.iter().enumerate() {
            let ((ax, ay), (aw, ah)) = (a.at, a.size());
            assert!(ax >= 5 && ay >= 5 && ax + aw + 5 <= 112 && ay + ah + 5 <= 112);
            assert!(ax % ALIGN == 0 && ay % ALIGN == 0, "{a:?} is not aligned");
            for b in &placed[i + 1..] {
                let ((bx, by), (bw, bh)) = (b.at, b.size());
                let apart = ax + aw + 5 <= bx
                    || bx + bw + 5 <= ax
                    || ay + ah + 5 <= by
                    || by + bh + 5 <= ay;
                assert!(apart, "{a:?} and {b:?} are not a gutter apart");
            }
        }
    }

    #[test]
    fn windows_are_copied_apart_and_boxes_map_back_to_the_image() {
        let img = RgbImage::from_fn(400, 300, |x, y| Rgb([x as u8, y as u8, 9]));
        let windows = [
            window(10, 20, 50, 30, 1.0),
            window(300, 200, 40, 60, 1.0),
            window(100, 100, 390, 10, 1.0),
        ];
        let (sheets, too_large) = lay_out(&windows, 128, 8, pixels_of(&img));
        assert_eq!(sheets.len(), 1, "both small windows fit one sheet");
        assert_eq!(too_large, [windows[2]]);
        let sheet = &sheets[0];
        assert_eq!(
            sheet.placements.len(),
            2,
            "the window wider than a sheet is left out"
        );
        for p in &sheet.placements {
            let Tile {
                x,
                y,
                width: w,
                height: h,
                ..
            } = p.window;
            assert_eq!(
                sheet.image.get_pixel(p.at.0, p.at.1),
                img.get_pixel(x, y),
                "a window's pixels are copied"
            );
            assert_eq!(
                sheet.image.get_pixel(p.at.0 + w - 1, p.at.1 + h - 1),
                img.get_pixel(x + w - 1, y + h - 1)
            );
            assert_eq!(*sheet.image.get_pixel(p.at.0 - 1, p.at.1), NEUTRAL_GREY);
            // A box in the middle of the window maps back onto the same pixels of the image.
            let found = BoxF::new(
                p.at.0 as f32 + 5.0,
                p.at.1 as f32 + 5.0,
                p.at.0 as f32 + 15.0,
                p.at.1 as f32 + 12.0,
            );
            let back = sheet.to_image(&found).unwrap();
            assert_eq!(
                back,
                BoxF::new(
                    x as f32 + 5.0,
                    y as f32 + 5.0,
                    x as f32 + 15.0,
                    y as f32 + 12.0
                )
            );
        }
        assert_eq!(
            sheet.to_image(&BoxF::new(0.0, 0.0, 4.0, 4.0)),
            None,
            "in the gutter"
        );
        // No two windows overlap, gutters included.
        let (a, b) = (sheet.placements[0], sheet.placements[1]);
        let rect = |p: Placement| {
            BoxF::new(
                p.at.0 as f32 - 8.0,
                p.at.1 as f32 - 8.0,
                (p.at.0 + p.size().0) as f32,
                (p.at.1 + p.size().1) as f32,
            )
        };
        assert!(rect(a).intersection(&rect(b)).is_none());
    }

    #[test]
    fn a_box_reaching_across_the_gutter_is_no_object_of_its_window() {
        let img = RgbImage::new(400, 300);
        let windows = [window(0, 0, 40, 40, 1.0), window(100, 0, 40, 40, 1.0)];
        let (sheets, _) = lay_out(&windows, 256, 8, pixels_of(&img));
        let sheet = &sheets[0];
        let (left, right) = (sheet.placements[0].at, sheet.placements[1].at);
        assert_eq!(left.1, right.1, "side by side on one shelf");
        let (x, y) = (left.0 as f32, left.1 as f32);
        // Centred in the left window, three quarters on it: overhanging its edge a little.
        assert!(
            sheet
                .to_image(&BoxF::new(x + 10.0, y, x + 50.0, y + 40.0))
                .is_some()
        );
        // Centred in the left window, but two fifths of it the gutter and the right window.
        let across = BoxF::new(x, y, right.0 as f32 + 20.0, y + 40.0);
        assert!((across.x1 + across.x2) / 2.0 < x + 40.0);
        assert_eq!(sheet.to_image(&across), None);
    }

    #[test]
    fn windows_of_different_scales_share_a_sheet_at_their_own_scale() {
        let img = RgbImage::from_fn(400, 300, |x, y| Rgb([x as u8, y as u8, 7]));
        let windows = [window(10, 20, 30, 20, 4.0), window(200, 100, 60, 40, 0.5)];
        let (sheets, too_large) = lay_out(&windows, 256, 10, pixels_of(&img));
        assert!(too_large.is_empty());
        assert_eq!(sheets.len(), 1, "one sheet for both scales");
        let sheet = &sheets[0];
        for p in &sheet.placements {
            let t = p.window;
            assert_eq!(
                p.size(),
                (
                    (t.width as f32 * t.scale) as u32,
                    (t.height as f32 * t.scale) as u32
                )
            );
            // The window's last model pixel shows its last source pixel.
            assert_eq!(
                sheet
                    .image
                    .get_pixel(p.at.0 + p.size().0 - 1, p.at.1 + p.size().1 - 1),
                img.get_pixel(t.x + t.width - 1, t.y + t.height - 1)
            );
            // A box covering the window on the sheet covers it in the image.
            let on_sheet = BoxF::new(
                p.at.0 as f32,
                p.at.1 as f32,
                (p.at.0 + p.size().0) as f32,
                (p.at.1 + p.size().1) as f32,
            );
            assert_eq!(sheet.to_image(&on_sheet), Some(t.bbox()));
        }
    }

    #[test]
    fn every_window_within_the_room_fits_an_empty_sheet_whatever_the_gutter() {
        // The models' gutters (20 px for CenterFace, 28 for platedet) are not multiples of
        // ALIGN: a window as large as the room once failed to fit a fresh sheet.
        let img = RgbImage::new(700, 700);
        for (side, gutter) in [(640, 28), (640, 20), (640, 24), (112, 5), (64, 0)] {
            let room = room(side, gutter);
            for (w, h) in [(room, room), (1, room), (room, 1), (room + 1, 1)] {
                let windows = [window(0, 0, w, h, 1.0)];
                let (sheets, too_large) = lay_out(&windows, side, gutter, pixels_of(&img));
                let fits = w <= room && h <= room;
                assert_eq!(
                    sheets.len(),
                    usize::from(fits),
                    "{w} × {h} on {side} / {gutter}"
                );
                assert_eq!(too_large.len(), usize::from(!fits));
                for p in sheets.iter().flat_map(|s| &s.placements) {
                    assert!(p.at.0 + p.size().0 + gutter <= side);
                    assert!(p.at.1 + p.size().1 + gutter <= side);
                }
            }
        }
    }

    #[test]
    fn many_windows_fill_several_sheets_without_losing_any() {
        let img = RgbImage::new(1000, 1000);
        let windows: Vec<_> = (0..200)
            .map(|i| window((i * 4) % 900, (i * 7) % 900, 30 + i % 20, 20 + i % 15, 1.0))
            .collect();
        let (sheets, too_large) = lay_out(&windows, 256, 6, pixels_of(&img));
        assert!(too_large.is_empty());
        let placed: usize = sheets.iter().map(|s| s.placements.len()).sum();
        assert_eq!(placed, windows.len());
        for s in &sheets {
            assert!(s.image.width() <= 256 && s.image.height() <= 256);
            for p in &s.placements {
                assert!(p.at.0 + p.size().0 + 6 <= 256 && p.at.1 + p.size().1 + 6 <= 256);
            }
        }
        assert!(
            sheets.len() < 20,
            "{} sheets for 200 small windows",
            sheets.len()
        );
    }
}
