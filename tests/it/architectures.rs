//! Model architectures: which `model_type`s medlink runs, and the refusal of the others (and
//! of DeBERTa-v2 settings medlink does not implement).

use std::path::{Path, PathBuf};

use medlink::encoder::{EncoderOptions, TransformerEncoder};
use medlink::ner::labels::LabelSet;
use medlink::ner::tagger::{Tagger, TaggerOptions};
use medlink::train::model::TrainableEncoder;
use medlink::train::tagger::TrainableTagger;

use crate::cli::{medlink, run};
use crate::common::fixture;

/// A copy of the tiny BERT tagger fixture whose `config.json` says `model_type` (or has none).
fn model_dir_of_type(parent: &Path, model_type: Option<&str>) -> PathBuf {
    let dir = parent.join(model_type.unwrap_or("none"));
    std::fs::create_dir_all(&dir).unwrap();
    let source = fixture("tagger-tiny");
    for file in [
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        std::fs::copy(source.join(file), dir.join(file)).unwrap();
    }
    let text = std::fs::read_to_string(source.join("config.json")).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&text).unwrap();
    match model_type {
        Some(t) => config["model_type"] = t.into(),
        None => {
            config.as_object_mut().unwrap().remove("model_type");
        }
    }
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    dir
}

/// The refusal names the file, the type found and the supported types.
fn assert_refusal(err: &str, dir: &Path, model_type: &str) {
    let config = dir.join("config.json");
    assert!(err.contains(&config.display().to_string()), "{err}");
    assert!(
        err.contains(&format!("model_type `{model_type}` is not supported")),
        "{err}"
    );
    assert!(err.contains("medlink runs bert"), "{err}");
}

#[test]
fn unsupported_model_types_are_refused_by_every_loader() {
    let tmp = tempfile::tempdir().unwrap();
    // DeBERTa v1 (`deberta`) is not v2: its attention differs (no buckets, its own
    // projections). gpt2's config lacks fields BERT needs (no hidden_size): the refusal must
    // still be about the architecture, not a missing field.
    for model_type in ["deberta", "gpt2"] {
        let dir = model_dir_of_type(tmp.path(), Some(model_type));
        if model_type == "gpt2" {
            let path = dir.join("config.json");
            let mut config: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            config.as_object_mut().unwrap().remove("hidden_size");
            std::fs::write(&path, config.to_string()).unwrap();
        }
        let refusals = [
            TransformerEncoder::load(&dir, &EncoderOptions::default())
                .err()
                .map(|e| e.to_string()),
            Tagger::load(&dir, &TaggerOptions::default())
                .err()
                .map(|e| e.to_string()),
            TrainableEncoder::load(&dir, 25)
                .err()
                .map(|e| e.to_string()),
            TrainableTagger::load(
                &dir,
                &LabelSet::iob2(["Disease", "Chemical"]),
                &TaggerOptions::default(),
                1,
            )
            .err()
            .map(|e| e.to_string()),
        ];
        for err in refusals {
            let err = err.unwrap_or_else(|| panic!("a {model_type} checkpoint was loaded"));
            assert_refusal(&err, &dir, model_type);
        }
    }
}

#[test]
fn embed_and_index_build_refuse_an_unsupported_model_type_with_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir_of_type(tmp.path(), Some("deberta"));
    // No input: the model is refused before stdin is read, and writing to a process that
    // has exited would fail the test with a broken pipe.
    let (code, _, stderr) = run(medlink().arg("embed").arg("--model").arg(&dir), b"");
    assert_eq!(code, 2, "{stderr}");
    assert_refusal(&stderr, &dir, "deberta");
    let sample = format!(
        "tsv:{}/ontologies/samples/custom.tsv",
        env!("CARGO_MANIFEST_DIR")
    );
    let (code, _, stderr) = run(
        medlink()
            .args(["index", "build", "--ontology", &sample, "--model"])
            .arg(&dir)
            .arg("--out")
            .arg(tmp.path().join("index")),
        b"",
    );
    assert_eq!(code, 2, "{stderr}");
    assert_refusal(&stderr, &dir, "deberta");
    assert!(!tmp.path().join("index").exists());
}

#[test]
fn a_config_without_model_type_is_read_as_bert() {
    let tmp = tempfile::tempdir().unwrap();
    let without = model_dir_of_type(tmp.path(), None);
    let with = fixture("tagger-tiny");
    let texts = ["fever after ibuprofen", "Müller's café"];
    let encode = |dir: &Path| {
        use medlink::encoder::Encoder;
        TransformerEncoder::load(dir, &EncoderOptions::default())
            .unwrap()
            .encode(&texts)
            .unwrap()
    };
    assert_eq!(encode(&without), encode(&with));
}

#[test]
fn relative_position_bert_variants_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir_of_type(tmp.path(), Some("bert"));
    let path = dir.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["position_embedding_type"] = "relative_key".into();
    std::fs::write(&path, config.to_string()).unwrap();
    let err = TransformerEncoder::load(&dir, &EncoderOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("position_embedding_type `relative_key`"),
        "{err}"
    );
    assert!(err.contains(&path.display().to_string()), "{err}");
}

/// A copy of the tiny DeBERTa-v2 fixture with `edit` applied to its `config.json`.
fn deberta_with(parent: &Path, name: &str, edit: impl Fn(&mut serde_json::Value)) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let source = fixture("deberta-v2-tiny");
    for file in [
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        std::fs::copy(source.join(file), dir.join(file)).unwrap();
    }
    let text = std::fs::read_to_string(source.join("config.json")).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&text).unwrap();
    edit(&mut config);
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    dir
}

/// DeBERTa-v2 settings medlink does not implement are refused at load, naming the file and
/// the field, by the encoder and the tagger alike: never run as if they were absent.
#[test]
fn deberta_v2_settings_medlink_does_not_implement_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: [(&str, serde_json::Value, &str); 3] = [
        (
            "conv_kernel_size",
            3.into(),
            "conv_kernel_size 3: DeBERTa-v2's convolution layer is not implemented",
        ),
        (
            "pos_att_type",
            serde_json::json!(["c2p", "p2p"]),
            "pos_att_type `p2p` is not supported",
        ),
        (
            "norm_rel_ebd",
            "batch_norm".into(),
            "norm_rel_ebd `batch_norm` is not supported",
        ),
    ];
    for (field, value, message) in cases {
        let dir = deberta_with(tmp.path(), field, |c| c[field] = value.clone());
        let config = dir.join("config.json").display().to_string();
        let errors = [
            TransformerEncoder::load(&dir, &EncoderOptions::default())
                .err()
                .map(|e| e.to_string()),
            Tagger::load(&dir, &TaggerOptions::default())
                .err()
                .map(|e| e.to_string()),
        ];
        for err in errors {
            let err = err.unwrap_or_else(|| panic!("{field}: the checkpoint was loaded"));
            assert!(err.contains(message), "{field}: {err}");
            assert!(err.contains(&config), "{field}: {err}");
        }
    }
}

/// Older DeBERTa configs write `pos_att_type` as `"p2c|c2p"`: the same model as the list.
#[test]
fn deberta_v2_pos_att_type_as_a_joined_string_gives_the_same_vectors() {
    use medlink::encoder::Encoder;
    let tmp = tempfile::tempdir().unwrap();
    let joined = deberta_with(tmp.path(), "joined", |c| {
        c["pos_att_type"] = "P2C | c2p".into()
    });
    let texts = ["fever after ibuprofen", "Müller's café"];
    let encode = |dir: &Path| {
        TransformerEncoder::load(dir, &EncoderOptions::default())
            .unwrap()
            .encode(&texts)
            .unwrap()
    };
    assert_eq!(encode(&joined), encode(&fixture("deberta-v2-tiny")));
}
