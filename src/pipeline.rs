//! The anonymisation pipeline: bytes in, anonymised renditions and a report out.
//!
//! Pure with respect to the outside world: no files, no network, no AWS. An [`Engine`] holds the
//! verified models and settings and is shared; each worker thread asks it for a [`Pipeline`],
//! which owns its ONNX Runtime sessions and scratch buffers.

use std::time::Instant;

use fast_image_resize::Resizer;

use crate::codec::{self, EncodeError, InputError, Limits};
use crate::detect::{DetectError, Detection, Detector, DetectorSettings, Redacted};
use crate::geometry::BoxF;
use crate::manifest::{VerifiedModel, sha256_hex};
use crate::recheck;
use crate::redact::{RedactionConfig, Redactor};
use crate::rendition::Rendition;
use crate::report::{ModelInfo, ModelPlan, OutputInfo, Report, Timings};
use crate::runtime::{Runtime, RuntimeError};

/// An image extended by its mirror image over `margin` pixels on every side, as detection and
/// the re-check see it, and the map between its pixels and the image's.
struct Mirrored {
    image: image::RgbImage,
    shift: f32,
    /// The image's own frame within `image`.
    frame: BoxF,
}

impl Mirrored {
    fn new(img: &image::RgbImage, margin: u32) -> Self {
        let shift = margin as f32;
        let (w, h) = img.dimensions();
        Self {
            image: crate::detect::input::reflect_pad(img, margin),
            shift,
            frame: BoxF::new(shift, shift, shift + w as f32, shift + h as f32),
        }
    }

    /// A box in the image's pixels, in the extended image's.
    fn inward(&self, b: &BoxF) -> BoxF {
        b.unscale((1.0, 1.0), (self.shift, self.shift))
    }

    /// A box in the extended image's pixels, in the image's.
    fn outward(&self, b: &BoxF) -> BoxF {
        b.unscale((1.0, 1.0), (-self.shift, -self.shift))
    }
}

/// How much two boxes of one class must overlap to be taken for one object found twice: in two
/// views of a translucent picture, which show mostly the same pixels, or by two models of the
/// class. Boxes of two objects side by side in a crowd overlap far less.
const SAME_OBJECT_IOU: f32 = 0.8;

/// Pixels added on every side of both boxes before they are compared: a model's box around an
/// object of a few pixels moves by a pixel between two views whose pixels differ a little, and
/// on a 7 px box that pixel alone takes the overlap under [`SAME_OBJECT_IOU`] (astronaut.png
/// with one translucent pixel: a 7 px false face at 0.07 found in two views 1 px apart, IoU
/// 0.73). Two 10 px faces side by side, 8 px apart, still overlap by 0.3 at most.
const SAME_OBJECT_SLACK_PX: f32 = 2.0;

/// How much of the larger of two boxes of one class the smaller must be, when it lies within
/// it, for the two to be taken for one object found twice. A face model that looks at a picture
/// both ways keeps the better box of the two looks, and which one is better can change between
/// views whose pixels differ a little: astronaut.png with one translucent pixel, a false face
/// in the corner boxed 17 × 20 px in one view and 15 × 17 px within it in another (IoU 0.77
/// once grown). A face inside a box around a whole head is a quarter of it or less.
const SAME_OBJECT_NESTED: f32 = 0.6;

/// Whether `a` and `b` are boxes of one object: of one class, and, once grown by
/// [`SAME_OBJECT_SLACK_PX`], overlapping by [`SAME_OBJECT_IOU`] or the smaller lying within the
/// larger and at least [`SAME_OBJECT_NESTED`] of its area.
fn same_object(a: &Detection, b: &Detection) -> bool {
    let grown = |d: &Detection| d.bbox.grown_by(SAME_OBJECT_SLACK_PX, SAME_OBJECT_SLACK_PX);
    let (a_box, b_box) = (grown(a), grown(b));
    let (small, large) = if a_box.area() <= b_box.area() {
        (a_box, b_box)
    } else {
        (b_box, a_box)
    };
    let nested = large.contains(&small) && small.area() >= SAME_OBJECT_NESTED * large.area();
    a.class == b.class && (a_box.iou(&b_box) >= SAME_OBJECT_IOU || nested)
}

/// `detections`, in their order, with each object found more than once kept once: its
/// best-scoring find, with the box grown to the union of the others' boxes (so nothing any of
/// them covered is left out). Detection and the re-check look at every view of a picture;
/// without this a photo with a few translucent pixels had each object redacted, re-checked and
/// counted once per view (a palette PNG of astronaut.png: 60 detections, each object three
/// times).
fn merge_repeats(detections: Vec<Detection>) -> Vec<Detection> {
    let mut by_score: Vec<usize> = (0..detections.len()).collect();
    by_score.sort_by(|&a, &b| detections[b].score.total_cmp(&detections[a].score));
    let mut boxes: Vec<Option<BoxF>> = vec![None; detections.len()];
    let mut kept: Vec<usize> = Vec::new();
    for i in by_score {
        let d = &detections[i];
        let same = kept
            .iter()
            .copied()
            .find(|&k| same_object(&detections[k], d));
        match same {
            Some(k) => boxes[k] = boxes[k].map(|b| b.union(&d.bbox)),
            None => {
                boxes[i] = Some(d.bbox);
                kept.push(i);
            }
        }
    }
    detections
        .into_iter()
        .zip(boxes)
        .filter_map(|(d, b)| b.map(|bbox| Detection { bbox, ..d }))
        .collect()
}

/// Why one image produced no output. Nothing is ever returned alongside an error.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("rejected input: {0}")]
    Input(#[from] InputError),
    #[error(transparent)]
    Detect(#[from] DetectError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// One anonymised copy.
#[derive(Debug, Clone)]
pub struct Output {
    pub bytes: Vec<u8>,
    pub info: OutputInfo,
}

#[derive(Debug, Clone)]
pub struct Anonymised {
    /// One per requested rendition, in the same order.
    pub outputs: Vec<Output>,
    pub report: Report,
}

/// Verified models and settings, shared by all workers.
pub struct Engine {
    runtime: Runtime,
    models: Vec<(VerifiedModel, DetectorSettings)>,
    redaction: RedactionConfig,
    limits: Limits,
}

impl Engine {
    pub fn new(
        runtime: Runtime,
        models: Vec<(VerifiedModel, DetectorSettings)>,
        redaction: RedactionConfig,
        limits: Limits,
    ) -> Self {
        Self {
            runtime,
            models,
            redaction,
            limits,
        }
    }

    /// What this engine does to an image, as text: veil's version, each model's sha256 and
    /// settings, the redaction settings, and the ONNX Runtime build and threads (a different
    /// runtime can round scores differently, and so blur differently).
    fn description(&self) -> String {
        let mut text = format!("veil {}\n", env!("CARGO_PKG_VERSION"));
        for (model, settings) in &self.models {
            text += &format!("{} {settings:?}\n", model.entry.sha256);
        }
        text += &format!("{:?}\n", self.redaction);
        text += &format!(
            "{}\nintra_threads {}\n",
            ort::info(),
            self.runtime.config().intra_threads
        );
        text
    }

    /// A pipeline with its own sessions, for one worker thread.
    pub fn pipeline(&self) -> Result<Pipeline, RuntimeError> {
        let mut detectors = Vec::with_capacity(self.models.len());
        let mut infos = Vec::with_capacity(self.models.len());
        for (model, settings) in &self.models {
            let e = &model.entry;
            let (session, device) = self.runtime.session(&e.name, &model.bytes)?;
            detectors.push(Detector::new(
                e.name.clone(),
                e.class,
                e.family.family(),
                session,
                *settings,
            ));
            infos.push(ModelInfo {
                name: e.name.clone(),
                family: e.family,
                class: e.class,
                sha256: e.sha256.clone(),
                device,
            });
        }
        let devices: Vec<_> = infos.iter().map(|i| format!("{:?}", i.device)).collect();
        let fingerprint =
            sha256_hex(format!("{}devices {}", self.description(), devices.join(",")).as_bytes())
                [..16]
                .to_string();
        Ok(Pipeline {
            fingerprint,
            detectors,
            models: infos,
            redaction: self.redaction,
            limits: self.limits,
            redactor: Redactor::default(),
            resizer: Resizer::new(),
        })
    }
}

pub struct Pipeline {
    fingerprint: String,
    detectors: Vec<Detector>,
    models: Vec<ModelInfo>,
    redaction: RedactionConfig,
    limits: Limits,
    redactor: Redactor,
    resizer: Resizer,
}

impl Pipeline {
    /// Identifies what this pipeline does to an image: veil's version, the models and settings,
    /// the ONNX Runtime build, threads and the device each model actually runs on, hashed. The
    /// daemon puts it in destination keys, so a changed pipeline writes new copies instead of
    /// being taken for work already done.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Runs every detector on decoded pixels.
    pub fn detect(&mut self, rgb: &image::RgbImage) -> Result<Vec<Detection>, DetectError> {
        self.detect_within(rgb, None)
    }

    /// Runs every detector on `img`, whose picture lies at `frame` where `img` extends it with
    /// a border (objects reaching past it are cut by the frame, see [`Detector::detect`]).
    fn detect_within(
        &mut self,
        img: &image::RgbImage,
        frame: Option<&BoxF>,
    ) -> Result<Vec<Detection>, DetectError> {
        let mut detections = Vec::new();
        for detector in &mut self.detectors {
            detections.extend(detector.detect(img, frame)?);
        }
        Ok(detections)
    }

    /// Runs every detector on every view of a picture a viewer could be shown (see
    /// [`codec::Picture::views`]): the colour planes, and for translucent pictures the
    /// composites over a white and a black page. Each view is first extended by its mirror
    /// image over twice the smallest guaranteed object size, so that an object cut by the frame
    /// is seen whole (and held to the detector's threshold for cut objects); boxes are mapped
    /// back and kept when they reach into the frame.
    fn detect_views(&mut self, picture: &codec::Picture) -> Result<Vec<Detection>, DetectError> {
        let margin = self.edge_margin();
        let frame = BoxF::frame(picture.rgb.dimensions());
        let mut detections = Vec::new();
        for view in picture.views() {
            let mirrored = Mirrored::new(&view, margin);
            for mut d in self.detect_within(&mirrored.image, Some(&mirrored.frame))? {
                d.bbox = mirrored.outward(&d.bbox);
                if d.bbox.intersection(&frame).is_some() {
                    detections.push(d);
                }
            }
        }
        Ok(merge_repeats(detections))
    }

    /// Each model's passes over one view of a `picture`-sized image, as `detect_views` runs
    /// them: over the picture extended by its mirrored border, and the edge strips.
    fn plans(&self, picture: (u32, u32)) -> Vec<ModelPlan> {
        let margin = 2 * self.edge_margin();
        let extended = (picture.0 + margin, picture.1 + margin);
        self.detectors
            .iter()
            .map(|d| {
                let plan = d.plan(extended.0, extended.1);
                ModelPlan {
                    model: d.name.clone(),
                    passes: d.passes(&plan),
                    edges: d.edge_pass(extended, picture, plan.finest()),
                }
            })
            .collect()
    }

    /// Mirrored border added around an image for detection (see `detect_views`).
    fn edge_margin(&self) -> u32 {
        let smallest = self
            .detectors
            .iter()
            .map(|d| d.smallest())
            .fold(0.0, f32::max);
        (2.0 * smallest).ceil() as u32
    }

    /// Redacts detections in the colour planes and, with the same masks, in the alpha plane.
    fn redact(&mut self, picture: &mut codec::Picture, detections: &[Detection]) {
        self.redactor
            .redact(&mut picture.rgb, detections, &self.redaction);
        if let Some(alpha) = &mut picture.alpha {
            self.redactor
                .redact_alpha(alpha, detections, &self.redaction);
        }
    }

    /// Decodes, detects, redacts and encodes one image into each rendition.
    ///
    /// Fails closed: if any model fails on this image, no output at all is returned.
    pub fn anonymise(
        &mut self,
        bytes: &[u8],
        renditions: &[Rendition],
    ) -> Result<Anonymised, PipelineError> {
        let mut timings = Timings::default();
        let t = Instant::now();
        let decoded = codec::decode(bytes, &self.limits)?;
        timings.decode_ms = ms(t);

        let t = Instant::now();
        let mut picture = decoded.picture;
        let mut detections = self.detect_views(&picture)?;
        timings.detect_ms = ms(t);

        let t = Instant::now();
        self.redact(&mut picture, &detections);
        timings.redact_ms = ms(t);

        let mut outputs: Vec<Output> = Vec::with_capacity(renditions.len());
        for (i, r) in renditions.iter().enumerate() {
            // Equal renditions give equal bytes: encode and check them once.
            if let Some(j) = renditions[..i].iter().position(|earlier| earlier == r) {
                outputs.push(outputs[j].clone());
                continue;
            }
            let icc = decoded.icc.as_deref().filter(|_| r.keep_icc);
            let format = r.format.unwrap_or(decoded.format);
            let (output, residue) =
                self.publish(&picture, r, format, icc, &detections, &mut timings)?;
            // What one output's check found is redacted in every later one as well.
            self.redact(&mut picture, &residue);
            detections.extend(residue);
            outputs.push(output);
        }

        let report = Report {
            format: decoded.format,
            width: picture.rgb.width(),
            height: picture.rgb.height(),
            orientation: decoded.orientation,
            detections,
            plan: self.plans(picture.rgb.dimensions()),
            models: self.models.clone(),
            outputs: outputs.iter().map(|o| o.info.clone()).collect(),
            timings,
        };
        Ok(Anonymised { outputs, report })
    }

    /// Renders and encodes one rendition of the redacted `picture`, then checks what it
    /// publishes: decodes the bytes (a lossy encoding can give a blurred head back some of a
    /// face's edges, and a downscaled one can look more like a face than at full size) and looks
    /// again around the regions of `detections` (source pixels) whose redaction keeps something
    /// of the object ([`RedactionConfig::keeps_nothing_of`]), up to `verify_passes` times,
    /// redacting and encoding again whenever something is still found. Returns the output and
    /// what the checks found, in source pixels.
    fn publish(
        &mut self,
        picture: &codec::Picture,
        rendition: &Rendition,
        format: codec::Format,
        icc: Option<&[u8]>,
        detections: &[Detection],
        timings: &mut Timings,
    ) -> Result<(Output, Vec<Detection>), PipelineError> {
        let t = Instant::now();
        let mut rendered = rendition.render(picture, &mut self.resizer);
        timings.encode_ms += ms(t);
        let (width, height) = rendered.rgb.dimensions();
        let k = (
            width as f32 / picture.rgb.width() as f32,
            height as f32 / picture.rgb.height() as f32,
        );
        // A region filled at first keeps nothing of its object to look for (judged in source
        // pixels, where its redaction was chosen).
        let mut redacted = rescaled(
            detections
                .iter()
                .filter(|d| !self.redaction.keeps_nothing_of(d)),
            (1.0 / k.0, 1.0 / k.1),
        );
        let mut last = redacted.clone();
        let mut found = Vec::new();
        // The byte limit is for inputs: an output may encode larger than its source.
        let read_back = Limits {
            max_bytes: u64::MAX,
            ..self.limits
        };
        let encode = |rendered: &codec::Picture, timings: &mut Timings| {
            let t = Instant::now();
            let bytes = codec::encode(rendered, format, rendition.jpeg_quality, icc);
            timings.encode_ms += ms(t);
            bytes
        };
        let mut bytes = encode(&rendered, timings)?;
        for pass in 1..=self.redaction.verify_passes {
            let t = Instant::now();
            let published = codec::decode(&bytes, &read_back)
                .map_err(|e| EncodeError {
                    format,
                    message: format!("the encoded output cannot be read back: {e}"),
                })?
                .picture;
            let mut residue = Vec::new();
            for view in published.views() {
                residue.extend(self.recheck(&view, &last)?);
            }
            let mut residue = merge_repeats(residue);
            timings.verify_ms += ms(t);
            if residue.is_empty() {
                break;
            }
            residue.iter_mut().for_each(|d| d.verify_pass = pass);
            self.redact(rendered.to_mut(), &residue);
            found.extend(rescaled(&residue, k));
            redacted.extend(residue.iter().cloned());
            last = self.touched(&redacted, &residue, &BoxF::frame((width, height)));
            bytes = encode(&rendered, timings)?;
        }
        let info = OutputInfo {
            format,
            width,
            height,
            bytes: bytes.len(),
            sha256: sha256_hex(&bytes),
        };
        Ok((Output { bytes, info }, found))
    }

    /// What the next check of an output looks at after `residue` was redacted: every region of
    /// `redacted` (residue included) that one of the residue's regions overlaps. Redacting a
    /// residue changes how the object under it looks as a whole, and a window around a small
    /// residue alone would not hold that object (on the small-object set a 5 px find beside a
    /// blurred 24 px face was filled, and full detection then scored the face 0.35).
    fn touched(
        &self,
        redacted: &[Detection],
        residue: &[Detection],
        frame: &BoxF,
    ) -> Vec<Detection> {
        let regions: Vec<BoxF> = residue
            .iter()
            .map(|d| self.redaction.region(d, frame))
            .collect();
        redacted
            .iter()
            .filter(|d| {
                let region = self.redaction.region(d, frame);
                regions.iter().any(|r| r.intersection(&region).is_some())
            })
            .cloned()
            .collect()
    }

    /// Looks again around every region just redacted, with the detector of its class, and
    /// returns what is still found over one: a blurred head can keep a face-like outline. The
    /// check holds finds larger than the small-object size to a fraction of the detection
    /// threshold (see [`recheck::still_seen`]): a window sees less context than a run over the whole
    /// image, and whoever re-encodes the output adds noise of their own; it runs at the scales
    /// of the tile plan but only in windows around the regions, so it costs a fraction of a
    /// detection, except in the passes that see the whole image in one run, which it runs over
    /// the published picture as detection of it does ([`Detector::detect_in_one_run`]).
    fn recheck(
        &mut self,
        img: &image::RgbImage,
        redacted: &[Detection],
    ) -> Result<Vec<Detection>, DetectError> {
        // The windows see the copy as detection sees it: extended by its mirror image, so that
        // what remains of an object cut by the frame is looked at whole and held to the
        // threshold for cut objects.
        let mirrored = Mirrored::new(img, self.edge_margin());
        let frame = BoxF::frame(img.dimensions());
        let mut residue = Vec::new();
        for detector in &mut self.detectors {
            let class = detector.class;
            let smallest = detector.smallest();
            let in_copy: Vec<Redacted> = redacted
                .iter()
                .filter(|d| d.class == class && recheck::worth_a_look(class, &d.bbox, smallest))
                .map(|d| Redacted {
                    object: d.bbox,
                    region: self.redaction.region(d, &frame),
                })
                .collect();
            if in_copy.is_empty() {
                continue;
            }
            let looked_at: Vec<Redacted> = in_copy
                .iter()
                .map(|r| Redacted {
                    object: mirrored.inward(&r.object),
                    region: mirrored.inward(&r.region),
                })
                .collect();
            let regions: Vec<BoxF> = looked_at.iter().map(|r| r.region).collect();
            let thresholds = detector.thresholds();
            let search = thresholds.scaled(recheck::SEARCH_MARGIN);
            let found = detector.detect_around(&mirrored.image, &looked_at, search)?;
            residue.extend(
                found
                    .into_iter()
                    .filter(|f| {
                        recheck::still_seen(
                            class,
                            f,
                            &thresholds,
                            smallest,
                            &mirrored.frame,
                            &regions,
                        )
                    })
                    .map(|f| Detection {
                        bbox: mirrored.outward(&f.bbox),
                        ..f
                    }),
            );
            let regions: Vec<BoxF> = in_copy.iter().map(|r| r.region).collect();
            let found = detector.detect_in_one_run(img, &in_copy, search)?;
            residue.extend(found.into_iter().filter(|f| {
                recheck::still_seen(class, f, &thresholds, smallest, &frame, &regions)
            }));
        }
        Ok(residue)
    }
}

/// `detections` with their boxes divided by `k`: from a rendition `k` times the source's size
/// back to source pixels, or with `1 / k` from the source to the rendition.
fn rescaled<'a>(
    detections: impl IntoIterator<Item = &'a Detection>,
    k: (f32, f32),
) -> Vec<Detection> {
    detections
        .into_iter()
        .map(|d| Detection {
            bbox: d.bbox.unscale(k, (0.0, 0.0)),
            ..d.clone()
        })
        .collect()
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Class;

    #[test]
    fn an_object_found_in_several_views_is_kept_once_with_the_union_of_its_boxes() {
        let find = |class, score, [x1, y1, x2, y2]: [f32; 4]| Detection {
            class,
            model: "m".into(),
            score,
            bbox: BoxF::new(x1, y1, x2, y2),
            verify_pass: 0,
        };
        let plate = [203.0, 294.0, 232.0, 308.0];
        let merged = merge_repeats(vec![
            find(Class::Face, 0.86, [175.0, 60.0, 270.0, 179.0]),
            find(Class::Plate, 0.3, plate),
            // the same face in another view, a little higher
            find(Class::Face, 0.87, [176.0, 59.0, 270.0, 180.0]),
            // a face beside it: overlapping, not the same object
            find(Class::Face, 0.4, [235.0, 77.0, 276.0, 154.0]),
            // the same plate in another view
            find(Class::Plate, 0.3, plate),
            // a face where the plate is: another class, another object
            find(Class::Face, 0.2, plate),
            // a false face in the corner boxed in two views, one box within the other
            find(Class::Face, 0.57, [-8.1, -7.1, 9.6, 13.0]),
            find(Class::Face, 0.44, [-6.9, -5.4, 8.4, 11.6]),
            // a face within a box around a whole head: two boxes
            find(Class::Face, 0.3, [400.0, 400.0, 440.0, 450.0]),
            find(Class::Face, 0.2, [410.0, 415.0, 425.0, 432.0]),
            // a 7 px face in two views, a pixel apart; two 10 px faces side by side
            find(Class::Face, 0.07, [34.2, 13.4, 40.9, 21.7]),
            find(Class::Face, 0.07, [35.2, 13.4, 41.8, 21.6]),
            find(Class::Face, 0.1, [300.0, 10.0, 307.0, 20.0]),
            find(Class::Face, 0.1, [308.0, 10.0, 315.0, 20.0]),
        ]);
        let found: Vec<(Class, f32, BoxF)> =
            merged.iter().map(|d| (d.class, d.score, d.bbox)).collect();
        assert_eq!(
            found,
            vec![
                (Class::Plate, 0.3, BoxF::new(203.0, 294.0, 232.0, 308.0)),
                (Class::Face, 0.87, BoxF::new(175.0, 59.0, 270.0, 180.0)),
                (Class::Face, 0.4, BoxF::new(235.0, 77.0, 276.0, 154.0)),
                (Class::Face, 0.2, BoxF::new(203.0, 294.0, 232.0, 308.0)),
                (Class::Face, 0.57, BoxF::new(-8.1, -7.1, 9.6, 13.0)),
                (Class::Face, 0.3, BoxF::new(400.0, 400.0, 440.0, 450.0)),
                (Class::Face, 0.2, BoxF::new(410.0, 415.0, 425.0, 432.0)),
                (Class::Face, 0.07, BoxF::new(34.2, 13.4, 41.8, 21.7)),
                (Class::Face, 0.1, BoxF::new(300.0, 10.0, 307.0, 20.0)),
                (Class::Face, 0.1, BoxF::new(308.0, 10.0, 315.0, 20.0)),
            ]
        );
    }
}
