//! Tests for Schwartz & Hearst abbreviation detection: the paper's patterns and real PubMed
//! sentences as a table, negative cases, character offsets, arbitrary Unicode, and the real
//! NCBI-disease test corpus.

use medlink::eval::abbrev::{
    abbreviation_map, expand_in_document, expand_mention, expansion_map, find_abbreviations,
    other_number,
};
use medlink::eval::pubtator;
use proptest::prelude::*;
use std::collections::BTreeMap;

use crate::common::shared_data;

/// The (short, long) pairs found in `text`.
fn pairs(text: &str) -> Vec<(String, String)> {
    find_abbreviations(text)
        .into_iter()
        .map(|a| (a.short, a.long))
        .collect()
}

/// `t!(name, text, [(short, long), ...])`: `text` defines exactly these pairs, in order.
macro_rules! t {
    ($name:ident, $text:expr, [$(($short:expr, $long:expr)),* $(,)?]) => {
        #[test]
        fn $name() {
            let expected: Vec<(String, String)> =
                vec![$(($short.to_string(), $long.to_string())),*];
            assert_eq!(pairs($text), expected, "in {:?}", $text);
        }
    };
}

// Long form (short form).
t!(
    hnpcc,
    "We describe a family with hereditary nonpolyposis colorectal cancer (HNPCC).",
    [("HNPCC", "hereditary nonpolyposis colorectal cancer")]
);
t!(
    hyphenated_long_form,
    "We describe a French Canadian hereditary non-polyposis colorectal cancer (HNPCC) kindred.",
    [("HNPCC", "hereditary non-polyposis colorectal cancer")]
);
t!(
    wilson_disease,
    "The major cause is a dysfunctional ATP7B gene, causing Wilson disease (WD).",
    [("WD", "Wilson disease")]
);
t!(
    apc_gene,
    "Mutations of the adenomatous polyposis coli (APC) gene cause polyposis.",
    [("APC", "adenomatous polyposis coli")]
);
t!(
    paper_heat_shock_factor,
    "Heat shock transcription factor (HSF) binds DNA.",
    [("HSF", "Heat shock transcription factor")]
);
t!(
    paper_cns,
    "Lesions of the central nervous system (CNS) were seen.",
    [("CNS", "central nervous system")]
);
t!(
    letters_inside_words,
    "the tumour necrosis factor alpha (TNF-alpha) level",
    [("TNF-alpha", "tumour necrosis factor alpha")]
);
t!(
    two_definitions_in_one_sentence,
    "copper toxicosis (CT) and Wilson disease (WD) differ.",
    [("CT", "copper toxicosis"), ("WD", "Wilson disease")]
);
t!(
    content_is_cut_at_a_semicolon,
    "Wilson disease (WD; MIM 277900) is recessive.",
    [("WD", "Wilson disease")]
);
t!(
    first_letter_must_start_a_word,
    // "PKU" may not start inside "phenylketonuria": its P must begin a word.
    "Phenylketonuria (PKU) is treatable.",
    [("PKU", "Phenylketonuria")]
);
// Short form (long form).
t!(
    short_form_first,
    "Levels of TGF-beta (transforming growth factor beta) rose.",
    [("TGF-beta", "transforming growth factor beta")]
);
t!(
    short_form_first_cut_at_comma,
    "In WD (Wilson disease, a copper disorder) copper accumulates.",
    [("WD", "Wilson disease")]
);
// A failed outer parenthetical lets an inner one through, confined to the outer parenthesis.
t!(
    nested_parentheses,
    "iron overload (seen in hereditary haemochromatosis (HH)) is common",
    // The paper's shortest-match rule alone stops at "haemochromatosis", which holds a second
    // "h"; the words' initials spell "HH" one word earlier.
    [("HH", "hereditary haemochromatosis")]
);
// Initials first (NCBI-disease test, PMID 9585611): letters alone take the "a" inside
// "adenomatous" for the second A.
t!(
    initials_spell_the_short_form,
    "implicated in attenuated adenomatous polyposis coli (AAPC), a variant",
    [("AAPC", "attenuated adenomatous polyposis coli")]
);
t!(
    initials_with_a_digit,
    "patients with type 2 diabetes (T2D) were enrolled",
    [("T2D", "type 2 diabetes")]
);
t!(
    initials_of_a_plural_short_form,
    "non-steroidal anti-inflammatory drugs (NSAIDs) were given",
    [("NSAIDs", "non-steroidal anti-inflammatory drugs")]
);
t!(
    initials_inside_the_parenthesis,
    "In WD (Wilson disease) copper accumulates.",
    [("WD", "Wilson disease")]
);
// Initials that do not spell it (two words, three letters) leave the match to letters.
t!(
    letters_when_initials_do_not_spell_it,
    "protein levels in the cerebrospinal fluid (CSF) rose",
    [("CSF", "cerebrospinal fluid")]
);
// A long form holding the short form without its plural marker defines nothing.
t!(
    plural_short_form_inside_its_long_form,
    "We sequenced clinical HCMV strains (HCMVs).",
    []
);
t!(
    initials_across_a_hyphen,
    "a French Canadian hereditary non-polyposis colorectal cancer (HNPCC) kindred",
    [("HNPCC", "hereditary non-polyposis colorectal cancer")]
);

// Negative cases: statistics, figure references, citations, numbers and single letters.
t!(
    p_value,
    "Levels were significantly higher (p < 0.05) in patients.",
    []
);
t!(sample_size, "Patients (n = 12) were studied.", []);
t!(
    sample_size_lowercase,
    "the control group (n = 12) was matched",
    []
);
t!(
    figure_reference,
    "as shown in the liver sections (Fig. 1) of affected dogs",
    []
);
t!(
    citation,
    "as reported in a recent study (Smith et al., 1999) of families",
    []
);
t!(year, "a cohort followed since (1998) in Utah", []);
t!(single_letter, "the protein kinase (A) subunit", []);
t!(
    letters_not_in_long_form,
    "the patient received treatment (XYZ) daily",
    []
);
t!(
    short_form_repeated_in_long_form,
    "the APC gene product (APC) was studied",
    []
);
t!(
    no_space_before_parenthesis,
    "human chromosome region 2p13(p16) was mapped",
    []
);
t!(unbalanced, "Wilson disease (WD was described", []);
t!(
    short_form_too_long,
    "a very long named thing here (ABCDEFGHIJK) ok",
    []
);
t!(
    clause_break_bounds_the_long_form,
    // Without the comma break the long form would be "Dogs, hepatitis".
    "In Dogs, hepatitis (DH) is rare.",
    []
);
t!(
    letters_out_of_order,
    // A known limit of the paper: short forms that reorder the words are not found.
    "Myotonic dystrophy (DM) is the most common muscular dystrophy.",
    []
);
t!(
    too_many_words,
    // "AD" allows min(2 + 5, 2 * 2) = 4 words; the shortest match has seven.
    "a disease of the brain named after Alois (AD) was seen",
    []
);

#[test]
fn spans_are_char_offsets() {
    let text = "αβ: Wilson disease (WD) and Ärztliche Behandlung (ÄB).";
    let found = find_abbreviations(text);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0].long_span, (4, 18));
    assert_eq!(found[0].short_span, (20, 22));
    assert_eq!(
        (found[1].short.as_str(), found[1].long.as_str()),
        ("ÄB", "Ärztliche Behandlung")
    );
    let chars: Vec<char> = text.chars().collect();
    for a in &found {
        let long: String = chars[a.long_span.0..a.long_span.1].iter().collect();
        let short: String = chars[a.short_span.0..a.short_span.1].iter().collect();
        assert_eq!((short, long), (a.short.clone(), a.long.clone()));
    }
}

#[test]
fn expansion_is_exact_and_case_sensitive() {
    let text = "Wilson disease (WD) is rare. WD patients accumulate copper.";
    assert_eq!(
        expand_in_document(text, "WD").as_deref(),
        Some("Wilson disease")
    );
    assert_eq!(expand_in_document(text, "wd"), None);
    assert_eq!(expand_in_document(text, "W"), None);
    assert_eq!(expand_in_document(text, "Wilson disease"), None);
    assert_eq!(expand_in_document("", "WD"), None);
}

// A plural short form whose long form holds no `s` to match (BC5CDR dev, PMID 8988571).
t!(
    plural_marker_is_not_matched,
    "an outbreak of deaths from cocaine-induced excited delirium (EDDs) in Dade County",
    [("EDDs", "excited delirium")]
);
// The plural marker matched where it can be changes nothing.
t!(
    plural_long_form,
    "NSAIDs induce ventricular septal defects (VSDs) in rats",
    [("VSDs", "ventricular septal defects")]
);

#[test]
fn short_forms_are_looked_up_in_both_numbers() {
    assert_eq!(other_number("VSDs").as_deref(), Some("VSD"));
    assert_eq!(other_number("VSD").as_deref(), Some("VSDs"));
    assert_eq!(other_number("5-HT").as_deref(), Some("5-HTs"));
    assert_eq!(other_number("5-HTs").as_deref(), Some("5-HT"));
    assert_eq!(other_number(""), None);
    // No number to change: a final lowercase letter that is not a plural marker, or too short.
    assert_eq!(other_number("HbA1c"), None);
    assert_eq!(other_number("Ms"), None);
    assert_eq!(other_number("A"), None);

    // BC5CDR dev, PMID 12852481: defined plural, used singular.
    let text = "NSAIDs induce ventricular septal defects (VSDs) in rats, and VSD was noted.";
    let map = expansion_map(text);
    assert_eq!(map["VSDs"], "ventricular septal defects");
    assert_eq!(map["VSD"], "ventricular septal defects");
    // A form defined in its own right keeps its own definition.
    let text = "multiple sclerosis (MS) and mass spectra (MSs)";
    let map = expansion_map(text);
    assert_eq!(map["MS"], "multiple sclerosis");
    assert_eq!(map["MSs"], "mass spectra");
}

#[test]
fn short_forms_inside_a_mention_are_expanded() {
    let text = "discontinued due to GI adverse experiences (AEs). Wilson disease (WD) is rare. \
                Hyperparathyroidism-jaw tumor syndrome (HPT-JT) is rarer.";
    let map = expansion_map(text);
    let cases = [
        ("AEs", Some("adverse experiences")),
        (" WD ", Some("Wilson disease")),
        ("GI AEs", Some("GI adverse experiences")),
        (
            "familial WD/AEs",
            Some("familial Wilson disease/adverse experiences"),
        ),
        // A comma after a short form does not hide it.
        ("WD, AEs", Some("Wilson disease, adverse experiences")),
        // The long form's last word, repeated after the short form, is said once.
        (
            "HPT-JT syndrome",
            Some("Hyperparathyroidism-jaw tumor syndrome"),
        ),
        ("WD diseases", Some("Wilson diseases")),
        // Nothing to expand: no short form among the words, one only inside a word, or
        // nothing at all.
        ("GI toxicity", None),
        ("WDX disease", None),
        ("", None),
        ("  ", None),
    ];
    for (mention, expected) in cases {
        assert_eq!(
            expand_mention(&map, mention).as_deref(),
            expected,
            "{mention:?}"
        );
    }
    assert_eq!(expand_mention(&BTreeMap::new(), "WD"), None);
}

#[test]
fn first_definition_wins() {
    let text = "copper toxicosis (CT) in dogs, computed tomogram (CT) in people";
    assert_eq!(find_abbreviations(text).len(), 2);
    assert_eq!(
        expand_in_document(text, "CT").as_deref(),
        Some("copper toxicosis")
    );
    assert_eq!(abbreviation_map(text)["CT"], "copper toxicosis");
}

/// Real definitions from the NCBI-disease test set, and the number found over all 100
/// abstracts (measured: see the assertion).
#[test]
fn ncbi_disease_test_set() {
    let corpus = pubtator::load(&shared_data("ncbi_disease/NCBItestset_corpus.txt")).unwrap();
    assert_eq!(corpus.documents.len(), 100);
    let mut total = 0;
    let mut by_doc = std::collections::HashMap::new();
    for doc in &corpus.documents {
        let found = find_abbreviations(&doc.text);
        let chars: Vec<char> = doc.text.chars().collect();
        for a in &found {
            let short: String = chars[a.short_span.0..a.short_span.1].iter().collect();
            let long: String = chars[a.long_span.0..a.long_span.1].iter().collect();
            assert_eq!((&short, &long), (&a.short, &a.long), "{}", doc.id);
        }
        total += found.len();
        by_doc.insert(doc.id.as_str(), doc.text.as_str());
    }
    let expect = |pmid: &str, short: &str, long: &str| {
        let text = by_doc[pmid];
        assert_eq!(
            expand_in_document(text, short).as_deref(),
            Some(long),
            "{pmid}: {:?}",
            pairs(text)
        );
    };
    expect("9949209", "WD", "Wilson disease");
    expect("9949209", "CT", "copper toxicosis");
    expect("9949209", "FISH", "fluorescence in situ hybridization");
    expect("9950360", "FAP", "familial adenomatous polyposis");
    expect("9950360", "APC", "adenomatous polyposis coli");
    expect(
        "9831355",
        "HNPCC",
        "hereditary non-polyposis colorectal cancer",
    );
    expect("9800909", "DMD", "Duchenne muscular dystrophy");
    // Measured: 135 definitions (a short form defined twice counts twice).
    assert!(total >= 120, "found {total} definitions");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary Unicode: no panic, spans in bounds, span text equals the fields, and every
    /// short form found expands.
    #[test]
    fn arbitrary_text_gives_consistent_spans(text in "\\PC{0,120}") {
        check_spans(&text)?;
    }

    /// Text made of words, capitals and parentheses, so that definitions are actually found.
    #[test]
    fn abbreviation_like_text_gives_consistent_spans(
        text in "([a-zA-Zéß-]{1,8}[ ,.;]{1,2}|\\(|\\) |[A-ZÄ]{2,4}|İ){0,30}"
    ) {
        check_spans(&text)?;
    }
}

fn check_spans(text: &str) -> Result<(), TestCaseError> {
    let chars: Vec<char> = text.chars().collect();
    for a in find_abbreviations(text) {
        prop_assert!(a.short_span.0 < a.short_span.1 && a.short_span.1 <= chars.len());
        prop_assert!(a.long_span.0 < a.long_span.1 && a.long_span.1 <= chars.len());
        let short: String = chars[a.short_span.0..a.short_span.1].iter().collect();
        let long: String = chars[a.long_span.0..a.long_span.1].iter().collect();
        prop_assert_eq!(&short, &a.short);
        prop_assert_eq!(&long, &a.long);
        prop_assert!(expand_in_document(text, &a.short).is_some());
    }
    Ok(())
}
