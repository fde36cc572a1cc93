//! Which parts of an image a detector looks at, and at what scale.
//!
//! A detector sees a whole image downscaled to its working size, which loses small faces and
//! plates in large photos. When the image is much larger than that, the plan adds overlapping
//! tiles taken at full resolution (or at `tile_scale`); the merge of all passes is done by NMS.

use serde::{Deserialize, Serialize};

/// One region of the source image and the scale at which the model sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tile {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    /// Model pixels per source pixel (≤ 1).
    pub scale: f32,
}

/// How to cover an image; every field has a per-family default.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TilingConfig {
    /// Longest side, in model pixels, of the downscaled whole-image pass.
    pub whole_size: u32,
    /// Side of a tile in model pixels.
    pub tile_size: u32,
    /// Tiles are added when the image's longest side exceeds `whole_size × tile_when` / `tile_scale`.
    pub tile_when: f32,
    /// Model pixels per source pixel inside tiles: 1.0 is full resolution.
    pub tile_scale: f32,
    /// Fraction of a tile shared with its neighbour, so objects cut by one tile are whole in another.
    pub overlap: f32,
}

/// Tiling for models that accept any input size (YuNet, CenterFace): a whole pass at 960 px,
/// and full-resolution tiles of 1536 px once that pass shrinks the image by more than 2.
pub const ANY_SIZE_TILING: TilingConfig = TilingConfig {
    whole_size: 960,
    tile_size: 1536,
    tile_when: 2.0,
    tile_scale: 1.0,
    overlap: 0.2,
};

impl Tile {
    pub fn bbox(&self) -> crate::geometry::BoxF {
        crate::geometry::BoxF::new(
            self.x as f32,
            self.y as f32,
            (self.x + self.width) as f32,
            (self.y + self.height) as f32,
        )
    }
}

impl TilingConfig {
    /// Checks the ranges; returns the name of the first field out of range and why.
    pub fn validate(&self) -> Result<(), String> {
        if self.whole_size < 32 || self.tile_size < 32 {
            return Err("whole_size and tile_size must be at least 32".into());
        }
        if !(1.0..=f32::MAX).contains(&self.tile_when) {
            return Err("tile_when must be at least 1.0".into());
        }
        if !(self.tile_scale > 0.0 && self.tile_scale <= 1.0) {
            return Err("tile_scale must be in (0, 1]".into());
        }
        if !(0.0..0.9).contains(&self.overlap) {
            return Err("overlap must be in [0, 0.9)".into());
        }
        Ok(())
    }

    /// The passes over a `width × height` image: the whole image first, then tiles if needed.
    pub fn plan(&self, width: u32, height: u32) -> Vec<Tile> {
        let long = width.max(height) as f32;
        let whole_scale = (self.whole_size as f32 / long).min(1.0);
        let mut plan = vec![Tile {
            x: 0,
            y: 0,
            width,
            height,
            scale: whole_scale,
        }];
        if long * self.tile_scale <= self.whole_size as f32 * self.tile_when {
            return plan;
        }
        let side = ((self.tile_size as f32 / self.tile_scale).round() as u32).max(1);
        let step = ((side as f32 * (1.0 - self.overlap)).round() as u32).max(1);
        for y in starts(height, side, step) {
            for x in starts(width, side, step) {
                plan.push(Tile {
                    x,
                    y,
                    width: side.min(width - x),
                    height: side.min(height - y),
                    scale: self.tile_scale,
                });
            }
        }
        plan
    }
}

/// Tile origins along one axis: the fewest tiles whose neighbours overlap by at least
/// `side - step` pixels, spread evenly from one edge to the other.
fn starts(length: u32, side: u32, step: u32) -> Vec<u32> {
    if length <= side {
        return vec![0];
    }
    let gaps = (length - side).div_ceil(step);
    (0..=gaps)
        .map(|i| ((length - side) as u64 * i as u64 / gaps as u64) as u32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: TilingConfig = TilingConfig {
        whole_size: 640,
        tile_size: 640,
        tile_when: 1.5,
        tile_scale: 1.0,
        overlap: 0.25,
    };

    #[test]
    fn small_images_get_one_full_resolution_pass() {
        assert_eq!(
            CFG.plan(640, 480),
            vec![Tile {
                x: 0,
                y: 0,
                width: 640,
                height: 480,
                scale: 1.0
            }]
        );
        assert_eq!(CFG.plan(900, 600).len(), 1);
    }

    #[test]
    fn large_images_are_covered_by_overlapping_full_resolution_tiles() {
        let plan = CFG.plan(4000, 3000);
        assert!((plan[0].scale - 0.16).abs() < 1e-6);
        let tiles = &plan[1..];
        // every pixel is inside some tile
        for (px, py) in [(0, 0), (3999, 2999), (2000, 1500), (639, 2999), (3999, 0)] {
            assert!(
                tiles
                    .iter()
                    .any(|t| px >= t.x && px < t.x + t.width && py >= t.y && py < t.y + t.height)
            );
        }
        // neighbours overlap by at least a quarter of a tile, and no tile is redundant
        let xs: Vec<u32> = tiles.iter().filter(|t| t.y == 0).map(|t| t.x).collect();
        assert!(xs.windows(2).all(|w| w[1] - w[0] <= 480));
        assert_eq!(xs.len(), 8, "{xs:?}");
        assert!(
            tiles
                .iter()
                .all(|t| t.width == 640 && t.height == 640 && t.scale == 1.0)
        );
    }

    #[test]
    fn tile_scale_trades_tiles_for_resolution() {
        let half = TilingConfig {
            tile_scale: 0.5,
            ..CFG
        };
        assert!(half.plan(4000, 3000).len() < CFG.plan(4000, 3000).len());
        assert!(half.plan(4000, 3000)[1..].iter().all(|t| t.width == 1280));
    }
}
