//! Tests for the corpus readers of `eval`: the HPO corpora (GSC+ in PhenoTagger's layout,
//! PhenoBERT's layout), MedProcNER and brat standoff — documented counts on the real files,
//! exact span-mismatch counts, spot checks, error reporting, and arbitrary input never panicking.

use std::collections::BTreeSet;
use std::path::Path;

use medlink::error::Error;
use medlink::eval::{brat, hpo_corpora, medprocner, split, Corpus, Document, GoldMention};
use proptest::prelude::*;

use crate::common::{fixture, shared_data};

fn mention(start: usize, end: usize, text: &str, entity_type: &str, ids: &[&str]) -> GoldMention {
    GoldMention {
        start,
        end,
        text: text.to_string(),
        entity_type: entity_type.to_string(),
        ids: ids.iter().map(|s| s.to_string()).collect(),
    }
}

fn doc<'a>(corpus: &'a Corpus, id: &str) -> &'a Document {
    corpus
        .documents
        .iter()
        .find(|d| d.id == id)
        .unwrap_or_else(|| panic!("document {id} missing"))
}

fn char_slice(text: &str, start: usize, end: usize) -> String {
    text.chars().skip(start).take(end - start).collect()
}

/// `(path, line, field)` of a parse error, panicking on anything else.
fn parse_error(result: medlink::error::Result<Corpus>) -> (String, usize, Option<String>) {
    match result {
        Err(Error::Parse {
            path, line, field, ..
        }) => (path.display().to_string(), line, field),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

fn io_error_path(result: medlink::error::Result<Corpus>) -> std::path::PathBuf {
    match result {
        Err(Error::Io { path, .. }) => path,
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

fn write(path: &Path, contents: impl AsRef<[u8]>) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, contents).unwrap();
}

// ---------------------------------------------------------------------------------------------
// GSC+ dev, PhenoTagger layout

fn gsc_plus_dev() -> Corpus {
    hpo_corpora::load_phenotagger_gold(
        &shared_data("hpo/gsc_plus_dev/GSCplus_dev_gold.tsv"),
        &shared_data("hpo/gsc_plus_dev/GSCplus_dev_input.PubTator"),
    )
    .unwrap()
}

#[test]
fn gsc_plus_dev_has_documented_counts_and_no_span_mismatch() {
    let corpus = gsc_plus_dev();
    assert_eq!(corpus.documents.len(), 22);
    assert_eq!(corpus.mentions().count(), 173);
    assert!(
        corpus.span_mismatches.is_empty(),
        "{:#?}",
        corpus.span_mismatches
    );
    assert!(corpus.mentions().all(|(_, m)| m.entity_type == "Phenotype"
        && m.ids.len() == 1
        && m.ids[0].starts_with("HP:")));
    // Input order, and PhenoTagger's empty abstract adds no trailing space to the text.
    let first = &corpus.documents[0];
    assert_eq!(first.id, "11312426");
    assert!(first
        .text
        .starts_with("Nevoid basal cell carcinoma syndrome (NBCCS)"));
    assert!(first.text.ends_with("sun protection."));
    // Gold line 3: `7<TAB>27<TAB>basal cell carcinoma<TAB>HP:0002671`.
    assert_eq!(
        first.mentions[0],
        mention(7, 27, "basal cell carcinoma", "Phenotype", &["HP:0002671"])
    );
    // Overlapping gold spans are kept: "ulcerative colitis" and the nested "colitis".
    let d = doc(&corpus, "12900905");
    assert!(d.mentions.contains(&mention(
        84,
        102,
        "ulcerative colitis",
        "Phenotype",
        &["HP:0100279"]
    )));
    assert!(d
        .mentions
        .contains(&mention(95, 102, "colitis", "Phenotype", &["HP:0002583"])));
}

#[test]
fn phenotagger_gold_reports_text_and_span_disagreements() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.PubTator");
    let gold = dir.path().join("gold.tsv");
    write(
        &input,
        "1|t|Short stature and seizures.\r\n1|a|\r\n\r\n2|t|Ataxia.\r\n2|a|\r\n",
    );
    write(
        &gold,
        "1\r\nShort stature and seizures.\r\n0\t13\tShort stature\tHP_0004322\r\n18\t26\tseizure\tHP:0001250\r\n\r\n2\r\nAtaxia!\r\n0\t6\tAtaxia\tHP:0001251\r\n",
    );
    let corpus = hpo_corpora::load_phenotagger_gold(&gold, &input).unwrap();
    assert_eq!(corpus.documents[0].mentions[0].ids, ["HP:0004322"]);
    assert_eq!(corpus.documents[0].text, "Short stature and seizures.");
    assert_eq!(
        corpus.span_mismatches.len(),
        2,
        "{:#?}",
        corpus.span_mismatches
    );
    assert!(corpus.span_mismatches[0].contains("gold.tsv:4:"));
    assert!(corpus.span_mismatches[0].contains("\"seizures\" in the text"));
    assert!(corpus.span_mismatches[1].contains("gold text differs"));

    // A gold block for a document the input lacks, and the reverse, are refused.
    write(
        &gold,
        "1\nShort stature and seizures.\n\n2\nAtaxia.\n\n3\nx\n",
    );
    let (path, line, field) = parse_error(hpo_corpora::load_phenotagger_gold(&gold, &input));
    assert!(path.ends_with("gold.tsv"));
    assert_eq!((line, field.as_deref()), (7, Some("PMID")));
    write(&gold, "1\nShort stature and seizures.\n");
    assert!(matches!(
        hpo_corpora::load_phenotagger_gold(&gold, &input),
        Err(Error::InvalidInput(_))
    ));
    // A malformed annotation line names file, line and field.
    write(&gold, "1\ntext\n0\tx\tShort\tHP:1\n");
    let (_, line, field) = parse_error(hpo_corpora::load_phenotagger_gold(&gold, &input));
    assert_eq!((line, field.as_deref()), (3, Some("end")));
    // Missing files name their path.
    let absent = dir.path().join("absent.tsv");
    assert_eq!(
        io_error_path(hpo_corpora::load_phenotagger_gold(&absent, &input)),
        absent
    );
}

// ---------------------------------------------------------------------------------------------
// PhenoBERT layout

#[test]
fn phenobert_val_has_counted_mentions_and_exactly_its_known_mismatches() {
    let corpus = hpo_corpora::load_phenobert_dir(&shared_data("hpo/phenobert_val")).unwrap();
    assert_eq!(corpus.documents.len(), 30);
    // Counted with: awk -F'\t' 'NF' ../shared/data/hpo/phenobert_val/ann/* | wc -l   -> 569
    // (`cat ann/* | wc -l` says 539: 30 files lack a final newline.)
    assert_eq!(corpus.mentions().count(), 569);
    assert!(corpus
        .mentions()
        .all(|(_, m)| m.entity_type == "Phenotype" && m.ids.len() == 1));
    let d = doc(&corpus, "102350");
    assert_eq!(
        d.mentions,
        [mention(
            52,
            71,
            "bi-acromial dimples",
            "Phenotype",
            &["HP:0010782"]
        )]
    );
    // Negated phenotypes (fifth column `Neg`, twice in the set) are kept as gold.
    let negated = doc(&corpus, "309585");
    assert!(negated
        .mentions
        .iter()
        .any(|m| (m.start, m.end, m.text.as_str()) == (497, 510, "hypermetropia")));

    // The shipped annotations genuinely disagree with their texts 13 times (all texts are
    // ASCII, so this is not a byte/character confusion): spans one character short or long
    // ("thromboembolic " for "thromboembolic"), mention text with extra words ("observed
    // hypoglycemia" over "hypoglycemia"), a typo ("offractures"), a case change ("chronic" over
    // "Chronic"), a truncated span ("skeletal" for "skeletal dysplasia") and one span pointing
    // at other words entirely (300266, "spasticity" at 610..626 reads " developed first").
    assert_eq!(
        corpus.span_mismatches.len(),
        13,
        "{:#?}",
        corpus.span_mismatches
    );
    assert!(corpus
        .span_mismatches
        .iter()
        .any(|m| m.contains("ann/300266:9:")
            && m.contains("\" developed first\" in the text, \"spasticity\" in the annotation")));
    let per_doc: BTreeSet<&str> = corpus
        .span_mismatches
        .iter()
        .filter_map(|m| m.split('`').nth(1))
        .collect();
    assert_eq!(
        per_doc.into_iter().collect::<Vec<_>>(),
        ["112250", "133100", "144750", "157700", "261650", "300266", "304100", "309300"]
    );
}

#[test]
fn phenobert_offsets_are_characters_and_crlf_counts_as_one() {
    let dir = tempfile::tempdir().unwrap();
    // "é" is two bytes and "\r\n" two characters: "seizures" is at bytes 22..30 of the file,
    // characters 21..29 of the raw text, and 20..28 once newlines are read as Python does.
    write(
        &dir.path().join("corpus/d1"),
        "Café-au-lait spots.\r\nseizures\r\n",
    );
    write(
        &dir.path().join("ann/d1"),
        "0\t18\tCafé-au-lait spots\tHP_0000957\n20\t28\tseizures\tHP:0001250\tNeg",
    );
    let corpus = hpo_corpora::load_phenobert_dir(dir.path()).unwrap();
    assert!(
        corpus.span_mismatches.is_empty(),
        "{:#?}",
        corpus.span_mismatches
    );
    let d = &corpus.documents[0];
    assert_eq!(d.text, "Café-au-lait spots.\nseizures\n");
    assert_eq!(d.mentions[0].ids, ["HP:0000957"]);
    assert_eq!(char_slice(&d.text, 20, 28), "seizures");
}

#[test]
fn phenobert_errors_name_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("corpus/d1"), "Ataxia.");
    write(
        &dir.path().join("ann/d1"),
        "0\t6\tAtaxia\tHP:0001251\n\nx\t6\tAtaxia\tHP:0001251\n",
    );
    let (path, line, field) = parse_error(hpo_corpora::load_phenobert_dir(dir.path()));
    assert!(path.ends_with("ann/d1"), "{path}");
    assert_eq!((line, field.as_deref()), (3, Some("start")));

    write(&dir.path().join("ann/d1"), "0\t6\tAtaxia\n");
    let (_, line, field) = parse_error(hpo_corpora::load_phenobert_dir(dir.path()));
    assert_eq!((line, field), (1, None));

    // A text without its annotation file, and the reverse, name the missing file.
    write(&dir.path().join("corpus/d2"), "Ataxia.");
    std::fs::remove_file(dir.path().join("ann/d1")).unwrap();
    write(&dir.path().join("ann/d2"), "");
    assert_eq!(
        io_error_path(hpo_corpora::load_phenobert_dir(dir.path())),
        dir.path().join("ann/d1")
    );
    write(&dir.path().join("ann/d3"), "");
    assert_eq!(
        io_error_path(hpo_corpora::load_phenobert_dir(dir.path())),
        dir.path().join("corpus/d3")
    );
    let absent = dir.path().join("absent");
    assert_eq!(
        io_error_path(hpo_corpora::load_phenobert_dir(&absent)),
        absent.join("corpus")
    );
}

#[test]
fn hpo_ids_are_normalised() {
    for (raw, expected) in [
        ("HP:0001250", "HP:0001250"),
        ("HP_0001250", "HP:0001250"),
        (" HPO:0001250 ", "HP:0001250"),
    ] {
        assert_eq!(hpo_corpora::hpo_id(raw), expected, "{raw:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// MedProcNER

fn medprocner_dir() -> std::path::PathBuf {
    shared_data("spanish/medprocner_train")
}

#[test]
fn medprocner_linking_has_documented_counts() {
    let corpus = medprocner::load(&medprocner_dir()).unwrap();
    assert!(
        corpus.span_mismatches.is_empty(),
        "{:#?}",
        corpus.span_mismatches
    );
    // "4,857 linked mentions" are the rows of the subtask-2 (linking) TSV
    // (`tail -n +2 tsv/medprocner_tsv_train_subtask2.tsv | wc -l`), NO_CODE rows included.
    assert_eq!(corpus.mentions().count(), 4_857);
    let no_code = corpus.mentions().filter(|(_, m)| m.ids.is_empty()).count();
    assert_eq!(no_code, 51);
    // "1,630 codes" are the distinct strings of its `code` column: each composite counts once
    // and `NO_CODE` counts as one (`cut -f6 ... | sort -u`). Joining a mention's ids with `+`
    // gives them back one-to-one (NO_CODE parts of composites never make two strings meet).
    let code_strings: BTreeSet<String> = corpus
        .mentions()
        .map(|(_, m)| {
            m.ids
                .iter()
                .map(|id| id.strip_prefix("SNOMEDCT:").unwrap())
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    assert_eq!(code_strings.len(), 1_630);
    // As SNOMED CT concepts: 1,600 distinct codes (the same set as subtask 3's index).
    let codes: BTreeSet<&str> = corpus
        .mentions()
        .flat_map(|(_, m)| m.ids.iter().map(String::as_str))
        .collect();
    assert_eq!(codes.len(), 1_600);
    assert_eq!(
        corpus.mentions().filter(|(_, m)| m.ids.len() > 1).count(),
        121
    );

    // Only 250 of the 750 texts are linked; the corpus lists exactly those.
    assert_eq!(corpus.documents.len(), 250);
    assert!(corpus.documents.iter().all(|d| !d.mentions.is_empty()));
    assert!(corpus.documents.windows(2).all(|w| w[0].id < w[1].id));

    // Spot checks. First data row of the TSV:
    let d = doc(&corpus, "S0004-06142005000700014-1");
    assert!(d.mentions.contains(&mention(
        1023,
        1044,
        "Auscultación pulmonar",
        "PROCEDIMIENTO",
        &["SNOMEDCT:449264008"]
    )));
    assert!(d.mentions.windows(2).all(|w| w[0].start <= w[1].start));
    // A composite code.
    let d = doc(&corpus, "S0004-06142006000600014-1");
    assert!(d.mentions.contains(&mention(
        208,
        240,
        "auscultación cardio-respiratoria",
        "PROCEDIMIENTO",
        &["SNOMEDCT:449263002", "SNOMEDCT:449264008"]
    )));
    // A composite with a NO_CODE part keeps its SNOMED part.
    let d = doc(&corpus, "es-S0004-06142008000600011-1");
    let m = d.mentions.iter().find(|m| m.start == 1916).unwrap();
    assert_eq!(m.ids, ["SNOMEDCT:433775002"]);
    // A CSV-quoted text: `"extirpación del ""quiste folicular"""` in the TSV.
    let d = doc(&corpus, "es-S1698-69462006000400002-1");
    assert!(d.mentions.contains(&mention(
        438,
        472,
        "extirpación del \"quiste folicular\"",
        "PROCEDIMIENTO",
        &["SNOMEDCT:387740003"]
    )));
    assert_eq!(
        char_slice(&d.text, 438, 472),
        "extirpación del \"quiste folicular\""
    );
    // NO_CODE gives no id.
    let d = doc(&corpus, "S0004-06142005001000011-3");
    let m = d.mentions.iter().find(|m| m.text == "PEES").unwrap();
    assert!(m.ids.is_empty());

    // The same corpus from the TSV path (texts found in ../txt).
    let from_tsv = medprocner::load(&medprocner_dir().join(medprocner::LINKING_TSV)).unwrap();
    assert_eq!(from_tsv.documents, corpus.documents);
}

#[test]
fn medprocner_ner_covers_all_750_texts_and_agrees_with_the_brat_copy() {
    let ner = medprocner::load_ner(&medprocner_dir()).unwrap();
    assert_eq!(ner.documents.len(), 750);
    assert_eq!(ner.mentions().count(), 11_065);
    assert!(ner.span_mismatches.is_empty(), "{:#?}", ner.span_mismatches);
    assert!(ner.mentions().all(|(_, m)| m.ids.is_empty()));
    // The one case without procedures is listed, with none.
    assert!(doc(&ner, "es-S1134-80462009000100005-15")
        .mentions
        .is_empty());

    // The release's brat copy of subtask 1 reads the same through the brat reader.
    let brat = brat::load_dir(&medprocner_dir().join("brat")).unwrap();
    assert!(
        brat.span_mismatches.is_empty(),
        "{:#?}",
        brat.span_mismatches
    );
    assert_eq!(brat.documents.len(), 750);
    let spans = |c: &Corpus| -> BTreeSet<(String, usize, usize, String)> {
        c.mentions()
            .map(|(d, m)| (d.id.clone(), m.start, m.end, m.text.clone()))
            .collect()
    };
    assert_eq!(spans(&brat), spans(&ner));
    for (a, b) in brat.documents.iter().zip(&ner.documents) {
        assert_eq!((&a.id, &a.text), (&b.id, &b.text));
    }
}

#[test]
fn medprocner_split_is_deterministic_disjoint_and_complete() {
    let corpus = medprocner::load(&medprocner_dir()).unwrap();
    let (train, dev) = split::split(&corpus, 0.2, 42);
    let (train2, dev2) = split::split(&corpus, 0.2, 42);
    assert_eq!(train.documents, train2.documents);
    assert_eq!(dev.documents, dev2.documents);
    let ids = |c: &Corpus| {
        c.documents
            .iter()
            .map(|d| d.id.clone())
            .collect::<BTreeSet<_>>()
    };
    assert!(ids(&train).is_disjoint(&ids(&dev)));
    assert_eq!(train.documents.len() + dev.documents.len(), 250);
    // Hash-based, so the fraction is approximate: 250 * 0.2 = 50 expected.
    assert!(
        (35..=65).contains(&dev.documents.len()),
        "{}",
        dev.documents.len()
    );
    // A document's side depends only on its id and the seed, not on the other documents.
    let half = Corpus {
        documents: corpus.documents[..125].to_vec(),
        span_mismatches: Vec::new(),
    };
    let (_, dev_half) = split::split(&half, 0.2, 42);
    assert!(ids(&dev_half).is_subset(&ids(&dev)));
    // Another seed gives another split; the extremes are all train / all dev.
    assert_ne!(ids(&split::split(&corpus, 0.2, 7).1), ids(&dev));
    assert_eq!(split::split(&corpus, 0.0, 1).1.documents.len(), 0);
    assert_eq!(split::split(&corpus, 1.0, 1).0.documents.len(), 0);
    assert_eq!(split::split(&corpus, f64::NAN, 1).1.documents.len(), 0);
}

#[test]
fn medprocner_split_sends_mismatches_with_their_documents() {
    let mk = |id: &str| Document {
        id: id.to_string(),
        text: String::new(),
        mentions: Vec::new(),
    };
    let corpus = Corpus {
        documents: vec![mk("a"), mk("b")],
        span_mismatches: vec![
            "x.tsv:2: document `a`: bad".into(),
            "x.tsv:3: document `b`: bad".into(),
        ],
    };
    let (train, dev) = split::split(&corpus, 1.0, 0);
    assert!(train.span_mismatches.is_empty());
    assert_eq!(dev.span_mismatches.len(), 2);
}

#[test]
fn medprocner_errors_name_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let tsv = dir.path().join("tsv/links.tsv");
    write(&dir.path().join("txt/d1.txt"), "Se realizó una biopsia.");
    let header = "filename\tlabel\tstart_span\tend_span\ttext\tcode\n";
    write(
        &tsv,
        format!("{header}d1\tPROCEDIMIENTO\t15\t22\tbiopsia\t86273004\n"),
    );
    let corpus = medprocner::load(&tsv).unwrap();
    assert_eq!(corpus.documents[0].mentions[0].ids, ["SNOMEDCT:86273004"]);

    let cases = [
        (
            "d1\tPROCEDIMIENTO\t15\t22\tbiopsia\t8627x004\n",
            Some("code"),
        ),
        (
            "d1\tPROCEDIMIENTO\t15\tx\tbiopsia\t86273004\n",
            Some("end_span"),
        ),
        ("d1\tPROCEDIMIENTO\t15\t22\tbiopsia\n", None),
        (
            "../d1\tPROCEDIMIENTO\t15\t22\tbiopsia\t86273004\n",
            Some("filename"),
        ),
    ];
    for (row, expected_field) in cases {
        write(&tsv, format!("{header}{row}"));
        let (path, line, field) = parse_error(medprocner::load(&tsv));
        assert!(path.ends_with("links.tsv"));
        assert_eq!((line, field.as_deref()), (2, expected_field), "{row:?}");
    }
    write(&tsv, "filename\tstart_span\ttext\n");
    let (_, line, field) = parse_error(medprocner::load(&tsv));
    assert_eq!((line, field.as_deref()), (1, Some("end_span")));

    // A span past the text is reported, not hidden; a missing text names its path.
    write(
        &tsv,
        format!("{header}d1\tPROCEDIMIENTO\t15\t99\tbiopsia\tNO_CODE\n"),
    );
    let corpus = medprocner::load(&tsv).unwrap();
    assert_eq!(corpus.span_mismatches.len(), 1);
    assert!(corpus.span_mismatches[0].contains("links.tsv:2: document `d1`"));
    write(
        &tsv,
        format!("{header}d2\tPROCEDIMIENTO\t15\t22\tbiopsia\tNO_CODE\n"),
    );
    assert_eq!(
        io_error_path(medprocner::load(&tsv)),
        dir.path().join("txt/d2.txt")
    );
}

// ---------------------------------------------------------------------------------------------
// brat

#[test]
fn brat_fixtures_read_with_normalisations_and_discontinuous_spans() {
    let corpus = brat::load_dir(&fixture("brat")).unwrap();
    assert!(
        corpus.span_mismatches.is_empty(),
        "{:#?}",
        corpus.span_mismatches
    );
    assert_eq!(
        corpus
            .documents
            .iter()
            .map(|d| d.id.as_str())
            .collect::<Vec<_>>(),
        ["doc1", "doc2"]
    );
    let d1 = &corpus.documents[0];
    assert_eq!(
        d1.mentions,
        [
            mention(16, 24, "seizures", "Phenotype", &["HP:0001250"]),
            // Character offsets: "é" would make the byte end 48.
            mention(29, 47, "café-au-lait spots", "Phenotype", &["HP:0000957"]),
            mention(52, 57, "fever", "Phenotype", &["UMLS:C0015967"]),
            mention(
                64,
                73,
                "hypotonia",
                "Phenotype",
                &["HP:0001252", "SNOMEDCT:398152000"]
            ),
        ]
    );
    let d2 = &corpus.documents[1];
    assert_eq!(
        d2.mentions,
        [
            // `0 6;19 25`: extent 0..25, the annotation's text, normalised before its T line.
            mention(0, 25, "Breast cancer", "Disease", &["MESH:D001943"]),
            mention(11, 25, "ovarian cancer", "Disease", &["MESH:D010051"]),
            // An event trigger is a text-bound annotation too; the event's own normalisation
            // is skipped with the event.
            mention(31, 36, "found", "Finding", &[]),
        ]
    );
}

fn read_ann(text: &str, ann: &str) -> medlink::error::Result<Corpus> {
    let mut corpus = Corpus::default();
    brat::read_document(
        "d",
        text.to_string(),
        ann.as_bytes(),
        Path::new("d.ann"),
        &mut corpus,
    )?;
    Ok(corpus)
}

#[test]
fn brat_reports_span_disagreements() {
    let text = "Breast and ovarian cancer.";
    let cases = [
        ("T1\tDisease 0 6;19 25\tBreast cancer\n", 0),
        // Fragments must be joined by one space, not concatenated or over the gap.
        ("T1\tDisease 0 6;19 25\tBreastcancer\n", 1),
        ("T1\tDisease 0 25\tBreast cancer\n", 1),
        ("T1\tDisease 0 6;19 99\tBreast cancer\n", 1),
        ("T1\tDisease 11 18\tOvarian\n", 1),
    ];
    for (ann, expected) in cases {
        let corpus = read_ann(text, ann).unwrap();
        assert_eq!(
            corpus.span_mismatches.len(),
            expected,
            "{ann:?}: {:#?}",
            corpus.span_mismatches
        );
        if expected == 1 {
            assert!(corpus.span_mismatches[0].starts_with("d.ann:1: document `d`: T1 span"));
        }
    }
}

#[test]
fn brat_errors_name_file_line_and_field() {
    let cases = [
        ("T1\tDisease 0 x\tBreast\n", 1, "offsets"),
        ("T1\tDisease 6 0\tBreast\n", 1, "offsets"),
        ("T1\tDisease\tBreast\n", 1, "offsets"),
        ("T1\tDisease 0 6\n", 1, "text"),
        (
            "T1\tDisease 0 6\tBreast\nT1\tDisease 0 6\tBreast\n",
            2,
            "id",
        ),
        (
            "T1\tDisease 0 6\tBreast\n\nN1\tReference T2 MESH:D001943\tx\n",
            3,
            "target",
        ),
        ("N1\tReference T1\tx\n", 1, "reference"),
        (
            "T1\tDisease 0 6\tBreast\nN1\tReference T1 D001943\n",
            2,
            "id",
        ),
        ("X1\tsomething\n", 1, "id"),
    ];
    for (ann, line, field) in cases {
        let (path, got_line, got_field) = parse_error(read_ann("Breast cancer", ann));
        assert_eq!(path, "d.ann");
        assert_eq!(
            (got_line, got_field.as_deref()),
            (line, Some(field)),
            "{ann:?}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("a.txt"), "x");
    assert_eq!(
        io_error_path(brat::load_dir(dir.path())),
        dir.path().join("a.ann")
    );
    std::fs::remove_file(dir.path().join("a.txt")).unwrap();
    write(&dir.path().join("b.ann"), "");
    assert_eq!(
        io_error_path(brat::load_dir(dir.path())),
        dir.path().join("b.txt")
    );
    let absent = dir.path().join("absent");
    assert_eq!(io_error_path(brat::load_dir(&absent)), absent);
    // Invalid UTF-8 in a text is a parse error on its line.
    write(&dir.path().join("b.txt"), b"ok\n\xff");
    let (path, line, _) = parse_error(brat::load_dir(dir.path()));
    assert!(path.ends_with("b.txt"));
    assert_eq!(line, 2);
}

// ---------------------------------------------------------------------------------------------
// Arbitrary input never panics; what is read stays consistent.

/// Raw bytes, near-miss text from the formats' characters, or `lines` (well-formed records of
/// one format with random offsets and ids), so both the rejection and the acceptance paths run.
fn input(lines: &'static str) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        "[0-9TNA#RE\t \n\r;:+|\"a-zéHP_]{0,300}".prop_map(String::into_bytes),
        lines.prop_map(String::into_bytes),
    ]
}

const BRAT_LINES: &str = "((T[0-9]\t[A-Z][a-z]{0,5} [0-9]{1,2} [0-9]{1,2}(;[0-9]{1,2} [0-9]{1,2})?\t[a-zé ]{0,8}|N[0-9]\tReference [TE][0-9] [A-Z]{1,4}:[A-Z0-9:_]{1,8}\t[a-z]{0,4}|#[0-9]\tNote T1\tx|A1\tNeg T1|R1\tRel Arg1:T1 Arg2:T2)\r?\n){0,8}";
const PHENOBERT_LINES: &str =
    "([0-9]{1,2}\t[0-9]{1,2}\t[a-zé ]{0,6}\t(HP:|HP_)?[0-9]{1,7}(\tNeg)?\r?\n){0,8}";
const GSC_LINES: &str = "([0-9]\r?\n[a-zé ]{0,20}\r?\n([0-9]{1,2}\t[0-9]{1,2}\t[a-zé ]{0,5}\tHP_?:?[0-9]{7}\r?\n){0,3}\r?\n){0,3}";
const PUBTATOR_LINES: &str = "([0-9]\\|t\\|[a-zé ]{0,20}\n[0-9]\\|a\\|[a-z ]{0,5}\n\n){0,3}";
const MEDPROCNER_LINES: &str = "(d\tPROC\t[0-9]{1,2}\t[0-9]{1,2}\t\"?[a-zé \"]{0,6}\"?\t(NO_CODE|[0-9]{1,9})(\\+([0-9]{1,9}|NO_CODE))?\r?\n){0,8}";

/// Spans of an accepted corpus without mismatches lie inside their texts.
fn spans_consistent(corpus: &Corpus) -> bool {
    !corpus.span_mismatches.is_empty()
        || corpus
            .mentions()
            .all(|(d, m)| m.start <= m.end && m.end <= d.text.chars().count())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn brat_arbitrary_ann_never_panics(text in "[a-zé \n]{0,40}", ann in input(BRAT_LINES)) {
        if let Ok(corpus) = read_ann(&text, &String::from_utf8_lossy(&ann)) {
            prop_assert!(spans_consistent(&corpus));
        }
        let mut corpus = Corpus::default();
        let _ = brat::read_document("d", text, &ann[..], Path::new("d.ann"), &mut corpus);
    }

    #[test]
    fn phenobert_arbitrary_ann_never_panics(text in "[a-zé \n]{0,40}", ann in input(PHENOBERT_LINES)) {
        let mut corpus = Corpus::default();
        if hpo_corpora::read_phenobert_document("d", text, &ann[..], Path::new("d"), &mut corpus).is_ok() {
            prop_assert!(spans_consistent(&corpus));
        }
    }

    #[test]
    fn phenotagger_arbitrary_gold_never_panics(gold in input(GSC_LINES), pubtator in input(PUBTATOR_LINES)) {
        let _ = hpo_corpora::read_phenotagger_gold_tsv(&gold[..], Path::new("gold.tsv"));
        let dir = tempfile::tempdir().unwrap();
        let (g, p) = (dir.path().join("gold.tsv"), dir.path().join("in.PubTator"));
        write(&g, &gold);
        write(&p, &pubtator);
        if let Ok(corpus) = hpo_corpora::load_phenotagger_gold(&g, &p) {
            prop_assert!(spans_consistent(&corpus));
        }
    }

    #[test]
    fn medprocner_arbitrary_tsv_never_panics(rows in input(MEDPROCNER_LINES), text in "[a-zé \n]{0,40}") {
        let dir = tempfile::tempdir().unwrap();
        let tsv = dir.path().join("tsv/x.tsv");
        write(&dir.path().join("txt/d.txt"), text);
        let mut bytes = b"filename\tlabel\tstart_span\tend_span\ttext\tcode\n".to_vec();
        bytes.extend_from_slice(&rows);
        write(&tsv, &bytes);
        if let Ok(corpus) = medprocner::load(&tsv) {
            prop_assert!(spans_consistent(&corpus));
        }
        write(&tsv, &rows);
        let _ = medprocner::load(&tsv);
    }
}
