//! Scale bench: indexes of up to millions of names, built from precomputed vectors.
//!
//! Encoding three million names would take the better part of an hour on two cores, and the
//! encoder's speed is measured elsewhere; this bench measures what grows with the index. A
//! synthetic index multiplies a real one (the combined vocabularies in ../shared/data, embedded
//! by medlink): variant `v` of each real concept carries each of its names with clinical
//! qualifiers ("chronic familial ...") and, as vectors, the real name's vector plus seeded
//! Gaussian noise (cosine ~0.92 to it), so variants cluster around real names as synonyms do.
//!
//! ```text
//! cargo bench --bench scale -- synth --base DIR --names N --out DIR [--vectors f16|i8|f32] [--m M]
//! cargo bench --bench scale -- query --index DIR [--queries 1000] [--recall-queries 200] [--ef 64,128,256]
//! ```
//! Each prints one JSON object. `benches/python/scale_benchmarks.py` runs every step in its own
//! process (so each peak RSS is that step's alone) and writes BENCHMARKS.md's scale table and
//! `benches/results/scale.svg`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use medlink::encoder::{Encoder, ModelIdentity};
use medlink::index::dense::{ExactIndex, VectorIndex, VectorStore, VectorType};
use medlink::index::Index;
use medlink::linker::{LinkOptions, Linker};
use medlink::ontology::{Concept, Dictionary};
use medlink::progress::NoProgress;
use medlink::rng::SplitMix64;

#[path = "common/variants.rs"]
mod variants;
use variants::variant_text;

/// Per-component noise: cosine(variant, name) = 1 / sqrt(1 + 384 sigma^2) ~ 0.92.
const VARIANT_SIGMA: f32 = 0.02;
/// Queries are names moved by the same amount again: mentions near, not on, a name.
const QUERY_SIGMA: f32 = 0.02;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let result = match args.first().map(String::as_str) {
        Some("synth") => synth(&args[1..]),
        Some("query") => query(&args[1..]),
        _ => Err(
            "usage: scale synth --base DIR --names N --out DIR | scale query --index DIR".into(),
        ),
    };
    match result {
        Ok(json) => println!("{json}"),
        Err(e) => {
            eprintln!("scale: {e}");
            std::process::exit(2);
        }
    }
}

type BenchResult = Result<serde_json::Value, Box<dyn std::error::Error>>;

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn required<'a>(args: &'a [String], name: &str) -> Result<&'a str, String> {
    flag(args, name).ok_or_else(|| format!("{name} is required"))
}

/// VmRSS and VmHWM of this process, in MiB.
fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// `row` moved by seeded Gaussian noise of `sigma` per component, renormalised.
fn perturbed(row: &[f32], sigma: f32, rng: &mut SplitMix64) -> Vec<f32> {
    let mut out: Vec<f32> = row
        .iter()
        .map(|x| {
            // Box-Muller.
            let u1 = rng.next_f32().max(1e-7);
            let u2 = rng.next_f32();
            x + sigma * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
        })
        .collect();
    let norm = out.iter().map(|x| x * x).sum::<f32>().sqrt();
    out.iter_mut().for_each(|x| *x /= norm);
    out
}

fn synth(args: &[String]) -> BenchResult {
    let base_dir = PathBuf::from(required(args, "--base")?);
    let target: usize = required(args, "--names")?.parse()?;
    let out = PathBuf::from(required(args, "--out")?);
    let start = Instant::now();
    let base = Index::open(&base_dir)?;
    let base_names = base.dictionary.names();
    // Each active base concept's names are one contiguous run of the name table.
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (i, name) in base_names.iter().enumerate() {
        match runs.last_mut() {
            Some(run) if base_names.get(run.0).concept == name.concept => run.1 = i + 1,
            _ => runs.push((i, i + 1)),
        }
    }
    // Concepts variant by variant until the name count reaches the target.
    let mut concepts: Vec<Concept> = Vec::new();
    let mut origin: Vec<(usize, usize)> = Vec::new(); // (run, variant) per synthetic concept
    let mut names = 0usize;
    'fill: for v in 0.. {
        for (r, &(first, end)) in runs.iter().enumerate() {
            let real = base.dictionary.concept(base_names.get(first).concept);
            let id = if v == 0 {
                real.id.clone()
            } else {
                format!("{}~{v}", real.id)
            };
            let mut concept = Concept::new(id, variant_text(base_names.get(first).text, v));
            for name in (first + 1..end).map(|b| base_names.get(b)) {
                concept.push_synonym(
                    variant_text(name.text, v),
                    name.kind.unwrap_or(medlink::ontology::SynonymKind::Exact),
                );
            }
            concept.types = real.types.clone();
            concept.source = real.source;
            concepts.push(concept);
            origin.push((r, v));
            names += end - first;
            if names >= target {
                break 'fill;
            }
        }
    }
    let dictionary =
        Dictionary::from_parts(base.dictionary.sources().to_vec(), concepts, Vec::new())?;
    let vector_type = match flag(args, "--vectors").unwrap_or("f16") {
        "f32" => VectorType::F32,
        "f16" => VectorType::F16,
        "i8" => VectorType::I8,
        other => return Err(format!("unknown vector type {other}").into()),
    };
    // Row i: the vector of the real name that name i is a variant of, moved by noise, stored
    // straight in the index's type (one copy of the vectors, as `index build` holds).
    let dim = base.vectors.dim();
    let mut vectors = VectorStore::zeros(dim, dictionary.names().len(), vector_type);
    let mut scratch = Vec::new();
    for (i, name) in dictionary.names().iter().enumerate() {
        let (run, v) = origin[name.concept as usize];
        let (first, end) = runs[run];
        let real = (first..end)
            .find(|&b| variant_text(base_names.get(b).text, v) == name.text)
            .ok_or_else(|| format!("name {:?} has no real name", name.text))?;
        let row = base.vectors.row_into(real, &mut scratch);
        if v == 0 {
            vectors.set_row(i, row)?;
        } else {
            let mut rng = SplitMix64::derive(7, real as u64, v as u64);
            vectors.set_row(i, &perturbed(row, VARIANT_SIGMA, &mut rng))?;
        }
    }
    let prepared = start.elapsed().as_secs_f64();
    let model: ModelIdentity = base.manifest.model.clone();
    let model_path = PathBuf::from(&base.manifest.model_path);
    let mut params = base.manifest.hnsw;
    if let Some(m) = flag(args, "--m") {
        params.m = m.parse()?;
    }
    params.vector_type = vector_type;
    let names = dictionary.names().len();
    // The search breadth `index build` would give an index of this size.
    params.ef_search = medlink::index::dense::default_ef_search(names);
    drop(base);
    let build = Instant::now();
    Index::build_from_vectors(
        &dictionary,
        vectors,
        &model,
        &model_path,
        &out,
        params,
        &NoProgress,
    )?;
    let build_seconds = build.elapsed().as_secs_f64();
    let (_, peak) = rss_mib();
    Ok(serde_json::json!({
        "names": names,
        "vectors": params.vector_type.as_str(),
        "concepts": dictionary.concept_count(),
        "prepare_seconds": prepared,
        "build_seconds": build_seconds,
        "peak_rss_mib": peak,
        "disk_bytes": dir_bytes(&out),
    }))
}

/// Hands the linker precomputed query vectors by text.
struct Precomputed {
    identity: ModelIdentity,
    vectors: HashMap<String, Vec<f32>>,
}

impl Encoder for Precomputed {
    fn dim(&self) -> usize {
        self.identity.dim
    }

    fn identity(&self) -> &ModelIdentity {
        &self.identity
    }

    fn encode(&self, texts: &[&str]) -> medlink::Result<Vec<Vec<f32>>> {
        texts
            .iter()
            .map(|t| {
                self.vectors.get(*t).cloned().ok_or_else(|| {
                    medlink::Error::InvalidInput(format!("no precomputed vector for {t:?}"))
                })
            })
            .collect()
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn query(args: &[String]) -> BenchResult {
    let dir = PathBuf::from(required(args, "--index")?);
    let queries: usize = flag(args, "--queries").unwrap_or("1000").parse()?;
    let recall_queries: usize = flag(args, "--recall-queries").unwrap_or("200").parse()?;
    let (rss_start, _) = rss_mib();
    let open = Instant::now();
    let index = Index::open(&dir)?;
    let open_seconds = open.elapsed().as_secs_f64();
    let (rss_open, _) = rss_mib();
    let n = index.vectors.len();
    // Seeded queries: a name's vector moved as far again as its variants are from it.
    let mut rng = SplitMix64::new(42);
    let mut texts: Vec<String> = Vec::with_capacity(queries);
    let mut vectors: HashMap<String, Vec<f32>> = HashMap::new();
    let mut scratch = Vec::new();
    while texts.len() < queries {
        let i = rng.below(n);
        let text = index.dictionary.name(i as u32).text.to_string();
        if vectors.contains_key(&text) {
            continue;
        }
        let q = perturbed(
            index.vectors.row_into(i, &mut scratch),
            QUERY_SIGMA,
            &mut rng,
        );
        vectors.insert(text.clone(), q);
        texts.push(text);
    }
    let encoder = Precomputed {
        identity: index.manifest.model.clone(),
        vectors,
    };
    let pool = LinkOptions::default().candidates;
    let ef = index.dense.params().ef_search;
    let mut dense_ms = Vec::with_capacity(queries);
    for t in &texts {
        let q = &encoder.vectors[t];
        let s = Instant::now();
        std::hint::black_box(index.dense.search_ef(q, pool, ef.max(pool))?);
        dense_ms.push(s.elapsed().as_secs_f64() * 1e3);
    }
    let linker = Linker::new(&index, &encoder)?;
    let options = LinkOptions {
        k: 25,
        ..LinkOptions::default()
    };
    let mut hybrid_ms = Vec::with_capacity(queries);
    for t in &texts {
        let s = Instant::now();
        std::hint::black_box(linker.link(t, &options)?);
        hybrid_ms.push(s.elapsed().as_secs_f64() * 1e3);
    }
    let (rss_queried, peak) = rss_mib();
    // recall@25 of the graph against a full scan of the same vectors, at the index's search
    // breadth and at wider ones (with each breadth's latency for the linker's pool).
    let exact = ExactIndex::new(&index.vectors);
    let recall_texts: Vec<&String> = texts.iter().take(recall_queries).collect();
    let truths: Vec<Vec<medlink::index::dense::Hit>> = recall_texts
        .iter()
        .map(|t| exact.search(&encoder.vectors[*t], 25))
        .collect::<Result<_, _>>()?;
    let recall_at = |ef: usize| -> Result<f64, Box<dyn std::error::Error>> {
        let (mut found, mut wanted) = (0usize, 0usize);
        for (t, truth) in recall_texts.iter().zip(&truths) {
            let got = index.dense.search_ef(&encoder.vectors[*t], 25, ef)?;
            // Names repeated across vocabularies have identical vectors: a hit that ties the
            // 25th exact score is as right as the one the full scan listed.
            let kth = truth.last().map_or(f32::INFINITY, |h| h.score);
            let right = got.iter().filter(|h| h.score >= kth - 1e-6).count();
            found += right.min(truth.len());
            wanted += truth.len();
        }
        Ok(found as f64 / wanted.max(1) as f64)
    };
    let mut sweep = Vec::new();
    let breadths: Vec<usize> = flag(args, "--ef")
        .unwrap_or("64,128,256")
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    for breadth in breadths {
        let mut ms = Vec::with_capacity(texts.len());
        for t in &texts {
            let s = Instant::now();
            std::hint::black_box(index.dense.search_ef(
                &encoder.vectors[t],
                pool,
                breadth.max(pool),
            )?);
            ms.push(s.elapsed().as_secs_f64() * 1e3);
        }
        ms.sort_by(f64::total_cmp);
        sweep.push(serde_json::json!({
            "ef": breadth,
            "recall_at_25": recall_at(breadth)?,
            "p50_ms": percentile(&ms, 0.5),
            "p99_ms": percentile(&ms, 0.99),
        }));
    }
    let recall = recall_at(ef)?;
    dense_ms.sort_by(f64::total_cmp);
    hybrid_ms.sort_by(f64::total_cmp);
    let lexical_bytes = dir_bytes(&dir.join(&index.manifest.files.lexical));
    Ok(serde_json::json!({
        "names": n,
        "vectors": index.vectors.kind().as_str(),
        "open_seconds": open_seconds,
        "rss_start_mib": rss_start,
        "rss_open_mib": rss_open,
        "rss_queried_mib": rss_queried,
        "peak_rss_mib": peak,
        "vector_bytes": index.vectors.data_bytes(),
        "graph_bytes": index.dense.graph_bytes(),
        "lexical_bytes": lexical_bytes,
        "dense_p50_ms": percentile(&dense_ms, 0.5),
        "dense_p99_ms": percentile(&dense_ms, 0.99),
        "hybrid_p50_ms": percentile(&hybrid_ms, 0.5),
        "hybrid_p99_ms": percentile(&hybrid_ms, 0.99),
        "ef_search": ef,
        "recall_at_25": recall,
        "recall_queries": recall_texts.len(),
        "unreachable_nodes": index.dense.unreachable_nodes(),
        "ef_sweep": sweep,
    }))
}
