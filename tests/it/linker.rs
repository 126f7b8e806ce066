//! Linker tests on the real HPO index: the README's example, fusion rule, filters, modes and
//! bad input.

use medlink::linker::{LinkOptions, Linker, Mode};
use proptest::prelude::*;

use crate::common::{encoder, hpo_index};

fn linker() -> Linker<'static> {
    Linker::new(hpo_index(), encoder()).unwrap()
}

fn ids(candidates: &[medlink::linker::Candidate]) -> Vec<&str> {
    candidates.iter().map(|c| c.id.as_str()).collect()
}

#[test]
fn big_head_is_macrocephaly() {
    let found = linker().link("big head", &LinkOptions::default()).unwrap();
    let top3 = &ids(&found)[..3];
    assert!(top3.contains(&"HP:0000256"), "{top3:?}");
}

#[test]
fn concepts_are_deduplicated_and_report_their_best_synonym() {
    let options = LinkOptions {
        k: 25,
        ..LinkOptions::default()
    };
    let found = linker().link("Big skull", &options).unwrap();
    let mut seen = ids(&found);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), found.len(), "duplicate concepts");
    let best = &found[0];
    assert_eq!(best.id, "HP:0000256");
    assert_eq!(best.matched_name, "Big skull");
    assert!(best.exact);
    for pair in found.windows(2) {
        assert!(pair[0].score >= pair[1].score);
    }
}

#[test]
fn fused_score_is_the_documented_rule() {
    let options = LinkOptions {
        k: 20,
        alpha: Some(0.6),
        ..LinkOptions::default()
    };
    for query in ["seizures", "enlarged liver", "short statue"] {
        for c in linker().link(query, &options).unwrap() {
            let (d, l) = (c.dense.unwrap(), c.lexical.unwrap());
            assert!([0.0, 0.5, 1.0].contains(&c.bonus), "{c:?}");
            assert_eq!(c.exact, c.bonus == 1.0, "{c:?}");
            let expected = 0.6 * d + 0.4 * l + c.bonus;
            assert!((c.score - expected).abs() < 1e-5, "{query}: {c:?}");
            assert!((0.0..=1.0001).contains(&l));
        }
    }
}

#[test]
fn typos_and_plurals_still_link() {
    let linker = linker();
    let cases = [
        ("macrocefaly", "HP:0000256"),
        ("seizures", "HP:0001250"),
        ("Hepatomegally", "HP:0002240"),
    ];
    for (query, id) in cases {
        let found = linker.link(query, &LinkOptions::default()).unwrap();
        assert!(
            ids(&found)[..5].contains(&id),
            "{query}: {:?}",
            &ids(&found)[..5]
        );
    }
}

#[test]
fn modes_use_one_signal() {
    let linker = linker();
    let dense = linker
        .link(
            "big head",
            &LinkOptions {
                mode: Mode::Dense,
                ..LinkOptions::default()
            },
        )
        .unwrap();
    assert!(dense
        .iter()
        .all(|c| c.lexical.is_none() && c.dense.is_some()));
    let lexical = linker
        .link(
            "big head",
            &LinkOptions {
                mode: Mode::Lexical,
                ..LinkOptions::default()
            },
        )
        .unwrap();
    assert!(lexical
        .iter()
        .all(|c| c.dense.is_none() && c.lexical.is_some()));
    assert_eq!(lexical[0].id, "HP:0000256");
}

#[test]
fn type_and_source_filters() {
    let linker = linker();
    let options = LinkOptions {
        k: 30,
        types: vec!["Mode of inheritance".into()],
        ..LinkOptions::default()
    };
    let found = linker.link("dominant", &options).unwrap();
    assert!(!found.is_empty());
    assert!(found
        .iter()
        .all(|c| c.types.iter().any(|t| t == "Mode of inheritance")));
    let options = LinkOptions {
        sources: vec!["MEDIC".into()],
        ..LinkOptions::default()
    };
    let err = linker.link("big head", &options).unwrap_err();
    assert!(
        err.to_string()
            .contains("unknown source `MEDIC`; this index has: HPO"),
        "{err}"
    );
    let options = LinkOptions {
        types: vec!["Phenotypic abnormalty".into()],
        ..LinkOptions::default()
    };
    let err = linker.link("big head", &options).unwrap_err();
    assert!(err.to_string().contains("unknown type"), "{err}");
    let options = LinkOptions {
        sources: vec!["hpo".into()],
        ..LinkOptions::default()
    };
    assert!(!linker.link("big head", &options).unwrap().is_empty());
}

#[test]
fn batch_equals_one_by_one() {
    let linker = linker();
    let queries = ["big head", "seizures", "hearing loss", "MI", "long fingers"];
    let options = LinkOptions::default();
    let batch = linker.link_batch(&queries, &options).unwrap();
    for (q, b) in queries.iter().zip(&batch) {
        let single = linker.link(q, &options).unwrap();
        assert_eq!(ids(b), ids(&single), "{q}");
    }
}

#[test]
fn bad_requests_are_clear_errors() {
    let linker = linker();
    let cases: Vec<(String, LinkOptions, &str)> = vec![
        (
            "big head".into(),
            LinkOptions {
                k: 0,
                ..LinkOptions::default()
            },
            "k must be between 1 and 100",
        ),
        (
            "big head".into(),
            LinkOptions {
                k: 101,
                ..LinkOptions::default()
            },
            "k must be between 1 and 100",
        ),
        ("".into(), LinkOptions::default(), "empty"),
        (
            "  ?! ".into(),
            LinkOptions::default(),
            "no letters or digits",
        ),
        (
            "x".repeat(10 << 20),
            LinkOptions::default(),
            "the limit is 1000",
        ),
        (
            "ok".into(),
            LinkOptions {
                alpha: Some(1.5),
                ..LinkOptions::default()
            },
            "alpha",
        ),
    ];
    for (query, options, expected) in cases {
        let err = linker.link(&query, &options).unwrap_err();
        assert!(err.to_string().contains(expected), "{err}");
        assert_eq!(err.kind(), medlink::ErrorKind::User);
    }
    let found = linker
        .link(
            "seizure",
            &LinkOptions {
                k: 100,
                ..LinkOptions::default()
            },
        )
        .unwrap();
    assert_eq!(found.len(), 100);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Whatever the text, linking returns at most k distinct concepts sorted by score, or a
    /// user error — never a panic.
    #[test]
    fn arbitrary_mentions_give_sorted_distinct_concepts(text in "\\PC{0,40}", k in 1usize..=100) {
        let options = LinkOptions { k, ..LinkOptions::default() };
        match linker().link(&text, &options) {
            Ok(found) => {
                prop_assert!(found.len() <= k);
                let mut seen = ids(&found);
                seen.sort();
                seen.dedup();
                prop_assert_eq!(seen.len(), found.len());
                for pair in found.windows(2) {
                    prop_assert!(pair[0].score >= pair[1].score);
                }
            }
            Err(e) => prop_assert_eq!(e.kind(), medlink::ErrorKind::User),
        }
    }
}

/// A linker opened without its model answers lexical queries exactly as the full linker does
/// and refuses the modes that need the model, naming why.
#[test]
fn a_lexical_only_linker_needs_no_model_and_refuses_dense_modes() {
    let lexical = LinkOptions {
        mode: Mode::Lexical,
        k: 5,
        ..LinkOptions::default()
    };
    let bare = Linker::lexical_only(hpo_index());
    for query in ["seizures", "big skull", "macrocefaly"] {
        assert_eq!(
            bare.link(query, &lexical).unwrap(),
            linker().link(query, &lexical).unwrap(),
            "{query}"
        );
    }
    for mode in [Mode::Hybrid, Mode::Dense] {
        let options = LinkOptions {
            mode,
            ..LinkOptions::default()
        };
        let err = bare.link("seizures", &options).unwrap_err().to_string();
        assert!(err.contains("needs the model"), "{err}");
    }
}

/// Ranking a batch's mentions on several threads changes nothing but the time it takes.
#[test]
fn threaded_ranking_gives_the_same_candidates() {
    let mentions = [
        "seizures",
        "big head",
        "enlarged liver",
        "short statue",
        "macrocefaly",
        "kidney cysts",
        "hearing loss",
        "cleft palate",
    ];
    let options = LinkOptions {
        k: 10,
        ..LinkOptions::default()
    };
    let one = linker().link_batch(&mentions, &options).unwrap();
    let two = linker()
        .with_threads(2)
        .link_batch(&mentions, &options)
        .unwrap();
    assert_eq!(one, two);
    let names_one = linker().link_names_batch(&mentions, &options).unwrap();
    let names_four = linker()
        .with_threads(4)
        .link_names_batch(&mentions, &options)
        .unwrap();
    assert_eq!(names_one, names_four);
}

#[test]
fn the_mention_cache_gives_the_same_candidates_and_keys_on_the_options() {
    let index = hpo_index();
    let plain = Linker::new(index, encoder()).unwrap();
    let cached = Linker::new(index, encoder()).unwrap().with_cache(100);
    let mentions = ["big head", "seizures", "big head", "short stature"];
    let options = LinkOptions::default();
    let want = plain.link_batch(&mentions, &options).unwrap();
    // First pass: every distinct mention misses once ("big head" twice in one batch both miss).
    assert_eq!(cached.link_batch(&mentions, &options).unwrap(), want);
    assert_eq!(cached.cache_stats(), Some((0, 4)));
    assert_eq!(cached.link_batch(&mentions, &options).unwrap(), want);
    assert_eq!(cached.cache_stats(), Some((4, 4)));
    // Other options are another key: no stale answer for a different k.
    let k3 = LinkOptions {
        k: 3,
        ..LinkOptions::default()
    };
    let got = cached.link_batch(&["big head"], &k3).unwrap();
    assert_eq!(got[0].len(), 3);
    assert_eq!(cached.cache_stats(), Some((4, 5)));
    // Bad options are refused even when every mention would hit.
    let bad = LinkOptions {
        k: 0,
        ..LinkOptions::default()
    };
    assert!(cached.link_batch(&["big head"], &bad).is_err());
    assert_eq!(plain.cache_stats(), None);
}

/// The lists a re-ranker sees: the top k, then the extra concepts the top k lacks, each scored
/// as the linker scores any concept (never twice, never one the dictionary lacks).
#[test]
fn extra_concepts_join_the_list_after_the_top_k() {
    let index = hpo_index();
    let linker = Linker::new(index, encoder()).unwrap();
    let options = LinkOptions {
        k: 2,
        ..LinkOptions::default()
    };
    let plain = linker
        .link_batch(&["big head"], &options)
        .unwrap()
        .remove(0);
    assert_eq!(plain[0].id, "HP:0000256");
    let seizure = "HP:0001250".to_string();
    assert!(plain.iter().all(|c| c.id != seizure));
    let extra = vec![vec![seizure.as_str(), plain[0].id.as_str(), "HP:9999999"]];
    let got = linker
        .link_batch_with_extra(&["big head"], &extra, &options)
        .unwrap()
        .remove(0);
    let ids: Vec<&str> = got.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [plain[0].id.as_str(), plain[1].id.as_str(), "HP:0001250"]
    );
    let scored = linker
        .score_concepts("big head", &[seizure], &options)
        .unwrap();
    assert_eq!(got[2], scored[0]);
    assert!(linker
        .link_batch_with_extra(&["big head"], &[], &options)
        .is_err());
}

/// A British spelling finds the American name by its variant key, in every mode: HPO spells
/// "Hematuria" and "Hypokalemia" (with no British synonym, unlike "Oedema"), clinical notes
/// from the UK "haematuria" and "hypokalaemia".
#[test]
fn british_spellings_find_the_american_names() {
    for mode in [Mode::Hybrid, Mode::Dense, Mode::Lexical] {
        let options = LinkOptions {
            mode,
            k: 3,
            ..LinkOptions::default()
        };
        for (mention, id) in [("haematuria", "HP:0000790"), ("hypokalaemia", "HP:0002900")] {
            let got = linker().link(mention, &options).unwrap();
            assert_eq!(got[0].id, id, "{mention:?} in {mode:?}: {:?}", ids(&got));
            assert!(!got[0].exact, "{mention:?}");
            assert_eq!(got[0].bonus, 0.5, "{mention:?} in {mode:?}");
        }
    }
}
