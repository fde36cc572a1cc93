//! Redaction throughput, in megapixels of redacted region per second, single thread.
//!
//! `kernel/*` compares blur kernels on a bare 300×300 region buffer at veil's default strength
//! (radius 150): libblur's stack blur (what veil uses for `gaussian`), libblur's fast gaussian,
//! and a fast_image_resize downscale-then-upscale pyramid at ÷16 and at ÷150. `region/*` measures the whole redaction of one
//! region as veil does it (copy out, effect, masked blend back) inside a 1080p and a 12 MP image.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;
use veil::redact::{ClassRedaction, Method, RedactionConfig, Redactor, Shape, blur};

fn noise(w: u32, h: u32) -> RgbImage {
    let mut state = 0x2545_f491u32;
    RgbImage::from_fn(w, h, |_, _| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        image::Rgb([state as u8, (state >> 8) as u8, (state >> 16) as u8])
    })
}

/// The alternative gaussian-like kernel: box downscale by `factor`, bilinear upscale back.
fn pyramid(resizer: &mut Resizer, buf: &mut [u8], w: u32, h: u32, factor: u32) {
    let src = Image::from_slice_u8(w, h, buf, PixelType::U8x3).unwrap();
    let mut small = Image::new((w / factor).max(1), (h / factor).max(1), PixelType::U8x3);
    resizer
        .resize(
            &src,
            &mut small,
            &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Box)),
        )
        .unwrap();
    let mut dst = Image::from_slice_u8(w, h, buf, PixelType::U8x3).unwrap();
    resizer
        .resize(
            &small,
            &mut dst,
            &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear)),
        )
        .unwrap();
}

fn kernels(c: &mut Criterion) {
    let (w, h) = (300u32, 300u32);
    let region = noise(w, h).into_raw();
    let mut buf = region.clone();
    let mut group = c.benchmark_group("kernel");
    group.throughput(Throughput::Elements((w * h) as u64));
    group.bench_function("stack_blur_libblur", |b| {
        b.iter(|| {
            buf.copy_from_slice(&region);
            blur(&mut buf, w, h, (150, 150));
        })
    });
    group.bench_function("fast_gaussian_libblur", |b| {
        b.iter(|| {
            buf.copy_from_slice(&region);
            let mut image =
                libblur::BlurImageMut::borrow(&mut buf, w, h, libblur::FastBlurChannels::Channels3);
            let edges = libblur::EdgeMode2D::new(libblur::EdgeMode::Clamp);
            libblur::fast_gaussian(
                &mut image,
                libblur::AnisotropicRadius::new(150),
                libblur::ThreadingPolicy::Single,
                edges,
            )
            .unwrap();
        })
    });
    let mut resizer = Resizer::new();
    // ÷16 is a moderate blur; ÷150 matches veil's default strength (radius = half the side).
    for factor in [16, 150] {
        group.bench_function(format!("pyramid_fast_image_resize_div{factor}"), |b| {
            b.iter(|| {
                buf.copy_from_slice(&region);
                pyramid(&mut resizer, &mut buf, w, h, factor);
            })
        });
    }
    group.finish();
}

fn regions(c: &mut Criterion) {
    for (label, (iw, ih), side) in [
        ("1080p", (1920, 1080), 300u32),
        ("12mp", (4000, 3000), 800u32),
    ] {
        let mut img = noise(iw, ih);
        let mut group = c.benchmark_group(format!("region_{label}"));
        group.throughput(Throughput::Elements((side * side) as u64));
        let defaults = RedactionConfig::default();
        let methods = [
            ("gaussian_ellipse", defaults.face),
            ("gaussian_rect", defaults.plate),
            (
                "pixelate_rect",
                ClassRedaction {
                    method: Method::Pixelate,
                    shape: Shape::Rect,
                    strength: 0.125,
                    ..defaults.plate
                },
            ),
            (
                "fill_rect",
                ClassRedaction {
                    method: Method::Fill,
                    shape: Shape::Rect,
                    ..defaults.plate
                },
            ),
        ];
        let mut redactor = Redactor::default();
        let (x, y, side) = ((iw / 3) as f32, (ih / 3) as f32, side as f32);
        let area = veil::geometry::BoxF::new(x, y, x + side, y + side);
        for (name, cfg) in methods {
            group.bench_function(name, |b| b.iter(|| redactor.region(&mut img, area, &cfg)));
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = kernels, regions
}
criterion_main!(benches);
