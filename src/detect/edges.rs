//! The edges of a picture, looked at again with neutral grey beyond them.
//!
//! Detection sees a picture extended by its own mirror image, so that an object cut by the frame
//! shows whole (half real, half reflected). An object close to an edge then has a mirrored twin
//! just beyond it, and the detector can take the pair for something else: on the small-object
//! set, 10 px faces 3 and 16 px below the top edge were missed (the twin upside down, head to
//! head), and a 16 px face cut by the left edge was found as a box shifted half a face down
//! (the twin beside it). Grey beyond the edge shows such an object alone, but hides most of
//! those the edge cuts, which the mirror completes (README, "Tried and not taken"); so the bands
//! along the edges are looked at a second time, with grey beyond the edge, in addition to the
//! mirrored look, where the finest pass upscales ([`super::Detector::edge_plan`]). Plates are
//! not looked at again ([`super::Class::hidden_by_its_mirror`]).
//!
//! The bands of two opposite edges go into one strip, each with its edge towards the middle:
//! bottom band, grey, top band (or right band, grey, left band). A model then runs over one row
//! (or column) of tiles for both.

use image::RgbImage;

use super::sheets::NEUTRAL_GREY as GREY;
use crate::geometry::BoxF;

/// Which two opposite edges a strip holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pair {
    TopAndBottom,
    LeftAndRight,
}

impl Pair {
    pub const BOTH: [Pair; 2] = [Pair::TopAndBottom, Pair::LeftAndRight];

    /// `(width, height)` with the axis across these edges first: rows for top and bottom.
    pub fn across<T>(self, (w, h): (T, T)) -> (T, T) {
        match self {
            Pair::TopAndBottom => (h, w),
            Pair::LeftAndRight => (w, h),
        }
    }

    /// The size of the strip of bands `band` deep, in an image of `size`.
    pub fn strip_size(self, size: (u32, u32), band: u32) -> (u32, u32) {
        let (_, along) = self.across(size);
        self.across((3 * band, along))
    }
}

/// The depth of each band: `depth` rounded up, at most the picture's `extent` across the edges
/// (a picture narrower than two bands has them overlap), at least one pixel.
pub fn band(depth: f32, extent: u32) -> u32 {
    (depth.ceil() as u32).min(extent).max(1)
}

/// A strip of the bands along two opposite edges of a picture, and where they come from.
pub struct Strip {
    pub image: RgbImage,
    pair: Pair,
    /// Depth of each band, and of the grey between them, in pixels.
    band: u32,
    /// Row (or column) of the extended image where the bottom (right) band starts, and where
    /// the top (left) band starts.
    far_from: u32,
    near_from: u32,
}

impl Strip {
    /// The bands of `band` pixels inside the picture's edges `frame` (first and last row, or
    /// column, plus one, of the picture within `extended`), across the whole of `extended`
    /// (the mirrored border kept along them, for objects in a corner), with `band` pixels of grey
    /// between them.
    pub fn new(extended: &RgbImage, pair: Pair, frame: (u32, u32), band: u32) -> Self {
        let (near, far) = frame;
        let band = self::band(band as f32, far - near);
        let (width, height) = pair.strip_size(extended.dimensions(), band);
        let mut image = RgbImage::from_pixel(width, height, GREY);
        let far_from = far - band;
        let mut copy = |from: u32, to: u32| {
            let (x, y, w, h, at) = match pair {
                Pair::TopAndBottom => (0, from, width, band, (0, to)),
                Pair::LeftAndRight => (from, 0, band, height, (to, 0)),
            };
            let part = image::imageops::crop_imm(extended, x, y, w, h);
            image::imageops::replace(&mut image, &*part, at.0 as i64, at.1 as i64);
        };
        copy(far_from, 0);
        copy(near, 2 * band);
        Self {
            image,
            pair,
            band,
            far_from,
            near_from: near,
        }
    }

    /// Whether `b` (strip pixels) comes within `margin` of an end of the strip. The strip ends
    /// where each band ends inside the picture, so such a box holds only the part of an object
    /// that the band shows: the object reaches deeper into the picture, where the passes over
    /// the whole picture can see it whole. Its box is then of that part, and taken for the
    /// whole it could win over the whole object's box: a 24 px face 24–48 px below the top edge
    /// of a 720p frame of the small-object set was boxed 27–40 px, and its chin was left.
    pub fn cuts(&self, b: &BoxF, margin: f32) -> bool {
        let (near, _) = self.pair.across((b.x1, b.y1));
        let (far, _) = self.pair.across((b.x2, b.y2));
        near <= margin || far >= 3.0 * self.band as f32 - margin
    }

    /// Maps a box found on the strip back to the extended image, if its centre lies in a band.
    pub fn to_extended(&self, b: &BoxF) -> Option<BoxF> {
        let (cx, cy) = ((b.x1 + b.x2) / 2.0, (b.y1 + b.y2) / 2.0);
        let (centre, _) = self.pair.across((cx, cy));
        let band = self.band as f32;
        let shift = if centre < band {
            self.far_from as f32
        } else if centre >= 2.0 * band {
            self.near_from as f32 - 2.0 * band
        } else {
            return None;
        };
        let (dx, dy) = self.pair.across((shift, 0.0));
        Some(b.unscale((1.0, 1.0), (dx, dy)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn the_strip_holds_the_bottom_band_grey_and_the_top_band_and_maps_boxes_back() {
        // a 6 px border around a 20 × 40 picture, each row of the picture coloured by its index
        let extended = RgbImage::from_fn(32, 52, |_, y| Rgb([y as u8, 0, 0]));
        let strip = Strip::new(&extended, Pair::TopAndBottom, (6, 46), 5);
        assert_eq!(strip.image.dimensions(), (32, 15));
        let row = |y: u32| strip.image.get_pixel(3, y).0;
        assert_eq!(row(0), [41, 0, 0], "the bottom band's first row");
        assert_eq!(row(4), [45, 0, 0], "the picture's last row");
        assert_eq!(row(7), GREY.0);
        assert_eq!(row(10), [6, 0, 0], "the picture's first row");
        assert_eq!(row(14), [10, 0, 0]);

        let top = strip.to_extended(&BoxF::new(2.0, 10.0, 8.0, 13.0));
        assert_eq!(top, Some(BoxF::new(2.0, 6.0, 8.0, 9.0)));
        let bottom = strip.to_extended(&BoxF::new(2.0, 1.0, 8.0, 5.0));
        assert_eq!(bottom, Some(BoxF::new(2.0, 42.0, 8.0, 46.0)));
        assert_eq!(
            strip.to_extended(&BoxF::new(2.0, 6.0, 8.0, 9.0)),
            None,
            "in the grey"
        );
        // the bands end where the strip does: a box reaching an end is of part of an object
        // deeper in the picture
        assert!(strip.cuts(&BoxF::new(2.0, 11.0, 8.0, 14.6), 0.5));
        assert!(strip.cuts(&BoxF::new(2.0, 0.4, 8.0, 3.0), 0.5));
        assert!(!strip.cuts(&BoxF::new(2.0, 11.0, 8.0, 14.0), 0.5));
        assert!(
            !strip.cuts(&BoxF::new(2.0, 1.0, 8.0, 5.0), 0.5),
            "a box ending at the picture's edge"
        );
    }

    #[test]
    fn the_strip_of_the_sides_holds_the_right_band_grey_and_the_left_band() {
        // columns coloured by their index; the picture spans columns 6..26
        let extended = RgbImage::from_fn(32, 52, |x, _| Rgb([x as u8, 0, 0]));
        let strip = Strip::new(&extended, Pair::LeftAndRight, (6, 26), 4);
        assert_eq!(strip.image.dimensions(), (12, 52));
        let column = |x: u32| strip.image.get_pixel(x, 30).0;
        assert_eq!(column(0), [22, 0, 0]);
        assert_eq!(column(3), [25, 0, 0], "the picture's last column");
        assert_eq!(column(5), GREY.0);
        assert_eq!(column(8), [6, 0, 0], "the picture's first column");
        assert_eq!(
            strip.to_extended(&BoxF::new(8.0, 20.0, 11.0, 30.0)),
            Some(BoxF::new(6.0, 20.0, 9.0, 30.0))
        );
        assert_eq!(
            strip.to_extended(&BoxF::new(1.0, 20.0, 3.0, 30.0)),
            Some(BoxF::new(23.0, 20.0, 25.0, 30.0))
        );
    }

    #[test]
    fn a_picture_lower_than_a_band_is_one_band() {
        let extended = RgbImage::from_fn(10, 10, |_, y| Rgb([y as u8, 0, 0]));
        let strip = Strip::new(&extended, Pair::TopAndBottom, (2, 8), 20);
        assert_eq!(strip.image.dimensions(), (10, 18));
        assert_eq!(strip.image.get_pixel(0, 0).0, [2, 0, 0]);
        assert_eq!(strip.image.get_pixel(0, 12).0, [2, 0, 0]);
        assert_eq!(
            strip.to_extended(&BoxF::new(0.0, 13.0, 2.0, 15.0)),
            Some(BoxF::new(0.0, 3.0, 2.0, 5.0))
        );
    }
}
