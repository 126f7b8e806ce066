//! Dictionary matcher speed in release mode: building the automaton over HPO's names, and
//! matching running text (the 500 BC5CDR training abstracts, ~0.6 MB) reported as bytes of
//! text per second by criterion.
//!
//! Needs `../shared/data` beside the checkout (or `MEDLINK_SHARED_DATA`).
//! Run: `cargo bench --bench ner`.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use medlink::ner::dictionary::{DictionaryMatcher, MatcherOptions};
use medlink::ontology::{load_dictionary, LoadOptions, OntologySpec};

fn shared(relative: &str) -> PathBuf {
    std::env::var_os("MEDLINK_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"))
        .join(relative)
}

fn benches(c: &mut Criterion) {
    let spec: OntologySpec = format!("obo:{}", shared("hpo/hp.obo").display())
        .parse()
        .expect("valid spec");
    let dict = load_dictionary(&[spec], &LoadOptions::default()).expect("hp.obo loads");
    let options = MatcherOptions {
        types: vec!["Phenotypic abnormality".into()],
        ..MatcherOptions::default()
    };
    let corpus = medlink::eval::pubtator::load(&shared("bc5cdr/CDR_TrainingSet.PubTator.txt"))
        .expect("BC5CDR train loads");
    let texts: Vec<&str> = corpus.documents.iter().map(|d| d.text.as_str()).collect();
    let bytes: usize = texts.iter().map(|t| t.len()).sum();

    let mut group = c.benchmark_group("dictionary_matcher");
    group.sample_size(10);
    group.bench_function("build_hpo_phenotypes", |b| {
        b.iter(|| DictionaryMatcher::new(&dict, &options).expect("builds"))
    });
    let matcher = DictionaryMatcher::new(&dict, &options).expect("builds");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("match_bc5cdr_train_abstracts", |b| {
        b.iter(|| texts.iter().map(|t| matcher.find(t).len()).sum::<usize>())
    });
    group.finish();
}

criterion_group!(ner, benches);
criterion_main!(ner);
