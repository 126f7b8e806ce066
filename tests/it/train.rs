//! The contrastive trainer: gradients reach the weights, the loss matches hand-computed values,
//! a tiny model learns toy synonyms, and a killed-and-resumed run repeats the uninterrupted one.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use medlink::encoder::{Encoder, EncoderOptions, TransformerEncoder};
use medlink::model::{Config, Dropout, Transformer};
use medlink::ontology::{load_dictionary, Dictionary, LoadOptions, OntologySpec};
use medlink::rng::SplitMix64;
use medlink::train::loss::{mine, MultiSimilarity};
use medlink::train::model::TrainableEncoder;
use medlink::train::neighbours::{
    compose_batch, NeighbourTable, PairsByLabel, NEIGHBOURS, NEIGHBOURS_FILE,
};
use medlink::train::optim::{AdamW, AdamWConfig};
use medlink::train::pairs::PairSet;
use medlink::train::{Silent, Start, StopRule, TrainOptions, Trainer};

use crate::common::default_model;

#[test]
fn gradients_reach_every_encoder_weight() {
    let encoder = TrainableEncoder::load(&default_model(), 25).unwrap();
    // Labels that pair each string with its less similar neighbour, so that mining keeps
    // pairs and the loss is not zero (the base model already separates true synonyms here).
    let texts = [
        "breast cancer",
        "carcinoma of the breast",
        "lung cancer",
        "carcinoma of the lung",
    ];
    let tokens = encoder.tokenize(&texts.map(String::from)).unwrap();
    let refs: Vec<&[u32]> = tokens.iter().map(Vec::as_slice).collect();
    let forward = encoder
        .forward_groups(&refs, 2, |g| {
            Dropout::new(encoder.config(), SplitMix64::new(g as u64))
        })
        .unwrap();
    let embeddings = Var::from_tensor(&forward.embeddings().unwrap()).unwrap();
    let loss = MultiSimilarity::default()
        .loss(embeddings.as_tensor(), &[0, 1, 0, 1])
        .unwrap();
    assert!(loss.positive_pairs > 0 && loss.negative_pairs > 0);
    assert!(loss.loss.to_scalar::<f32>().unwrap() > 0.0);
    let upstream = loss
        .loss
        .backward()
        .unwrap()
        .remove(embeddings.as_tensor())
        .unwrap();
    // What the trainer sums: the weight gradients of each group's pass.
    let vars = encoder.vars();
    let optimizer = AdamW::new(vars.clone(), AdamWConfig::default());
    let parts = forward
        .backward(&upstream, 2, |store| optimizer.collect(store))
        .unwrap();
    assert_eq!(parts.len(), 1, "4 strings make one group");
    // all-MiniLM-L6-v2: 3 embedding tables + 1 LayerNorm (2) + 6 layers x 16 tensors.
    assert_eq!(vars.len(), 101);
    let named: Vec<_> = optimizer.named(&parts[0]).collect();
    assert_eq!(named.len(), 101);
    for (name, g) in named {
        let g = g.unwrap_or_else(|| panic!("no gradient for {name}"));
        let norm = g
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(
            norm > 0.0 && norm.is_finite(),
            "{name}: gradient norm {norm}"
        );
    }
}

/// Four unit vectors in the plane, labels [0, 0, 1, 1]:
/// e0 = (1, 0), e1 = (0.6, 0.8), e2 = (0.8, 0.6), e3 = (0, 1).
/// Similarities: s01 0.6, s02 0.8, s03 0, s12 0.96, s13 0.8, s23 0.6.
/// Mining (margin 0.2): every positive is kept (0.6 - 0.2 is below each anchor's hardest
/// negative); negatives are kept when s + 0.2 > 0.6, which drops only (0,3) and (3,0).
/// Per anchor (alpha 1, beta 60, base 0.5):
///   positive term ln(1 + e^{-(0.6 - 0.5)}) = ln(1 + e^{-0.1}) = 0.644397 for all four;
///   negatives: anchor 0 {0.8}: ln(1 + e^{18}) / 60 = 0.300000;
///   anchor 1 {0.8, 0.96}: ln(1 + e^{18} + e^{27.6}) / 60 = 0.460001; anchor 2 the same;
///   anchor 3 {0.8}: 0.300000.
/// Mean = 0.644397 + (0.3 + 0.460001 + 0.460001 + 0.3) / 4 = 1.024398.
#[test]
fn multi_similarity_loss_matches_hand_computed_values() {
    let e = Tensor::new(
        &[[1.0f32, 0.0], [0.6, 0.8], [0.8, 0.6], [0.0, 1.0]],
        &Device::Cpu,
    )
    .unwrap();
    let out = MultiSimilarity::default().loss(&e, &[0, 0, 1, 1]).unwrap();
    assert_eq!(out.positive_pairs, 4);
    assert_eq!(out.negative_pairs, 6);
    let loss = out.loss.to_scalar::<f32>().unwrap();
    assert!((loss - 1.024398).abs() < 1e-4, "loss {loss}");

    let sim = e.matmul(&e.t().unwrap()).unwrap();
    let mined = mine(
        &sim.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        &[0, 0, 1, 1],
        0.2,
    );
    assert_eq!(mined.negative[3], 0.0, "(0,3) is an easy negative");
    assert_eq!(mined.negative[2], 1.0, "(0,2) is a hard negative");
}

/// A batch where every positive is already far closer than every negative mines nothing and
/// costs nothing.
#[test]
fn easy_batch_mines_no_pairs_and_has_zero_loss() {
    let e = Tensor::new(&[[1.0f32, 0.0], [1.0, 0.0], [0.0, 1.0]], &Device::Cpu).unwrap();
    let out = MultiSimilarity::default().loss(&e, &[0, 0, 1]).unwrap();
    assert_eq!((out.positive_pairs, out.negative_pairs), (0, 0));
    assert_eq!(out.loss.to_scalar::<f32>().unwrap(), 0.0);
}

/// A randomly initialised 2-layer BERT (hidden 32) with the default model's tokenizer.
fn tiny_model(dir: &Path) -> PathBuf {
    let base = default_model();
    std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
    for file in ["tokenizer.json", "1_Pooling/config.json", "modules.json"] {
        std::fs::copy(base.join(file), dir.join(file)).unwrap();
    }
    let config = serde_json::json!({
        "vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 2,
        "num_attention_heads": 2, "intermediate_size": 64, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": 64, "type_vocab_size": 2, "layer_norm_eps": 1e-12
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let varmap = VarMap::new();
    let parsed: Config = serde_json::from_value(config).unwrap();
    Transformer::load(
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
        &parsed,
    )
    .unwrap();
    reseed_varmap(&varmap, 7);
    varmap.save(dir.join("model.safetensors")).unwrap();
    dir.to_path_buf()
}

/// candle initialises a VarMap from its CPU generator, which cannot be seeded: redraw every
/// random weight from a seeded generator (constant tensors, LayerNorm's ones and zeros, stay),
/// so the fixture and every loss curve from it repeat. The spread is the one candle's init
/// draws from — N(0, 0.02) for embedding tables, Kaiming N(0, 2 / fan_in) for linear weights —
/// not one measured on candle's draw, which differs run to run (and made the curve differ).
pub(crate) fn reseed_varmap(varmap: &VarMap, seed: u64) {
    let data = varmap.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for (i, name) in names.into_iter().enumerate() {
        let var = &data[name];
        let values: Vec<f32> = var.flatten_all().unwrap().to_vec1().unwrap();
        if values.iter().all(|&v| v == values[0]) {
            continue;
        }
        let spread = match var.dims() {
            _ if name.contains("embeddings") => 0.02,
            [_, fan_in] => (2.0 / *fan_in as f32).sqrt(),
            other => panic!("{name}: a random tensor of shape {other:?} has no known init"),
        };
        let mut rng = SplitMix64::derive(seed, 0, i as u64);
        let redrawn: Vec<f32> = (0..values.len())
            .map(|_| {
                // Box–Muller: one standard normal from two uniforms.
                let (u1, u2) = (rng.next_f32().max(1e-7), rng.next_f32());
                spread * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
            })
            .collect();
        var.set(&Tensor::from_vec(redrawn, var.shape(), &Device::Cpu).unwrap())
            .unwrap();
    }
}

pub(crate) fn toy_dictionary(dir: &Path) -> Dictionary {
    let rows = [
        "T:1\theart attack\tmyocardial infarction|MI|cardiac infarction",
        "T:2\tbreast cancer\tbreast carcinoma|mammary cancer|cancer of breast",
        "T:3\thigh blood pressure\thypertension|HTN|elevated blood pressure",
        "T:4\tkidney failure\trenal failure|renal insufficiency|kidney insufficiency",
        "T:5\tfever\tpyrexia|elevated temperature|febrile",
        "T:6\theadache\tcephalalgia|head pain|cephalgia",
        "T:7\tdiabetes mellitus\tDM|diabetes|sugar diabetes",
        "T:8\tstroke\tcerebrovascular accident|CVA|brain attack",
    ];
    let path = dir.join("toy.tsv");
    std::fs::write(&path, format!("id\tname\tsynonyms\n{}\n", rows.join("\n"))).unwrap();
    let spec: OntologySpec = format!("tsv:{}", path.display()).parse().unwrap();
    load_dictionary(&[spec], &LoadOptions::default()).unwrap()
}

pub(crate) fn tiny_options(steps: usize) -> TrainOptions {
    TrainOptions {
        batch_pairs: 8,
        learning_rate: 1e-3,
        warmup_steps: 2,
        steps,
        checkpoint_every: 0,
        seed: 11,
        ..TrainOptions::default()
    }
}

#[test]
fn tiny_model_learns_toy_synonyms() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tiny_model(&tmp.path().join("base"));
    let mut pairs = PairSet::default();
    pairs.add_synonym_pairs(&toy_dictionary(tmp.path()), 50, 1);
    assert_eq!(
        pairs.synonym_pairs,
        8 * 6,
        "4 names per concept -> 6 pairs each"
    );
    let out = tmp.path().join("run");
    let trainer = Trainer {
        out: &out,
        threads: 2,
        options: tiny_options(120),
        pairs: &pairs,
        dev: None,
    };
    let summary = trainer
        .run(Start::Base(&base), &StopRule::default(), &mut Silent)
        .unwrap();
    let losses: Vec<f32> = summary.state.history.iter().map(|r| r.loss).collect();
    assert_eq!(losses.len(), 120);
    let mean = |s: &[f32]| s.iter().sum::<f32>() / s.len() as f32;
    let (first, last) = (mean(&losses[..10]), mean(&losses[110..]));
    assert!(
        last < 0.7 * first,
        "loss did not fall: first 10 steps {first:.4}, last 10 {last:.4}"
    );

    // The checkpoint is a model directory the encoder (and so `index build`) loads.
    let encoder = TransformerEncoder::load(&summary.last, &EncoderOptions::default()).unwrap();
    let v = encoder.encode(&["heart attack", "MI"]).unwrap();
    assert_eq!(v[0].len(), 32);
    for file in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "1_Pooling/config.json",
        "optimizer.safetensors",
        "trainer_state.json",
    ] {
        assert!(summary.last.join(file).is_file(), "checkpoint lacks {file}");
    }
}

#[test]
fn killed_and_resumed_run_repeats_the_uninterrupted_loss_curve() {
    resumed_run_repeats_uninterrupted(tiny_options(12));
}

/// With neighbour-aware batches the resumed run (stopped at step 5, between the refreshes at
/// 3 and 6) must compose its batches from the table saved in the checkpoint.
#[test]
fn hard_negative_run_resumes_with_the_saved_neighbour_table() {
    resumed_run_repeats_uninterrupted(TrainOptions {
        hard_negatives_every: 3,
        ..tiny_options(12)
    });
}

fn resumed_run_repeats_uninterrupted(options: TrainOptions) {
    let tmp = tempfile::tempdir().unwrap();
    let base = tiny_model(&tmp.path().join("base"));
    let mut pairs = PairSet::default();
    pairs.add_synonym_pairs(&toy_dictionary(tmp.path()), 50, 1);
    let run = |out: &Path, start: Start, stop: StopRule, threads: usize| {
        Trainer {
            out,
            threads,
            options: options.clone(),
            pairs: &pairs,
            dev: None,
        }
        .run(start, &stop, &mut Silent)
        .unwrap()
    };
    // The uninterrupted run uses one thread, the interrupted one two: neither may matter.
    let whole = run(
        &tmp.path().join("whole"),
        Start::Base(&base),
        StopRule::default(),
        1,
    );

    let parts = tmp.path().join("parts");
    let first = run(
        &parts,
        Start::Base(&base),
        StopRule {
            run_steps: Some(5),
            ..StopRule::default()
        },
        2,
    );
    assert_eq!(first.state.step, 5);
    assert_eq!(
        first.last.join(NEIGHBOURS_FILE).is_file(),
        options.hard_negatives_every > 0,
        "the checkpoint holds a neighbour table exactly when batches use one"
    );
    // "Kill": nothing survives but the checkpoint on disk.
    drop(first);
    let resumed = run(&parts, Start::Resume, StopRule::default(), 2);
    assert_eq!(resumed.steps_this_run, 7);

    let curve = |s: &medlink::train::TrainSummary| -> Vec<(usize, f32)> {
        s.state.history.iter().map(|r| (r.step, r.loss)).collect()
    };
    let (a, b) = (curve(&whole), curve(&resumed));
    assert_eq!(a.len(), 12);
    assert_eq!(b.len(), 12);
    for ((sa, la), (sb, lb)) in a.iter().zip(&b) {
        assert_eq!(sa, sb);
        assert!(
            (la - lb).abs() < 1e-6,
            "step {sa}: {la} uninterrupted vs {lb} resumed"
        );
    }
    // And the final weights agree.
    let w = |dir: &Path| {
        candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap()
    };
    let (wa, wb) = (w(&whole.last), w(&resumed.last));
    for (name, t) in &wa {
        let d = (t - &wb[name]).unwrap().abs().unwrap().max_all().unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-6, "{name} differs");
    }
}

#[test]
fn neighbour_table_holds_other_labels_and_batches_pair_each_seed_with_one() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tiny_model(&tmp.path().join("base"));
    let dictionary = toy_dictionary(tmp.path());
    let mut pairs = PairSet::default();
    pairs.add_synonym_pairs(&dictionary, 50, 1);
    let encoder = TrainableEncoder::load(&base, 25).unwrap();
    let by_label = PairsByLabel::new(&pairs);
    let table = NeighbourTable::build(&encoder, &pairs, &by_label, 2).unwrap();
    // The same weights give the same table on any thread count.
    assert_eq!(
        table,
        NeighbourTable::build(&encoder, &pairs, &by_label, 1).unwrap()
    );
    let labels: Vec<u32> = (0..dictionary.concept_count() as u32).collect();
    for &label in &labels {
        let near = table.neighbours(label);
        assert_eq!(near.len(), NEIGHBOURS);
        // 8 labels: each has the 7 others, nearest first, and repeats the nearest to fill 8.
        let mut distinct = near[..7].to_vec();
        distinct.sort_unstable();
        let others: Vec<u32> = labels.iter().copied().filter(|&l| l != label).collect();
        assert_eq!(distinct, others, "label {label}: {near:?}");
        assert_eq!(near[7], near[0]);
    }
    assert!(table.neighbours(99).is_empty());

    let path = tmp.path().join(NEIGHBOURS_FILE);
    table.save(&path).unwrap();
    assert_eq!(NeighbourTable::load(&path).unwrap(), table);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 4]).unwrap();
    let err = NeighbourTable::load(&path).unwrap_err().to_string();
    assert!(err.contains(NEIGHBOURS_FILE), "{err}");

    let stream = vec![0usize, 7, 13, 40];
    let batch = compose_batch(
        &stream,
        8,
        &pairs,
        &by_label,
        &table,
        &mut SplitMix64::new(3),
    );
    assert_eq!(batch.len(), 8);
    assert_eq!(&batch[..4], &stream[..]);
    for (seed, partner) in stream.iter().zip(&batch[4..]) {
        let (a, b) = (pairs.pairs[*seed].label, pairs.pairs[*partner].label);
        assert!(
            table.neighbours(a).contains(&b),
            "pair {partner} (label {b}) is not a neighbour of label {a}"
        );
    }
}

#[test]
fn resume_refuses_other_options_or_data() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tiny_model(&tmp.path().join("base"));
    let dict = toy_dictionary(tmp.path());
    let mut pairs = PairSet::default();
    pairs.add_synonym_pairs(&dict, 50, 1);
    let out = tmp.path().join("run");
    Trainer {
        out: &out,
        threads: 1,
        options: tiny_options(4),
        pairs: &pairs,
        dev: None,
    }
    .run(
        Start::Base(&base),
        &StopRule {
            run_steps: Some(2),
            ..StopRule::default()
        },
        &mut Silent,
    )
    .unwrap();
    let other_options = Trainer {
        out: &out,
        threads: 1,
        options: TrainOptions {
            learning_rate: 5e-4,
            ..tiny_options(4)
        },
        pairs: &pairs,
        dev: None,
    }
    .run(Start::Resume, &StopRule::default(), &mut Silent);
    let err = other_options
        .expect_err("other options refused")
        .to_string();
    assert!(err.contains("other options"), "{err}");

    let mut fewer = PairSet::default();
    fewer.add_synonym_pairs(&dict, 3, 1);
    let other_data = Trainer {
        out: &out,
        threads: 1,
        options: tiny_options(4),
        pairs: &fewer,
        dev: None,
    }
    .run(Start::Resume, &StopRule::default(), &mut Silent);
    let err = other_data.expect_err("other pairs refused").to_string();
    assert!(err.contains("training pairs differ"), "{err}");
}

/// Records, at every step, which step `last/` holds: periodic checkpoints are visible to a
/// process that reads the run while it trains.
struct CheckpointWatcher {
    last: PathBuf,
    seen: Vec<(usize, Option<usize>)>,
}

impl medlink::train::TrainObserver for CheckpointWatcher {
    fn step(&mut self, report: &medlink::train::StepReport) {
        let saved = std::fs::read_to_string(self.last.join("trainer_state.json"))
            .ok()
            .map(|s| {
                serde_json::from_str::<serde_json::Value>(&s).unwrap()["step"]
                    .as_u64()
                    .unwrap() as usize
            });
        self.seen.push((report.step, saved));
    }
    fn message(&mut self, _: &str) {}
}

/// The dev evaluation runs every `eval_every` steps and at the end, `best/` holds the model of
/// the best acc@1 (with its `eval.json`), and `last/` is replaced every `checkpoint_every`
/// steps and at every evaluation.
#[test]
fn dev_evaluation_best_selection_and_periodic_checkpoints() {
    use medlink::eval::{Corpus, Document, GoldMention};
    let tmp = tempfile::tempdir().unwrap();
    let base = tiny_model(&tmp.path().join("base"));
    let dictionary = toy_dictionary(tmp.path());
    let mut pairs = PairSet::default();
    pairs.add_synonym_pairs(&dictionary, 50, 1);
    let text = "cardiac infarctions, renal insufficiencies, head pains, elevated temperatures";
    let mentions = [
        ("cardiac infarctions", "T:1"),
        ("renal insufficiencies", "T:4"),
        ("head pains", "T:6"),
        ("elevated temperatures", "T:5"),
    ]
    .iter()
    .map(|(m, id)| {
        let start = text.find(m).unwrap();
        GoldMention {
            start,
            end: start + m.len(),
            text: m.to_string(),
            entity_type: "Disease".into(),
            ids: vec![id.to_string()],
        }
    })
    .collect();
    let corpus = Corpus {
        documents: vec![Document {
            id: "d".into(),
            text: text.into(),
            mentions,
        }],
        span_mismatches: Vec::new(),
    };
    let dev = medlink::train::dev::DevSet::new(&corpus, &dictionary, &[]);
    let out = tmp.path().join("run");
    let options = TrainOptions {
        eval_every: 20,
        checkpoint_every: 15,
        ..tiny_options(50)
    };
    let trainer = Trainer {
        out: &out,
        threads: 1,
        options,
        pairs: &pairs,
        dev: Some(&dev),
    };
    let mut watcher = CheckpointWatcher {
        last: out.join("last"),
        seen: Vec::new(),
    };
    let summary = trainer
        .run(Start::Base(&base), &StopRule::default(), &mut watcher)
        .unwrap();

    let steps: Vec<usize> = summary.state.evaluations.iter().map(|e| e.step).collect();
    assert_eq!(
        steps,
        [0, 20, 40, 50],
        "the base model, every 20 steps and at the end"
    );
    assert!(summary.state.evaluations.iter().all(|e| e.mentions == 4));
    let best = summary.state.best.clone().expect("a dev run has a best");
    let first_max = summary
        .state
        .evaluations
        .iter()
        .fold(None::<&medlink::train::EvalRecord>, |b, e| match b {
            Some(b) if b.acc1 >= e.acc1 => Some(b),
            _ => Some(e),
        })
        .unwrap();
    assert_eq!(best.step, first_max.step, "the first of the best acc@1");
    let best_dir = summary.best.expect("best/ exists");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(best_dir.join("eval.json")).unwrap())
            .unwrap();
    assert_eq!(saved["step"], best.step);
    TransformerEncoder::load(&best_dir, &EncoderOptions::default()).expect("best/ is a model");

    // What last/ held when each step began: the base model's (written for its dev score),
    // then the latest multiple of 15 (checkpoints) or of 20 (evaluations).
    let expected = |step: usize| (0..step).rev().find(|s| s % 15 == 0 || s % 20 == 0);
    for &(step, saved) in &watcher.seen {
        assert_eq!(saved, expected(step), "at step {step}");
    }
    assert_eq!(watcher.seen.len(), 50);
}

/// Weights a base has but the trainer never touches (the pooler) are carried into every
/// checkpoint unchanged: without them transformers would re-initialise them at random.
#[test]
fn checkpoints_keep_the_base_pooler_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tiny_model(&tmp.path().join("base"));
    let weights = base.join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&weights, &Device::Cpu).unwrap();
    let pooler = Tensor::arange(0f32, 32.0 * 32.0, &Device::Cpu)
        .unwrap()
        .reshape((32, 32))
        .unwrap();
    tensors.insert("pooler.dense.weight".into(), pooler.clone());
    candle_core::safetensors::save(&tensors, &weights).unwrap();
    let mut pairs = PairSet::default();
    pairs.add_synonym_pairs(&toy_dictionary(tmp.path()), 50, 1);
    let out = tmp.path().join("run");
    let summary = Trainer {
        out: &out,
        threads: 1,
        options: tiny_options(2),
        pairs: &pairs,
        dev: None,
    }
    .run(Start::Base(&base), &StopRule::default(), &mut Silent)
    .unwrap();
    let saved =
        candle_core::safetensors::load(summary.last.join("model.safetensors"), &Device::Cpu)
            .unwrap();
    let kept: Vec<f32> = saved["pooler.dense.weight"]
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(
        kept,
        pooler.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
    // Trained weights did move.
    let before: Vec<f32> = tensors["embeddings.word_embeddings.weight"]
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let after: Vec<f32> = saved["embeddings.word_embeddings.weight"]
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_ne!(before, after);
}
