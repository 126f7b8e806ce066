//! Lexical index on the real HPO name table (about 41k names): build time, and query latency
//! for exact names and names with one or two random letter edits, plus the cost of scoring one
//! (query, name) pair as the linker does for dense candidates; and query latency on a million
//! names (the HPO names under qualifier prefixes, as the scale bench's synthetic indexes),
//! where a 3-gram's postings are 25 times longer.
//!
//! Needs `../shared/data/hpo/hp.obo` beside the checkout (or `MEDLINK_SHARED_DATA`).
//! Run: `cargo bench --bench lexical`.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::OnceLock;

use criterion::{criterion_group, criterion_main, Criterion};
use medlink::index::lexical::LexicalIndex;
use medlink::ontology::{self, Dictionary, Format, LoadOptions, NameIdx, OntologySpec};
use medlink::text::normalize;

#[path = "common/variants.rs"]
mod variants;
use variants::variant_text;

fn shared_data(relative: &str) -> PathBuf {
    std::env::var_os("MEDLINK_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"))
        .join(relative)
}

/// xorshift64*, as in the tests: the same queries on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize
    }
}

/// `edits` random substitutions, insertions or deletions of a letter, re-normalised.
fn with_edits(text: &str, edits: usize, rng: &mut Rng) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for _ in 0..edits {
        let letter = (b'a' + rng.below(26) as u8) as char;
        match rng.below(3) {
            0 if !chars.is_empty() => {
                let i = rng.below(chars.len());
                chars[i] = letter;
            }
            1 if chars.len() > 1 => {
                chars.remove(rng.below(chars.len()));
            }
            _ => {
                let i = rng.below(chars.len() + 1);
                chars.insert(i, letter);
            }
        }
    }
    normalize(&chars.into_iter().collect::<String>())
}

/// The HPO dictionary, loaded once for both bench functions.
fn hpo() -> &'static Dictionary {
    static HPO: OnceLock<Dictionary> = OnceLock::new();
    HPO.get_or_init(|| {
        let spec = OntologySpec {
            format: Format::Obo,
            path: shared_data("hpo/hp.obo"),
        };
        ontology::load_dictionary(&[spec], &LoadOptions::default())
            .expect("HPO at ../shared/data/hpo/hp.obo (or set MEDLINK_SHARED_DATA)")
    })
}

fn bench(c: &mut Criterion) {
    let dict = hpo();
    let names: Vec<(NameIdx, &str)> = dict
        .names()
        .iter()
        .enumerate()
        .map(|(i, n)| (i as NameIdx, n.normalized))
        .collect();

    let mut group = c.benchmark_group("lexical_build");
    group.sample_size(10);
    group.bench_function("hpo_in_ram", |b| {
        b.iter(|| LexicalIndex::build_in_ram(black_box(&names)).expect("build"))
    });
    group.finish();

    let index = LexicalIndex::build_in_ram(&names).expect("build");
    let mut rng = Rng(2024);
    for edits in [0, 1, 2] {
        let queries: Vec<String> = (0..256)
            .map(|_| with_edits(names[rng.below(names.len())].1, edits, &mut rng))
            .collect();
        let mut next = queries.iter().cycle();
        c.bench_function(&format!("lexical_search_k25_{edits}_edits"), |b| {
            b.iter(|| {
                let query = next.next().map(String::as_str).unwrap_or_default();
                index.search(black_box(query), 25).expect("search")
            })
        });
    }

    let pairs: Vec<(String, &str)> = (0..256)
        .map(|_| {
            let name = names[rng.below(names.len())].1;
            (with_edits(name, 1, &mut rng), name)
        })
        .collect();
    let mut next = pairs.iter().cycle();
    c.bench_function("lexical_similarity_pair", |b| {
        b.iter(|| {
            let (query, name) = next
                .next()
                .map(|(q, n)| (q.as_str(), *n))
                .unwrap_or_default();
            index.similarity(black_box(query), black_box(name))
        })
    });
}

/// Qualified variants of each HPO name beside the name itself: 25 x 41,298 names.
const VARIANTS: usize = 24;

/// Query latency at k 64 (the linker's pool) on about a million names.
fn bench_million(c: &mut Criterion) {
    let base: Vec<&str> = hpo().names().iter().map(|n| n.normalized).collect();
    let texts: Vec<String> = (0..=VARIANTS)
        .flat_map(|v| base.iter().map(move |n| variant_text(n, v)))
        .collect();
    let names: Vec<(NameIdx, &str)> = texts
        .iter()
        .enumerate()
        .map(|(i, n)| (i as NameIdx, n.as_str()))
        .collect();
    let index = LexicalIndex::build_in_ram(&names).expect("build");
    let mut rng = Rng(2025);
    for edits in [0, 1] {
        let queries: Vec<String> = (0..256)
            .map(|_| with_edits(base[rng.below(base.len())], edits, &mut rng))
            .collect();
        let mut next = queries.iter().cycle();
        c.bench_function(
            &format!(
                "lexical_search_{}k_names_k64_{edits}_edits",
                names.len() / 1000
            ),
            |b| {
                b.iter(|| {
                    let query = next.next().map(String::as_str).unwrap_or_default();
                    index.search(black_box(query), 64).expect("search")
                })
            },
        );
    }
}

criterion_group!(benches, bench, bench_million);
criterion_main!(benches);
