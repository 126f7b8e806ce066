//! Tests for corpus mentions as dictionary names (`index build --add-mentions`) and for corpus
//! spec options (`#types=`, `#split=`): hand-built dictionaries and corpora, then the real
//! BC5CDR and MedProcNER files.

use std::collections::BTreeSet;

use medlink::eval::mentions::{add_mentions, MentionStats};
use medlink::eval::spec::{Side, SplitPart};
use medlink::eval::{split, Corpus, CorpusSpec, Document, GoldMention};
use medlink::ontology::{Concept, Dictionary, Format, SourceInfo, SynonymKind};

use crate::common::shared_data;

fn mention(text: &str, ids: &[&str]) -> GoldMention {
    GoldMention {
        start: 0,
        end: text.chars().count(),
        text: text.to_string(),
        entity_type: "Disease".into(),
        ids: ids.iter().map(|s| s.to_string()).collect(),
    }
}

fn corpus(mentions: Vec<GoldMention>) -> Corpus {
    Corpus {
        documents: vec![Document {
            id: "1".into(),
            text: String::new(),
            mentions,
        }],
        span_mismatches: Vec::new(),
    }
}

/// One concept, `MESH:D1` "Breast cancer", with the secondary id `OMIM:114480`.
fn dictionary() -> Dictionary {
    let mut breast = Concept::new("MESH:D1", "Breast cancer");
    breast.alt_ids.push("OMIM:114480".into());
    let source = SourceInfo {
        name: "MEDIC".into(),
        format: Format::Medic,
        path: "medic.txt".into(),
        version: None,
        sha256: "0".into(),
        concepts: 1,
    };
    Dictionary::from_parts(vec![source], vec![breast], Vec::new()).unwrap()
}

#[test]
fn mentions_become_names_of_their_concepts() {
    let train = corpus(vec![
        mention("breast carcinoma", &["OMIM:114480"]), // secondary id: lands on MESH:D1
        mention("Breast Cancer", &["MESH:D1"]),        // same normal form: nothing new
        mention("ovary cancer", &["MESH:D2"]),         // unknown id: a new concept
        mention("ovarian ca", &["MESH:D2"]),
        mention("ovarian ca.", &["MESH:D2"]), // same normal form as "ovarian ca"
        mention("breast and ovarian cancer", &["MESH:D1", "MESH:D2"]), // composite: skipped
        mention("tumour", &[]),               // no id: skipped
    ]);
    let spec: CorpusSpec = "pubtator:train.txt".parse().unwrap();
    let (dict, stats) = add_mentions(dictionary(), &[(spec.clone(), train)]).unwrap();
    assert_eq!(
        stats,
        vec![MentionStats {
            mentions: 7,
            names_added: 3,
            new_concepts: 1,
            composites_skipped: 1,
            without_id_skipped: 1,
        }]
    );
    let breast = dict.get("MESH:D1").unwrap();
    assert_eq!(breast.name, "Breast cancer");
    assert_eq!(breast.synonyms.len(), 1);
    assert_eq!(breast.synonyms[0].text, "breast carcinoma");
    assert_eq!(breast.synonyms[0].kind, SynonymKind::Unspecified);
    // The new concept's preferred name is its most frequent text (2 x "ovarian ca").
    let ovary = dict.get("MESH:D2").unwrap();
    assert_eq!(ovary.name, "ovarian ca");
    assert_eq!(ovary.synonyms.len(), 1);
    assert_eq!(ovary.synonyms[0].text, "ovary cancer");
    assert_eq!(ovary.types, vec!["Disease".to_string()]);
    assert_eq!(dict.lookup_name("ovary cancer").len(), 1);
    // The corpus is a source of its own, named by its canonical spec.
    let source = dict.source_of(&ovary).unwrap();
    assert_eq!(source.format, Format::Corpus);
    assert_eq!(source.path, spec.to_string());
    assert_eq!(source.concepts, 1);
    assert_eq!(source.sha256.len(), 64);
    assert_eq!(dict.sources().len(), 2);
    assert!(dict.warnings().iter().any(|w| w.contains("3 new names")));
}

#[test]
fn an_id_missing_from_two_corpora_makes_one_concept() {
    let a = corpus(vec![
        mention("kidney stone", &["MESH:D7"]),
        mention("renal calculus", &["MESH:D7"]),
    ]);
    let b = corpus(vec![mention("nephrolithiasis", &["MESH:D7"])]);
    let spec = |p: &str| -> CorpusSpec { format!("pubtator:{p}").parse().unwrap() };
    let (dict, stats) = add_mentions(
        Dictionary::default(),
        &[(spec("a.txt"), a), (spec("b.txt"), b)],
    )
    .unwrap();
    assert_eq!(dict.concept_count(), 1);
    assert!(dict.warnings().iter().all(|w| !w.contains("merged")));
    let stone = dict.get("MESH:D7").unwrap();
    // A tie in counts goes to the first text seen.
    assert_eq!(stone.name, "kidney stone");
    assert_eq!(stone.names().count(), 3);
    assert_eq!(
        (stats[0].new_concepts, stats[1].new_concepts),
        (1, 0),
        "the second corpus extends the first one's concept"
    );
    assert_eq!(dict.names().len(), 3);
}

#[test]
fn corpus_spec_options_parse_and_print_canonically() {
    let plain: CorpusSpec = "pubtator:x.txt".parse().unwrap();
    assert_eq!((plain.types.len(), plain.split), (0, None));
    assert_eq!(plain.to_string(), "pubtator:x.txt");

    let typed: CorpusSpec = "pubtator:x.txt#types=Disease+Chemical".parse().unwrap();
    assert_eq!(typed.types, vec!["Disease", "Chemical"]);
    assert_eq!(typed.to_string(), "pubtator:x.txt#types=Disease+Chemical");

    let dev: CorpusSpec = "medprocner:d#seed=7,split=dev,dev-fraction=0.3"
        .parse()
        .unwrap();
    assert_eq!(
        dev.split,
        Some(SplitPart {
            side: Side::Dev,
            dev_fraction: 0.3,
            seed: 7
        })
    );
    assert_eq!(
        dev.to_string(),
        "medprocner:d#split=dev,dev-fraction=0.3,seed=7"
    );
    // Defaults are written out, so a manifest records the split exactly.
    let train: CorpusSpec = "medprocner:d#split=train".parse().unwrap();
    assert_eq!(
        train.to_string(),
        "medprocner:d#split=train,dev-fraction=0.2,seed=0"
    );
    assert_eq!(train.to_string().parse::<CorpusSpec>().unwrap(), train);
    // The phenotagger path keeps its comma.
    let gsc: CorpusSpec = "phenotagger:g.tsv,i.PubTator#types=Phenotype"
        .parse()
        .unwrap();
    assert_eq!(gsc.path, "g.tsv,i.PubTator");
}

#[test]
fn corpus_spec_errors_name_the_problem() {
    let cases = [
        ("owl:x", "unknown ontology format `owl`"),
        ("pubtator", "must be FORMAT:PATH"),
        ("pubtator:", "empty path"),
        ("pubtator:#types=Disease", "empty path"),
        ("pubtator:x#types", "option `types` must be KEY=VALUE"),
        ("pubtator:x#types=", "must be KEY=VALUE"),
        ("pubtator:x#colour=red", "unknown option `colour`"),
        (
            "pubtator:x#split=test",
            "split must be train or dev, not `test`",
        ),
        ("pubtator:x#split=dev,dev-fraction=1", "between 0 and 1"),
        ("pubtator:x#split=dev,dev-fraction=abc", "between 0 and 1"),
        (
            "pubtator:x#split=dev,seed=-1",
            "seed must be a non-negative integer",
        ),
        ("pubtator:x#seed=3", "need split=train or split=dev"),
        (
            "pubtator:x#split=dev,split=train",
            "option `split` given twice",
        ),
    ];
    for (spec, message) in cases {
        let err = spec.parse::<CorpusSpec>().unwrap_err().to_string();
        assert!(err.contains(message), "{spec}: {err}");
    }
}

/// A PubTator corpus with corpus options (`#types=...`) appended to its path.
fn load_pubtator(path: &std::path::Path, options: &str) -> Corpus {
    format!("pubtator:{}{options}", path.display())
        .parse::<CorpusSpec>()
        .unwrap()
        .load()
        .unwrap()
}

#[test]
fn type_option_keeps_documents_and_drops_other_mentions_on_bc5cdr() {
    let path = shared_data("bc5cdr/CDR_TrainingSet.PubTator.txt");
    let load = |options: &str| load_pubtator(&path, options);
    let all = load("");
    let disease = load("#types=Disease");
    let chemical = load("#types=chemical"); // case-insensitive
    assert_eq!(disease.documents.len(), all.documents.len());
    assert_eq!(
        disease.mentions().count() + chemical.mentions().count(),
        all.mentions().count()
    );
    assert!(disease.mentions().count() > 0 && chemical.mentions().count() > 0);
    assert!(disease.mentions().all(|(_, m)| m.entity_type == "Disease"));
    assert!(chemical
        .mentions()
        .all(|(_, m)| m.entity_type == "Chemical"));
    let err = format!("pubtator:{}#types=Diseases", path.display())
        .parse::<CorpusSpec>()
        .unwrap()
        .load()
        .unwrap_err()
        .to_string();
    assert!(err.contains("no mention has type `Diseases`"), "{err}");
    assert!(err.contains("Chemical, Disease"), "{err}");
}

#[test]
fn single_type_option_gives_ncbi_disease_one_type() {
    let path = shared_data("ncbi_disease/NCBIdevelopset_corpus.txt");
    let load = |options: &str| load_pubtator(&path, options);
    let classes = load("");
    let types: BTreeSet<&str> = classes
        .mentions()
        .map(|(_, m)| m.entity_type.as_str())
        .collect();
    assert!(
        types.len() >= 3,
        "NCBI-disease has several classes: {types:?}"
    );
    let one = load("#type=Disease");
    assert_eq!(one.mentions().count(), classes.mentions().count());
    assert!(one.mentions().all(|(_, m)| m.entity_type == "Disease"));
    // `types` selects first, `type` renames what is left.
    let specific = load("#types=SpecificDisease,type=Disease");
    assert!(specific.mentions().count() < classes.mentions().count());
    assert!(specific.mentions().all(|(_, m)| m.entity_type == "Disease"));
    let spec: CorpusSpec = "pubtator:x.txt#type=Disease,types=A+B".parse().unwrap();
    assert_eq!(spec.to_string(), "pubtator:x.txt#types=A+B,type=Disease");
}

#[test]
fn split_option_selects_one_side_of_the_medprocner_split() {
    let dir = shared_data("spanish/medprocner_train");
    let spec = |side: &str| {
        format!(
            "medprocner:{}#split={side},dev-fraction=0.2,seed=0",
            dir.display()
        )
        .parse::<CorpusSpec>()
        .unwrap()
    };
    let train = spec("train").load().unwrap();
    let dev = spec("dev").load().unwrap();
    let ids =
        |c: &Corpus| -> BTreeSet<String> { c.documents.iter().map(|d| d.id.clone()).collect() };
    assert!(ids(&train).is_disjoint(&ids(&dev)));
    assert_eq!(train.documents.len() + dev.documents.len(), 250);
    let whole = medlink::eval::medprocner::load(&dir).unwrap();
    let (expected_train, expected_dev) = split::split(&whole, 0.2, 0);
    assert_eq!(train.documents, expected_train.documents);
    assert_eq!(dev.documents, expected_dev.documents);
}
