//! YuNet (OpenCV's face detector, 2023mar): BGR 0..255 input, one prior per cell at strides 8/16/32.

use super::input::{Canvas, ChannelOrder, InputSpec};
use super::tiles::{ANY_SIZE_TILING, TilingConfig};
use super::{Candidate, Family, FamilyDefaults, Outputs};
use crate::geometry::BoxF;

pub struct YuNet;

const STRIDES: [u32; 3] = [8, 16, 32];

impl Family for YuNet {
    fn input(&self) -> InputSpec {
        InputSpec {
            order: ChannelOrder::Bgr,
            value_scale: 1.0,
            pad: 0.0,
            canvas: Canvas::Multiple(32),
        }
    }

    fn defaults(&self) -> FamilyDefaults {
        // OpenCV uses 0.9; recall-first tools use 0.5. YuNet is reliable for faces of ~10-300 px,
        // so full-resolution tiles are added once the whole pass shrinks the image by over 2.
        FamilyDefaults {
            threshold: 0.5,
            small_threshold: 0.5,
            tiny_threshold: 0.5,
            cut_threshold: 0.5,
            nms_iou: 0.3,
            // on faces cut out of their surroundings YuNet needs 64 px (models/README.md)
            tiling: TilingConfig {
                min_object: 64.0,
                overlap: 192,
                ..ANY_SIZE_TILING
            },
        }
    }

    fn decode(
        &self,
        outputs: &Outputs,
        (width, height): (u32, u32),
        threshold: f32,
    ) -> Result<Vec<Candidate>, String> {
        let mut found = Vec::new();
        for s in STRIDES {
            let cols = (width / s) as usize;
            let cells = cols * (height / s) as usize;
            let cls = slice(outputs, &format!("cls_{s}"), cells)?;
            let obj = slice(outputs, &format!("obj_{s}"), cells)?;
            let bbox = slice(outputs, &format!("bbox_{s}"), cells * 4)?;
            let s = s as f32;
            for i in 0..cells {
                let score = (cls[i].clamp(0.0, 1.0) * obj[i].clamp(0.0, 1.0)).sqrt();
                if score < threshold {
                    continue;
                }
                let (r, c) = ((i / cols) as f32, (i % cols) as f32);
                let b = &bbox[i * 4..i * 4 + 4];
                let (cx, cy) = ((c + b[0]) * s, (r + b[1]) * s);
                let (w, h) = (b[2].exp() * s, b[3].exp() * s);
                found.push(Candidate {
                    bbox: BoxF::new(cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0),
                    score,
                });
            }
        }
        Ok(found)
    }
}

/// The contiguous data of output `name`, checked to hold `len` values.
fn slice<'a>(outputs: &'a Outputs, name: &str, len: usize) -> Result<&'a [f32], String> {
    let a = outputs.by_name(name)?;
    let s = a
        .as_slice()
        .ok_or_else(|| format!("output {name} is not contiguous"))?;
    if s.len() != len {
        return Err(format!(
            "output {name} has {} values, expected {len}",
            s.len()
        ));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::ArrayD;

    #[test]
    fn decodes_one_confident_prior_into_a_box() {
        // 64x32 canvas: stride 8 has 8x4 cells, 16 has 4x2, 32 has 2x1.
        let mut arrays = Vec::new();
        let mut names = Vec::new();
        for (kind, k) in [("cls", 1), ("obj", 1), ("bbox", 4)] {
            for s in STRIDES {
                let cells = (64 / s * 32 / s) as usize;
                let mut a = ArrayD::<f32>::zeros(vec![1, cells, k]);
                if s == 16 && kind != "bbox" {
                    a[[0, 5, 0]] = 0.81; // cell r=1, c=1
                }
                if s == 16 && kind == "bbox" {
                    a[[0, 5, 0]] = 0.5;
                    a[[0, 5, 1]] = 0.25;
                    a[[0, 5, 2]] = 0.0; // w = 16
                    a[[0, 5, 3]] = 1f32.ln(); // h = 16
                }
                names.push(format!("{kind}_{s}"));
                arrays.push(a);
            }
        }
        let outputs = Outputs {
            names: names.iter().map(String::as_str).collect(),
            arrays: arrays.iter().map(|a| a.view()).collect(),
        };
        let found = YuNet.decode(&outputs, (64, 32), 0.5).unwrap();
        assert_eq!(found.len(), 1);
        assert!((found[0].score - 0.81).abs() < 1e-6);
        // cx = (1 + 0.5) * 16 = 24, cy = (1 + 0.25) * 16 = 20
        assert_eq!(found[0].bbox, BoxF::new(16.0, 12.0, 32.0, 28.0));
        assert!(YuNet.decode(&outputs, (64, 32), 0.9).unwrap().is_empty());
    }
}
