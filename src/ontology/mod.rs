//! Ontologies: the concept model, the dictionary, and one loader per source format.
//!
//! Every loader streams its input, produces [`Concept`]s with prefixed ids (see [`ids`]) and
//! fails with an [`crate::Error::Parse`] naming file, line and field — never a panic. The text
//! parsers take any `BufRead` so they can be fed bytes in tests.
//!
//! | format    | input                                                       | module       |
//! |-----------|-------------------------------------------------------------|--------------|
//! | `obo`     | OBO 1.2 (`hp.obo`, `doid.obo`)                              | [`obo`]      |
//! | `medic`   | CTD MEDIC pipe format `ID[|ID]||Name[|Syn]` (BioSyn, 2012)   | [`medic`]    |
//! | `ctd`     | CTD `CTD_diseases.tsv[.gz]`                                 | [`medic`]    |
//! | `umls`    | directory with `MRCONSO.RRF` (+ `MRSTY.RRF`)                | [`umls`]     |
//! | `snomed`  | RF2 snapshot directory (`sct2_Concept`, `sct2_Description`, `sct2_Relationship`) | [`snomed`] |
//! | `icd10cm` | CMS tabular XML                                             | [`icd10cm`]  |
//! | `mesh`    | MeSH descriptor labels CSV (`id,scheme,subject`)            | [`custom`]   |
//! | `tsv`     | `id<TAB>name<TAB>synonyms(|)<TAB>types(|)`                  | [`custom`]   |
//! | `jsonl`   | `{"id":..,"name":..,"synonyms":[..],"types":[..]}` per line | [`custom`]   |
//!
//! Names and definitions that spell characters as HTML / XML references (`Pick&apos;s
//! Disease`, as BioSyn's MEDIC 2012 file does) are read as the characters they stand for, with
//! a warning that counts them; the ICD-10-CM XML parser resolves its own.
//!
//! A dictionary may also hold the gold mention strings of an annotated corpus, added with
//! [`crate::eval::mentions::add_mentions`] (`index build --add-mentions`); their source has the
//! format [`Format::Corpus`], which no loader reads.

pub mod concept;
pub mod custom;
pub mod dictionary;
pub mod icd10cm;
pub mod ids;
pub mod lines;
pub mod medic;
pub mod obo;
pub mod snomed;
pub mod store;
pub mod umls;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use concept::{Concept, Synonym, SynonymKind};
pub use dictionary::{
    ConceptIdx, Dictionary, DictionaryStats, NameEntry, NameIdx, Names, SourceInfo,
};

use crate::error::{Error, Result};
use crate::text::decode_character_references;

/// A supported source format. Serialized (dictionary file, index manifest) as its lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Obo,
    Medic,
    Ctd,
    Umls,
    Snomed,
    Icd10cm,
    Mesh,
    Tsv,
    Jsonl,
    /// Gold mention strings of an annotated corpus (`index build --add-mentions`): recorded in
    /// sources, never loaded as an ontology, so it is not in [`Format::ALL`]. Added in
    /// dictionary format 2 / index format 2.
    Corpus,
}

impl Format {
    /// The ontology formats a loader reads.
    pub const ALL: [Format; 9] = [
        Format::Obo,
        Format::Medic,
        Format::Ctd,
        Format::Umls,
        Format::Snomed,
        Format::Icd10cm,
        Format::Mesh,
        Format::Tsv,
        Format::Jsonl,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Obo => "obo",
            Format::Medic => "medic",
            Format::Ctd => "ctd",
            Format::Umls => "umls",
            Format::Snomed => "snomed",
            Format::Icd10cm => "icd10cm",
            Format::Mesh => "mesh",
            Format::Tsv => "tsv",
            Format::Jsonl => "jsonl",
            Format::Corpus => "corpus",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::UnknownFormat {
                found: s.to_string(),
                expected: Format::ALL.map(Format::as_str).join(", "),
            })
    }
}

/// `FORMAT:PATH` as given on the command line, e.g. `obo:../shared/data/hpo/hp.obo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OntologySpec {
    pub format: Format,
    pub path: PathBuf,
}

impl FromStr for OntologySpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let (format, path) = s.split_once(':').ok_or_else(|| {
            Error::InvalidInput(format!(
                "ontology `{s}` must be FORMAT:PATH, FORMAT one of {}",
                Format::ALL.map(Format::as_str).join(", ")
            ))
        })?;
        if path.is_empty() {
            return Err(Error::InvalidInput(format!(
                "ontology `{s}` has an empty path"
            )));
        }
        Ok(OntologySpec {
            format: format.parse()?,
            path: PathBuf::from(path),
        })
    }
}

impl fmt::Display for OntologySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.format, self.path.display())
    }
}

/// Filters applied while loading. Each loader uses the ones that make sense for its format.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Languages to keep (UMLS `LAT` such as `ENG`; SNOMED `languageCode` such as `en`).
    /// Matched case-insensitively on the first two letters, so `ENG` and `en` agree.
    /// Empty keeps every language.
    pub languages: Vec<String>,
    /// UMLS source vocabularies (`SAB`) to keep; empty keeps all.
    pub umls_sources: Vec<String>,
    /// Keep UMLS rows marked suppressed (`SUPPRESS` other than `N`).
    pub include_suppressed: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            languages: vec!["ENG".to_string()],
            umls_sources: Vec::new(),
            include_suppressed: false,
        }
    }
}

impl LoadOptions {
    /// Whether a language code passes the filter (`ENG`, `en`, `en-US` all match `ENG`;
    /// `GER`, `DEU` and `de` are one language).
    pub fn keeps_language(&self, code: &str) -> bool {
        self.languages.is_empty()
            || self
                .languages
                .iter()
                .any(|l| language_key(l) == language_key(code))
    }
}

/// UMLS `LAT` (ISO 639-2, bibliographic or terminological) to ISO 639-1 as SNOMED writes it.
const LANGUAGES: &[(&str, &str)] = &[
    ("eng", "en"),
    ("spa", "es"),
    ("fre", "fr"),
    ("fra", "fr"),
    ("ger", "de"),
    ("deu", "de"),
    ("ita", "it"),
    ("por", "pt"),
    ("dut", "nl"),
    ("nld", "nl"),
    ("swe", "sv"),
    ("dan", "da"),
    ("nor", "no"),
    ("fin", "fi"),
    ("cze", "cs"),
    ("ces", "cs"),
    ("pol", "pl"),
    ("hun", "hu"),
    ("gre", "el"),
    ("ell", "el"),
    ("rus", "ru"),
    ("jpn", "ja"),
    ("chi", "zh"),
    ("zho", "zh"),
    ("kor", "ko"),
    ("tur", "tr"),
    ("heb", "he"),
    ("ara", "ar"),
    ("est", "et"),
    ("lav", "lv"),
    ("lit", "lt"),
    ("hrv", "hr"),
    ("ice", "is"),
    ("isl", "is"),
    ("baq", "eu"),
    ("eus", "eu"),
];

/// One spelling per language: `en-US` -> `en`, `ENG` -> `en`, unknown codes lowercased.
fn language_key(code: &str) -> String {
    let base = code
        .split(['-', '_'])
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    LANGUAGES
        .iter()
        .find(|(three, _)| *three == base)
        .map(|(_, two)| (*two).to_string())
        .unwrap_or(base)
}

/// Loads one source.
pub fn load(spec: &OntologySpec, opts: &LoadOptions) -> Result<Loaded> {
    let path = spec.path.as_path();
    if !path.exists() {
        return Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
        ));
    }
    let _span = tracing::info_span!("load_ontology", format = %spec.format, path = %path.display())
        .entered();
    let mut loaded = match spec.format {
        Format::Obo => obo::read(lines::open(path)?, path),
        Format::Medic => medic::read_pipe(lines::open(path)?, path),
        Format::Ctd => medic::read_ctd_tsv(lines::open(path)?, path),
        Format::Umls => umls::load_dir(path, opts),
        Format::Snomed => snomed::load_dir(path, opts),
        Format::Icd10cm => icd10cm::read(lines::open(path)?, path),
        Format::Mesh => custom::read_mesh_csv(lines::open(path)?, path),
        Format::Tsv => custom::read_tsv(lines::open(path)?, path),
        Format::Jsonl => custom::read_jsonl(lines::open(path)?, path),
        Format::Corpus => Err(Error::InvalidInput(format!(
            "{}: corpus mentions are added with `index build --add-mentions`, not loaded as an ontology",
            path.display()
        ))),
    }?;
    if loaded.files.is_empty() {
        loaded.files.push(path.to_path_buf());
    }
    // The ICD-10-CM XML parser resolves references itself; decoding its text again would turn
    // a literal "&amp;" written as "&amp;amp;" into "&".
    if spec.format != Format::Icd10cm {
        let decoded = decode_references(&mut loaded.concepts);
        if decoded > 0 {
            loaded.warnings.push(format!(
                "{decoded} names held HTML character references (such as `&apos;` or `&#233;`), \
                 read as the characters they stand for"
            ));
        }
    }
    tracing::info!(concepts = loaded.concepts.len(), "loaded");
    Ok(loaded)
}

/// Replaces character references in every concept's names and definition (see
/// [`crate::text::decode_character_references`]); returns how many names changed.
fn decode_references(concepts: &mut [Concept]) -> usize {
    let mut decoded = 0;
    for concept in concepts {
        let names = std::iter::once(&mut concept.name)
            .chain(concept.synonyms.iter_mut().map(|s| &mut s.text));
        for name in names {
            if let Some(plain) = decode_character_references(name) {
                *name = plain;
                decoded += 1;
            }
        }
        if let Some(definition) = concept.definition.as_mut() {
            if let Some(plain) = decode_character_references(definition) {
                *definition = plain;
            }
        }
    }
    decoded
}

/// Default short source name for a format and path, used in filters and reports.
pub fn source_name(spec: &OntologySpec) -> String {
    let stem = spec
        .path
        .file_name()
        .map(|s| s.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match spec.format {
        Format::Obo if stem.starts_with("hp") => "HPO".into(),
        Format::Obo if stem.starts_with("doid") => "DOID".into(),
        Format::Obo => stem.trim_end_matches(".obo").to_ascii_uppercase(),
        Format::Medic => "MEDIC".into(),
        Format::Ctd => "CTD".into(),
        Format::Umls => "UMLS".into(),
        Format::Snomed => "SNOMEDCT".into(),
        Format::Icd10cm => "ICD10CM".into(),
        Format::Mesh => "MESH".into(),
        Format::Corpus => "MENTIONS".into(),
        Format::Tsv | Format::Jsonl => stem
            .split('.')
            .next()
            .unwrap_or("CUSTOM")
            .to_ascii_uppercase(),
    }
}

/// Loads every source into one dictionary.
pub fn load_dictionary(specs: &[OntologySpec], opts: &LoadOptions) -> Result<Dictionary> {
    if specs.is_empty() {
        return Err(Error::InvalidInput("no ontology given".into()));
    }
    let mut sources = Vec::new();
    let mut concepts = Vec::new();
    let mut warnings = Vec::new();
    for spec in specs {
        let loaded = load(spec, opts)?;
        let source_idx = u16::try_from(sources.len())
            .map_err(|_| Error::InvalidInput("more than 65535 ontology sources".into()))?;
        let files: Vec<&Path> = loaded.files.iter().map(PathBuf::as_path).collect();
        sources.push(SourceInfo {
            name: source_name(spec),
            format: spec.format,
            path: spec.path.display().to_string(),
            version: loaded.version,
            sha256: crate::fsutil::sha256_files(&files)?,
            concepts: loaded.concepts.len(),
        });
        warnings.extend(
            loaded
                .warnings
                .into_iter()
                .map(|w| format!("{}: {w}", spec.path.display())),
        );
        concepts.extend(loaded.concepts.into_iter().map(|mut c| {
            c.source = source_idx;
            c
        }));
    }
    Dictionary::from_parts(sources, concepts, warnings)
}

#[cfg(test)]
mod tests {
    use super::LoadOptions;

    #[test]
    fn language_filter_maps_iso_639_2_to_639_1() {
        let keep = |filter: &str, code: &str| {
            LoadOptions {
                languages: vec![filter.to_string()],
                ..LoadOptions::default()
            }
            .keeps_language(code)
        };
        assert!(keep("ENG", "en"));
        assert!(keep("ENG", "en-US"));
        assert!(keep("GER", "de"));
        assert!(keep("de", "DEU"));
        assert!(keep("SPA", "es"));
        assert!(!keep("POL", "POR"));
        assert!(!keep("ENG", "es"));
    }
}

/// What one loader returns: concepts of one source, the version it declares, and warnings
/// about records it skipped or repaired.
#[derive(Debug, Default)]
pub struct Loaded {
    pub concepts: Vec<Concept>,
    pub version: Option<String>,
    pub warnings: Vec<String>,
    /// The files read, for the source checksum.
    pub files: Vec<PathBuf>,
}
