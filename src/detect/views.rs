//! The ways a detector looks at a picture: as drawn and, for models that are not symmetric
//! (see [`super::Class::looked_at_mirrored`]), mirrored left to right. Every pass that looks
//! both ways runs over each [`View`] and maps what it finds back to the picture as drawn, so
//! detection, the re-check's lone tiles and its sheets share one rule.

use std::borrow::Cow;

use image::RgbImage;

use super::Candidate;
use super::tiles::Tile;
use crate::geometry::BoxF;

/// One way of looking at a picture `width` pixels wide.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum View {
    AsDrawn,
    Mirrored { width: u32 },
}

impl View {
    /// The views of `img`, each with the picture it searches: `img` itself, then, where
    /// `mirrored`, `img` mirrored left to right.
    pub fn of(img: &RgbImage, mirrored: bool) -> Vec<(View, Cow<'_, RgbImage>)> {
        let mut views = vec![(View::AsDrawn, Cow::Borrowed(img))];
        if mirrored {
            let width = img.width();
            let flipped = image::imageops::flip_horizontal(img);
            views.push((View::Mirrored { width }, Cow::Owned(flipped)));
        }
        views
    }

    /// A box between the picture as drawn and this view's picture, either way (mirroring
    /// twice gives the box itself).
    pub fn map(self, b: BoxF) -> BoxF {
        match self {
            View::AsDrawn => b,
            View::Mirrored { width } => b.mirrored(width as f32),
        }
    }

    /// A candidate found in this view, in the picture as drawn.
    pub fn back(self, c: Candidate) -> Candidate {
        Candidate {
            bbox: self.map(c.bbox),
            ..c
        }
    }

    /// The tile of this view's picture that shows what `tile` shows of the picture as drawn.
    pub fn tile(self, tile: &Tile) -> Tile {
        match self {
            View::AsDrawn => *tile,
            View::Mirrored { width } => Tile {
                x: width - tile.x - tile.width,
                ..*tile
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mirrored_view_searches_the_flipped_picture_and_maps_boxes_and_tiles_back() {
        let mut img = RgbImage::new(10, 4);
        img.put_pixel(1, 2, image::Rgb([255, 0, 0]));
        let views = View::of(&img, true);
        assert_eq!(views.len(), 2);
        let (view, picture) = &views[1];
        assert_eq!(*view, View::Mirrored { width: 10 });
        assert_eq!(picture.get_pixel(8, 2).0, [255, 0, 0]);

        // The red pixel's box in the mirrored picture maps back onto the pixel as drawn.
        let found = Candidate {
            bbox: BoxF::new(8.0, 2.0, 9.0, 3.0),
            score: 0.5,
        };
        let back = view.back(found);
        assert_eq!(back.bbox, BoxF::new(1.0, 2.0, 2.0, 3.0));
        assert_eq!(back.score, 0.5);

        // A tile over columns 0..3 of the picture is columns 7..10 of the mirrored one.
        let tile = Tile {
            x: 0,
            y: 1,
            width: 3,
            height: 2,
            scale: 2.0,
        };
        assert_eq!(view.tile(&tile), Tile { x: 7, ..tile });
        assert_eq!(View::AsDrawn.tile(&tile), tile);
        assert_eq!(View::of(&img, false).len(), 1);
    }
}
