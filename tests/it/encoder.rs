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
