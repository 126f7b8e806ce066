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
use super::layers::{Dense, Dropout, Norm};
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// transformers' `create_position_ids_from_input_ids` with padding_idx 1:
    /// `cumsum(ids != 1) * (ids != 1) + 1`.
    #[test]
    fn roberta_positions_start_after_padding_and_padding_stays_at_padding_idx() {
        let config: Config = serde_json::from_value(serde_json::json!({
            "model_type": "roberta", "vocab_size": 10, "hidden_size": 4,
            "num_hidden_layers": 1, "num_attention_heads": 1, "intermediate_size": 8,
            "max_position_embeddings": 10, "type_vocab_size": 1, "pad_token_id": 1
        }))
        .unwrap();
        let varmap = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let embeddings = Embeddings::load(vb, &config).unwrap();
        let ids = Tensor::new(&[[0u32, 5, 6, 2, 1, 1], [0, 7, 2, 1, 1, 1]], &Device::Cpu).unwrap();
        let positions = embeddings.position_ids(&ids).unwrap();
        assert_eq!(
            positions.to_vec2::<u32>().unwrap(),
            vec![vec![2, 3, 4, 5, 1, 1], vec![2, 3, 4, 1, 1, 1]]
        );
        assert_eq!(config.max_tokens(), 8);
    }
}
