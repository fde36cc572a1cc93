//! Renditions: the size, format and quality of one anonymised copy.
//!
//! Redaction always happens at full resolution; a rendition is then a (possibly) downscaled,
//! re-encoded copy of the redacted pixels, so a small copy never shows less blur than a large one.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{GrayImage, RgbImage};
use serde::{Deserialize, Serialize};

use crate::codec::{Format, Picture};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rendition {
    /// Largest width in pixels; the aspect ratio is kept and images are never enlarged.
    pub max_width: Option<u32>,
    pub max_height: Option<u32>,
    /// Output format; unset means the input's format.
    pub format: Option<Format>,
    pub jpeg_quality: u8,
    /// Keep the source's ICC colour profile (the only metadata veil can carry over).
    pub keep_icc: bool,
}

impl Default for Rendition {
    fn default() -> Self {
        Self {
            max_width: None,
            max_height: None,
            format: None,
            jpeg_quality: 90,
            keep_icc: false,
        }
    }
}

impl Rendition {
    pub fn validate(&self, key: &str) -> Vec<String> {
        let mut errors = Vec::new();
        if !(1..=100).contains(&self.jpeg_quality) {
            errors.push(format!(
                "{key}.jpeg_quality must be in 1..=100, got {}",
                self.jpeg_quality
            ));
        }
        if self.max_width == Some(0) || self.max_height == Some(0) {
            errors.push(format!("{key}.max_width and max_height must be positive"));
        }
        errors
    }

    /// The output size for a `w × h` source.
    pub fn size(&self, w: u32, h: u32) -> (u32, u32) {
        let sx = self.max_width.map_or(1.0, |m| m as f64 / w as f64);
        let sy = self.max_height.map_or(1.0, |m| m as f64 / h as f64);
        let s = sx.min(sy).min(1.0);
        if s >= 1.0 {
            (w, h)
        } else {
            (
                ((w as f64 * s).round() as u32).max(1),
                ((h as f64 * s).round() as u32).max(1),
            )
        }
    }

    /// The pixels of this rendition: the picture itself when no downscale is needed.
    pub fn render<'a>(
        &self,
        pic: &'a Picture,
        resizer: &mut Resizer,
    ) -> std::borrow::Cow<'a, Picture> {
        let (w, h) = pic.rgb.dimensions();
        let (tw, th) = self.size(w, h);
        if (tw, th) == (w, h) {
            return std::borrow::Cow::Borrowed(pic);
        }
        let rgb = resize(resizer, pic.rgb.as_raw(), (w, h), (tw, th), PixelType::U8x3);
        let alpha = pic
            .alpha
            .as_ref()
            .map(|a| resize(resizer, a.as_raw(), (w, h), (tw, th), PixelType::U8));
        std::borrow::Cow::Owned(Picture {
            rgb: RgbImage::from_raw(tw, th, rgb).expect("resized to the target size"),
            alpha: alpha
                .map(|a| GrayImage::from_raw(tw, th, a).expect("resized to the target size")),
            gray: pic.gray,
        })
    }
}

fn resize(
    resizer: &mut Resizer,
    src: &[u8],
    (w, h): (u32, u32),
    (tw, th): (u32, u32),
    pt: PixelType,
) -> Vec<u8> {
    let src = ImageRef::new(w, h, src, pt).expect("buffer matches its size");
    let mut dst = Image::new(tw, th, pt);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    resizer
        .resize(&src, &mut dst, &options)
        .expect("same pixel type");
    dst.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_keep_aspect_and_never_enlarge() {
        let r = Rendition {
            max_width: Some(1280),
            max_height: Some(1280),
            ..Default::default()
        };
        assert_eq!(r.size(4000, 3000), (1280, 960));
        assert_eq!(r.size(3000, 4000), (960, 1280));
        assert_eq!(r.size(640, 480), (640, 480));
        assert_eq!(Rendition::default().size(4000, 3000), (4000, 3000));
    }
}
