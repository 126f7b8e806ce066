//! Tests for the ICD-10-CM tabular XML loader: the real April 2026 release against CMS's own
//! code list, a hand-written fixture, malformed input with file:line errors, and arbitrary bytes.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::OnceLock;

use medlink::ontology::icd10cm::{self, ReadOptions};
use medlink::ontology::{self, Concept, LoadOptions, Loaded, OntologySpec, SynonymKind};
use medlink::Error;
use proptest::prelude::*;

use crate::common::{fixture, shared_data};

const XML: &str = "icd10cm/icd10c-tabular-April-1-2026.xml";
const CODE_LIST: &str = "icd10cm/code-list-April-2026.txt";

/// The real file, parsed once for all tests of this module.
fn real() -> &'static Loaded {
    static LOADED: OnceLock<Loaded> = OnceLock::new();
    LOADED.get_or_init(|| {
        let spec = OntologySpec {
            format: ontology::Format::Icd10cm,
            path: shared_data(XML),
        };
        ontology::load(&spec, &LoadOptions::default()).expect("real ICD-10-CM file loads")
    })
}

fn by_id(loaded: &Loaded) -> HashMap<&str, &Concept> {
    loaded.concepts.iter().map(|c| (c.id.as_str(), c)).collect()
}

fn has_type(c: &Concept, t: &str) -> bool {
    c.types.iter().any(|have| have == t)
}

fn count_type(loaded: &Loaded, t: &str) -> usize {
    loaded.concepts.iter().filter(|c| has_type(c, t)).count()
}

fn read_bytes(bytes: &[u8], name: &str) -> medlink::Result<Loaded> {
    icd10cm::read(bytes, Path::new(name))
}

/// Asserts a parse error whose message names `name:line`, and returns its text.
fn parse_error(result: medlink::Result<Loaded>, name: &str, line: usize) -> String {
    match result {
        Err(e @ Error::Parse { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains(&format!("{name}:{line}:")),
                "expected {name}:{line} in `{text}`"
            );
            text
        }
        Err(other) => panic!("expected a parse error at {name}:{line}, got {other:?}"),
        Ok(loaded) => panic!(
            "expected a parse error at {name}:{line}, got {} concepts",
            loaded.concepts.len()
        ),
    }
}

#[test]
fn real_file_reproduces_the_cms_code_list() {
    let loaded = real();
    // CMS's flat list (CRLF): 22 chapter numbers, 297 section ids and every code without its
    // dot, 7th-character codes included. 39 sections are named after their only category
    // (`B10`), so those names appear twice.
    let list = std::fs::read_to_string(shared_data(CODE_LIST)).expect("code list readable");
    let lines: Vec<&str> = list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let chapters = lines
        .iter()
        .filter(|l| l.bytes().all(|b| b.is_ascii_digit()))
        .count();
    let ranges = lines.iter().filter(|l| l.contains('-')).count();
    let not_chapter_or_range = lines.len() - chapters - ranges;
    assert_eq!((chapters, ranges), (22, 258));
    // The README's "98,225 codes" is this quantity: it counts the 39 single-category block
    // names a second time.
    assert_eq!(not_chapter_or_range, 98_225);

    let codes: BTreeSet<String> = loaded
        .concepts
        .iter()
        .filter(|c| has_type(c, "category") || has_type(c, "code"))
        .map(|c| c.id.trim_start_matches("ICD10CM:").replace('.', ""))
        .collect();
    let blocks: Vec<&Concept> = loaded
        .concepts
        .iter()
        .filter(|c| has_type(c, "block"))
        .collect();
    let single = blocks.iter().filter(|b| is_single(&b.id)).count();
    assert_eq!(codes.len(), 98_186, "distinct codes");
    assert_eq!(blocks.len(), 297);
    assert_eq!(single, 39);
    assert_eq!(codes.len() + single, 98_225, "the documented number");
    assert_eq!(count_type(loaded, "chapter"), 22);

    // Exactly the codes CMS lists, no more and no fewer.
    let listed: BTreeSet<String> = lines
        .iter()
        .filter(|l| !l.bytes().all(|b| b.is_ascii_digit()) && !l.contains('-'))
        .map(|l| l.to_string())
        .collect();
    assert_eq!(listed.len(), 98_186);
    let missing: Vec<_> = listed.difference(&codes).take(10).collect();
    let extra: Vec<_> = codes.difference(&listed).take(10).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
}

/// `ICD10CM:B10-B10`: a block spelled as a one-category range.
fn is_single(id: &str) -> bool {
    id.trim_start_matches("ICD10CM:")
        .split_once('-')
        .is_some_and(|(a, b)| a == b)
}

#[test]
fn real_file_counts_diags_and_inclusion_terms() {
    let loaded = real();
    // 46,881 `<diag>` elements (see `seventh_character_codes_can_be_left_out`) plus 51,305
    // generated 7th-character codes.
    let all_codes = count_type(loaded, "category") + count_type(loaded, "code");
    assert_eq!(all_codes, 98_186);

    // 12,569 `<note>`s inside 6,809 `<inclusionTerm>`s. No note repeats its code's title or
    // another note of the same code, so the dedup of `push_synonym` loses none.
    let related: usize = loaded
        .concepts
        .iter()
        .map(|c| {
            c.synonyms
                .iter()
                .filter(|s| s.kind == SynonymKind::Related)
                .count()
        })
        .sum();
    assert_eq!(related, 12_569);
    let all_synonyms: usize = loaded.concepts.iter().map(|c| c.synonyms.len()).sum();
    assert_eq!(
        all_synonyms, 12_569,
        "inclusion terms are the only synonyms"
    );

    assert_eq!(loaded.version.as_deref(), Some("2026 (April 1, 2026)"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let billable = count_type(loaded, "billable");
    assert!(
        billable > 70_000 && billable < all_codes,
        "billable {billable}"
    );
}

#[test]
fn real_file_e11_9_chains_up_to_its_chapter() {
    let loaded = real();
    let ids = by_id(loaded);
    let e119 = ids["ICD10CM:E11.9"];
    assert_eq!(e119.name, "Type 2 diabetes mellitus without complications");
    assert_eq!(e119.types, ["code", "billable"]);
    let mut chain = vec![e119.id.as_str()];
    let mut current = e119;
    while let Some(parent) = current.parents.first() {
        assert_eq!(current.parents.len(), 1, "{} has one parent", current.id);
        current = ids[parent.as_str()];
        chain.push(current.id.as_str());
    }
    assert_eq!(
        chain,
        [
            "ICD10CM:E11.9",
            "ICD10CM:E11",
            "ICD10CM:E08-E13",
            "ICD10CM:chapter-4"
        ]
    );
    assert_eq!(ids["ICD10CM:E11"].types, ["category"]);
    assert_eq!(ids["ICD10CM:E08-E13"].name, "Diabetes mellitus");
    assert_eq!(ids["ICD10CM:E08-E13"].types, ["block"]);
    assert_eq!(
        ids["ICD10CM:chapter-4"].name,
        "Endocrine, nutritional and metabolic diseases"
    );
    assert_eq!(ids["ICD10CM:chapter-4"].types, ["chapter"]);

    // Every parent resolves, and only chapters are roots.
    for c in &loaded.concepts {
        for p in &c.parents {
            assert!(
                ids.contains_key(p.as_str()),
                "{} has unknown parent {p}",
                c.id
            );
        }
        assert_eq!(c.parents.is_empty(), has_type(c, "chapter"), "{}", c.id);
    }
}

#[test]
fn real_file_spot_checks() {
    let ids = by_id(real());
    // Inclusion terms are related synonyms.
    let a000 = ids["ICD10CM:A00.0"];
    assert_eq!(a000.synonyms.len(), 1);
    assert_eq!(a000.synonyms[0].text, "Classical cholera");
    assert_eq!(a000.synonyms[0].kind, SynonymKind::Related);
    // A single-category block keeps its own concept beside the category.
    assert_eq!(ids["ICD10CM:B10-B10"].name, "Other human herpesviruses");
    assert_eq!(ids["ICD10CM:B10"].parents, ["ICD10CM:B10-B10"]);
    // 7th characters: padded with X, named like CMS's order file, the S06 exception honoured.
    let s020 = ids["ICD10CM:S02.0XXA"];
    assert_eq!(
        s020.name,
        "Fracture of vault of skull, initial encounter for closed fracture"
    );
    assert_eq!(s020.parents, ["ICD10CM:S02.0"]);
    assert_eq!(
        ids["ICD10CM:S02.0"].types,
        ["code"],
        "needs a 7th character: not billable"
    );
    assert!(ids.contains_key("ICD10CM:S06.1X7A"));
    assert!(!ids.contains_key("ICD10CM:S06.1X7D"));
    assert!(!ids.contains_key("ICD10CM:S06.1X7S"));
    assert!(ids.contains_key("ICD10CM:S06.1X6S"));
    // A code whose own sevenChrDef is laterality (E08.32 → E08.3211).
    assert_eq!(
        ids["ICD10CM:E08.3211"].name,
        "Diabetes mellitus due to underlying condition with mild nonproliferative diabetic \
         retinopathy with macular edema, right eye"
    );
}

#[test]
fn seventh_character_codes_can_be_left_out() {
    let path = shared_data(XML);
    let file = std::io::BufReader::new(std::fs::File::open(&path).expect("open"));
    let opts = ReadOptions {
        seventh_character_codes: false,
    };
    let loaded = icd10cm::read_with(file, &path, &opts).expect("loads");
    let codes = count_type(&loaded, "category") + count_type(&loaded, "code");
    assert_eq!(codes, 46_881);
    assert!(!by_id(&loaded).contains_key("ICD10CM:S02.0XXA"));
}

#[test]
fn fixture_structure() {
    let path = fixture("icd10cm/mini.xml");
    let spec: OntologySpec = format!("icd10cm:{}", path.display()).parse().expect("spec");
    let loaded = ontology::load(&spec, &LoadOptions::default()).expect("fixture loads");
    let ids = by_id(&loaded);
    assert_eq!(loaded.concepts.len(), 30);
    assert_eq!(count_type(&loaded, "chapter"), 2);
    assert_eq!(count_type(&loaded, "block"), 3);
    assert_eq!(count_type(&loaded, "category"), 5);
    assert_eq!(count_type(&loaded, "code"), 12 + 8);
    assert_eq!(count_type(&loaded, "billable"), 5 + 8);
    let synonyms: usize = loaded.concepts.iter().map(|c| c.synonyms.len()).sum();
    assert_eq!(synonyms, 7);
    assert_eq!(loaded.version.as_deref(), Some("2026"));
    // Document order: parents come before their children.
    let position: HashMap<&str, usize> = loaded
        .concepts
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.as_str(), i))
        .collect();
    for (i, c) in loaded.concepts.iter().enumerate() {
        for p in &c.parents {
            assert!(position[p.as_str()] < i, "{p} before {}", c.id);
        }
    }
    assert_eq!(
        ids["ICD10CM:chapter-1"].name,
        "Certain infectious and parasitic diseases"
    );
    assert_eq!(ids["ICD10CM:A00-A09"].parents, ["ICD10CM:chapter-1"]);
    assert_eq!(ids["ICD10CM:A00"].parents, ["ICD10CM:A00-A09"]);
    assert_eq!(ids["ICD10CM:A01.02"].parents, ["ICD10CM:A01.0"]);
    let a0102: Vec<&str> = ids["ICD10CM:A01.02"]
        .synonyms
        .iter()
        .map(|s| s.text.as_str())
        .collect();
    assert_eq!(
        a0102,
        ["Typhoid endocarditis", "Typhoid myocarditis"],
        "excludes are not synonyms"
    );
    assert_eq!(ids["ICD10CM:S06.1X"].types, ["code"]);
    let s06: Vec<&str> = loaded
        .concepts
        .iter()
        .filter(|c| c.id.starts_with("ICD10CM:S06.1X") && c.id.len() == "ICD10CM:S06.1X0A".len())
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(
        s06,
        [
            "ICD10CM:S06.1X0A",
            "ICD10CM:S06.1X0D",
            "ICD10CM:S06.1X0S",
            "ICD10CM:S06.1X7A"
        ]
    );
}

#[test]
fn entities_and_empty_elements_are_read() {
    let xml = "<?xml version=\"1.0\"?>\n<ICD10CM.tabular><chapter><name>16</name>\
        <desc>Perinatal (P00-P96)</desc><section id=\"P05-P08\"><desc>Growth (P05-P08)</desc>\
        <diag><name>P07.0</name><desc>Extremely low birth weight &lt;1000 g &amp; &#x26;</desc>\
        <inclusionTerm><note>Birth weight 999 g. or less</note><note/></inclusionTerm>\
        </diag></section></chapter></ICD10CM.tabular>";
    let loaded = read_bytes(xml.as_bytes(), "entities.xml").expect("parses");
    let ids = by_id(&loaded);
    assert_eq!(
        ids["ICD10CM:P07.0"].name,
        "Extremely low birth weight <1000 g & &"
    );
    assert_eq!(
        ids["ICD10CM:P07.0"].synonyms.len(),
        1,
        "an empty note is no synonym"
    );
    assert_eq!(ids["ICD10CM:P05-P08"].name, "Growth");
    assert_eq!(loaded.version, None, "no <version> and no date in the name");
}

#[test]
fn truncated_file_names_the_last_line() {
    let path = fixture("icd10cm/truncated.xml");
    let lines = std::fs::read_to_string(&path)
        .expect("fixture")
        .lines()
        .count();
    let spec: OntologySpec = format!("icd10cm:{}", path.display()).parse().expect("spec");
    let result = ontology::load(&spec, &LoadOptions::default());
    let text = parse_error(result, "truncated.xml", lines);
    assert!(text.contains("unexpected end of file"), "{text}");
    assert!(text.contains("<inclusionTerm> opened at line 52"), "{text}");
}

#[test]
fn truncated_inside_a_tag() {
    let xml = b"<ICD10CM.tabular>\n<chapter>\n<name>1</name>\n<desc>X</desc>\n<sect";
    let text = parse_error(read_bytes(xml, "cut.xml"), "cut.xml", 5);
    assert!(text.contains("malformed XML"), "{text}");
}

#[test]
fn mismatched_end_tag() {
    let xml =
        b"<ICD10CM.tabular>\n<chapter>\n<name>1</name>\n<desc>X (A00-B99)</desc>\n</section>\n";
    let text = parse_error(read_bytes(xml, "bad.xml"), "bad.xml", 5);
    assert!(text.contains("section"), "{text}");
}

#[test]
fn invalid_utf8_names_its_line() {
    let xml = b"<ICD10CM.tabular>\n<chapter>\n<name>1</name>\n<desc>Bad \xff byte</desc>\n</chapter>\n</ICD10CM.tabular>\n";
    let text = parse_error(read_bytes(xml, "latin1.xml"), "latin1.xml", 4);
    assert!(text.contains("UTF-8"), "{text}");
    // A bad byte on the second line of one text event.
    let xml = b"<ICD10CM.tabular>\n<version>one\ntwo \xc3(</version></ICD10CM.tabular>";
    parse_error(read_bytes(xml, "latin1.xml"), "latin1.xml", 3);
}

#[test]
fn structural_errors_name_the_field() {
    let diag_without_name = b"<ICD10CM.tabular>\n<chapter><name>1</name><desc>C</desc>\n\
        <section id=\"A00-A09\"><desc>S</desc>\n<diag>\n<desc>Cholera</desc>\n</diag>\n\
        </section></chapter></ICD10CM.tabular>";
    let text = parse_error(read_bytes(diag_without_name, "x.xml"), "x.xml", 4);
    assert!(text.contains("field `name`"), "{text}");

    let section_without_id = b"<ICD10CM.tabular>\n<chapter><name>1</name><desc>C</desc>\n\
        <section><desc>S</desc></section></chapter></ICD10CM.tabular>";
    let text = parse_error(read_bytes(section_without_id, "x.xml"), "x.xml", 3);
    assert!(text.contains("field `id`"), "{text}");

    let duplicate = b"<ICD10CM.tabular><chapter><name>1</name><desc>C</desc>\n\
        <section id=\"A00-A09\"><desc>S</desc>\n<diag><name>A00</name><desc>a</desc></diag>\n\
        <diag><name>A00</name><desc>b</desc></diag>\n</section></chapter></ICD10CM.tabular>";
    let text = parse_error(read_bytes(duplicate, "x.xml"), "x.xml", 4);
    assert!(text.contains("defined twice (first at line 3)"), "{text}");

    let bad_code = b"<ICD10CM.tabular><chapter><name>1</name><desc>C</desc>\n\
        <section id=\"A00-A09\"><desc>S</desc>\n<diag><name>A 0</name><desc>a</desc></diag>\n\
        </section></chapter></ICD10CM.tabular>";
    let text = parse_error(read_bytes(bad_code, "x.xml"), "x.xml", 3);
    assert!(text.contains("not an ICD-10-CM code"), "{text}");
}

#[test]
fn not_a_tabular_file() {
    let text = parse_error(
        read_bytes(b"\n<html><body/></html>", "page.xml"),
        "page.xml",
        2,
    );
    assert!(text.contains("root element is <html>"), "{text}");
    let text = parse_error(read_bytes(b"", "empty.xml"), "empty.xml", 1);
    assert!(text.contains("no <ICD10CM.tabular> root"), "{text}");
    parse_error(read_bytes(b"just text\n", "text.xml"), "text.xml", 1);
}

#[test]
fn missing_file_is_an_io_error_naming_the_path() {
    let spec: OntologySpec = "icd10cm:/nonexistent/icd10cm-tabular.xml"
        .parse()
        .expect("spec");
    match ontology::load(&spec, &LoadOptions::default()) {
        Err(e @ Error::Io { .. }) => {
            assert!(e.to_string().contains("/nonexistent/icd10cm-tabular.xml"))
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

fn mini() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| std::fs::read(fixture("icd10cm/mini.xml")).expect("fixture"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = read_bytes(&bytes, "fuzz.xml");
    }

    /// Damaged copies of a valid file reach deeper into the parser than random bytes do.
    #[test]
    fn damaged_fixture_never_panics(
        cut in any::<proptest::sample::Index>(),
        flips in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let mut bytes = mini().to_vec();
        for (at, byte) in flips {
            let at = at.index(bytes.len());
            bytes[at] = byte;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        match read_bytes(&bytes, "fuzz.xml") {
            Ok(_) => {}
            Err(Error::Parse { line, .. }) => prop_assert!(line >= 1),
            Err(other) => prop_assert!(false, "unexpected error kind: {other}"),
        }
    }
}
