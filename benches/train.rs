//! One contrastive training step of the default model, phase by phase: forward (with dropout,
//! batch groups on worker threads), loss (mining + multi-similarity + its gradient), backward
//! (per group, on worker threads), AdamW update. 64 synonym pairs (128 strings)
//! of MEDIC 2012 per step, as `medlink train encoder` runs by default.
//!
//! Needs the default model in the cache (the integration tests fetch it) and
//! `../shared/data`. Run: `cargo bench --bench train [-- STEPS]` (default 8 timed steps after
//! one warm-up step). Prints the median of each phase.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::Var;
use medlink::model::Dropout;
use medlink::ontology::{load_dictionary, LoadOptions, OntologySpec};
use medlink::rng::SplitMix64;
use medlink::train::loss::MultiSimilarity;
use medlink::train::model::TrainableEncoder;
use medlink::train::optim::{AdamW, AdamWConfig};
use medlink::train::pairs::PairSet;

const BATCH_PAIRS: usize = 64;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let cache = std::env::var_os("MEDLINK_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/medlink-cache"));
    let steps: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(8);
    // As `medlink train encoder` does: single-threaded candle ops, one batch group per worker.
    medlink::parallel::single_threaded_candle();
    let threads = medlink::parallel::threads(0);
    let model = medlink::assets::ensure(&medlink::assets::DEFAULT_MODEL, &cache)
        .expect("default model (run the tests or `medlink fetch` first)");
    let medic = root.join("../shared/data/vocab/medic_2012/medic_06Jul2012.txt");
    let spec: OntologySpec = format!("medic:{}", medic.display()).parse().unwrap();
    let dictionary = load_dictionary(&[spec], &LoadOptions::default()).expect("MEDIC loads");
    let mut pairs = PairSet::default();
    pairs.add_synonym_pairs(&dictionary, 50, 7);
    let encoder = TrainableEncoder::load(&model, 25).expect("model loads");
    let tokens = encoder.tokenize(&pairs.texts).unwrap();
    let mut optimizer = AdamW::new(encoder.vars(), AdamWConfig::default());
    let loss_fn = MultiSimilarity::default();
    let mut order: Vec<usize> = (0..pairs.pairs.len()).collect();
    SplitMix64::new(7).shuffle(&mut order);

    let mut phases: [Vec<f64>; 4] = Default::default();
    for step in 0..=steps {
        let batch = &order[step * BATCH_PAIRS..(step + 1) * BATCH_PAIRS];
        let mut texts: Vec<&[u32]> = Vec::new();
        let mut labels = Vec::new();
        for side in 0..2 {
            for &i in batch {
                let p = pairs.pairs[i];
                texts.push(&tokens[if side == 0 { p.a } else { p.b } as usize]);
                labels.push(p.label);
            }
        }
        let t0 = Instant::now();
        let forward = encoder
            .forward_groups(&texts, threads, |g| {
                Dropout::new(
                    encoder.config(),
                    SplitMix64::derive(7, g as u64, step as u64),
                )
            })
            .unwrap();
        let t1 = Instant::now();
        let embeddings = Var::from_tensor(&forward.embeddings().unwrap()).unwrap();
        let out = loss_fn.loss(embeddings.as_tensor(), &labels).unwrap();
        let upstream = out.loss.backward().unwrap().remove(&embeddings).unwrap();
        let t2 = Instant::now();
        let parts = forward
            .backward(&upstream, threads, |g| optimizer.collect(g))
            .unwrap();
        let t3 = Instant::now();
        optimizer.step(&parts, 2e-5).unwrap();
        let t4 = Instant::now();
        if step > 0 {
            for (p, (a, b)) in phases
                .iter_mut()
                .zip([(t0, t1), (t1, t2), (t2, t3), (t3, t4)])
            {
                p.push((b - a).as_secs_f64());
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let names = ["forward", "loss", "backward", "optimizer"];
    let mut total = 0.0;
    for (name, p) in names.iter().zip(phases.iter_mut()) {
        let m = median(p);
        total += m;
        println!("{name:<10} {:>8.1} ms", m * 1e3);
    }
    println!(
        "step       {:>8.1} ms  ({:.1} pairs/s, {} pairs per step, {} threads)",
        total * 1e3,
        BATCH_PAIRS as f64 / total,
        BATCH_PAIRS,
        threads
    );
}
