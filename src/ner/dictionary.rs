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
//! - words are compared by a **folded key** ([`word_key`]: "tumors" = "tumor", "nevi" =
//!   "nevus", "fistulae" = "fistula", "dysplastic" = "dysplasia", "patellar" = "patella",
//!   "cutaneous" = "skin", "multiple" = "numerous") on both sides, and the
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
    /// Compare words by [`word_key`] (plurals, derived adjectives and equivalent words
    /// folded) rather than as written.
    pub fold_word_forms: bool,
    /// Words skipped in names and text alike (normal form). Defaults to the articles.
    pub ignored_words: Vec<String>,
    /// Also match a name's content words in any order within one phrase ("thumb
    /// abnormalities" = "Abnormality of the thumbs"), where no name matched as written.
    pub any_order: bool,
    /// Also report the names found inside a match once its first or last word is dropped
    /// ("colitis" inside "ulcerative colitis"), for corpora that annotate nested mentions.
    pub nested: bool,
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
            fold_word_forms: true,
            ignored_words: ["the", "a", "an"].map(String::from).to_vec(),
            any_order: true,
            nested: false,
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
    /// Id of each concept.
    concept_ids: Vec<String>,
    fold_word_forms: bool,
    ignored_words: std::collections::HashSet<String>,
    /// Sorted content-word codes of every name of two or more content words -> its pattern
    /// in `bag_patterns`, for word-order variants (empty when `any_order` is off).
    bags: HashMap<Vec<u32>, usize>,
    bag_patterns: Vec<Pattern>,
    /// Codes of the connector words a bag leaves out ("of", "in", "with", ...).
    connectors: std::collections::HashSet<u32>,
    /// Most content words in a bag.
    longest_bag: usize,
    nested: bool,
}

/// Words a bag of words leaves out: "Abnormality of the thumb" = "thumb abnormality".
const CONNECTORS: &[&str] = &["of", "in", "on", "with", "at", "to", "for", "by", "from"];

/// Characters that end a window of words for order-free matching: a phrase does not run
/// across a comma, a full stop or a parenthesis.
fn breaks_phrase(c: char) -> bool {
    matches!(
        c,
        ',' | '.' | ';' | ':' | '(' | ')' | '[' | ']' | '{' | '}' | '!' | '?' | '"'
    )
}

/// The key a normalised word is compared by when word forms are folded. Applied to names and
/// text alike, so a rule that also changes some unrelated word ("diabetes" -> "diabete") costs
/// nothing unless two real words collide; words under four letters are left alone. In order:
/// 1. **plurals**: regular English ones and the Latin ones of medical words map to their
///    singular; words ending in "ss", "us" or "is" are not plurals;
/// 2. **spellings**: British "ae" / "oe" inside a word to "e" ("naevus", "oedema",
///    "diarrhoea"), and Greek "-on" to its plural "-a" ("acrochordons" = "Acrochorda",
///    "ganglion" = "ganglia"): [`spelling_key`];
/// 3. **adjectives to their nouns**, the derivations clinical writing swaps freely
///    ("dysplastic patella" = "Patellar dysplasia", "sclerotic" = "sclerosis",
///    "atrophic" = "atrophy", "bridged" = "bridging"): [`derived_noun`];
/// 4. **Latin/Greek adjectives to the plain words** vocabularies also use ("cutaneous" =
///    "skin", "renal" = "kidney", "multiple" = "numerous"): [`EQUIVALENT_WORDS`].
pub fn word_key(word: &str) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    if word.len() < 4 || !word.is_ascii() {
        return Cow::Borrowed(word);
    }
    let singular = singular_key(word);
    let spelled = match spelling_key(&singular) {
        Some(spelled) => Cow::Owned(spelled),
        None => singular,
    };
    let noun = match derived_noun(&spelled) {
        Some(noun) => Cow::Owned(noun),
        None => spelled,
    };
    match EQUIVALENT_WORDS.iter().find(|(w, _)| *w == noun.as_ref()) {
        Some((_, plain)) => Cow::Borrowed(plain),
        None => noun,
    }
}

/// Step 1 of [`word_key`]: plural folding, and "abnormal" / "anomalous" to their nouns.
fn singular_key(word: &str) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    let n = word.len();
    // Adjectives that vocabularies spell as nouns ("abnormal ribs" = "Abnormality of the ribs").
    match word {
        "abnormal" | "abnormalities" => return Cow::Borrowed("abnormality"),
        "anomalous" | "anomalies" => return Cow::Borrowed("anomaly"),
        _ => {}
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

/// Step 2 of [`word_key`]: one spelling for words written two ways. A word ending in the
/// digraph keeps it ("vertebrae" is a plural, folded in step 1; "canoe" is left alone).
fn spelling_key(word: &str) -> Option<String> {
    let mut changed = None;
    let bytes = word.as_bytes();
    for i in 0..bytes.len().saturating_sub(2) {
        if (bytes[i] == b'a' || bytes[i] == b'o') && bytes[i + 1] == b'e' {
            let out = changed.get_or_insert_with(|| word.to_string());
            // Indices shift by one for each digraph already folded.
            let at = i - (word.len() - out.len());
            out.remove(at);
        }
    }
    let current = changed.as_deref().unwrap_or(word);
    // Latin "-tion" / "-sion" nouns have no such plural.
    if let Some(stem) = current.strip_suffix("on") {
        if stem.len() >= 4 && !stem.ends_with("ti") && !stem.ends_with("si") {
            return Some(format!("{stem}a"));
        }
    }
    changed
}

/// Step 3 of [`word_key`]: the noun a medical adjective or participle derives from, by suffix.
/// Each rule keeps a stem of at least four letters, so short words ("otic", "red") stay.
fn derived_noun(word: &str) -> Option<String> {
    // (adjective suffix, noun suffix): dysplastic -> dysplasia, fibrotic -> fibrosis,
    // atrophic -> atrophy, patellar -> patella, bridged / bridging -> bridge. English nouns
    // of Latin "-ula" words take the Latin form their adjective shares: clavicle and
    // clavicular -> clavicula, mandible and mandibular -> mandibula, ventricle, muscle.
    const RULES: &[(&str, &str)] = &[
        ("astic", "asia"),
        ("otic", "osis"),
        ("phic", "phy"),
        ("ular", "ula"),
        ("llar", "lla"),
        ("cle", "cula"),
        ("ble", "bula"),
        ("ged", "ge"),
        ("ging", "ge"),
    ];
    RULES.iter().find_map(|(adjective, noun)| {
        let stem = word.strip_suffix(adjective)?;
        (stem.len() >= 4).then(|| format!("{stem}{noun}"))
    })
}

/// Step 4 of [`word_key`]: words with the same meaning in names, the learned adjective first
/// (after steps 1 and 2), the word it folds to second.
pub const EQUIVALENT_WORDS: &[(&str, &str)] = &[
    ("cutaneous", "skin"),
    ("dermal", "skin"),
    ("renal", "kidney"),
    ("hepatic", "liver"),
    ("cardiac", "heart"),
    ("pulmonary", "lung"),
    ("ocular", "eye"),
    ("ophthalmic", "eye"),
    ("cerebral", "brain"),
    ("gastric", "stomach"),
    ("dental", "tooth"),
    ("teeth", "tooth"),
    ("nasal", "nose"),
    ("oral", "mouth"),
    ("auditory", "hearing"),
    // What vocabularies call "Abnormality of X", writers call X anomalies or manifestations
    // ("malformation" and "defect" are left alone: vocabularies keep them for morphology).
    ("anomaly", "abnormality"),
    ("manifestation", "abnormality"),
    ("multiple", "numerous"),
    ("many", "numerous"),
    ("tumour", "tumor"),
];

/// Word codes have 21 bits: three bytes, 7 bits each, the first byte's high bit set.
const MAX_WORDS: usize = 1 << 21;

fn decode(code: &[u8]) -> u32 {
    (u32::from(code[0] & 0x7f) << 14) | (u32::from(code[1]) << 7) | u32::from(code[2])
}

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
            wanted_source
                .get(usize::from(dictionary.concept_source_index(c)))
                .copied()
                .unwrap_or(options.sources.is_empty())
                && (options.types.is_empty()
                    || dictionary
                        .concept_types(c)
                        .any(|t| options.types.iter().any(|w| w.eq_ignore_ascii_case(t))))
        };

        // Group the name table by normal form: one pattern per form.
        let mut forms: BTreeMap<&str, (Vec<ConceptIdx>, bool)> = BTreeMap::new();
        for entry in dictionary.names() {
            if !concept_wanted(entry.concept) {
                continue;
            }
            let acronym = looks_like_acronym(entry.text, options.acronym_max_chars);
            let form = forms.entry(entry.normalized).or_insert((Vec::new(), true));
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
                let key = if options.fold_word_forms {
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
        // Bags of content words, for order-free matching.
        let connectors: std::collections::HashSet<u32> = CONNECTORS
            .iter()
            .filter_map(|w| words.get(*w).copied())
            .collect();
        let mut bags: HashMap<Vec<u32>, usize> = HashMap::new();
        let mut bag_patterns: Vec<Pattern> = Vec::new();
        let mut longest_bag = 0;
        if options.any_order {
            for (code, pattern) in encoded.iter().zip(&patterns) {
                if pattern.acronym {
                    continue;
                }
                let mut bag: Vec<u32> = code
                    .chunks(3)
                    .map(decode)
                    .filter(|id| !connectors.contains(id))
                    .collect();
                if bag.len() < 2 {
                    continue;
                }
                bag.sort_unstable();
                longest_bag = longest_bag.max(bag.len());
                let i = *bags.entry(bag).or_insert_with(|| {
                    bag_patterns.push(Pattern {
                        concepts: Vec::new(),
                        acronym: false,
                    });
                    bag_patterns.len() - 1
                });
                let concepts = &mut bag_patterns[i].concepts;
                concepts.extend(&pattern.concepts);
                concepts.sort_unstable();
                concepts.dedup();
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
        let concept_sources = (0..dictionary.concept_count() as ConceptIdx)
            .map(|c| dictionary.concept_source_index(c))
            .collect();
        let concept_ids = (0..dictionary.concept_count() as ConceptIdx)
            .map(|c| dictionary.concept_id(c).to_string())
            .collect();
        Ok(DictionaryMatcher {
            automaton,
            patterns,
            words,
            labels,
            concept_sources,
            concept_ids,
            fold_word_forms: options.fold_word_forms,
            ignored_words: ignored,
            bags,
            bag_patterns,
            connectors,
            longest_bag,
            nested: options.nested,
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
            let key = if self.fold_word_forms {
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
        // (first word, last word, pattern) of every accepted match, in text order.
        let mut found: Vec<(usize, usize, &Pattern)> = Vec::new();
        for m in self.automaton.find_iter(&codes) {
            let pattern = &self.patterns[m.pattern().as_usize()];
            let (first, last) = (m.start() / 3, m.end() / 3 - 1);
            if pattern.acronym {
                let (from, to) = normalized.original_span(spans[first].0, spans[last].1);
                if chars[from..to].iter().any(|c| c.is_lowercase()) {
                    continue;
                }
            }
            found.push((first, last, pattern));
        }
        if !self.bags.is_empty() {
            self.find_any_order(&normalized, &spans, &codes, &chars, &mut found);
        }
        if self.nested {
            self.find_nested(&normalized, &spans, &codes, &chars, &mut found);
        }
        found
            .into_iter()
            .map(|(first, last, pattern)| {
                let (from, to) = normalized.original_span(spans[first].0, spans[last].1);
                let source = self
                    .concept_sources
                    .get(pattern.concepts[0] as usize)
                    .copied()
                    .unwrap_or(0);
                DictionaryMatch {
                    mention: Mention {
                        start: from,
                        end: to,
                        text: chars[from..to].iter().collect(),
                        entity_type: self
                            .labels
                            .get(usize::from(source))
                            .cloned()
                            .unwrap_or_default(),
                        score: 1.0,
                        concepts: pattern
                            .concepts
                            .iter()
                            .map(|&c| self.concept_ids[c as usize].clone())
                            .collect(),
                    },
                    concepts: pattern.concepts.clone(),
                }
            })
            .collect()
    }

    /// Adds, for every match of two or more words, the matches inside it without its first
    /// word and without its last word (one level of nesting), each found once.
    fn find_nested<'a>(
        &'a self,
        normalized: &crate::text::NormalizedText,
        spans: &[(usize, usize)],
        codes: &[u8],
        chars: &[char],
        found: &mut Vec<(usize, usize, &'a Pattern)>,
    ) {
        let mut added: Vec<(usize, usize, &Pattern)> = Vec::new();
        for &(first, last, _) in found.iter() {
            for (from, to) in [(first + 1, last), (first, last.saturating_sub(1))] {
                if last == first || from > to {
                    continue;
                }
                for m in self.automaton.find_iter(&codes[from * 3..(to + 1) * 3]) {
                    let pattern = &self.patterns[m.pattern().as_usize()];
                    let (a, b) = (from + m.start() / 3, from + m.end() / 3 - 1);
                    if pattern.acronym {
                        let (x, y) = normalized.original_span(spans[a].0, spans[b].1);
                        if chars[x..y].iter().any(|c| c.is_lowercase()) {
                            continue;
                        }
                    }
                    if !added
                        .iter()
                        .chain(found.iter())
                        .any(|&(f, l, _)| (f, l) == (a, b))
                    {
                        added.push((a, b, pattern));
                    }
                }
            }
        }
        if !added.is_empty() {
            found.extend(added);
            found.sort_by_key(|&(first, last, _)| (first, last));
        }
    }

    /// Adds order-free matches in the words no match covers: at each uncovered word, the
    /// longest window of uncovered words, within one phrase, that starts and ends on a content
    /// word and whose content words are some name's bag.
    fn find_any_order<'a>(
        &'a self,
        normalized: &crate::text::NormalizedText,
        spans: &[(usize, usize)],
        codes: &[u8],
        chars: &[char],
        found: &mut Vec<(usize, usize, &'a Pattern)>,
    ) {
        let ids: Vec<u32> = codes.chunks(3).map(decode).collect();
        let mut covered = vec![false; ids.len()];
        for &(first, last, _) in found.iter() {
            covered[first..=last].iter_mut().for_each(|c| *c = true);
        }
        // Does a phrase break sit between word k - 1 and word k?
        let break_before = |k: usize| {
            let (_, prev_end) = normalized.original_span(spans[k - 1].0, spans[k - 1].1);
            let (next_start, _) = normalized.original_span(spans[k].0, spans[k].1);
            chars[prev_end..next_start]
                .iter()
                .any(|&c| breaks_phrase(c))
        };
        let mut added = Vec::new();
        let mut i = 0;
        while i < ids.len() {
            if covered[i] || ids[i] == 0 || self.connectors.contains(&ids[i]) {
                i += 1;
                continue;
            }
            let mut best = None;
            let mut bag: Vec<u32> = Vec::new();
            let mut j = i;
            while j < ids.len() && !covered[j] && (j == i || !break_before(j)) {
                if ids[j] == 0 {
                    break;
                }
                if !self.connectors.contains(&ids[j]) {
                    bag.push(ids[j]);
                    if bag.len() > self.longest_bag {
                        break;
                    }
                    if bag.len() >= 2 {
                        let mut key = bag.clone();
                        key.sort_unstable();
                        if let Some(&p) = self.bags.get(&key) {
                            best = Some((j, p));
                        }
                    }
                }
                j += 1;
            }
            match best {
                Some((last, p)) => {
                    added.push((i, last, &self.bag_patterns[p]));
                    i = last + 1;
                }
                None => i += 1,
            }
        }
        if !added.is_empty() {
            found.extend(added);
            found.sort_by_key(|&(first, last, _)| (first, last));
        }
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
