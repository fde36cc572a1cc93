//! Many small windows of an image, copied side by side onto a few sheets, so that a model sees
//! them in one run instead of one run each.
//!
//! Re-checking redacted regions looks only around each region; with a fixed-canvas model a
//! window of 60 × 25 px still costs a whole 640 × 640 run. Laid out on a sheet (shelves of
//! windows separated by a gutter of neutral grey, at least as wide as the smallest object the
//! pass looks for, so that no window lends another an object), one run covers dozens of
//! windows. A box found on a sheet belongs to the window holding its centre and is mapped back
//! to the image.

use image::{Rgb, RgbImage};

use crate::geometry::BoxF;

/// A pixel rectangle of the image: x, y, width, height.
pub type Rect = (u32, u32, u32, u32);

/// Where one window of the image lies on its sheet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub window: Rect,
    /// Top-left corner on the sheet.
    pub at: (u32, u32),
}

/// One sheet and the windows on it.
pub struct Sheet {
    pub image: RgbImage,
    pub placements: Vec<Placement>,
}

impl Sheet {
    /// Maps a box found on the sheet back to the image, if its centre lies in a window.
    pub fn to_image(&self, b: &BoxF) -> Option<BoxF> {
        let (cx, cy) = ((b.x1 + b.x2) / 2.0, (b.y1 + b.y2) / 2.0);
        self.placements.iter().find_map(|p| {
            let (x, y, w, h) = p.window;
            let (ax, ay) = (p.at.0 as f32, p.at.1 as f32);
            let inside = cx >= ax && cx < ax + w as f32 && cy >= ay && cy < ay + h as f32;
            inside.then(|| b.unscale((1.0, 1.0), (x as f32 - ax, y as f32 - ay)))
        })
    }
}

/// Grey between windows: carries no edge a detector could take for part of an object.
const GUTTER_GREY: Rgb<u8> = Rgb([114, 114, 114]);

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
            next_y: gutter,
        }
    }

    /// Places `window` on this sheet if there is room left: at the end of a shelf at least as
    /// tall, else on a new shelf below the others.
    fn place(&mut self, window: Rect, side: u32, gutter: u32) -> bool {
        let (_, _, w, h) = window;
        let free = |&(_, height, x): &(u32, u32, u32)| x + w + gutter <= side && h <= height;
        let at = if let Some(shelf) = self.shelves.iter_mut().find(|s| free(s)) {
            let at = (shelf.2, shelf.0);
            shelf.2 += w + gutter;
            at
        } else if self.next_y + h + gutter <= side {
            self.shelves.push((self.next_y, h, gutter + w + gutter));
            let at = (gutter, self.next_y);
            self.next_y += h + gutter;
            at
        } else {
            return false;
        };
        self.placements.push(Placement { window, at });
        true
    }
}

/// The widest and tallest window a sheet of `side` pixels holds with `gutter` pixels around it.
pub fn room(side: u32, gutter: u32) -> u32 {
    side.saturating_sub(2 * gutter)
}

/// Lays out `windows` (pixel rectangles of `img`) on sheets of at most `side` × `side` pixels,
/// tallest first, in shelves, with `gutter` pixels around each window: each window goes to the
/// first shelf of any sheet with room left (the end of a shelf is often wide enough for a
/// shorter window that came later), else onto a new shelf, else onto a new sheet. Windows larger
/// than a sheet are returned apart: the caller runs them on their own.
pub fn lay_out(
    img: &RgbImage,
    windows: &[Rect],
    side: u32,
    gutter: u32,
) -> (Vec<Sheet>, Vec<Rect>) {
    let room = room(side, gutter);
    let (mut order, too_large): (Vec<usize>, Vec<usize>) = (0..windows.len()).partition(|&i| {
        let (_, _, w, h) = windows[i];
        w <= room && h <= room
    });
    order.sort_by_key(|&i| std::cmp::Reverse(windows[i].3));
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
                .map(|p| p.at.0 + p.window.2 + gutter)
                .max()
                .unwrap_or(side);
            let height = placements
                .iter()
                .map(|p| p.at.1 + p.window.3 + gutter)
                .max()
                .unwrap_or(side);
            let mut image = RgbImage::from_pixel(width, height, GUTTER_GREY);
            for p in &placements {
                let (x, y, w, h) = p.window;
                let view = image::imageops::crop_imm(img, x, y, w, h);
                image::imageops::replace(&mut image, &*view, p.at.0 as i64, p.at.1 as i64);
            }
            Sheet { image, placements }
        })
        .collect();
    (sheets, too_large.into_iter().map(|i| windows[i]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_window_fills_the_end_of_an_earlier_shelf_and_windows_never_overlap() {
        let img = RgbImage::new(400, 300);
        // Two shelves of 40 px; the 20 × 10 window fits only at the end of the first one.
        let windows = [(0, 0, 60, 40), (100, 0, 90, 40), (200, 0, 20, 10)];
        let (sheets, too_large) = lay_out(&img, &windows, 100, 5);
        assert!(too_large.is_empty());
        assert_eq!(sheets.len(), 1, "one sheet holds all three");
        let placed = &sheets[0].placements;
        assert_eq!(placed.len(), 3);
        for (i, a) in placed.iter().enumerate() {
            let (ax, ay, aw, ah) = (a.at.0, a.at.1, a.window.2, a.window.3);
            assert!(ax >= 5 && ay >= 5 && ax + aw + 5 <= 100 && ay + ah + 5 <= 100);
            for b in &placed[i + 1..] {
                let (bx, by, bw, bh) = (b.at.0, b.at.1, b.window.2, b.window.3);
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
        let windows = [(10, 20, 50, 30), (300, 200, 40, 60), (100, 100, 390, 10)];
        let (sheets, too_large) = lay_out(&img, &windows, 128, 8);
        assert_eq!(sheets.len(), 1, "both small windows fit one sheet");
        assert_eq!(too_large, [windows[2]]);
        let sheet = &sheets[0];
        assert_eq!(
            sheet.placements.len(),
            2,
            "the window wider than a sheet is left out"
        );
        for p in &sheet.placements {
            let (x, y, w, h) = p.window;
            assert_eq!(
                sheet.image.get_pixel(p.at.0, p.at.1),
                img.get_pixel(x, y),
                "a window's pixels are copied"
            );
            assert_eq!(
                sheet.image.get_pixel(p.at.0 + w - 1, p.at.1 + h - 1),
                img.get_pixel(x + w - 1, y + h - 1)
            );
            assert_eq!(*sheet.image.get_pixel(p.at.0 - 1, p.at.1), GUTTER_GREY);
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
                (p.at.0 + p.window.2) as f32,
                (p.at.1 + p.window.3) as f32,
            )
        };
        assert!(rect(a).intersection(&rect(b)).is_none());
    }

    #[test]
    fn many_windows_fill_several_sheets_without_losing_any() {
        let img = RgbImage::new(1000, 1000);
        let windows: Vec<_> = (0..200)
            .map(|i| ((i * 4) % 900, (i * 7) % 900, 30 + i % 20, 20 + i % 15))
            .collect();
        let (sheets, too_large) = lay_out(&img, &windows, 256, 6);
        assert!(too_large.is_empty());
        let placed: usize = sheets.iter().map(|s| s.placements.len()).sum();
        assert_eq!(placed, windows.len());
        for s in &sheets {
            assert!(s.image.width() <= 256 && s.image.height() <= 256);
            for p in &s.placements {
                assert!(p.at.0 + p.window.2 + 6 <= 256 && p.at.1 + p.window.3 + 6 <= 256);
            }
        }
        assert!(
            sheets.len() < 20,
            "{} sheets for 200 small windows",
            sheets.len()
        );
    }
}
