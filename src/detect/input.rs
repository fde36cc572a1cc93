//! Turns one tile of the image into the tensor a model expects: resize, pad, reorder channels.
//!
//! Every family pads at the right and bottom only, so a box in canvas pixels maps back to the
//! source by a scale and the tile's offset, whatever the family.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;
use ndarray::Array4;

use super::tiles::{Tile, scaled};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelOrder {
    Rgb,
    Bgr,
}

/// The canvas size a model accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canvas {
    /// Exactly this size (the tile is shrunk to fit if needed).
    Fixed { width: u32, height: u32 },
    /// Any size that is a multiple of this.
    Multiple(u32),
}

/// What a model wants as input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InputSpec {
    pub order: ChannelOrder,
    /// Multiplier from 0..255 pixel values to model values.
    pub value_scale: f32,
    /// Value of the padding, in model units.
    pub pad: f32,
    pub canvas: Canvas,
}

/// A tensor ready to run, and how to map its pixels back onto the source image.
pub struct Prepared {
    pub tensor: Array4<f32>,
    /// Model pixels per source pixel along x and y.
    pub scale: (f32, f32),
    /// Source position of canvas pixel (0, 0).
    pub offset: (f32, f32),
    /// Size of the canvas (width, height) in model pixels.
    pub canvas: (u32, u32),
}

/// Resizes tiles; holds its scratch buffers so a detector allocates once per tile size.
#[derive(Default)]
pub struct Preparer {
    resizer: Resizer,
}

impl Preparer {
    pub fn prepare(&mut self, img: &RgbImage, tile: &Tile, spec: &InputSpec) -> Prepared {
        let (mut w, mut h) = tile.model_size();
        let (cw, ch) = match spec.canvas {
            Canvas::Fixed { width, height } => {
                let fit = (width as f32 / w as f32)
                    .min(height as f32 / h as f32)
                    .min(1.0);
                (w, h) = scaled(w, h, fit);
                (width, height)
            }
            Canvas::Multiple(m) => (w.div_ceil(m) * m, h.div_ceil(m) * m),
        };
        let mut tensor = Array4::from_elem((1, 3, ch as usize, cw as usize), spec.pad);
        let plane = (cw * ch) as usize;
        let data = tensor.as_slice_mut().expect("a fresh array is contiguous");
        let (dst_r, rest) = data.split_at_mut(plane);
        let (dst_g, dst_b) = rest.split_at_mut(plane);
        let (first, third) = match spec.order {
            ChannelOrder::Rgb => (dst_r, dst_b),
            ChannelOrder::Bgr => (dst_b, dst_r),
        };

        let resized;
        let (pixels, stride, x0, y0): (&[u8], usize, usize, usize) =
            if w == tile.width && h == tile.height {
                (
                    img.as_raw(),
                    img.width() as usize * 3,
                    tile.x as usize,
                    tile.y as usize,
                )
            } else {
                resized = self.resize(img, tile, w, h);
                (resized.buffer(), w as usize * 3, 0, 0)
            };
        let k = spec.value_scale;
        for y in 0..h as usize {
            let row = &pixels[(y0 + y) * stride + x0 * 3..][..w as usize * 3];
            let out = y * cw as usize;
            for (x, px) in row.chunks_exact(3).enumerate() {
                first[out + x] = px[0] as f32 * k;
                dst_g[out + x] = px[1] as f32 * k;
                third[out + x] = px[2] as f32 * k;
            }
        }
        Prepared {
            tensor,
            scale: (w as f32 / tile.width as f32, h as f32 / tile.height as f32),
            offset: (tile.x as f32, tile.y as f32),
            canvas: (cw, ch),
        }
    }

    /// The pixels of `tile` at its scale, as the model would see them before padding.
    pub fn pixels(&mut self, img: &RgbImage, tile: &Tile) -> RgbImage {
        let (w, h) = tile.model_size();
        if (w, h) == (tile.width, tile.height) {
            return image::imageops::crop_imm(img, tile.x, tile.y, w, h).to_image();
        }
        let resized = self.resize(img, tile, w, h);
        RgbImage::from_raw(w, h, resized.into_vec()).expect("a U8x3 buffer of w × h pixels")
    }

    fn resize(&mut self, img: &RgbImage, tile: &Tile, w: u32, h: u32) -> Image<'static> {
        let src = ImageRef::new(img.width(), img.height(), img.as_raw(), PixelType::U8x3)
            .expect("an RgbImage buffer matches its size");
        let mut dst = Image::new(w, h, PixelType::U8x3);
        let options = ResizeOptions::new()
            .crop(
                tile.x as f64,
                tile.y as f64,
                tile.width as f64,
                tile.height as f64,
            )
            .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
        self.resizer
            .resize(&src, &mut dst, &options)
            .expect("source and destination are both U8x3");
        dst
    }
}

/// `img` extended by `margin` pixels on every side with its own mirror image. An object cut by
/// the frame then shows whole (half of it real, half mirrored) to a detector that would not
/// recognise half an object.
pub fn reflect_pad(img: &RgbImage, margin: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let mirror = |v: i64, len: u32| -> u32 {
        let period = 2 * len as i64;
        let m = v.rem_euclid(period);
        (if m < len as i64 { m } else { period - 1 - m }) as u32
    };
    RgbImage::from_fn(w + 2 * margin, h + 2 * margin, |x, y| {
        *img.get_pixel(
            mirror(x as i64 - margin as i64, w),
            mirror(y as i64 - margin as i64, h),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(order: ChannelOrder, canvas: Canvas) -> InputSpec {
        InputSpec {
            order,
            value_scale: 1.0,
            pad: -1.0,
            canvas,
        }
    }

    #[test]
    fn full_resolution_tile_is_copied_into_a_padded_planar_canvas() {
        let img = RgbImage::from_fn(40, 20, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let tile = Tile {
            x: 10,
            y: 5,
            width: 30,
            height: 15,
            scale: 1.0,
        };
        let p = Preparer::default().prepare(
            &img,
            &tile,
            &spec(ChannelOrder::Bgr, Canvas::Multiple(32)),
        );
        assert_eq!(p.tensor.shape(), &[1, 3, 32, 32]);
        assert_eq!(p.scale, (1.0, 1.0));
        assert_eq!(p.offset, (10.0, 5.0));
        // BGR: channel 0 holds blue, channel 2 red (= source x)
        assert_eq!(p.tensor[[0, 0, 0, 0]], 7.0);
        assert_eq!(p.tensor[[0, 2, 3, 4]], 14.0);
        assert_eq!(p.tensor[[0, 1, 3, 4]], 8.0);
        assert_eq!(
            p.tensor[[0, 1, 20, 4]],
            -1.0,
            "rows below the tile are padding"
        );
        assert_eq!(
            p.tensor[[0, 1, 3, 30]],
            -1.0,
            "columns right of the tile are padding"
        );
    }

    #[test]
    fn reflect_padding_mirrors_the_edges() {
        let img = RgbImage::from_fn(4, 3, |x, y| image::Rgb([x as u8, y as u8, 0]));
        let p = reflect_pad(&img, 2);
        assert_eq!(p.dimensions(), (8, 7));
        assert_eq!(
            p.get_pixel(2, 2).0,
            [0, 0, 0],
            "the source starts at the margin"
        );
        assert_eq!(p.get_pixel(1, 2).0, [0, 0, 0], "first column mirrored");
        assert_eq!(p.get_pixel(0, 0).0, [1, 1, 0]);
        assert_eq!(p.get_pixel(7, 6).0, [2, 1, 0]);
    }

    #[test]
    fn fixed_canvas_shrinks_the_tile_to_fit_and_keeps_the_aspect() {
        let img = RgbImage::from_pixel(1280, 640, image::Rgb([200, 100, 50]));
        let tile = Tile {
            x: 0,
            y: 0,
            width: 1280,
            height: 640,
            scale: 1.0,
        };
        let fixed = Canvas::Fixed {
            width: 640,
            height: 640,
        };
        let p = Preparer::default().prepare(&img, &tile, &spec(ChannelOrder::Rgb, fixed));
        assert_eq!(p.tensor.shape(), &[1, 3, 640, 640]);
        assert_eq!(p.scale, (0.5, 0.5));
        assert_eq!(p.tensor[[0, 0, 100, 100]], 200.0);
        assert_eq!(p.tensor[[0, 0, 400, 100]], -1.0);
    }
}
