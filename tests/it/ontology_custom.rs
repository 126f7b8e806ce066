//! Tests for the MeSH labels CSV, custom TSV and custom JSONL loaders: the real MeSH file, the
//! sample vocabularies under `ontologies/samples`, malformed input with file:line:field errors,
//! and arbitrary bytes.

use std::path::{Path, PathBuf};

use medlink::ontology::custom::{read_jsonl, read_mesh_csv, read_tsv};
use medlink::ontology::{self, LoadOptions, Loaded, OntologySpec, SynonymKind};
use medlink::Error;
use proptest::prelude::*;

use crate::common::shared_data;

const MESH: &str = "vocab/mesh/mesh_descriptors_2026-01-27_labels.csv";

fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("ontologies/samples")
        .join(name)
}

fn load(format: &str, path: &Path) -> medlink::Result<Loaded> {
    let spec: OntologySpec = format!("{format}:{}", path.display()).parse()?;
    ontology::load(&spec, &LoadOptions::default())
}

/// Asserts a parse error whose message names `name:line` (and the field, when given).
fn parse_error(
    result: medlink::Result<Loaded>,
    name: &str,
    line: usize,
    field: Option<&str>,
) -> String {
    match result {
        Err(e @ Error::Parse { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains(&format!("{name}:{line}:")),
                "expected {name}:{line} in `{text}`"
            );
            if let Some(field) = field {
                assert!(
                    text.contains(&format!("field `{field}`")),
                    "expected field `{field}` in `{text}`"
                );
            }
            text
        }
        Err(other) => panic!("expected a parse error at {name}:{line}, got {other:?}"),
        Ok(loaded) => panic!(
            "expected a parse error at {name}:{line}, got {} concepts",
            loaded.concepts.len()
        ),
    }
}

// --- MeSH CSV --------------------------------------------------------------------------------

#[test]
fn mesh_real_file() {
    let loaded = load("mesh", &shared_data(MESH)).expect("MeSH labels load");
    assert_eq!(loaded.concepts.len(), 30_532);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.version.as_deref(), Some("2026-01-27"));
    let find = |id: &str| {
        loaded
            .concepts
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("{id} missing"))
    };
    assert_eq!(find("MESH:D000001").name, "Calcimycin");
    // A quoted label with a comma inside.
    assert_eq!(find("MESH:D000006").name, "Abdomen, Acute");
    assert_eq!(find("MESH:D002312").name, "Cardiomyopathy, Hypertrophic");
    assert!(loaded.concepts.iter().all(|c| c.id.starts_with("MESH:D")
        && c.synonyms.is_empty()
        && c.types.is_empty()
        && !c.name.contains('"')));
}

#[test]
fn mesh_quoting_and_columns_by_name() {
    let csv = "subject,id\r\n\"He said \"\"ouch\"\"\",D000010\r\n\"Two\nlines\",MESH:D000011\r\nplain,https://id.nlm.nih.gov/mesh/D000012\r\n\r\n";
    let loaded = read_mesh_csv(csv.as_bytes(), Path::new("labels.csv")).expect("parses");
    let names: Vec<(&str, &str)> = loaded
        .concepts
        .iter()
        .map(|c| (c.id.as_str(), c.name.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("MESH:D000010", "He said \"ouch\""),
            ("MESH:D000011", "Two\nlines"),
            ("MESH:D000012", "plain")
        ]
    );
    assert_eq!(loaded.version, None);
}

#[test]
fn mesh_repeated_ids_merge() {
    let csv = "id,scheme,subject\nD000001,MeSH,Calcimycin\nD000001,MeSH,A-23187\n";
    let loaded = read_mesh_csv(csv.as_bytes(), Path::new("m.csv")).expect("parses");
    assert_eq!(loaded.concepts.len(), 1);
    assert_eq!(loaded.concepts[0].synonyms[0].text, "A-23187");
    assert_eq!(loaded.warnings.len(), 1);
}

#[test]
fn mesh_malformed() {
    let header = "id,scheme,subject\n";
    let cases: [(&str, usize, Option<&str>, &str); 6] = [
        (
            "D000001,MeSH,Calcimycin,extra\n",
            2,
            None,
            "expected 3 comma-separated columns",
        ),
        ("D000001,MeSH\n", 2, None, "found 2"),
        (
            "https://id.nlm.nih.gov/mesh/foo,MeSH,X\n",
            2,
            Some("id"),
            "not a MeSH",
        ),
        ("D000001,MeSH,  \n", 2, Some("subject"), "empty label"),
        (
            "D000001,MeSH,X\nD000002,MeSH,\"never closed\nmore\n",
            3,
            None,
            "never closed",
        ),
        (
            "D000001,MeSH,\"Abdomen\" Acute\n",
            2,
            None,
            "after the closing quote",
        ),
    ];
    for (body, line, field, message) in cases {
        let csv = format!("{header}{body}");
        let text = parse_error(
            read_mesh_csv(csv.as_bytes(), Path::new("m.csv")),
            "m.csv",
            line,
            field,
        );
        assert!(text.contains(message), "{text}");
    }
    let text = parse_error(
        read_mesh_csv(&b"ident,label\nD1,x\n"[..], Path::new("m.csv")),
        "m.csv",
        1,
        Some("id"),
    );
    assert!(text.contains("header"), "{text}");
    parse_error(
        read_mesh_csv(&b""[..], Path::new("m.csv")),
        "m.csv",
        1,
        None,
    );
    let text = parse_error(
        read_mesh_csv(
            &b"id,scheme,subject\nD000001,MeSH,ok\nD000002,MeSH,bad \xff\n"[..],
            Path::new("m.csv"),
        ),
        "m.csv",
        3,
        None,
    );
    assert!(text.contains("UTF-8"), "{text}");
}

// --- custom TSV ------------------------------------------------------------------------------

#[test]
fn tsv_sample() {
    let loaded = load("tsv", &sample("custom.tsv")).expect("sample TSV loads");
    assert_eq!(loaded.concepts.len(), 12);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let mi = loaded
        .concepts
        .iter()
        .find(|c| c.id == "CARD:0003")
        .expect("myocardial infarction");
    assert_eq!(mi.name, "Myocardial infarction");
    let synonyms: Vec<&str> = mi.synonyms.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(
        synonyms,
        [
            "heart attack",
            "MI",
            "AMI",
            "acute myocardial infarction",
            "cardiac infarction"
        ]
    );
    assert!(mi
        .synonyms
        .iter()
        .all(|s| s.kind == SynonymKind::Unspecified));
    assert_eq!(mi.types, ["disorder"]);
    let spec: OntologySpec = format!("tsv:{}", sample("custom.tsv").display())
        .parse()
        .expect("spec");
    assert_eq!(ontology::source_name(&spec), "CUSTOM");
}

#[test]
fn tsv_rules() {
    let tsv = "# a comment\n\nid\tname\tsynonyms\ttypes\n\
        D003920\tDiabetes mellitus\n\
        MSH:D003920\t Diabetes \tDM| |diabetes\tdisease|disease\n\
        X:1\tOne\t\tA|B\n";
    let loaded = read_tsv(tsv.as_bytes(), Path::new("v.tsv")).expect("parses");
    assert_eq!(loaded.concepts.len(), 2);
    let dm = &loaded.concepts[0];
    // Bare and aliased MeSH ids normalise to one id, so the two lines merge.
    assert_eq!(dm.id, "MESH:D003920");
    assert_eq!(dm.name, "Diabetes mellitus");
    let names: Vec<&str> = dm.names().collect();
    assert_eq!(names, ["Diabetes mellitus", "Diabetes", "DM", "diabetes"]);
    assert_eq!(dm.types, ["disease"]);
    assert_eq!(loaded.concepts[1].types, ["A", "B"]);
    assert_eq!(loaded.warnings.len(), 1, "the merge is reported");

    // A header is only a header on the first record.
    let tsv = "X:1\tOne\nid\tsecond\n";
    let loaded = read_tsv(tsv.as_bytes(), Path::new("v.tsv")).expect("parses");
    assert_eq!(loaded.concepts.len(), 2);
}

#[test]
fn tsv_malformed() {
    let cases: [(&str, usize, Option<&str>, &str); 4] = [
        (
            "# c\nX:1\tOne\nX:2\tTwo\tsyn\ttype\textra\n",
            3,
            None,
            "found 5",
        ),
        ("X:1\n", 1, None, "found 1"),
        (
            "X:1\tOne\n\tnameless id\n",
            2,
            Some("id"),
            "empty concept id",
        ),
        ("X:1\t  \tsyn\n", 1, Some("name"), "empty preferred name"),
    ];
    for (tsv, line, field, message) in cases {
        let text = parse_error(
            read_tsv(tsv.as_bytes(), Path::new("v.tsv")),
            "v.tsv",
            line,
            field,
        );
        assert!(text.contains(message), "{text}");
    }
    let text = parse_error(
        read_tsv(&b"X:1\tOne\nX:2\tT\xe9l\xe9\n"[..], Path::new("v.tsv")),
        "v.tsv",
        2,
        None,
    );
    assert!(text.contains("UTF-8"), "{text}");
}

// --- custom JSONL ----------------------------------------------------------------------------

#[test]
fn jsonl_sample_matches_the_tsv_sample() {
    let jsonl = load("jsonl", &sample("custom.jsonl")).expect("sample JSONL loads");
    let tsv = load("tsv", &sample("custom.tsv")).expect("sample TSV loads");
    assert_eq!(jsonl.concepts.len(), 12);
    for (j, t) in jsonl.concepts.iter().zip(&tsv.concepts) {
        assert_eq!(
            (&j.id, &j.name, &j.synonyms, &j.types),
            (&t.id, &t.name, &t.synonyms, &t.types)
        );
    }
    let ids: Vec<&str> = jsonl.concepts.iter().map(|c| c.id.as_str()).collect();
    for c in &jsonl.concepts {
        for p in &c.parents {
            assert!(ids.contains(&p.as_str()), "{} has unknown parent {p}", c.id);
        }
        assert!(c.definition.is_some(), "{} has a definition", c.id);
    }
    let af = jsonl
        .concepts
        .iter()
        .find(|c| c.id == "CARD:0006")
        .expect("atrial fibrillation");
    assert_eq!(af.parents, ["CARD:0005"]);
    assert_eq!(af.xrefs, ["MESH:D001281", "ICD10CM:I48.91", "HP:0005110"]);
}

#[test]
fn jsonl_optional_and_unknown_fields() {
    let jsonl = r#"{"id": "D003920", "name": "Diabetes mellitus", "extra": {"any": [1, 2]}}

{"id": "X:2", "name": " Two ", "synonyms": null, "types": [], "parents": ["MSH:D003920"], "xrefs": ["SNOMEDCT_US:73211009"], "definition": "  "}
"#;
    let loaded = read_jsonl(jsonl.as_bytes(), Path::new("v.jsonl")).expect("parses");
    assert_eq!(loaded.concepts.len(), 2);
    assert_eq!(loaded.concepts[0].id, "MESH:D003920");
    let two = &loaded.concepts[1];
    assert_eq!(two.name, "Two");
    assert_eq!(two.parents, ["MESH:D003920"]);
    assert_eq!(two.xrefs, ["SNOMEDCT:73211009"]);
    assert_eq!(two.definition, None);
}

#[test]
fn jsonl_malformed() {
    let ok = r#"{"id": "X:1", "name": "One"}"#;
    let cases: [(&str, Option<&str>, &str); 9] = [
        (
            r#"{"id": "X:2", "name": "n", "synonyms": "not a list"}"#,
            Some("synonyms"),
            "expected an array of strings, found a string",
        ),
        (
            r#"{"id": "X:2", "name": "n", "synonyms": ["a", 3]}"#,
            Some("synonyms[1]"),
            "found a number",
        ),
        (
            r#"{"id": "X:2", "name": "n", "parents": [null]}"#,
            Some("parents[0]"),
            "found null",
        ),
        (
            r#"{"id": "X:2", "name": "n", "definition": ["x"]}"#,
            Some("definition"),
            "found an array",
        ),
        (r#"{"id": "X:2"}"#, Some("name"), "missing"),
        (r#"{"id": " ", "name": "n"}"#, Some("id"), "empty"),
        (r#"{"id": 2, "name": "n"}"#, Some("id"), "found a number"),
        (
            r#"["X:2", "n"]"#,
            None,
            "expected a JSON object, found an array",
        ),
        (r#"{"id": "X:2", "name": "n""#, None, "invalid JSON"),
    ];
    for (bad, field, message) in cases {
        let jsonl = format!("{ok}\n{bad}\n");
        let text = parse_error(
            read_jsonl(jsonl.as_bytes(), Path::new("v.jsonl")),
            "v.jsonl",
            2,
            field,
        );
        assert!(text.contains(message), "{text}");
    }
    let text = parse_error(
        read_jsonl(
            &b"{\"id\": \"X:1\", \"name\": \"\xff\"}\n"[..],
            Path::new("v.jsonl"),
        ),
        "v.jsonl",
        1,
        None,
    );
    assert!(text.contains("UTF-8"), "{text}");
}

#[test]
fn missing_files_are_io_errors_naming_the_path() {
    for format in ["mesh", "tsv", "jsonl"] {
        let path = Path::new("/nonexistent/vocabulary.file");
        match load(format, path) {
            Err(e @ Error::Io { .. }) => {
                assert!(e.to_string().contains("/nonexistent/vocabulary.file"))
            }
            other => panic!("{format}: expected an I/O error, got {other:?}"),
        }
    }
}

// --- properties ------------------------------------------------------------------------------

/// RFC 4180 quoting, as a writer would do it.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn no_panic(result: medlink::Result<Loaded>) -> std::result::Result<(), TestCaseError> {
    match result {
        Ok(_) => Ok(()),
        Err(Error::Parse { line, .. }) => {
            prop_assert!(line >= 1);
            Ok(())
        }
        Err(other) => Err(TestCaseError::fail(format!(
            "unexpected error kind: {other}"
        ))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn mesh_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        no_panic(read_mesh_csv(&bytes[..], Path::new("fuzz.csv")))?;
    }

    #[test]
    fn mesh_csv_like_text_never_panics(body in "[a-zD0-9,\"\n\r /:]{0,300}") {
        let csv = format!("id,scheme,subject\n{body}");
        no_panic(read_mesh_csv(csv.as_bytes(), Path::new("fuzz.csv")))?;
    }

    /// Any labels a CSV writer quotes come back unchanged (the loader trims them).
    #[test]
    fn mesh_quoted_labels_round_trip(labels in proptest::collection::vec("[ -~\n]{1,30}", 1..20)) {
        let mut csv = String::from("id,scheme,subject\r\n");
        for (i, label) in labels.iter().enumerate() {
            csv.push_str(&format!("D{:06},MeSH,{}\r\n", i + 1, csv_field(label)));
        }
        let result = read_mesh_csv(csv.as_bytes(), Path::new("round.csv"));
        if labels.iter().any(|l| l.trim().is_empty()) {
            prop_assert!(result.is_err());
        } else {
            let loaded = result.map_err(|e| TestCaseError::fail(e.to_string()))?;
            let names: Vec<&str> = loaded.concepts.iter().map(|c| c.name.as_str()).collect();
            let expected: Vec<&str> = labels.iter().map(|l| l.trim()).collect();
            prop_assert_eq!(names, expected);
        }
    }

    #[test]
    fn tsv_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        no_panic(read_tsv(&bytes[..], Path::new("fuzz.tsv")))?;
    }

    #[test]
    fn tsv_like_text_never_panics(body in "[a-zA-Z0-9:\t|# \n]{0,300}") {
        no_panic(read_tsv(body.as_bytes(), Path::new("fuzz.tsv")))?;
    }

    #[test]
    fn jsonl_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        no_panic(read_jsonl(&bytes[..], Path::new("fuzz.jsonl")))?;
    }

    #[test]
    fn jsonl_like_text_never_panics(
        lines in proptest::collection::vec(
            prop_oneof![
                "[{}\\[\\]\":, a-z0-9]{0,60}",
                Just(r#"{"id": "X:1", "name": "n", "synonyms": ["a"]}"#.to_string()),
                "\\{\"id\": \"[a-z:0-9]{0,5}\", \"name\": (\"[a-z ]{0,5}\"|[0-9]|null|\\[\\]), \"types\": (\\[\"a\"\\]|\\{\\}|\"t\")\\}",
            ],
            0..8,
        )
    ) {
        let jsonl = lines.join("\n");
        no_panic(read_jsonl(jsonl.as_bytes(), Path::new("fuzz.jsonl")))?;
    }
}
