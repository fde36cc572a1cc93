//! Redaction of detected regions, in place and at full resolution.
//!
//! Each detection's box is grown by its class's `padding`, the region is copied out, replaced by
//! its blurred / pixelated / filled version, and blended back through a mask: an ellipse with a
//! feathered edge for faces (it follows a head's outline), a rectangle with a soft edge for plates.
//! How each class is redacted is set in `settings`.
//!
//! Kernels, chosen by measurement (`cargo bench --bench redact`): the gaussian method is libblur's
//! stack blur, a gaussian approximation whose cost does not grow with the radius; pixelation is a
//! box-filtered downscale and a nearest-neighbour upscale with fast_image_resize. Both use SIMD.

mod settings;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{GrayImage, RgbImage};
use libblur::{AnisotropicRadius, BlurImageMut, FastBlurChannels, ThreadingPolicy};

use crate::detect::Detection;
use crate::geometry::BoxF;
pub use settings::{ClassRedaction, MIN_MARGIN_PX, Method, RedactionConfig, Shape};

/// Fraction of the region's width (height) added on each side of the window the blur reads.
const BLUR_CONTEXT: f32 = 0.5;

/// Smallest blur radius, in pixels of the shrunk window, that `context_blur` computes at: enough
/// for the enlarged result to be as smooth as a full-resolution blur.
const BLUR_MIN_RADIUS: u32 = 16;

/// Applies redactions; keeps its buffers between regions and images.
#[derive(Default)]
pub struct Redactor {
    resizer: Resizer,
    effect: Vec<u8>,
    weights: Vec<u16>,
}

impl Redactor {
    /// Redacts every detection in `img`, each with its class's settings.
    pub fn redact(
        &mut self,
        img: &mut RgbImage,
        detections: &[Detection],
        config: &RedactionConfig,
    ) {
        let frame = BoxF::frame(img.dimensions());
        for d in detections {
            self.region(img, config.region(d, &frame), &config.in_frame(d, &frame));
        }
    }

    /// Redacts the alpha plane with the same regions as the colour planes, so that an object
    /// drawn in transparency alone is no more visible than one drawn in colour.
    pub fn redact_alpha(
        &mut self,
        alpha: &mut GrayImage,
        detections: &[Detection],
        config: &RedactionConfig,
    ) {
        let (w, h) = alpha.dimensions();
        let mut planes =
            RgbImage::from_fn(w, h, |x, y| image::Rgb([alpha.get_pixel(x, y).0[0]; 3]));
        self.redact(&mut planes, detections, config);
        for (a, p) in alpha.pixels_mut().zip(planes.pixels()) {
            a.0[0] = p.0[0];
        }
    }

    /// Redacts `area` of `img`. The mask is laid out on the whole area, also where it reaches
    /// past the image: an object cut by the frame is redacted as far as it shows, exactly as the
    /// same part of a whole object would be.
    pub fn region(&mut self, img: &mut RgbImage, area: BoxF, c: &ClassRedaction) {
        let Some((x, y, w, h)) = area.pixel_rect(img.width(), img.height()) else {
            return;
        };
        let stride = img.width() as usize * 3;
        let row_len = w as usize * 3;
        // the whole-pixel area, unclipped, and its centre and radii relative to (x, y)
        let (fx1, fy1) = (area.x1.floor(), area.y1.floor());
        let (fw, fh) = (area.x2.ceil() - fx1, area.y2.ceil() - fy1);
        let (rx, ry) = (fw / 2.0, fh / 2.0);
        let (cx, cy) = (fx1 + rx - x as f32, fy1 + ry - y as f32);
        match c.method {
            Method::Gaussian | Method::Surround => {
                let whole = BoxF::new(fx1, fy1, fx1 + fw, fy1 + fh);
                let hole = (c.method == Method::Surround).then_some(c.shape);
                self.context_blur(img, (x, y, w, h), whole, c.strength, hole)
            }
            Method::Pixelate => {
                self.effect.clear();
                for row in 0..h as usize {
                    let start = (y as usize + row) * stride + x as usize * 3;
                    self.effect
                        .extend_from_slice(&img.as_raw()[start..start + row_len]);
                }
                let cell = (fw.min(fh) * c.strength).round().max(2.0) as u32;
                self.pixelate(w, h, cell);
            }
            Method::Fill => {
                self.effect.clear();
                self.effect
                    .extend(c.colour.iter().copied().cycle().take(h as usize * row_len));
            }
        }
        let pixels: &mut [u8] = img;
        for row in 0..h as usize {
            let dst = &mut pixels[(y as usize + row) * stride + x as usize * 3..][..row_len];
            let src = &self.effect[row * row_len..][..row_len];
            let dy = (row as f32 + 0.5 - cy) / ry;
            let (core, reach) = spans(c.shape, dy, c.feather);
            // columns whose centre lies within ±half of the centre, rounded inwards / outwards
            let cols = |half: f32, inward: bool| {
                let (lo, hi) = (cx - half * rx - 0.5, cx + half * rx - 0.5);
                let (lo, hi) = if inward {
                    (lo.ceil(), hi.floor() + 1.0)
                } else {
                    (lo.floor(), hi.ceil() + 1.0)
                };
                (
                    lo.clamp(0.0, w as f32) as usize,
                    hi.clamp(0.0, w as f32) as usize,
                )
            };
            let (out_lo, out_hi) = reach.map_or((0, 0), |r| cols(r, false));
            let (in_lo, in_hi) = core.map_or((out_lo, out_lo), |r| cols(r, true));
            let (in_lo, in_hi) = (in_lo.max(out_lo), in_hi.min(out_hi).max(in_lo.max(out_lo)));
            dst[in_lo * 3..in_hi * 3].copy_from_slice(&src[in_lo * 3..in_hi * 3]);
            for band in [out_lo..in_lo, in_hi..out_hi] {
                // one weight per byte, then a branch-free blend the compiler vectorises
                self.weights.clear();
                for col in band.clone() {
                    let dx = (col as f32 + 0.5 - cx) / rx;
                    let a = (mask(c.shape, dx, dy, c.feather) * 256.0) as u16;
                    self.weights.extend_from_slice(&[a, a, a]);
                }
                let bytes = band.start * 3..band.end * 3;
                for ((d, s), a) in dst[bytes.clone()]
                    .iter_mut()
                    .zip(&src[bytes])
                    .zip(&self.weights)
                {
                    *d = ((*d as u16 * (256 - a) + *s as u16 * a + 128) >> 8) as u8;
                }
            }
        }
    }

    /// Fills `effect` with the visible `w × h` part of a region blurred with radii of `strength`
    /// × the sides of a window around the whole region (`whole`, unclipped, so that a region
    /// cut by the frame is blurred as strongly as a whole one): the blur reads the window, so the
    /// region fades into its surroundings instead of keeping a face-shaped blob of its own
    /// average colour. Such a wide blur leaves nothing but low frequencies, so it is computed on
    /// the window shrunk by up to `radius / BLUR_MIN_RADIUS` (box filter) and enlarged back over
    /// the region (bilinear). With a `hole` shape, the region (of that shape) is filled from
    /// the rest of the window alone ([`surround`]).
    fn context_blur(
        &mut self,
        img: &RgbImage,
        (x, y, w, h): (u32, u32, u32, u32),
        whole: BoxF,
        strength: f32,
        hole: Option<Shape>,
    ) {
        let (wx, wy, ww, wh) = whole
            .grow(BLUR_CONTEXT)
            .pixel_rect(img.width(), img.height())
            .expect("contains the region");
        let context = 1.0 + 2.0 * BLUR_CONTEXT;
        let (rx, ry) = (
            (whole.width() * context * strength).round() as u32,
            (whole.height() * context * strength).round() as u32,
        );
        let shrink = (rx.min(ry) / BLUR_MIN_RADIUS).max(1);
        let (sw, sh) = (ww.div_ceil(shrink), wh.div_ceil(shrink));
        let src = ImageRef::new(img.width(), img.height(), img.as_raw(), PixelType::U8x3)
            .expect("an RgbImage matches its size");
        let mut small = Image::new(sw, sh, PixelType::U8x3);
        let down = ResizeOptions::new()
            .crop(wx as f64, wy as f64, ww as f64, wh as f64)
            .resize_alg(ResizeAlg::Convolution(FilterType::Box));
        self.resizer
            .resize(&src, &mut small, &down)
            .expect("same pixel type");
        match hole {
            None => blur(small.buffer_mut(), sw, sh, (rx / shrink, ry / shrink)),
            Some(shape) => {
                let in_small = |v: f32, origin: u32| (v - origin as f32) / shrink as f32;
                let region = BoxF::new(
                    in_small(whole.x1, wx),
                    in_small(whole.y1, wy),
                    in_small(whole.x2, wx),
                    in_small(whole.y2, wy),
                );
                surround(small.buffer_mut(), sw, sh, &region, shape);
            }
        }
        self.effect.clear();
        self.effect.resize(w as usize * h as usize * 3, 0);
        let mut dst = Image::from_slice_u8(w, h, &mut self.effect, PixelType::U8x3)
            .expect("buffer holds w×h pixels");
        let (left, width) = shrunk_span(x - wx, w, ww, sw);
        let (top, height) = shrunk_span(y - wy, h, wh, sh);
        let up = ResizeOptions::new()
            .crop(left, top, width, height)
            .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
        self.resizer
            .resize(&small, &mut dst, &up)
            .expect("same pixel type");
    }

    /// Mosaic of `cell`-pixel squares: box-filtered downscale, nearest-neighbour upscale.
    fn pixelate(&mut self, w: u32, h: u32, cell: u32) {
        let (sw, sh) = (w.div_ceil(cell), h.div_ceil(cell));
        let src = Image::from_slice_u8(w, h, &mut self.effect, PixelType::U8x3)
            .expect("buffer holds w×h pixels");
        let mut small = Image::new(sw, sh, PixelType::U8x3);
        let down = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Box));
        self.resizer
            .resize(&src, &mut small, &down)
            .expect("same pixel type");
        let mut dst = Image::from_slice_u8(w, h, &mut self.effect, PixelType::U8x3)
            .expect("buffer holds w×h pixels");
        let up = ResizeOptions::new().resize_alg(ResizeAlg::Nearest);
        self.resizer
            .resize(&small, &mut dst, &up)
            .expect("same pixel type");
    }
}

/// Gaussian-like blur (libblur's stack blur) of a `w × h` RGB buffer with the given horizontal
/// and vertical radii, each kept below half the buffer's side.
pub fn blur(buf: &mut [u8], w: u32, h: u32, (rx, ry): (u32, u32)) {
    let radius = AnisotropicRadius {
        x_axis: rx.clamp(1, (w / 2).max(1)),
        y_axis: ry.clamp(1, (h / 2).max(1)),
    };
    let mut image = BlurImageMut::borrow(buf, w, h, FastBlurChannels::Channels3);
    libblur::stack_blur(&mut image, radius, ThreadingPolicy::Single)
        .expect("the buffer matches its declared layout");
}

/// Replaces a `w × h` RGB window by a blur of its pixels outside `region` (window pixels, of
/// `shape`), normalised by how much of the surroundings each pixel's kernel reads: inside the
/// region every value comes from around it. The radii are the region's sides, so that the
/// kernel of any pixel in it reaches past it; a pixel whose kernel reads nothing outside the
/// region (a region larger than the picture, or a window the frame cuts short) takes the
/// plain blur of the window instead.
fn surround(buf: &mut [u8], w: u32, h: u32, region: &BoxF, shape: Shape) {
    let (cx, cy) = ((region.x1 + region.x2) / 2.0, (region.y1 + region.y2) / 2.0);
    let (hx, hy) = (region.width() / 2.0, region.height() / 2.0);
    let mut planes = Vec::with_capacity(w as usize * h as usize * 4);
    for (i, p) in buf.chunks_exact(3).enumerate() {
        let (col, row) = ((i % w as usize) as f32, (i / w as usize) as f32);
        let (dx, dy) = ((col + 0.5 - cx) / hx, (row + 0.5 - cy) / hy);
        let outside = if mask(shape, dx, dy, 0.0) > 0.0 {
            0.0
        } else {
            1.0
        };
        planes.extend(p.iter().map(|&v| v as f32 * outside));
        planes.push(outside);
    }
    let radius = AnisotropicRadius {
        x_axis: (region.width().ceil() as u32).clamp(1, (w / 2).max(1)),
        y_axis: (region.height().ceil() as u32).clamp(1, (h / 2).max(1)),
    };
    let mut image = BlurImageMut::borrow(&mut planes, w, h, FastBlurChannels::Channels4);
    libblur::stack_blur_f32(&mut image, radius, ThreadingPolicy::Single)
        .expect("the buffer matches its declared layout");
    const UNREACHED: f32 = 1e-6;
    let mut plain = Vec::new();
    if planes.chunks_exact(4).any(|s| s[3] <= UNREACHED) {
        plain.extend_from_slice(buf);
        blur(&mut plain, w, h, (w / 2, h / 2));
    }
    for (i, (p, s)) in buf
        .chunks_exact_mut(3)
        .zip(planes.chunks_exact(4))
        .enumerate()
    {
        if s[3] > UNREACHED {
            for (v, sum) in p.iter_mut().zip(s) {
                *v = (sum / s[3]).round().clamp(0.0, 255.0) as u8;
            }
        } else {
            p.copy_from_slice(&plain[i * 3..i * 3 + 3]);
        }
    }
}

/// Where `offset .. offset + len` of an axis of `full` pixels lies once the axis is shrunk to
/// `small` pixels, as (start, length); the length is clamped so that rounding never reaches past
/// the end (fast_image_resize refuses a crop outside the image).
fn shrunk_span(offset: u32, len: u32, full: u32, small: u32) -> (f64, f64) {
    let scale = small as f64 / full as f64;
    let start = offset as f64 * scale;
    (start, (len as f64 * scale).min(small as f64 - start))
}

/// For a row at normalised height `dy`: the half-widths (normalised) of the span where the mask
/// is 1 and of the span where it is above 0, if any.
fn spans(shape: Shape, dy: f32, feather: f32) -> (Option<f32>, Option<f32>) {
    let inner = 1.0 - feather;
    match shape {
        Shape::Ellipse => {
            let half = |r: f32| (dy.abs() < r).then(|| (r * r - dy * dy).sqrt());
            (half(inner), half(1.0))
        }
        Shape::Rect => (
            (dy.abs() <= inner).then_some(inner),
            (dy.abs() < 1.0).then_some(1.0),
        ),
    }
}

/// Mask value at normalised offset `(dx, dy)` from the region's centre (±1 at its edges):
/// 1 inside, 0 outside, a linear ramp over the outer `feather` of the way to the edge.
fn mask(shape: Shape, dx: f32, dy: f32, feather: f32) -> f32 {
    let d = match shape {
        Shape::Ellipse => (dx * dx + dy * dy).sqrt(),
        Shape::Rect => dx.abs().max(dy.abs()),
    };
    if d <= 1.0 - feather {
        1.0
    } else if d >= 1.0 {
        0.0
    } else {
        (1.0 - d) / feather
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Class;

    fn checkerboard(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            if (x / 2 + y / 2) % 2 == 0 {
                image::Rgb([255; 3])
            } else {
                image::Rgb([0; 3])
            }
        })
    }

    fn detection(class: Class, bbox: BoxF) -> Detection {
        Detection {
            verify_pass: 0,
            class,
            model: "m".into(),
            score: 1.0,
            bbox,
        }
    }

    /// Mean absolute difference between horizontally adjacent pixels: high-frequency energy.
    fn detail(img: &RgbImage, (x, y, w, h): (u32, u32, u32, u32)) -> f32 {
        let mut sum = 0.0;
        for yy in y..y + h {
            for xx in x..x + w - 1 {
                sum +=
                    (img.get_pixel(xx, yy)[0] as f32 - img.get_pixel(xx + 1, yy)[0] as f32).abs();
            }
        }
        sum / ((w - 1) * h) as f32
    }

    #[test]
    fn every_method_destroys_detail_inside_the_box_and_leaves_the_rest() {
        for method in [
            Method::Gaussian,
            Method::Surround,
            Method::Pixelate,
            Method::Fill,
        ] {
            let mut img = checkerboard(200, 120);
            let before = img.clone();
            let mut config = RedactionConfig::default();
            config.face.method = method;
            config.face.colour = [128, 64, 200];
            let d = detection(Class::Face, BoxF::new(60.0, 30.0, 120.0, 90.0));
            Redactor::default().redact(&mut img, &[d], &config);
            assert!(detail(&before, (60, 30, 60, 60)) > 100.0);
            assert!(
                detail(&img, (60, 30, 60, 60)) < 15.0,
                "{method:?} left detail"
            );
            for (x, y) in [(60, 30), (119, 89), (90, 60), (60, 89)] {
                assert_ne!(
                    img.get_pixel(x, y),
                    before.get_pixel(x, y),
                    "{method:?} missed ({x},{y})"
                );
            }
            assert_eq!(img.get_pixel(5, 5), before.get_pixel(5, 5));
            assert_eq!(img.get_pixel(195, 115), before.get_pixel(195, 115));
        }
    }

    #[test]
    fn plates_are_redacted_as_a_rectangle_with_a_soft_edge_in_the_padding() {
        let mut img = checkerboard(100, 100);
        let before = img.clone();
        let d = detection(Class::Plate, BoxF::new(20.0, 40.0, 80.0, 60.0));
        let mut config = RedactionConfig::default();
        config.plate.method = Method::Fill;
        config.plate.colour = [9, 9, 9];
        config.plate.padding = 0.25;
        Redactor::default().redact(&mut img, &[d], &config);
        // padding 0.25: region x 5..95, y 35..65; the whole detected box is fully filled
        for (x, y) in [(20, 40), (79, 59), (20, 59), (79, 40), (50, 50)] {
            assert_eq!(img.get_pixel(x, y).0, [9, 9, 9], "({x},{y})");
        }
        assert_eq!(
            img.get_pixel(3, 50),
            before.get_pixel(3, 50),
            "outside the region"
        );
        let edge = img.get_pixel(7, 50).0;
        assert!(
            edge != [9, 9, 9] && edge != before.get_pixel(7, 50).0,
            "soft edge blends: {edge:?}"
        );
    }

    #[test]
    fn a_residue_is_filled_from_its_surroundings_and_a_first_find_blurred() {
        // a white head on a dark grey ground, found whole: the blur keeps some of its white, the
        // fill none
        let img = RgbImage::from_fn(200, 200, |x, y| {
            let inside = (60..140).contains(&x) && (50..150).contains(&y);
            image::Rgb(if inside { [250; 3] } else { [40; 3] })
        });
        let config = RedactionConfig::default();
        let head = BoxF::new(64.0, 54.0, 136.0, 146.0);
        let centre = |pass: u8| {
            let mut out = img.clone();
            let d = Detection {
                verify_pass: pass,
                ..detection(Class::Face, head)
            };
            Redactor::default().redact(&mut out, &[d], &config);
            out.get_pixel(100, 100).0[0]
        };
        assert!(centre(0) > 90, "the blur keeps the head's own colour");
        let filled = centre(1);
        assert!(
            filled < 50 && filled < centre(0) - 40,
            "a residue is filled from around it: {filled}"
        );
        // unless its class is not blurred: a residue is redacted as the class says
        let mut fill = config;
        fill.face.method = Method::Fill;
        assert_eq!(
            fill.for_detection(&detection(Class::Face, head)).method,
            Method::Fill
        );
        let residue = Detection {
            verify_pass: 2,
            ..detection(Class::Face, head)
        };
        assert_eq!(fill.for_detection(&residue).method, Method::Fill);
        let surround = config.for_detection(&residue);
        assert_eq!(surround.method, Method::Surround);
        assert_eq!(surround.shape, Shape::Rect, "a filled oval is a head again");
        // with half the class's padding, or what keeps the box in the core if that is more
        assert_eq!(surround.padding, config.face.padding / 2.0);
        let mut soft = config;
        soft.face.feather = 0.5;
        let soft = soft.for_detection(&residue);
        assert_eq!(soft.padding, 0.5);
        assert_eq!(soft.padding, soft.min_padding());
        let frame = BoxF::frame((1000, 1000));
        assert!(
            config.region(&residue, &frame).width()
                < config.region(&detection(Class::Face, head), &frame).width()
        );
    }

    #[test]
    fn a_region_filled_from_its_surroundings_takes_only_their_colours() {
        let mut config = RedactionConfig::default();
        config.plate.method = Method::Surround;
        let img = RgbImage::from_fn(300, 200, |x, y| {
            let inside = (100..200).contains(&x) && (80..120).contains(&y);
            image::Rgb(if inside {
                [255, 255, 255]
            } else {
                [10, 200, 30]
            })
        });
        let mut out = img.clone();
        let plate = BoxF::new(110.0, 85.0, 190.0, 115.0);
        Redactor::default().redact(&mut out, &[detection(Class::Plate, plate)], &config);
        for (x, y) in [(150, 100), (115, 90), (185, 110)] {
            let p = out.get_pixel(x, y).0;
            assert!(
                p[0] < 60 && p[1] > 150 && p[2] < 80,
                "({x},{y}) is {p:?}, not the ground's green"
            );
        }
        // a region covering the whole picture has no surroundings: it is blurred instead
        let mut small = checkerboard(40, 40);
        let all = BoxF::new(-10.0, -10.0, 50.0, 50.0);
        Redactor::default().redact(&mut small, &[detection(Class::Plate, all)], &config);
        assert!(detail(&small, (0, 0, 40, 40)) < 5.0);
    }

    #[test]
    fn objects_cut_by_the_frame_are_masked_as_if_whole() {
        let mut config = RedactionConfig::default();
        config.face.method = Method::Fill;
        config.face.colour = [9, 9, 9];
        // a face centred on the left edge, and one centred on the top-left corner
        for (bbox, centre) in [
            (BoxF::new(-20.0, 40.0, 20.0, 80.0), (0, 60)),
            (BoxF::new(-20.0, -20.0, 20.0, 20.0), (0, 0)),
        ] {
            let mut img = checkerboard(100, 100);
            Redactor::default().redact(&mut img, &[detection(Class::Face, bbox)], &config);
            let (cx, cy) = centre;
            for (x, y) in [(cx, cy), (cx + 19, cy), (cx, cy + 19)] {
                assert_eq!(img.get_pixel(x, y).0, [9, 9, 9], "{bbox:?}: ({x},{y})");
            }
        }
    }

    #[test]
    fn a_face_the_frame_cuts_is_redacted_over_its_whole_region() {
        let mut config = RedactionConfig::default();
        config.face.method = Method::Fill;
        config.face.colour = [9, 9, 9];
        // redacts a face at `b` and reads the pixel an eighth of its region in from the
        // region's top-left corner: outside the ellipse through the region, inside the core of
        // its rectangle (the feather is a fifth of each half)
        let region_corner = |b: BoxF| {
            let mut img = checkerboard(120, 100);
            let d = detection(Class::Face, b);
            Redactor::default().redact(&mut img, std::slice::from_ref(&d), &config);
            let r = config.region(&d, &BoxF::frame(img.dimensions()));
            let (x, y) = (r.x1 + r.width() / 8.0, r.y1 + r.height() / 8.0);
            img.get_pixel(x as u32, y as u32).0
        };
        // the same box inside the frame (its region reaching the edge), and overhanging the
        // bottom edge by an eighth of itself
        let inside = region_corner(BoxF::new(40.0, 40.0, 80.0, 80.0));
        assert_ne!(inside, [9, 9, 9], "a whole face's ellipse");
        let cut = region_corner(BoxF::new(40.0, 65.0, 80.0, 105.0));
        assert_eq!(cut, [9, 9, 9], "a cut face's rectangle");
    }

    #[test]
    fn the_alpha_plane_is_redacted_with_the_same_masks() {
        let mut alpha = GrayImage::from_fn(120, 120, |x, y| {
            image::Luma([((x / 2 + y / 2) % 2 * 255) as u8])
        });
        let before = alpha.clone();
        let d = detection(Class::Face, BoxF::new(40.0, 40.0, 80.0, 80.0));
        Redactor::default().redact_alpha(&mut alpha, &[d], &RedactionConfig::default());
        let as_rgb = |a: &GrayImage| {
            RgbImage::from_fn(120, 120, |x, y| image::Rgb([a.get_pixel(x, y).0[0]; 3]))
        };
        assert!(detail(&as_rgb(&before), (40, 40, 40, 40)) > 100.0);
        assert!(detail(&as_rgb(&alpha), (40, 40, 40, 40)) < 15.0);
        assert_eq!(alpha.get_pixel(2, 2), before.get_pixel(2, 2));
    }

    #[test]
    fn small_boxes_are_fully_redacted_two_pixels_beyond_their_edges() {
        let config = RedactionConfig::default();
        let mut img =
            RgbImage::from_fn(200, 200, |x, y| image::Rgb([((x ^ y) % 2 * 255) as u8; 3]));
        let before = img.clone();
        for d in [
            detection(Class::Plate, BoxF::new(50.0, 50.0, 70.0, 54.0)),
            detection(Class::Face, BoxF::new(120.0, 120.0, 130.0, 132.0)),
            Detection {
                verify_pass: 1,
                ..detection(Class::Face, BoxF::new(50.0, 120.0, 60.0, 132.0))
            },
        ] {
            let region = config.region(&d, &BoxF::frame(img.dimensions()));
            let c = config.for_detection(&d);
            Redactor::default().region(&mut img, region, &c);
            // every pixel of the box grown by 2 px lies in the mask's core: fully redacted,
            // so none keeps its sharp checkerboard value against its neighbour
            let b = d.bbox;
            for y in (b.y1 - 2.0) as u32..(b.y2 + 2.0) as u32 {
                for x in (b.x1 - 2.0) as u32..(b.x2 + 2.0) as u32 {
                    let m = |i: &RgbImage| i.get_pixel(x, y).0[0] as i32;
                    assert!(
                        (m(&img) - 127).abs() < 40,
                        "{d:?}: ({x}, {y}) is {} (was {}) in region {region:?}",
                        m(&img),
                        m(&before)
                    );
                }
            }
        }
        // large boxes keep their padding, which covers them with more to spare: 40 % of
        // 400 px on each side, where the core reaches 2 px beyond the box at 39.3 %
        let large = detection(Class::Face, BoxF::new(0.0, 0.0, 400.0, 400.0));
        assert_eq!(
            config.region(&large, &BoxF::frame(img.dimensions())),
            BoxF::new(-160.0, -160.0, 560.0, 560.0)
        );
    }

    #[test]
    fn shrunk_spans_never_reach_past_the_shrunk_axis() {
        for full in (2u32..3000).step_by(7) {
            for shrink in 2..40 {
                let small = full.div_ceil(shrink);
                for offset in (0..full / 3).step_by(5) {
                    let len = full - 2 * offset;
                    let (start, length) = shrunk_span(offset, len, full, small);
                    assert!(start + length <= small as f64, "{full} {shrink} {offset}");
                    assert!(
                        length > 0.0
                            && (length - len as f64 * small as f64 / full as f64).abs() < 1e-9
                    );
                }
            }
        }
    }

    #[test]
    fn regions_of_any_size_and_place_are_redacted_without_panicking() {
        let mut img = checkerboard(997, 601);
        let mut redactor = Redactor::default();
        let config = RedactionConfig::default();
        let surround = ClassRedaction {
            method: Method::Surround,
            ..config.face
        };
        let mut state = 7u32;
        let mut next = |m: u32| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (state >> 8) % m
        };
        for _ in 0..300 {
            let (w, h) = (1 + next(400), 1 + next(300));
            let (x, y) = (next(997 - w + 1), next(601 - h + 1));
            for c in [&config.face, &config.plate, &surround] {
                let area = BoxF::new(x as f32, y as f32, (x + w) as f32, (y + h) as f32);
                redactor.region(&mut img, area, c);
            }
        }
    }
}
