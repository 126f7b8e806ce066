//! Encoder throughput, HNSW query latency and end-to-end linking on the HPO index with the
//! default model (all-MiniLM-L6-v2).
//!
//! Needs the default model and an HPO index in the cache: the integration tests create both
//! (`target/medlink-cache/models/...` and `target/medlink-cache/test-indexes/hpo`), or set
//! `MEDLINK_CACHE` to a cache where `medlink fetch` and an HPO index build ran.
//! Run: `cargo bench --bench linking`.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use medlink::encoder::{Encoder, EncoderOptions, TransformerEncoder};
use medlink::index::Index;
use medlink::linker::{LinkOptions, Linker};

fn cache() -> PathBuf {
    std::env::var_os("MEDLINK_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/medlink-cache"))
}

/// Realistic mention strings: short phenotype phrases as clinicians write them.
const MENTIONS: &[&str] = &[
    "big head",
    "seizures",
    "short stature",
    "hearing loss",
    "long fingers",
    "cleft palate",
    "developmental delay",
    "hypotonia",
    "enlarged liver",
    "intellectual disability",
    "scoliosis",
    "microcephaly",
    "heart defect",
    "low-set ears",
    "high arched palate",
    "muscle weakness",
    "recurrent infections",
    "failure to thrive",
    "cataract",
    "ataxia",
];

/// One BERT feed-forward weight (1536 × 384) applied to `rows` token rows: candle's matmul
/// (the `gemm` crate) beside medlink's packing-free kernel, to place `skinny::MAX_ROWS`; and
/// the int8 paths, candle's GGML Q8_0 `QMatMul` and medlink's own (`--int8`).
fn dense_layer(c: &mut Criterion) {
    layer_group(
        c,
        "dense_layer",
        384,
        1536,
        &[1, 8, 12, 16, 24, 48, 96, 256],
        true,
    );
}

/// The feed-forward output weight (384 × 1536: four times the inputs per output) in f32 and
/// int8, where the activation rows are four times longer than in [`dense_layer`].
fn dense_layer_down(c: &mut Criterion) {
    layer_group(c, "dense_layer_down", 1536, 384, &[1, 16, 256], false);
}

/// A random `n × k` layer with a zero bias at each row count: candle's matmul and medlink's
/// int8 kernel, plus (`all_arms`) the packing-free f32 kernel and candle's Q8_0.
fn layer_group(c: &mut Criterion, name: &str, k: usize, n: usize, rows: &[usize], all_arms: bool) {
    use candle_core::{Device, Module, Tensor};
    // As the command line does: candle ops on the calling thread (see `medlink::parallel`).
    medlink::parallel::single_threaded_candle();
    let weight = Tensor::randn(0f32, 0.02, (n, k), &Device::Cpu).expect("weight");
    let bias = Tensor::zeros(n, candle_core::DType::F32, &Device::Cpu).expect("bias");
    let q8 = all_arms.then(|| {
        candle_core::quantized::QMatMul::from_qtensor(
            candle_core::quantized::QTensor::quantize(
                &weight,
                candle_core::quantized::GgmlDType::Q8_0,
            )
            .expect("quantize"),
        )
        .expect("qmatmul")
    });
    let int8 = medlink::model::int8::QuantizedLinear::quantize(&weight, Some(&bias)).expect("int8");
    let mut group = c.benchmark_group(name);
    for &rows in rows {
        let xs = Tensor::randn(0f32, 1.0, (rows, k), &Device::Cpu).expect("xs");
        group.throughput(Throughput::Elements(rows as u64));
        group.bench_with_input(BenchmarkId::new("candle", rows), &xs, |b, xs| {
            b.iter(|| {
                xs.matmul(&weight.t().expect("t"))
                    .and_then(|o| o.broadcast_add(&bias))
                    .expect("matmul")
            })
        });
        if let Some(q8) = &q8 {
            group.bench_with_input(BenchmarkId::new("skinny", rows), &xs, |b, xs| {
                b.iter(|| medlink::model::skinny::linear(xs, &weight, &bias).expect("skinny"))
            });
            group.bench_with_input(BenchmarkId::new("q8_0", rows), &xs, |b, xs| {
                b.iter(|| {
                    q8.forward(xs)
                        .and_then(|o| o.broadcast_add(&bias))
                        .expect("q8")
                })
            });
        }
        group.bench_with_input(BenchmarkId::new("int8", rows), &xs, |b, xs| {
            b.iter(|| int8.forward(xs).expect("int8"))
        });
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    // As the command line does: candle ops on the calling thread (see `medlink::parallel`).
    medlink::parallel::single_threaded_candle();
    let model = medlink::assets::ensure(&medlink::assets::DEFAULT_MODEL, &cache())
        .expect("default model (run the tests or `medlink fetch` first)");
    let encoder =
        TransformerEncoder::load(&model, &EncoderOptions::default()).expect("model loads");
    let index = Index::open(&cache().join("test-indexes/hpo"))
        .expect("HPO index in the cache (run `cargo test --release` first)");

    let mut group = c.benchmark_group("encode");
    for batch in [1usize, 20, 128] {
        let texts: Vec<&str> = MENTIONS.iter().cycle().take(batch).copied().collect();
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::from_parameter(batch), &texts, |b, texts| {
            b.iter(|| encoder.encode(black_box(texts)).expect("encode"))
        });
    }
    group.finish();

    let queries = encoder.encode(MENTIONS).expect("encode");
    let mut group = c.benchmark_group("hnsw_query");
    group.throughput(Throughput::Elements(queries.len() as u64));
    for k in [10usize, 25, 100] {
        group.bench_with_input(BenchmarkId::new("k", k), &k, |b, &k| {
            b.iter(|| {
                for q in &queries {
                    black_box(index.dense.search_ef(q, k, 128.max(k)).expect("search"));
                }
            })
        });
    }
    group.finish();

    let linker = Linker::new(&index, &encoder).expect("same model");
    let mut group = c.benchmark_group("link");
    group.throughput(Throughput::Elements(MENTIONS.len() as u64));
    group.sample_size(20);
    group.bench_function("hybrid_batch_20_k10", |b| {
        b.iter(|| {
            linker
                .link_batch(black_box(MENTIONS), &LinkOptions::default())
                .expect("link")
        })
    });
    group.finish();
}

criterion_group!(linking, dense_layer, dense_layer_down, benches);
criterion_main!(linking);
