//! The dictionary matcher: finds every occurrence of an index's names in running text —
//! QuickUMLS's job, and medlink's NER on a fresh machine where no trained tagger exists.
//!
//! Names and text are compared in [`crate::text::normalize`]'s normal form (case, accents,
//! punctuation and possessives folded), **word by word**: each normalised word becomes a
//! 3-byte code, a name becomes the concatenation of its words' codes, and one Aho–Corasick
//! automaton (the `aho-corasick` crate, leftmost-longest) runs over the text's codes. Every
//! code starts with the only byte of the three that has its high bit set, so a match can only
//! begin at a word start and end at a word end: word boundaries hold by construction, and the
//! leftmost-longest rule never trades a whole-word match for a sub-word one. Words of the text
//! that occur in no name get code 0, which no pattern contains.
//!
//! Guards against the false positives that make plain dictionary matching useless on real text
//! (all configurable through [`MatcherOptions`]):
//! - names whose normal form is shorter than `min_chars` are dropped, unless they are
//!   acronyms (see below);
//! - names made only of stop words (`the`, `all`, `type`, `normal`, ...: [`STOP_WORDS`]) are
//!   dropped;
//! - **acronyms** — names written in capitals in the dictionary (`ALL`, `AIDS`), at most
//!   `acronym_max_chars` long and never written otherwise by any concept — match only text in
//!   capitals, so "all" and "aids" in prose stay words; acronyms shorter than
//!   `acronym_min_chars` (3: "HT", "RA") are not matched at all;
//! - words are compared by a **plural-folded key** ([`word_key`]: "tumors" = "tumor",
//!   "nevi" = "nevus", "fistulae" = "fistula", "abscesses" = "abscess") on both sides, and the
//!   articles "the", "a", "an" are skipped on both sides ("hypopigmentation of the skin" =
//!   "Hypopigmentation of skin"); offsets still cover the text as written;
//! - concepts can be restricted by source and type, e.g. HPO's "Phenotypic abnormality" branch,
//!   which drops frequency, onset and modifier terms ("Frequent", "Mild", "Onset").
//!
//! Matching is linear in the text's length; offsets are character offsets into the text.

use std::collections::{BTreeMap, HashMap};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use super::{Mention, MentionDetector};
use crate::error::{Error, Result};
use crate::ontology::{ConceptIdx, Dictionary};
use crate::text::normalize_with_offsets;

/// Single words that never make a mention on their own, in the normal form. Names made only
/// of them ("All", "Large", "Other") are not matched. English function words, plus words so
/// general in clinical prose that a vocabulary term spelled that way is almost never meant.
#[rustfmt::skip]
pub const STOP_WORDS: &[&str] = &[
    "a", "about", "above", "after", "again", "against", "all", "also", "am", "an", "and", "any",
    "are", "as", "at", "be", "been", "before", "being", "below", "between", "both", "but", "by",
    "can", "could", "did", "do", "does", "doing", "down", "during", "each", "either", "few", "for",
    "from", "further", "had", "has", "have", "having", "he", "her", "here", "hers", "him", "his",
    "how", "i", "if", "in", "into", "is", "it", "its", "itself", "just", "may", "me", "might",
    "more", "most", "must", "my", "no", "nor", "not", "now", "of", "off", "on", "once", "one",
    "only", "or", "other", "our", "out", "over", "own", "same", "she", "should", "so", "some",
    "such", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this",
    "those", "through", "to", "too", "two", "under", "until", "up", "upon", "very", "was", "we",
    "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with",
    "within", "without", "would", "you", "your",
    // general words that are also vocabulary terms
    "abnormal", "abnormality", "absent", "acute", "case", "cases", "cell", "cells", "change",
    "changes", "chronic", "clinical", "condition", "course", "death", "decreased", "defect",
    "disease", "diseases", "disorder", "disorders", "early", "finding", "form", "high", "increased",
    "large", "late", "left", "level", "levels", "low", "mild", "moderate", "normal", "onset",
    "patient", "patients", "present", "problem", "right", "severe", "sign", "signs", "single",
    "small", "symptom", "symptoms", "syndrome", "total", "type", "unknown", "various",
];

/// What the matcher matches and how it names what it found.
#[derive(Debug, Clone)]
pub struct MatcherOptions {
    /// Shortest normal form (in characters) of a non-acronym name.
    pub min_chars: usize,
    /// Longest name (in characters) treated as an acronym that must match capitals.
    pub acronym_max_chars: usize,
    /// Shortest acronym matched on its own: two-letter ones ("HT", "RA", "AT") mean too many
    /// things. A shorter one defined in the document is still found through the annotate
    /// pipeline's abbreviations.
    pub acronym_min_chars: usize,
    /// Keep only concepts of these sources (`HPO`, `MEDIC`); empty keeps all.
    pub sources: Vec<String>,
    /// Keep only concepts with one of these types (`Phenotypic abnormality`); empty keeps all.
    pub types: Vec<String>,
    /// Entity type reported for a match, by the matched concept's source name; a source not
    /// listed reports its own name.
    pub source_labels: BTreeMap<String, String>,
    /// Single words never matched alone (normal form). Defaults to [`STOP_WORDS`].
    pub stop_words: Vec<String>,
    /// Compare words by [`word_key`] (plural folding) rather than as written.
    pub fold_plurals: bool,
    /// Words skipped in names and text alike (normal form). Defaults to the articles.
    pub ignored_words: Vec<String>,
}

impl Default for MatcherOptions {
    fn default() -> Self {
        MatcherOptions {
            min_chars: 3,
            acronym_max_chars: 5,
            acronym_min_chars: 3,
            sources: Vec::new(),
            types: Vec::new(),
            source_labels: BTreeMap::new(),
            stop_words: STOP_WORDS.iter().map(|w| w.to_string()).collect(),
            fold_plurals: true,
            ignored_words: ["the", "a", "an"].map(String::from).to_vec(),
        }
    }
}

/// One name form the automaton knows: its concepts and whether it must match capitals.
#[derive(Debug, Clone)]
struct Pattern {
    /// Concepts having this normal form, in dictionary order.
    concepts: Vec<ConceptIdx>,
    /// Every spelling of the form in the dictionary is a short all-capitals acronym.
    acronym: bool,
}

/// A found dictionary name, with the concepts that carry it.
#[derive(Debug, Clone, PartialEq)]
pub struct DictionaryMatch {
    pub mention: Mention,
    /// Concepts whose name was matched, in dictionary order (at least one).
    pub concepts: Vec<ConceptIdx>,
}

/// Leftmost-longest whole-word matcher over a dictionary's names; see the module docs.
pub struct DictionaryMatcher {
    automaton: AhoCorasick,
    patterns: Vec<Pattern>,
    /// Normalised word -> word code (1-based; 0 is "in no name").
    words: HashMap<String, u32>,
    /// Entity type of a match, by concept source index.
    labels: Vec<String>,
    /// Source index of each concept.
    concept_sources: Vec<u16>,
    fold_plurals: bool,
    ignored_words: std::collections::HashSet<String>,
}

/// The key a normalised word is compared by when plurals are folded: regular English plurals
/// and the Latin ones of medical words map to their singular. Applied to names and text alike,
/// so a rule that also changes some singular ("diabetes" -> "diabete") costs nothing; words
/// under four letters and words ending in "ss", "us" or "is" are left alone.
pub fn word_key(word: &str) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    let n = word.len();
    if n < 4 || !word.is_ascii() {
        return Cow::Borrowed(word);
    }
    if let Some(stem) = word.strip_suffix("ies") {
        return Cow::Owned(format!("{stem}y"));
    }
    if word.ends_with("sses")
        || word.ends_with("xes")
        || word.ends_with("ches")
        || word.ends_with("shes")
    {
        return Cow::Borrowed(&word[..n - 2]);
    }
    if word.ends_with('s')
        && !word.ends_with("ss")
        && !word.ends_with("us")
        && !word.ends_with("is")
    {
        return Cow::Borrowed(&word[..n - 1]);
    }
    if word.ends_with("ae") {
        return Cow::Borrowed(&word[..n - 1]);
    }
    if word.ends_with('i') && !word.ends_with("ii") {
        return Cow::Owned(format!("{}us", &word[..n - 1]));
    }
    Cow::Borrowed(word)
}

/// Word codes have 21 bits: three bytes, 7 bits each, the first byte's high bit set.
const MAX_WORDS: usize = 1 << 21;

fn push_code(out: &mut Vec<u8>, code: u32) {
    out.extend_from_slice(&[
        0x80 | ((code >> 14) & 0x7f) as u8,
        ((code >> 7) & 0x7f) as u8,
        (code & 0x7f) as u8,
    ]);
}

/// A name written as an acronym: letters all capitals, at least one letter, no spaces.
fn looks_like_acronym(text: &str, max_chars: usize) -> bool {
    let trimmed = text.trim();
    trimmed.chars().count() <= max_chars
        && trimmed.chars().any(|c| c.is_alphabetic())
        && trimmed
            .chars()
            .all(|c| !c.is_alphabetic() || c.is_uppercase())
        && !trimmed.contains(char::is_whitespace)
}

impl DictionaryMatcher {
    /// Builds the automaton over every (filtered) name of `dictionary`.
    pub fn new(dictionary: &Dictionary, options: &MatcherOptions) -> Result<Self> {
        // A stop word's plural-folded key is a stop word too ("syndromes" -> "syndrome").
        let stop: std::collections::HashSet<String> = options
            .stop_words
            .iter()
            .flat_map(|w| [w.clone(), word_key(w).into_owned()])
            .collect();
        let is_stop = |w: &str| stop.contains(w) || stop.contains(word_key(w).as_ref());
        let ignored: std::collections::HashSet<String> =
            options.ignored_words.iter().cloned().collect();
        let wanted_source: Vec<bool> = dictionary
            .sources()
            .iter()
            .map(|s| {
                options.sources.is_empty()
                    || options
                        .sources
                        .iter()
                        .any(|w| w.eq_ignore_ascii_case(&s.name))
            })
            .collect();
        for wanted in &options.sources {
            if !dictionary
                .sources()
                .iter()
                .any(|s| s.name.eq_ignore_ascii_case(wanted))
            {
                return Err(Error::InvalidInput(format!(
                    "dictionary matcher: the index has no source `{wanted}` (sources: {})",
                    source_names(dictionary)
                )));
            }
        }
        let concept_wanted = |c: ConceptIdx| {
            let concept = dictionary.concept(c);
            wanted_source
                .get(usize::from(concept.source))
                .copied()
                .unwrap_or(options.sources.is_empty())
                && (options.types.is_empty()
                    || concept
                        .types
                        .iter()
                        .any(|t| options.types.iter().any(|w| w.eq_ignore_ascii_case(t))))
        };

        // Group the name table by normal form: one pattern per form.
        let mut forms: BTreeMap<&str, (Vec<ConceptIdx>, bool)> = BTreeMap::new();
        for entry in dictionary.names() {
            if !concept_wanted(entry.concept) {
                continue;
            }
            let acronym = looks_like_acronym(&entry.text, options.acronym_max_chars);
            let form = forms
                .entry(entry.normalized.as_str())
                .or_insert((Vec::new(), true));
            if !form.0.contains(&entry.concept) {
                form.0.push(entry.concept);
            }
            form.1 &= acronym;
        }

        let mut words: HashMap<String, u32> = HashMap::new();
        let mut patterns: Vec<Pattern> = Vec::new();
        let mut encoded: Vec<Vec<u8>> = Vec::new();
        // Forms that fold to the same words ("seizure", "seizures") are one pattern carrying
        // the concepts of both: the automaton must not hold two identical patterns.
        let mut by_code: HashMap<Vec<u8>, usize> = HashMap::new();
        for (form, (concepts, acronym)) in forms {
            if form.split(' ').all(is_stop) && !acronym {
                continue;
            }
            if acronym && form.chars().count() < options.acronym_min_chars {
                continue;
            }
            if form.chars().count() < options.min_chars && !acronym {
                continue;
            }
            let mut code = Vec::with_capacity(form.len());
            for word in form.split(' ').filter(|w| !ignored.contains(*w)) {
                let key = if options.fold_plurals {
                    word_key(word)
                } else {
                    word.into()
                };
                let next = words.len() as u32 + 1;
                let id = *words.entry(key.into_owned()).or_insert(next);
                push_code(&mut code, id);
            }
            if code.is_empty() {
                continue;
            }
            match by_code.get(&code) {
                Some(&i) => {
                    let pattern = &mut patterns[i];
                    pattern.acronym &= acronym;
                    pattern.concepts.extend(concepts);
                    pattern.concepts.sort_unstable();
                    pattern.concepts.dedup();
                }
                None => {
                    by_code.insert(code.clone(), patterns.len());
                    let mut concepts = concepts;
                    concepts.sort_unstable();
                    patterns.push(Pattern { concepts, acronym });
                    encoded.push(code);
                }
            }
        }
        if words.len() >= MAX_WORDS {
            return Err(Error::InvalidInput(format!(
                "dictionary matcher: the names use {} distinct words; the limit is {MAX_WORDS}",
                words.len()
            )));
        }
        let automaton = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&encoded)
            .map_err(|e| Error::Internal(format!("building the dictionary automaton: {e}")))?;
        let labels = dictionary
            .sources()
            .iter()
            .map(|s| {
                options
                    .source_labels
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(&s.name))
                    .map(|(_, v)| v.clone())
                    .unwrap_or_else(|| s.name.clone())
            })
            .collect();
        let concept_sources = dictionary.concepts().iter().map(|c| c.source).collect();
        Ok(DictionaryMatcher {
            automaton,
            patterns,
            words,
            labels,
            concept_sources,
            fold_plurals: options.fold_plurals,
            ignored_words: ignored,
        })
    }

    /// Name forms the automaton matches.
    pub fn pattern_count(&self) -> usize {
        self.patterns.len()
    }

    /// Every match in `text`, leftmost-longest, non-overlapping, in text order.
    pub fn find(&self, text: &str) -> Vec<DictionaryMatch> {
        let normalized = normalize_with_offsets(text);
        if normalized.text.is_empty() || self.patterns.is_empty() {
            return Vec::new();
        }
        // The text's word codes, and the span (bytes of the normal form) of each coded word.
        let mut spans: Vec<(usize, usize)> = Vec::new();
        let mut codes = Vec::new();
        let mut start = 0;
        for word in normalized.text.split(' ') {
            let at = start;
            start += word.len() + 1;
            if self.ignored_words.contains(word) {
                continue;
            }
            let key = if self.fold_plurals {
                word_key(word)
            } else {
                word.into()
            };
            spans.push((at, at + word.len()));
            push_code(
                &mut codes,
                self.words.get(key.as_ref()).copied().unwrap_or(0),
            );
        }
        let chars: Vec<char> = text.chars().collect();
        let mut out = Vec::new();
        for m in self.automaton.find_iter(&codes) {
            let pattern = &self.patterns[m.pattern().as_usize()];
            let (first, last) = (m.start() / 3, m.end() / 3 - 1);
            let (from, to) = normalized.original_span(spans[first].0, spans[last].1);
            let covered: String = chars[from..to].iter().collect();
            if pattern.acronym && covered.chars().any(|c| c.is_lowercase()) {
                continue;
            }
            let source = self
                .concept_sources
                .get(pattern.concepts[0] as usize)
                .copied()
                .unwrap_or(0);
            out.push(DictionaryMatch {
                mention: Mention {
                    start: from,
                    end: to,
                    text: covered,
                    entity_type: self
                        .labels
                        .get(usize::from(source))
                        .cloned()
                        .unwrap_or_default(),
                    score: 1.0,
                },
                concepts: pattern.concepts.clone(),
            });
        }
        out
    }
}

fn source_names(dictionary: &Dictionary) -> String {
    dictionary
        .sources()
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl MentionDetector for DictionaryMatcher {
    fn detect_batch(&self, texts: &[&str]) -> Result<Vec<Vec<Mention>>> {
        Ok(texts
            .iter()
            .map(|t| self.find(t).into_iter().map(|m| m.mention).collect())
            .collect())
    }
}
