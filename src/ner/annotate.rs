//! The annotate pipeline: text in, linked mentions out.
//!
//! For a batch of documents:
//! 1. a [`MentionDetector`] (dictionary matcher or tagger) finds mention spans in all of them
//!    at once;
//! 2. **abbreviations** defined in each document (Schwartz–Hearst, [`crate::eval::abbrev`]) are
//!    used twice: a detected mention is linked by its text with its short forms expanded
//!    (`linked_text`, [`crate::eval::abbrev::expand_mention`]: "WD" -> "Wilson disease",
//!    "GI AEs" -> "GI adverse experiences"), and every further whole-word occurrence of a short
//!    form whose long form was detected — in either number, "VSD" after "(VSDs)" — becomes a
//!    mention of the long form's type ("WD" after "Wilson disease (WD)"), unless it overlaps
//!    a mention already found;
//! 3. every distinct text to link, across the whole batch, is linked once by the
//!    [`Linker`] — with the sources its entity type is routed to, if any (`Chemical` → MeSH,
//!    `Disease` → MEDIC in one index). Concepts the detector itself matched by name (the
//!    dictionary matcher's) move to the top of their mention's candidates, in the linker's
//!    order.
//!
//! [`Linking::Dictionary`] skips the model altogether: a dictionary match's candidates are
//! just the concepts whose name it matched, ranked by lexical similarity to the mention, and
//! mentions the dictionary did not name (a tagger's) are linked lexically. It is the
//! dictionary matcher's own speed — QuickUMLS's and FastHPOCR's way of working — at the cost
//! of the encoder's ranking of ambiguous names.
//!
//! Mention text is never logged.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::{Mention, MentionDetector};
use crate::error::Result;
use crate::eval::abbrev::{
    expand_mention, expansion_map_of, find_abbreviations, other_number, plausible_expansion,
};
use crate::linker::{mention_problem, Candidate, LinkOptions, Linker, Mode};

/// What links a mention to its concepts (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Linking {
    /// The linker, in `link.mode`, for every mention; dictionary matches ranked first.
    #[default]
    Encoder,
    /// No model: a dictionary match keeps the concepts it matched; other mentions are linked
    /// lexically.
    Dictionary,
}

impl std::str::FromStr for Linking {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "encoder" => Ok(Linking::Encoder),
            "dictionary" => Ok(Linking::Dictionary),
            _ => Err(crate::error::Error::InvalidInput(format!(
                "unknown linking `{s}` (expected encoder or dictionary)"
            ))),
        }
    }
}

/// How mentions are linked.
#[derive(Debug, Clone, Default)]
pub struct AnnotateOptions {
    pub link: LinkOptions,
    pub linking: Linking,
    /// Use abbreviations defined in the document (see the module docs).
    pub abbreviations: bool,
    /// Entity type (case-insensitive) -> the index sources its mentions are linked against;
    /// a type not listed uses `link.sources`.
    pub routes: BTreeMap<String, Vec<String>>,
    /// Keep only detected mentions of these entity types (case-insensitive); empty keeps all.
    pub mention_types: Vec<String>,
}

/// One mention with its ranked concepts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkedMention {
    /// Character offsets into the document, end exclusive.
    pub start: usize,
    pub end: usize,
    pub text: String,
    #[serde(rename = "type")]
    pub entity_type: String,
    /// The detector's confidence (1 for dictionary matches).
    pub score: f32,
    /// The text the mention was linked by, when short forms in it are defined in the document
    /// ("WD" -> "Wilson disease", "GI AEs" -> "GI adverse experiences").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linked_text: Option<String>,
    /// Ranked concepts; empty when nothing could be linked (e.g. a span with no letters).
    pub candidates: Vec<Candidate>,
}

/// A detector and a linker, run together.
pub struct Annotator<'a> {
    detector: &'a dyn MentionDetector,
    linker: &'a Linker<'a>,
}

/// A mention before linking: the span, and the text to link it by.
struct Pending {
    mention: Mention,
    linked_text: Option<String>,
}

impl<'a> Annotator<'a> {
    pub fn new(detector: &'a dyn MentionDetector, linker: &'a Linker<'a>) -> Self {
        Annotator { detector, linker }
    }

    pub fn annotate(&self, text: &str, options: &AnnotateOptions) -> Result<Vec<LinkedMention>> {
        Ok(self
            .annotate_batch(&[text], options)?
            .pop()
            .unwrap_or_default())
    }

    /// Linked mentions of each document, sorted by start.
    pub fn annotate_batch(
        &self,
        texts: &[&str],
        options: &AnnotateOptions,
    ) -> Result<Vec<Vec<LinkedMention>>> {
        options.link.validate()?;
        let dictionary_linking = options.linking == Linking::Dictionary;
        let options = &AnnotateOptions {
            link: LinkOptions {
                mode: if dictionary_linking {
                    Mode::Lexical
                } else {
                    options.link.mode
                },
                ..options.link.clone()
            },
            ..options.clone()
        };
        let detected = self.detector.detect_batch(texts)?;
        let documents: Vec<Vec<Pending>> = texts
            .iter()
            .zip(detected)
            .map(|(text, mut mentions)| {
                if !options.mention_types.is_empty() {
                    mentions.retain(|m| {
                        options
                            .mention_types
                            .iter()
                            .any(|t| t.eq_ignore_ascii_case(&m.entity_type))
                    });
                }
                if options.abbreviations {
                    with_abbreviations(text, mentions)
                } else {
                    mentions
                        .into_iter()
                        .map(|mention| Pending {
                            mention,
                            linked_text: None,
                        })
                        .collect()
                }
            })
            .collect();

        // Distinct (route, text) pairs across the batch, linked once each.
        let route_of = |entity_type: &str| -> Option<&Vec<String>> {
            options
                .routes
                .iter()
                .find(|(t, _)| t.eq_ignore_ascii_case(entity_type))
                .map(|(_, sources)| sources)
        };
        let mut wanted: BTreeMap<Option<&Vec<String>>, Vec<String>> = BTreeMap::new();
        for p in documents.iter().flatten() {
            let text = p.linked_text.as_deref().unwrap_or(&p.mention.text);
            if dictionary_linking && !p.mention.concepts.is_empty() {
                continue; // its candidates are the concepts it matched
            }
            if mention_problem(text).is_none() {
                wanted
                    .entry(route_of(&p.mention.entity_type))
                    .or_default()
                    .push(text.to_string());
            }
        }
        let mut linked: HashMap<(Option<&Vec<String>>, String), Vec<Candidate>> = HashMap::new();
        for (route, mut texts) in wanted {
            texts.sort_unstable();
            texts.dedup();
            let mut link_options = options.link.clone();
            if let Some(sources) = route {
                link_options.sources = sources.clone();
            }
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let results = self.linker.link_batch(&refs, &link_options)?;
            for (text, candidates) in texts.into_iter().zip(results) {
                linked.insert((route, text), candidates);
            }
        }

        let route_options = |entity_type: &str| {
            let mut link_options = options.link.clone();
            if let Some(sources) = route_of(entity_type) {
                link_options.sources = sources.clone();
            }
            link_options
        };
        documents
            .into_iter()
            .map(|pending| {
                pending
                    .into_iter()
                    .map(|p| {
                        let text = p.linked_text.as_ref().unwrap_or(&p.mention.text);
                        let mut candidates = linked
                            .get(&(route_of(&p.mention.entity_type), text.clone()))
                            .cloned()
                            .unwrap_or_default();
                        if dictionary_linking && !p.mention.concepts.is_empty() {
                            candidates = self.matched_only(
                                text,
                                &p.mention.concepts,
                                &route_options(&p.mention.entity_type),
                            )?;
                        } else if !p.mention.concepts.is_empty() {
                            candidates = self.dictionary_first(
                                text,
                                &p.mention.concepts,
                                candidates,
                                &route_options(&p.mention.entity_type),
                            )?;
                        }
                        Ok(LinkedMention {
                            start: p.mention.start,
                            end: p.mention.end,
                            text: p.mention.text,
                            entity_type: p.mention.entity_type,
                            score: p.mention.score,
                            linked_text: p.linked_text,
                            candidates,
                        })
                    })
                    .collect()
            })
            .collect()
    }

    /// [`Linking::Dictionary`]: the concepts a dictionary match named, scored lexically.
    fn matched_only(
        &self,
        text: &str,
        matched: &[String],
        options: &LinkOptions,
    ) -> Result<Vec<Candidate>> {
        if mention_problem(text).is_some() {
            return Ok(Vec::new());
        }
        let mut scored = self.linker.score_concepts(text, matched, options)?;
        scored.truncate(options.k);
        Ok(scored)
    }

    /// A dictionary match names its concepts: they outrank whatever the linker liked better
    /// ("ear anomalies" folds to "Ear anomaly"), best scored first. Those the linker's top k
    /// left out ("cutaneous abnormalities" folds to "Abnormality of the skin", which the
    /// linker ranks below "Cutaneous wound") are scored for this mention and put in.
    fn dictionary_first(
        &self,
        text: &str,
        matched: &[String],
        linked: Vec<Candidate>,
        options: &LinkOptions,
    ) -> Result<Vec<Candidate>> {
        let (mut first, rest): (Vec<Candidate>, Vec<Candidate>) =
            linked.into_iter().partition(|c| matched.contains(&c.id));
        let missing: Vec<String> = matched
            .iter()
            .filter(|id| !first.iter().any(|c| &c.id == *id))
            .cloned()
            .collect();
        if !missing.is_empty() && mention_problem(text).is_none() {
            // A re-ranked list keeps the re-ranker's order; the concepts it lacked follow.
            let reranked = first.iter().any(|c| c.rerank.is_some());
            first.extend(self.linker.score_concepts(text, &missing, options)?);
            if !reranked {
                first.sort_by(|a, b| b.score.total_cmp(&a.score));
            }
        }
        first.extend(rest);
        first.truncate(options.k);
        Ok(first)
    }
}

/// Step 2 of the module docs for one document.
fn with_abbreviations(text: &str, mut mentions: Vec<Mention>) -> Vec<Pending> {
    let found = find_abbreviations(text);
    // What `medlink link` and `eval link` expand mentions with (first definitions, both
    // numbers), so a mention is linked by the same text on every path.
    let long_forms = expansion_map_of(&found);
    let definitions: Vec<_> = found
        .into_iter()
        .filter(|a| plausible_expansion(&a.short, &a.long))
        .collect();
    if definitions.is_empty() {
        return mentions
            .into_iter()
            .map(|mention| Pending {
                mention,
                linked_text: None,
            })
            .collect();
    }
    // Short form -> (long form, the detected mention covering the long form).
    let mut short_forms: BTreeMap<String, (String, Option<Mention>)> = BTreeMap::new();
    for a in &definitions {
        let detected = mentions
            .iter()
            .find(|m| (m.start <= a.long_span.0 && a.long_span.1 <= m.end) || m.text == a.long)
            .cloned();
        let entry = short_forms
            .entry(a.short.clone())
            .or_insert((a.long.clone(), None));
        if entry.1.is_none() {
            entry.1 = detected;
        }
    }
    // Further occurrences of short forms whose long form was detected.
    let chars: Vec<char> = text.chars().collect();
    for (short, (_, detected)) in &short_forms {
        let Some(long) = detected else {
            continue;
        };
        // The other number too ("VSDs" defined, "VSD" used), unless defined in its own right.
        let variant = other_number(short).filter(|v| !short_forms.contains_key(v));
        for form in std::iter::once(short).chain(variant.as_ref()) {
            for start in whole_word_occurrences(&chars, form) {
                let end = start + form.chars().count();
                if mentions.iter().any(|m| m.start < end && start < m.end) {
                    continue;
                }
                // It means what the long form's mention means, concepts included.
                mentions.push(Mention {
                    start,
                    end,
                    text: form.clone(),
                    ..long.clone()
                });
            }
        }
    }
    mentions.sort_by_key(|m| (m.start, m.end));
    mentions
        .into_iter()
        .map(|mention| {
            let linked_text = expand_mention(&long_forms, &mention.text);
            Pending {
                mention,
                linked_text,
            }
        })
        .collect()
}

/// Character offsets where `word` occurs in `chars` with no letter or digit on either side
/// (case-sensitive: short forms are written in capitals on purpose).
fn whole_word_occurrences(chars: &[char], word: &str) -> Vec<usize> {
    let needle: Vec<char> = word.chars().collect();
    if needle.is_empty() || needle.len() > chars.len() {
        return Vec::new();
    }
    (0..=chars.len() - needle.len())
        .filter(|&i| {
            chars[i..i + needle.len()] == needle[..]
                && (i == 0 || !chars[i - 1].is_alphanumeric())
                && chars
                    .get(i + needle.len())
                    .is_none_or(|c| !c.is_alphanumeric())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mention(text: &str, full: &str, entity_type: &str) -> Mention {
        let start = full.find(text).unwrap();
        Mention {
            start,
            end: start + text.len(),
            text: text.into(),
            entity_type: entity_type.into(),
            score: 0.9,
            concepts: Vec::new(),
        }
    }

    /// A short form defined in one number and used in the other is found and expanded, and
    /// a detected mention holding a short form is linked with it expanded.
    #[test]
    fn short_forms_in_the_other_number_and_inside_mentions() {
        let text = "ventricular septal defects (VSDs) in rabbits; VSD and familial VSDs again.";
        let pending = with_abbreviations(
            text,
            vec![
                mention("ventricular septal defects", text, "Disease"),
                mention("familial VSDs", text, "Disease"),
            ],
        );
        let found: Vec<(&str, Option<&str>)> = pending
            .iter()
            .map(|p| (p.mention.text.as_str(), p.linked_text.as_deref()))
            .collect();
        assert_eq!(
            found,
            vec![
                ("ventricular septal defects", None),
                ("VSDs", Some("ventricular septal defects")),
                ("VSD", Some("ventricular septal defects")),
                ("familial VSDs", Some("familial ventricular septal defects")),
            ]
        );
    }

    #[test]
    fn short_forms_of_detected_long_forms_become_mentions() {
        let text = "Wilson disease (WD) is rare. WD patients; AWD and WDX are not WD's.";
        let pending = with_abbreviations(text, vec![mention("Wilson disease", text, "Disease")]);
        let found: Vec<(usize, &str, Option<&str>)> = pending
            .iter()
            .map(|p| {
                (
                    p.mention.start,
                    p.mention.text.as_str(),
                    p.linked_text.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            found,
            vec![
                (0, "Wilson disease", None),
                (16, "WD", Some("Wilson disease")),
                (29, "WD", Some("Wilson disease")),
                (62, "WD", Some("Wilson disease")),
            ]
        );
        assert!(pending.iter().all(|p| p.mention.entity_type == "Disease"));
        assert!(pending[1..].iter().all(|p| p.mention.score == 0.9));
    }

    #[test]
    fn undetected_long_forms_add_nothing_but_still_expand() {
        let text = "Wilson disease (WD) is rare. WD again.";
        let pending = with_abbreviations(text, vec![mention("WD", text, "Disease")]);
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].linked_text.as_deref(), Some("Wilson disease"));
    }
}
