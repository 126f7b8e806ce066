//! The transformer tagger: medlink's transformer (BERT, RoBERTa, XLM-R or DeBERTa-v2/v3,
//! [`crate::model`]) with a token-classification head, in the Hugging Face
//! `BertForTokenClassification` / `RobertaForTokenClassification` /
//! `XLMRobertaForTokenClassification` / `DebertaV2ForTokenClassification` layout (the same
//! linear layer for all four), run the way transformers'
//! `pipeline("token-classification", stride=...)` runs it.
//!
//! A model directory holds `config.json` (with `id2label` / `label2id`), `model.safetensors`
//! (encoder weights with or without the `bert.` / `roberta.` / `deberta.` prefix, `classifier.weight` /
//! `classifier.bias`)
//! and `tokenizer.json`; `tokenizer_config.json`'s `model_max_length` gives the window when no
//! `max_length` is set. Checkpoints from transformers load here, and ours load there.
//!
//! A text is tokenized once into overlapping windows of `max_length` tokens (special tokens
//! included) that share `stride` tokens, exactly as a fast tokenizer with
//! `return_overflowing_tokens=True, stride=...` makes them; windows of all texts of a batch are
//! sorted by length, batched and run on `crate::parallel` worker threads; each window's tokens
//! are aggregated into entities ([`super::aggregate`]) and the windows of a text merged.
//! Offsets are character offsets (the tokenizer's byte offsets converted with
//! [`super::CharOffsets`]). Results do not depend on the batch size or the thread count.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use tokenizers::{Decoder, Encoding, Tokenizer};

use super::aggregate::{self, Entity, PreEntity, Strategy};
use super::labels::LabelSet;
use super::{char_slice, CharOffsets, Mention, MentionDetector};
use crate::error::{Error, Result};
use crate::model::{self, Config, Dropout, Transformer};
use crate::parallel::parallel_map;

/// The transformer + a linear layer over every token vector: logits `(batch, seq, labels)`.
pub struct TokenClassifier {
    pub encoder: Transformer,
    weight: Tensor,
    bias: Tensor,
}

impl TokenClassifier {
    /// Loads (or, from a `VarMap`-backed builder, creates) the encoder under `encoder` and
    /// the head `classifier.weight` / `classifier.bias` under `head`.
    pub fn load(
        encoder: VarBuilder,
        head: VarBuilder,
        config: &Config,
        labels: usize,
    ) -> candle_core::Result<Self> {
        let encoder = Transformer::load(encoder, config)?;
        let weight = head.get_with_hints(
            (labels, config.hidden_size),
            "weight",
            candle_nn::Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            },
        )?;
        let bias = head.get_with_hints(labels, "bias", candle_nn::init::ZERO)?;
        Ok(TokenClassifier {
            encoder,
            weight,
            bias,
        })
    }

    /// Logits for `ids` / `mask` (`(batch, seq)` u32); with `dropout`, the training path
    /// (dropout also before the head, as transformers does).
    pub fn forward(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        mut dropout: Option<&mut Dropout>,
    ) -> candle_core::Result<Tensor> {
        let mut hidden = self.encoder.forward(ids, mask, dropout.as_deref_mut())?;
        if let Some(d) = dropout {
            hidden = d.hidden(&hidden)?;
        }
        let (b, s, h) = hidden.dims3()?;
        hidden
            .reshape((b * s, h))?
            .matmul(&self.weight.t()?)?
            .broadcast_add(&self.bias)?
            .reshape((b, s, ()))
    }
}

/// Tagger settings.
#[derive(Debug, Clone)]
pub struct TaggerOptions {
    /// Tokens per window, special tokens included [default: the tokenizer's
    /// `model_max_length`, at most the positions the model has].
    pub max_length: Option<usize>,
    /// Tokens shared by consecutive windows of a long text.
    pub stride: usize,
    /// At most this many windows per forward pass.
    pub batch_size: usize,
    /// At most this many (padded) tokens per forward pass, except that a window always runs:
    /// long windows run alone (measured on one thread with 512-token windows: 3,160 tokens/s
    /// one window per pass, 2,020 with 16; attention's memory traffic grows with the batch).
    pub batch_tokens: usize,
    /// Worker threads (0: one per CPU).
    pub threads: usize,
    /// Aggregation used by [`MentionDetector`].
    pub strategy: Strategy,
}

impl Default for TaggerOptions {
    fn default() -> Self {
        TaggerOptions {
            max_length: None,
            stride: 32,
            batch_size: 16,
            batch_tokens: 512,
            threads: 0,
            strategy: Strategy::First,
        }
    }
}

/// A token-classification model ready to tag texts.
pub struct Tagger {
    model: TokenClassifier,
    tokenizer: Tokenizer,
    /// `tokenizer` without its post-processor, which cuts texts into windows before the
    /// special tokens are added. Encoding with the post-processor and running it again on each
    /// window would apply it twice, and RoBERTa's trims offsets every time it runs (a token
    /// after a space would start one character late).
    segmenter: Tokenizer,
    /// The tokenizer's padding token (`encoder::pad_id`).
    pad_id: u32,
    labels: LabelSet,
    unk_id: Option<u32>,
    subword_prefix: Option<String>,
    max_length: usize,
    /// Special tokens the post-processor adds to every window.
    specials: usize,
    stride: usize,
    batch_size: usize,
    batch_tokens: usize,
    threads: usize,
    strategy: Strategy,
}

/// A window's encoding and its logits `[token][label]`.
pub type WindowLogits = (Encoding, Vec<Vec<f32>>);

/// One window of a text: its encoding and which text it belongs to.
struct Window {
    text: usize,
    encoding: Encoding,
}

impl Tagger {
    /// Loads a model directory (see the module docs) for inference.
    pub fn load(dir: &Path, options: &TaggerOptions) -> Result<Self> {
        let _span = tracing::info_span!("load_tagger", dir = %dir.display()).entered();
        let files = crate::encoder::model_files(dir)?;
        let config = model::read_config(&files.config)?;
        let raw = read_json(&files.config)?;
        let labels = LabelSet::from_config(&raw, &files.config)?.ok_or_else(|| {
            Error::parse(
                &files.config,
                1,
                Some("id2label"),
                "no id2label: not a token-classification model",
            )
        })?;
        // SAFETY: read-only memory map of a file medlink does not write while it is loaded.
        let vb = unsafe {
            VarBuilder::from_mmaped_safetensors(&[&files.weights], DType::F32, &Device::Cpu)?
        };
        if !vb.contains_tensor("classifier.weight") {
            return Err(Error::model(format!(
                "{}: no `classifier.weight`: not a token-classification checkpoint (train one with `medlink train tagger`)",
                files.weights.display()
            )));
        }
        let model = TokenClassifier::load(vb.clone(), vb.pp("classifier"), &config, labels.len())
            .map_err(|e| Error::model(format!("{}: {e}", files.weights.display())))?;
        let tokenizer = load_tokenizer(&files.tokenizer)?;
        let window = default_window(dir, &config)?;
        Tagger::new(model, tokenizer, labels, &config, window, options)
    }

    /// A tagger over an already-built model (the trainer's, whose weights it updates in place).
    pub fn new(
        model: TokenClassifier,
        tokenizer: Tokenizer,
        labels: LabelSet,
        config: &Config,
        default_window: usize,
        options: &TaggerOptions,
    ) -> Result<Self> {
        let max_length = options
            .max_length
            .unwrap_or(default_window)
            .min(config.max_tokens());
        let mut tokenizer = tokenizer;
        let pad_id = crate::encoder::pad_id(&tokenizer, config);
        let specials = tokenizer
            .get_post_processor()
            .map_or(0, |p| tokenizers::PostProcessor::added_tokens(p, false));
        if max_length <= specials + options.stride || options.batch_size == 0 {
            return Err(Error::InvalidInput(format!(
                "a window of {max_length} tokens ({specials} special) cannot advance with a stride of {}: lower the stride or raise max_length (batch size {})",
                options.stride, options.batch_size
            )));
        }
        // Windows are cut by `windows()`, not by the tokenizer: tokenizers 0.23.2 drops the
        // last token of the last overflowing window when it truncates inside `encode`.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| Error::model(format!("tokenizer: {e}")))?;
        let mut segmenter = tokenizer.clone();
        segmenter.with_post_processor(None::<tokenizers::PostProcessorWrapper>);
        let (unk_id, subword_prefix) = match tokenizer.get_model() {
            tokenizers::ModelWrapper::WordPiece(wp) => (
                tokenizer.token_to_id(&wp.unk_token),
                Some(wp.continuing_subword_prefix.clone()),
            ),
            tokenizers::ModelWrapper::BPE(bpe) => (
                bpe.unk_token
                    .as_deref()
                    .and_then(|u| tokenizer.token_to_id(u)),
                bpe.continuing_subword_prefix.clone(),
            ),
            // SentencePiece (Unigram) keeps its unknown-token id private: find it by name.
            _ => (
                tokenizer
                    .token_to_id("<unk>")
                    .or_else(|| tokenizer.token_to_id("[UNK]")),
                None,
            ),
        };
        Ok(Tagger {
            model,
            tokenizer,
            segmenter,
            pad_id,
            labels,
            unk_id,
            subword_prefix: subword_prefix.filter(|p| !p.is_empty()),
            max_length,
            specials,
            stride: options.stride,
            batch_size: options.batch_size,
            batch_tokens: options.batch_tokens,
            threads: crate::parallel::threads(options.threads),
            strategy: options.strategy,
        })
    }

    pub fn labels(&self) -> &LabelSet {
        &self.labels
    }

    /// Tokens per window, special tokens included.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn model(&self) -> &TokenClassifier {
        &self.model
    }

    /// The id windows are padded with in a batch.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The windows of `text`, in order: `max_length` tokens each (special tokens included),
    /// consecutive windows sharing `stride` tokens, as a fast tokenizer's overflowing
    /// encodings with `stride` are. Offsets are byte offsets into `text`.
    pub fn windows(&self, text: &str) -> Result<Vec<Encoding>> {
        let mut encoding = self
            .segmenter
            .encode(text, false)
            .map_err(|e| Error::model(format!("tokenizer: {e}")))?;
        encoding.truncate(
            self.max_length - self.specials,
            self.stride,
            tokenizers::TruncationDirection::Right,
        );
        let overflow = encoding.take_overflowing();
        std::iter::once(encoding)
            .chain(overflow)
            .map(|w| match self.tokenizer.get_post_processor() {
                Some(p) => tokenizers::PostProcessor::process(p, w, None, true)
                    .map_err(|e| Error::model(format!("tokenizer post-processor: {e}"))),
                None => Ok(w),
            })
            .collect()
    }

    /// Logits of every window of every text: `[text][window][token][label]`.
    pub fn logits_batch(&self, texts: &[&str]) -> Result<Vec<Vec<WindowLogits>>> {
        let mut windows = Vec::new();
        for (t, text) in texts.iter().enumerate() {
            for encoding in self.windows(text)? {
                windows.push(Window { text: t, encoding });
            }
        }
        let mut order: Vec<usize> = (0..windows.len()).collect();
        order.sort_by_key(|&i| (windows[i].encoding.len(), i));
        // Length-sorted batches cut by window count and padded token count.
        let mut chunks: Vec<&[usize]> = Vec::new();
        let mut start = 0;
        for end in 1..=order.len() {
            let longest = windows[order[end - 1]].encoding.len();
            let full = end - start > self.batch_size || (end - start) * longest > self.batch_tokens;
            if full && end - 1 > start {
                chunks.push(&order[start..end - 1]);
                start = end - 1;
            }
        }
        if start < order.len() {
            chunks.push(&order[start..]);
        }
        let outputs = parallel_map(chunks.len(), self.threads, |c| {
            let tokens: Vec<&[u32]> = chunks[c]
                .iter()
                .map(|&i| windows[i].encoding.get_ids())
                .collect();
            let (ids, mask) = model::batch_tensors(&tokens, self.pad_id, &Device::Cpu)?;
            let logits = self.model.forward(&ids, &mask, None)?;
            Ok(logits.to_vec3::<f32>()?)
        })?;
        let mut per_window: Vec<Option<Vec<Vec<f32>>>> = vec![None; windows.len()];
        for (chunk, out) in chunks.iter().zip(outputs) {
            for (&i, mut rows) in chunk.iter().zip(out) {
                rows.truncate(windows[i].encoding.len());
                per_window[i] = Some(rows);
            }
        }
        let mut out: Vec<Vec<WindowLogits>> = vec![Vec::new(); texts.len()];
        for (w, logits) in windows.into_iter().zip(per_window) {
            out[w.text].push((w.encoding, logits.unwrap_or_default()));
        }
        Ok(out)
    }

    /// Entities of each text under `strategy`, in the Hugging Face pipeline shape.
    pub fn tag_batch(&self, texts: &[&str], strategy: Strategy) -> Result<Vec<Vec<Entity>>> {
        let logits = self.logits_batch(texts)?;
        Ok(texts
            .iter()
            .zip(logits)
            .map(|(text, windows)| self.entities(text, &windows, strategy))
            .collect())
    }

    pub fn tag(&self, text: &str, strategy: Strategy) -> Result<Vec<Entity>> {
        Ok(self.tag_batch(&[text], strategy)?.pop().unwrap_or_default())
    }

    fn entities(&self, text: &str, windows: &[WindowLogits], strategy: Strategy) -> Vec<Entity> {
        let chars = CharOffsets::new(text);
        let decode = |tokens: &[String]| -> String {
            match self.tokenizer.get_decoder() {
                Some(d) => d
                    .decode(tokens.to_vec())
                    .unwrap_or_else(|_| tokens.join(" ")),
                None => tokens.join(" "),
            }
        };
        let mut all = Vec::new();
        for (encoding, logits) in windows {
            let pre = self.pre_entities(text, &chars, encoding, logits);
            all.extend(aggregate::aggregate(
                &pre,
                strategy,
                self.labels.labels(),
                &["O"],
                &decode,
            ));
        }
        if windows.len() > 1 {
            all = aggregate::merge_overlapping(all);
        }
        all
    }

    fn pre_entities(
        &self,
        text: &str,
        chars: &CharOffsets,
        encoding: &Encoding,
        logits: &[Vec<f32>],
    ) -> Vec<PreEntity> {
        let mut out = Vec::new();
        for (i, row) in logits.iter().enumerate() {
            if encoding.get_special_tokens_mask()[i] == 1 {
                continue;
            }
            let id = encoding.get_ids()[i];
            let (b0, b1) = encoding.get_offsets()[i];
            let (start, end) = (chars.char_at(b0), chars.char_at(b1));
            let covered = &text[b0.min(text.len())..b1.min(text.len())];
            let mut word = self
                .tokenizer
                .id_to_token(id)
                .unwrap_or_else(|| covered.to_string());
            let mut is_subword = if self.subword_prefix.is_some() {
                aggregate::is_subword(&word, covered, start, "", self.subword_prefix.as_deref())
            } else {
                let around = char_slice(text, start.saturating_sub(1), start + 1);
                aggregate::is_subword(&word, covered, start, around, None)
            };
            if Some(id) == self.unk_id {
                word = covered.to_string();
                is_subword = false;
            }
            out.push(PreEntity {
                word,
                scores: aggregate::softmax(row),
                start,
                end,
                index: i,
                is_subword,
            });
        }
        out
    }
}

impl MentionDetector for Tagger {
    fn detect_batch(&self, texts: &[&str]) -> Result<Vec<Vec<Mention>>> {
        let strategy = match self.strategy {
            // Token-level output is not a list of mentions: group as `simple` would.
            Strategy::None => Strategy::Simple,
            s => s,
        };
        let entities = self.tag_batch(texts, strategy)?;
        Ok(texts
            .iter()
            .zip(entities)
            .map(|(text, entities)| {
                entities
                    .into_iter()
                    .map(|e| Mention {
                        text: char_slice(text, e.start, e.end).to_string(),
                        start: e.start,
                        end: e.end,
                        entity_type: e.entity_group,
                        score: e.score,
                        concepts: Vec::new(),
                    })
                    .collect()
            })
            .collect())
    }
}

/// The tokenizer of a model directory, as configured there ([`Tagger::new`] reads its padding
/// token, then switches padding off: batches pad themselves).
pub fn load_tokenizer(path: &Path) -> Result<Tokenizer> {
    Tokenizer::from_file(path).map_err(|e| Error::model(format!("{}: {e}", path.display())))
}

/// The window a model directory asks for: `tokenizer_config.json`'s `model_max_length` (as
/// transformers' pipeline uses it), else every position the model has ([`Config::max_tokens`]).
pub fn default_window(dir: &Path, config: &Config) -> Result<usize> {
    let path = dir.join("tokenizer_config.json");
    let from_tokenizer = if path.is_file() {
        read_json(&path)?
            .get("model_max_length")
            .and_then(|v| v.as_f64())
            .filter(|v| *v >= 1.0)
            .map(|v| v.min(usize::MAX as f64) as usize)
    } else {
        None
    };
    Ok(from_tokenizer
        .unwrap_or(config.max_tokens())
        .min(config.max_tokens()))
}

pub(crate) fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::parse(path, e.line(), None, e.to_string()))
}
