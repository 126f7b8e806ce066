//! Tests for linking and NER metrics: hand-computed cases for ranks, composites in both modes,
//! ties at the cut, missing gold ids, short candidate lists, empty input, breakdowns, the JSON
//! shape, and strict versus lenient span matching.

use medlink::eval::metrics::{
    breakdown, link_metrics, ner_metrics, ranked_ids, LinkOutcome, Predicted, Span,
};

const KS: &[usize] = &[1, 5, 25];

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A non-composite, in-dictionary mention of type Disease.
fn outcome(gold: &[&str], predicted: &[&[&str]]) -> LinkOutcome {
    LinkOutcome {
        gold: ids(gold),
        predicted: Predicted::Concepts(predicted.iter().map(|p| ids(p)).collect()),
        entity_type: "Disease".into(),
        seen_mention: None,
        seen_concept: None,
        gold_in_dictionary: true,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[test]
fn rank_is_position_in_the_list() {
    let list: &[&str] = &["A", "B", "C", "D", "E", "F"];
    assert_eq!(outcome(&["A"], &[list]).rank(), Some(1));
    assert_eq!(outcome(&["F"], &[list]).rank(), Some(6));
    assert_eq!(outcome(&["Z"], &[list]).rank(), None);
    assert_eq!(outcome(&["A"], &[]).rank(), None, "nothing returned");
    assert_eq!(outcome(&[], &[list]).rank(), None, "no gold id");
}

#[test]
fn repeated_ids_count_once() {
    assert_eq!(
        outcome(&["C"], &[&["A", "A", "B", "A", "C"]]).rank(),
        Some(3)
    );
}

#[test]
fn hand_computed_accuracy_and_mrr() {
    let list: &[&str] = &["A", "B", "C", "D", "E", "F"];
    let outcomes = [
        outcome(&["A"], &[list]), // rank 1
        outcome(&["B"], &[list]), // rank 2
        outcome(&["F"], &[list]), // rank 6
        outcome(&["Z"], &[list]), // not found
    ];
    let m = link_metrics(&outcomes, KS);
    assert_eq!(
        (m.mentions, m.evaluated, m.missing_gold, m.no_gold),
        (4, 4, 0, 0)
    );
    assert!(close(m.acc[&1], 0.25));
    assert!(close(m.acc[&5], 0.5));
    assert!(close(m.acc[&25], 0.75));
    let mrr = (1.0 + 0.5 + 1.0 / 6.0 + 0.0) / 4.0;
    assert!(close(m.mrr, mrr), "{}", m.mrr);
    assert_eq!(m.acc, m.acc_all, "nothing missing from the dictionary");
}

/// Ties were broken by the linker: the list order decides, so a gold tied with the top
/// candidate but listed second misses at k = 1 and hits at k = 2.
#[test]
fn ties_at_the_cut_follow_list_order() {
    let o = outcome(&["B"], &[&["A", "B", "C"]]);
    let m = link_metrics(&[o], &[1, 2]);
    assert_eq!(m.acc[&1], 0.0);
    assert_eq!(m.acc[&2], 1.0);
    assert!(close(m.mrr, 0.5));
}

#[test]
fn k_larger_than_the_candidate_list() {
    let found = outcome(&["B"], &[&["A", "B"]]);
    let missed = outcome(&["Z"], &[&["A", "B"]]);
    let m = link_metrics(&[found, missed], &[1, 2, 100]);
    assert_eq!(m.acc[&1], 0.0);
    assert_eq!(m.acc[&2], 0.5);
    assert_eq!(
        m.acc[&100], 0.5,
        "a gold outside the list misses at every k"
    );
    assert!(close(m.mrr, 0.25));
}

#[test]
fn composite_linked_whole_needs_every_part_in_the_top_k() {
    // One list: D1 at 1, D2 at 4 -> rank 4.
    let o = outcome(&["D1", "D2"], &[&["D1", "X", "Y", "D2"]]);
    assert_eq!(o.rank(), Some(4));
    let m = link_metrics(&[o], &[1, 3, 4]);
    assert_eq!((m.acc[&1], m.acc[&3], m.acc[&4]), (0.0, 0.0, 1.0));
    assert!(close(m.mrr, 0.25));
    // One part missing: never a hit.
    assert_eq!(outcome(&["D1", "D2"], &[&["D1", "X"]]).rank(), None);
}

#[test]
fn composite_split_matches_parts_in_order() {
    // Part 1: D1 at 2; part 2: D2 at 1 -> rank 2.
    let o = outcome(&["D1", "D2"], &[&["X", "D1"], &["D2", "D1"]]);
    assert_eq!(o.rank(), Some(2));
    // Each gold id is looked up in its own part only: D2 is not in part 2 here, although
    // it is in part 1.
    assert_eq!(
        outcome(&["D1", "D2"], &[&["D1", "D2"], &["X"]]).rank(),
        None
    );
    let m = link_metrics(&[o], KS);
    assert_eq!(m.split_mismatch, 0);
    assert_eq!((m.acc[&1], m.acc[&5]), (0.0, 1.0));
    assert!(close(m.mrr, 0.5));
}

#[test]
fn split_with_the_wrong_number_of_parts_takes_the_best_part() {
    // Three parts for two gold ids: D1 best at 1 (part 3), D2 best at 2 (part 1) -> rank 2.
    let o = outcome(
        &["D1", "D2"],
        &[&["X", "D2"], &["Y", "Z", "D1"], &["D1", "D2", "Q"]],
    );
    assert_eq!(o.rank(), Some(2));
    let m = link_metrics(&[o], KS);
    assert_eq!(m.split_mismatch, 1);
}

#[test]
fn missing_and_absent_gold_ids_are_counted_apart() {
    let list: &[&str] = &["A", "B"];
    let mut not_in_dictionary = outcome(&["Q"], &[list]);
    not_in_dictionary.gold_in_dictionary = false;
    let outcomes = [
        outcome(&["A"], &[list]), // rank 1
        outcome(&["B"], &[list]), // rank 2
        not_in_dictionary,
        outcome(&[], &[list]), // -1 in the corpus
    ];
    let m = link_metrics(&outcomes, KS);
    assert_eq!(
        (m.mentions, m.evaluated, m.missing_gold, m.no_gold),
        (4, 2, 1, 1)
    );
    assert!(close(m.acc[&1], 0.5));
    assert!(close(m.acc[&5], 1.0));
    assert!(close(m.acc_all[&1], 1.0 / 3.0));
    assert!(close(m.acc_all[&5], 2.0 / 3.0));
    assert!(close(m.mrr, 0.75));
    assert!(close(m.mrr_all, 0.5));
}

#[test]
fn empty_input_reports_zeros_not_nan() {
    let m = link_metrics(&[], KS);
    assert_eq!((m.mentions, m.evaluated), (0, 0));
    assert_eq!(m.acc.keys().copied().collect::<Vec<_>>(), vec![1, 5, 25]);
    assert!(m.acc.values().chain(m.acc_all.values()).all(|&a| a == 0.0));
    assert_eq!((m.mrr, m.mrr_all), (0.0, 0.0));
    // Only unusable mentions: also zeros.
    let m = link_metrics(&[outcome(&[], &[&["A"]])], KS);
    assert_eq!((m.mentions, m.no_gold, m.acc[&1]), (1, 1, 0.0));
}

#[test]
fn json_has_acc_at_k_keys() {
    let m = link_metrics(&[outcome(&["A"], &[&["B", "A"]])], KS);
    let json = serde_json::to_value(&m).unwrap();
    assert_eq!(json["acc@1"], 0.0);
    assert_eq!(json["acc@5"], 1.0);
    assert_eq!(json["acc@25"], 1.0);
    assert_eq!(json["acc_all@5"], 1.0);
    assert_eq!(json["mrr"], 0.5);
    assert_eq!(json["mentions"], 1);
    assert_eq!(json["missing_gold"], 0);
    let text = serde_json::to_string(&m).unwrap();
    assert!(
        text.starts_with(r#"{"mentions":1,"evaluated":1,"#),
        "{text}"
    );
}

#[test]
fn breakdown_by_type_and_seen() {
    let mut a = outcome(&["A"], &[&["A"]]);
    a.seen_mention = Some(true);
    a.seen_concept = Some(true);
    let mut b = outcome(&["B"], &[&["A", "B"]]);
    b.entity_type = "Chemical".into();
    b.seen_mention = Some(false);
    b.seen_concept = Some(true);
    let c = outcome(&["C"], &[&["A"]]); // seen status unknown
    let groups = breakdown(&[a, b, c], &[1]);
    let keys: Vec<&str> = groups.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "concept=seen",
            "mention=seen",
            "mention=unseen",
            "type=Chemical",
            "type=Disease"
        ]
    );
    assert_eq!(groups["type=Disease"].mentions, 2);
    assert_eq!(groups["type=Disease"].acc[&1], 0.5);
    assert_eq!(groups["type=Chemical"].acc[&1], 0.0);
    assert!(close(groups["type=Chemical"].mrr, 0.5));
    assert_eq!(groups["concept=seen"].mentions, 2);
    assert_eq!(groups["mention=seen"].acc[&1], 1.0);
    assert_eq!(groups["mention=unseen"].acc[&1], 0.0);
}

#[test]
fn ranked_ids_keep_order_and_drop_repeats() {
    let candidate = |id: &str| medlink::linker::Candidate {
        id: id.into(),
        name: id.into(),
        score: 1.0,
        matched_name: id.into(),
        dense: None,
        lexical: None,
        exact: false,
        bonus: 0.0,
        source: "test".into(),
        types: Vec::new(),
        rerank: None,
    };
    let list = [candidate("B"), candidate("A"), candidate("B")];
    assert_eq!(ranked_ids(&list), ["B", "A"]);
}

fn span(doc: &str, start: usize, end: usize, entity_type: &str) -> Span {
    Span {
        doc: doc.into(),
        start,
        end,
        entity_type: entity_type.into(),
    }
}

/// Gold: 4 spans in 2 documents. Predictions: one exact hit, one boundary error, one type
/// error, one spurious span, and one gold span claimed by two overlapping predictions.
#[test]
fn ner_strict_versus_lenient() {
    let gold = [
        span("d1", 0, 10, "Disease"),   // predicted exactly
        span("d1", 20, 35, "Disease"),  // predicted as 22..35
        span("d1", 40, 50, "Chemical"), // predicted overlapping but typed Disease
        span("d2", 5, 15, "Disease"),   // two predictions overlap it: 5..9 and 8..15
    ];
    let predicted = [
        span("d1", 0, 10, "Disease"),
        span("d1", 22, 35, "Disease"),
        span("d1", 40, 50, "Disease"),
        span("d2", 5, 9, "Disease"),
        span("d2", 8, 15, "Disease"),
        span("d2", 30, 33, "Disease"),
    ];
    let r = ner_metrics(&gold, &predicted);
    assert_eq!((r.gold, r.predicted), (4, 6));

    let s = &r.strict.overall;
    assert_eq!((s.tp, s.fp, s.fn_), (1, 5, 3));
    assert!(close(s.precision, 1.0 / 6.0));
    assert!(close(s.recall, 0.25));
    assert!(close(s.f1, 0.2));

    // Lenient: d1 0..10, d1 22..35, and d2 8..15 (overlap 7 beats 5..9's overlap 4);
    // 5..9 finds its gold taken, 40..50 has the wrong type, 30..33 overlaps nothing.
    let l = &r.lenient.overall;
    assert_eq!((l.tp, l.fp, l.fn_), (3, 3, 1));
    assert!(close(l.precision, 0.5));
    assert!(close(l.recall, 0.75));
    assert!(close(l.f1, 0.6));

    let disease = &r.lenient.per_type["Disease"];
    assert_eq!((disease.tp, disease.fp, disease.fn_), (3, 3, 0));
    let chemical = &r.lenient.per_type["Chemical"];
    assert_eq!((chemical.tp, chemical.fp, chemical.fn_), (0, 0, 1));
    assert_eq!(chemical.precision, 0.0, "no predictions: zero, not NaN");

    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["strict"]["overall"]["fn"], 3);
}

#[test]
fn ner_spans_in_other_documents_never_match() {
    let r = ner_metrics(&[span("d1", 0, 5, "X")], &[span("d2", 0, 5, "X")]);
    assert_eq!(r.strict.overall.tp, 0);
    assert_eq!(r.lenient.overall.tp, 0);
}

#[test]
fn ner_touching_spans_do_not_overlap() {
    let r = ner_metrics(&[span("d", 0, 5, "X")], &[span("d", 5, 9, "X")]);
    assert_eq!(r.lenient.overall.tp, 0);
}

#[test]
fn ner_duplicate_prediction_counts_once() {
    let g = [span("d", 0, 5, "X")];
    let r = ner_metrics(&g, &[g[0].clone(), g[0].clone()]);
    assert_eq!((r.strict.overall.tp, r.strict.overall.fp), (1, 1));
    assert_eq!((r.lenient.overall.tp, r.lenient.overall.fp), (1, 1));
}

#[test]
fn ner_empty_input_is_zero() {
    let r = ner_metrics(&[], &[]);
    assert_eq!(r.strict.overall.f1, 0.0);
    assert!(r.strict.per_type.is_empty());
}
