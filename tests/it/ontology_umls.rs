//! Tests for the UMLS RRF loader, through the public `ontology::load` entry.
//!
//! `tests/fixtures/umls` is hand-made in the exact MRCONSO / MRSTY layout: 29 rows over 6 CUIs
//! with English, French, Spanish and German strings, suppressed rows (`O`, `E`, `Y`), several
//! sources, abbreviation term types and a preferred row that is not its CUI's first row.

use std::path::{Path, PathBuf};

use medlink::ontology::{load, Concept, Format, LoadOptions, Loaded, OntologySpec, SynonymKind};
use medlink::Error;
use proptest::prelude::*;

use crate::common;

fn load_umls(path: &Path, opts: &LoadOptions) -> medlink::Result<Loaded> {
    let spec: OntologySpec = format!("umls:{}", path.display()).parse()?;
    assert_eq!(spec.format, Format::Umls);
    load(&spec, opts)
}

fn fixture_dir() -> PathBuf {
    common::fixture("umls")
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

fn synonym_texts(c: &Concept) -> Vec<&str> {
    c.synonyms.iter().map(|s| s.text.as_str()).collect()
}

fn opts(languages: &[&str], sources: &[&str], include_suppressed: bool) -> LoadOptions {
    LoadOptions {
        languages: languages.iter().map(|s| s.to_string()).collect(),
        umls_sources: sources.iter().map(|s| s.to_string()).collect(),
        include_suppressed,
    }
}

#[test]
fn umls_fixture_default_options_keep_english_unsuppressed_cuis() {
    let loaded = load_umls(&fixture_dir(), &LoadOptions::default()).unwrap();
    // awk -F'|' '$2=="ENG" && $17=="N" {print $1}' MRCONSO.RRF | sort -u  -> 4 CUIs,
    // listed here in order of first appearance.
    assert_eq!(
        ids(&loaded),
        [
            "UMLS:C0027051",
            "UMLS:C0155626",
            "UMLS:C0020538",
            "UMLS:C0085580"
        ]
    );
    assert!(loaded.concepts.iter().all(|c| !c.obsolete));
    assert_eq!(
        loaded.files,
        [
            fixture_dir().join("MRCONSO.RRF"),
            fixture_dir().join("MRSTY.RRF")
        ]
    );
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn umls_preferred_row_names_the_concept_even_when_not_first() {
    let loaded = load_umls(&fixture_dir(), &LoadOptions::default()).unwrap();
    let mi = concept(&loaded, "UMLS:C0027051");
    // Row 1 is TS=P but STT=VC; row 2 is the TS=P / STT=PF / ISPREF=Y string.
    assert_eq!(mi.name, "Myocardial Infarction");
    // Exact duplicates (NCI "Myocardial Infarction") are dropped; case variants are kept.
    assert_eq!(
        synonym_texts(mi),
        [
            "Myocardial infarction",
            "Heart Attack",
            "Heart attack",
            "MI",
            "Infarction, Myocardial"
        ]
    );
    let kinds: Vec<SynonymKind> = mi.synonyms.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [
            SynonymKind::Unspecified,
            SynonymKind::Unspecified,
            SynonymKind::Unspecified,
            SynonymKind::Abbreviation,
            SynonymKind::Unspecified
        ]
    );
    // The preferred row may also be the first one.
    let ami = concept(&loaded, "UMLS:C0155626");
    assert_eq!(ami.name, "Acute myocardial infarction");
    assert_eq!(
        synonym_texts(ami),
        ["AMI", "Acute myocardial infarction, unspecified"]
    );
    assert_eq!(ami.synonyms[0].kind, SynonymKind::Abbreviation);
}

#[test]
fn umls_without_preferred_row_falls_back_to_first_kept_string() {
    // Only MSH rows kept: C0020538's preferred string comes from MTH and is filtered out.
    let loaded = load_umls(&fixture_dir(), &opts(&["ENG"], &["MSH"], false)).unwrap();
    let htn = concept(&loaded, "UMLS:C0020538");
    assert_eq!(htn.name, "Hypertension");
    assert!(htn.synonyms.is_empty());
}

#[test]
fn umls_xrefs_map_known_sources_and_skip_nocode() {
    let loaded = load_umls(&fixture_dir(), &LoadOptions::default()).unwrap();
    assert_eq!(
        concept(&loaded, "UMLS:C0027051").xrefs,
        ["SNOMEDCT:22298006", "MESH:D009203", "NCIT:C27996"]
    );
    assert_eq!(
        concept(&loaded, "UMLS:C0155626").xrefs,
        [
            "SNOMEDCT:57054005",
            "ICD10CM:I21",
            "NCIT:C35221",
            "ICD10CM:I21.9"
        ]
    );
    // HPO codes already carry `HP:`; MTH and OMIM rows with NOCODE give no xref.
    assert_eq!(
        concept(&loaded, "UMLS:C0020538").xrefs,
        ["MESH:D006973", "HP:0000822", "SNOMEDCT:38341003"]
    );
    assert_eq!(
        concept(&loaded, "UMLS:C0085580").xrefs,
        ["MESH:D000075222", "OMIM:145500"]
    );
}

#[test]
fn umls_mrsty_types_are_deduplicated_and_unknown_cuis_ignored() {
    let loaded = load_umls(&fixture_dir(), &LoadOptions::default()).unwrap();
    assert_eq!(
        concept(&loaded, "UMLS:C0027051").types,
        ["Disease or Syndrome"]
    );
    // MRSTY lists T047 twice for C0085580.
    assert_eq!(
        concept(&loaded, "UMLS:C0085580").types,
        ["Disease or Syndrome", "Finding"]
    );
}

#[test]
fn umls_suppressed_rows_dropped_unless_asked_for() {
    let loaded = load_umls(&fixture_dir(), &opts(&["ENG"], &[], true)).unwrap();
    // awk -F'|' '$2=="ENG" {print $1}' MRCONSO.RRF | sort -u | wc -l  -> 5
    assert_eq!(loaded.concepts.len(), 5);
    let anemia = concept(&loaded, "UMLS:C0002871");
    assert_eq!(anemia.name, "Anemia");
    assert_eq!(synonym_texts(anemia), ["Anemias"]);
    // SUPPRESS O, E and Y rows of C0027051 all come back.
    let mi = concept(&loaded, "UMLS:C0027051");
    for text in ["Cardiac infarction NOS", "Infarct of heart", "Attack heart"] {
        assert!(synonym_texts(mi).contains(&text), "{text} missing");
    }
    assert!(mi.xrefs.contains(&"SNOMEDCT:155305003".to_string()));

    let default = load_umls(&fixture_dir(), &LoadOptions::default()).unwrap();
    let mi = concept(&default, "UMLS:C0027051");
    for text in ["Cardiac infarction NOS", "Infarct of heart", "Attack heart"] {
        assert!(!synonym_texts(mi).contains(&text), "{text} kept");
    }
}

#[test]
fn umls_language_filter() {
    // Every language: awk -F'|' '$17=="N" {print $1}' MRCONSO.RRF | sort -u | wc -l  -> 5
    let all = load_umls(&fixture_dir(), &opts(&[], &[], false)).unwrap();
    assert_eq!(all.concepts.len(), 5);
    let heart = concept(&all, "UMLS:C0018787");
    assert_eq!(heart.name, "Cœur");
    assert_eq!(synonym_texts(heart), ["Corazón"]);
    assert_eq!(heart.types, ["Body Part, Organ, or Organ Component"]);
    // The German preferred row comes first, but the English one names the concept.
    let htn = concept(&all, "UMLS:C0020538");
    assert_eq!(htn.name, "Hypertensive disease");
    assert_eq!(
        synonym_texts(htn),
        ["Hypertonie", "Hypertension", "Hypertensive disorder"]
    );

    // Languages compare on their first two letters: `GER` keeps LAT `GER`.
    let german = load_umls(&fixture_dir(), &opts(&["GER"], &[], false)).unwrap();
    assert_eq!(ids(&german), ["UMLS:C0020538"]);
    assert_eq!(german.concepts[0].name, "Hypertonie");

    let french = load_umls(&fixture_dir(), &opts(&["fr"], &[], false)).unwrap();
    assert_eq!(ids(&french), ["UMLS:C0027051", "UMLS:C0018787"]);
    assert_eq!(french.concepts[0].name, "Infarctus du myocarde");

    let everything = load_umls(&fixture_dir(), &opts(&[], &[], true)).unwrap();
    assert_eq!(everything.concepts.len(), 6);
}

#[test]
fn umls_source_filter() {
    // awk -F'|' '$2=="ENG" && $17=="N" && $12=="MSH" {print $1}' | sort -u -> 3 CUIs
    let msh = load_umls(&fixture_dir(), &opts(&["ENG"], &["msh"], false)).unwrap();
    assert_eq!(
        ids(&msh),
        ["UMLS:C0027051", "UMLS:C0020538", "UMLS:C0085580"]
    );
    let mi = concept(&msh, "UMLS:C0027051");
    assert_eq!(mi.name, "Myocardial Infarction");
    assert_eq!(
        synonym_texts(mi),
        ["Heart Attack", "Infarction, Myocardial"]
    );
    assert_eq!(mi.xrefs, ["MESH:D009203"]);

    let sct = load_umls(&fixture_dir(), &opts(&["ENG"], &["SNOMEDCT_US"], false)).unwrap();
    assert_eq!(
        ids(&sct),
        ["UMLS:C0027051", "UMLS:C0155626", "UMLS:C0020538"]
    );
    // No SNOMED row of C0027051 is the UMLS preferred string: the first kept one names it.
    assert_eq!(sct.concepts[0].name, "Myocardial infarction");
    assert_eq!(synonym_texts(&sct.concepts[0]), ["Heart attack"]);

    let both = load_umls(&fixture_dir(), &opts(&["ENG"], &["MSH", "NCI"], false)).unwrap();
    assert_eq!(both.concepts.len(), 4);
}

#[test]
fn umls_accepts_the_mrconso_file_itself() {
    let conso = fixture_dir().join("MRCONSO.RRF");
    let from_file = load_umls(&conso, &LoadOptions::default()).unwrap();
    let from_dir = load_umls(&fixture_dir(), &LoadOptions::default()).unwrap();
    assert_eq!(from_file.concepts, from_dir.concepts);
    assert_eq!(from_file.files, from_dir.files);
}

#[test]
fn umls_scispacy_fixture_real_counts() {
    let dir = common::shared_data("fixtures/scispacy_umls_fixtures/umls_META");
    let loaded = load_umls(&dir, &LoadOptions::default()).unwrap();
    // 3 MRCONSO rows, all ENG / MSH / SUPPRESS=N, over 2 CUIs:
    // awk -F'|' '$2=="ENG" && $17=="N" {print $1}' MRCONSO.RRF | sort -u | wc -l  -> 2.
    // The files have no final newline; the last row must still be read.
    assert_eq!(ids(&loaded), ["UMLS:C0000005", "UMLS:C0000039"]);
    let albumin = &loaded.concepts[0];
    assert_eq!(albumin.name, "(131)I-Macroaggregated Albumin");
    assert_eq!(synonym_texts(albumin), ["(131)I-MAA"]);
    assert_eq!(albumin.xrefs, ["MESH:D012711"]);
    assert_eq!(albumin.types, ["Amino Acid, Peptide, or Protein"]);
    // C0000039's only row has ISPREF=N: the fallback names it.
    let dppc = &loaded.concepts[1];
    assert_eq!(dppc.name, "1,2-Dipalmitoylphosphatidylcholine");
    assert!(dppc.synonyms.is_empty());
    assert_eq!(dppc.xrefs, ["MESH:D015060"]);
    // MRSTY has 3 rows: 1 type for C0000005, 2 for C0000039.
    assert_eq!(dppc.types, ["Organic Chemical", "Pharmacologic Substance"]);
    assert_eq!(loaded.files.len(), 2);
    assert_eq!(loaded.version, None);
}

#[test]
fn umls_release_version_comes_from_the_folder_name() {
    let tmp = tempfile::tempdir().unwrap();
    let meta = tmp.path().join("2024AA").join("META");
    std::fs::create_dir_all(&meta).unwrap();
    std::fs::copy(fixture_dir().join("MRCONSO.RRF"), meta.join("MRCONSO.RRF")).unwrap();
    let loaded = load_umls(&meta, &LoadOptions::default()).unwrap();
    assert_eq!(loaded.version.as_deref(), Some("2024AA"));
    // No MRSTY beside it: loaded without types, with a warning.
    assert_eq!(loaded.files, [meta.join("MRCONSO.RRF")]);
    assert!(loaded.concepts.iter().all(|c| c.types.is_empty()));
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
}

#[test]
fn umls_reads_gzipped_mrconso() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let raw = std::fs::read(fixture_dir().join("MRCONSO.RRF")).unwrap();
    let file = std::fs::File::create(tmp.path().join("MRCONSO.RRF.gz")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    gz.finish().unwrap();
    std::fs::copy(
        fixture_dir().join("MRSTY.RRF"),
        tmp.path().join("MRSTY.RRF"),
    )
    .unwrap();
    let loaded = load_umls(tmp.path(), &LoadOptions::default()).unwrap();
    let plain = load_umls(&fixture_dir(), &LoadOptions::default()).unwrap();
    assert_eq!(loaded.concepts, plain.concepts);
}

const GOOD_ROW: &str =
    "C0027051|ENG|P|L0027051|PF|S0064477|Y|A0088480||M0014340|D009203|MSH|MH|D009203|Myocardial Infarction|0|N|256|";

/// Writes `conso` (and `sty`, if given) into a temp dir and loads it.
fn load_bytes(conso: &[u8], sty: Option<&[u8]>) -> (tempfile::TempDir, medlink::Result<Loaded>) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("MRCONSO.RRF"), conso).unwrap();
    if let Some(sty) = sty {
        std::fs::write(tmp.path().join("MRSTY.RRF"), sty).unwrap();
    }
    let result = load_umls(tmp.path(), &LoadOptions::default());
    (tmp, result)
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
fn umls_malformed_wrong_column_count() {
    let conso = format!("{GOOD_ROW}\nC0000001|ENG|P|extra|{GOOD_ROW}\n");
    let (_tmp, result) = load_bytes(conso.as_bytes(), None);
    assert_parse_error(result, "MRCONSO.RRF", 2, None);
}

#[test]
fn umls_malformed_truncated_last_line() {
    // A download cut off mid-row: the last line has too few columns.
    let cut = &GOOD_ROW[..GOOD_ROW.len() - 12];
    let conso = format!("{GOOD_ROW}\n{GOOD_ROW}\n{cut}");
    let (_tmp, result) = load_bytes(conso.as_bytes(), None);
    assert_parse_error(result, "MRCONSO.RRF", 3, None);
}

#[test]
fn umls_malformed_invalid_utf8() {
    // Latin-1 é where UTF-8 belongs.
    let bad_row = GOOD_ROW.replace("Myocardial Infarction", "Myoc@rdial Infarction");
    let mut conso = format!("{GOOD_ROW}\n{bad_row}\n").into_bytes();
    let at = conso.iter().rposition(|&b| b == b'@').unwrap();
    conso[at] = 0xE9;
    let (_tmp, result) = load_bytes(&conso, None);
    assert_parse_error(result, "MRCONSO.RRF", 2, None);
}

#[test]
fn umls_malformed_empty_cui_names_the_field() {
    let conso = format!("{GOOD_ROW}\n{}\n", &GOOD_ROW[8..]);
    let (_tmp, result) = load_bytes(conso.as_bytes(), None);
    assert_parse_error(result, "MRCONSO.RRF", 2, Some("CUI"));
}

#[test]
fn umls_malformed_suppress_flag_names_the_field() {
    let conso = format!("{}\n", GOOD_ROW.replace("|N|256|", "|X|256|"));
    let (_tmp, result) = load_bytes(conso.as_bytes(), None);
    assert_parse_error(result, "MRCONSO.RRF", 1, Some("SUPPRESS"));
}

#[test]
fn umls_malformed_mrsty() {
    let conso = format!("{GOOD_ROW}\n");
    let sty = b"C0027051|T047|B2.2.1.2.1|Disease or Syndrome|AT1|256|\nC0027051|T047|B2.2.1.2.1|Disease or Syndrome|\n";
    let (_tmp, result) = load_bytes(conso.as_bytes(), Some(sty));
    assert_parse_error(result, "MRSTY.RRF", 2, None);

    let sty = b"C0027051|T047|B2.2.1.2.1||AT1|256|\n";
    let (_tmp, result) = load_bytes(conso.as_bytes(), Some(sty));
    assert_parse_error(result, "MRSTY.RRF", 1, Some("STY"));
}

#[test]
fn umls_missing_mrconso_is_an_io_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let err = load_umls(tmp.path(), &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("MRCONSO.RRF"), "{err}");

    let missing = tmp.path().join("nowhere");
    let err = load_umls(&missing, &LoadOptions::default()).unwrap_err();
    assert!(err.to_string().contains("nowhere"), "{err}");
}

#[test]
fn umls_blank_lines_and_crlf_are_tolerated() {
    let conso = format!("{GOOD_ROW}\r\n\r\n{GOOD_ROW}\r\n");
    let (_tmp, result) = load_bytes(conso.as_bytes(), None);
    let loaded = result.unwrap();
    assert_eq!(ids(&loaded), ["UMLS:C0027051"]);
    assert_eq!(loaded.concepts[0].name, "Myocardial Infarction");
}

/// Rows assembled from RRF-ish pieces, so that many cases get past the column check.
fn rrf_line() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("C0000001".to_string()),
        Just("C0000002".to_string()),
        Just("ENG".to_string()),
        Just("FRE".to_string()),
        Just("P".to_string()),
        Just("PF".to_string()),
        Just("Y".to_string()),
        Just("N".to_string()),
        Just("O".to_string()),
        Just("MSH".to_string()),
        Just("HPO".to_string()),
        Just("NOCODE".to_string()),
        Just("AB".to_string()),
        Just(String::new()),
        "[ -~]{0,6}",
        "\\PC{0,4}",
    ];
    // Mostly the right column count (18, or 19 with the trailing pipe), sometimes any.
    prop_oneof![
        3 => prop::collection::vec(piece.clone(), 18..=19),
        1 => prop::collection::vec(piece, 0..21),
    ]
    .prop_map(|cols| cols.join("|"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn umls_arbitrary_bytes_never_panic(
        conso in prop::collection::vec(any::<u8>(), 0..512),
        sty in prop::option::of(prop::collection::vec(any::<u8>(), 0..256)),
    ) {
        let (_tmp, result) = load_bytes(&conso, sty.as_deref());
        if let Err(e) = result {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn umls_arbitrary_rrf_rows_never_panic(
        rows in prop::collection::vec(rrf_line(), 0..8),
        sty_rows in prop::collection::vec(rrf_line(), 0..4),
        all in any::<bool>(),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("MRCONSO.RRF"), rows.join("\n")).unwrap();
        std::fs::write(tmp.path().join("MRSTY.RRF"), sty_rows.join("\n")).unwrap();
        let options = if all { opts(&[], &[], true) } else { LoadOptions::default() };
        match load_umls(tmp.path(), &options) {
            Ok(loaded) => {
                for c in &loaded.concepts {
                    prop_assert!(c.id.starts_with("UMLS:"));
                    prop_assert!(!c.name.is_empty());
                }
            }
            Err(e) => prop_assert!(matches!(e, Error::Parse { .. }), "{e:?}"),
        }
    }
}
