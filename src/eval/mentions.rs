//! Gold mention strings of annotated corpora as extra dictionary names: the "train + dev
//! mentions added to the dictionary" of the BioSyn / SapBERT protocol, and the whole dictionary
//! where no terminology is available (MedProcNER's codes and training mentions).
//! `medlink index build --add-mentions CORPUS_SPEC` calls [`add_mentions`] before embedding.
//!
//! Rules, applied in corpus order so the result is deterministic:
//! - A mention with exactly one gold id adds its text as a synonym of that concept, found by
//!   id or secondary id (so `OMIM:...` listed as a MEDIC alternative id lands on its MeSH
//!   concept). The kind is `Unspecified`: an annotator's string says nothing about how it
//!   relates to the preferred name. A text the concept already has, up to normal form, adds
//!   nothing.
//! - When no concept has the id, a concept is created with that id in the corpus's source (as
//!   BioSyn's dictionary script does). Its preferred name is its most frequent mention text
//!   (the first seen on ties), its types the entity types of its mentions.
//! - Composite mentions (several ids: "breast and ovarian cancer") are skipped, since their
//!   text names several concepts at once; so are mentions without an id.
//!
//! Each corpus becomes a source of format `corpus` whose path is the canonical spec (split and
//! type options included) and whose checksum is a SHA-256 of the corpus as read (texts, spans,
//! ids), so a manifest says exactly which mention names an index holds.

use std::collections::HashMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Corpus, CorpusSpec};
use crate::error::{Error, Result};
use crate::ontology::{Concept, Dictionary, Format, SourceInfo, SynonymKind};
use crate::text::normalize;

/// What one corpus added.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MentionStats {
    /// Gold mentions read.
    pub mentions: usize,
    /// Distinct new names (up to normal form), on existing and new concepts.
    pub names_added: usize,
    /// Concepts created because the dictionary had no concept with the mention's id.
    pub new_concepts: usize,
    pub composites_skipped: usize,
    pub without_id_skipped: usize,
}

/// `dict` extended with the mention strings of each corpus, and what each corpus added.
pub fn add_mentions(
    dict: Dictionary,
    corpora: &[(CorpusSpec, Corpus)],
) -> Result<(Dictionary, Vec<MentionStats>)> {
    // Resolve ids against the dictionary as loaded, before anything is added.
    let resolved: Vec<Vec<Option<usize>>> = corpora
        .iter()
        .map(|(_, corpus)| {
            corpus
                .mentions()
                .map(|(_, m)| match m.ids.as_slice() {
                    [id] => dict.lookup_id(id).map(|i| i as usize),
                    _ => None,
                })
                .collect()
        })
        .collect();
    let (mut sources, mut concepts, mut warnings) = dict.into_parts();
    let mut all_stats = Vec::with_capacity(corpora.len());
    // New concepts, over all corpora (an id missing from the dictionary may recur in the next
    // corpus): id -> index in `concepts`, and each one's texts with counts, in first-seen order.
    let mut created: HashMap<String, usize> = HashMap::new();
    let mut counts: HashMap<usize, Vec<(String, usize)>> = HashMap::new();
    for ((spec, corpus), resolved) in corpora.iter().zip(resolved) {
        let source = u16::try_from(sources.len())
            .map_err(|_| Error::InvalidInput("more than 65535 sources".into()))?;
        let mut stats = MentionStats::default();
        for ((_, m), existing) in corpus.mentions().zip(resolved) {
            stats.mentions += 1;
            let id = match m.ids.as_slice() {
                [] => {
                    stats.without_id_skipped += 1;
                    continue;
                }
                [id] => id,
                _ => {
                    stats.composites_skipped += 1;
                    continue;
                }
            };
            let text = m.text.trim();
            let normalized = normalize(text);
            if normalized.is_empty() {
                continue;
            }
            let Some(idx) = existing else {
                let idx = *created.entry(id.clone()).or_insert_with(|| {
                    let mut concept = Concept::new(id.clone(), "");
                    concept.source = source;
                    concepts.push(concept);
                    stats.new_concepts += 1;
                    concepts.len() - 1
                });
                let concept = &mut concepts[idx];
                if !m.entity_type.is_empty() && !concept.types.contains(&m.entity_type) {
                    concept.types.push(m.entity_type.clone());
                }
                let names = counts.entry(idx).or_default();
                match names.iter_mut().find(|(t, _)| normalize(t) == normalized) {
                    Some((_, n)) => *n += 1,
                    None => {
                        names.push((text.to_string(), 1));
                        stats.names_added += 1;
                    }
                }
                continue;
            };
            let concept = &mut concepts[idx];
            if !concept.names().any(|n| normalize(n) == normalized) {
                concept.push_synonym(text, SynonymKind::Unspecified);
                stats.names_added += 1;
            }
        }
        sources.push(SourceInfo {
            name: "MENTIONS".into(),
            format: Format::Corpus,
            path: spec.to_string(),
            version: None,
            sha256: corpus_sha256(corpus)?,
            concepts: stats.new_concepts,
        });
        warnings.push(format!(
            "{spec}: {} mentions gave {} new names ({} new concepts); skipped {} composite mentions and {} without an id",
            stats.mentions,
            stats.names_added,
            stats.new_concepts,
            stats.composites_skipped,
            stats.without_id_skipped
        ));
        all_stats.push(stats);
    }
    // A new concept's preferred name is its most frequent text, the first seen on ties.
    for (idx, names) in counts {
        let best = names
            .iter()
            .enumerate()
            .max_by(|(i, a), (j, b)| a.1.cmp(&b.1).then(j.cmp(i)))
            .map(|(i, _)| i)
            .unwrap_or(0);
        let concept = &mut concepts[idx];
        concept.name = names[best].0.clone();
        for (i, (text, _)) in names.into_iter().enumerate() {
            if i != best {
                concept.push_synonym(text, SynonymKind::Unspecified);
            }
        }
    }
    Ok((
        Dictionary::from_parts(sources, concepts, warnings)?,
        all_stats,
    ))
}

/// SHA-256 of the corpus as read: the JSON of its documents (ids, texts, mentions), which
/// covers a split or type filter as well as the files.
fn corpus_sha256(corpus: &Corpus) -> Result<String> {
    let json = serde_json::to_vec(&corpus.documents)
        .map_err(|e| Error::Internal(format!("serialising a corpus: {e}")))?;
    Ok(crate::fsutil::hex(&Sha256::digest(&json)))
}
