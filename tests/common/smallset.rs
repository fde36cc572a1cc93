//! The small-object evaluation set and its scorer.
//!
//! The set is built, deterministically, from the real photos that scripts/fetch_test_images.py
//! fetches by sha256: every known face (tests/data/known_faces.toml; or, with
//! [`Faces::HeldApart`], the faces of tests/data/bench_faces.toml) scaled to 10, 12, 16 and 24 px
//! high and every labelled plate (litealpr's set and the fast-alpr car) scaled to 20, 28 and
//! 40 px wide, each with some of its surroundings, pasted over face- and plate-free photos
//! enlarged to 1280×720, 1920×1080, 3840×2160 and 4000×3000; then the same scenes cut by the
//! frame, in grayscale, with the picture drawn in the alpha plane only, and stored sideways with
//! an EXIF orientation. With [`Camera::Soft`] every scene is recorded as a camera would, blurred
//! and compressed; with [`Camera::Mirrored`] every scene is mirrored left to right.
//!
//! The scorer decides whether each object is covered in an output: at least 90 % of its detailed
//! pixels obscured and at least 80 % of its detail energy gone, where detail is luminance minus a
//! Gaussian of σ = the box's short side / 16 (at least 0.5 px), both taken inside the box. A
//! Gaussian blur of σ = 0.3 × the short side over the whole box passes; σ = 0.04 ×, JPEG
//! re-encoding and noise do not (tests/small_objects.rs checks these calibration points).

use image::imageops::{self, FilterType};
use image::{GrayImage, RgbImage, RgbaImage};
use veil::detect::Class;
use veil::geometry::BoxF;

use super::{CAR_PLATE, Lcg, faces_listed, known_faces, photo, segment, testdata};

pub const FACE_HEIGHTS: [u32; 4] = [10, 12, 16, 24];
pub const PLATE_WIDTHS: [u32; 3] = [20, 28, 40];
pub const CANVASES: [(u32, u32); 4] = [(1280, 720), (1920, 1080), (3840, 2160), (4000, 3000)];
const BACKGROUNDS: [&str; 4] = ["motorcycle_left.png", "coffee.png", "rocket.jpg", "ihc.png"];

/// The faces a set is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Faces {
    /// The known faces (tests/data/known_faces.toml), on which veil's settings were chosen.
    Known,
    /// The faces of tests/data/bench_faces.toml, on which no setting of veil was chosen: other
    /// people, poses and cameras, to show how the defaults carry over to faces they were not
    /// tuned on. A photo that copies another one is left out.
    HeldApart,
}

impl Faces {
    /// (photo file, face boxes) of every photo of the list.
    fn photos(self) -> Vec<(String, Vec<[f32; 4]>)> {
        match self {
            Faces::Known => known_faces(),
            Faces::HeldApart => faces_listed("bench_faces.toml")
                .into_iter()
                .filter(|p| p.copy_of.is_none())
                .map(|p| (p.file, p.faces))
                .collect(),
        }
    }
}

/// How the scenes are recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Camera {
    /// As drawn: each object as sharp as its downscale left it, plain and edge-cut frames
    /// stored as PNG.
    Sharp,
    /// As a camera records them: blurred by a Gaussian of σ = [`SOFT_SIGMA`] px (its optics and
    /// demosaicing), plain and edge-cut frames stored as JPEG at quality [`SOFT_QUALITY`] with
    /// 4:2:0 chroma. A downscale keeps more of a small face's detail than a camera records.
    Soft,
    /// As [`Camera::Sharp`], each scene mirrored left to right: the same objects over the same
    /// backgrounds, each seen the other way round (a face in three-quarter view turned the other
    /// way, an object cut by the left edge cut by the right one). A detector is not symmetric,
    /// and the thresholds were chosen on the scenes as drawn: what they cover here shows how
    /// much of the figures is chance.
    Mirrored,
}

pub const SOFT_SIGMA: f32 = 0.7;
pub const SOFT_QUALITY: u8 = 75;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Plain,
    /// Objects centred near the frame's edges, so that the frame cuts 30–60 % of each.
    EdgeCut,
    Gray,
    /// RGB all black, the picture in the alpha plane (255 − luminance): it shows on a white page.
    AlphaOnly,
    /// JPEG stored rotated a quarter turn, with EXIF orientation 6.
    Exif,
}

/// One object the scorer knows of, in pixels of the image as displayed.
#[derive(Debug, Clone)]
pub struct Truth {
    pub class: Class,
    pub bbox: BoxF,
    /// "face 10 px", "plate 28 px", …
    pub bucket: String,
    /// The photo it was taken from, and which of its objects: "zidane.jpg #2".
    pub origin: String,
}

pub struct Case {
    pub name: String,
    pub variant: Variant,
    pub bytes: Vec<u8>,
    /// The picture as a viewer sees it before anonymisation; for AlphaOnly, over a white and
    /// over a black page.
    pub views: Vec<RgbImage>,
    pub truth: Vec<Truth>,
}

/// An object with some of its surroundings, and where the object lies in it.
struct Source {
    class: Class,
    patch: RgbImage,
    bbox: BoxF,
    origin: String,
}

/// The object `b` of `img` with `gx` (`gy`) of its width (height) around it on each side.
fn crop(img: &RgbImage, class: Class, b: &BoxF, (gx, gy): (f32, f32), origin: String) -> Source {
    let dx = b.width() * gx;
    let dy = b.height() * gy;
    let x1 = (b.x1 - dx).max(0.0).floor() as u32;
    let y1 = (b.y1 - dy).max(0.0).floor() as u32;
    let x2 = ((b.x2 + dx).ceil() as u32).min(img.width());
    let y2 = ((b.y2 + dy).ceil() as u32).min(img.height());
    Source {
        class,
        patch: imageops::crop_imm(img, x1, y1, x2 - x1, y2 - y1).to_image(),
        bbox: BoxF::new(
            b.x1 - x1 as f32,
            b.y1 - y1 as f32,
            b.x2 - x1 as f32,
            b.y2 - y1 as f32,
        ),
        origin,
    }
}

/// Every face of `faces` and every plate, at its source size, with surroundings. A face that
/// its photo's frame cuts is left out: it would be pasted cut, and the set's edge-cut scenes
/// cut faces themselves, by a known share.
fn sources(faces: Faces) -> Vec<Source> {
    let mut out = Vec::new();
    for (file, boxes) in faces.photos() {
        let img = super::rgb(&photo(&file));
        let frame = BoxF::frame(img.dimensions());
        for (i, b) in boxes.into_iter().map(BoxF::from).enumerate() {
            if b.x1 > frame.x1 && b.y1 > frame.y1 && b.x2 < frame.x2 && b.y2 < frame.y2 {
                let origin = format!("{file} #{}", i + 1);
                out.push(crop(&img, Class::Face, &b, (0.5, 0.4), origin));
            }
        }
    }
    let car = super::rgb(&photo("fast_alpr_car.png"));
    let mut plates = vec![(
        "fast_alpr_car.png".to_string(),
        car,
        vec![BoxF::from(CAR_PLATE)],
    )];
    let dir = testdata("plates");
    let mut images: Vec<_> = std::fs::read_dir(dir.join("images"))
        .expect("plate set fetched")
        .map(|e| e.unwrap().path())
        .collect();
    images.sort();
    for path in images {
        let img = super::rgb(&std::fs::read(&path).unwrap());
        let label = dir
            .join("labels")
            .join(path.with_extension("txt").file_name().unwrap());
        let boxes = super::labelled_plates(&label, img.width(), img.height());
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        plates.push((file, img, boxes));
    }
    // a plate with the car around it (a plate width on each side, as far as the photo goes):
    // cameras see plates on cars, and plate detectors look for both
    for (file, img, boxes) in plates {
        for (i, b) in boxes.iter().enumerate() {
            let origin = format!("{file} #{}", i + 1);
            out.push(crop(&img, Class::Plate, b, (1.0, 3.0), origin));
        }
    }
    out
}

/// A source scaled so that its object is `size` px high (faces) or wide (plates).
fn scaled(s: &Source, size: u32) -> Source {
    let k = size as f32 / s.class.size(&s.bbox);
    let (w, h) = (
        ((s.patch.width() as f32 * k).round() as u32).max(1),
        ((s.patch.height() as f32 * k).round() as u32).max(1),
    );
    Source {
        class: s.class,
        patch: imageops::resize(&s.patch, w, h, FilterType::Lanczos3),
        bbox: BoxF::new(s.bbox.x1 * k, s.bbox.y1 * k, s.bbox.x2 * k, s.bbox.y2 * k),
        origin: s.origin.clone(),
    }
}

/// A background photo enlarged and cropped to fill `w × h`.
fn background(index: usize, w: u32, h: u32) -> RgbImage {
    let img = super::rgb(&photo(BACKGROUNDS[index % BACKGROUNDS.len()]));
    let k = (w as f32 / img.width() as f32).max(h as f32 / img.height() as f32);
    let (sw, sh) = (
        (img.width() as f32 * k).ceil() as u32,
        (img.height() as f32 * k).ceil() as u32,
    );
    let big = imageops::resize(&img, sw, sh, FilterType::Triangle);
    imageops::crop_imm(&big, (sw - w) / 2, (sh - h) / 2, w, h).to_image()
}

/// Pastes `s` with its top-left corner at (x, y) (may be outside the canvas), fading the
/// surroundings' outer band into the background and leaving the objects already placed
/// (`placed`, each with a quarter of its size around it) as they are; returns the object's box
/// in the canvas.
fn paste(canvas: &mut RgbImage, s: &Source, x: i64, y: i64, placed: &[Truth]) -> BoxF {
    let (pw, ph) = s.patch.dimensions();
    let ramp = (pw.min(ph) as f32 * 0.2).max(1.0);
    let keep: Vec<BoxF> = placed.iter().map(|t| t.bbox.grow(0.25)).collect();
    for py in 0..ph {
        for px in 0..pw {
            let (cx, cy) = (x + px as i64, y + py as i64);
            if cx < 0 || cy < 0 || cx >= canvas.width() as i64 || cy >= canvas.height() as i64 {
                continue;
            }
            let (fx, fy) = (cx as f32 + 0.5, cy as f32 + 0.5);
            if keep
                .iter()
                .any(|k| fx >= k.x1 && fx < k.x2 && fy >= k.y1 && fy < k.y2)
            {
                continue;
            }
            let edge = (px.min(pw - 1 - px).min(py).min(ph - 1 - py)) as f32 + 0.5;
            let a = (edge / ramp).min(1.0);
            let dst = canvas.get_pixel_mut(cx as u32, cy as u32);
            let src = s.patch.get_pixel(px, py);
            for c in 0..3 {
                dst.0[c] = (src.0[c] as f32 * a + dst.0[c] as f32 * (1.0 - a)).round() as u8;
            }
        }
    }
    BoxF::new(
        x as f32 + s.bbox.x1,
        y as f32 + s.bbox.y1,
        x as f32 + s.bbox.x2,
        y as f32 + s.bbox.y2,
    )
}

fn bucket(class: Class, size: u32) -> String {
    format!("{} {size} px", class.as_str())
}

/// One scene: every source at every size, spread over a jittered grid (or along the edges).
fn scene(index: usize, canvas: (u32, u32), edge_cut: bool, faces: Faces) -> (RgbImage, Vec<Truth>) {
    scene_with(index, canvas, edge_cut, faces, &FACE_HEIGHTS, &PLATE_WIDTHS)
}

/// A scene with the faces of `faces` at `face_heights` and plates of `plate_widths` (in
/// pixels), spread over a jittered grid (or along the edges).
pub fn scene_with(
    index: usize,
    (w, h): (u32, u32),
    edge_cut: bool,
    faces: Faces,
    face_heights: &[u32],
    plate_widths: &[u32],
) -> (RgbImage, Vec<Truth>) {
    let mut canvas = background(index, w, h);
    let mut rng = Lcg(index as u64 * 7919 + w as u64);
    let mut objects: Vec<(Source, u32)> = Vec::new();
    for s in sources(faces) {
        let sizes = match s.class {
            Class::Face => face_heights,
            Class::Plate => plate_widths,
        };
        for &size in sizes {
            objects.push((scaled(&s, size), size));
        }
    }
    // shuffle so that sizes and kinds mix across the frame
    for i in (1..objects.len()).rev() {
        objects.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut truth = Vec::new();
    if edge_cut {
        // along the four edges in turn, each object's centre 0–20 % of its size inside the frame
        let perimeter_slots = 2 * (w + h) / 90;
        for (i, (s, size)) in objects.iter().enumerate().take(perimeter_slots as usize) {
            let (pw, ph) = (s.patch.width() as i64, s.patch.height() as i64);
            let (bx, by) = ((s.bbox.x1 + s.bbox.x2) / 2.0, (s.bbox.y1 + s.bbox.y2) / 2.0);
            let (bw, bh) = (s.bbox.width(), s.bbox.height());
            let inside_x = (rng.below(20) as f32 / 100.0 * bw) as i64;
            let inside_y = (rng.below(20) as f32 / 100.0 * bh) as i64;
            let mut along = |len: u32, p: i64| (30 + rng.below(len as u64 - 60 - p as u64)) as i64;
            let (x, y) = match i % 4 {
                0 => (inside_x - bx as i64, along(h, ph)),
                1 => (w as i64 - inside_x - bx as i64, along(h, ph)),
                2 => (along(w, pw), inside_y - by as i64),
                _ => (along(w, pw), h as i64 - inside_y - by as i64),
            };
            let bbox = paste(&mut canvas, s, x, y, &truth);
            truth.push(Truth {
                class: s.class,
                bbox,
                bucket: bucket(s.class, *size),
                origin: s.origin.clone(),
            });
        }
    } else {
        let n = objects.len() as u32;
        let cols = ((n as f32 * w as f32 / h as f32).sqrt().ceil() as u32).max(1);
        let rows = n.div_ceil(cols);
        let (cw, ch) = (w / cols, h / rows);
        for (i, (s, size)) in objects.iter().enumerate() {
            let (c, r) = (i as u32 % cols, i as u32 / cols);
            // the object itself anywhere in its cell; its surroundings may reach the next
            let (bw, bh) = (s.bbox.width().ceil() as u32, s.bbox.height().ceil() as u32);
            let bx = c * cw + rng.below(cw.saturating_sub(bw) as u64 + 1) as u32;
            let by = r * ch + rng.below(ch.saturating_sub(bh) as u64 + 1) as u32;
            let (x, y) = (
                bx as i64 - s.bbox.x1.round() as i64,
                by as i64 - s.bbox.y1.round() as i64,
            );
            let bbox = paste(&mut canvas, s, x, y, &truth);
            truth.push(Truth {
                class: s.class,
                bbox,
                bucket: bucket(s.class, *size),
                origin: s.origin.clone(),
            });
        }
    }
    (canvas, truth)
}

/// A crowd: the faces of `faces`, `height` px high, each with the surroundings the set cuts
/// around it, packed edge to edge in rows over a background, in turn until the frame is full.
/// Faces this dense lie across every edge between two tiles of a detector's passes.
pub fn crowd((w, h): (u32, u32), height: u32, faces: Faces) -> Case {
    let mut canvas = background(0, w, h);
    let people: Vec<Source> = sources(faces)
        .iter()
        .filter(|s| s.class == Class::Face)
        .map(|s| scaled(s, height))
        .collect();
    let mut truth = Vec::new();
    let mut next = people.iter().cycle();
    let mut y = 0;
    while let Some(row) = people.iter().map(|s| s.patch.height()).max()
        && y + row <= h
    {
        let mut x = 0;
        while let Some(s) = next.next()
            && x + s.patch.width() <= w
        {
            let bbox = paste(&mut canvas, s, x as i64, y as i64, &truth);
            truth.push(Truth {
                class: Class::Face,
                bbox,
                bucket: bucket(Class::Face, height),
                origin: s.origin.clone(),
            });
            x += s.patch.width();
        }
        y += row;
    }
    Case {
        name: format!("crowd-{w}x{h}"),
        variant: Variant::Plain,
        bytes: png(&canvas.clone().into()),
        views: vec![canvas],
        truth,
    }
}

pub fn png(img: &image::DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// A JPEG of `display` stored a quarter turn anticlockwise, tagged with EXIF orientation 6.
fn sideways_jpeg(display: &RgbImage) -> Vec<u8> {
    let jpeg = super::jpeg(&imageops::rotate270(display), 95);
    // TIFF header, IFD0 with one entry: Orientation (SHORT) = 6
    let mut exif = b"Exif\0\0II\x2a\x00\x08\x00\x00\x00\x01\x00".to_vec();
    exif.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0]);
    let mut out = jpeg[..2].to_vec();
    out.extend(segment(0xE1, &exif));
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn luma(p: &image::Rgb<u8>) -> u8 {
    ((77 * p.0[0] as u32 + 150 * p.0[1] as u32 + 29 * p.0[2] as u32) >> 8) as u8
}

/// One case of the set made of `faces`.
pub fn case(
    index: usize,
    canvas: (u32, u32),
    variant: Variant,
    faces: Faces,
    camera: Camera,
) -> Case {
    let (mut display, mut truth) = scene(index, canvas, variant == Variant::EdgeCut, faces);
    match camera {
        Camera::Sharp => {}
        Camera::Soft => display = imageops::blur(&display, SOFT_SIGMA),
        Camera::Mirrored => {
            imageops::flip_horizontal_in_place(&mut display);
            let w = display.width() as f32;
            for t in &mut truth {
                t.bbox = BoxF::new(w - t.bbox.x2, t.bbox.y1, w - t.bbox.x1, t.bbox.y2);
            }
        }
    }
    let (views, bytes) = match variant {
        Variant::Plain | Variant::EdgeCut if camera == Camera::Soft => {
            let bytes = super::jpeg(&display, SOFT_QUALITY);
            (vec![super::rgb(&bytes)], bytes)
        }
        Variant::Plain | Variant::EdgeCut => {
            let bytes = png(&display.clone().into());
            (vec![display], bytes)
        }
        Variant::Gray => {
            let gray = GrayImage::from_fn(display.width(), display.height(), |x, y| {
                image::Luma([luma(display.get_pixel(x, y))])
            });
            let shown = RgbImage::from_fn(gray.width(), gray.height(), |x, y| {
                image::Rgb([gray.get_pixel(x, y).0[0]; 3])
            });
            (vec![shown], png(&gray.into()))
        }
        Variant::AlphaOnly => {
            let rgba = RgbaImage::from_fn(display.width(), display.height(), |x, y| {
                image::Rgba([0, 0, 0, 255 - luma(display.get_pixel(x, y))])
            });
            (vec![over(&rgba, 255), over(&rgba, 0)], png(&rgba.into()))
        }
        Variant::Exif => {
            let bytes = sideways_jpeg(&display);
            (vec![display], bytes)
        }
    };
    let (w, h) = canvas;
    let recorded = match camera {
        Camera::Sharp => "",
        Camera::Soft => "-soft",
        Camera::Mirrored => "-mirrored",
    };
    Case {
        name: format!("{index:02}-{w}x{h}-{variant:?}{recorded}"),
        variant,
        bytes,
        views,
        truth,
    }
}

/// The frames of the set an evaluation anonymises.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Frames {
    /// Every canvas size plain, and the variants at the two smaller sizes.
    All,
    /// All but the plain 3840×2160 and 4000×3000 frames: they hold the objects of the smaller
    /// frames at the same sizes in source pixels, which every detection pass shows the model at
    /// the same sizes, and take half of the set's detection time.
    UpTo1080p,
}

/// The cases of the set that `frames` selects.
pub fn cases(frames: Frames) -> Vec<(usize, (u32, u32), Variant)> {
    let mut list = Vec::new();
    for (i, &c) in CANVASES.iter().enumerate() {
        list.push((i, c, Variant::Plain));
    }
    for (i, v) in [
        Variant::EdgeCut,
        Variant::Gray,
        Variant::AlphaOnly,
        Variant::Exif,
    ]
    .into_iter()
    .enumerate()
    {
        for (j, &c) in CANVASES[..2].iter().enumerate() {
            list.push((4 + 2 * i + j, c, v));
        }
    }
    if frames == Frames::UpTo1080p {
        list.retain(|&(_, (w, h), _)| w <= 1920 && h <= 1080);
    }
    list
}

/// An RGBA picture composited over a grey-level page.
pub fn over(rgba: &RgbaImage, page: u8) -> RgbImage {
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let p = rgba.get_pixel(x, y).0;
        let a = p[3] as u32;
        image::Rgb(
            [0, 1, 2].map(|c| ((p[c] as u32 * a + page as u32 * (255 - a) + 127) / 255) as u8),
        )
    })
}

/// The views of an output a viewer could be shown: as is, or over a white and a black page
/// when it has an alpha channel.
pub fn output_views(bytes: &[u8]) -> Vec<RgbImage> {
    let img = image::load_from_memory(bytes).expect("output decodes");
    if img.color().has_alpha() {
        let rgba = img.to_rgba8();
        vec![over(&rgba, 255), over(&rgba, 0)]
    } else {
        vec![img.to_rgb8()]
    }
}

/// Luminance as floats.
pub fn luminance(img: &RgbImage) -> Vec<f32> {
    img.pixels().map(|p| luma(p) as f32).collect()
}

/// A Gaussian blur of σ of a `w × h` plane, the kernel renormalised at the plane's edges.
pub fn gaussian(plane: &[f32], w: usize, h: usize, sigma: f32) -> Vec<f32> {
    let r = (3.0 * sigma).ceil() as i64 + 1;
    let kernel: Vec<f32> = (-r..=r)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    // along one axis: `step` between neighbours, `len` positions on the axis, `pos` of index i
    let pass = |src: &[f32], step: usize, len: usize, pos: &dyn Fn(usize) -> usize| {
        (0..w * h)
            .map(|i| {
                let (mut s, mut total) = (0.0, 0.0);
                for (k, &g) in kernel.iter().enumerate() {
                    let p = pos(i) as i64 + k as i64 - r;
                    if (0..len as i64).contains(&p) {
                        s += g * src[(i as i64 + (p - pos(i) as i64) * step as i64) as usize];
                        total += g;
                    }
                }
                s / total
            })
            .collect::<Vec<f32>>()
    };
    let horiz = pass(plane, 1, w, &|i| i % w);
    pass(&horiz, w, h, &|i| i / w)
}

/// Detail of the luminance inside `rect` (x, y, w, h): luminance minus its Gaussian blur of
/// σ, both taken inside the rectangle only, so that what lies around an object does not count
/// as its detail.
fn detail(lum: &[f32], width: u32, (x, y, w, h): (u32, u32, u32, u32), sigma: f32) -> Vec<f32> {
    let (w, h) = (w as usize, h as usize);
    let inside: Vec<f32> = (0..w * h)
        .map(|i| lum[(y as usize + i / w) * width as usize + x as usize + i % w])
        .collect();
    let smooth = gaussian(&inside, w, h, sigma);
    inside.iter().zip(smooth).map(|(v, s)| v - s).collect()
}

/// How much of an object is obscured in `after` compared with `before`.
#[derive(Debug, Clone, Copy)]
pub struct Coverage {
    /// Fraction of the detailed pixels whose detail is at least halved.
    pub obscured: f32,
    /// Fraction of the detail energy that is gone.
    pub energy_gone: f32,
}

impl Coverage {
    pub fn covered(&self) -> bool {
        self.obscured >= 0.9 && self.energy_gone >= 0.8
    }
}

/// Luminance planes of one image, for scoring.
pub struct Plane {
    lum: Vec<f32>,
    width: u32,
    height: u32,
}

impl Plane {
    pub fn new(img: &RgbImage) -> Self {
        Self {
            lum: luminance(img),
            width: img.width(),
            height: img.height(),
        }
    }
}

/// The coverage of the part of `b` inside the image. `None` when that part has no detail at
/// all (nothing to see, e.g. a picture drawn in the alpha plane viewed over a black page).
pub fn coverage(before: &Plane, after: &Plane, b: &BoxF) -> Option<Coverage> {
    let (w, h) = (before.width, before.height);
    assert_eq!((w, h), (after.width, after.height), "output size");
    let rect = b.pixel_rect(w, h)?;
    let sigma = (b.width().min(b.height()) / 16.0).max(0.5);
    let d0 = detail(&before.lum, w, rect, sigma);
    let d1 = detail(&after.lum, w, rect, sigma);
    let e0: f32 = d0.iter().map(|d| d * d).sum();
    if e0 < 1e-3 * d0.len() as f32 {
        return None;
    }
    let e1: f32 = d1.iter().map(|d| d * d).sum();
    let rms = (e0 / d0.len() as f32).sqrt();
    let detailed: Vec<(f32, f32)> = d0
        .iter()
        .zip(&d1)
        .filter(|(a, _)| a.abs() >= 0.5 * rms)
        .map(|(a, b)| (*a, *b))
        .collect();
    let obscured = detailed
        .iter()
        .filter(|(a, b)| b.abs() <= 0.5 * a.abs())
        .count() as f32
        / detailed.len().max(1) as f32;
    Some(Coverage {
        obscured,
        energy_gone: 1.0 - (e1 / e0).min(1.0),
    })
}

/// Over-redaction of an output: (pixels changed, pixels looked at) outside every object's box
/// grown to twice its size (the window a redaction may fade into), in the first view. A pixel
/// counts as changed when its luminance moved by more than 24 (JPEG re-encoding moves few).
pub fn over_redaction(case: &Case, output: &[u8]) -> (u64, u64) {
    let before = Plane::new(&case.views[0]);
    let after = Plane::new(&output_views(output)[0]);
    let (w, h) = (before.width, before.height);
    let mut inside = vec![false; (w * h) as usize];
    for t in &case.truth {
        if let Some((x, y, rw, rh)) = t.bbox.grow(0.5).pixel_rect(w, h) {
            for row in y..y + rh {
                inside[(row * w + x) as usize..(row * w + x + rw) as usize].fill(true);
            }
        }
    }
    let (mut changed, mut outside) = (0, 0);
    for (i, (b, a)) in before.lum.iter().zip(&after.lum).enumerate() {
        if !inside[i] {
            outside += 1;
            changed += u64::from((b - a).abs() > 24.0);
        }
    }
    (changed, outside)
}

/// For each object of a case, whether it is covered in every view of an output.
pub fn score(case: &Case, output: &[u8]) -> Vec<bool> {
    let after: Vec<Plane> = output_views(output).iter().map(Plane::new).collect();
    let before: Vec<Plane> = case.views.iter().map(Plane::new).collect();
    assert_eq!(
        after.len(),
        before.len(),
        "{}: views of the output",
        case.name
    );
    case.truth
        .iter()
        .map(|t| {
            before
                .iter()
                .zip(&after)
                .all(|(b, a)| coverage(b, a, &t.bbox).is_none_or(|c| c.covered()))
        })
        .collect()
}

/// Coverage of the whole set by one engine.
pub struct Evaluation {
    /// Per bucket ("face 10 px"): (covered, total).
    pub buckets: std::collections::BTreeMap<String, (u32, u32)>,
    /// "case bucket found, not covered" or "case bucket not found" for every object not
    /// covered.
    pub misses: Vec<String>,
    /// Per case name: seconds spent in `anonymise`, and the milliseconds of its detection
    /// and of its re-check of redacted regions.
    pub seconds: Vec<(String, f64, f64, f64)>,
    /// Pixels changed and pixels looked at, away from every object (see `over_redaction`).
    pub over_redaction: (u64, u64),
    /// Every output, with the objects its case holds (for [`found_again`]).
    pub published: Vec<(Vec<Truth>, Vec<u8>)>,
}

impl Evaluation {
    /// The share of pixels away from every object that the anonymisation changed.
    pub fn over_redacted(&self) -> f64 {
        self.over_redaction.0 as f64 / self.over_redaction.1.max(1) as f64
    }
}

/// Runs `work` on every one of `items` on `threads` workers, each with its own pipeline of
/// `engine`, taking the next item as it finishes one.
fn on_workers<T: Sync>(
    engine: &veil::pipeline::Engine,
    items: &[T],
    threads: usize,
    work: impl Fn(&mut veil::pipeline::Pipeline, &T) + Sync,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut pipeline = engine.pipeline().expect("sessions load");
                while let Some(item) = items.get(next.fetch_add(1, Ordering::SeqCst)) {
                    work(&mut pipeline, item);
                }
            });
        }
    });
}

/// Whether `detections` find object `t`: one of its class with an IoU over 0.3 with it.
fn finds(detections: &[veil::detect::Detection], t: &Truth) -> bool {
    detections
        .iter()
        .any(|d| d.class == t.class && d.bbox.iou(&t.bbox) > 0.3)
}

/// Anonymises the `frames` of the set made of `faces` and recorded by `camera` with `engine` on
/// `threads` workers and scores the outputs.
pub fn evaluate(
    engine: &veil::pipeline::Engine,
    threads: usize,
    faces: Faces,
    camera: Camera,
    frames: Frames,
) -> Evaluation {
    let result = std::sync::Mutex::new(Evaluation {
        buckets: Default::default(),
        misses: Vec::new(),
        seconds: Vec::new(),
        over_redaction: (0, 0),
        published: Vec::new(),
    });
    on_workers(
        engine,
        &cases(frames),
        threads,
        |pipeline, &(index, canvas, variant)| {
            let case = case(index, canvas, variant, faces, camera);
            let t = std::time::Instant::now();
            let mut out = pipeline
                .anonymise(&case.bytes, &[veil::rendition::Rendition::default()])
                .expect("the set's images are valid");
            let secs = t.elapsed().as_secs_f64();
            let bytes = out.outputs.swap_remove(0).bytes;
            let scores = score(&case, &bytes);
            let (changed, outside) = over_redaction(&case, &bytes);
            let mut r = result.lock().unwrap();
            r.over_redaction.0 += changed;
            r.over_redaction.1 += outside;
            let t = &out.report.timings;
            r.seconds
                .push((case.name.clone(), secs, t.detect_ms, t.verify_ms));
            for (t, ok) in case.truth.iter().zip(scores) {
                let e = r.buckets.entry(t.bucket.clone()).or_default();
                e.1 += 1;
                if ok {
                    e.0 += 1;
                } else {
                    // found but not covered, or not found at all: the two call for different
                    // remedies (redaction or detection)
                    let how = if finds(&out.report.detections, t) {
                        "found, not covered"
                    } else {
                        "not found"
                    };
                    r.misses
                        .push(format!("{} {} ({}) {how}", case.name, t.bucket, t.origin));
                }
            }
            r.published.push((case.truth, bytes));
        },
    );
    result.into_inner().unwrap()
}

/// Per bucket, how many objects of the evaluation's outputs `engine` still finds (as a miss
/// counts as found: [`finds`]) when it runs them through detection again, on `threads`
/// workers. With the engine's re-check off this is full detection at the detection
/// thresholds: what the re-check is there to bring to none.
pub fn found_again(
    engine: &veil::pipeline::Engine,
    eval: &Evaluation,
    threads: usize,
) -> std::collections::BTreeMap<String, u32> {
    let found = std::sync::Mutex::new(std::collections::BTreeMap::new());
    on_workers(
        engine,
        &eval.published,
        threads,
        |pipeline, (truth, bytes)| {
            let again = pipeline
                .anonymise(bytes, &[veil::rendition::Rendition::default()])
                .expect("veil reads its own outputs");
            let mut found = found.lock().unwrap();
            for t in truth {
                let hit = finds(&again.report.detections, t);
                *found.entry(t.bucket.clone()).or_insert(0) += u32::from(hit);
            }
        },
    );
    found.into_inner().unwrap()
}
