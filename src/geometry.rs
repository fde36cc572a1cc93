//! Axis-aligned boxes in image pixels, shared by detection (NMS, tiling) and redaction.

use serde::{Deserialize, Serialize};

/// A box as `[x1, y1, x2, y2]` in pixels of the (orientation-corrected) source image.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(into = "[f32; 4]", from = "[f32; 4]")]
pub struct BoxF {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

impl From<BoxF> for [f32; 4] {
    fn from(b: BoxF) -> Self {
        [b.x1, b.y1, b.x2, b.y2]
    }
}

impl From<[f32; 4]> for BoxF {
    fn from(a: [f32; 4]) -> Self {
        BoxF::new(a[0], a[1], a[2], a[3])
    }
}

impl BoxF {
    pub fn new(x1: f32, y1: f32, x2: f32, y2: f32) -> Self {
        Self { x1, y1, x2, y2 }
    }

    /// The frame of a whole `(width, height)` image.
    pub fn frame((width, height): (u32, u32)) -> Self {
        Self::new(0.0, 0.0, width as f32, height as f32)
    }

    pub fn width(&self) -> f32 {
        (self.x2 - self.x1).max(0.0)
    }

    pub fn height(&self) -> f32 {
        (self.y2 - self.y1).max(0.0)
    }

    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }

    /// Intersection over union; 0 for disjoint or empty boxes.
    pub fn iou(&self, other: &BoxF) -> f32 {
        let inter = self.intersection(other).map_or(0.0, |b| b.area());
        let union = self.area() + other.area() - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }

    /// The overlap of two boxes, if they overlap.
    pub fn intersection(&self, other: &BoxF) -> Option<BoxF> {
        let b = BoxF::new(
            self.x1.max(other.x1),
            self.y1.max(other.y1),
            self.x2.min(other.x2),
            self.y2.min(other.y2),
        );
        (b.x2 > b.x1 && b.y2 > b.y1).then_some(b)
    }

    /// Whether `other` lies entirely within this box.
    pub fn contains(&self, other: &BoxF) -> bool {
        self.x1 <= other.x1 && self.y1 <= other.y1 && other.x2 <= self.x2 && other.y2 <= self.y2
    }

    /// The largest share of the box's width or height that lies beyond `frame`: 0 for a box
    /// inside it, 0.5 for one whose middle is on its edge.
    pub fn share_outside(&self, frame: &BoxF) -> f32 {
        let beyond = |before: f32, after: f32, len: f32| {
            if len > 0.0 {
                ((before.max(0.0) + after.max(0.0)) / len).min(1.0)
            } else {
                0.0
            }
        };
        let x = beyond(frame.x1 - self.x1, self.x2 - frame.x2, self.width());
        let y = beyond(frame.y1 - self.y1, self.y2 - frame.y2, self.height());
        x.max(y)
    }

    /// The smallest box holding both.
    pub fn union(&self, other: &BoxF) -> BoxF {
        BoxF::new(
            self.x1.min(other.x1),
            self.y1.min(other.y1),
            self.x2.max(other.x2),
            self.y2.max(other.y2),
        )
    }

    /// Grows the box by `fraction` of its width (height) on the left and right (top and bottom).
    pub fn grow(&self, fraction: f32) -> BoxF {
        self.grown_by(self.width() * fraction, self.height() * fraction)
    }

    /// Grows the box by `dx` pixels on the left and right and `dy` on the top and bottom.
    pub fn grown_by(&self, dx: f32, dy: f32) -> BoxF {
        BoxF::new(self.x1 - dx, self.y1 - dy, self.x2 + dx, self.y2 + dy)
    }

    /// The box in the image mirrored left to right, `width` wide (and back again: mirroring
    /// twice gives the box itself).
    pub fn mirrored(&self, width: f32) -> BoxF {
        BoxF::new(width - self.x2, self.y1, width - self.x1, self.y2)
    }

    /// Maps a box from a scaled, shifted frame back: `source = offset + frame / scale`.
    pub fn unscale(&self, (sx, sy): (f32, f32), (offset_x, offset_y): (f32, f32)) -> BoxF {
        BoxF::new(
            offset_x + self.x1 / sx,
            offset_y + self.y1 / sy,
            offset_x + self.x2 / sx,
            offset_y + self.y2 / sy,
        )
    }

    /// The whole-pixel rectangle `(x, y, w, h)` covering the box, clipped to `width × height`;
    /// `None` when nothing of it lies inside the image.
    pub fn pixel_rect(&self, width: u32, height: u32) -> Option<(u32, u32, u32, u32)> {
        let x1 = self.x1.floor().max(0.0) as u32;
        let y1 = self.y1.floor().max(0.0) as u32;
        let x2 = (self.x2.ceil().max(0.0) as u32).min(width);
        let y2 = (self.y2.ceil().max(0.0) as u32).min(height);
        (x2 > x1 && y2 > y1).then(|| (x1, y1, x2 - x1, y2 - y1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_box_mirrored_left_to_right_keeps_its_rows_and_mirrors_back_to_itself() {
        let b = BoxF::new(-3.0, 5.0, 12.0, 20.0); // reaching 3 px past the left edge
        let m = b.mirrored(100.0);
        assert_eq!(m, BoxF::new(88.0, 5.0, 103.0, 20.0));
        assert_eq!(m.mirrored(100.0), b);
    }

    #[test]
    fn share_outside_is_the_larger_share_of_width_or_height_beyond_the_frame() {
        let frame = BoxF::new(0.0, 0.0, 100.0, 100.0);
        assert_eq!(BoxF::new(10.0, 10.0, 20.0, 20.0).share_outside(&frame), 0.0);
        assert_eq!(
            BoxF::new(-5.0, 10.0, 15.0, 20.0).share_outside(&frame),
            0.25
        );
        assert_eq!(
            BoxF::new(90.0, 95.0, 110.0, 105.0).share_outside(&frame),
            0.5
        );
        assert_eq!(
            BoxF::new(-10.0, -10.0, 110.0, 50.0).share_outside(&frame),
            20.0 / 120.0
        );
        assert_eq!(
            BoxF::new(200.0, 0.0, 210.0, 10.0).share_outside(&frame),
            1.0
        );
    }

    #[test]
    fn iou_of_identical_disjoint_and_half_overlapping_boxes() {
        let a = BoxF::new(0.0, 0.0, 10.0, 10.0);
        assert_eq!(a.iou(&a), 1.0);
        assert_eq!(a.iou(&BoxF::new(20.0, 20.0, 30.0, 30.0)), 0.0);
        let half = a.iou(&BoxF::new(5.0, 0.0, 15.0, 10.0));
        assert!((half - 50.0 / 150.0).abs() < 1e-6);
    }

    #[test]
    fn intersection_and_union() {
        let a = BoxF::new(0.0, 0.0, 10.0, 10.0);
        assert_eq!(
            a.intersection(&BoxF::new(5.0, 5.0, 20.0, 20.0)),
            Some(BoxF::new(5.0, 5.0, 10.0, 10.0))
        );
        assert_eq!(a.intersection(&BoxF::new(10.0, 0.0, 20.0, 10.0)), None);
        assert_eq!(
            a.union(&BoxF::new(5.0, -5.0, 20.0, 8.0)),
            BoxF::new(0.0, -5.0, 20.0, 10.0)
        );
    }

    #[test]
    fn grow_and_pixel_rect_clip_to_the_image() {
        let b = BoxF::new(10.0, 10.0, 20.0, 30.0).grow(0.5);
        assert_eq!(b, BoxF::new(5.0, 0.0, 25.0, 40.0));
        assert_eq!(b.pixel_rect(22, 100), Some((5, 0, 17, 40)));
        assert_eq!(BoxF::new(-5.0, -5.0, -1.0, -1.0).pixel_rect(10, 10), None);
    }

    #[test]
    fn unscale_maps_tile_coordinates_back_to_the_source() {
        let b = BoxF::new(10.0, 20.0, 30.0, 40.0).unscale((0.5, 0.5), (100.0, 200.0));
        assert_eq!(b, BoxF::new(120.0, 240.0, 160.0, 280.0));
    }
}
