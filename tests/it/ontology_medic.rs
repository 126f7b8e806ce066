//! Tests for the CTD MEDIC loaders (2012 pipe format, CTD TSV), the dictionary file, and gold-id
//! coverage of the NCBI-disease and BC5CDR corpora.

use std::path::Path;

use medlink::eval::pubtator;
use medlink::ontology::{self, medic, store, LoadOptions, OntologySpec};
use proptest::prelude::*;

use crate::common::shared_data;

fn spec(format: &str, relative: &str) -> OntologySpec {
    format!("{format}:{}", shared_data(relative).display())
        .parse()
        .unwrap()
}

#[test]
fn medic_2012_has_documented_counts_and_covers_ncbi_disease() {
    let dict = ontology::load_dictionary(
        &[spec("medic", "vocab/medic_2012/medic_06Jul2012.txt")],
        &LoadOptions::default(),
    )
    .unwrap();
    let stats = dict.stats();
    assert_eq!(stats.concepts, 11_915);
    assert_eq!(stats.names, 76_237);
    // Secondary ids resolve: line `270400|D019082||Smith-Lemli-Opitz Syndrome|...`.
    assert_eq!(dict.get("D019082").unwrap().id, "OMIM:270400");
    assert_eq!(
        dict.get("MESH:D019082").unwrap().name,
        "Smith-Lemli-Opitz Syndrome"
    );
    // The file spells apostrophes and accents as XML character references: read as characters,
    // so "Pick&apos;s disease" meets the mention "Pick's disease" and shows as written.
    let pick = dict.get("MESH:D020774").unwrap();
    assert!(
        pick.names().any(|n| n == "Pick's Disease"),
        "{:?}",
        pick.names().collect::<Vec<_>>()
    );
    assert!(dict.names().iter().all(|n| !n.text.contains("&apos;")));
    assert_eq!(dict.warnings().len(), 1, "{:?}", dict.warnings());
    assert!(dict.warnings()[0].contains("1156 names held HTML character references"));

    let mut gold_ids = std::collections::BTreeSet::new();
    for split in [
        "NCBItrainset_corpus.txt",
        "NCBIdevelopset_corpus.txt",
        "NCBItestset_corpus.txt",
    ] {
        let corpus = pubtator::load(&shared_data(&format!("ncbi_disease/{split}"))).unwrap();
        for (_, m) in corpus.mentions() {
            gold_ids.extend(m.ids.iter().cloned());
        }
    }
    let missing: Vec<_> = gold_ids
        .iter()
        .filter(|id| dict.lookup_id(id).is_none())
        .collect();
    assert_eq!(gold_ids.len(), 751, "distinct NCBI-disease gold ids");
    assert!(
        missing.is_empty(),
        "gold ids absent from MEDIC 2012: {missing:?}"
    );
}

#[test]
fn ctd_2017_has_documented_counts_and_covers_bc5cdr_disease() {
    let dict = ontology::load_dictionary(
        &[spec("ctd", "vocab/ctd_medic_2017/CTD_diseases.tsv.gz")],
        &LoadOptions::default(),
    )
    .unwrap();
    let stats = dict.stats();
    assert_eq!(stats.concepts, 11_865);
    assert_eq!(stats.names, 11_865 + 66_129);
    assert!(dict.sources()[0]
        .version
        .as_deref()
        .unwrap()
        .contains("2017"));
    let c = dict.get("MESH:C579849").unwrap();
    assert_eq!(c.name, "15q24 Microdeletion");
    assert!(c.xrefs.contains(&"DOID:0060395".to_string()));
    assert!(c.parents.contains(&"MESH:D002872".to_string()));

    let mut gold_ids = std::collections::BTreeSet::new();
    for file in [
        "CDR_TrainingSet.PubTator.txt",
        "CDR_DevelopmentSet.PubTator.txt",
    ] {
        let corpus = pubtator::load(&shared_data(&format!("bc5cdr/{file}"))).unwrap();
        assert!(
            corpus.span_mismatches.is_empty(),
            "{:?}",
            &corpus.span_mismatches[..3.min(corpus.span_mismatches.len())]
        );
        for (_, m) in corpus
            .mentions()
            .filter(|(_, m)| m.entity_type == "Disease")
        {
            gold_ids.extend(m.ids.iter().cloned());
        }
    }
    let missing: Vec<_> = gold_ids
        .iter()
        .filter(|id| dict.lookup_id(id).is_none())
        .collect();
    assert!(
        gold_ids.len() > 800,
        "{} distinct disease ids",
        gold_ids.len()
    );
    assert!(
        missing.is_empty(),
        "BC5CDR disease ids absent from CTD 2017: {missing:?}"
    );
}

#[test]
fn dictionary_file_round_trips_and_rejects_other_files() {
    let dict = ontology::load_dictionary(
        &[spec("medic", "vocab/medic_2012/medic_06Jul2012.txt")],
        &LoadOptions::default(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dictionary.bin");
    store::save(&dict, &path).unwrap();
    let back = store::load(&path).unwrap();
    assert!(back.concepts().eq(dict.concepts()));
    assert_eq!(back.sources(), dict.sources());
    assert_eq!(back.names(), dict.names());
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    let other = dir.path().join("other.bin");
    std::fs::write(&other, b"definitely not a dictionary").unwrap();
    let err = store::load(&other).unwrap_err();
    assert!(
        err.to_string().contains("not a medlink dictionary file"),
        "{err}"
    );
    let mut truncated = std::fs::read(&path).unwrap();
    truncated.truncate(truncated.len() / 2);
    std::fs::write(&other, truncated).unwrap();
    let err = store::load(&other).unwrap_err();
    assert!(err.to_string().contains("corrupt"), "{err}");
    // A damaged concept record is found when the file is opened, and named.
    let mut damaged = std::fs::read(&path).unwrap();
    let len = damaged.len();
    damaged[len - 10..].fill(0xFF);
    std::fs::write(&other, damaged).unwrap();
    let err = store::load(&other).unwrap_err();
    let last = dict.concept_count() - 1;
    assert!(
        err.to_string().contains(&format!("concept record {last}")),
        "{err}"
    );
}

/// MEDIC 2012 and HPO in one dictionary.
fn medic_and_hpo() -> ontology::Dictionary {
    ontology::load_dictionary(
        &[
            spec("medic", "vocab/medic_2012/medic_06Jul2012.txt"),
            spec("obo", "hpo/hp.obo"),
        ],
        &LoadOptions::default(),
    )
    .unwrap()
}

#[test]
fn two_ontologies_in_one_dictionary() {
    let dict = medic_and_hpo();
    assert_eq!(dict.sources().len(), 2);
    assert_eq!(dict.concept_count(), 11_915 + 19_484);
    let hpo = dict.get("HP:0000256").unwrap();
    assert_eq!(dict.source_of(&hpo).unwrap().name, "HPO");
    let medic = dict.get("MESH:D003920").unwrap();
    assert_eq!(dict.source_of(&medic).unwrap().name, "MEDIC");
}

#[test]
fn malformed_medic_names_file_line_and_field() {
    let path = Path::new("medic.txt");
    let cases: [(&[u8], &str); 4] = [
        (
            b"D000001||Name\nD000002|Name without separator\n",
            "medic.txt:2: ",
        ),
        (b"||Name\n", "medic.txt:1: field `id`"),
        (b"D000001||\n", "medic.txt:1: field `name`"),
        (b"D000001||Caf\xe9\n", "medic.txt:1: invalid UTF-8"),
    ];
    for (bytes, expected) in cases {
        let err = medic::read_pipe(bytes, path).unwrap_err();
        assert!(err.to_string().starts_with(expected), "{err}");
    }
    let tsv = Path::new("CTD_diseases.tsv");
    let err = medic::read_ctd_tsv(&b"# header\nName\tMESH:D1\tonly three\n"[..], tsv).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("CTD_diseases.tsv:2: expected 9 columns"),
        "{err}"
    );
    let err = medic::read_ctd_tsv(&b"Name\t\t\t\t\t\t\t\t\n"[..], tsv).unwrap_err();
    assert!(err.to_string().contains("field `DiseaseID`"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn medic_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = medic::read_pipe(&bytes[..], Path::new("fuzz.txt"));
        let _ = medic::read_ctd_tsv(&bytes[..], Path::new("fuzz.tsv"));
        let _ = pubtator::read(&bytes[..], Path::new("fuzz.pubtator"));
    }

    #[test]
    fn medic_pipe_lines_round_trip(
        ids in proptest::collection::vec("D[0-9]{6}", 1..3),
        names in proptest::collection::vec("[A-Za-z][A-Za-z ,-]{0,20}[A-Za-z]", 1..4),
    ) {
        let line = format!("{}||{}\n", ids.join("|"), names.join("|"));
        let loaded = medic::read_pipe(line.as_bytes(), Path::new("p.txt")).unwrap();
        prop_assert_eq!(loaded.concepts.len(), 1);
        let c = &loaded.concepts[0];
        prop_assert_eq!(&c.id, &format!("MESH:{}", ids[0]));
        prop_assert_eq!(&c.name, &names[0]);
        prop_assert_eq!(c.synonyms.len(), names.len() - 1);
    }
}

/// The dictionary's compact lookups (string arenas, sorted index arrays) agree with a plain
/// scan of its concepts, on two real vocabularies at once, and through a save and reload.
#[test]
fn compact_lookups_agree_with_the_concept_records() {
    let dict = medic_and_hpo();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dictionary.bin");
    store::save(&dict, &path).unwrap();
    let mapped = store::load(&path).unwrap();
    for d in [&dict, &mapped] {
        let mut primary: std::collections::HashMap<String, u32> = Default::default();
        let mut alt_owner: std::collections::HashMap<String, u32> = Default::default();
        let mut types_seen = std::collections::BTreeSet::new();
        for (i, concept) in d.concepts().enumerate() {
            let idx = i as u32;
            assert_eq!(d.concept_id(idx), concept.id);
            assert_eq!(d.concept_name(idx), concept.name);
            assert_eq!(d.source_of(&concept), d.concept_source(idx));
            assert!(d
                .concept_types(idx)
                .eq(concept.types.iter().map(String::as_str)));
            assert_eq!(d.lookup_id(&concept.id), Some(idx), "{}", concept.id);
            types_seen.extend(concept.types.iter().cloned());
            primary.insert(concept.id.clone(), idx);
            for alt in &concept.alt_ids {
                alt_owner.entry(alt.clone()).or_insert(idx);
            }
        }
        // A secondary id names the first concept listing it, unless it is a primary id.
        assert!(!alt_owner.is_empty());
        for (alt, owner) in &alt_owner {
            let want = primary.get(alt).copied().unwrap_or(*owner);
            assert_eq!(d.lookup_id(alt), Some(want), "{alt}");
        }
        assert_eq!(
            d.types()
                .iter()
                .cloned()
                .collect::<std::collections::BTreeSet<_>>(),
            types_seen
        );
        // Every name row is one of its concept's names, and lookups by normal form find it.
        for (row, entry) in d.names().iter().enumerate() {
            let concept = d.concept(entry.concept);
            assert!(concept.names().any(|n| n == entry.text), "{entry:?}");
            assert_eq!(
                entry.kind.is_none(),
                entry.text == concept.name,
                "{entry:?}"
            );
            assert!(d
                .lookup_normalized(entry.normalized)
                .contains(&(row as u32)));
        }
        assert_eq!(d.lookup_id("NOT:AN-ID"), None);
    }
    assert_eq!(mapped.names(), dict.names());
}
