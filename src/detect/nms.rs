//! Greedy non-maximum suppression, shared by every detector family and by the tile merge.

use super::Candidate;

/// Keeps the highest-scoring candidates, dropping any that overlaps a kept one by more than `iou`.
pub fn nms(mut candidates: Vec<Candidate>, iou: f32) -> Vec<Candidate> {
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Candidate> = Vec::with_capacity(candidates.len().min(64));
    for c in candidates {
        if kept.iter().all(|k| k.bbox.iou(&c.bbox) <= iou) {
            kept.push(c);
        }
    }
    kept
}

/// [`nms`] over `first`, then the candidates of `then` that no kept one overlaps by more than
/// `iou`, merged among themselves: a candidate of `first` wins over any of `then`, whatever
/// their scores. Returned best first.
pub fn nms_preferring(first: Vec<Candidate>, then: Vec<Candidate>, iou: f32) -> Vec<Candidate> {
    let mut kept = nms(first, iou);
    let rest = then
        .into_iter()
        .filter(|c| kept.iter().all(|k| k.bbox.iou(&c.bbox) <= iou))
        .collect();
    kept.extend(nms(rest, iou));
    kept.sort_by(|a, b| b.score.total_cmp(&a.score));
    kept
}

/// `kept` with each candidate of `large` ([`nms`] merged) joined to every one of `kept` it
/// overlaps by more than `iou`: they are replaced by the union of their boxes, at the best of
/// their scores. A candidate of `large` that overlaps none is added. The large-object pass's
/// box holds all of an object that the whole pass boxes in part, and the whole pass's box
/// holds what the other missed: the union covers both. Returned best first.
pub fn joined(mut kept: Vec<Candidate>, large: Vec<Candidate>, iou: f32) -> Vec<Candidate> {
    for mut l in nms(large, iou) {
        kept.retain(|k| {
            let overlaps = k.bbox.iou(&l.bbox) > iou;
            if overlaps {
                l.bbox = l.bbox.union(&k.bbox);
                l.score = l.score.max(k.score);
            }
            !overlaps
        });
        kept.push(l);
    }
    kept.sort_by(|a, b| b.score.total_cmp(&a.score));
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::BoxF;

    fn c(x: f32, score: f32) -> Candidate {
        Candidate {
            bbox: BoxF::new(x, 0.0, x + 10.0, 10.0),
            score,
        }
    }

    #[test]
    fn keeps_the_best_of_each_overlapping_group() {
        let kept = nms(
            vec![c(0.0, 0.5), c(1.0, 0.9), c(50.0, 0.3), c(2.0, 0.7)],
            0.3,
        );
        let scores: Vec<f32> = kept.iter().map(|k| k.score).collect();
        assert_eq!(scores, vec![0.9, 0.3]);
    }

    #[test]
    fn the_preferred_candidates_win_over_the_others_whatever_their_scores() {
        // an object seen whole at 0.5 and cut at 0.9; elsewhere, two cut finds of one object
        let kept = nms_preferring(
            vec![c(0.0, 0.5)],
            vec![c(1.0, 0.9), c(50.0, 0.3), c(51.0, 0.4)],
            0.3,
        );
        let found: Vec<(f32, f32)> = kept.iter().map(|k| (k.bbox.x1, k.score)).collect();
        assert_eq!(found, vec![(0.0, 0.5), (51.0, 0.4)]);
    }

    #[test]
    fn a_large_objects_box_is_joined_to_those_it_overlaps_and_added_where_it_overlaps_none() {
        // a face whose upper part was boxed at 0.9, seen whole at 0.4; elsewhere a face seen
        // only by the large-object pass, and a small face inside the large one, kept apart
        let part = Candidate {
            bbox: BoxF::new(0.0, 0.0, 100.0, 60.0),
            score: 0.9,
        };
        let small = Candidate {
            bbox: BoxF::new(40.0, 70.0, 50.0, 80.0),
            score: 0.5,
        };
        let whole = Candidate {
            bbox: BoxF::new(5.0, 0.0, 95.0, 100.0),
            score: 0.4,
        };
        let joined = joined(vec![part, small], vec![whole, c(300.0, 0.2)], 0.3);
        let found: Vec<(BoxF, f32)> = joined.iter().map(|k| (k.bbox, k.score)).collect();
        assert_eq!(
            found,
            vec![
                (BoxF::new(0.0, 0.0, 100.0, 100.0), 0.9),
                (small.bbox, 0.5),
                (c(300.0, 0.2).bbox, 0.2)
            ]
        );
    }
}
