//! DeBERTa-v2/v3's encoder stack (transformers' `DebertaV2Encoder`): the shared layer of
//! `layers` with disentangled attention scores.
//!
//! A layer's scores add to the content-to-content term `q k^T` two terms over relative
//! positions, all divided by `sqrt(head * (1 + number of terms))`:
//! - content to position (`c2p`): each query against the key projection of the relative
//!   embedding of its distance to each key;
//! - position to content (`p2c`): each key against the query projection of the relative
//!   embedding of the opposite distance.
//!
//! The relative embeddings (`encoder.rel_embeddings`, `2 * span` rows, layer-normalised
//! when `norm_rel_ebd` says so) are shared by every layer; with `share_att_key` they are
//! projected by the layer's own query and key projections, otherwise by its
//! `pos_query_proj` / `pos_key_proj`. A distance `i - j` indexes them through
//! [`relative_positions`]: exact within half the buckets, log-spaced beyond, clamped to the
//! table. Everything is candle ops with backward passes (`gather` included), so the stack
//! trains like BERT's.
//!
//! Padding is masked as transformers masks it: a score counts only where query and key are
//! both tokens; the others are set to `f32::MIN` before the softmax (a padding query's row is
//! then uniform, as in transformers, so even padding positions' vectors agree).
//! v2-xlarge's convolution layer (`conv_kernel_size` > 0) is refused by `Config::validate`.

use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;

use super::layers::{AttentionScores, Dense, Dropout, Layer, Norm};
use super::Config;

/// `encoder.*` of a DeBERTa-v2 checkpoint.
pub(super) struct Encoder {
    layers: Vec<Layer>,
    relative: Option<Relative>,
    heads: usize,
}

/// The relative-position parts of the encoder (present with `relative_attention`).
struct Relative {
    /// `rel_embeddings.weight`: `(2 * span, hidden)`.
    table: Tensor,
    norm: Option<Norm>,
    /// transformers' `pos_ebd_size`: the buckets, or the relative positions without buckets.
    span: usize,
    buckets: i64,
    max_relative_positions: i64,
    c2p: bool,
    p2c: bool,
    /// Each layer's own position projections (none with `share_att_key`).
    projections: Vec<PositionProjections>,
}

struct PositionProjections {
    /// `pos_key_proj`, for `c2p`.
    key: Option<Dense>,
    /// `pos_query_proj`, for `p2c`.
    query: Option<Dense>,
}

impl Encoder {
    pub(super) fn layers_mut(&mut self) -> &mut [Layer] {
        &mut self.layers
    }

    /// Loads `encoder.*` under `vb`.
    pub(super) fn load(vb: VarBuilder, c: &Config) -> candle_core::Result<Self> {
        let h = c.hidden_size;
        let n = c.num_hidden_layers;
        let layers = (0..n)
            .map(|i| Layer::load(vb.pp(format!("layer.{i}")), c))
            .collect::<candle_core::Result<_>>()?;
        let d = &c.deberta;
        let relative = if d.relative_attention {
            let span = d.attention_span(c.max_position_embeddings);
            let table = vb.pp("rel_embeddings").get_with_hints(
                (2 * span, h),
                "weight",
                candle_nn::Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            )?;
            let norm = match d.normalises_relative_embeddings() {
                true => Some(Norm::load(vb.pp("LayerNorm"), h, c.layer_norm_eps())?),
                false => None,
            };
            let projections = (0..n)
                .map(|i| {
                    let att = vb.pp(format!("layer.{i}.attention.self"));
                    let own = |name: &str, used: bool| match used && !d.share_att_key {
                        true => Dense::load(att.pp(name), h, h).map(Some),
                        false => Ok(None),
                    };
                    Ok(PositionProjections {
                        key: own("pos_key_proj", d.c2p())?,
                        query: own("pos_query_proj", d.p2c())?,
                    })
                })
                .collect::<candle_core::Result<_>>()?;
            Some(Relative {
                table,
                norm,
                span,
                buckets: d.position_buckets,
                max_relative_positions: d.max_relative_positions(c.max_position_embeddings) as i64,
                c2p: d.c2p(),
                p2c: d.p2c(),
                projections,
            })
        } else {
            None
        };
        Ok(Encoder {
            layers,
            relative,
            heads: c.num_attention_heads,
        })
    }

    /// `xs` `(batch, seq, hidden)` from the embeddings, `mask` `(batch, seq)` u32.
    pub(super) fn forward(
        &self,
        mut xs: Tensor,
        mask: &Tensor,
        mut dropout: Option<&mut Dropout>,
    ) -> candle_core::Result<Tensor> {
        let (b, s, _) = xs.dims3()?;
        let device = xs.device().clone();
        let shape = (b, self.heads, s, s);
        // transformers' `get_attention_mask`: query and key must both be tokens.
        let rows = mask.to_vec2::<u32>()?;
        let mut keep = Vec::with_capacity(b * s * s);
        for row in &rows {
            for &query in row {
                keep.extend(row.iter().map(|&key| u8::from(query != 0 && key != 0)));
            }
        }
        let keep = Tensor::from_vec(keep, (b, 1, s, s), &device)?
            .broadcast_as(shape)?
            .contiguous()?;
        let masked = Tensor::full(f32::MIN, shape, &device)?;
        let positions = match &self.relative {
            Some(r) => Some(r.positions(s, shape, &device, dropout.is_some())?),
            None => None,
        };
        let terms = self
            .relative
            .as_ref()
            .map_or(0, |r| usize::from(r.c2p) + usize::from(r.p2c));
        for (i, layer) in self.layers.iter().enumerate() {
            let scores = Disentangled {
                keep: &keep,
                masked: &masked,
                scale_factor: 1 + terms,
                relative: self
                    .relative
                    .as_ref()
                    .zip(positions.as_ref())
                    .map(|(r, p)| (r, p, &r.projections[i])),
            };
            xs = layer.forward(&xs, &scores, dropout.as_deref_mut())?;
        }
        Ok(xs)
    }
}

/// What one forward pass shares across layers: the (normalised) relative embeddings and the
/// gather indices of both terms, `(batch, heads, seq, seq)`.
struct Positions {
    table: Tensor,
    c2p_index: Tensor,
    p2c_index: Tensor,
}

impl Relative {
    fn positions(
        &self,
        seq: usize,
        shape: (usize, usize, usize, usize),
        device: &Device,
        training: bool,
    ) -> candle_core::Result<Positions> {
        let table = match &self.norm {
            Some(norm) => norm.forward(&self.table, training)?,
            None => self.table.clone(),
        };
        let relative = relative_positions(seq, self.buckets, self.max_relative_positions);
        let span = self.span as i64;
        let index = |sign: i64| -> candle_core::Result<Tensor> {
            let flat: Vec<u32> = relative
                .iter()
                .flatten()
                .map(|&r| (sign * r + span).clamp(0, 2 * span - 1) as u32)
                .collect();
            Tensor::from_vec(flat, (1, 1, seq, seq), device)?
                .broadcast_as(shape)?
                .contiguous()
        };
        Ok(Positions {
            table,
            c2p_index: index(1)?,
            p2c_index: index(-1)?,
        })
    }
}

/// transformers' `build_relative_position` for a sequence of `seq` tokens: entry `[i][j]`
/// is the distance `i - j`, mapped by `make_log_bucket_position` when `buckets` and
/// `max_position` are positive.
pub(super) fn relative_positions(seq: usize, buckets: i64, max_position: i64) -> Vec<Vec<i64>> {
    (0..seq as i64)
        .map(|i| {
            (0..seq as i64)
                .map(|j| match buckets > 0 && max_position > 0 {
                    true => log_bucket(i - j, buckets, max_position),
                    false => i - j,
                })
                .collect()
        })
        .collect()
}

/// transformers' `make_log_bucket_position`: distances within half the buckets stay as they
/// are; longer ones are log-spaced so that `max_position - 1` lands on the last bucket. In
/// f32, as torch computes it, so a distance on a bucket boundary rounds the same way.
fn log_bucket(relative: i64, buckets: i64, max_position: i64) -> i64 {
    let mid = buckets / 2;
    if relative.abs() <= mid {
        return relative;
    }
    let ratio = (relative.abs() as f32 / mid as f32).ln();
    let range = (((max_position - 1) as f64 / mid as f64) as f32).ln();
    let log_position = (ratio / range * (mid - 1) as f32).ceil() + mid as f32;
    (log_position * relative.signum() as f32) as i64
}

/// DeBERTa's scores for one layer.
struct Disentangled<'a> {
    /// `(batch, heads, seq, seq)` u8: 1 where query and key are both tokens.
    keep: &'a Tensor,
    /// `f32::MIN` everywhere, what masked scores become.
    masked: &'a Tensor,
    /// 1 + the number of relative terms.
    scale_factor: usize,
    relative: Option<(&'a Relative, &'a Positions, &'a PositionProjections)>,
}

impl AttentionScores for Disentangled<'_> {
    fn scores(
        &self,
        layer: &Layer,
        q: &Tensor,
        k: &Tensor,
        dropout: Option<&mut Dropout>,
    ) -> candle_core::Result<Tensor> {
        let training = dropout.is_some();
        let head = q.dim(3)?;
        // torch computes the scale in f32.
        let scale = ((head * self.scale_factor) as f32).sqrt() as f64;
        let mut scores = (q.matmul(&k.t()?)? / scale)?;
        if let Some((relative, positions, own)) = self.relative {
            // transformers' `pos_dropout` (hidden dropout), drawn anew in every layer.
            let table = match dropout {
                Some(d) => {
                    let p = d.hidden;
                    d.apply(&positions.table, p)?
                }
                None => positions.table.clone(),
            }
            .unsqueeze(0)?;
            // (1, heads, 2 span, head) for a projection of the relative embeddings.
            let project = |dense: &Dense| layer.split_heads(&dense.forward(&table, training)?);
            if relative.c2p {
                let pos_key = project(own.key.as_ref().unwrap_or(&layer.key))?;
                let c2p = q.broadcast_matmul(&pos_key.t()?)?;
                let c2p = c2p.gather(&positions.c2p_index, 3)?;
                scores = (scores + (c2p / scale)?)?;
            }
            if relative.p2c {
                let pos_query = project(own.query.as_ref().unwrap_or(&layer.query))?;
                let p2c = k.broadcast_matmul(&pos_query.t()?)?;
                let p2c = p2c.gather(&positions.p2c_index, 3)?.transpose(2, 3)?;
                scores = (scores + (p2c / scale)?)?;
            }
        }
        self.keep.where_cond(&scores, self.masked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixture's `relative_positions` are transformers' `build_relative_position` for the
    /// padded batch (8 buckets, max_relative_positions 16): exact within 4, log-spaced beyond.
    #[test]
    fn relative_positions_equal_transformers_log_buckets() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/deberta-v2-tiny/expected.json"
        );
        let expected: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let want: Vec<Vec<i64>> =
            serde_json::from_value(expected["relative_positions"].clone()).unwrap();
        assert!(want.len() > 40, "the batch reaches the log buckets");
        assert_eq!(relative_positions(want.len(), 8, 16), want);
        // Without buckets, plain distances.
        assert_eq!(relative_positions(3, -1, 16)[0], vec![0, -1, -2]);
    }
}
