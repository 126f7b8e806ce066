//! Tests for the BioSyn / SapBERT protocol: composite splitting and token-level abbreviation
//! expansion as tables, the OMIM gold filter, hand-computed name-level ranks and metrics, and
//! name-level linking on a tiny index (shared names, one concept at several ranks) and on the
//! real HPO index.

use std::collections::BTreeMap;

use medlink::eval::biosyn::{expand_tokens, gold_ids, prepare, split_composite};
use medlink::eval::metrics::{link_metrics, LinkOutcome, Predicted};
use medlink::index::dense::HnswParams;
use medlink::index::Index;
use medlink::linker::{LinkOptions, Linker, Mode};
use medlink::progress::NoProgress;

use crate::common::{default_model, encoder, hpo_index};

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// `split!(name, mention, gold count, Some([parts]) | None)`.
macro_rules! split {
    ($name:ident, $mention:expr, $n:expr, None) => {
        #[test]
        fn $name() {
            assert_eq!(split_composite($mention, $n), None, "{:?}", $mention);
        }
    };
    ($name:ident, $mention:expr, $n:expr, [$($part:expr),+ $(,)?]) => {
        #[test]
        fn $name() {
            assert_eq!(
                split_composite($mention, $n),
                Some(strings(&[$($part),+])),
                "{:?}",
                $mention
            );
        }
    };
}

// Coordinations, the common case (the first five are real NCBI-disease test mentions).
split!(
    coordination_two,
    "non-familial breast and ovarian cancers",
    2,
    ["non-familial breast cancers", "ovarian cancers"]
);
split!(
    coordination_multiword_items,
    "sporadic breast, brain, prostate and kidney cancer",
    4,
    [
        "sporadic breast cancer",
        "brain cancer",
        "prostate cancer",
        "kidney cancer"
    ]
);
split!(
    coordination_oxford_comma,
    "Saethre-Chotzen, Crouzon, and Pfeiffer syndromes",
    3,
    [
        "Saethre-Chotzen syndromes",
        "Crouzon syndromes",
        "Pfeiffer syndromes"
    ]
);
split!(
    coordination_with_the,
    "retinal and the pineal tumours",
    2,
    ["retinal tumours", "the pineal tumours"]
);
split!(
    coordination_or,
    "ovarian or other cancers",
    2,
    ["ovarian cancers", "other cancers"]
);
split!(
    coordination_and_or,
    "breast and/or ovarian cancer",
    2,
    ["breast cancer", "ovarian cancer"]
);
split!(
    coordination_chained_conjunctions,
    "breast and ovarian and colon cancer",
    3,
    ["breast cancer", "ovarian cancer", "colon cancer"]
);
// `P of [both] [the] A and B`.
split!(
    of_phrase,
    "deficiency of the C7 and C8",
    2,
    ["deficiency of C7", "deficiency of C8"]
);
split!(
    of_phrase_both_the,
    "cancers of both the breast and the ovary",
    2,
    ["cancers of breast", "cancers of ovary"]
);
// One slashed token: the words around it follow every part.
split!(
    slash_with_suffix,
    "sensory/motor neuropathy",
    2,
    ["sensory neuropathy", "motor neuropathy"]
);
split!(
    slash_inside,
    "hereditary breast/ovarian cancer syndrome",
    2,
    [
        "hereditary breast cancer syndrome",
        "hereditary ovarian cancer syndrome"
    ]
);
// As many tokens as gold ids.
split!(
    one_part_per_token,
    "hemophilia thrombophilia",
    2,
    ["hemophilia", "thrombophilia"]
);
// Linked whole: no rule applies, the count disagrees, or the mention is not composite.
split!(
    no_stem_after_last_item,
    "colorectal adenomas and carcinoma",
    2,
    None
);
split!(
    numbers_without_stem,
    "spinocerebellar ataxias 1 and 2",
    2,
    None
);
split!(
    count_disagrees_with_gold,
    "breast and ovarian cancer",
    3,
    None
);
split!(not_composite, "breast and ovarian cancer", 1, None);
split!(
    punctuation_in_the_last_item,
    "colorectal, or other, cancers",
    2,
    None
);

fn abbreviations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(s, l)| (s.to_string(), l.to_string()))
        .collect()
}

#[test]
fn abbreviations_expand_token_by_token() {
    let map = abbreviations(&[("WD", "Wilson disease"), ("HD", "Huntington disease")]);
    let cases = [
        ("WD", "Wilson disease"),
        ("WD patients", "Wilson disease patients"),
        ("WD/HD", "Wilson disease/Huntington disease"),
        ("WD, HD", "Wilson disease, Huntington disease"),
        ("  WD   carriers ", "Wilson disease carriers"),
        // Case-sensitive, whole tokens only.
        ("wd", "wd"),
        ("WDs", "WDs"),
        ("(WD)", "(WD)"),
    ];
    for (mention, expected) in cases {
        assert_eq!(expand_tokens(mention, &map), expected, "{mention:?}");
    }
    assert_eq!(expand_tokens("WD", &BTreeMap::new()), "WD");
}

/// Definitions that quote each other stop after the bounded number of passes (4).
#[test]
fn abbreviation_loops_are_bounded() {
    let map = abbreviations(&[("A1", "x A2 y"), ("A2", "z A1")]);
    // Pass 1: x A2 y; 2: x z A1 y; 3: x z x A2 y y; 4: x z x z A1 y y.
    assert_eq!(expand_tokens("A1", &map), "x z x z A1 y y");
}

#[test]
fn omim_ids_mixed_with_others_are_dropped() {
    assert_eq!(
        gold_ids(&strings(&["OMIM:201400", "MESH:C535668"])),
        strings(&["MESH:C535668"])
    );
    let all_omim = strings(&["OMIM:164400", "OMIM:183090"]);
    assert_eq!(gold_ids(&all_omim), all_omim);
    let all_mesh = strings(&["MESH:D001943", "MESH:D010051"]);
    assert_eq!(gold_ids(&all_mesh), all_mesh);
}

#[test]
fn prepare_expands_then_splits_then_normalises() {
    let map = abbreviations(&[("HBOC", "hereditary breast and ovarian cancer")]);
    // Expansion first, so the long form is what gets split; then lowercase, no punctuation.
    let q = prepare("HBOC", 2, &map);
    assert_eq!(
        q.parts,
        strings(&["hereditary breast cancer", "ovarian cancer"])
    );
    assert!(q.expanded && q.split);
    let q = prepare("Crohn's Disease", 1, &map);
    assert_eq!(q.parts, strings(&["crohn disease"]));
    assert!(!q.expanded && !q.split);
    // A composite no rule splits is linked whole.
    let q = prepare("colorectal adenomas and carcinoma", 2, &map);
    assert_eq!(q.parts, strings(&["colorectal adenomas and carcinoma"]));
    assert!(!q.split);
}

fn names(parts: &[&[&[&str]]]) -> Predicted {
    Predicted::Names(
        parts
            .iter()
            .map(|part| part.iter().map(|ids| strings(ids)).collect())
            .collect(),
    )
}

fn outcome(gold: &[&str], predicted: Predicted) -> LinkOutcome {
    LinkOutcome {
        gold: strings(gold),
        predicted,
        entity_type: "Disease".into(),
        seen_mention: None,
        seen_concept: None,
        gold_in_dictionary: true,
    }
}

#[test]
fn name_level_ranks_count_names_not_concepts() {
    // Concept A fills ranks 1 and 2 through two names: B is third among names but second
    // among distinct concepts.
    let by_name = outcome(&["B"], names(&[&[&["A"], &["A"], &["B"]]]));
    assert_eq!(by_name.rank(), Some(3));
    let by_concept = outcome(&["B"], Predicted::Concepts(vec![strings(&["A", "A", "B"])]));
    assert_eq!(by_concept.rank(), Some(2));
    // A name shared by two concepts is one rank, and hits for either.
    assert_eq!(
        outcome(&["B"], names(&[&[&["A", "B"], &["C"]]])).rank(),
        Some(1)
    );
    assert_eq!(
        outcome(&["Z"], names(&[&[&["A", "B"], &["C"]]])).rank(),
        None
    );
    assert_eq!(outcome(&["A"], names(&[])).rank(), None, "nothing linked");
    assert_eq!(outcome(&[], names(&[&[&["A"]]])).rank(), None, "no gold");
}

#[test]
fn split_composite_hits_only_when_every_part_hits() {
    // Parts found at ranks 2 and 1: the mention's rank is 2.
    let o = outcome(&["B", "C"], names(&[&[&["X"], &["B"]], &[&["C"]]]));
    assert_eq!(o.rank(), Some(2));
    // One part never found: a miss at every k, however large.
    let miss = outcome(&["B", "C"], names(&[&[&["B"]], &[&["X"], &["Y"]]]));
    assert_eq!(miss.rank(), None);
    // As in BioSyn's check_label, a part hits on any gold id: parts are not aligned.
    let lenient = outcome(&["B", "C"], names(&[&[&["B"]], &[&["B"]]]));
    assert_eq!(lenient.rank(), Some(1));
    // A composite left whole hits when any gold id is found.
    let whole = outcome(&["B", "C"], names(&[&[&["X"], &["C"]]]));
    assert_eq!(whole.rank(), Some(2));

    let m = link_metrics(&[o, miss, lenient, whole], &[1, 2, 100]);
    assert_eq!((m.evaluated, m.split_mismatch), (4, 0));
    assert_eq!(m.acc[&1], 0.25);
    assert_eq!(m.acc[&2], 0.75);
    assert_eq!(m.acc[&100], 0.75, "k beyond the lists changes nothing");
    assert!((m.mrr - (0.5 + 0.0 + 1.0 + 0.5) / 4.0).abs() < 1e-12);
}

#[test]
fn predicted_serializes_with_its_protocol_shape() {
    let json = serde_json::to_value(names(&[&[&["A", "B"]]])).unwrap();
    assert_eq!(json, serde_json::json!({ "names": [[["A", "B"]]] }));
    let json = serde_json::to_value(Predicted::Concepts(vec![strings(&["A"])])).unwrap();
    assert_eq!(json, serde_json::json!({ "concepts": [["A"]] }));
}

/// Two concepts sharing the name "MI", built into a throwaway index.
fn tiny_index(dir: &std::path::Path) -> Index {
    let tsv = dir.join("mi.tsv");
    std::fs::write(
        &tsv,
        "X:1\tHeart attack\tMI|myocardial infarction\n\
         X:2\tMitral insufficiency\tMI|mitral regurgitation\n",
    )
    .unwrap();
    let dict = medlink::ontology::load_dictionary(
        &[format!("tsv:{}", tsv.display()).parse().unwrap()],
        &Default::default(),
    )
    .unwrap();
    let out = dir.join("index");
    Index::build(
        &dict,
        encoder(),
        &default_model(),
        &out,
        HnswParams::default(),
        &NoProgress,
    )
    .unwrap();
    Index::open(&out).unwrap()
}

#[test]
fn names_shared_by_concepts_are_one_entry_and_concepts_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let index = tiny_index(dir.path());
    let linker = Linker::new(&index, encoder()).unwrap();
    let lexical = LinkOptions {
        k: 5,
        mode: Mode::Lexical,
        ..LinkOptions::default()
    };
    // "MI" is one name of two concepts: one entry, exact (lexical 1 + bonus 1 = 2).
    let found = linker
        .link_names_batch(&["MI"], &lexical)
        .unwrap()
        .remove(0);
    assert_eq!(found[0].name, "mi");
    assert_eq!(found[0].ids, strings(&["X:1", "X:2"]));
    assert!(found[0].exact);
    assert!((found[0].score - 2.0).abs() < 1e-6, "{}", found[0].score);
    // The concept-level list has the two concepts, tied on the same exact name.
    let concepts = linker.link("MI", &lexical).unwrap();
    assert_eq!(concepts.len(), 2);
    assert_eq!(concepts[0].score, concepts[1].score);

    // With dense retrieval every row of this tiny index is a candidate: six rows, five
    // distinct normal forms, each concept in three of them.
    let hybrid = LinkOptions {
        k: 10,
        ..LinkOptions::default()
    };
    let all = linker
        .link_names_batch(&["heart attack"], &hybrid)
        .unwrap()
        .remove(0);
    assert_eq!(all.len(), 5, "{all:?}");
    assert_eq!(all[0].name, "heart attack");
    assert_eq!(all[0].ids, strings(&["X:1"]));
    for id in ["X:1", "X:2"] {
        let ranks = all.iter().filter(|n| n.ids.iter().any(|i| i == id)).count();
        assert_eq!(ranks, 3, "{id} in {all:?}");
    }
    for pair in all.windows(2) {
        assert!(pair[0].score >= pair[1].score, "{all:?}");
    }
    // k cuts names, not concepts.
    let two = LinkOptions { k: 2, ..hybrid };
    let cut = linker
        .link_names_batch(&["heart attack"], &two)
        .unwrap()
        .remove(0);
    assert_eq!(cut, all[..2].to_vec());
}

#[test]
fn name_level_scores_agree_with_concept_level_on_hpo() {
    let linker = Linker::new(hpo_index(), encoder()).unwrap();
    let options = LinkOptions {
        k: 10,
        ..LinkOptions::default()
    };
    let names = linker
        .link_names_batch(&["big head"], &options)
        .unwrap()
        .remove(0);
    assert_eq!(names.len(), 10);
    assert_eq!(names[0].name, "big head");
    assert!(names[0].ids.contains(&"HP:0000256".to_string()));
    let mut forms: Vec<&str> = names.iter().map(|n| n.name.as_str()).collect();
    forms.sort();
    forms.dedup();
    assert_eq!(forms.len(), 10, "one entry per normal form");
    // Macrocephaly has several head-size synonyms: it fills more than one rank.
    let repeats = names
        .iter()
        .filter(|n| n.ids.contains(&"HP:0000256".to_string()))
        .count();
    assert!(repeats >= 2, "{names:?}");
    // A concept's score is its best name's score, under either ranking.
    for c in linker.link("big head", &options).unwrap().iter().take(3) {
        let best = names
            .iter()
            .filter(|n| n.ids.contains(&c.id))
            .map(|n| n.score)
            .fold(f32::NEG_INFINITY, f32::max);
        assert!(
            (best - c.score).abs() < 1e-6,
            "{}: {best} vs {}",
            c.id,
            c.score
        );
    }
}
