//! Tests for the lexical index: features, exact names, typos on the real HPO name table against
//! an exhaustive TF-IDF cosine oracle (the scispaCy linker's method), word order, the disk round
//! trip, edge cases and broken directories.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use medlink::index::lexical::{char_trigrams, LexicalIndex};
use medlink::ontology::{self, Dictionary, Format, LoadOptions, NameIdx, OntologySpec};
use medlink::text::normalize;
use medlink::{Error, ErrorKind};

use crate::common::shared_data;

/// The HPO dictionary and an in-RAM index of its name table, built once for the module.
struct Hpo {
    dict: Dictionary,
    index: LexicalIndex,
}

fn hpo() -> &'static Hpo {
    static HPO: OnceLock<Hpo> = OnceLock::new();
    HPO.get_or_init(|| {
        let spec = OntologySpec {
            format: Format::Obo,
            path: shared_data("hpo/hp.obo"),
        };
        let dict = ontology::load_dictionary(&[spec], &LoadOptions::default()).unwrap();
        let start = Instant::now();
        let index = LexicalIndex::build_in_ram(&name_pairs(&dict)).unwrap();
        eprintln!(
            "lexical index: {} HPO names built in {:?}",
            index.len(),
            start.elapsed()
        );
        Hpo { dict, index }
    })
}

fn name_pairs(dict: &Dictionary) -> Vec<(NameIdx, &str)> {
    dict.names()
        .iter()
        .enumerate()
        .map(|(i, n)| (i as NameIdx, n.normalized))
        .collect()
}

const SMALL: &[(NameIdx, &str)] = &[
    (0, "big head"),
    (1, "macrocephaly"),
    (2, "small head"),
    (3, "microcephaly"),
    (4, "headache"),
    (5, "vitamin a deficiency"),
    (6, "hepatitis a"),
    (7, "sjogren syndrome"),
    (8, "αβ t cell lymphoma"),
    (9, "abnormality of the head"),
];

fn small_index() -> LexicalIndex {
    LexicalIndex::build_in_ram(SMALL).unwrap()
}

/// xorshift64*: tiny, seeded, stable across platforms and crate versions.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One random substitution, insertion or deletion of a letter. The result is re-normalised,
/// so a deleted space merges two words.
fn edit(text: &str, rng: &mut Rng) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let letter = |rng: &mut Rng| (b'a' + rng.below(26) as u8) as char;
    match rng.below(3) {
        0 if !chars.is_empty() => {
            let i = rng.below(chars.len());
            let mut c = letter(rng);
            while c == chars[i] {
                c = letter(rng);
            }
            chars[i] = c;
        }
        1 if chars.len() > 1 => {
            chars.remove(rng.below(chars.len()));
        }
        _ => {
            let i = rng.below(chars.len() + 1);
            chars.insert(i, letter(rng));
        }
    }
    normalize(&chars.into_iter().collect::<String>())
}

/// Exact char-3-gram TF-IDF cosine over every name (scikit-learn's `char_wb` analyzer, smoothed
/// idf, raw counts, no `min_df`): the scispaCy linker's method, which the index approximates
/// with its BM25 candidate pool. A plain inverted index, scored exhaustively.
struct Oracle {
    postings: HashMap<String, Vec<(usize, f64)>>,
    idf: HashMap<String, f64>,
    norms: Vec<f64>,
    num_docs: f64,
}

impl Oracle {
    fn new(names: &[(NameIdx, &str)]) -> Self {
        // Ordered maps: sums run in the same order every time, so ties between names with the
        // same 3-grams break the same way on every run.
        let counts: Vec<BTreeMap<String, f64>> = names
            .iter()
            .map(|(_, text)| {
                let mut m = BTreeMap::new();
                for g in char_trigrams(text) {
                    *m.entry(g).or_insert(0.0) += 1.0;
                }
                m
            })
            .collect();
        let mut df: HashMap<String, f64> = HashMap::new();
        for m in &counts {
            for g in m.keys() {
                *df.entry(g.clone()).or_insert(0.0) += 1.0;
            }
        }
        let num_docs = names.len() as f64;
        let idf: HashMap<String, f64> = df
            .into_iter()
            .map(|(g, d)| (g, ((1.0 + num_docs) / (1.0 + d)).ln() + 1.0))
            .collect();
        let mut postings: HashMap<String, Vec<(usize, f64)>> = HashMap::new();
        let mut norms = Vec::with_capacity(counts.len());
        for (row, m) in counts.into_iter().enumerate() {
            let mut norm2 = 0.0;
            for (g, c) in m {
                let w = c * idf[&g];
                norm2 += w * w;
                postings.entry(g).or_default().push((row, w));
            }
            norms.push(f64::sqrt(norm2));
        }
        Oracle {
            postings,
            idf,
            norms,
            num_docs,
        }
    }

    /// Top-k (row in the name list, cosine), best first.
    fn search(&self, query: &str, k: usize) -> Vec<(usize, f64)> {
        let mut q: BTreeMap<String, f64> = BTreeMap::new();
        for g in char_trigrams(query) {
            *q.entry(g).or_insert(0.0) += 1.0;
        }
        let unseen = (1.0 + self.num_docs).ln() + 1.0;
        let mut dots = vec![0.0f64; self.norms.len()];
        let mut qnorm2 = 0.0;
        for (g, c) in &q {
            let w = c * self.idf.get(g).copied().unwrap_or(unseen);
            qnorm2 += w * w;
            for &(row, dw) in self.postings.get(g).map(Vec::as_slice).unwrap_or(&[]) {
                dots[row] += w * dw;
            }
        }
        let qnorm = f64::sqrt(qnorm2);
        let mut scored: Vec<(usize, f64)> = dots
            .iter()
            .enumerate()
            .filter(|(_, d)| **d > 0.0)
            .map(|(row, d)| (row, d / (qnorm * self.norms[row])))
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.truncate(k);
        scored
    }
}

fn assert_well_formed(hits: &[(NameIdx, f32)], context: &str) {
    assert!(
        hits.iter().all(|h| (0.0..=1.0).contains(&h.1)),
        "{context}: {hits:?}"
    );
    assert!(
        hits.windows(2).all(|w| w[0].1 >= w[1].1),
        "{context}: not sorted: {hits:?}"
    );
}

#[test]
fn trigrams_pad_each_word() {
    assert_eq!(
        char_trigrams("big head"),
        [" bi", "big", "ig ", " he", "hea", "ead", "ad "]
    );
    assert_eq!(char_trigrams("a"), [" a "]);
    assert_eq!(char_trigrams("ab"), [" ab", "ab "]);
    assert_eq!(char_trigrams("  a   b "), [" a ", " b "]);
    assert!(char_trigrams("").is_empty());
    assert!(char_trigrams(" \t ").is_empty());
    assert_eq!(char_trigrams("αβ"), [" αβ", "αβ "]);
    assert_eq!(char_trigrams("\u{10ffff}"), [" \u{10ffff} "]);
}

#[test]
fn index_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<LexicalIndex>();
}

#[test]
fn exact_names_come_first_with_score_one() {
    let index = small_index();
    assert_eq!(index.len(), SMALL.len());
    for &(idx, name) in SMALL {
        let hits = index.search(name, 5).unwrap();
        assert_eq!(hits[0].0, idx, "{name}: {hits:?}");
        assert!(hits[0].1 > 0.9999, "{name}: {hits:?}");
        assert!(hits[1..].iter().all(|h| h.1 < 0.9), "{name}: {hits:?}");
        assert_well_formed(&hits, name);
    }

    // On the real table, every sampled name comes back first (or tied first with another row
    // of the same normal form, i.e. a name shared by several concepts) at score ~1.
    let hpo = hpo();
    let names = hpo.dict.names();
    let mut rng = Rng(7);
    for _ in 0..300 {
        let name = names.get(rng.below(names.len())).normalized;
        let hits = hpo.index.search(name, 5).unwrap();
        assert!(hits[0].1 > 0.9999, "{name}: {hits:?}");
        assert_eq!(names.get(hits[0].0 as usize).normalized, name, "{hits:?}");
    }
}

#[test]
fn exact_string_wins_a_tie_with_its_word_order_swap() {
    // Both rows have the same 3-grams, so both score 1; the query's own string comes first
    // even though the other row has the smaller index.
    let index = LexicalIndex::build_in_ram(&[(0, "head big"), (1, "big head")]).unwrap();
    let hits = index.search("big head", 2).unwrap();
    assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), [1, 0]);
    assert!(hits.iter().all(|h| h.1 > 0.9999), "{hits:?}");
}

#[test]
fn word_order_does_not_matter() {
    let hits = small_index().search("head big", 3).unwrap();
    assert_eq!(hits[0].0, 0, "{hits:?}");
    assert!(hits[0].1 > 0.9999, "{hits:?}");

    let hpo = hpo();
    let hits = hpo.index.search("head large", 10).unwrap();
    let names = hpo.dict.names();
    assert_eq!(
        names.get(hits[0].0 as usize).normalized,
        "large head",
        "{hits:?}"
    );
}

#[test]
fn typos_and_morphology_still_find_the_concept() {
    let index = small_index();
    for (query, want) in [
        ("macrocefaly", 1),
        ("mikrocephaly", 3),
        ("sjoegren syndrom", 7),
        ("head ache", 4),
        ("vitamin a deficient", 5),
        ("hepatitis", 6),
    ] {
        let hits = index.search(query, 3).unwrap();
        assert_eq!(hits[0].0, want, "{query}: {hits:?}");
        assert!(hits[0].1 < 1.0 && hits[0].1 > 0.3, "{query}: {hits:?}");
    }
}

/// hit@k: the sampled name's concept is among the concepts of the top k names.
///
/// Measured on HPO 2025-01-16 (41,298 names), 500 names per row sampled with seeds 43/44, edits
/// re-normalised, k = 25; release build on the 2-core dev machine:
///
/// | edits | index hit@1 | index hit@25 | exhaustive TF-IDF hit@1 | hit@25 | median / p99 latency |
/// |-------|-------------|--------------|-------------------------|--------|----------------------|
/// | 1     | 0.990       | 1.000        | 0.990                   | 1.000  | 0.76 ms / 1.2 ms     |
/// | 2     | 0.932       | 0.998        | 0.930                   | 0.998  | 0.59 ms / 1.1 ms     |
///
/// The index's top score equalled the exhaustive scan's for all 1,000 queries (its 2-edit hit@1
/// is higher only through tie-breaking among names with identical 3-grams).
#[test]
fn hpo_typos_match_exhaustive_tfidf() {
    let hpo = hpo();
    let names = hpo.dict.names();
    let oracle = Oracle::new(&name_pairs(&hpo.dict));
    let concept_of = |idx: NameIdx| names.get(idx as usize).concept;
    let samples = 500;

    for (edits, min_hit1, min_hit25) in [(1, 0.97, 0.99), (2, 0.90, 0.98)] {
        let mut rng = Rng(42 + edits as u64);
        let (mut hit1, mut hit25, mut oracle_hit1, mut oracle_hit25, mut same_top) =
            (0, 0, 0, 0, 0);
        let mut latencies = Vec::with_capacity(samples);
        for _ in 0..samples {
            let i = rng.below(names.len());
            let mut query = names.get(i).normalized.to_string();
            for _ in 0..edits {
                query = edit(&query, &mut rng);
            }
            let truth = names.get(i).concept;

            let start = Instant::now();
            let hits = hpo.index.search(&query, 25).unwrap();
            latencies.push(start.elapsed());
            assert_well_formed(&hits, &query);
            hit1 += usize::from(hits.first().is_some_and(|h| concept_of(h.0) == truth));
            hit25 += usize::from(hits.iter().any(|h| concept_of(h.0) == truth));

            let exact = oracle.search(&query, 25);
            oracle_hit1 += usize::from(
                exact
                    .first()
                    .is_some_and(|h| names.get(h.0).concept == truth),
            );
            oracle_hit25 += usize::from(exact.iter().any(|h| names.get(h.0).concept == truth));
            // The pool found the best name the exhaustive scan found, with the same score.
            if let (Some(a), Some(b)) = (exact.first(), hits.first()) {
                same_top += usize::from((a.1 - f64::from(b.1)).abs() < 1e-4);
            }
        }
        latencies.sort();
        let rate = |n: usize| n as f64 / samples as f64;
        let (hit1, hit25) = (rate(hit1), rate(hit25));
        let (oracle_hit1, oracle_hit25, same_top) =
            (rate(oracle_hit1), rate(oracle_hit25), rate(same_top));
        eprintln!(
            "{edits} edit(s): index hit@1 {hit1:.3} hit@25 {hit25:.3} | exhaustive TF-IDF hit@1 \
             {oracle_hit1:.3} hit@25 {oracle_hit25:.3} | same top score {same_top:.3} | \
             latency median {:?} p99 {:?}",
            latencies[samples / 2],
            latencies[samples * 99 / 100],
        );
        assert!(hit1 >= min_hit1, "{edits} edits: hit@1 {hit1}");
        assert!(hit25 >= min_hit25, "{edits} edits: hit@25 {hit25}");
        assert!(hit25 >= oracle_hit25 - 0.01, "{hit25} vs {oracle_hit25}");
        assert!(hit1 >= oracle_hit1 - 0.01, "{hit1} vs {oracle_hit1}");
        assert!(same_top >= 0.98, "{edits} edits: same top score {same_top}");
    }
}

/// Searches share the index's per-row sum buffers: many threads at once (more than the index
/// keeps buffers for) must each get what a lone search gets, so every buffer goes back zeroed.
#[test]
fn concurrent_searches_agree_with_lone_ones() {
    let hpo = hpo();
    let names = hpo.dict.names();
    let mut rng = Rng(7);
    let queries: Vec<String> = (0..64)
        .map(|_| edit(names.get(rng.below(names.len())).normalized, &mut rng))
        .collect();
    let alone: Vec<Vec<(NameIdx, f32)>> = queries
        .iter()
        .map(|q| hpo.index.search(q, 25).unwrap())
        .collect();
    assert!(alone.iter().all(|hits| !hits.is_empty()));
    std::thread::scope(|scope| {
        for thread in 0..8 {
            let (queries, alone) = (&queries, &alone);
            scope.spawn(move || {
                // Each thread starts elsewhere in the list, so different queries overlap.
                for step in 0..3 * queries.len() {
                    let i = (step + thread * 8) % queries.len();
                    let hits = hpo.index.search(&queries[i], 25).unwrap();
                    assert_eq!(hits, alone[i], "thread {thread}, query {:?}", queries[i]);
                }
            });
        }
    });
}

#[test]
fn similarity_is_the_search_score() {
    let hpo = hpo();
    let names = hpo.dict.names();
    let mut rng = Rng(11);
    for _ in 0..50 {
        let query = edit(names.get(rng.below(names.len())).normalized, &mut rng);
        for (idx, score) in hpo.index.search(&query, 10).unwrap() {
            let name = names.get(idx as usize).normalized;
            assert_eq!(
                hpo.index.similarity(&query, name),
                score,
                "{query} / {name}"
            );
            // The linker's path, with the name's norm remembered: the same bits, cold and warm.
            let profile = hpo.index.query_profile(&query);
            for _ in 0..2 {
                assert_eq!(
                    hpo.index.similarity_to_name(&profile, idx, name).to_bits(),
                    score.to_bits(),
                    "{query} / {name}"
                );
            }
            let back = hpo.index.similarity(name, &query);
            assert!(
                (back - score).abs() < 1e-6,
                "not symmetric: {query} / {name}"
            );
        }
    }
    // The linker's path on a fresh index: the first call computes the name's norm, the
    // second reads it back; both give the plain similarity's bits.
    let index = small_index();
    for query in ["big head", "head", "vitamin deficiency", "hepatitis"] {
        let profile = index.query_profile(query);
        for &(idx, name) in SMALL {
            let want = index.similarity(query, name).to_bits();
            for pass in ["cold", "warm"] {
                let got = index.similarity_to_name(&profile, idx, name).to_bits();
                assert_eq!(got, want, "{pass}: {query} / {name}");
            }
        }
    }
    // Two texts under one name index: no norm may be shared between them. Each query
    // finds its own text (cosine 1) after the other text's row was scored.
    let shared =
        LexicalIndex::build_in_ram(&[(0, "big head"), (0, "headache"), (1, "head")]).unwrap();
    for query in ["headache", "big head", "headache", "big head"] {
        let top = shared.search(query, 3).unwrap()[0].1;
        assert_eq!(top, shared.similarity(query, query), "{query}");
        assert!(top > 0.9999, "{query}: {top}");
    }
    // Names outside the index are scored too; nothing in common gives 0.
    assert!(index.similarity("big head", "big heads") > 0.5);
    assert_eq!(index.similarity("big head", "xyz"), 0.0);
    assert_eq!(index.similarity("", "big head"), 0.0);
    assert!(index.similarity("big head", "head big") > 0.9999);
}

#[test]
fn disk_round_trip_gives_same_results() {
    let hpo = hpo();
    let names = name_pairs(&hpo.dict);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lexical");
    let start = Instant::now();
    let built = LexicalIndex::build(&dir, &names).unwrap();
    let build_time = start.elapsed();
    drop(built);
    // The caller renames the finished directory into place: the index must not care.
    let moved = tmp.path().join("moved");
    std::fs::rename(&dir, &moved).unwrap();
    let start = Instant::now();
    let opened = LexicalIndex::open(&moved).unwrap();
    eprintln!("on disk: build {build_time:?}, open {:?}", start.elapsed());
    assert_eq!(opened.len(), hpo.index.len());

    let mut rng = Rng(3);
    for _ in 0..100 {
        let query = edit(
            hpo.dict.names().get(rng.below(names.len())).normalized,
            &mut rng,
        );
        assert_eq!(
            opened.search(&query, 10).unwrap(),
            hpo.index.search(&query, 10).unwrap(),
            "{query}"
        );
    }

    // Building over an existing index is refused, not mixed in.
    let err = LexicalIndex::build(&moved, &names[..10]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::User, "{err}");
    assert!(err.to_string().contains("empty directory"), "{err}");
}

#[test]
fn edge_cases_never_panic() {
    let index = small_index();
    // k larger than the index: every name sharing a 3-gram, no more.
    let hits = index.search("head", 100).unwrap();
    assert!(hits.len() <= SMALL.len());
    assert!(hits.iter().any(|h| h.0 == 4) && hits.iter().any(|h| h.0 == 9));
    assert_well_formed(&hits, "head");
    assert_eq!(index.search("head", 1).unwrap().len(), 1);
    assert!(index.search("head", 0).unwrap().is_empty());

    // Empty and blank queries give nothing.
    assert!(index.search("", 10).unwrap().is_empty());
    assert!(index.search("   ", 10).unwrap().is_empty());

    // A one-letter query is the whole-word query " a ".
    let hits = index.search("a", 10).unwrap();
    let mut found: Vec<NameIdx> = hits.iter().map(|h| h.0).collect();
    found.sort();
    assert_eq!(found, [5, 6], "{hits:?}");
    // Two letters: word prefix " he" and suffix "he " — headache, head, hepatitis...
    let hits = index.search("he", 10).unwrap();
    assert!(
        hits.iter().any(|h| h.0 == 6) && hits.iter().any(|h| h.0 == 0),
        "{hits:?}"
    );
    assert!(index.search("q", 10).unwrap().is_empty());

    // Unicode.
    let hits = index.search("αβ t cell lymphoma", 3).unwrap();
    assert_eq!(hits[0].0, 8);
    assert!(hits[0].1 > 0.9999);
    assert_eq!(index.search("αβ", 3).unwrap()[0].0, 8);
    assert!(index.search("日本語", 3).unwrap().is_empty());
    assert!(index.search("\u{10ffff}", 3).unwrap().is_empty());

    // A pasted paragraph builds a bounded query.
    let long = "big head ".repeat(500) + &"x".repeat(5000);
    let hits = index.search(&long, 3).unwrap();
    assert_eq!(hits[0].0, 0);
    assert_well_formed(&hits, "long query");

    // Empty names are skipped; an empty index answers nothing.
    let index = LexicalIndex::build_in_ram(&[(0, ""), (1, "  "), (2, "x")]).unwrap();
    assert_eq!(index.len(), 1);
    let hits = index.search("x", 5).unwrap();
    assert!(
        hits.len() == 1 && hits[0].0 == 2 && hits[0].1 > 0.9999,
        "{hits:?}"
    );
    let empty = LexicalIndex::build_in_ram(&[]).unwrap();
    assert!(empty.is_empty());
    assert!(empty.search("big head", 5).unwrap().is_empty());
    assert!(empty.similarity("big head", "big head") > 0.9999);
}

fn open_error(dir: &Path) -> Error {
    let err = LexicalIndex::open(dir).unwrap_err();
    eprintln!("open {}: {err}", dir.display());
    err
}

#[test]
fn open_reports_missing_and_broken_directories() {
    let tmp = tempfile::tempdir().unwrap();

    let missing = tmp.path().join("nope");
    let err = open_error(&missing);
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Runtime);
    assert!(
        err.to_string().contains(&*missing.to_string_lossy()),
        "{err}"
    );

    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = open_error(&empty);
    assert!(matches!(err, Error::DataCorruption { .. }), "{err:?}");
    assert!(err.to_string().contains(&*empty.to_string_lossy()), "{err}");

    let garbage = tmp.path().join("garbage");
    std::fs::create_dir(&garbage).unwrap();
    std::fs::write(garbage.join("meta.json"), b"\x00\x01 not json").unwrap();
    let err = open_error(&garbage);
    assert!(matches!(err, Error::DataCorruption { .. }), "{err:?}");

    // A file where the directory should be.
    let file = tmp.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    assert!(matches!(open_error(&file), Error::Io { .. }));

    // A valid tantivy index that medlink did not write.
    let foreign = tmp.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    {
        use tantivy::schema::{Schema, TEXT};
        let mut schema = Schema::builder();
        let body = schema.add_text_field("body", TEXT);
        let index = tantivy::Index::create_in_dir(&foreign, schema.build()).unwrap();
        let mut writer: tantivy::IndexWriter = index.writer(15_000_000).unwrap();
        writer
            .add_document(tantivy::doc!(body => "big head"))
            .unwrap();
        writer.commit().unwrap();
    }
    let err = open_error(&foreign);
    assert!(matches!(err, Error::FileFormat { .. }), "{err:?}");
    assert!(err.to_string().contains("medlink-lexical"), "{err}");

    // A medlink index whose segment files were truncated.
    let broken = tmp.path().join("broken");
    LexicalIndex::build(&broken, SMALL).unwrap();
    for entry in std::fs::read_dir(&broken).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e != "json") {
            std::fs::write(&path, b"").unwrap();
        }
    }
    let err = open_error(&broken);
    assert!(
        matches!(err, Error::DataCorruption { .. } | Error::Io { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&*broken.to_string_lossy()),
        "{err}"
    );

    // A medlink index with a flipped byte in every segment file: caught by the checksums
    // rather than by a panic somewhere in tantivy.
    let flipped = tmp.path().join("flipped");
    LexicalIndex::build(&flipped, SMALL).unwrap();
    for entry in std::fs::read_dir(&flipped).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e != "json" && e != "lock") {
            let mut bytes = std::fs::read(&path).unwrap();
            // The first byte is data in every file (tantivy's footer is at the end).
            bytes[0] ^= 0x55;
            std::fs::write(&path, bytes).unwrap();
        }
    }
    let err = open_error(&flipped);
    assert!(matches!(err, Error::DataCorruption { .. }), "{err:?}");
    assert!(err.to_string().contains("checksum"), "{err}");
}

/// Build time of the HPO table, for the record (asserted loosely: CI machines are slow).
#[test]
fn hpo_builds_quickly() {
    let hpo = hpo();
    let names = name_pairs(&hpo.dict);
    let start = Instant::now();
    let index = LexicalIndex::build_in_ram(&names).unwrap();
    let elapsed = start.elapsed();
    eprintln!("rebuilt {} names in {elapsed:?}", index.len());
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

/// Concept-level hit@1 / hit@25 of NCBI-disease test mentions against MEDIC 2012: the top 100
/// names are folded into concepts (best name score per concept), as a linker does. A mention
/// counts as found when any of its gold ids is (composite mentions have several).
///
/// Measured (960 mentions): index 0.639 / 0.809, exhaustive TF-IDF 0.640 / 0.809; the Python
/// char-3-gram TF-IDF pipeline in `shared/NOTES-stack.md` reports 0.655 / 0.810 on the same
/// split. Median latency at k = 100 about 1 ms.
#[test]
fn ncbi_disease_test_mentions_match_exhaustive_tfidf() {
    let spec: OntologySpec = format!(
        "medic:{}",
        shared_data("vocab/medic_2012/medic_06Jul2012.txt").display()
    )
    .parse()
    .unwrap();
    let dict = ontology::load_dictionary(&[spec], &LoadOptions::default()).unwrap();
    let pairs = name_pairs(&dict);
    let start = Instant::now();
    let index = LexicalIndex::build_in_ram(&pairs).unwrap();
    eprintln!(
        "MEDIC: {} names built in {:?}",
        index.len(),
        start.elapsed()
    );
    let oracle = Oracle::new(&pairs);
    let names = dict.names();
    let corpus =
        medlink::eval::pubtator::load(&shared_data("ncbi_disease/NCBItestset_corpus.txt")).unwrap();

    let fold = |ranked: Vec<(usize, f64)>| -> Vec<u32> {
        let mut concepts: Vec<u32> = Vec::new();
        for (row, _) in ranked {
            let c = names.get(row).concept;
            if !concepts.contains(&c) {
                concepts.push(c);
            }
        }
        concepts
    };
    let (mut n, mut hit1, mut hit25, mut o_hit1, mut o_hit25) = (0, 0, 0, 0, 0);
    let mut latencies = Vec::new();
    for (_, mention) in corpus.mentions() {
        let gold: Vec<u32> = mention
            .ids
            .iter()
            .filter_map(|id| dict.lookup_id(id))
            .collect();
        let query = normalize(&mention.text);
        if gold.is_empty() || query.is_empty() {
            continue;
        }
        n += 1;
        let start = Instant::now();
        let hits = index.search(&query, 100).unwrap();
        latencies.push(start.elapsed());
        let found = fold(
            hits.iter()
                .map(|h| (h.0 as usize, f64::from(h.1)))
                .collect(),
        );
        let exact = fold(oracle.search(&query, 100));
        hit1 += usize::from(found.first().is_some_and(|c| gold.contains(c)));
        hit25 += usize::from(found.iter().take(25).any(|c| gold.contains(c)));
        o_hit1 += usize::from(exact.first().is_some_and(|c| gold.contains(c)));
        o_hit25 += usize::from(exact.iter().take(25).any(|c| gold.contains(c)));
    }
    latencies.sort();
    let rate = |h: usize| h as f64 / n as f64;
    eprintln!(
        "NCBI-disease test, {n} mentions: index hit@1 {:.3} hit@25 {:.3} | exhaustive TF-IDF \
         hit@1 {:.3} hit@25 {:.3} | k=100 latency median {:?} p99 {:?}",
        rate(hit1),
        rate(hit25),
        rate(o_hit1),
        rate(o_hit25),
        latencies[n / 2],
        latencies[n * 99 / 100],
    );
    let (hit1, hit25, o_hit1, o_hit25) = (rate(hit1), rate(hit25), rate(o_hit1), rate(o_hit25));
    assert!(hit1 >= 0.60 && hit25 >= 0.78, "hit@1 {hit1} hit@25 {hit25}");
    assert!(hit1 >= o_hit1 - 0.01, "hit@1 {hit1} vs exhaustive {o_hit1}");
    assert!(
        hit25 >= o_hit25 - 0.01,
        "hit@25 {hit25} vs exhaustive {o_hit25}"
    );
}
