//! NER corpus readers added for the tagger: ADE corpus v2, CoNLL-style IOB, E3C XMI. Counts
//! on the real files and table cases on small inputs.

use std::path::Path;

use medlink::eval::{ade, conll, CorpusSpec};

use crate::common::shared_data;

fn spans(corpus: &medlink::eval::Corpus) -> Vec<(usize, usize, String, String)> {
    corpus
        .mentions()
        .map(|(_, m)| (m.start, m.end, m.text.clone(), m.entity_type.clone()))
        .collect()
}

#[test]
fn conll_decodes_iob2_iob1_and_bioes_alike() {
    let read = |text: &str| conll::read(text.as_bytes(), Path::new("t.conll")).unwrap();
    let iob2 = read("Big B-P\nhead I-P\nand O\nfits B-P\nfits B-P\n\nMI B-D\n");
    let iob1 = read("Big I-P\nhead I-P\nand O\nfits I-P\nfits B-P\n\nMI I-D\n");
    let bioes = read("Big B-P\nhead E-P\nand O\nfits S-P\nfits S-P\n\nMI S-D\n");
    for corpus in [&iob2, &iob1, &bioes] {
        // No -DOCSTART-: every sentence is a document.
        assert_eq!(corpus.documents.len(), 2);
        assert_eq!(corpus.documents[0].text, "Big head and fits fits");
        assert_eq!(
            spans(corpus),
            vec![
                (0, 8, "Big head".into(), "P".into()),
                (13, 17, "fits".into(), "P".into()),
                (18, 22, "fits".into(), "P".into()),
                (0, 2, "MI".into(), "D".into()),
            ]
        );
    }
    // -DOCSTART- groups sentences into documents, joined by a line break; tabs and extra
    // columns are fine; the type changing inside I- labels opens a new entity.
    let docs = read("-DOCSTART- O\n\nÄb\tNN\tB-X\nc\tNN\tI-Y\n\nd\tNN\tI-Y\n-DOCSTART- O\ne O\n");
    assert_eq!(docs.documents.len(), 2);
    assert_eq!(docs.documents[0].text, "Äb c\nd");
    assert_eq!(
        spans(&docs),
        vec![
            (0, 2, "Äb".into(), "X".into()),
            (3, 4, "c".into(), "Y".into()),
            (5, 6, "d".into(), "Y".into()),
        ]
    );
    let err = conll::read("a B-X\nb Q-X\n".as_bytes(), Path::new("t.conll"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("t.conll:2:") && err.contains("Q-X"), "{err}");
}

#[test]
fn ade_places_document_offsets_in_their_sentence() {
    let rel = "1|Drug-induced rash and rash.|rash|29|33|Drug|16|20\n\
               1|Drug-induced rash and rash.|rash|38|42|Drug|16|20\n\
               1|Second X sentence.|X|107|108|X|107|108\n\
               2|Nothing fits here.|rash|5|9|Drug|0|4\n";
    let corpus = ade::read(rel.as_bytes(), Path::new("DRUG-AE.rel")).unwrap();
    assert_eq!(corpus.documents.len(), 1);
    assert_eq!(
        corpus.documents[0].text,
        "Drug-induced rash and rash.\nSecond X sentence."
    );
    assert_eq!(
        spans(&corpus),
        vec![
            (0, 4, "Drug".into(), "DRUG".into()),
            (13, 17, "rash".into(), "EFFECT".into()),
            (22, 26, "rash".into(), "EFFECT".into()),
            (35, 36, "X".into(), "DRUG".into()),
            (35, 36, "X".into(), "EFFECT".into()),
        ]
    );
    assert_eq!(corpus.span_mismatches.len(), 1);
    assert!(corpus.span_mismatches[0].contains("DRUG-AE.rel:4"));
}

#[test]
fn real_ade_e3c_and_iob_counts() {
    let ade: CorpusSpec = format!("ade:{}", shared_data("ade_corpus_v2").display())
        .parse()
        .unwrap();
    let ade = ade.load().unwrap();
    let count = |t: &str| ade.mentions().filter(|(_, m)| m.entity_type == t).count();
    println!(
        "ADE: {} documents, DRUG {}, EFFECT {}, mismatches {}",
        ade.documents.len(),
        count("DRUG"),
        count("EFFECT"),
        ade.span_mismatches.len()
    );
    // 6,821 relation rows name 5,061 distinct drug and 5,774 distinct effect spans in 1,644
    // abstracts; every row fits its sentence.
    assert_eq!(ade.documents.len(), 1_644);
    assert_eq!((count("DRUG"), count("EFFECT")), (5_061, 5_774));
    assert!(
        ade.span_mismatches.is_empty(),
        "{:?}",
        &ade.span_mismatches[..3.min(ade.span_mismatches.len())]
    );
    for (_, m) in ade.mentions() {
        assert!(!m.text.is_empty());
    }

    let italian = shared_data("e3c_layer1_CC-BY-NC/data_annotation/Italian/layer1");
    let load = |options: &str| -> medlink::eval::Corpus {
        format!("e3c:{}{options}", italian.display())
            .parse::<CorpusSpec>()
            .unwrap()
            .load()
            .unwrap()
    };
    let all = load("");
    // The corpus README: 869 Italian layer-1 entities in 86 documents.
    assert_eq!(all.documents.len(), 86);
    assert_eq!(all.mentions().count(), 869);
    for (doc, m) in all.mentions() {
        let text: String = doc
            .text
            .chars()
            .skip(m.start)
            .take(m.end - m.start)
            .collect();
        assert_eq!(text, m.text);
    }
    assert!(all.mentions().filter(|(_, m)| !m.ids.is_empty()).count() > 800);
    let (train, test) = (load("#part=train"), load("#part=test"));
    assert_eq!(train.documents.len(), 36);
    assert_eq!(train.documents.len() + test.documents.len(), 86);
    assert_eq!(train.mentions().count() + test.mentions().count(), 869);
    let err = "pubtator:x#part=train"
        .parse::<CorpusSpec>()
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("published split"), "{err}");

    // The corpus's IOB release drops discontinuous and nested entities: 805 remain.
    let iob = |part: &str| {
        format!(
            "conll:{}",
            shared_data(&format!(
                "e3c_layer1_CC-BY-NC/preprocessed_data/clinical_entities/layer1/Italian/{part}.txt"
            ))
            .display()
        )
        .parse::<CorpusSpec>()
        .unwrap()
        .load()
        .unwrap()
        .mentions()
        .count()
    };
    assert_eq!(iob("train") + iob("test"), 805);
}
