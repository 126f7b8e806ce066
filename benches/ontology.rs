//! Ontology load time in release mode: MEDIC 2012 (pipe format, 76k names) and HPO (`hp.obo`,
//! 19k terms), each parsed into a full `Dictionary` (name table and id maps included).
//!
//! Needs `../shared/data` beside the checkout (or `MEDLINK_SHARED_DATA`).
//! Run: `cargo bench --bench ontology`.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use medlink::ontology::{load_dictionary, LoadOptions, OntologySpec};

fn spec(format: &str, relative: &str) -> OntologySpec {
    let root = std::env::var_os("MEDLINK_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    format!("{format}:{}", root.join(relative).display())
        .parse()
        .expect("valid spec")
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("load_dictionary");
    group.sample_size(10);
    for (name, spec) in [
        (
            "medic_2012",
            spec("medic", "vocab/medic_2012/medic_06Jul2012.txt"),
        ),
        ("hpo_2025_01_16", spec("obo", "hpo/hp.obo")),
        (
            "ctd_2017_gz",
            spec("ctd", "vocab/ctd_medic_2017/CTD_diseases.tsv.gz"),
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                load_dictionary(std::slice::from_ref(&spec), &LoadOptions::default())
                    .expect("loads")
            })
        });
    }
    group.finish();
}

criterion_group!(ontology, benches);
criterion_main!(ontology);
