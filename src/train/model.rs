//! The encoder being trained: a [`Transformer`] (any architecture [`crate::model`] runs) over a
//! `VarMap` of trainable weights, its tokenizer and pooling, and the Hugging Face model
//! directory it is saved as.
//!
//! A saved checkpoint is a complete model directory (`config.json`, `model.safetensors`,
//! `tokenizer.json`, `modules.json`, `1_Pooling/config.json` and whatever else the base model
//! carried): `medlink index build --model DIR` and Python sentence-transformers load it as is.
//! Weights are saved without the architecture's prefix (`embeddings.…`, not `roberta.embeddings.…`),
//! as sentence-transformers saves its transformer; `config.json` keeps the base's `model_type`.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use tokenizers::{Tokenizer, TruncationParams};

use super::optim::Grads;
use crate::encoder::Pooling;
use crate::error::{Error, Result};
use crate::model::{self, Config, Dropout, Transformer};
use crate::parallel::{parallel_map, parallel_map_costliest_first};

/// Strings per forward pass in training (see [`TrainableEncoder::embed_for_training`]).
const TRAIN_GROUP: usize = 32;

/// Files copied unchanged from the base model into every checkpoint.
const CARRIED_FILES: &[&str] = &[
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "sentencepiece.bpe.model",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
];

pub struct TrainableEncoder {
    pub varmap: VarMap,
    pub model: Transformer,
    pub tokenizer: Tokenizer,
    /// The tokenizer's padding token (`encoder::pad_id`).
    pub pad_id: u32,
    pub pooling: Pooling,
    pub max_length: usize,
    base: PathBuf,
    /// Base weights the model does not train but a checkpoint must keep: the pooler (BERT,
    /// RoBERTa). Sentence embeddings pool hidden states and never use it, but without it
    /// transformers re-initialises it at random on loading.
    carried: Vec<(String, Tensor)>,
}

impl TrainableEncoder {
    /// Loads `dir` (a Hugging Face model directory) with trainable weights.
    pub fn load(dir: &Path, max_length: usize) -> Result<Self> {
        let encoder_files = crate::encoder::model_files(dir)?;
        let config = model::read_config(&encoder_files.config)?;
        let pooling = crate::encoder::read_pooling(dir)?;
        let max_length = max_length.min(config.max_tokens());
        let mut tokenizer = Tokenizer::from_file(&encoder_files.tokenizer)
            .map_err(|e| Error::model(format!("{}: {e}", encoder_files.tokenizer.display())))?;
        let pad_id = crate::encoder::pad_id(&tokenizer, &config);
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length,
                ..Default::default()
            }))
            .map_err(|e| Error::model(format!("{}: {e}", encoder_files.tokenizer.display())))?;

        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let model = Transformer::load(vb, &config)?;
        let prefix = config.architecture.weight_prefix();
        let file = candle_core::safetensors::load(&encoder_files.weights, &Device::Cpu)
            .map_err(|e| Error::model(format!("{}: {e}", encoder_files.weights.display())))?;
        let carried = file
            .iter()
            .filter_map(|(name, tensor)| {
                let bare = name.strip_prefix(&format!("{prefix}.")).unwrap_or(name);
                bare.starts_with("pooler.")
                    .then(|| Ok((bare.to_string(), tensor.to_dtype(DType::F32)?)))
            })
            .collect::<Result<Vec<_>>>()?;
        for (name, var) in varmap.data().lock().expect("varmap lock").iter() {
            let stored = file
                .get(name)
                .or_else(|| file.get(&format!("{prefix}.{name}")))
                .ok_or_else(|| {
                    Error::model(format!(
                        "{}: no tensor `{name}`",
                        encoder_files.weights.display()
                    ))
                })?;
            var.set(&stored.to_dtype(DType::F32)?).map_err(|e| {
                Error::model(format!(
                    "{}: `{name}`: {e}",
                    encoder_files.weights.display()
                ))
            })?;
        }
        Ok(TrainableEncoder {
            varmap,
            model,
            tokenizer,
            pad_id,
            pooling,
            max_length,
            base: dir.to_path_buf(),
            carried,
        })
    }

    pub fn config(&self) -> &Config {
        self.model.config()
    }

    /// Named trainable weights, sorted by name.
    pub fn vars(&self) -> Vec<(String, Var)> {
        let mut vars: Vec<(String, Var)> = self
            .varmap
            .data()
            .lock()
            .expect("varmap lock")
            .iter()
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        vars
    }

    /// Token ids of `texts` (truncated to `max_length`).
    pub fn tokenize(&self, texts: &[String]) -> Result<Vec<Vec<u32>>> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.iter().map(String::as_str).collect::<Vec<_>>(), true)
            .map_err(|e| Error::model(format!("tokenizer: {e}")))?;
        Ok(encodings.iter().map(|e| e.get_ids().to_vec()).collect())
    }

    /// Unit vectors `(n, dim)` for token-id sequences; with `dropout`, the training path.
    pub fn embed(&self, tokens: &[&[u32]], dropout: Option<&mut Dropout>) -> Result<Tensor> {
        let (ids, mask) = model::batch_tensors(tokens, self.pad_id, &Device::Cpu)?;
        let hidden = self.model.forward(&ids, &mask, dropout)?;
        Ok(model::pool(&hidden, &mask, self.pooling)?)
    }

    /// Runs the forward pass of a contrastive batch for training: the strings are cut into
    /// length-sorted groups of [`TRAIN_GROUP`], each padded only to its own longest member (a
    /// batch mixes 3-token and 25-token names; padding all to 25 would waste about half of
    /// the matrix products), and the groups are spread over `threads` worker threads.
    /// `dropout(g)` gives group g its dropout, so results do not depend on the thread count.
    pub fn forward_groups(
        &self,
        tokens: &[&[u32]],
        threads: usize,
        dropout: impl Fn(usize) -> Dropout + Sync,
    ) -> Result<GroupedBatch> {
        let mut order: Vec<usize> = (0..tokens.len()).collect();
        order.sort_by_key(|&i| (tokens[i].len(), i));
        let groups: Vec<Vec<usize>> = order.chunks(TRAIN_GROUP).map(<[usize]>::to_vec).collect();
        // Padded tokens: what a group's pass costs.
        let cost: Vec<usize> = groups
            .iter()
            .map(|g| g.len() * g.last().map_or(0, |&i| tokens[i].len()))
            .collect();
        let outputs = parallel_map_costliest_first(&cost, threads, |g| {
            let group: Vec<&[u32]> = groups[g].iter().map(|&i| tokens[i]).collect();
            self.embed(&group, Some(&mut dropout(g)))
        })?;
        Ok(GroupedBatch {
            n: tokens.len(),
            groups,
            cost,
            outputs,
        })
    }

    /// Unit vectors of many token sequences without gradients, batched by length and spread
    /// over `threads` worker threads.
    pub fn embed_all(
        &self,
        tokens: &[Vec<u32>],
        batch: usize,
        threads: usize,
    ) -> Result<Vec<Vec<f32>>> {
        let mut order: Vec<usize> = (0..tokens.len()).collect();
        order.sort_by_key(|&i| tokens[i].len());
        let chunks: Vec<&[usize]> = order.chunks(batch.max(1)).collect();
        let vectors = parallel_map(chunks.len(), threads, |c| {
            let refs: Vec<&[u32]> = chunks[c].iter().map(|&i| tokens[i].as_slice()).collect();
            Ok(self.embed(&refs, None)?.to_vec2::<f32>()?)
        })?;
        let mut out = vec![Vec::new(); tokens.len()];
        for (chunk, vs) in chunks.iter().zip(vectors) {
            for (&i, v) in chunk.iter().zip(vs) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    /// Writes the model files into `dir` (an empty staging directory).
    pub fn save_model(&self, dir: &Path) -> Result<()> {
        for name in CARRIED_FILES {
            let from = self.base.join(name);
            if from.is_file() {
                let to = dir.join(name);
                if let Some(parent) = to.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
                }
                std::fs::copy(&from, &to).map_err(|e| Error::io(&to, e))?;
            }
        }
        if !self.base.join("1_Pooling/config.json").is_file() {
            write_sentence_transformers_files(dir, self.pooling, self.config().hidden_size)?;
        }
        let weights = dir.join("model.safetensors");
        let mut tensors: std::collections::HashMap<String, Tensor> = self
            .vars()
            .into_iter()
            .map(|(name, var)| (name, var.as_tensor().clone()))
            .collect();
        for (name, tensor) in &self.carried {
            tensors
                .entry(name.clone())
                .or_insert_with(|| tensor.clone());
        }
        candle_core::safetensors::save(&tensors, &weights)
            .map_err(|e| Error::model(format!("{}: {e}", weights.display())))
    }
}

/// The forward pass of one contrastive batch, kept per group so that the backward pass can run
/// per group on worker threads too (the groups share weights but no activations).
pub struct GroupedBatch {
    n: usize,
    /// Input indices of each group's rows.
    groups: Vec<Vec<usize>>,
    /// Each group's padded tokens, to schedule the dearest first.
    cost: Vec<usize>,
    /// Each group's embeddings, carrying its computation graph.
    outputs: Vec<Tensor>,
}

impl GroupedBatch {
    /// All embeddings `(n, dim)` in input order, detached from the graph: the loss is computed
    /// on these, and its gradient handed back to [`GroupedBatch::backward`].
    pub fn embeddings(&self) -> Result<Tensor> {
        let sorted = Tensor::cat(&self.outputs, 0)?.detach();
        let mut position_of = vec![0u32; self.n];
        for (pos, &i) in self.groups.iter().flatten().enumerate() {
            position_of[i] = pos as u32;
        }
        let index = Tensor::from_vec(position_of, self.n, &Device::Cpu)?;
        Ok(sorted.index_select(&index, 0)?)
    }

    /// Back-propagates `grad` (d loss / d embeddings, `(n, dim)` in input order) through each
    /// group's encoder pass, on `threads` threads; returns each group's weight gradients, to be
    /// summed by the optimizer. By the chain rule, the gradient of `sum(out_g * grad_g)` with
    /// respect to the weights is exactly group g's share of d loss / d weights.
    pub fn backward(
        &self,
        grad: &Tensor,
        threads: usize,
        collect: impl Fn(&candle_core::backprop::GradStore) -> Grads + Sync,
    ) -> Result<Vec<Grads>> {
        parallel_map_costliest_first(&self.cost, threads, |g| {
            let rows: Vec<u32> = self.groups[g].iter().map(|&i| i as u32).collect();
            let index = Tensor::from_vec(rows, self.groups[g].len(), &Device::Cpu)?;
            let upstream = grad.index_select(&index, 0)?.detach();
            let surrogate = (&self.outputs[g] * upstream)?.sum_all()?;
            Ok(collect(&surrogate.backward()?))
        })
    }
}

/// `modules.json` and `1_Pooling/config.json` for a base model that had none (a plain
/// transformers checkpoint), so sentence-transformers pools the way medlink does.
fn write_sentence_transformers_files(dir: &Path, pooling: Pooling, dim: usize) -> Result<()> {
    let pooling_dir = dir.join("1_Pooling");
    std::fs::create_dir_all(&pooling_dir).map_err(|e| Error::io(&pooling_dir, e))?;
    let pooling_config = serde_json::json!({
        "word_embedding_dimension": dim,
        "pooling_mode_cls_token": pooling == Pooling::Cls,
        "pooling_mode_mean_tokens": pooling == Pooling::Mean,
        "pooling_mode_max_tokens": false,
        "pooling_mode_mean_sqrt_len_tokens": false,
    });
    let modules = serde_json::json!([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]);
    for (path, value) in [
        (pooling_dir.join("config.json"), pooling_config),
        (dir.join("modules.json"), modules),
    ] {
        let text = serde_json::to_string_pretty(&value).expect("static JSON");
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
    }
    Ok(())
}
