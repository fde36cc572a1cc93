//! YOLOv8-style detectors (platedet for plates): RGB / 255 input padded with grey 114 to a
//! multiple of 32 (scripts/prepare_models.py lets the model take any such size; an export that
//! declares a fixed size gets that canvas, see `Detector::new`), output
//! `[1, 4 + classes (+ 32 mask coefficients), anchors]`.

use super::input::{Canvas, ChannelOrder, InputSpec};
use super::tiles::TilingConfig;
use super::{Candidate, Family, FamilyDefaults, Outputs};
use crate::geometry::BoxF;

pub struct Yolov8;

/// Mask coefficients that segmentation variants append after the class scores.
const MASK_COEFFICIENTS: usize = 32;

impl Family for Yolov8 {
    fn input(&self) -> InputSpec {
        InputSpec {
            order: ChannelOrder::Rgb,
            value_scale: 1.0 / 255.0,
            pad: 114.0 / 255.0,
            canvas: Canvas::Multiple(32),
        }
    }

    fn defaults(&self) -> FamilyDefaults {
        // platedet ships conf 0.6. It finds every plate of the small-object set from 56 px wide
        // in its input, float or int8, and fewer below (models/README.md): 20 px plates are
        // looked for on a 2.8× upscale. At 0.1 it covers 13 more of the set's 637 plates than at
        // 0.2 (float and int8 alike), for 0.15 % more of the pixels away from every object.
        // Plates up to twice the smallest guaranteed width (40 px by default) score lowest: at
        // 0.05 for those int8 covers 3 more of the set's plates (0.03: 5, 0.01: 11) for 0.02 %
        // more of the pixels away from every object (0.03: 0.06 %, 0.01: 0.21 %). Below 0.05
        // int8 scores textures, such as the chips on t1's poker table, as plates in numbers.
        // Plates cut by the frame score lower still: at 0.01 for those int8 covers 9 more of
        // the 67 on the edge-cut frames, for 0.11 % more over-redaction over the whole set;
        // the false boxes it adds are confined to the border.
        FamilyDefaults {
            threshold: 0.1,
            small_threshold: 0.05,
            tiny_threshold: 0.05,
            cut_threshold: 0.01,
            nms_iou: 0.4,
            // Tiles of 640, the size it was trained at, though it takes any: tiles of 1536 (with
            // the same overlap) cost 14 % less detection over the small-object set but cover 6
            // fewer of its 637 plates (8 lost, 2 gained). Small plates that fall in two tiles of
            // 640 (a fifth of each tile is shared) are scored twice, at two offsets from the
            // model's grid, and some pass the threshold at only one.
            tiling: TilingConfig {
                whole_size: 640,
                tile_size: 640,
                min_object: 56.0,
                overlap: 128,
                max_scale: 4.0,
                largest_object: None,
            },
        }
    }

    fn decode(
        &self,
        outputs: &Outputs,
        _canvas: (u32, u32),
        threshold: f32,
    ) -> Result<Vec<Candidate>, String> {
        let out = outputs.at(0)?;
        let (rows, anchors) = match out.shape() {
            [1, r, a] => (*r, *a),
            other => {
                return Err(format!(
                    "output 0 has shape {other:?}, expected [1, rows, anchors]"
                ));
            }
        };
        // A second output holds mask prototypes: the rows then end with mask coefficients.
        let classes = rows.saturating_sub(
            4 + if outputs.arrays.len() > 1 {
                MASK_COEFFICIENTS
            } else {
                0
            },
        );
        if classes == 0 {
            return Err(format!("output 0 has {rows} rows: no class scores"));
        }
        let data = out.as_slice().ok_or("output 0 is not contiguous")?;
        let row = |r: usize| &data[r * anchors..(r + 1) * anchors];
        let mut found = Vec::new();
        for a in 0..anchors {
            let score = (0..classes).map(|c| row(4 + c)[a]).fold(f32::MIN, f32::max);
            if score < threshold {
                continue;
            }
            // Class scores are probabilities; anything above 1 is a row that is not a score
            // (mask coefficients read as classes): a layout veil does not understand.
            if score > 1.0 + 1e-3 {
                return Err(format!(
                    "output 0 row {} holds {score}, not a class score in [0, 1]: a segmentation \
                     output without its mask prototypes?",
                    4 + (0..classes)
                        .position(|c| row(4 + c)[a] == score)
                        .unwrap_or(0)
                ));
            }
            let (cx, cy, w, h) = (row(0)[a], row(1)[a], row(2)[a], row(3)[a]);
            found.push(Candidate {
                bbox: BoxF::new(cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0),
                score,
            });
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::ArrayD;

    #[test]
    fn decodes_segmentation_output_ignoring_mask_coefficients() {
        let mut out = ArrayD::<f32>::zeros(vec![1, 37, 3]);
        for (r, v) in [100.0, 50.0, 40.0, 20.0, 0.8].into_iter().enumerate() {
            out[[0, r, 1]] = v;
        }
        out[[0, 5, 2]] = 0.99; // a mask coefficient, not a score
        let protos = ArrayD::<f32>::zeros(vec![1, 32, 2, 2]);
        let outputs = Outputs {
            names: vec!["output0", "output1"],
            arrays: vec![out.view(), protos.view()],
        };
        let found = Yolov8.decode(&outputs, (640, 640), 0.3).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].bbox, BoxF::new(80.0, 40.0, 120.0, 60.0));
    }

    #[test]
    fn rows_that_are_not_probabilities_fail_instead_of_reading_as_detections() {
        // A segmentation output whose mask prototypes were cut off: the coefficients would
        // read as 32 more classes.
        let mut out = ArrayD::<f32>::zeros(vec![1, 37, 3]);
        out[[0, 20, 1]] = 2.5;
        let outputs = Outputs {
            names: vec!["output0"],
            arrays: vec![out.view()],
        };
        let e = Yolov8.decode(&outputs, (640, 640), 0.3).unwrap_err();
        assert!(e.contains("row 20 holds 2.5"), "{e}");
    }
}
