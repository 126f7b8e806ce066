//! Tests for the OBO loader: real HPO and Disease Ontology files, hand-written edge cases,
//! malformed input, and arbitrary bytes.

use std::path::Path;

use medlink::ontology::{self, obo, Format, LoadOptions, OntologySpec, SynonymKind};
use proptest::prelude::*;

use crate::common::shared_data;

fn parse(text: &str) -> medlink::Result<ontology::Loaded> {
    obo::read(text.as_bytes(), Path::new("test.obo"))
}

#[test]
fn hpo_2025_01_16_has_documented_counts() {
    let spec = OntologySpec {
        format: Format::Obo,
        path: shared_data("hpo/hp.obo"),
    };
    let loaded = ontology::load(&spec, &LoadOptions::default()).unwrap();
    assert_eq!(loaded.version.as_deref(), Some("hp/releases/2025-01-16"));
    assert_eq!(loaded.concepts.len(), 19_484, "terms including obsolete");
    let synonyms: usize = loaded.concepts.iter().map(|c| c.synonyms.len()).sum();
    assert_eq!(synonyms, 23_519);
    let obsolete = loaded.concepts.iter().filter(|c| c.obsolete).count();
    assert_eq!(obsolete, 450);

    let dict = ontology::load_dictionary(&[spec], &LoadOptions::default()).unwrap();
    let macro_ = dict.get("HP:0000256").expect("Macrocephaly");
    assert_eq!(macro_.name, "Macrocephaly");
    assert!(macro_.types.contains(&"Phenotypic abnormality".to_string()));
    assert!(macro_.xrefs.iter().any(|x| x.starts_with("UMLS:")));
    let kidney = dict.get("HP:0000003").unwrap();
    assert!(
        kidney.xrefs.contains(&"SNOMEDCT:204962002".to_string()),
        "{:?}",
        kidney.xrefs
    );
    assert!(!macro_.parents.is_empty());
    // Alt ids resolve to their term.
    assert_eq!(
        dict.get("HP:0004715").map(|c| c.id).as_deref(),
        Some("HP:0000003")
    );
    // Lookup by normalised name finds synonyms.
    let hits = dict.lookup_name("large head");
    assert!(
        hits.iter().any(|&c| dict.concept(c).id == "HP:0000256"),
        "{hits:?}"
    );
    let abbreviations = macro_
        .synonyms
        .iter()
        .cloned()
        .chain(dict.concepts().flat_map(|c| c.synonyms))
        .filter(|s| s.kind == SynonymKind::Abbreviation)
        .count();
    assert!(
        abbreviations >= 577,
        "abbreviation-typed synonyms: {abbreviations}"
    );
    let stats = dict.stats();
    assert_eq!(stats.concepts, 19_484);
    assert_eq!(stats.active_concepts, 19_484 - 450);
    assert!(stats.types.contains_key("Mode of inheritance"));
}

#[test]
fn doid_2016_has_documented_counts() {
    let path = shared_data("disease_ontology/doid_2016-09-01/doid.obo");
    let loaded = obo::read(ontology::lines::open(&path).unwrap(), &path).unwrap();
    assert_eq!(loaded.version.as_deref(), Some("releases/2016-09-01"));
    assert_eq!(loaded.concepts.len(), 9_344);
    assert_eq!(loaded.concepts.iter().filter(|c| c.obsolete).count(), 2_373);
    let angiosarcoma = loaded
        .concepts
        .iter()
        .find(|c| c.id == "DOID:0001816")
        .unwrap();
    assert_eq!(angiosarcoma.name, "angiosarcoma");
    assert!(angiosarcoma.alt_ids.contains(&"DOID:267".to_string()));
    // Dated SNOMED prefixes are normalised.
    assert!(loaded
        .concepts
        .iter()
        .flat_map(|c| &c.xrefs)
        .any(|x| x.starts_with("SNOMEDCT:")));
    assert!(!loaded
        .concepts
        .iter()
        .flat_map(|c| &c.xrefs)
        .any(|x| x.starts_with("SNOMEDCT_US")));
}

#[test]
fn obo_tags_scopes_and_escapes() {
    let text = r#"format-version: 1.2
data-version: test/2026

[Term]
id: T:1
name: root

[Term]
id: T:2
name: branch "one"
is_a: T:1 ! root

[Term]
id: T:3
name: leaf
def: "A \"quoted\" definition." [PMID:1]
synonym: "LF" EXACT abbreviation []
synonym: "leafy thing" RELATED [PMID:2]
synonym: "big leaf" NARROW layperson []
exact_synonym: "old style" []
xref: MSH:D000001 "MeSH"
xref: SNOMEDCT_US:123 {source="x"}
is_a: T:2 {inferred="true"} ! branch
alt_id: T:33

[Term]
id: T:4
name: gone
is_obsolete: true
replaced_by: T:3

[Typedef]
id: part_of
name: part of
"#;
    let loaded = parse(text).unwrap();
    assert_eq!(loaded.version.as_deref(), Some("test/2026"));
    assert_eq!(loaded.concepts.len(), 4);
    let leaf = &loaded.concepts[2];
    assert_eq!(leaf.definition.as_deref(), Some("A \"quoted\" definition."));
    let kinds: Vec<_> = leaf
        .synonyms
        .iter()
        .map(|s| (s.text.as_str(), s.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("LF", SynonymKind::Abbreviation),
            ("leafy thing", SynonymKind::Related),
            ("big leaf", SynonymKind::Narrow),
            ("old style", SynonymKind::Exact),
        ]
    );
    assert_eq!(leaf.xrefs, vec!["MESH:D000001", "SNOMEDCT:123"]);
    assert_eq!(leaf.parents, vec!["T:2"]);
    assert_eq!(leaf.alt_ids, vec!["T:33"]);
    assert_eq!(leaf.types, vec!["branch \"one\""]);
    assert_eq!(loaded.concepts[1].types, vec!["branch \"one\""]);
    assert!(loaded.concepts[0].types.is_empty());
    let gone = &loaded.concepts[3];
    assert!(gone.obsolete);
    assert_eq!(gone.replaced_by, vec!["T:3"]);
    assert!(gone.types.is_empty());
}

#[test]
fn obo_cycles_do_not_hang() {
    let text = "[Term]\nid: A:1\nname: a\nis_a: A:2\n\n[Term]\nid: A:2\nname: b\nis_a: A:1\n";
    let loaded = parse(text).unwrap();
    assert_eq!(loaded.concepts.len(), 2);
}

#[test]
fn malformed_obo_names_file_line_and_field() {
    let cases = [
        (
            "[Term]\nid: A:1\nname: a\nsynonym: \"unterminated EXACT []\n",
            4,
            Some("synonym"),
        ),
        ("[Term]\nname: no id\n", 1, Some("id")),
        (
            "[Term]\nid: A:1\nname: a\nthis line has no colon\n",
            4,
            None,
        ),
        (
            "[Term]\nid: A:1\nname: a\nsynonym: \"x\" SOMETIMES []\n",
            4,
            Some("synonym"),
        ),
        ("[Term\nid: A:1\n", 1, None),
        ("[Term]\nid: A:1\n", 1, Some("name")),
    ];
    for (text, line, field) in cases {
        let err = parse(text).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("test.obo:{line}: ")),
            "{text:?} -> {msg}"
        );
        if let Some(field) = field {
            assert!(
                msg.contains(&format!("field `{field}`")),
                "{text:?} -> {msg}"
            );
        }
        assert_eq!(err.kind(), medlink::ErrorKind::User);
    }
}

#[test]
fn invalid_utf8_names_the_line() {
    let bytes = b"[Term]\nid: A:1\nname: caf\xe9\n";
    let err = obo::read(&bytes[..], Path::new("bad.obo")).unwrap_err();
    assert!(
        err.to_string().starts_with("bad.obo:3: invalid UTF-8"),
        "{err}"
    );
}

#[test]
fn missing_file_and_unknown_format_are_clear_errors() {
    let err = ontology::load(
        &"obo:/nonexistent/hp.obo".parse().unwrap(),
        &LoadOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/hp.obo"), "{err}");
    let err = "owl:hp.owl".parse::<OntologySpec>().unwrap_err();
    assert!(
        err.to_string().contains("unknown ontology format `owl`"),
        "{err}"
    );
    assert!(err.to_string().contains("obo, medic"), "{err}");
    assert!("hp.obo".parse::<OntologySpec>().is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn obo_parser_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = obo::read(&bytes[..], Path::new("fuzz.obo"));
    }

    #[test]
    fn obo_parser_never_panics_on_obo_like_text(
        lines in proptest::collection::vec(
            prop_oneof![
                Just("[Term]".to_string()),
                Just("[Typedef]".to_string()),
                "(id|name|synonym|is_a|xref|def|alt_id|is_obsolete): [ -~]{0,20}",
                "synonym: \"[ -~]{0,10}\" (EXACT|RELATED|BROAD|NARROW|X)? ?[a-z]{0,5} \\[\\]",
                "[ -~]{0,30}",
            ],
            0..40,
        )
    ) {
        let text = lines.join("\n");
        let _ = obo::read(text.as_bytes(), Path::new("fuzz.obo"));
    }
}
