//! Dense index tests: HNSW recall against the exact oracle on real HPO name vectors, the
//! vector file format, and the index directory (manifest, model check, corruption).

use medlink::encoder::Encoder;
use medlink::index::dense::{ExactIndex, HnswIndex, HnswParams, VectorIndex, VectorStore};
use medlink::index::manifest::INDEX_FORMAT_VERSION;
use medlink::index::Index;
use medlink::ontology::store::DICTIONARY_FORMAT_VERSION;
use medlink::progress::NoProgress;

use crate::common::{default_model, encoder, hpo_index};

#[test]
fn hnsw_recall_at_25_against_exact_on_hpo_names() {
    let index = hpo_index();
    let exact = ExactIndex::new(&index.vectors);
    let n = index.vectors.len();
    assert!(n > 30_000, "{n} HPO names");
    // 400 queries spread over the name table: every name vector is a realistic query (a
    // mention equal or close to a synonym is the common case in linking).
    let (mut found, mut wanted) = (0usize, 0usize);
    for q in (0..n).step_by(n / 400) {
        let query = index.vectors.row(q);
        let truth: Vec<u32> = exact
            .search(query, 25)
            .unwrap()
            .iter()
            .map(|h| h.id)
            .collect();
        let approx: Vec<u32> = index
            .dense
            .search(query, 25)
            .unwrap()
            .iter()
            .map(|h| h.id)
            .collect();
        found += truth.iter().filter(|id| approx.contains(id)).count();
        wanted += truth.len();
    }
    let recall = found as f64 / wanted as f64;
    assert!(
        recall >= 0.99,
        "HNSW recall@25 {recall:.4} ({found} of {wanted})"
    );
}

#[test]
fn hnsw_scores_are_cosines_and_sorted() {
    let index = hpo_index();
    let query = encoder().encode(&["seizures"]).unwrap().remove(0);
    let hits = index.dense.search(&query, 10).unwrap();
    assert_eq!(hits.len(), 10);
    for pair in hits.windows(2) {
        assert!(pair[0].score >= pair[1].score);
    }
    for h in &hits {
        let cos: f32 = query
            .iter()
            .zip(index.vectors.row(h.id as usize))
            .map(|(a, b)| a * b)
            .sum();
        assert!((cos - h.score).abs() < 1e-4, "{cos} vs {}", h.score);
    }
    let err = index.dense.search(&query[..10], 5).unwrap_err();
    assert!(err.to_string().contains("expected 384, got 10"), "{err}");
}

#[test]
fn vector_file_round_trips_and_detects_corruption() {
    let store = VectorStore::from_rows(3, &[vec![1.0, 0.0, 0.0], vec![0.0, 0.6, 0.8]]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vectors.bin");
    store.save(&path).unwrap();
    assert_eq!(VectorStore::load(&path).unwrap(), store);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 2]).unwrap();
    let err = VectorStore::load(&path).unwrap_err();
    assert!(err.to_string().contains("corrupt"), "{err}");
    std::fs::write(&path, b"garbage").unwrap();
    assert!(VectorStore::load(&path).is_err());
    assert!(VectorStore::from_rows(3, &[vec![1.0]]).is_err());
}

#[test]
fn hnsw_parameters_are_validated_before_hnsw_rs_sees_them() {
    let store = VectorStore::from_rows(2, &[vec![1.0, 0.0]]).unwrap();
    for m in [0, 257, 10_000] {
        let params = HnswParams {
            m,
            ..HnswParams::default()
        };
        let err = HnswIndex::build(&store, params).err().unwrap();
        assert!(err.to_string().contains("between 1 and 256"), "{err}");
    }
}

#[test]
fn hnsw_save_load_gives_identical_results_and_garbage_is_an_error() {
    let index = hpo_index();
    let dir = tempfile::tempdir().unwrap();
    let basename = index.dense.save(dir.path(), "copy").unwrap();
    let reloaded = HnswIndex::load(dir.path(), &basename, index.dense.params(), 384).unwrap();
    for q in [0usize, 17, 4242] {
        let query = index.vectors.row(q);
        assert_eq!(
            index.dense.search(query, 10).unwrap(),
            reloaded.search(query, 10).unwrap()
        );
    }
    let garbage = tempfile::tempdir().unwrap();
    for ext in ["hnsw.graph", "hnsw.data"] {
        std::fs::write(garbage.path().join(format!("bad.{ext}")), b"not a graph").unwrap();
    }
    let err = HnswIndex::load(garbage.path(), "bad", HnswParams::default(), 384)
        .err()
        .unwrap();
    assert!(err.to_string().contains("corrupt"), "{err}");
}

#[test]
fn index_directory_manifest_and_model_check() {
    let index = hpo_index();
    let m = &index.manifest;
    assert_eq!(m.model.dim, 384);
    assert_eq!(m.counts.names, index.dictionary.names().len());
    assert_eq!(m.sources[0].name, "HPO");
    assert_eq!(
        m.sources[0].version.as_deref(),
        Some("hp/releases/2025-01-16")
    );
    assert_eq!(m.sources[0].sha256.len(), 64);
    index.check_model(encoder().identity()).unwrap();
    let mut other = encoder().identity().clone();
    other.weights_sha256 = "0".repeat(64);
    other.name = "another-model".into();
    let err = index.check_model(&other).unwrap_err();
    assert!(err.to_string().contains("another-model"), "{err}");
    assert_eq!(err.kind(), medlink::ErrorKind::User);
}

#[test]
fn index_build_is_atomic_and_open_refuses_damaged_directories() {
    let dict = medlink::ontology::load_dictionary(
        &[format!(
            "tsv:{}/ontologies/samples/custom.tsv",
            env!("CARGO_MANIFEST_DIR")
        )
        .parse()
        .unwrap()],
        &Default::default(),
    )
    .unwrap();
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("cardio");
    Index::build(
        &dict,
        encoder(),
        &default_model(),
        &out,
        HnswParams::default(),
        &NoProgress,
    )
    .unwrap();
    // Only the finished directory remains: no staging directory beside it.
    let entries: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries, vec![std::ffi::OsString::from("cardio")]);
    // Rebuilding over an existing index replaces it.
    Index::build(
        &dict,
        encoder(),
        &default_model(),
        &out,
        HnswParams::default(),
        &NoProgress,
    )
    .unwrap();
    let index = Index::open(&out).unwrap();
    assert_eq!(index.dictionary.concepts().len(), dict.concepts().len());

    // A directory that is not an index is never replaced.
    let precious = root.path().join("precious");
    std::fs::create_dir(&precious).unwrap();
    std::fs::write(precious.join("notes.txt"), "keep me").unwrap();
    let err = Index::build(
        &dict,
        encoder(),
        &default_model(),
        &precious,
        HnswParams::default(),
        &NoProgress,
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("is not a medlink index"), "{err}");
    assert_eq!(
        std::fs::read_to_string(precious.join("notes.txt")).unwrap(),
        "keep me"
    );

    let err = Index::open(&root.path().join("missing")).err().unwrap();
    assert!(err.to_string().contains("missing"), "{err}");
    // A manifest from a future format is refused by version.
    let manifest = out.join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let current = format!("\"format_version\": {INDEX_FORMAT_VERSION}");
    assert!(text.contains(&current), "{text}");
    std::fs::write(&manifest, text.replace(&current, "\"format_version\": 99")).unwrap();
    let err = Index::open(&out).err().unwrap();
    assert!(err.to_string().contains("version 99"), "{err}");
    // Format 1 (before corpus sources existed) is a subset of format 2: a version 1 manifest
    // and dictionary still open, and give the same concepts.
    std::fs::write(&manifest, text.replace(&current, "\"format_version\": 1")).unwrap();
    let dictionary = out.join("dictionary.bin");
    let mut bytes = std::fs::read(&dictionary).unwrap();
    bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
    std::fs::write(&dictionary, &bytes).unwrap();
    let old = Index::open(&out).unwrap();
    assert_eq!(old.dictionary.concepts(), dict.concepts());
    bytes[8..12].copy_from_slice(&99u32.to_le_bytes());
    std::fs::write(&dictionary, &bytes).unwrap();
    let err = Index::open(&out).err().unwrap();
    assert!(err.to_string().contains("version 99"), "{err}");
    bytes[8..12].copy_from_slice(&DICTIONARY_FORMAT_VERSION.to_le_bytes());
    std::fs::write(&dictionary, &bytes).unwrap();
    std::fs::write(&manifest, text).unwrap();
    // Vectors that disagree with the dictionary are detected.
    VectorStore::from_rows(384, &[vec![0.0; 384]])
        .unwrap()
        .save(&out.join("vectors.bin"))
        .unwrap();
    let err = Index::open(&out).err().unwrap();
    assert!(err.to_string().contains("disagree"), "{err}");
}
