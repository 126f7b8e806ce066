//! Deterministic document-level train / dev splits of a corpus that ships without them
//! (MedProcNER has only a training release).
//!
//! A document's side depends only on its id and the seed, never on the order or the other
//! documents, so the same command gives the same split on every machine and adding documents
//! never moves old ones. Corpus specs select a side with `#split=train|dev` (see
//! [`super::CorpusSpec`]).

use super::Corpus;

/// Splits `corpus` by document into `(train, dev)`: a document goes to dev when a hash of its
/// id and `seed` falls below `dev_fraction` (clamped to `[0, 1]`; NaN counts as 0). The
/// assignment of a document depends only on its id and the seed — not on the order or the
/// other documents — so adding documents never moves old ones. Order is kept; each span
/// mismatch follows the document it names.
pub fn split(corpus: &Corpus, dev_fraction: f64, seed: u64) -> (Corpus, Corpus) {
    let fraction = if dev_fraction.is_nan() {
        0.0
    } else {
        dev_fraction.clamp(0.0, 1.0)
    };
    let (mut train, mut dev) = (Corpus::default(), Corpus::default());
    for doc in &corpus.documents {
        let side = if unit_hash(&doc.id, seed) < fraction {
            &mut dev
        } else {
            &mut train
        };
        side.documents.push(doc.clone());
    }
    for mismatch in &corpus.span_mismatches {
        let in_dev = dev
            .documents
            .iter()
            .any(|d| mismatch.contains(&format!("`{}`", d.id)));
        let side = if in_dev { &mut dev } else { &mut train };
        side.span_mismatches.push(mismatch.clone());
    }
    (train, dev)
}

/// A hash of `id` and `seed` mapped to `[0, 1)`: FNV-1a over the seed and id bytes, then the
/// SplitMix64 finaliser to spread FNV's weak low bits. Written out (not `std`'s hasher, whose
/// output may change between Rust releases) so splits are the same on every build.
fn unit_hash(id: &str, seed: u64) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.to_le_bytes().iter().chain(id.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h >> 11) as f64 / (1u64 << 53) as f64
}
