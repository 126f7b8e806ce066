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
