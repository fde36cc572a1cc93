//! Shared helpers for the integration tests: configuration pointing at the installed runtime and
//! models, the real test photos, and pixel measurements.
#![allow(dead_code)] // each test crate uses a different subset

pub mod cloud;
pub mod observe;
pub mod proxy;
pub mod smallset;

use std::path::{Path, PathBuf};

use image::RgbImage;
use veil::config::Config;
use veil::geometry::BoxF;
use veil::pipeline::Pipeline;

/// The licence plate in fast_alpr_car.png, [x1, y1, x2, y2] (checked by eye).
pub const CAR_PLATE: [f32; 4] = [306.0, 189.0, 387.0, 210.0];

/// A small deterministic generator: test sets and mutations are the same on every machine and
/// every run, so a failure can be replayed.
pub struct Lcg(pub u64);

impl Lcg {
    /// The next number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n.max(1)
    }
}

/// Whether a bench runs under `cargo bench`, which passes `--bench`: `cargo test` (scripts/test.sh
/// runs `cargo test --bench '*'`) runs each bench without it, once, to show that it works.
pub fn benching() -> bool {
    std::env::args().any(|a| a == "--bench")
}

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The default configuration, with the runtime and models that scripts/setup.sh installs.
pub fn config() -> Config {
    let mut c = Config::default();
    c.runtime.library = Some(
        std::env::var_os("ORT_DYLIB_PATH")
            .map(PathBuf::from)
            .unwrap_or_else(|| root().join(".cache/onnxruntime/libonnxruntime.so")),
    );
    c.runtime.models_dir = root().join("models");
    c
}

pub fn pipeline_with(config: &Config) -> Pipeline {
    config
        .engine()
        .unwrap_or_else(|e| panic!("{e} (the tests need scripts/setup.sh to have run)"))
        .pipeline()
        .expect("sessions load")
}

pub fn testdata(name: &str) -> PathBuf {
    root().join(".cache/testdata").join(name)
}

/// A real photo fetched by scripts/fetch_test_images.py.
pub fn photo(name: &str) -> Vec<u8> {
    std::fs::read(testdata(name))
        .unwrap_or_else(|e| panic!("{name}: {e} (run scripts/fetch_test_images.py first)"))
}

/// The known faces of one photo of tests/data/known_faces.toml.
pub fn known_faces_of(file: &str) -> Vec<[f32; 4]> {
    known_faces()
        .into_iter()
        .find(|(f, _)| f == file)
        .unwrap_or_else(|| panic!("{file} has no known faces"))
        .1
}

/// The faces listed in tests/data/known_faces.toml: (photo file, boxes).
pub fn known_faces() -> Vec<(String, Vec<[f32; 4]>)> {
    faces_listed("known_faces.toml")
        .into_iter()
        .map(|p| (p.file, p.faces))
        .collect()
}

/// One photo of a face list in tests/data.
#[derive(serde::Deserialize)]
pub struct ListedPhoto {
    pub file: String,
    pub faces: Vec<[f32; 4]>,
    /// The photo whose picture this one holds too (in another format), if any.
    pub copy_of: Option<String>,
}

/// The photos of tests/data/`list` (known_faces.toml, bench_faces.toml).
pub fn faces_listed(list: &str) -> Vec<ListedPhoto> {
    #[derive(serde::Deserialize)]
    struct Listed {
        photo: Vec<ListedPhoto>,
    }
    let text = std::fs::read_to_string(root().join("tests/data").join(list)).unwrap();
    toml::from_str::<Listed>(&text).unwrap().photo
}

pub fn rect(b: &BoxF, img: &RgbImage) -> (u32, u32, u32, u32) {
    b.pixel_rect(img.width(), img.height())
        .expect("box inside the image")
}

/// Mean absolute Laplacian of the luma inside a rectangle: the high-frequency detail that makes
/// a face or a plate's characters recognisable.
pub fn detail(img: &RgbImage, (x, y, w, h): (u32, u32, u32, u32)) -> f64 {
    let luma = |xx: u32, yy: u32| {
        let p = img.get_pixel(xx, yy).0;
        0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64
    };
    let mut sum = 0.0;
    let mut n = 0.0;
    for yy in y + 1..y + h - 1 {
        for xx in x + 1..x + w - 1 {
            let l = 4.0 * luma(xx, yy)
                - luma(xx - 1, yy)
                - luma(xx + 1, yy)
                - luma(xx, yy - 1)
                - luma(xx, yy + 1);
            sum += l.abs();
            n += 1.0;
        }
    }
    sum / n
}

/// Fraction of pixels inside a rectangle that differ between two images of the same size.
pub fn changed(a: &RgbImage, b: &RgbImage, (x, y, w, h): (u32, u32, u32, u32)) -> f64 {
    let mut changed = 0;
    for yy in y..y + h {
        for xx in x..x + w {
            if a.get_pixel(xx, yy) != b.get_pixel(xx, yy) {
                changed += 1;
            }
        }
    }
    changed as f64 / (w * h) as f64
}

/// Asserts that a known object was redacted: nearly every pixel changed and detail destroyed.
pub fn assert_redacted(before: &RgbImage, after: &RgbImage, b: &BoxF, what: &str) {
    let r = rect(b, before);
    let changed = changed(before, after, r);
    let (d0, d1) = (detail(before, r), detail(after, r));
    assert!(
        changed > 0.9,
        "{what}: only {:.0} % of the pixels in {b:?} changed",
        changed * 100.0
    );
    assert!(
        d1 < 0.25 * d0,
        "{what}: detail in {b:?} went from {d0:.2} to {d1:.2} only"
    );
}

/// Reads a YOLO-OBB label file: "class x1 y1 x2 y2 x3 y3 x4 y4" in normalised coordinates.
pub fn labelled_plates(label: &Path, w: u32, h: u32) -> Vec<BoxF> {
    std::fs::read_to_string(label)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Vec<f32> = l
                .split_whitespace()
                .skip(1)
                .map(|t| t.parse().unwrap())
                .collect();
            let xs = v.iter().step_by(2).map(|x| x * w as f32);
            let ys = v.iter().skip(1).step_by(2).map(|y| y * h as f32);
            let (x1, x2) = xs.fold((f32::MAX, f32::MIN), |(a, b), x| (a.min(x), b.max(x)));
            let (y1, y2) = ys.fold((f32::MAX, f32::MIN), |(a, b), y| (a.min(y), b.max(y)));
            BoxF::new(x1, y1, x2, y2)
        })
        .collect()
}

/// `img` as a JPEG of the given quality, with no metadata.
pub fn jpeg(img: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, quality)
        .encode(
            img.as_raw(),
            img.width() as u16,
            img.height() as u16,
            jpeg_encoder::ColorType::Rgb,
        )
        .unwrap();
    out
}

pub fn rgb(bytes: &[u8]) -> RgbImage {
    image::load_from_memory(bytes)
        .expect("output decodes")
        .to_rgb8()
}

/// A JPEG header segment (marker and payload).
pub fn segment(marker: u8, payload: &[u8]) -> Vec<u8> {
    let mut s = vec![0xFF, marker];
    s.extend_from_slice(&(payload.len() as u16 + 2).to_be_bytes());
    s.extend_from_slice(payload);
    s
}

/// The markers of a JPEG's header segments, up to the start of scan.
pub fn jpeg_markers(bytes: &[u8]) -> Vec<u8> {
    let mut markers = Vec::new();
    let mut i = 2;
    while i + 4 <= bytes.len() && bytes[i] == 0xFF {
        let m = bytes[i + 1];
        markers.push(m);
        if m == 0xDA {
            break;
        }
        i += 2 + u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
    }
    markers
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
