//! The tagger: parity with transformers on a tiny random `BertForTokenClassification`
//! (`benches/python/make_tagger_fixture.py`), IOB2 encoding and decoding, and the tagger
//! trainer (gradients, losses, learning a toy task, exact resumption, label mismatch).

use std::path::{Path, PathBuf};

use medlink::ner::aggregate::Strategy;
use medlink::ner::labels::{
    align_labels, decode_iob2, resolve_overlaps, CharSpan, LabelSet, TokenInfo, IGNORE,
};
use medlink::ner::tagger::{Tagger, TaggerOptions};
use medlink::ner::MentionDetector;
use serde_json::Value;

use crate::common::fixture;

fn tiny() -> PathBuf {
    fixture("tagger-tiny")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(tiny().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn tiny_tagger(threads: usize, batch_size: usize) -> Tagger {
    let e = expected();
    Tagger::load(
        &tiny(),
        &TaggerOptions {
            stride: e["stride"].as_u64().unwrap() as usize,
            threads,
            batch_size,
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn tiny_tagger_logits_equal_transformers() {
    let e = expected();
    let tagger = tiny_tagger(2, 2);
    assert_eq!(
        tagger.max_length(),
        e["max_length"].as_u64().unwrap() as usize
    );
    let cases = e["texts"].as_array().unwrap();
    let texts: Vec<&str> = cases.iter().map(|c| c["text"].as_str().unwrap()).collect();
    let got = tagger.logits_batch(&texts).unwrap();
    let mut max_diff = 0f32;
    for (case, windows) in cases.iter().zip(&got) {
        let want = case["windows"].as_array().unwrap();
        assert_eq!(windows.len(), want.len(), "windows of {:?}", case["text"]);
        for ((encoding, logits), w) in windows.iter().zip(want) {
            let ids: Vec<u32> = w["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(
                encoding.get_ids(),
                ids.as_slice(),
                "token ids of {:?}",
                case["text"]
            );
            for (row, want_row) in logits.iter().zip(w["logits"].as_array().unwrap()) {
                for (x, y) in row.iter().zip(want_row.as_array().unwrap()) {
                    max_diff = max_diff.max((x - y.as_f64().unwrap() as f32).abs());
                }
            }
        }
    }
    assert!(max_diff < 1e-4, "max abs logit difference {max_diff}");
}

#[test]
fn tiny_tagger_entities_equal_transformers_pipeline_for_every_strategy() {
    let e = expected();
    // Batch size and threads must not change a result.
    for tagger in [tiny_tagger(1, 16), tiny_tagger(2, 1)] {
        let mut compared = 0;
        for case in e["texts"].as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            for (strategy, want) in case["entities"].as_object().unwrap() {
                let s: Strategy = strategy.parse().unwrap();
                let got = tagger.tag(text, s).unwrap();
                let want = want.as_array().unwrap();
                let show = |g: &[medlink::ner::aggregate::Entity]| {
                    g.iter()
                        .map(|x| format!("{}:{}-{} {:?}", x.entity_group, x.start, x.end, x.word))
                        .collect::<Vec<_>>()
                };
                assert_eq!(
                    got.len(),
                    want.len(),
                    "{strategy} on {text:?}: got {:?}\nwant {want:?}",
                    show(&got)
                );
                for (g, w) in got.iter().zip(want) {
                    let context = format!("{strategy} on {text:?}: {g:?} vs {w}");
                    assert_eq!(
                        g.entity_group,
                        w["entity_group"].as_str().unwrap(),
                        "{context}"
                    );
                    assert_eq!(g.start, w["start"].as_u64().unwrap() as usize, "{context}");
                    assert_eq!(g.end, w["end"].as_u64().unwrap() as usize, "{context}");
                    assert_eq!(g.word, w["word"].as_str().unwrap(), "{context}");
                    assert!(
                        (g.score - w["score"].as_f64().unwrap() as f32).abs() < 1e-4,
                        "{context}"
                    );
                    compared += 1;
                }
            }
        }
        assert!(compared > 100, "only {compared} entities compared");
    }
}

#[test]
fn tagger_mentions_carry_character_offsets_and_their_text() {
    let tagger = tiny_tagger(1, 4);
    let texts = [
        "Müller's naïve café patient: señora Ødegård had α-thalassemia.",
        "",
        "  ",
    ];
    let mentions = tagger.detect_batch(&texts).unwrap();
    assert_eq!(mentions.len(), 3);
    assert!(!mentions[0].is_empty());
    assert!(mentions[1].is_empty() && mentions[2].is_empty());
    for m in &mentions[0] {
        assert_eq!(m.text, medlink::ner::char_slice(texts[0], m.start, m.end));
        assert!(
            m.entity_type == "Disease" || m.entity_type == "Chemical",
            "{m:?}"
        );
        assert!(m.end <= texts[0].chars().count());
    }
}

#[test]
fn tagger_refuses_a_directory_without_a_head_or_a_stride_as_long_as_the_window() {
    let err = Tagger::load(&crate::common::default_model(), &TaggerOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("id2label"), "{err}");
    let err = Tagger::load(
        &tiny(),
        &TaggerOptions {
            stride: 22,
            ..Default::default()
        },
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("stride"), "{err}");
}

// ---- IOB2 -------------------------------------------------------------------------------

fn span(start: usize, end: usize, t: &str) -> CharSpan {
    CharSpan {
        start,
        end,
        entity_type: t.into(),
    }
}

#[test]
fn iob2_label_set_is_sorted_and_round_trips_through_config() {
    let labels = LabelSet::iob2(["Disease", "Chemical", "Disease"]);
    assert_eq!(
        labels.labels(),
        ["O", "B-Chemical", "I-Chemical", "B-Disease", "I-Disease"]
    );
    let (id2label, _) = labels.to_config();
    let config = serde_json::json!({ "id2label": id2label });
    let back = LabelSet::from_config(&config, Path::new("config.json"))
        .unwrap()
        .unwrap();
    assert_eq!(back, labels);
    let bad = serde_json::json!({ "id2label": {"0": "O", "2": "B-X"} });
    let err = LabelSet::from_config(&bad, Path::new("c.json"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("c.json") && err.contains("id2label"), "{err}");
}

#[test]
fn nested_and_overlapping_spans_keep_the_longest() {
    macro_rules! t {
        ($spans:expr, $kept:expr, $dropped:expr) => {
            let (kept, dropped) = resolve_overlaps(&$spans);
            let kept: Vec<(usize, usize)> = kept.iter().map(|s| (s.start, s.end)).collect();
            assert_eq!(kept, $kept);
            assert_eq!(dropped, $dropped);
        };
    }
    t!([span(0, 5, "A"), span(6, 9, "A")], vec![(0, 5), (6, 9)], 0);
    // "breast cancer" (0..13) contains "cancer" (7..13): the outer one stays.
    t!([span(7, 13, "D"), span(0, 13, "D")], vec![(0, 13)], 1);
    // Crossing spans: the longer wins; equal lengths: the earlier.
    t!([span(0, 4, "A"), span(2, 8, "B")], vec![(2, 8)], 1);
    t!([span(2, 6, "A"), span(0, 4, "B")], vec![(0, 4)], 1);
    t!([span(3, 3, "A")], Vec::<(usize, usize)>::new(), 1);
}

#[test]
fn first_sub_token_labelling() {
    let labels = LabelSet::iob2(["D"]);
    let (o, b, i) = (0, 1, 2);
    let tok = |word: Option<u32>, start, end| TokenInfo { word, start, end };
    // "[CLS] head ##ache and breast cancer [SEP]" over "headache and breast cancer"
    let tokens = [
        tok(None, 0, 0),
        tok(Some(0), 0, 4),
        tok(Some(0), 4, 8),
        tok(Some(1), 9, 12),
        tok(Some(2), 13, 19),
        tok(Some(3), 20, 26),
        tok(None, 0, 0),
    ];
    macro_rules! t {
        ($spans:expr, $want:expr) => {
            assert_eq!(align_labels(&tokens, &$spans, &labels).unwrap(), $want);
        };
    }
    let x = IGNORE;
    t!([], vec![x, o, x, o, o, o, x]);
    t!([span(0, 8, "D")], vec![x, b, x, o, o, o, x]);
    t!([span(13, 26, "D")], vec![x, o, x, o, b, i, x]);
    // A span starting inside a word labels the whole word; one covering a word's second half too.
    t!([span(4, 8, "D")], vec![x, b, x, o, o, o, x]);
    // A window that starts inside a span continues it with I-.
    t!([span(0, 26, "D")], vec![x, b, x, i, i, i, x]);
    let unknown = align_labels(&tokens, &[span(0, 4, "Chemical")], &labels)
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("B-Chemical"), "{unknown}");
}

#[test]
fn iob2_decoding_follows_seqeval() {
    macro_rules! t {
        ($tags:expr, $want:expr) => {
            let got: Vec<(usize, usize, String)> = decode_iob2(&$tags);
            let want: Vec<(usize, usize, String)> = $want
                .iter()
                .map(|&(s, e, t): &(usize, usize, &str)| (s, e, t.to_string()))
                .collect();
            assert_eq!(got, want, "{:?}", $tags);
        };
    }
    t!(["O", "B-D", "I-D", "O"], [(1, 3, "D")]);
    t!(["B-D", "B-D"], [(0, 1, "D"), (1, 2, "D")]);
    t!(["I-D", "I-D", "B-C"], [(0, 2, "D"), (2, 3, "C")]);
    t!(["B-D", "I-C"], [(0, 1, "D"), (1, 2, "C")]);
    t!(["O", "O"], Vec::<(usize, usize, &str)>::new());
}

// ---- the trainer ------------------------------------------------------------------------

use medlink::eval::{Corpus, Document, GoldMention};
use medlink::rng::SplitMix64;
use medlink::train::tagger::{
    evaluate_tagger, token_loss, TaggerStart, TaggerTrainOptions, TaggerTrainer, TokenLoss,
    TrainableTagger, WindowSet,
};
use medlink::train::StopRule;

/// Seeded toy documents: diseases and chemicals in a few sentence templates, over words the
/// tiny fixture's vocabulary knows.
pub(crate) fn toy_corpus(docs: usize, seed: u64) -> Corpus {
    let diseases = [
        "fever",
        "headache",
        "hypotension",
        "lung cancer",
        "breast cancer",
        "seizures",
        "hepatotoxicity",
    ];
    let chemicals = [
        "ibuprofen",
        "cisplatin",
        "aspirin",
        "naloxone",
        "paclitaxel",
        "acetaminophen",
    ];
    let templates = [
        "the patient had {D} after {C} .",
        "{C} induced {D} in rats .",
        "{D} and {D} were treated with {C} .",
        "der patient hatte {D} nach {C} .",
    ];
    let mut rng = SplitMix64::new(seed);
    let documents = (0..docs)
        .map(|d| {
            let mut text = String::new();
            let mut mentions = Vec::new();
            for _ in 0..2 {
                let template = templates[rng.below(templates.len())];
                for (k, piece) in template.split(' ').enumerate() {
                    if k > 0 || !text.is_empty() {
                        text.push(' ');
                    }
                    let (word, t) = match piece {
                        "{D}" => (diseases[rng.below(diseases.len())], Some("Disease")),
                        "{C}" => (chemicals[rng.below(chemicals.len())], Some("Chemical")),
                        w => (w, None),
                    };
                    let start = text.chars().count();
                    text.push_str(word);
                    if let Some(t) = t {
                        mentions.push(GoldMention {
                            start,
                            end: start + word.chars().count(),
                            text: word.into(),
                            entity_type: t.into(),
                            ids: vec![],
                        });
                    }
                }
            }
            Document {
                id: format!("d{d}"),
                text,
                mentions,
            }
        })
        .collect();
    Corpus {
        documents,
        span_mismatches: vec![],
    }
}

pub(crate) fn toy_options(steps: usize) -> TaggerTrainOptions {
    TaggerTrainOptions {
        batch_size: 8,
        learning_rate: 3e-3,
        warmup_steps: 5,
        steps,
        seed: 7,
        max_length: 16,
        stride: 4,
        checkpoint_every: 0,
        eval_every: 0,
        weight_decay: 0.01,
        ..Default::default()
    }
}

#[test]
fn tagger_loss_values_match_hand_computed_ones() {
    use candle_core::{Device, Tensor};
    let ln2 = std::f32::consts::LN_2;
    // Row 1: logits (0, 0), target 0: p = 1/2. Row 2: logits (ln 3, 0), target 1: p = 1/4.
    let logits = Tensor::new(&[[0f32, 0.0], [3f32.ln(), 0.0]], &Device::Cpu).unwrap();
    let value = |loss, coefficients: &[f32], gamma| {
        token_loss(&logits, &[0, 1], coefficients, loss, gamma)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    let close = |a: f32, b: f32| assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    // Mean cross-entropy: (ln 2 + ln 4) / 2.
    close(value(TokenLoss::Ce, &[0.5, 0.5], 0.0), 1.5 * ln2);
    // Class weights (1, 3), normalised by their sum 4: (ln 2 + 3 ln 4) / 4.
    close(
        value(TokenLoss::WeightedCe, &[0.25, 0.75], 0.0),
        7.0 * ln2 / 4.0,
    );
    // Focal, gamma 2: ((1/2)^2 ln 2 + (3/4)^2 ln 4) / 2; gamma 0 is cross-entropy.
    close(
        value(TokenLoss::Focal, &[0.5, 0.5], 2.0),
        (0.25 + 1.125) * ln2 / 2.0,
    );
    close(value(TokenLoss::Focal, &[0.5, 0.5], 0.0), 1.5 * ln2);

    let set = WindowSet {
        label_counts: vec![6, 2, 0],
        ..Default::default()
    };
    assert_eq!(set.class_weights(), vec![8.0 / 18.0, 8.0 / 6.0, 1.0]);
}

#[test]
fn tagger_gradients_reach_every_weight_including_a_new_head() {
    use medlink::model::Dropout;
    use medlink::train::optim::{AdamW, AdamWConfig};
    // all-MiniLM-L6-v2 has no head: one is created.
    let labels = LabelSet::iob2(["Disease", "Chemical"]);
    let options = TaggerOptions {
        max_length: Some(32),
        stride: 8,
        ..Default::default()
    };
    let model =
        TrainableTagger::load(&crate::common::default_model(), &labels, &options, 1).unwrap();
    let corpus = toy_corpus(4, 1);
    let set = WindowSet::new(&corpus, &model.tagger).unwrap();
    let windows: Vec<_> = set.windows.iter().collect();
    let vars = model.vars();
    assert_eq!(
        vars.len(),
        103,
        "101 encoder weights + classifier weight and bias"
    );
    let optimizer = AdamW::new(vars, AdamWConfig::default());
    for loss in [TokenLoss::Ce, TokenLoss::WeightedCe, TokenLoss::Focal] {
        let mut dropout = Dropout::new(model.config(), SplitMix64::new(3));
        let value = model
            .group_loss(&windows, &mut dropout, &|_| 0.01, loss, 2.0)
            .unwrap();
        let grads = optimizer.collect(&value.backward().unwrap());
        for (name, g) in optimizer.named(&grads) {
            let g = g.unwrap_or_else(|| panic!("{loss:?}: no gradient for {name}"));
            let norm = g
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(
                norm > 0.0 && norm.is_finite(),
                "{loss:?}: {name}: gradient norm {norm}"
            );
        }
    }
}

#[test]
fn tiny_tagger_learns_a_toy_tagging_task() {
    let dir = tempfile::tempdir().unwrap();
    let train = toy_corpus(48, 1);
    let dev = toy_corpus(12, 2);
    let trainer = TaggerTrainer {
        out: dir.path(),
        threads: 2,
        options: TaggerTrainOptions {
            eval_every: 40,
            ..toy_options(80)
        },
        train: &train,
        dev: Some(&dev),
    };
    let summary = trainer
        .run(
            TaggerStart::Base(&tiny()),
            &StopRule::default(),
            &mut medlink::train::Silent,
        )
        .unwrap();
    let history = &summary.state.history;
    let first: f32 = history[..5].iter().map(|r| r.loss).sum::<f32>() / 5.0;
    let last: f32 = history[history.len() - 5..]
        .iter()
        .map(|r| r.loss)
        .sum::<f32>()
        / 5.0;
    assert!(last < first * 0.3, "loss {first} -> {last}");
    let best = summary.state.best.as_ref().unwrap();
    assert!(best.f1 > 0.9, "dev strict F1 {}", best.f1);
    // best/ is a tagger directory that reproduces the recorded F1.
    let tagger = Tagger::load(
        &dir.path().join("best"),
        &TaggerOptions {
            max_length: Some(16),
            stride: 4,
            ..Default::default()
        },
    )
    .unwrap();
    let report = evaluate_tagger(&tagger, &dev).unwrap();
    assert!((report.strict.overall.f1 - best.f1).abs() < 1e-9);
    assert!(dir.path().join("last/optimizer.safetensors").is_file());
}

#[test]
fn killed_and_resumed_tagger_run_equals_the_uninterrupted_one() {
    let train = toy_corpus(24, 3);
    let run = |dir: &Path, stops: &[Option<usize>]| {
        for (i, &stop) in stops.iter().enumerate() {
            let trainer = TaggerTrainer {
                out: dir,
                threads: 2,
                options: TaggerTrainOptions {
                    checkpoint_every: 2,
                    ..toy_options(6)
                },
                train: &train,
                dev: None,
            };
            let start = if i == 0 {
                TaggerStart::Base(&tiny())
            } else {
                TaggerStart::Resume
            };
            trainer
                .run(
                    start,
                    &StopRule {
                        run_steps: stop,
                        max_seconds: None,
                    },
                    &mut medlink::train::Silent,
                )
                .unwrap();
        }
        let state: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("last/trainer_state.json")).unwrap(),
        )
        .unwrap();
        let losses: Vec<f64> = state["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["loss"].as_f64().unwrap())
            .collect();
        (
            losses,
            std::fs::read(dir.join("last/model.safetensors")).unwrap(),
        )
    };
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (losses_a, weights_a) = run(a.path(), &[None]);
    let (losses_b, weights_b) = run(b.path(), &[Some(2), Some(3), None]);
    assert_eq!(losses_a.len(), 6);
    assert_eq!(losses_a, losses_b);
    assert!(weights_a == weights_b, "weights differ after resuming");
}

#[test]
fn tagger_trainer_refuses_a_base_whose_labels_differ() {
    let mut corpus = toy_corpus(4, 1);
    corpus.documents[0].mentions[0].entity_type = "Gene".into();
    let dir = tempfile::tempdir().unwrap();
    let trainer = TaggerTrainer {
        out: dir.path(),
        threads: 1,
        options: toy_options(2),
        train: &corpus,
        dev: None,
    };
    let err = trainer
        .run(
            TaggerStart::Base(&tiny()),
            &StopRule::default(),
            &mut medlink::train::Silent,
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("config.json") && err.contains("B-Gene") && err.contains("B-Disease"),
        "{err}"
    );
}

#[test]
fn tagger_trainer_reports_a_span_outside_its_document() {
    let mut corpus = toy_corpus(2, 1);
    corpus.documents[1].mentions[0].end = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let trainer = TaggerTrainer {
        out: dir.path(),
        threads: 1,
        options: toy_options(2),
        train: &corpus,
        dev: None,
    };
    let err = trainer
        .run(
            TaggerStart::Base(&tiny()),
            &StopRule::default(),
            &mut medlink::train::Silent,
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("document d1") && err.contains("10000"),
        "{err}"
    );
}

/// The toy corpus as a PubTator file (the first sentence as title, the rest as abstract).
fn write_pubtator(corpus: &Corpus, path: &Path) {
    let mut out = String::new();
    for doc in &corpus.documents {
        let cut = doc.text.find(" . ").map_or(doc.text.len(), |i| i + 2);
        let (title, abstract_) = doc.text.split_at(cut);
        let abstract_ = abstract_.strip_prefix(' ').unwrap_or(abstract_);
        let id = &doc.id[1..];
        out.push_str(&format!("{id}|t|{title}\n{id}|a|{abstract_}\n"));
        for m in &doc.mentions {
            out.push_str(&format!(
                "{id}\t{}\t{}\t{}\t{}\t-1\n",
                m.start, m.end, m.text, m.entity_type
            ));
        }
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
}

#[test]
fn train_tagger_command_trains_and_refuses_to_overwrite_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let train = dir.path().join("train.txt");
    write_pubtator(&toy_corpus(8, 5), &train);
    let spec = format!("pubtator:{}", train.display());
    let out = dir.path().join("run");
    let command = || {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_medlink"));
        c.args(["train", "tagger", "--base"])
            .arg(tiny())
            .args([
                "--train-corpus",
                &spec,
                "--dev-corpus",
                &spec,
                "--steps",
                "3",
                "--warmup-steps",
                "1",
            ])
            .args([
                "--max-length",
                "16",
                "--stride",
                "4",
                "--batch-size",
                "4",
                "--threads",
                "1",
                "--out",
            ])
            .arg(&out);
        c
    };
    let first = command().output().unwrap();
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{stderr}");
    assert!(stderr.contains("best dev strict F1"), "{stderr}");
    assert!(
        out.join("best/config.json").is_file() && out.join("last/trainer_state.json").is_file()
    );
    // The checkpoint tags with the window it was trained on, here and in transformers.
    let tokenizer_config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("best/tokenizer_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(tokenizer_config["model_max_length"], 16);
    let options = medlink::ner::tagger::TaggerOptions {
        stride: 4,
        ..Default::default()
    };
    let tagger = Tagger::load(&out.join("best"), &options).unwrap();
    assert_eq!(tagger.max_length(), 16);
    let again = command().output().unwrap();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        !again.status.success() && stderr.contains("--resume"),
        "{stderr}"
    );
}
