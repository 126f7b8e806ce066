//! The dictionary matcher: whole words, leftmost-longest, character offsets, and its guards
//! (acronyms in capitals, stop words, short names, type filters), checked against a naive
//! word-by-word oracle.

use medlink::ner::dictionary::{DictionaryMatcher, MatcherOptions};
use medlink::ner::{char_slice, MentionDetector};
use medlink::ontology::{load_dictionary, Dictionary, Format, OntologySpec};
use medlink::text::normalize;
use proptest::prelude::*;

const VOCABULARY: &str = "id\tname\tsynonyms\ttypes
T:1\tMacrocephaly\tBig head|Large head\tPhenotypic abnormality
T:2\tSeizure\tSeizures|Epileptic seizure\tPhenotypic abnormality
T:3\tMyocardial infarction\tMI|heart attack\tPhenotypic abnormality
T:4\tAcute lymphoblastic leukemia\tALL\tPhenotypic abnormality
T:5\tLarge\t\tPhenotypic abnormality
T:6\tFrequent\t\tFrequency
T:7\tCrohn's disease\t\tPhenotypic abnormality
T:8\tSjögren syndrome\t\tPhenotypic abnormality
T:9\tHead\t\tPhenotypic abnormality
T:10\tAcquired immunodeficiency syndrome\tAIDS\tPhenotypic abnormality
T:11\tEar\tPinna\tPhenotypic abnormality
T:12\tCOPD\t\tPhenotypic abnormality
T:13\tObstructive lung disease\tcopd\tPhenotypic abnormality
T:14\tNevus\t\tPhenotypic abnormality
T:15\tBranchial fistula\t\tPhenotypic abnormality
T:16\tHypopigmentation of skin\t\tPhenotypic abnormality
T:17\tAbscess\t\tPhenotypic abnormality
T:18\tSyndromes\t\tPhenotypic abnormality
T:19\tFits\t\tPhenotypic abnormality
T:20\tFit\t\tPhenotypic abnormality
";

fn dictionary() -> Dictionary {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vocab.tsv");
    std::fs::write(&path, VOCABULARY).unwrap();
    load_dictionary(
        &[OntologySpec {
            format: Format::Tsv,
            path,
        }],
        &Default::default(),
    )
    .unwrap()
}

fn spans(matcher: &DictionaryMatcher, text: &str) -> Vec<(usize, usize, String)> {
    matcher
        .detect(text)
        .unwrap()
        .into_iter()
        .map(|m| (m.start, m.end, m.text))
        .collect()
}

macro_rules! t {
    ($matcher:expr, $text:expr, [$(($s:expr, $e:expr, $w:expr)),* $(,)?]) => {
        assert_eq!(
            spans(&$matcher, $text),
            vec![$(($s, $e, $w.to_string())),*],
            "text {:?}",
            $text
        );
    };
}

#[test]
fn whole_words_leftmost_longest_character_offsets() {
    let matcher = DictionaryMatcher::new(&dictionary(), &MatcherOptions::default()).unwrap();
    t!(
        matcher,
        "The patient has a big head and seizures.",
        [(18, 26, "big head"), (31, 39, "seizures")]
    );
    // "head" inside "ahead" is no word; plurals fold ("epileptic seizures").
    t!(
        matcher,
        "ahead of epileptic seizures",
        [(9, 27, "epileptic seizures")]
    );
    // The longest name wins at a position; the shorter one inside it is not reported twice.
    t!(matcher, "big head", [(0, 8, "big head")]);
    t!(matcher, "head", [(0, 4, "head")]);
    // Accents, case, possessives and punctuation fold; offsets count characters.
    t!(
        matcher,
        "Crohn’s Disease and Sjogren-Syndrome",
        [(0, 15, "Crohn’s Disease"), (20, 36, "Sjogren-Syndrome")]
    );
    t!(matcher, "Größe: Big   Head!", [(7, 17, "Big   Head")]);
    t!(matcher, "", []);
    t!(matcher, "?!", []);
}

#[test]
fn plurals_fold_and_articles_are_skipped_on_both_sides() {
    let matcher = DictionaryMatcher::new(&dictionary(), &MatcherOptions::default()).unwrap();
    t!(
        matcher,
        "Multiple nevi, branchial fistulae, abscesses and hypopigmentation of the skin.",
        [
            (9, 13, "nevi"),
            (15, 33, "branchial fistulae"),
            (35, 44, "abscesses"),
            (49, 77, "hypopigmentation of the skin"),
        ]
    );
    let literal = DictionaryMatcher::new(
        &dictionary(),
        &MatcherOptions {
            fold_word_forms: false,
            ignored_words: Vec::new(),
            ..MatcherOptions::default()
        },
    )
    .unwrap();
    t!(literal, "nevi, abscesses, hypopigmentation of the skin", []);
    let cases = [
        ("tumors", "tumor"),
        ("ovaries", "ovary"),
        ("abscesses", "abscess"),
        ("patches", "patch"),
        ("nevi", "nevus"),
        ("fistulae", "fistula"),
        ("abscess", "abscess"),
        ("virus", "virus"),
        ("arthritis", "arthritis"),
        ("gas", "gas"),
        ("ii", "ii"),
        ("abnormal", "abnormality"),
        ("anomalies", "abnormality"),
        // British spellings and Greek "-on" singulars.
        ("naevi", "nevus"),
        ("oedema", "edema"),
        ("diarrhoea", "diarrhea"),
        ("haemangiomas", "hemangioma"),
        ("vertebrae", "vertebra"),
        ("acrochordons", "acrochorda"),
        ("acrochorda", "acrochorda"),
        ("ganglion", "ganglia"),
        ("colon", "colon"),
        ("lesion", "lesion"),
        // Adjectives fold to their nouns; stems under four letters stay as written.
        ("dysplastic", "dysplasia"),
        ("hypoplastic", "hypoplasia"),
        ("fibrotic", "fibrosis"),
        ("atrophic", "atrophy"),
        ("patellar", "patella"),
        ("clavicular", "clavicula"),
        ("clavicles", "clavicula"),
        ("mandible", "mandibula"),
        ("bridged", "bridge"),
        ("bridging", "bridge"),
        ("otic", "otic"),
        ("spastic", "spastic"),
        // Learned adjectives fold to the plain words, after plural folding.
        ("cutaneous", "skin"),
        ("renal", "kidney"),
        ("teeth", "tooth"),
        ("multiple", "numerous"),
        ("auditory", "hearing"),
        ("manifestations", "abnormality"),
    ];
    for (word, key) in cases {
        assert_eq!(medlink::ner::dictionary::word_key(word), key, "{word}");
    }
}

#[test]
fn content_words_match_in_any_order_within_a_phrase() {
    let matcher = DictionaryMatcher::new(&dictionary(), &MatcherOptions::default()).unwrap();
    // "Hypopigmentation of skin" and "Branchial fistula", words reordered; "of" is a connector.
    t!(
        matcher,
        "skin hypopigmentation, fistulae of branchial type",
        [
            (0, 21, "skin hypopigmentation"),
            (23, 44, "fistulae of branchial")
        ]
    );
    // Not across a phrase break, and not when the words are matched as written.
    t!(matcher, "skin. Hypopigmentation", []);
    t!(matcher, "big head", [(0, 8, "big head")]);
    let ordered = DictionaryMatcher::new(
        &dictionary(),
        &MatcherOptions {
            any_order: false,
            ..MatcherOptions::default()
        },
    )
    .unwrap();
    t!(ordered, "skin hypopigmentation", []);
}

#[test]
fn nested_names_are_reported_on_request() {
    let nested = DictionaryMatcher::new(
        &dictionary(),
        &MatcherOptions {
            nested: true,
            ..MatcherOptions::default()
        },
    )
    .unwrap();
    // "big head" holds "head" once its first word is dropped.
    t!(nested, "a big head", [(2, 10, "big head"), (6, 10, "head")]);
    t!(nested, "head", [(0, 4, "head")]);
}

#[test]
fn acronyms_match_capitals_only_and_stop_words_never_alone() {
    // Two-letter acronyms are off by default ...
    let matcher = DictionaryMatcher::new(&dictionary(), &MatcherOptions::default()).unwrap();
    t!(matcher, "History of MI; mi is not.", []);
    // ... and match capitals only when allowed.
    let matcher = DictionaryMatcher::new(
        &dictionary(),
        &MatcherOptions {
            acronym_min_chars: 2,
            ..MatcherOptions::default()
        },
    )
    .unwrap();
    t!(matcher, "History of MI; mi is not.", [(11, 13, "MI")]);
    t!(matcher, "all patients had ALL", [(17, 20, "ALL")]);
    t!(matcher, "AIDS is not what aids do", [(0, 4, "AIDS")]);
    // A name written both ways in the dictionary is no acronym: any case matches.
    t!(matcher, "copd and COPD", [(0, 4, "copd"), (9, 13, "COPD")]);
    // "Large" is a stop word: never matched alone, but inside a longer name it is fine.
    t!(matcher, "large head, Large", [(0, 10, "large head")]);
    // A stop word's plural is a stop word: the name "Syndromes" is never matched alone.
    t!(matcher, "syndrome, Syndromes", []);
}

#[test]
fn short_names_and_type_filters() {
    let dict = dictionary();
    let matcher = DictionaryMatcher::new(&dict, &MatcherOptions::default()).unwrap();
    // "Ear" has 3 characters: kept at the default minimum of 3.
    t!(
        matcher,
        "Frequent ear pain",
        [(0, 8, "Frequent"), (9, 12, "ear")]
    );
    let strict = DictionaryMatcher::new(
        &dict,
        &MatcherOptions {
            min_chars: 4,
            types: vec!["phenotypic abnormality".into()],
            ..MatcherOptions::default()
        },
    )
    .unwrap();
    t!(strict, "Frequent ear pain, pinna", [(19, 24, "pinna")]);
    let err = DictionaryMatcher::new(
        &dict,
        &MatcherOptions {
            sources: vec!["NOPE".into()],
            ..MatcherOptions::default()
        },
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("no source `NOPE`"), "{err}");
}

#[test]
fn labels_name_the_entity_type_by_source() {
    let dict = dictionary();
    let source = dict.sources()[0].name.clone();
    let matcher = DictionaryMatcher::new(
        &dict,
        &MatcherOptions {
            source_labels: [(source.to_lowercase(), "Phenotype".to_string())].into(),
            ..MatcherOptions::default()
        },
    )
    .unwrap();
    let found = matcher.find("seizures");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].mention.entity_type, "Phenotype");
    assert_eq!(found[0].mention.score, 1.0);
    assert_eq!(dict.concept(found[0].concepts[0]).id, "T:2");
    // Names that fold to the same words are one pattern carrying every concept.
    let found = matcher.find("two fits");
    let ids: Vec<&str> = found[0]
        .concepts
        .iter()
        .map(|&c| dict.concept_id(c))
        .collect();
    assert_eq!(ids, ["T:19", "T:20"]);
}

#[test]
fn a_ten_megabyte_document_is_matched_whole() {
    let matcher = DictionaryMatcher::new(&dictionary(), &MatcherOptions::default()).unwrap();
    let sentence = "Ünïcode note: big head, then seizures and ALL. ";
    let repeats = 10_000_000 / sentence.len() + 1;
    let text = sentence.repeat(repeats);
    assert!(text.len() > 10_000_000);
    let found = matcher.find(&text);
    assert_eq!(found.len(), 3 * repeats);
    let per = sentence.chars().count();
    let last = &found[found.len() - 1].mention;
    assert_eq!(
        (last.start, last.end),
        ((repeats - 1) * per + 42, (repeats - 1) * per + 45)
    );
    assert_eq!(last.text, "ALL");
}

/// Leftmost-longest over whole normalised words, the slow obvious way.
fn oracle(dict: &Dictionary, text: &str) -> Vec<String> {
    let forms: std::collections::HashSet<String> = dict
        .names()
        .iter()
        .map(|n| n.normalized.to_string())
        .collect();
    let words: Vec<String> = normalize(text).split(' ').map(str::to_string).collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let mut best = None;
        for j in i + 1..=words.len() {
            let candidate = words[i..j].join(" ");
            if forms.contains(&candidate) {
                best = Some((j, candidate));
            }
        }
        match best {
            Some((j, form)) => {
                out.push(form);
                i = j;
            }
            None => i += 1,
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// With the guards and folding off (no stop words, no minimum, no plural keys, no skipped
    /// words, no acronym names in the pieces), the
    /// matcher finds exactly the oracle's forms, and every span slices back to its text.
    #[test]
    fn matches_equal_the_word_oracle(pieces in prop::collection::vec(
        prop::sample::select(vec![
            "big", "head", "big head", "seizures", "Epileptic", "seizure", "heart", "attack",
            "ahead", ",", "–", "Crohn's", "disease", "é", "large", "Large head", "  ", "x",
        ]),
        0..24,
    )) {
        let dict = dictionary();
        let matcher = DictionaryMatcher::new(&dict, &MatcherOptions {
            min_chars: 0,
            stop_words: Vec::new(),
            fold_word_forms: false,
            ignored_words: Vec::new(),
            any_order: false,
            ..MatcherOptions::default()
        }).unwrap();
        let text = pieces.join(" ");
        let found = matcher.find(&text);
        for m in &found {
            prop_assert_eq!(char_slice(&text, m.mention.start, m.mention.end), m.mention.text.as_str());
        }
        let forms: Vec<String> = found.iter().map(|m| normalize(&m.mention.text)).collect();
        prop_assert_eq!(forms, oracle(&dict, &text));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// On any text, every normalised byte points at a real character, in order.
    #[test]
    fn normalised_offsets_stay_on_characters(text in "\\PC{0,40}") {
        let n = medlink::text::normalize_with_offsets(&text);
        prop_assert_eq!(&n.text, &normalize(&text));
        prop_assert_eq!(n.origin.len(), n.text.len());
        let chars = text.chars().count() as u32;
        prop_assert!(n.origin.iter().all(|&o| o < chars));
        prop_assert!(n.origin.windows(2).all(|w| w[0] <= w[1]));
    }
}
