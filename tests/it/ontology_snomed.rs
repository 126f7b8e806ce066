//! Tests for the SNOMED CT RF2 snapshot loader, through the public `ontology::load` entry.
//!
//! `tests/fixtures/snomed` is a hand-made release root in the exact RF2 layout (CRLF line ends,
//! tab-separated, header rows): `Snapshot/Terminology` holds 8 concepts (7 active, 155305003
//! inactive), 30 descriptions (1 inactive, 2 Spanish in their own `-es` file), 10 relationships
//! (2 inactive is-a, 1 finding site), plus a stated-relationship and a concrete-values file the
//! loader must not read; `Snapshot/Refset/Language` holds a GB + US English language refset.

use std::path::{Path, PathBuf};

use medlink::ontology::snomed::split_semantic_tag;
use medlink::ontology::{load, Concept, Format, LoadOptions, Loaded, OntologySpec, SynonymKind};
use medlink::Error;
use proptest::prelude::*;

use crate::common;

fn load_snomed(path: &Path, opts: &LoadOptions) -> medlink::Result<Loaded> {
    let spec: OntologySpec = format!("snomed:{}", path.display()).parse()?;
    assert_eq!(spec.format, Format::Snomed);
    load(&spec, opts)
}

fn root() -> PathBuf {
    common::fixture("snomed")
}

fn terminology() -> PathBuf {
    common::fixture("snomed/Snapshot/Terminology")
}

fn ids(loaded: &Loaded) -> Vec<&str> {
    loaded.concepts.iter().map(|c| c.id.as_str()).collect()
}

fn concept<'a>(loaded: &'a Loaded, id: &str) -> &'a Concept {
    loaded
        .concepts
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("{id} not loaded; have {:?}", ids(loaded)))
}

fn languages(langs: &[&str]) -> LoadOptions {
    LoadOptions {
        languages: langs.iter().map(|s| s.to_string()).collect(),
        ..LoadOptions::default()
    }
}

#[test]
fn snomed_fixture_counts_active_and_inactive() {
    let loaded = load_snomed(&root(), &LoadOptions::default()).unwrap();
    // 8 data rows in sct2_Concept_Snapshot_INT_20250101.txt, one with active = 0.
    assert_eq!(
        ids(&loaded),
        [
            "SNOMEDCT:138875005",
            "SNOMEDCT:404684003",
            "SNOMEDCT:64572001",
            "SNOMEDCT:22298006",
            "SNOMEDCT:57054005",
            "SNOMEDCT:38341003",
            "SNOMEDCT:267038008",
            "SNOMEDCT:155305003",
        ]
    );
    let active = loaded.concepts.iter().filter(|c| !c.obsolete).count();
    assert_eq!(active, 7);
    let old = concept(&loaded, "SNOMEDCT:155305003");
    assert!(old.obsolete);
    assert_eq!(old.name, "Old myocardial infarction");
    assert_eq!(loaded.version.as_deref(), Some("INT_20250101"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn snomed_reads_only_snapshot_concept_description_relationship_and_language_files() {
    let loaded = load_snomed(&root(), &LoadOptions::default()).unwrap();
    let names: Vec<String> = loaded
        .files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "sct2_Concept_Snapshot_INT_20250101.txt",
            "sct2_Description_Snapshot-en_INT_20250101.txt",
            "sct2_Description_Snapshot-es_INT_20250101.txt",
            "sct2_Relationship_Snapshot_INT_20250101.txt",
            "der2_cRefset_LanguageSnapshot-en_INT_20250101.txt",
        ]
    );
}

#[test]
fn snomed_fsn_is_a_synonym_kind_and_its_tag_a_type() {
    let loaded = load_snomed(&root(), &LoadOptions::default()).unwrap();
    let mi = concept(&loaded, "SNOMEDCT:22298006");
    assert_eq!(mi.name, "Myocardial infarction");
    let synonyms: Vec<(&str, SynonymKind)> = mi
        .synonyms
        .iter()
        .map(|s| (s.text.as_str(), s.kind))
        .collect();
    // The inactive "Myocardial infarct NOS" and the Spanish terms are left out.
    assert_eq!(
        synonyms,
        [
            (
                "Myocardial infarction (disorder)",
                SynonymKind::FullySpecifiedName
            ),
            ("Cardiac infarction", SynonymKind::Exact),
            ("Heart attack", SynonymKind::Exact),
            ("Infarction of heart", SynonymKind::Exact),
            ("MI - Myocardial infarction", SynonymKind::Exact),
        ]
    );
    assert_eq!(mi.types, ["disorder"]);
    assert_eq!(concept(&loaded, "SNOMEDCT:404684003").types, ["finding"]);
    let root_concept = concept(&loaded, "SNOMEDCT:138875005");
    assert_eq!(root_concept.name, "SNOMED CT Concept");
    assert_eq!(root_concept.types, ["SNOMED RT+CTV3"]);
}

#[test]
fn snomed_parents_come_from_active_is_a_relationships() {
    let loaded = load_snomed(&root(), &LoadOptions::default()).unwrap();
    // 22298006: the inactive is-a to 404684003, the finding site and the stated is-a to the
    // root are not parents; 414545008 is a parent although it is not in the fixture.
    assert_eq!(
        concept(&loaded, "SNOMEDCT:22298006").parents,
        ["SNOMEDCT:64572001", "SNOMEDCT:414545008"]
    );
    assert_eq!(
        concept(&loaded, "SNOMEDCT:57054005").parents,
        ["SNOMEDCT:22298006"]
    );
    assert_eq!(
        concept(&loaded, "SNOMEDCT:404684003").parents,
        ["SNOMEDCT:138875005"]
    );
    assert!(concept(&loaded, "SNOMEDCT:138875005").parents.is_empty());
    // The inactive concept's only is-a is inactive.
    assert!(concept(&loaded, "SNOMEDCT:155305003").parents.is_empty());
}

#[test]
fn snomed_language_refset_picks_the_preferred_name_us_first() {
    let loaded = load_snomed(&root(), &LoadOptions::default()).unwrap();
    // No synonym equals the FSN minus its tag; the US refset prefers "Hypertensive disorder"
    // (its row preferring "High blood pressure" is inactive).
    assert_eq!(
        concept(&loaded, "SNOMEDCT:38341003").name,
        "Hypertensive disorder"
    );
    // GB rows come first in the refset and prefer "Oedema"; US English wins.
    let edema = concept(&loaded, "SNOMEDCT:267038008");
    assert_eq!(edema.name, "Edema");
    assert!(edema.synonyms.iter().any(|s| s.text == "Oedema"));
    // Not in the refset: the synonym equal to the FSN minus its tag, though "Disorder" is first.
    assert_eq!(concept(&loaded, "SNOMEDCT:64572001").name, "Disease");
}

#[test]
fn snomed_without_refset_names_follow_the_fsn_then_file_order() {
    let loaded = load_snomed(&terminology(), &LoadOptions::default()).unwrap();
    assert_eq!(loaded.concepts.len(), 8);
    assert_eq!(loaded.files.len(), 4);
    assert_eq!(concept(&loaded, "SNOMEDCT:64572001").name, "Disease");
    assert_eq!(concept(&loaded, "SNOMEDCT:267038008").name, "Edema");
    // No synonym equals "Hypertensive disorder, systemic arterial": the first one names it.
    assert_eq!(
        concept(&loaded, "SNOMEDCT:38341003").name,
        "High blood pressure"
    );
}

#[test]
fn snomed_gb_refset_alone_prefers_gb_spelling() {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(terminology()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).unwrap();
    }
    let refset_name = "der2_cRefset_LanguageSnapshot-en_INT_20250101.txt";
    let refset =
        std::fs::read_to_string(root().join("Snapshot/Refset/Language").join(refset_name)).unwrap();
    let gb_only: String = refset
        .split_inclusive('\n')
        .enumerate()
        .filter(|(i, line)| *i == 0 || line.contains("\t900000000000508004\t"))
        .map(|(_, line)| line)
        .collect();
    std::fs::write(tmp.path().join(refset_name), gb_only).unwrap();
    let loaded = load_snomed(tmp.path(), &LoadOptions::default()).unwrap();
    assert_eq!(concept(&loaded, "SNOMEDCT:267038008").name, "Oedema");
}

#[test]
fn snomed_language_filter() {
    let all = load_snomed(&root(), &languages(&[])).unwrap();
    assert_eq!(all.concepts.len(), 8);
    let mi = concept(&all, "SNOMEDCT:22298006");
    assert_eq!(mi.name, "Myocardial infarction");
    assert_eq!(mi.types, ["disorder", "trastorno"]);
    assert!(mi
        .synonyms
        .iter()
        .any(|s| s.text == "infarto de miocardio" && s.kind == SynonymKind::Exact));
    assert!(mi
        .synonyms
        .iter()
        .any(|s| s.text == "infarto de miocardio (trastorno)"
            && s.kind == SynonymKind::FullySpecifiedName));

    // Only 22298006 has Spanish descriptions; the other 7 concepts cannot be named.
    let spanish = load_snomed(&root(), &languages(&["es"])).unwrap();
    assert_eq!(ids(&spanish), ["SNOMEDCT:22298006"]);
    assert_eq!(spanish.concepts[0].name, "infarto de miocardio");
    assert_eq!(spanish.concepts[0].types, ["trastorno"]);
    assert_eq!(spanish.warnings.len(), 1, "{:?}", spanish.warnings);
    assert!(
        spanish.warnings[0].starts_with("7 concepts"),
        "{:?}",
        spanish.warnings
    );
}

#[test]
fn snomed_accepts_release_root_snapshot_terminology_or_a_file() {
    let from_root = load_snomed(&root(), &LoadOptions::default()).unwrap();
    let from_snapshot = load_snomed(&root().join("Snapshot"), &LoadOptions::default()).unwrap();
    assert_eq!(from_root.concepts, from_snapshot.concepts);
    // A file stands for its folder (here without the refset, which lives elsewhere).
    let file = terminology().join("sct2_Concept_Snapshot_INT_20250101.txt");
    let from_file = load_snomed(&file, &LoadOptions::default()).unwrap();
    let from_terminology = load_snomed(&terminology(), &LoadOptions::default()).unwrap();
    assert_eq!(from_file.concepts, from_terminology.concepts);
}

#[test]
fn snomed_semantic_tags() {
    macro_rules! t {
        ($fsn:expr, $base:expr, $tag:expr) => {
            assert_eq!(split_semantic_tag($fsn), ($base, $tag), "fsn {:?}", $fsn);
        };
    }
    t!(
        "Myocardial infarction (disorder)",
        "Myocardial infarction",
        Some("disorder")
    );
    t!(
        "SNOMED CT Concept (SNOMED RT+CTV3)",
        "SNOMED CT Concept",
        Some("SNOMED RT+CTV3")
    );
    t!(
        "Fracture (morphologic abnormality) ",
        "Fracture",
        Some("morphologic abnormality")
    );
    t!("Calcium(2+) (substance)", "Calcium(2+)", Some("substance"));
    t!("Foo (bar (baz))", "Foo", Some("bar (baz)"));
    t!("Calcium(2+)", "Calcium(2+)", None);
    t!("(finding)", "(finding)", None);
    t!("Thing ()", "Thing ()", None);
    t!("unbalanced)", "unbalanced)", None);
    t!("a (b))", "a (b))", None);
    t!("plain term", "plain term", None);
    t!("", "", None);
}

// --- malformed input -------------------------------------------------------------------------

const CONCEPT_HEADER: &str = "id\teffectiveTime\tactive\tmoduleId\tdefinitionStatusId";
const DESCRIPTION_HEADER: &str =
    "id\teffectiveTime\tactive\tmoduleId\tconceptId\tlanguageCode\ttypeId\tterm\tcaseSignificanceId";
const RELATIONSHIP_HEADER: &str = "id\teffectiveTime\tactive\tmoduleId\tsourceId\tdestinationId\trelationshipGroup\ttypeId\tcharacteristicTypeId\tmodifierId";
const CONCEPT_ROW: &str = "22298006\t20020131\t1\t900000000000207008\t900000000000073002";
const DESCRIPTION_ROW: &str = "37436014\t20020131\t1\t900000000000207008\t22298006\ten\t900000000000013009\tMyocardial infarction\t900000000000448009";
const RELATIONSHIP_ROW: &str = "2003020\t20020131\t1\t900000000000207008\t22298006\t64572001\t0\t116680003\t900000000000011006\t900000000000451002";

const CONCEPT_FILE: &str = "sct2_Concept_Snapshot_INT_20250101.txt";
const DESCRIPTION_FILE: &str = "sct2_Description_Snapshot-en_INT_20250101.txt";
const RELATIONSHIP_FILE: &str = "sct2_Relationship_Snapshot_INT_20250101.txt";

/// Writes the three RF2 files (bytes as given) into a temp dir and loads it.
fn load_rf2(
    concepts: &[u8],
    descriptions: &[u8],
    relationships: &[u8],
) -> (tempfile::TempDir, medlink::Result<Loaded>) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join(CONCEPT_FILE), concepts).unwrap();
    std::fs::write(tmp.path().join(DESCRIPTION_FILE), descriptions).unwrap();
    std::fs::write(tmp.path().join(RELATIONSHIP_FILE), relationships).unwrap();
    let result = load_snomed(tmp.path(), &LoadOptions::default());
    (tmp, result)
}

fn good_concepts() -> String {
    format!("{CONCEPT_HEADER}\r\n{CONCEPT_ROW}\r\n")
}

fn good_descriptions() -> String {
    format!("{DESCRIPTION_HEADER}\r\n{DESCRIPTION_ROW}\r\n")
}

fn good_relationships() -> String {
    format!("{RELATIONSHIP_HEADER}\r\n{RELATIONSHIP_ROW}\r\n")
}

/// Asserts a parse error at `file:line`, naming `field` when given.
fn assert_parse_error(
    result: medlink::Result<Loaded>,
    file: &str,
    line: usize,
    field: Option<&str>,
) {
    let err = match result {
        Ok(l) => panic!(
            "expected a parse error, loaded {} concepts",
            l.concepts.len()
        ),
        Err(e) => e,
    };
    let shown = err.to_string();
    match &err {
        Error::Parse {
            path,
            line: got,
            field: got_field,
            ..
        } => {
            assert!(path.ends_with(file), "{shown}");
            assert_eq!(*got, line, "{shown}");
            assert_eq!(got_field.as_deref(), field, "{shown}");
        }
        other => panic!("expected Error::Parse, got {other:?}"),
    }
    assert!(shown.contains(&format!("{file}:{line}:")), "{shown}");
    if let Some(field) = field {
        assert!(shown.contains(&format!("`{field}`")), "{shown}");
    }
}

#[test]
fn snomed_minimal_release_loads() {
    let (_tmp, result) = load_rf2(
        good_concepts().as_bytes(),
        good_descriptions().as_bytes(),
        good_relationships().as_bytes(),
    );
    let loaded = result.unwrap();
    assert_eq!(ids(&loaded), ["SNOMEDCT:22298006"]);
    assert_eq!(loaded.concepts[0].name, "Myocardial infarction");
    assert_eq!(loaded.concepts[0].parents, ["SNOMEDCT:64572001"]);
}

#[test]
fn snomed_malformed_wrong_column_count() {
    let concepts = format!("{}{CONCEPT_ROW}\t1\r\n", good_concepts());
    let (_tmp, result) = load_rf2(
        concepts.as_bytes(),
        good_descriptions().as_bytes(),
        good_relationships().as_bytes(),
    );
    assert_parse_error(result, CONCEPT_FILE, 3, None);
}

#[test]
fn snomed_malformed_truncated_line() {
    let cut = &RELATIONSHIP_ROW[..RELATIONSHIP_ROW.len() - 30];
    let relationships = format!("{}{cut}", good_relationships());
    let (_tmp, result) = load_rf2(
        good_concepts().as_bytes(),
        good_descriptions().as_bytes(),
        relationships.as_bytes(),
    );
    assert_parse_error(result, RELATIONSHIP_FILE, 3, None);
}

#[test]
fn snomed_malformed_invalid_utf8() {
    let mut descriptions = good_descriptions().into_bytes();
    descriptions.extend_from_slice(
        DESCRIPTION_ROW
            .replace("infarction", "infarcti@n")
            .as_bytes(),
    );
    let at = descriptions.iter().rposition(|&b| b == b'@').unwrap();
    descriptions[at] = 0xF3; // Latin-1 ó
    let (_tmp, result) = load_rf2(
        good_concepts().as_bytes(),
        &descriptions,
        good_relationships().as_bytes(),
    );
    assert_parse_error(result, DESCRIPTION_FILE, 3, None);
}

#[test]
fn snomed_malformed_active_flag_names_the_field() {
    let concepts = format!(
        "{CONCEPT_HEADER}\n{}\n",
        CONCEPT_ROW.replace("\t1\t", "\tyes\t")
    );
    let (_tmp, result) = load_rf2(
        concepts.as_bytes(),
        good_descriptions().as_bytes(),
        good_relationships().as_bytes(),
    );
    assert_parse_error(result, CONCEPT_FILE, 2, Some("active"));
}

#[test]
fn snomed_malformed_ids_and_dates_name_the_field() {
    let descriptions = format!(
        "{}{}\r\n",
        good_descriptions(),
        DESCRIPTION_ROW.replace("\t22298006\t", "\t22298006X\t")
    );
    let (_tmp, result) = load_rf2(
        good_concepts().as_bytes(),
        descriptions.as_bytes(),
        good_relationships().as_bytes(),
    );
    assert_parse_error(result, DESCRIPTION_FILE, 3, Some("conceptId"));

    let relationships = format!(
        "{}{}\r\n",
        good_relationships(),
        RELATIONSHIP_ROW.replace("20020131", "2002-01-31")
    );
    let (_tmp, result) = load_rf2(
        good_concepts().as_bytes(),
        good_descriptions().as_bytes(),
        relationships.as_bytes(),
    );
    assert_parse_error(result, RELATIONSHIP_FILE, 3, Some("effectiveTime"));
}

#[test]
fn snomed_malformed_header() {
    // A renamed column names the column it should have been.
    let descriptions = good_descriptions().replace("conceptId", "conceptID");
    let (_tmp, result) = load_rf2(
        good_concepts().as_bytes(),
        descriptions.as_bytes(),
        good_relationships().as_bytes(),
    );
    assert_parse_error(result, DESCRIPTION_FILE, 1, Some("conceptId"));

    // A missing header: the first data row is read as a header and rejected.
    let (_tmp, result) = load_rf2(
        format!("{CONCEPT_ROW}\n").as_bytes(),
        good_descriptions().as_bytes(),
        good_relationships().as_bytes(),
    );
    assert_parse_error(result, CONCEPT_FILE, 1, Some("id"));

    // A header with too few columns.
    let relationships = good_relationships().replace("\tmodifierId", "");
    let (_tmp, result) = load_rf2(
        good_concepts().as_bytes(),
        good_descriptions().as_bytes(),
        relationships.as_bytes(),
    );
    assert_parse_error(result, RELATIONSHIP_FILE, 1, None);

    // An empty file.
    let (_tmp, result) = load_rf2(
        b"",
        good_descriptions().as_bytes(),
        good_relationships().as_bytes(),
    );
    assert_parse_error(result, CONCEPT_FILE, 1, None);
}

#[test]
fn snomed_missing_description_file_is_an_io_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join(CONCEPT_FILE), good_concepts()).unwrap();
    let err = load_snomed(tmp.path(), &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("sct2_Description_"), "{err}");

    let err = load_snomed(&tmp.path().join("absent"), &LoadOptions::default()).unwrap_err();
    assert!(err.to_string().contains("absent"), "{err}");
}

#[test]
fn snomed_missing_relationship_file_is_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join(CONCEPT_FILE), good_concepts()).unwrap();
    std::fs::write(tmp.path().join(DESCRIPTION_FILE), good_descriptions()).unwrap();
    let loaded = load_snomed(tmp.path(), &LoadOptions::default()).unwrap();
    assert_eq!(loaded.concepts.len(), 1);
    assert!(loaded.concepts[0].parents.is_empty());
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
}

#[test]
fn snomed_full_release_files_alone_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("sct2_Concept_Full_INT_20250101.txt"),
        good_concepts(),
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("sct2_Description_Full-en_INT_20250101.txt"),
        good_descriptions(),
    )
    .unwrap();
    let err = load_snomed(tmp.path(), &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    assert!(err.to_string().contains("Snapshot"), "{err}");
}

#[test]
fn snomed_orphan_descriptions_and_relationships_are_warnings() {
    let descriptions = format!(
        "{}{}\r\n",
        good_descriptions(),
        DESCRIPTION_ROW.replace("\t22298006\t", "\t64572001\t")
    );
    let relationships = format!(
        "{}{}\r\n",
        good_relationships(),
        RELATIONSHIP_ROW.replace("\t22298006\t64572001\t", "\t64572001\t404684003\t")
    );
    let (_tmp, result) = load_rf2(
        good_concepts().as_bytes(),
        descriptions.as_bytes(),
        relationships.as_bytes(),
    );
    let loaded = result.unwrap();
    assert_eq!(loaded.concepts.len(), 1);
    assert_eq!(loaded.warnings.len(), 2, "{:?}", loaded.warnings);
}

/// A row of RF2-ish tokens, so that many cases get past the header and column checks.
fn rf2_line(columns: usize) -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("22298006".to_string()),
        Just("64572001".to_string()),
        Just("116680003".to_string()),
        Just("900000000000003001".to_string()),
        Just("900000000000013009".to_string()),
        Just("20020131".to_string()),
        Just("0".to_string()),
        Just("1".to_string()),
        Just("en".to_string()),
        Just("es".to_string()),
        Just(String::new()),
        "[ -~]{0,8}",
        "\\PC{0,4}",
        "[a-z ]{1,10}\\([a-z]{0,6}\\)",
    ];
    // Mostly the header's column count, sometimes any.
    prop_oneof![
        3 => prop::collection::vec(piece.clone(), columns..=columns),
        1 => prop::collection::vec(piece, 0..11),
    ]
    .prop_map(|cols| cols.join("\t"))
}

fn rf2_file(header: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let columns = header.split('\t').count();
    (
        prop::bool::weighted(0.9),
        prop::collection::vec(rf2_line(columns), 0..6),
    )
        .prop_map(move |(with_header, rows)| {
            // Mostly with the header, so rows are reached.
            let mut text = if with_header {
                format!("{header}\r\n")
            } else {
                String::new()
            };
            text.push_str(&rows.join("\r\n"));
            text.into_bytes()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn snomed_arbitrary_bytes_never_panic(
        concepts in prop::collection::vec(any::<u8>(), 0..256),
        descriptions in prop::collection::vec(any::<u8>(), 0..256),
        relationships in prop::collection::vec(any::<u8>(), 0..256),
        which in 0usize..3,
    ) {
        // Keep two files valid so the arbitrary one is actually reached.
        let good = [good_concepts().into_bytes(), good_descriptions().into_bytes(), good_relationships().into_bytes()];
        let files = match which {
            0 => [concepts, good[1].clone(), good[2].clone()],
            1 => [good[0].clone(), descriptions, good[2].clone()],
            _ => [good[0].clone(), good[1].clone(), relationships],
        };
        let (_tmp, result) = load_rf2(&files[0], &files[1], &files[2]);
        if let Err(e) = result {
            prop_assert!(matches!(e, Error::Parse { .. }), "{e:?}");
        }
    }

    #[test]
    fn snomed_arbitrary_rf2_rows_never_panic(
        concepts in rf2_file(CONCEPT_HEADER),
        descriptions in rf2_file(DESCRIPTION_HEADER),
        relationships in rf2_file(RELATIONSHIP_HEADER),
    ) {
        let (_tmp, result) = load_rf2(&concepts, &descriptions, &relationships);
        match result {
            Ok(loaded) => {
                for c in &loaded.concepts {
                    prop_assert!(c.id.starts_with("SNOMEDCT:"));
                    prop_assert!(!c.name.is_empty());
                }
            }
            Err(e) => prop_assert!(matches!(e, Error::Parse { .. }), "{e:?}"),
        }
    }
}
