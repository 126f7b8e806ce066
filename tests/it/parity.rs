//! RoBERTa, XLM-RoBERTa and DeBERTa-v2/v3: parity with transformers on tiny random checkpoints
//! (`benches/python/make_arch_fixtures.py`: a byte-level BPE RoBERTa, a Unigram XLM-R and a
//! Unigram DeBERTa-v2 with v3's settings, one padded batch of mixed lengths with non-ASCII
//! text), and both trainers on them.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor, Var};
use medlink::encoder::{Encoder, EncoderOptions, Pooling, TransformerEncoder};
use medlink::model::{self, Dropout};
use medlink::ner::labels::LabelSet;
use medlink::ner::tagger::{Tagger, TaggerOptions};
use medlink::rng::SplitMix64;
use medlink::train::loss::MultiSimilarity;
use medlink::train::model::TrainableEncoder;
use medlink::train::optim::{AdamW, AdamWConfig, Grads};
use medlink::train::pairs::PairSet;
use medlink::train::tagger::{TaggerStart, TaggerTrainOptions, TaggerTrainer, TrainableTagger};
use medlink::train::{Silent, Start, StopRule, Trainer};
use serde_json::Value;

use crate::common::fixture;

/// One tiny checkpoint and what it must declare.
struct Fixture {
    name: &'static str,
    model_type: &'static str,
    /// The encoder's weight prefix in the task checkpoint.
    prefix: &'static str,
    /// transformers' token-classification class.
    class: &'static str,
    /// Tensors of the encoder alone (the tagger adds the classifier's two).
    encoder_tensors: usize,
}

const FIXTURES: [Fixture; 3] = [
    Fixture {
        name: "roberta-tiny",
        model_type: "roberta",
        prefix: "roberta.",
        class: "RobertaForTokenClassification",
        // Embeddings (3 tables + LayerNorm) + 2 layers x 16 tensors.
        encoder_tensors: 37,
    },
    Fixture {
        name: "xlm-roberta-tiny",
        model_type: "xlm-roberta",
        prefix: "roberta.",
        class: "XLMRobertaForTokenClassification",
        encoder_tensors: 37,
    },
    Fixture {
        name: "deberta-v2-tiny",
        model_type: "deberta-v2",
        prefix: "deberta.",
        class: "DebertaV2ForTokenClassification",
        // Embeddings (word table, embed_proj, LayerNorm) + 2 layers x 16 tensors +
        // the relative embeddings and their LayerNorm.
        encoder_tensors: 39,
    },
];
const TOLERANCE: f32 = 1e-4;

struct Expected {
    dir: PathBuf,
    json: Value,
}

impl Expected {
    fn load(name: &str) -> Self {
        let dir = fixture(name);
        let text = std::fs::read_to_string(dir.join("expected.json")).unwrap();
        Expected {
            dir,
            json: serde_json::from_str(&text).unwrap(),
        }
    }

    fn texts(&self) -> Vec<&str> {
        let texts = self.json["texts"].as_array().unwrap();
        texts.iter().map(|t| t.as_str().unwrap()).collect()
    }

    fn ints(&self, key: &str) -> Vec<Vec<u32>> {
        self.json[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                let row = row.as_array().unwrap();
                row.iter().map(|v| v.as_u64().unwrap() as u32).collect()
            })
            .collect()
    }

    /// Token ids of each text without padding.
    fn unpadded_ids(&self) -> Vec<Vec<u32>> {
        let mask = self.ints("attention_mask");
        self.ints("ids")
            .into_iter()
            .zip(mask)
            .map(|(ids, m)| ids[..m.iter().sum::<u32>() as usize].to_vec())
            .collect()
    }

    /// The value at `key` flattened (any nesting of arrays of numbers).
    fn floats(&self, key: &str) -> Vec<f32> {
        fn flatten(v: &Value, out: &mut Vec<f32>) {
            match v {
                Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
                n => out.push(n.as_f64().unwrap() as f32),
            }
        }
        let mut out = Vec::new();
        flatten(&self.json[key], &mut out);
        out
    }
}

fn max_abs_difference(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max)
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn tagger(dir: &Path) -> Tagger {
    Tagger::load(
        dir,
        &TaggerOptions {
            threads: 1,
            ..TaggerOptions::default()
        },
    )
    .unwrap()
}

/// The padded batch transformers ran, through medlink's model: the hidden states and the
/// classifier's logits at every real token, both poolings. Padding positions are left out:
/// nothing reads them, and BERT-family inference does not compute them (see `model`).
#[test]
fn hidden_states_pools_and_logits_equal_transformers_on_a_padded_batch() {
    for Fixture {
        name, model_type, ..
    } in FIXTURES
    {
        let e = Expected::load(name);
        assert_eq!(e.json["model_type"], model_type);
        let tagger = tagger(&e.dir);
        let config = tagger.model().encoder.config();
        assert_eq!(config.architecture.model_type(), model_type);
        assert_eq!(tagger.pad_id(), e.json["pad_id"].as_u64().unwrap() as u32);
        assert_eq!(tagger.max_length(), 64, "{name}: 64 usable positions");
        // medlink's tokenization is transformers'.
        for (text, want) in e.texts().into_iter().zip(e.unpadded_ids()) {
            let got = tagger.tokenizer().encode(text, true).unwrap();
            assert_eq!(got.get_ids(), want.as_slice(), "{name}: ids of {text:?}");
        }
        let rows = e.unpadded_ids();
        let refs: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
        let (ids, mask) = model::batch_tensors(&refs, tagger.pad_id(), &Device::Cpu).unwrap();
        assert_eq!(
            ids.to_vec2::<u32>().unwrap(),
            e.ints("ids"),
            "{name}: padding"
        );
        let hidden = tagger.model().encoder.forward(&ids, &mask, None).unwrap();
        let logits = tagger.model().forward(&ids, &mask, None).unwrap();
        let cls = model::pool(&hidden, &mask, Pooling::Cls).unwrap();
        let mean = model::pool(&hidden, &mask, Pooling::Mean).unwrap();
        let real: Vec<bool> = e
            .ints("attention_mask")
            .concat()
            .iter()
            .map(|&m| m != 0)
            .collect();
        assert!(real.contains(&false), "{name}: the batch has padding");
        for (what, got, per_token) in [
            ("hidden", &hidden, true),
            ("logits", &logits, true),
            ("cls", &cls, false),
            ("mean", &mean, false),
        ] {
            let (mut got, mut want) = (flat(got), e.floats(what));
            if per_token {
                let width = got.len() / real.len();
                let keep = |values: &[f32]| -> Vec<f32> {
                    values
                        .chunks(width)
                        .zip(&real)
                        .filter(|(_, &r)| r)
                        .flat_map(|(row, _)| row.to_vec())
                        .collect()
                };
                (got, want) = (keep(&got), keep(&want));
            }
            let d = max_abs_difference(&got, &want);
            eprintln!("{name} {what}: max |medlink - transformers| {d:.2e}");
            assert!(d < TOLERANCE, "{name} {what}: max abs difference {d}");
        }
    }
}

/// The encoder end to end (tokenize, length-sorted batches, pool, L2) in batches of 2 and of
/// all, against transformers' CLS (`<s>`, `[CLS]`) and mean vectors.
#[test]
fn encoder_vectors_equal_transformers_for_cls_and_mean_pooling() {
    for Fixture { name, .. } in FIXTURES {
        let e = Expected::load(name);
        for (pooling, key) in [(Pooling::Cls, "cls"), (Pooling::Mean, "mean")] {
            for batch_size in [2, 128] {
                let encoder = TransformerEncoder::load(
                    &e.dir,
                    &EncoderOptions {
                        max_length: 64,
                        batch_size,
                        pooling: Some(pooling),
                        threads: 1,
                        ..EncoderOptions::default()
                    },
                )
                .unwrap();
                assert_eq!(encoder.dim(), 32);
                let vectors = encoder.encode(&e.texts()).unwrap();
                let got: Vec<f32> = vectors.concat();
                let d = max_abs_difference(&got, &e.floats(key));
                assert!(d < TOLERANCE, "{name} {key} batch {batch_size}: {d}");
            }
        }
    }
}

/// A sentence-transformers checkpoint stores the encoder without the `roberta.` (`deberta.`)
/// prefix.
#[test]
fn weights_without_the_architecture_prefix_give_the_same_vectors() {
    let tmp = tempfile::tempdir().unwrap();
    for Fixture { name, prefix, .. } in FIXTURES {
        let e = Expected::load(name);
        let bare = tmp.path().join(name);
        std::fs::create_dir_all(&bare).unwrap();
        for file in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
            std::fs::copy(e.dir.join(file), bare.join(file)).unwrap();
        }
        let weights =
            candle_core::safetensors::load(e.dir.join("model.safetensors"), &Device::Cpu).unwrap();
        let stripped: std::collections::HashMap<String, Tensor> = weights
            .into_iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), v)))
            .collect();
        assert!(stripped.contains_key("embeddings.word_embeddings.weight"));
        candle_core::safetensors::save(&stripped, bare.join("model.safetensors")).unwrap();
        let options = EncoderOptions {
            max_length: 64,
            pooling: Some(Pooling::Mean),
            ..EncoderOptions::default()
        };
        let prefixed = TransformerEncoder::load(&e.dir, &options).unwrap();
        let unprefixed = TransformerEncoder::load(&bare, &options).unwrap();
        assert_eq!(
            prefixed.encode(&e.texts()).unwrap(),
            unprefixed.encode(&e.texts()).unwrap(),
            "{name}"
        );
    }
}

/// The tagger's windows and batches (not the fixture's one padded batch) give the same logits.
#[test]
fn tagger_logits_equal_transformers() {
    for Fixture { name, .. } in FIXTURES {
        let e = Expected::load(name);
        let tagger = tagger(&e.dir);
        let got = tagger.logits_batch(&e.texts()).unwrap();
        let want = e.json["logits"].as_array().unwrap();
        let mut worst = 0f32;
        for ((windows, ids), want_rows) in got.iter().zip(e.unpadded_ids()).zip(want) {
            assert_eq!(windows.len(), 1, "every text fits one 64-token window");
            let (encoding, logits) = &windows[0];
            assert_eq!(encoding.get_ids(), ids.as_slice());
            let want_rows = &want_rows.as_array().unwrap()[..ids.len()];
            for (row, want_row) in logits.iter().zip(want_rows) {
                let want_row: Vec<f32> = want_row
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap() as f32)
                    .collect();
                worst = worst.max(max_abs_difference(row, &want_row));
            }
        }
        assert!(
            worst < TOLERANCE,
            "{name}: max abs logit difference {worst}"
        );
    }
}

/// Every weight's gradient is non-zero and finite.
fn assert_all_gradients(optimizer: &AdamW, grads: &Grads, what: &str) {
    for (name, g) in optimizer.named(grads) {
        let g = g.unwrap_or_else(|| panic!("{what}: no gradient for {name}"));
        let norm = g.sqr().unwrap().sum_all().unwrap();
        let norm = norm.to_scalar::<f32>().unwrap();
        assert!(
            norm > 0.0 && norm.is_finite(),
            "{what}: {name}: gradient norm {norm}"
        );
    }
}

#[test]
fn gradients_reach_every_weight_of_both_trainers_models() {
    for Fixture {
        name,
        prefix,
        encoder_tensors,
        ..
    } in FIXTURES
    {
        let dir = fixture(name);
        let encoder = TrainableEncoder::load(&dir, 25).unwrap();
        let vars = encoder.vars();
        assert_eq!(vars.len(), encoder_tensors, "{name}");
        assert!(vars.iter().all(|(n, _)| !n.starts_with(prefix)));
        let texts = [
            "breast cancer",
            "carcinoma of the breast",
            "lung cancer",
            "carcinoma of the lung",
        ];
        let tokens = encoder.tokenize(&texts.map(String::from)).unwrap();
        let refs: Vec<&[u32]> = tokens.iter().map(Vec::as_slice).collect();
        let forward = encoder
            .forward_groups(&refs, 1, |g| {
                Dropout::new(encoder.config(), SplitMix64::new(g as u64))
            })
            .unwrap();
        let embeddings = Var::from_tensor(&forward.embeddings().unwrap()).unwrap();
        let loss = MultiSimilarity::default()
            .loss(embeddings.as_tensor(), &[0, 1, 0, 1])
            .unwrap();
        assert!(loss.loss.to_scalar::<f32>().unwrap() > 0.0, "{name}");
        let upstream = loss.loss.backward().unwrap();
        let upstream = upstream.get(embeddings.as_tensor()).unwrap();
        let optimizer = AdamW::new(vars, AdamWConfig::default());
        let parts = forward
            .backward(upstream, 1, |store| optimizer.collect(store))
            .unwrap();
        assert_all_gradients(&optimizer, &parts[0], &format!("{name} encoder"));

        // The tagger: the same under the prefix + the checkpoint's classifier.
        let labels = LabelSet::iob2(["Disease", "Chemical"]);
        let options = TaggerOptions {
            max_length: Some(32),
            stride: 8,
            ..TaggerOptions::default()
        };
        let model = TrainableTagger::load(&dir, &labels, &options, 1).unwrap();
        let vars = model.vars();
        assert_eq!(vars.len(), encoder_tensors + 2, "{name}");
        assert!(vars.iter().any(|(n, _)| n.starts_with(prefix)), "{name}");
        let corpus = crate::tagger::toy_corpus(4, 1);
        let set = medlink::train::tagger::WindowSet::new(&corpus, &model.tagger).unwrap();
        let windows: Vec<_> = set.windows.iter().collect();
        let optimizer = AdamW::new(vars, AdamWConfig::default());
        let mut dropout = Dropout::new(model.config(), SplitMix64::new(3));
        let value = model
            .group_loss(
                &windows,
                &mut dropout,
                &|_| 0.01,
                medlink::train::tagger::TokenLoss::Ce,
                2.0,
            )
            .unwrap();
        let grads = optimizer.collect(&value.backward().unwrap());
        assert_all_gradients(&optimizer, &grads, &format!("{name} tagger"));
    }
}

/// Tensor names of a checkpoint's `model.safetensors`, sorted.
fn weight_names(dir: &Path) -> Vec<String> {
    let weights =
        candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    let mut names: Vec<String> = weights.into_keys().collect();
    names.sort();
    names
}

fn config_json(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap()
}

fn mean(losses: &[f32]) -> f32 {
    losses.iter().sum::<f32>() / losses.len() as f32
}

#[test]
fn tiny_checkpoints_of_each_architecture_learn_toy_synonyms_with_the_encoder_trainer() {
    let tmp = tempfile::tempdir().unwrap();
    let mut pairs = PairSet::default();
    pairs.add_synonym_pairs(&crate::train::toy_dictionary(tmp.path()), 50, 1);
    for Fixture {
        name,
        model_type,
        prefix,
        ..
    } in FIXTURES
    {
        let base = fixture(name);
        let out = tmp.path().join(name);
        let summary = Trainer {
            out: &out,
            threads: 2,
            options: medlink::train::TrainOptions {
                learning_rate: 3e-3,
                ..crate::train::tiny_options(150)
            },
            pairs: &pairs,
            dev: None,
        }
        .run(Start::Base(&base), &StopRule::default(), &mut Silent)
        .unwrap();
        let losses: Vec<f32> = summary.state.history.iter().map(|r| r.loss).collect();
        let (first, last) = (mean(&losses[..10]), mean(&losses[140..]));
        assert!(
            last < 0.7 * first,
            "{name}: loss did not fall: first 10 steps {first:.4}, last 10 {last:.4}"
        );
        // A sentence-transformers directory of the same architecture: the base's config and
        // tokenizer, the encoder's weights without the `roberta.` / `deberta.` prefix.
        assert_eq!(config_json(&summary.last)["model_type"], model_type);
        let base_names: Vec<String> = weight_names(&base)
            .into_iter()
            .filter_map(|n| Some(n.strip_prefix(prefix)?.to_string()))
            .collect();
        assert_eq!(weight_names(&summary.last), base_names, "{name}");
        assert!(summary.last.join("1_Pooling/config.json").is_file());
        let encoder = TransformerEncoder::load(&summary.last, &EncoderOptions::default()).unwrap();
        let v = encoder.encode(&["heart attack", "MI"]).unwrap();
        assert_eq!(v[0].len(), 32);
    }
}

#[test]
fn tiny_checkpoints_of_each_architecture_learn_a_toy_tagging_task() {
    let train = crate::tagger::toy_corpus(32, 1);
    for Fixture {
        name,
        model_type,
        class,
        ..
    } in FIXTURES
    {
        let base = fixture(name);
        let dir = tempfile::tempdir().unwrap();
        let summary = TaggerTrainer {
            out: dir.path(),
            threads: 2,
            options: TaggerTrainOptions {
                max_length: 24,
                stride: 4,
                ..crate::tagger::toy_options(50)
            },
            train: &train,
            dev: None,
        }
        .run(TaggerStart::Base(&base), &StopRule::default(), &mut Silent)
        .unwrap();
        let losses: Vec<f32> = summary.state.history.iter().map(|r| r.loss).collect();
        let (first, last) = (mean(&losses[..5]), mean(&losses[45..]));
        assert!(last < 0.5 * first, "{name}: loss {first} -> {last}");
        // transformers' token-classification directory of the base's architecture.
        let config = config_json(&summary.last);
        assert_eq!(config["model_type"], model_type);
        assert_eq!(config["architectures"], serde_json::json!([class]));
        assert_eq!(weight_names(&summary.last), weight_names(&base), "{name}");
        // The checkpoint tags with its 24-token training window (a stride that fits it).
        let tagger = Tagger::load(
            &summary.last,
            &TaggerOptions {
                threads: 1,
                stride: 4,
                ..TaggerOptions::default()
            },
        )
        .unwrap();
        assert_eq!((tagger.labels().len(), tagger.max_length()), (5, 24));
    }
}

/// Entities need the tokenizer's character offsets and word boundaries (byte-level BPE and
/// SentencePiece have no `##` continuation marks: the pipeline's whitespace heuristic decides).
/// Regression: RoBERTa's post-processor ran twice on every window and trimmed the offsets of
/// tokens after a space twice, so entities started one character late.
#[test]
fn tagger_entities_equal_transformers_pipeline() {
    use medlink::ner::aggregate::Strategy;
    for Fixture { name, .. } in FIXTURES {
        let e = Expected::load(name);
        let tagger = tagger(&e.dir);
        let mut compared = 0;
        for (strategy, per_text) in e.json["entities"].as_object().unwrap() {
            let s: Strategy = strategy.parse().unwrap();
            let got = tagger.tag_batch(&e.texts(), s).unwrap();
            for ((text, got), want) in e.texts().iter().zip(got).zip(per_text.as_array().unwrap()) {
                let key = |group: &str, start: usize, end: usize| format!("{group}:{start}-{end}");
                let got_keys: Vec<String> = got
                    .iter()
                    .map(|g| key(&g.entity_group, g.start, g.end))
                    .collect();
                let want = want.as_array().unwrap();
                let want_keys: Vec<String> = want
                    .iter()
                    .map(|w| {
                        let at = |k: &str| w[k].as_u64().unwrap() as usize;
                        key(w["entity_group"].as_str().unwrap(), at("start"), at("end"))
                    })
                    .collect();
                assert_eq!(got_keys, want_keys, "{name} {strategy} on {text:?}");
                for (g, w) in got.iter().zip(want) {
                    assert_eq!(g.word, w["word"].as_str().unwrap(), "{name} {strategy}");
                    let d = (g.score - w["score"].as_f64().unwrap() as f32).abs();
                    assert!(d < TOLERANCE, "{name} {strategy}: score differs by {d}");
                    compared += 1;
                }
            }
        }
        assert!(compared > 50, "{name}: only {compared} entities compared");
    }
}

/// What a user runs: `embed` and `index build --model DIR` take each architecture, and
/// `annotate --tagger DIR` finds transformers' pipeline entities.
#[test]
fn embed_index_build_and_annotate_accept_roberta_xlmr_and_deberta_directories() {
    use crate::cli::{medlink, run};
    let tmp = tempfile::tempdir().unwrap();
    let sample = format!(
        "tsv:{}/ontologies/samples/custom.tsv",
        env!("CARGO_MANIFEST_DIR")
    );
    for Fixture { name, .. } in FIXTURES {
        let e = Expected::load(name);
        let input = e.texts().join("\n") + "\n";
        let (code, stdout, stderr) = run(
            medlink()
                .args(["embed", "--max-length", "64", "--model"])
                .arg(&e.dir),
            input.as_bytes(),
        );
        assert_eq!(code, 0, "{stderr}");
        // No 1_Pooling/config.json: a plain transformers checkpoint pools `<s>`.
        let got: Vec<f32> = stdout
            .lines()
            .flat_map(|l| serde_json::from_str::<Vec<f32>>(l).unwrap())
            .collect();
        let d = max_abs_difference(&got, &e.floats("cls"));
        assert!(d < TOLERANCE, "{name}: embed differs by {d}");

        let index = tmp.path().join(name);
        let (code, _, stderr) = run(
            medlink()
                .args(["index", "build", "--ontology", &sample, "--model"])
                .arg(&e.dir)
                .arg("--out")
                .arg(&index),
            b"",
        );
        assert_eq!(code, 0, "{stderr}");

        let text = e.texts()[1];
        let (code, stdout, stderr) = run(
            medlink()
                .args([
                    "annotate",
                    "--ner",
                    "tagger",
                    "--no-abbreviations",
                    "--index",
                ])
                .arg(&index)
                .arg("--tagger")
                .arg(&e.dir),
            text.as_bytes(),
        );
        assert_eq!(code, 0, "{stderr}");
        let answer: Value = serde_json::from_str(stdout.trim()).unwrap();
        let spans = |list: &Value, group: &str| -> Vec<(u64, u64, String)> {
            list.as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    let at = |k: &str| m[k].as_u64().unwrap();
                    (at("start"), at("end"), m[group].as_str().unwrap().into())
                })
                .collect()
        };
        let want = spans(&e.json["entities"]["first"][1], "entity_group");
        assert!(
            !want.is_empty(),
            "{name}: the fixture tags nothing in {text:?}"
        );
        assert_eq!(spans(&answer["mentions"], "type"), want, "{name}");
    }
}
