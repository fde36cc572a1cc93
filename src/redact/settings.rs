//! How each class of object is redacted: the method, the mask's shape, padding, strength and
//! feather, how the re-check's finds differ from first finds, and the checks on those settings.

use serde::{Deserialize, Serialize};

use crate::config::RecallConfig;
use crate::detect::{Class, Detection};
use crate::geometry::BoxF;

/// How far, in source pixels, the fully-redacted core of a mask reaches at least beyond the
/// detected box on each side: on objects of ten-odd pixels a detector's box edges are uncertain
/// by a pixel or two, and a feathered edge over them leaves part of the object sharp.
pub const MIN_MARGIN_PX: f32 = 2.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Gaussian blur whose radius is `strength` × the region's shorter side.
    Gaussian,
    /// The region filled from its surroundings alone: a blur of the pixels around it that reads
    /// nothing inside it, so no trace of the object, not even its average colour, remains.
    Surround,
    /// Mosaic of square cells whose side is `strength` × the region's shorter side.
    Pixelate,
    /// Solid `colour`.
    Fill,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    Ellipse,
    Rect,
}

/// How one class of detection is redacted. A configuration gives it as a table of optional
/// keys over the class's defaults (`ClassRedactionTable`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClassRedaction {
    pub method: Method,
    pub shape: Shape,
    /// Fraction of the box's width (height) added on each side before redacting.
    pub padding: f32,
    /// Blur radius or mosaic cell, as a fraction of the padded region's shorter side.
    pub strength: f32,
    /// Width of the ellipse's soft edge, as a fraction of its radius.
    pub feather: f32,
    pub colour: [u8; 3],
    /// How objects up to the small-object size (twice the class's `[recall]` size) are
    /// redacted, where it is not `method`. Faces: filled from their surroundings over a
    /// rectangle (see [`RedactionConfig::for_detection`]). A configuration that wants them
    /// redacted as the rest gives `method` here too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub small_method: Option<Method>,
}

impl ClassRedaction {
    /// The least padding whose fully-redacted core still covers the detected box: the box's
    /// corners sit at 1 / (1 + 2·padding) of the way to the mask's edge on each axis, and the
    /// core ends where the feather begins.
    pub(super) fn min_padding(&self) -> f32 {
        (self.corner() / (1.0 - self.feather) - 1.0) / 2.0
    }

    /// How far out a box's corner lies against the edge of the mask drawn around it, on each
    /// axis: an ellipse through the corners of a rectangle is √2 times its half-sides.
    fn corner(&self) -> f32 {
        match self.shape {
            Shape::Ellipse => std::f32::consts::SQRT_2,
            Shape::Rect => 1.0,
        }
    }

    /// The margin on each side of a box `side` px long (across or down) that the padding
    /// gives, raised where needed so that the mask's fully-redacted core reaches
    /// [`MIN_MARGIN_PX`] beyond the box: the box grown by that much has its corners where the
    /// feather begins. On a 12 px face found by the re-check at the edge of the frame, a
    /// margin of 2 px under a feather left the face's last 3 px partly sharp.
    fn margin(&self, side: f32) -> f32 {
        let core_margin =
            side * self.min_padding() + self.corner() * MIN_MARGIN_PX / (1.0 - self.feather);
        (side * self.padding).max(core_margin)
    }
}

/// One class's `[redaction.*]` table as a configuration gives it: every key is optional, and
/// one left out keeps the class's default. A file (or a `VEIL__REDACTION__FACE__STRENGTH`
/// variable) that changes the strength alone gets it without restating the method, shape and
/// the rest, and a face table that leaves out `small_method` keeps small faces filled rather
/// than falling back to a blur that full detection found again (see
/// [`RedactionConfig::for_detection`]).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassRedactionTable {
    method: Option<Method>,
    shape: Option<Shape>,
    padding: Option<f32>,
    strength: Option<f32>,
    feather: Option<f32>,
    colour: Option<[u8; 3]>,
    small_method: Option<Method>,
}

impl ClassRedactionTable {
    /// `default` with the keys this table gives.
    fn over(self, default: ClassRedaction) -> ClassRedaction {
        ClassRedaction {
            method: self.method.unwrap_or(default.method),
            shape: self.shape.unwrap_or(default.shape),
            padding: self.padding.unwrap_or(default.padding),
            strength: self.strength.unwrap_or(default.strength),
            feather: self.feather.unwrap_or(default.feather),
            colour: self.colour.unwrap_or(default.colour),
            small_method: self.small_method.or(default.small_method),
        }
    }
}

/// `[redaction.face]` over the face defaults.
fn face_over_defaults<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ClassRedaction, D::Error> {
    Ok(ClassRedactionTable::deserialize(d)?.over(RedactionConfig::default().face))
}

/// `[redaction.plate]` over the plate defaults.
fn plate_over_defaults<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ClassRedaction, D::Error> {
    Ok(ClassRedactionTable::deserialize(d)?.over(RedactionConfig::default().plate))
}

/// Redaction settings per class. Defaults are strong: a light blur or a fine mosaic can be
/// partly reversed, so both defaults leave nothing recognisable.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedactionConfig {
    #[serde(deserialize_with = "face_over_defaults")]
    pub face: ClassRedaction,
    #[serde(deserialize_with = "plate_over_defaults")]
    pub plate: ClassRedaction,
    /// Check each output as published and redact what the detectors still find, up to this many
    /// times. A blurred head can keep a face-like outline, and the blur laid over such a find
    /// can leave another: the second pass checks what the first one redacted. Each pass looks
    /// only around what the previous one found and the regions that overlaps, so it costs
    /// little once nothing is left. One pass covered the same objects of the small-object set
    /// for three quarters of the re-check's time, but left YuNet's blurred head of
    /// astronaut.png, filled by that pass, for full detection to find again at 0.65.
    pub verify_passes: u8,
    /// The guaranteed sizes, which say which objects are small: `[recall]`, set when the
    /// engine is built.
    #[serde(skip)]
    pub recall: RecallConfig,
}

impl Default for RedactionConfig {
    fn default() -> Self {
        Self {
            // Faces: an ellipse 1.8× the box (deface uses 1.6×), so hair and ears are covered too.
            face: ClassRedaction {
                method: Method::Gaussian,
                shape: Shape::Ellipse,
                padding: 0.4,
                strength: 0.5,
                feather: 0.2,
                colour: [0, 0, 0],
                small_method: Some(Method::Surround),
            },
            plate: ClassRedaction {
                method: Method::Gaussian,
                shape: Shape::Rect,
                padding: 0.5,
                strength: 0.5,
                feather: 0.3,
                colour: [0, 0, 0],
                small_method: None,
            },
            verify_passes: 2,
            recall: RecallConfig::default(),
        }
    }
}

impl RedactionConfig {
    pub fn for_class(&self, class: Class) -> &ClassRedaction {
        match class {
            Class::Face => &self.face,
            Class::Plate => &self.plate,
        }
    }

    /// How `d` is redacted: as its class says, except small objects of a class with a
    /// `small_method`, and what the re-check of an output still finds over a redacted region
    /// (`verify_pass` above 0).
    ///
    /// - A small face is filled from its surroundings ([`Method::Surround`]) over a
    ///   rectangle. A blurred face of 10–24 px keeps its average colours, a skin-coloured blob
    ///   under a darker one, and full detection of the outputs found ten such blurs again on
    ///   the small-object set when the re-check did not look at them. Filled over its ellipse,
    ///   four: the ellipse left the corners of the head's box, hair and shoulders around an
    ///   empty oval, which the face model scored as a face (up to 0.29 on the set's blurred,
    ///   JPEG frames, where it found eleven so). Filled over a rectangle, none on the set as
    ///   drawn and none but the 10 px faces on the blurred frames. A fill keeps none of the
    ///   object, so the re-check does not look at it again ([`Self::keeps_nothing_of`]):
    ///   around small objects it cost three quarters of the re-check's time. Plates keep the
    ///   blur: a filled plate was found again as often as a blurred one, by the car around it.
    /// - A residue of a blurred class is filled from its surroundings ([`Method::Surround`])
    ///   over a rectangle. A blur keeps the region's own average colours, and a blurred head (a
    ///   skin-coloured oval under a darker one) can still be scored as a face; blurring it again
    ///   keeps that shape, larger and smoother (on the small-object set such a head was scored
    ///   0.24, then 0.31 after the first re-redaction, and full detection of the output found
    ///   it at 0.53). A fill over an ellipse still leaves an oval: on t1.jpg one head went from
    ///   0.21 to 0.33 over three passes of it, while over a soft rectangle none of its heads
    ///   was found again.
    /// - A residue gets half its class's padding (no less than keeps its box inside the
    ///   mask's core). Its box already takes in the blurred region around the object, 1.2–1.6
    ///   times the object's size, and the full padding on top of that more than doubled the
    ///   area blurred around each face of a group photo (t1.jpg: 21 % of the pixels changed by
    ///   the first redaction, 35 % after the re-check; 25 % with half the padding).
    pub fn for_detection(&self, d: &Detection) -> ClassRedaction {
        let class = *self.for_class(d.class);
        if d.verify_pass == 0 {
            return match class.small_method {
                Some(method) if d.class.size(&d.bbox) <= self.recall.small_up_to(d.class) => {
                    let shape = match method {
                        Method::Surround | Method::Fill => Shape::Rect,
                        _ => class.shape,
                    };
                    ClassRedaction {
                        method,
                        shape,
                        ..class
                    }
                }
                _ => class,
            };
        }
        let mut residue = class;
        if class.method == Method::Gaussian {
            residue.method = Method::Surround;
            residue.shape = Shape::Rect;
        }
        residue.padding = (class.padding / 2.0).max(residue.min_padding());
        residue
    }

    /// Whether the first redaction of `d` keeps none of its pixels (a fill, from its
    /// surroundings or of one colour), so that nothing of the object is left for the re-check
    /// to look for. What the re-check itself fills is looked at again: the edge of a fill over
    /// a blurred head can make a new blob beside it.
    pub fn keeps_nothing_of(&self, d: &Detection) -> bool {
        d.verify_pass == 0
            && matches!(
                self.for_detection(d).method,
                Method::Surround | Method::Fill
            )
    }

    /// How `d` is redacted in a picture whose frame is `frame`: as [`Self::for_detection`]
    /// says, except that an ellipse becomes the rectangle of the same region where the
    /// object's box reaches past the frame. The ellipse follows the outline of a whole head. Of
    /// a head the frame cuts, a model sees a part and boxes that part: on photos cut through
    /// their faces, the box fell short of the face by up to a third of its size away from the
    /// edge and along it, and the ellipse then left the face's corners sharp (the brow and
    /// hairline of a face cut at the eyes by the bottom edge). The rectangle covers the whole
    /// region. Any overhang counts: the box of a face cut in half overhung the edge by less
    /// than a quarter of itself.
    pub fn in_frame(&self, d: &Detection, frame: &BoxF) -> ClassRedaction {
        let mut c = self.for_detection(d);
        if c.shape == Shape::Ellipse && d.bbox.share_outside(frame) > 0.0 {
            c.shape = Shape::Rect;
        }
        c
    }

    /// The area redacted for a detection in a picture whose frame is `frame`: its box grown by
    /// its padding (see [`Self::for_detection`]), and enough that the redaction is full
    /// [`MIN_MARGIN_PX`] beyond the box on each side. Where the frame cuts a first find, the
    /// box holds only the part of the object the model saw ([`Self::in_frame`]), and it is
    /// grown as far as its class's shape would take it even where it is filled over a
    /// rectangle: an ellipse's core reaches √2 times as far out. Grown as a rectangle, the
    /// fills of two faces of 16 and 24 px cut by the frame of the blurred set's edge-cut
    /// frames fell short of them.
    pub fn region(&self, d: &Detection, frame: &BoxF) -> BoxF {
        let mut c = self.for_detection(d);
        if d.verify_pass == 0 && d.bbox.share_outside(frame) > 0.0 {
            c.shape = self.for_class(d.class).shape;
        }
        let b = &d.bbox;
        b.grown_by(c.margin(b.width()), c.margin(b.height()))
    }

    /// Checks every class; errors name the key, e.g. `redaction.face.padding`.
    pub fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.verify_passes > 5 {
            errors.push(format!(
                "redaction.verify_passes must be at most 5, got {}",
                self.verify_passes
            ));
        }
        for (name, c) in [("face", &self.face), ("plate", &self.plate)] {
            if !(0.0..=2.0).contains(&c.padding) {
                errors.push(format!(
                    "redaction.{name}.padding must be in [0, 2], got {}",
                    c.padding
                ));
            }
            if !(c.strength > 0.0 && c.strength <= 1.0) {
                errors.push(format!(
                    "redaction.{name}.strength must be in (0, 1], got {}",
                    c.strength
                ));
            }
            if !(0.0..1.0).contains(&c.feather) {
                errors.push(format!(
                    "redaction.{name}.feather must be in [0, 1), got {}",
                    c.feather
                ));
            }
            if c.padding < c.min_padding() {
                errors.push(format!(
                    "redaction.{name}: padding {} and feather {} would leave the corners of the detected box \
                     partly unredacted; raise padding or lower feather",
                    c.padding, c.feather
                ));
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(height: f32, verify_pass: u8) -> Detection {
        Detection {
            class: Class::Face,
            model: "centerface".into(),
            score: 0.9,
            bbox: BoxF::new(100.0, 100.0, 100.0 + 0.8 * height, 100.0 + height),
            verify_pass,
        }
    }

    #[test]
    fn small_faces_are_filled_and_the_rest_blurred_by_default() {
        let config = RedactionConfig::default();
        assert_eq!(config.recall.small_up_to(Class::Face), 20.0);
        let method = |d: &Detection| config.for_detection(d).method;
        assert_eq!(method(&face(20.0, 0)), Method::Surround);
        assert_eq!(method(&face(21.0, 0)), Method::Gaussian);
        assert!(config.keeps_nothing_of(&face(20.0, 0)));
        assert!(!config.keeps_nothing_of(&face(21.0, 0)));
        assert_eq!(
            config.for_detection(&face(12.0, 0)).shape,
            Shape::Rect,
            "a fill over the ellipse leaves hair around an empty oval"
        );
        // A small face is grown as its rectangle needs, but as far as the ellipse would take
        // it where the frame cuts it.
        let frame = BoxF::frame((1000, 1000));
        let whole = face(12.0, 0);
        let cut = Detection {
            bbox: BoxF::new(-4.0, 100.0, 5.6, 112.0),
            ..whole.clone()
        };
        let width = |d: &Detection| config.region(d, &frame).width();
        assert!(
            width(&cut) > width(&whole) + 4.0,
            "{} {}",
            width(&cut),
            width(&whole)
        );
        let mut large = face(40.0, 0);
        assert_eq!(
            width(&large),
            config.region(&large, &BoxF::frame((1, 1))).width()
        );
        large.verify_pass = 1;
        assert_eq!(
            width(&large),
            config.region(&large, &BoxF::frame((1, 1))).width()
        );
        // What the re-check fills is looked at again.
        assert_eq!(method(&face(12.0, 1)), Method::Surround);
        assert!(!config.keeps_nothing_of(&face(12.0, 1)));
        // Plates have no small method: a 30 px plate is blurred.
        let plate = Detection {
            class: Class::Plate,
            bbox: BoxF::new(0.0, 0.0, 30.0, 10.0),
            ..face(10.0, 0)
        };
        assert_eq!(method(&plate), Method::Gaussian);
        assert!(!config.keeps_nothing_of(&plate));
        // The small size follows [recall].
        let mut raised = config;
        raised.recall.face_min_px = 24.0;
        assert!(raised.keeps_nothing_of(&face(40.0, 0)));
        let mut blurred = config;
        blurred.face.small_method = None;
        assert!(!blurred.keeps_nothing_of(&face(12.0, 0)));
        // A class filled whole keeps nothing of any first find.
        let mut filled = blurred;
        filled.face.method = Method::Fill;
        assert!(filled.keeps_nothing_of(&face(200.0, 0)));
    }

    #[test]
    fn a_class_table_changes_only_the_keys_it_gives() {
        let parse = |text: &str| toml::from_str::<RedactionConfig>(text);
        let defaults = RedactionConfig::default();
        let stronger = parse("[face]\nstrength = 0.8\n").unwrap();
        assert_eq!(stronger.face.strength, 0.8);
        assert_eq!(
            ClassRedaction {
                strength: defaults.face.strength,
                ..stronger.face
            },
            defaults.face,
            "everything else as by default"
        );
        assert_eq!(stronger.plate, defaults.plate);
        // A face table that restates the method keeps small faces filled; giving the method
        // as `small_method` too redacts them as the rest.
        let restated = parse("[face]\nmethod = \"gaussian\"\nshape = \"ellipse\"\n").unwrap();
        assert_eq!(restated.face.small_method, Some(Method::Surround));
        let alike = parse("[face]\nmethod = \"pixelate\"\nsmall_method = \"pixelate\"\n").unwrap();
        let small = Detection {
            class: Class::Face,
            model: "centerface".into(),
            score: 0.5,
            bbox: BoxF::new(0.0, 0.0, 12.0, 12.0),
            verify_pass: 0,
        };
        assert_eq!(alike.for_detection(&small).method, Method::Pixelate);
        assert_eq!(alike.for_detection(&small).shape, Shape::Ellipse);
        // Plates have no small method unless one is given.
        let plate = parse("[plate]\nmethod = \"fill\"\n").unwrap();
        assert_eq!(plate.plate.method, Method::Fill);
        assert_eq!(plate.plate.small_method, None);
        assert!(parse("[face]\nstrenght = 1\n").is_err(), "unknown keys");
        // What veil writes out reads back the same.
        let text = toml::to_string(&defaults).unwrap();
        assert_eq!(parse(&text).unwrap(), defaults);
    }

    #[test]
    fn validation_refuses_an_ellipse_that_would_miss_box_corners() {
        let mut config = RedactionConfig::default();
        assert!(config.validate().is_empty());
        config.face.padding = 0.05;
        let errors = config.validate();
        assert!(
            errors
                .iter()
                .any(|e| e.contains("redaction.face") && e.contains("corners")),
            "{errors:?}"
        );
    }
}
