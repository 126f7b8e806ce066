//! Positive training pairs: two names of one concept.
//!
//! - Synonym pairs (SapBERT's self-alignment): every unordered pair of distinct names of a
//!   concept, sampled down to `max_pairs_per_concept` for concepts with many names (SapBERT
//!   caps at 50 per UMLS concept) so that a few huge concepts do not dominate an epoch.
//! - Mention pairs (the supervised BioSyn setting): each training-corpus mention paired with
//!   its gold concept's preferred name and with one further synonym, so that the model learns
//!   how text actually names concepts ("MI", "breast and ovarian cancer" parts, misspellings).
//!   Composite mentions (several gold ids) name several concepts and are left out; mentions
//!   identical to the name they would be paired with teach nothing and are skipped too.
//!
//! Names are compared and deduplicated by [`normalize`]; pair order is fixed by the input
//! order and the seed, so a pair set is the same on every run.

use std::collections::{BTreeSet, HashMap};

use crate::eval::Corpus;
use crate::ontology::Dictionary;
use crate::rng::SplitMix64;
use crate::text::normalize;

/// One positive pair: indices into [`PairSet::texts`] and the concept's label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    pub a: u32,
    pub b: u32,
    pub label: u32,
}

/// Distinct strings and the pairs over them.
#[derive(Debug, Default)]
pub struct PairSet {
    pub texts: Vec<String>,
    pub pairs: Vec<Pair>,
    pub synonym_pairs: usize,
    pub mention_pairs: usize,
    /// Corpus mentions not used: composite, no gold id, or gold id not in the dictionary.
    pub mentions_skipped: usize,
    text_ids: HashMap<String, u32>,
}

impl PairSet {
    /// Writes the pairs as TSV (`label<TAB>text a<TAB>text b`, one pair per line, in order),
    /// the input of `benches/python/train_reference.py`.
    pub fn write_tsv(&self, path: &std::path::Path) -> crate::Result<()> {
        use std::io::Write;
        crate::fsutil::write_atomic(path, |w| {
            for p in &self.pairs {
                let clean = |i: u32| self.texts[i as usize].replace(['\t', '\n', '\r'], " ");
                writeln!(w, "{}\t{}\t{}", p.label, clean(p.a), clean(p.b))?;
            }
            Ok(())
        })
    }

    fn text_id(&mut self, text: &str) -> u32 {
        if let Some(&id) = self.text_ids.get(text) {
            return id;
        }
        let id = self.texts.len() as u32;
        self.texts.push(text.to_string());
        self.text_ids.insert(text.to_string(), id);
        id
    }

    /// Adds SapBERT synonym pairs of every concept with two or more distinct names.
    pub fn add_synonym_pairs(
        &mut self,
        dictionary: &Dictionary,
        max_pairs_per_concept: usize,
        seed: u64,
    ) {
        // Name table rows are already distinct by normal form within their concept.
        let mut names: Vec<Vec<&str>> = vec![Vec::new(); dictionary.concept_count()];
        for entry in dictionary.names() {
            names[entry.concept as usize].push(entry.text);
        }
        let mut rng = SplitMix64::derive(seed, 1, 0);
        for (label, names) in names.iter().enumerate() {
            let k = names.len();
            if k < 2 {
                continue;
            }
            let mut all: Vec<(usize, usize)> = (0..k)
                .flat_map(|i| (i + 1..k).map(move |j| (i, j)))
                .collect();
            if all.len() > max_pairs_per_concept {
                rng.shuffle(&mut all);
                all.truncate(max_pairs_per_concept);
                all.sort_unstable();
            }
            for (i, j) in all {
                let (a, b) = (self.text_id(names[i]), self.text_id(names[j]));
                self.pairs.push(Pair {
                    a,
                    b,
                    label: label as u32,
                });
                self.synonym_pairs += 1;
            }
        }
    }

    /// Adds (mention, preferred name) and (mention, one other synonym) pairs for every
    /// single-concept gold mention of `corpus` whose concept is in the dictionary, each
    /// `repeat` times (mention pairs are few beside synonym pairs; repeating them sets how
    /// much of an epoch they make up).
    pub fn add_mention_pairs(
        &mut self,
        corpus: &Corpus,
        dictionary: &Dictionary,
        seed: u64,
        repeat: usize,
    ) {
        let mut done: BTreeSet<(String, u32)> = BTreeSet::new();
        let mut rng = SplitMix64::derive(seed, 2, 0);
        for (_, mention) in corpus.mentions() {
            let concept = match mention.ids.as_slice() {
                [id] => dictionary.lookup_id(id),
                _ => None,
            };
            let Some(concept) = concept else {
                self.mentions_skipped += 1;
                continue;
            };
            let key = normalize(&mention.text);
            if key.is_empty() || !done.insert((key.clone(), concept)) {
                continue;
            }
            let c = dictionary.concept(concept);
            let synonyms: Vec<&str> = c.names().skip(1).filter(|n| normalize(n) != key).collect();
            let mut partners = vec![c.name.as_str()];
            if !synonyms.is_empty() {
                partners.push(synonyms[rng.below(synonyms.len())]);
            }
            for partner in partners {
                if normalize(partner) == key {
                    continue;
                }
                let (a, b) = (self.text_id(&mention.text), self.text_id(partner));
                for _ in 0..repeat {
                    self.pairs.push(Pair {
                        a,
                        b,
                        label: concept,
                    });
                    self.mention_pairs += 1;
                }
            }
        }
    }
}
