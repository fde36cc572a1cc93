//! The top and bottom edges of a picture, looked at again with neutral grey beyond the edge.
//!
//! Detection sees a picture extended by its own mirror image, so that an object cut by the frame
//! shows whole (half real, half reflected). An object that lies whole inside the frame but close
//! to its top or bottom edge then has an upside-down twin just beyond the edge, head to head with
//! it, and the detector takes the pair for something else: on the small-object set, 10 px faces
//! 3 and 16 px below the top edge were missed this way. Grey beyond the edge shows such an
//! object alone, but hides most of those the edge cuts, which the mirror completes (README,
//! "Tried and not taken"); so the bands along those two edges are looked at a second time, with
//! grey beyond the edge, in addition to the mirrored look. Left and right need no second look:
//! there the twin stands upright beside the object, as faces and plates do in a street. Plates
//! are not looked at again ([`super::Class::hidden_by_its_mirror`]).
//!
//! Both bands go into one strip, each with its edge towards the middle: the bottom band, grey,
//! the top band. A model then runs over one row of tiles for both.

use image::{Rgb, RgbImage};

use crate::geometry::BoxF;

/// Grey beyond the edge: carries no edge a detector could take for part of an object.
const GREY: Rgb<u8> = Rgb([114, 114, 114]);

/// The height of each band: `height` rounded up, at most the picture's `rows` (a picture lower
/// than a band is one band), at least one row.
pub fn band(height: f32, rows: u32) -> u32 {
    (height.ceil() as u32).min(rows).max(1)
}

/// A strip of the two edge bands of a picture, and where its rows come from.
pub struct Strip {
    pub image: RgbImage,
    /// Height of each band, and of the grey between them, in pixels.
    band: u32,
    /// Row of the extended image where the picture's bottom band starts, and where its top
    /// band starts.
    bottom_from: u32,
    top_from: u32,
}

impl Strip {
    /// The bands of `band` rows at the top and bottom of `frame` (the picture, within
    /// `extended`), full width of `extended` (the mirrored sides kept, for objects in a corner),
    /// with `band` rows of grey between them. A picture less than `band` rows high is one band.
    pub fn new(extended: &RgbImage, frame: (u32, u32), band: u32) -> Self {
        let (top, bottom) = frame;
        let band = self::band(band as f32, bottom - top);
        let width = extended.width();
        let mut image = RgbImage::from_pixel(width, 3 * band, GREY);
        let bottom_from = bottom - band;
        let copy = |image: &mut RgbImage, from: u32, to: i64| {
            let rows = image::imageops::crop_imm(extended, 0, from, width, band);
            image::imageops::replace(image, &*rows, 0, to);
        };
        copy(&mut image, bottom_from, 0);
        copy(&mut image, top, 2 * band as i64);
        Self {
            image,
            band,
            bottom_from,
            top_from: top,
        }
    }

    /// Maps a box found on the strip back to the extended image, if its centre lies in a band.
    pub fn to_extended(&self, b: &BoxF) -> Option<BoxF> {
        let cy = (b.y1 + b.y2) / 2.0;
        let band = self.band as f32;
        let offset = if cy < band {
            self.bottom_from as f32
        } else if cy >= 2.0 * band {
            self.top_from as f32 - 2.0 * band
        } else {
            return None;
        };
        Some(b.unscale((1.0, 1.0), (0.0, offset)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_strip_holds_the_bottom_band_grey_and_the_top_band_and_maps_boxes_back() {
        // a 6 px border around a 20 × 40 picture, each row of the picture coloured by its index
        let extended = RgbImage::from_fn(32, 52, |_, y| Rgb([y as u8, 0, 0]));
        let strip = Strip::new(&extended, (6, 46), 5);
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
    }

    #[test]
    fn a_picture_lower_than_a_band_is_one_band() {
        let extended = RgbImage::from_fn(10, 10, |_, y| Rgb([y as u8, 0, 0]));
        let strip = Strip::new(&extended, (2, 8), 20);
        assert_eq!(strip.image.dimensions(), (10, 18));
        assert_eq!(strip.image.get_pixel(0, 0).0, [2, 0, 0]);
        assert_eq!(strip.image.get_pixel(0, 12).0, [2, 0, 0]);
        assert_eq!(
            strip.to_extended(&BoxF::new(0.0, 13.0, 2.0, 15.0)),
            Some(BoxF::new(0.0, 3.0, 2.0, 5.0))
        );
    }
}
