//! A corpus named on the command line: `FORMAT:PATH[#OPTION,...]`.
//!
//! | format        | path                                                        |
//! |---------------|-------------------------------------------------------------|
//! | `pubtator`    | a PubTator file (NCBI-disease, BC5CDR)                      |
//! | `phenobert`   | a directory with `corpus/` and `ann/` (PhenoBERT layout)    |
//! | `phenotagger` | `GOLD.tsv,INPUT.PubTator` (GSC+ in the PhenoTagger layout)  |
//! | `medprocner`  | the MedProcNER directory or its TSV                         |
//! | `brat`        | a directory of `.txt` + `.ann` pairs                        |
//! | `ade`         | the ADE corpus v2 directory or its `DRUG-AE.rel`            |
//! | `conll`       | a CoNLL-style IOB file (token and label per line)           |
//! | `e3c`         | an E3C `layer1` directory of one language (UIMA XMI)        |
//!
//! Options, after `#`, separated by commas, select part of the corpus:
//! - `types=T1+T2`: keep only gold mentions of these entity types (case-insensitive); every
//!   type named must occur, so a misspelt type is an error rather than an empty corpus.
//!   Documents are kept whole (their text still defines abbreviations).
//! - `split=train|dev`: one side of the deterministic document split of [`super::split`],
//!   with `dev-fraction=F` (0 < F < 1, default 0.2) and `seed=N` (default 0). The two sides
//!   of one fraction and seed never share a document.
//! - `part=train|test`: the corpus's own published split, where it has one (`e3c`).
//! - `type=T`: every (kept) gold mention gets the one entity type T, after `types`:
//!   NCBI-disease's four classes are one `Disease` type in the published NER benchmarks.
//!
//! `medprocner:DIR#split=dev,dev-fraction=0.2,seed=0` is the held-out fifth of MedProcNER;
//! `pubtator:CDR_TrainingSet.PubTator.txt#types=Disease` the disease mentions of BC5CDR train.
//! A path cannot contain `#`. [`CorpusSpec`]'s `Display` writes the canonical form (options in
//! a fixed order), which index manifests record.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use super::{ade, brat, conll, e3c, hpo_corpora, medprocner, pubtator, split, Corpus};
use crate::error::{Error, Result};

const CORPUS_FORMATS: &str = "pubtator, phenobert, phenotagger, medprocner, brat, ade, conll, e3c";
const OPTIONS: &str = "types, type, split, dev-fraction, seed, part";
const DEFAULT_DEV_FRACTION: f64 = 0.2;

/// Which side of a document split a spec keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Train,
    Dev,
}

/// One side of a deterministic document split.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitPart {
    pub side: Side,
    pub dev_fraction: f64,
    pub seed: u64,
}

/// `FORMAT:PATH[#OPTIONS]`; see the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct CorpusSpec {
    pub format: String,
    pub path: String,
    /// Entity types of gold mentions to keep; empty keeps all.
    pub types: Vec<String>,
    pub split: Option<SplitPart>,
    /// The corpus's published part (`part=train|test`), for formats that have one.
    pub part: Option<String>,
    /// One entity type given to every gold mention (`type=T`).
    pub single_type: Option<String>,
}

impl FromStr for CorpusSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: String| Error::InvalidInput(format!("corpus `{s}`: {why}"));
        let (format, rest) = s.split_once(':').ok_or_else(|| {
            bad(format!(
                "must be FORMAT:PATH[#OPTIONS], FORMAT one of {CORPUS_FORMATS}"
            ))
        })?;
        if !CORPUS_FORMATS.split(", ").any(|f| f == format) {
            return Err(Error::UnknownFormat {
                found: format.to_string(),
                expected: CORPUS_FORMATS.to_string(),
            });
        }
        let (path, options) = match rest.split_once('#') {
            Some((path, options)) => (path, Some(options)),
            None => (rest, None),
        };
        if path.is_empty() {
            return Err(bad("empty path".into()));
        }
        let mut spec = CorpusSpec {
            format: format.to_string(),
            path: path.to_string(),
            types: Vec::new(),
            split: None,
            part: None,
            single_type: None,
        };
        let (mut side, mut fraction, mut seed) = (None, None, None);
        let mut seen = Vec::new();
        for option in options.into_iter().flat_map(|o| o.split(',')) {
            let (key, value) = option
                .split_once('=')
                .filter(|(k, v)| !k.is_empty() && !v.is_empty())
                .ok_or_else(|| {
                    bad(format!(
                        "option `{option}` must be KEY=VALUE, KEY one of {OPTIONS}"
                    ))
                })?;
            if seen.contains(&key) {
                return Err(bad(format!("option `{key}` given twice")));
            }
            seen.push(key);
            match key {
                "types" => spec.types = value.split('+').map(str::to_string).collect(),
                "type" => spec.single_type = Some(value.to_string()),
                "split" => {
                    side = Some(match value {
                        "train" => Side::Train,
                        "dev" => Side::Dev,
                        _ => return Err(bad(format!("split must be train or dev, not `{value}`"))),
                    })
                }
                "part" => {
                    if format != "e3c" {
                        return Err(bad(format!(
                            "part= needs a corpus with a published split (e3c), not {format}"
                        )));
                    }
                    if value != "train" && value != "test" {
                        return Err(bad(format!("part must be train or test, not `{value}`")));
                    }
                    spec.part = Some(value.to_string());
                }
                "dev-fraction" => {
                    let f: f64 = value
                        .parse()
                        .ok()
                        .filter(|f| *f > 0.0 && *f < 1.0)
                        .ok_or_else(|| {
                            bad(format!(
                                "dev-fraction must be a number between 0 and 1 (exclusive), not `{value}`"
                            ))
                        })?;
                    fraction = Some(f);
                }
                "seed" => {
                    seed = Some(value.parse::<u64>().map_err(|_| {
                        bad(format!(
                            "seed must be a non-negative integer, not `{value}`"
                        ))
                    })?)
                }
                _ => return Err(bad(format!("unknown option `{key}` (known: {OPTIONS})"))),
            }
        }
        spec.split = match side {
            Some(side) => Some(SplitPart {
                side,
                dev_fraction: fraction.unwrap_or(DEFAULT_DEV_FRACTION),
                seed: seed.unwrap_or(0),
            }),
            None if fraction.is_some() || seed.is_some() => {
                return Err(bad(
                    "dev-fraction and seed need split=train or split=dev".into()
                ))
            }
            None => None,
        };
        Ok(spec)
    }
}

impl fmt::Display for CorpusSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.format, self.path)?;
        let mut options = Vec::new();
        if !self.types.is_empty() {
            options.push(format!("types={}", self.types.join("+")));
        }
        if let Some(t) = &self.single_type {
            options.push(format!("type={t}"));
        }
        if let Some(part) = &self.part {
            options.push(format!("part={part}"));
        }
        if let Some(part) = &self.split {
            let side = match part.side {
                Side::Train => "train",
                Side::Dev => "dev",
            };
            options.push(format!("split={side}"));
            options.push(format!("dev-fraction={}", part.dev_fraction));
            options.push(format!("seed={}", part.seed));
        }
        if !options.is_empty() {
            write!(f, "#{}", options.join(","))?;
        }
        Ok(())
    }
}

impl CorpusSpec {
    /// Reads the corpus, then applies the split and the type filter.
    pub fn load(&self) -> Result<Corpus> {
        let path = Path::new(&self.path);
        let mut corpus = match self.format.as_str() {
            "pubtator" => pubtator::load(path),
            "phenobert" => hpo_corpora::load_phenobert_dir(path),
            "phenotagger" => {
                let (gold, input) = self.path.split_once(',').ok_or_else(|| {
                    Error::InvalidInput(
                        "phenotagger corpus must be phenotagger:GOLD.tsv,INPUT.PubTator".into(),
                    )
                })?;
                hpo_corpora::load_phenotagger_gold(Path::new(gold), Path::new(input))
            }
            "medprocner" => medprocner::load(path),
            "brat" => brat::load_dir(path),
            "ade" => ade::load(path),
            "conll" => conll::load(path),
            "e3c" => e3c::load_dir(path),
            other => Err(Error::UnknownFormat {
                found: other.to_string(),
                expected: CORPUS_FORMATS.to_string(),
            }),
        }?;
        if let Some(part) = &self.part {
            let train = e3c::official_training_ids(path)?;
            corpus
                .documents
                .retain(|d| train.contains(&d.id) == (part == "train"));
            if corpus.documents.is_empty() {
                return Err(Error::InvalidInput(format!(
                    "corpus `{self}`: the {part} part has no document"
                )));
            }
        }
        if let Some(part) = &self.split {
            let (train, dev) = split::split(&corpus, part.dev_fraction, part.seed);
            corpus = match part.side {
                Side::Train => train,
                Side::Dev => dev,
            };
            if corpus.documents.is_empty() {
                return Err(Error::InvalidInput(format!(
                    "corpus `{self}`: this side of the split has no document"
                )));
            }
        }
        if !self.types.is_empty() {
            self.keep_types(&mut corpus)?;
        }
        if let Some(t) = &self.single_type {
            for doc in &mut corpus.documents {
                for m in &mut doc.mentions {
                    m.entity_type = t.clone();
                }
            }
        }
        Ok(corpus)
    }

    fn keep_types(&self, corpus: &mut Corpus) -> Result<()> {
        let mut present = std::collections::BTreeSet::new();
        for (_, m) in corpus.mentions() {
            present.insert(m.entity_type.clone());
        }
        for t in &self.types {
            if !present.iter().any(|p| p.eq_ignore_ascii_case(t)) {
                return Err(Error::InvalidInput(format!(
                    "corpus `{self}`: no mention has type `{t}` (types present: {})",
                    present.into_iter().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        for doc in &mut corpus.documents {
            doc.mentions.retain(|m| {
                self.types
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case(&m.entity_type))
            });
        }
        Ok(())
    }
}
