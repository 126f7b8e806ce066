//! Encoder tests on the real default model: parity with sentence-transformers, batch
//! independence, padding invariance, unit norm, and clear errors for bad model directories.

use medlink::encoder::{Encoder, EncoderOptions, Pooling, TransformerEncoder};

use crate::common::{default_model, encoder, fixture};

#[derive(serde::Deserialize)]
struct Reference {
    max_seq_length: usize,
    strings: Vec<String>,
    vectors: Vec<Vec<f32>>,
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

#[test]
fn matches_sentence_transformers_reference_vectors() {
    let text = std::fs::read_to_string(fixture("reference_vectors.json")).unwrap();
    let reference: Reference = serde_json::from_str(&text).unwrap();
    let encoder = encoder();
    assert_eq!(encoder.identity().max_length, reference.max_seq_length);
    assert_eq!(encoder.identity().pooling, Pooling::Mean);
    assert_eq!(encoder.dim(), 384);
    let strings: Vec<&str> = reference.strings.iter().map(String::as_str).collect();
    let vectors = encoder.encode(&strings).unwrap();
    for ((s, ours), theirs) in strings.iter().zip(&vectors).zip(&reference.vectors) {
        let c = cosine(ours, theirs);
        assert!(c > 0.9999, "{s:?}: cosine {c} with sentence-transformers");
    }
}

/// The int8 path (`--int8`) moves vectors a little and no more: each stays within 0.99 cosine
/// of sentence-transformers', at least one visibly differs from the f32 encoder's (so the
/// quantised layers really ran), every string's nearest other string is as near as f32's,
/// and a string encodes the same alone as in a batch.
#[test]
fn int8_encoder_stays_close_to_f32_and_ranks_alike() {
    let text = std::fs::read_to_string(fixture("reference_vectors.json")).unwrap();
    let reference: Reference = serde_json::from_str(&text).unwrap();
    let options = EncoderOptions {
        int8: true,
        ..Default::default()
    };
    let int8 = TransformerEncoder::load(&default_model(), &options).unwrap();
    assert!(int8.identity().int8 && !encoder().identity().int8);
    assert_eq!(
        int8.identity().weights_sha256,
        encoder().identity().weights_sha256
    );
    let strings: Vec<&str> = reference.strings.iter().map(String::as_str).collect();
    let quantised = int8.encode(&strings).unwrap();
    let full = encoder().encode(&strings).unwrap();
    let mut lowest = 1f32;
    for ((s, q), theirs) in strings.iter().zip(&quantised).zip(&reference.vectors) {
        let c = cosine(q, theirs);
        assert!(
            c > 0.99,
            "{s:?}: int8 cosine {c} with sentence-transformers"
        );
        lowest = lowest.min(c);
    }
    assert!(
        lowest < 0.9999,
        "int8 vectors equal f32's: the int8 path did not run"
    );
    let nearest = |vectors: &[Vec<f32>], i: usize| {
        (0..strings.len())
            .filter(|&j| j != i)
            .max_by(|&a, &b| {
                let score = |j: usize| cosine(&vectors[i], &full[j]);
                score(a).total_cmp(&score(b))
            })
            .unwrap()
    };
    for (i, s) in strings.iter().enumerate() {
        // Ties among near-equal neighbours may flip (the reference holds strings like "a"):
        // what int8 ranks first must score, in f32, within 0.02 of f32's own first.
        let (ours, best) = (nearest(&quantised, i), nearest(&full, i));
        let (got, want) = (cosine(&full[i], &full[ours]), cosine(&full[i], &full[best]));
        assert!(
            got > want - 0.02,
            "{s:?}: int8 ranks {:?} first ({got}), f32 {:?} ({want})",
            strings[ours],
            strings[best]
        );
        let alone = int8.encode(&[s]).unwrap().remove(0);
        let c = cosine(&alone, &quantised[i]);
        assert!(c > 0.99999, "{s:?}: int8 batch vs single cosine {c}");
    }
}

#[test]
fn batch_equals_single_and_padding_changes_nothing() {
    let encoder = encoder();
    let texts = [
        "MI",
        "heart attack",
        "autosomal recessive inheritance with incomplete penetrance",
        "big head",
    ];
    let batch = encoder.encode(&texts).unwrap();
    for (text, batched) in texts.iter().zip(&batch) {
        let single = encoder.encode(&[text]).unwrap().remove(0);
        // A short text next to a long one is padded; alone it is not.
        let c = cosine(batched, &single);
        assert!(c > 0.99999, "{text:?}: batch vs single cosine {c}");
        let norm: f32 = batched.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{text:?}: norm {norm}");
    }
    // Input order is preserved even though batches are length-sorted.
    let reversed: Vec<&str> = texts.iter().rev().copied().collect();
    let rev = encoder.encode(&reversed).unwrap();
    for (i, v) in rev.iter().enumerate() {
        assert!(cosine(v, &batch[texts.len() - 1 - i]) > 0.99999);
    }
    assert!(encoder.encode(&[]).unwrap().is_empty());
}

#[test]
fn small_batches_give_the_same_vectors() {
    let options = EncoderOptions {
        batch_size: 1,
        ..EncoderOptions::default()
    };
    let one_by_one = TransformerEncoder::load(&default_model(), &options).unwrap();
    let texts = ["seizure", "epileptic fit", "x"];
    let a = one_by_one.encode(&texts).unwrap();
    let b = encoder().encode(&texts).unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert!(cosine(x, y) > 0.99999);
    }
    assert_eq!(one_by_one.identity(), encoder().identity());
}

#[test]
fn bad_model_directories_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = TransformerEncoder::load(dir.path(), &EncoderOptions::default())
        .err()
        .unwrap();
    assert!(err.to_string().contains("config.json"), "{err}");
    for name in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(default_model().join(name), dir.path().join(name)).unwrap();
    }
    std::fs::write(dir.path().join("config.json"), "{ not json").unwrap();
    let err = TransformerEncoder::load(dir.path(), &EncoderOptions::default())
        .err()
        .unwrap();
    assert!(err.to_string().contains("config.json:1"), "{err}");
    let options = EncoderOptions {
        max_length: 0,
        ..EncoderOptions::default()
    };
    assert!(TransformerEncoder::load(&default_model(), &options).is_err());
}
