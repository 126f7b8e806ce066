//! Dense index tests: HNSW recall against the exact oracle on real HPO name vectors (f16 and
//! f32), the vector and graph file formats, and the index directory (manifest, model check,
//! corruption, older formats).

use std::sync::Arc;

use medlink::encoder::Encoder;
use medlink::index::dense::{
    ExactIndex, HnswIndex, HnswParams, VectorIndex, VectorStore, VectorType,
};
use medlink::index::manifest::INDEX_FORMAT_VERSION;
use medlink::index::Index;
use medlink::ontology::store::DICTIONARY_FORMAT_VERSION;
use medlink::progress::NoProgress;

use crate::common::{default_model, encoder, hpo_index};

/// recall@25 of `approx` against the exact f32 oracle over 400 name vectors spread over the
/// name table: every name vector is a realistic query (a mention equal or close to a synonym
/// is the common case in linking).
fn recall_at_25(oracle: &VectorStore, approx: &dyn VectorIndex) -> f64 {
    let exact = ExactIndex::new(oracle);
    let n = oracle.len();
    let (mut found, mut wanted) = (0usize, 0usize);
    for q in (0..n).step_by(n / 400) {
        let query = oracle.row_vec(q);
        let truth: Vec<u32> = exact
            .search(&query, 25)
            .unwrap()
            .iter()
            .map(|h| h.id)
            .collect();
        let got: Vec<u32> = approx
            .search(&query, 25)
            .unwrap()
            .iter()
            .map(|h| h.id)
            .collect();
        found += truth.iter().filter(|id| got.contains(id)).count();
        wanted += truth.len();
    }
    found as f64 / wanted as f64
}

#[test]
fn hnsw_recall_at_25_against_exact_on_hpo_names() {
    let index = hpo_index();
    let n = index.vectors.len();
    assert!(n > 30_000, "{n} HPO names");
    assert!(
        index.vectors.is_mapped(),
        "an opened index maps its vectors"
    );
    // The cached index stores f16; the oracle ranks the same names in f32 from the f16 values,
    // and a graph built over f32 copies of them must reach the same recall.
    let oracle = index.vectors.converted(VectorType::F32);
    let recall = recall_at_25(&oracle, &index.dense);
    assert!(
        recall >= 0.99,
        "HNSW recall@25 over f16 vectors {recall:.4}"
    );
    let f32_graph = HnswIndex::build(Arc::new(oracle), HnswParams::default()).unwrap();
    let oracle = index.vectors.converted(VectorType::F32);
    let recall = recall_at_25(&oracle, &f32_graph);
    assert!(
        recall >= 0.99,
        "HNSW recall@25 over f32 vectors {recall:.4}"
    );
}

#[test]
fn f16_vectors_keep_cosines_within_a_thousandth() {
    let index = hpo_index();
    let query = encoder().encode(&["large head"]).unwrap().remove(0);
    let full = index.vectors.converted(VectorType::F32);
    for i in (0..index.vectors.len()).step_by(997) {
        let (half, exact) = (index.vectors.dot(i, &query), full.dot(i, &query));
        assert!((half - exact).abs() < 1e-5, "row {i}: {half} vs {exact}");
    }
    // Rounding an f32 row to f16 moves its cosine with any query by at most ~1e-3.
    let rounded = full.converted(VectorType::F16).converted(VectorType::F32);
    let shifted =
        VectorStore::from_rows(384, &[query.iter().map(|x| x * 0.5 + 0.01).collect()]).unwrap();
    let probe = shifted.row_vec(0);
    for i in (0..full.len()).step_by(997) {
        let d = (rounded.dot(i, &probe) - full.dot(i, &probe)).abs();
        assert!(d < 1e-3, "row {i}: f16 rounding moved the cosine by {d}");
    }
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
            .zip(index.vectors.row_vec(h.id as usize))
            .map(|(a, b)| a * b)
            .sum();
        assert!((cos - h.score).abs() < 1e-4, "{cos} vs {}", h.score);
    }
    let err = index.dense.search(&query[..10], 5).unwrap_err();
    assert!(err.to_string().contains("expected 384, got 10"), "{err}");
}

#[test]
fn vector_file_round_trips_in_both_types_and_detects_corruption() {
    let store = VectorStore::from_rows(3, &[vec![1.0, 0.0, 0.0], vec![0.0, 0.6, 0.8]]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vectors.bin");
    for kind in [VectorType::F32, VectorType::F16, VectorType::I8] {
        let typed = store.converted(kind);
        typed.save(&path).unwrap();
        let loaded = VectorStore::load(&path).unwrap();
        assert!(loaded.is_mapped());
        assert_eq!(loaded, typed);
        assert_eq!(loaded.kind(), kind);
        assert!((loaded.dot(1, &[0.0, 0.6, 0.8]) - 1.0).abs() < 5e-3);
    }
    // Version 1 files (f32, 28-byte header) still load.
    let mut v1 = b"MLVEC\0\0\0".to_vec();
    v1.extend(1u32.to_le_bytes());
    v1.extend(2u64.to_le_bytes());
    v1.extend(3u64.to_le_bytes());
    for x in [1.0f32, 0.0, 0.0, 0.0, 0.6, 0.8] {
        v1.extend(x.to_le_bytes());
    }
    std::fs::write(&path, &v1).unwrap();
    assert_eq!(VectorStore::load(&path).unwrap(), store);
    std::fs::write(&path, &v1[..v1.len() - 2]).unwrap();
    let err = VectorStore::load(&path).unwrap_err();
    assert!(err.to_string().contains("corrupt"), "{err}");
    std::fs::write(&path, b"garbage").unwrap();
    assert!(VectorStore::load(&path).is_err());
    assert!(VectorStore::from_rows(3, &[vec![1.0]]).is_err());
}

#[test]
fn converting_on_the_way_to_the_file_writes_what_converting_in_memory_would() {
    // A few hundred rows: several 64 KB write buffers for every type.
    let rows: Vec<Vec<f32>> = (0..300)
        .map(|i| {
            let row: Vec<f32> = (0..97)
                .map(|j| ((i * 31 + j * 7) % 23) as f32 - 11.0)
                .collect();
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1.0);
            row.iter().map(|x| x / norm).collect()
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let kinds = [VectorType::F32, VectorType::F16, VectorType::I8];
    for from in kinds {
        let source_path = dir.path().join(format!("source-{}.bin", from.as_str()));
        VectorStore::from_rows(97, &rows)
            .unwrap()
            .converted(from)
            .save(&source_path)
            .unwrap();
        // The source is mapped, as `index convert` reads it.
        let source = VectorStore::load(&source_path).unwrap();
        for to in kinds {
            let streamed = dir.path().join("streamed.bin");
            let in_memory = dir.path().join("in-memory.bin");
            source.save_as(to, &streamed).unwrap();
            source.converted(to).save(&in_memory).unwrap();
            assert_eq!(
                std::fs::read(&streamed).unwrap(),
                std::fs::read(&in_memory).unwrap(),
                "{} -> {}",
                from.as_str(),
                to.as_str()
            );
            assert_eq!(VectorStore::load(&streamed).unwrap().kind(), to);
        }
    }
}

#[test]
fn hnsw_parameters_are_validated() {
    let store = Arc::new(VectorStore::from_rows(2, &[vec![1.0, 0.0]]).unwrap());
    for m in [0, 1, 257, 10_000] {
        let params = HnswParams {
            m,
            ..HnswParams::default()
        };
        let err = HnswIndex::build(store.clone(), params).err().unwrap();
        assert!(err.to_string().contains("between 2 and 256"), "{err}");
    }
}

#[test]
fn one_thread_builds_are_reproducible_and_tiny_graphs_work() {
    let index = hpo_index();
    let rows: Vec<Vec<f32>> = (0..3000).map(|i| index.vectors.row_vec(i * 7)).collect();
    let store = Arc::new(VectorStore::from_rows(384, &rows).unwrap());
    let build =
        || HnswIndex::build_with(store.clone(), HnswParams::default(), 1, &NoProgress).unwrap();
    let (a, b) = (build(), build());
    let dir = tempfile::tempdir().unwrap();
    a.save(&dir.path().join("a.bin")).unwrap();
    b.save(&dir.path().join("b.bin")).unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("a.bin")).unwrap(),
        std::fs::read(dir.path().join("b.bin")).unwrap()
    );
    // Every row finds itself first.
    for (i, row) in rows.iter().enumerate().step_by(97) {
        assert_eq!(a.search(row, 1).unwrap()[0].id, i as u32);
    }
    // Zero, one and two points.
    for n in 0..3 {
        let store = Arc::new(VectorStore::from_rows(384, &rows[..n]).unwrap());
        let graph = HnswIndex::build(store, HnswParams::default()).unwrap();
        assert_eq!(graph.search(&rows[0], 5).unwrap().len(), n);
    }
}

#[test]
fn hnsw_save_load_gives_identical_results_and_damage_is_an_error() {
    let index = hpo_index();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("graph.bin");
    index.dense.save(&path).unwrap();
    let reloaded = HnswIndex::load(&path, index.vectors.clone(), index.dense.params()).unwrap();
    for q in [0usize, 17, 4242] {
        let query = index.vectors.row_vec(q);
        assert_eq!(
            index.dense.search(&query, 10).unwrap(),
            reloaded.search(&query, 10).unwrap()
        );
    }
    let load = |bytes: &[u8]| {
        std::fs::write(&path, bytes).unwrap();
        HnswIndex::load(&path, index.vectors.clone(), index.dense.params())
            .err()
            .expect("damaged graph refused")
            .to_string()
    };
    let good = std::fs::read(dir.path().join("graph.bin")).unwrap();
    assert!(load(b"not a graph").contains("corrupt"));
    assert!(load(&good[..good.len() - 4]).contains("corrupt"));
    // A link to a node that does not exist (layer 0's first slot: count, then ids).
    let mut bad = good.clone();
    let upper = u64::from_le_bytes(good[40..48].try_into().unwrap()) as usize;
    let first_link = 48 + 4 * upper + 4;
    bad[first_link..first_link + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let err = load(&bad);
    assert!(err.contains("link to node"), "{err}");
    // A graph over other vectors.
    std::fs::write(&path, &good).unwrap();
    let other = Arc::new(VectorStore::from_rows(384, &[vec![0.0; 384]]).unwrap());
    let err = HnswIndex::load(&path, other, index.dense.params())
        .err()
        .unwrap();
    assert!(err.to_string().contains("nodes for 1 vectors"), "{err}");
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
    assert_eq!(index.dictionary.concept_count(), dict.concept_count());

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
    // still opens. Dictionaries of format 1 and 2 (one bincode blob of every concept, before
    // format 3's memory-mapped records) still open too, and give the same concepts and names.
    std::fs::write(&manifest, text.replace(&current, "\"format_version\": 1")).unwrap();
    let dictionary = out.join("dictionary.bin");
    let current_bytes = std::fs::read(&dictionary).unwrap();
    let concepts: Vec<_> = dict.concepts().collect();
    let blob = bincode::serialize(&(dict.sources(), &concepts, dict.warnings())).unwrap();
    for version in [1u32, 2] {
        let mut bytes = b"MLDICT\0\0".to_vec();
        bytes.extend_from_slice(&version.to_le_bytes());
        bytes.extend_from_slice(&blob);
        std::fs::write(&dictionary, &bytes).unwrap();
        let old = Index::open(&out).unwrap();
        assert!(old.dictionary.concepts().eq(dict.concepts()), "{version}");
        assert_eq!(old.dictionary.names(), dict.names(), "{version}");
    }
    let mut bytes = current_bytes.clone();
    bytes[8..12].copy_from_slice(&99u32.to_le_bytes());
    std::fs::write(&dictionary, &bytes).unwrap();
    let err = Index::open(&out).err().unwrap();
    assert!(err.to_string().contains("version 99"), "{err}");
    assert_eq!(
        u32::from_le_bytes(current_bytes[8..12].try_into().unwrap()),
        DICTIONARY_FORMAT_VERSION
    );
    std::fs::write(&dictionary, &current_bytes).unwrap();
    std::fs::write(&manifest, &text).unwrap();
    // Format 2 kept an hnsw_rs dump, not graph.bin: such an index opens, its graph rebuilt.
    let v2 = text
        .replace(&current, "\"format_version\": 2")
        .replace("\"graph\": \"graph.bin\"", "\"hnsw_basename\": \"names\"");
    assert!(!v2.contains("graph.bin"), "{v2}");
    std::fs::write(&manifest, &v2).unwrap();
    let old = Index::open(&out).unwrap();
    let query = old.vectors.row_vec(0);
    assert_eq!(old.dense.search(&query, 1).unwrap()[0].id, 0);
    std::fs::write(&manifest, &text).unwrap();
    // Vectors that disagree with the dictionary are detected.
    VectorStore::from_rows(384, &[vec![0.0; 384]])
        .unwrap()
        .save(&out.join("vectors.bin"))
        .unwrap();
    let err = Index::open(&out).err().unwrap();
    assert!(err.to_string().contains("disagree"), "{err}");
}

#[test]
fn export_writes_loadable_points_with_name_rows_as_ids() {
    use medlink::index::export::{export, ExportFormat};
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(&crate::cli::build_sample_index(dir.path())).unwrap();
    let names = index.dictionary.names().len();
    let out = dir.path().join("qdrant");
    let summary = export(&index, ExportFormat::Qdrant, &out, 4).unwrap();
    assert_eq!(summary.points, names);
    let read = |p: &std::path::Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let collection = read(&out.join("collection.json"));
    assert_eq!(collection["vectors"]["size"], 384);
    assert_eq!(collection["vectors"]["distance"], "Dot");
    let mut rows = Vec::new();
    for file in summary
        .files
        .iter()
        .filter(|f| f.to_string_lossy().contains("points-"))
    {
        let batch = read(file);
        let points = batch["points"].as_array().unwrap();
        assert!(points.len() <= 4);
        for p in points {
            let row = p["id"].as_u64().unwrap() as usize;
            let vector: Vec<f32> = serde_json::from_value(p["vector"].clone()).unwrap();
            assert!((index.vectors.dot(row, &vector) - 1.0).abs() < 1e-3);
            let name = index.dictionary.name(row as u32);
            assert_eq!(p["payload"]["name"], name.text);
            assert_eq!(
                p["payload"]["concept_id"],
                index.dictionary.concept(name.concept).id.as_str()
            );
            rows.push(row);
        }
    }
    assert_eq!(rows, (0..names).collect::<Vec<_>>());
    assert!(std::fs::read_to_string(out.join("LOAD.txt"))
        .unwrap()
        .contains("collections/medlink/points"));

    let out = dir.path().join("opensearch");
    export(&index, ExportFormat::Opensearch, &out, 10_000).unwrap();
    let mapping = read(&out.join("mapping.json"));
    assert_eq!(
        mapping["mappings"]["properties"]["vector"]["dimension"],
        384
    );
    let bulk = std::fs::read_to_string(out.join("bulk-00000.ndjson")).unwrap();
    let lines: Vec<serde_json::Value> = bulk
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2 * names);
    assert_eq!(lines[2]["index"]["_id"], "1");
    assert_eq!(lines[3]["row"], 1);
    assert!(export(&index, ExportFormat::Qdrant, &out, 0).is_err());
}

/// Delegates to a full scan and counts its calls: stands in for an external engine.
struct CountingEngine<'a> {
    exact: ExactIndex<'a>,
    calls: std::sync::atomic::AtomicUsize,
}

impl VectorIndex for CountingEngine<'_> {
    fn search(&self, query: &[f32], k: usize) -> medlink::Result<Vec<medlink::index::dense::Hit>> {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.exact.search(query, k)
    }
}

#[test]
fn the_linker_retrieves_dense_candidates_through_the_vector_index_seam() {
    use medlink::linker::{LinkOptions, Linker, Mode};
    let index = hpo_index();
    let engine = CountingEngine {
        exact: ExactIndex::new(&index.vectors),
        calls: Default::default(),
    };
    let options = LinkOptions {
        k: 5,
        mode: Mode::Dense,
        ..LinkOptions::default()
    };
    let mentions = ["big head", "seizures", "short stature"];
    let own = Linker::new(index, encoder()).unwrap();
    let external = Linker::new(index, encoder())
        .unwrap()
        .with_vector_index(&engine);
    let a = own.link_batch(&mentions, &options).unwrap();
    let b = external.link_batch(&mentions, &options).unwrap();
    assert_eq!(
        engine.calls.load(std::sync::atomic::Ordering::Relaxed),
        mentions.len()
    );
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x[0].id, y[0].id);
    }
}

/// Past 1.5 million names an index searches twice as wide unless its builder says otherwise
/// (at 3 million names ef 64 found 0.984 of the exact top 25, ef 128 0.997).
#[test]
fn large_indexes_default_to_a_wider_search() {
    use medlink::index::dense::default_ef_search;
    let base = HnswParams::default().ef_search;
    assert_eq!(default_ef_search(41_298), base);
    assert_eq!(default_ef_search(1_500_000), base);
    assert_eq!(default_ef_search(3_000_000), 2 * base);
}
