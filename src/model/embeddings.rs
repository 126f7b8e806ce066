//! The embedding layer: word + position + token type, then LayerNorm (and dropout in
//! training). This is where the architectures differ:
//! - DeBERTa-v2/v3 may have no position table (`position_biased_input` false: positions
//!   enter through relative attention only) and no token-type table (`type_vocab_size` 0),
//!   may embed in a narrower `embedding_size` projected to `hidden_size` by `embed_proj`
//!   before the LayerNorm, and zeroes padding rows after it (transformers multiplies the
//!   embeddings by the attention mask);
//! - how positions are numbered ([`Positions`]):
//! - BERT: position `i` for the `i`-th token of every row;
//! - RoBERTa and XLM-R (fairseq's convention, transformers'
//!   `create_position_ids_from_input_ids`): tokens that are not `pad_token_id` count from
//!   `pad_token_id + 1`, and padding tokens get position `pad_token_id`. Padding is decided by
//!   the token id, not the attention mask, exactly as transformers decides it.
//!
//! Token types are always 0: medlink encodes single texts, and RoBERTa's table has one row.

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

use super::config::Positions;
use super::layers::{Dense, Dropout, F32View, Norm};
use super::{Architecture, Config};

pub(super) struct Embeddings {
    word: candle_nn::Embedding,
    position: Option<candle_nn::Embedding>,
    token_type: Option<candle_nn::Embedding>,
    /// DeBERTa's `embed_proj` (`embedding_size` → `hidden_size`, no bias).
    projection: Option<Dense>,
    norm: Norm,
    positions: Positions,
    pad_token_id: u32,
    /// DeBERTa zeroes the embeddings of padding tokens.
    zero_padding: bool,
}

impl Embeddings {
    /// Loads `embeddings.*` under `vb`.
    pub(super) fn load(vb: VarBuilder, config: &Config) -> candle_core::Result<Self> {
        let h = config.hidden_size;
        let width = config.embedding_size();
        let table = |name: &str, rows: usize| {
            let w = vb.pp(name).get_with_hints(
                (rows, width),
                "weight",
                candle_nn::Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            )?;
            Ok::<_, candle_core::Error>(candle_nn::Embedding::new(w, width))
        };
        let position = match config.has_position_embeddings() {
            true => Some(table(
                "position_embeddings",
                config.max_position_embeddings,
            )?),
            false => None,
        };
        let token_type = match config.type_vocab_size() {
            0 => None,
            rows => Some(table("token_type_embeddings", rows)?),
        };
        let projection = match width != h {
            true => Some(Dense::load_without_bias(vb.pp("embed_proj"), width, h)?),
            false => None,
        };
        Ok(Embeddings {
            word: table("word_embeddings", config.vocab_size)?,
            position,
            token_type,
            projection,
            norm: Norm::load(vb.pp("LayerNorm"), h, config.layer_norm_eps())?,
            positions: config.architecture.positions(),
            pad_token_id: config.pad_token_id(),
            zero_padding: config.architecture == Architecture::DebertaV2,
        })
    }

    /// `(batch, seq, hidden)` for `ids` and `mask` `(batch, seq)` u32.
    pub(super) fn forward(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        dropout: Option<&mut Dropout>,
    ) -> candle_core::Result<Tensor> {
        let training = dropout.is_some();
        let mut xs = self.word.forward(ids)?;
        if let Some(position) = &self.position {
            xs = xs.broadcast_add(&position.forward(&self.position_ids(ids)?)?)?;
        }
        if let Some(token_type) = &self.token_type {
            xs = xs.broadcast_add(&token_type.forward(&ids.zeros_like()?)?)?;
        }
        if let Some(projection) = &self.projection {
            xs = projection.forward(&xs, training)?;
        }
        let mut xs = self.norm.forward(&xs, training)?;
        if self.zero_padding {
            xs = xs.broadcast_mul(&mask.to_dtype(xs.dtype())?.unsqueeze(2)?)?;
        }
        match dropout {
            Some(d) => d.apply(&xs, d.hidden),
            None => Ok(xs),
        }
    }

    /// Inference on plain buffers ([`super::inference`]): the embeddings of the real tokens
    /// only (mask 1), packed one sequence after another, with each sequence's rows. `None`
    /// where this layer projects or zeroes padding (DeBERTa) or its tables are not CPU f32:
    /// [`Self::forward`] then. Equal to [`Self::forward`]'s rows for the same tokens: the same
    /// word, position and type rows, summed and normalised by the same fused pass the layers
    /// use for their residuals.
    pub(super) fn forward_packed(
        &self,
        ids: &Tensor,
        mask: &Tensor,
    ) -> candle_core::Result<Option<super::inference::Packed>> {
        if self.projection.is_some() || self.zero_padding || !ids.device().is_cpu() {
            return Ok(None);
        }
        let word = match F32View::of(self.word.embeddings()) {
            Ok(view) => view,
            Err(_) => return Ok(None),
        };
        let (batch, seq) = ids.dims2()?;
        if mask.dims() != [batch, seq] {
            candle_core::bail!(
                "attention mask of shape {:?} for token ids of shape {:?}",
                mask.dims(),
                ids.dims()
            )
        }
        let (ids, mask): (Vec<u32>, Vec<u32>) = (
            ids.flatten_all()?.to_vec1()?,
            mask.flatten_all()?.to_vec1()?,
        );
        let width = self.word.hidden_size();
        let position = self
            .position
            .as_ref()
            .map(|p| F32View::of(p.embeddings()))
            .transpose()?;
        let token_type = self
            .token_type
            .as_ref()
            .map(|t| F32View::of(t.embeddings()))
            .transpose()?;
        let real = mask.iter().filter(|&&m| m != 0).count();
        let mut x = Vec::with_capacity(real * width);
        let mut positions = Vec::with_capacity(if position.is_some() { real * width } else { 0 });
        let mut spans = Vec::with_capacity(batch);
        for b in 0..batch {
            let start = x.len() / width.max(1);
            let row = &ids[b * seq..(b + 1) * seq];
            // RoBERTa's positions count non-padding ids from `pad + 1` (see the module docs).
            let mut next_after_padding = self.pad_token_id;
            for (j, &id) in row.iter().enumerate() {
                let pos = match self.positions {
                    Positions::FromZero => j as u32,
                    Positions::AfterPadding if id == self.pad_token_id => id,
                    Positions::AfterPadding => {
                        next_after_padding += 1;
                        next_after_padding
                    }
                };
                if mask[b * seq + j] == 0 {
                    continue;
                }
                x.extend_from_slice(table_row(&word, id, width, "token id")?);
                if let Some(position) = &position {
                    positions.extend_from_slice(table_row(position, pos, width, "position")?);
                }
            }
            spans.push(start..x.len() / width.max(1));
        }
        // Token types are all 0: row 0 of the type table, the same for every token, added as
        // the norm's per-column addend.
        let type_row = token_type.map(|t| t.first(width)).transpose()?;
        if position.is_none() {
            positions.resize(x.len(), 0.0);
        }
        self.norm.add_in_place(&mut x, &positions, type_row)?;
        Ok(Some((x, spans)))
    }

    /// Position ids: `(seq,)` shared by every row (BERT) or `(batch, seq)` (RoBERTa).
    fn position_ids(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        let (_, seq) = ids.dims2()?;
        match self.positions {
            Positions::FromZero => Tensor::arange(0u32, seq as u32, ids.device()),
            Positions::AfterPadding => {
                let rows = ids.to_vec2::<u32>()?;
                let pad = self.pad_token_id;
                let mut positions = Vec::with_capacity(rows.len() * seq);
                for row in &rows {
                    let mut next = pad;
                    for &id in row {
                        if id == pad {
                            positions.push(pad);
                        } else {
                            next += 1;
                            positions.push(next);
                        }
                    }
                }
                Tensor::from_vec(positions, ids.shape(), ids.device())
            }
        }
    }
}

/// Row `index` of an embedding table `width` values wide, or an error naming what indexed it
/// (candle's lookup checks its indexes too).
fn table_row<'a>(
    table: &'a F32View,
    index: u32,
    width: usize,
    what: &str,
) -> candle_core::Result<&'a [f32]> {
    let values = table.slice();
    let start = index as usize * width;
    values.get(start..start + width).ok_or_else(|| {
        candle_core::Error::Msg(format!(
            "{what} {index} is past the embedding table's {} rows",
            values.len() / width.max(1)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// A RoBERTa embedding layer (pad id 1, 4 wide, 10 ids and positions) and its variables.
    fn tiny_roberta() -> (Config, candle_nn::VarMap, Embeddings) {
        let config: Config = serde_json::from_value(serde_json::json!({
            "model_type": "roberta", "vocab_size": 10, "hidden_size": 4,
            "num_hidden_layers": 1, "num_attention_heads": 1, "intermediate_size": 8,
            "max_position_embeddings": 10, "type_vocab_size": 1, "pad_token_id": 1
        }))
        .unwrap();
        let varmap = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let embeddings = Embeddings::load(vb, &config).unwrap();
        (config, varmap, embeddings)
    }

    /// transformers' `create_position_ids_from_input_ids` with padding_idx 1:
    /// `cumsum(ids != 1) * (ids != 1) + 1`.
    #[test]
    fn roberta_positions_start_after_padding_and_padding_stays_at_padding_idx() {
        let (config, _, embeddings) = tiny_roberta();
        let ids = Tensor::new(&[[0u32, 5, 6, 2, 1, 1], [0, 7, 2, 1, 1, 1]], &Device::Cpu).unwrap();
        let positions = embeddings.position_ids(&ids).unwrap();
        assert_eq!(
            positions.to_vec2::<u32>().unwrap(),
            vec![vec![2, 3, 4, 5, 1, 1], vec![2, 3, 4, 1, 1, 1]]
        );
        assert_eq!(config.max_tokens(), 8);
    }

    /// The packed rows equal the tensor path's rows at every real token (RoBERTa's positions,
    /// a padded row, random tables and norm), and an id past the vocabulary is an error.
    #[test]
    fn packed_embeddings_equal_the_tensor_path_at_real_tokens() {
        let (_, varmap, embeddings) = tiny_roberta();
        super::super::tests::perturb(&varmap, 3);
        let ids = Tensor::new(&[[0u32, 5, 6, 2], [0, 7, 2, 1]], &Device::Cpu).unwrap();
        let mask = Tensor::new(&[[1u32, 1, 1, 1], [1, 1, 1, 0]], &Device::Cpu).unwrap();
        let (packed, spans) = embeddings.forward_packed(&ids, &mask).unwrap().unwrap();
        assert_eq!(spans, vec![0..4, 4..7]);
        let padded = embeddings.forward(&ids, &mask, None).unwrap();
        let padded = padded.to_vec3::<f32>().unwrap();
        let real_rows: Vec<&Vec<f32>> = (0..2)
            .flat_map(|b| padded[b][..spans[b].len()].iter())
            .collect();
        for (row, want) in packed.chunks_exact(4).zip(real_rows) {
            for (got, want) in row.iter().zip(want) {
                assert!((got - want).abs() < 1e-5, "{got} vs {want}");
            }
        }
        let past = Tensor::new(&[[0u32, 10, 2]], &Device::Cpu).unwrap();
        let ones = Tensor::new(&[[1u32, 1, 1]], &Device::Cpu).unwrap();
        let err = embeddings.forward_packed(&past, &ones).unwrap_err();
        assert!(err.to_string().contains("token id 10"), "{err}");
    }
}
