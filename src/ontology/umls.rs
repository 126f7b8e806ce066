//! UMLS Metathesaurus loader: `MRCONSO.RRF` (concept names) plus optional `MRSTY.RRF`
//! (semantic types), in the pipe-separated RRF layout of a MetamorphoSys subset or a full release.
//!
//! Promises:
//! - streams both files line by line (a full MRCONSO has over 15 million rows) and keeps only
//!   the rows that pass the [`LoadOptions`] filters: language (`LAT`), source (`SAB`) and
//!   suppression (`SUPPRESS` other than `N` is dropped unless `include_suppressed`);
//! - one [`Concept`] per CUI with at least one kept row, id `UMLS:<CUI>`, in order of first
//!   appearance; rows are grouped by CUI without assuming the file is sorted;
//! - the name is the UMLS preferred string (`TS=P`, `STT=PF`, `ISPREF=Y`) when it survived the
//!   filters, else the first kept string; every other distinct string becomes a synonym
//!   ([`SynonymKind::Abbreviation`] for abbreviation term types, else
//!   [`SynonymKind::Unspecified`], since RRF does not say how a string relates);
//! - source codes of vocabularies medlink knows become prefixed xrefs (`MSH` -> `MESH:D009203`);
//! - MRSTY semantic type names (`STY`) become [`Concept::types`];
//! - a malformed row fails with [`Error::Parse`] naming file, line and, where one field is at
//!   fault, that field; nothing panics on bad input.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::concept::{Concept, SynonymKind};
use super::ids;
use super::lines::{self, Lines};
use super::{LoadOptions, Loaded};
use crate::error::{Error, Result};

const MRCONSO: &str = "MRCONSO.RRF";
const MRSTY: &str = "MRSTY.RRF";

// MRCONSO columns: CUI|LAT|TS|LUI|STT|SUI|ISPREF|AUI|SAUI|SCUI|SDUI|SAB|TTY|CODE|STR|SRL|SUPPRESS|CVF|
const CONSO_FIELDS: usize = 18;
const C_CUI: usize = 0;
const C_LAT: usize = 1;
const C_TS: usize = 2;
const C_STT: usize = 4;
const C_ISPREF: usize = 6;
const C_SAB: usize = 11;
const C_TTY: usize = 12;
const C_CODE: usize = 13;
const C_STR: usize = 14;
const C_SUPPRESS: usize = 16;

// MRSTY columns: CUI|TUI|STN|STY|ATUI|CVF|
const STY_FIELDS: usize = 6;
const S_CUI: usize = 0;
const S_STY: usize = 3;

/// Term types that mark a string as an abbreviation or acronym of the concept's name.
const ABBREVIATION_TTYS: &[&str] = &["AB", "ACR", "AA", "AM"];

/// Source vocabularies whose codes medlink can store as xrefs, with the prefix each gets.
const XREF_SABS: &[(&str, &str)] = &[
    ("MSH", "MESH"),
    ("SNOMEDCT_US", "SNOMEDCT"),
    ("OMIM", "OMIM"),
    ("HPO", "HP"),
    ("ICD10CM", "ICD10CM"),
    ("NCI", "NCIT"),
    ("ORPHANET", "ORPHA"),
];

/// A concept being assembled. Names stay in one list (name first once chosen) so a CUI with
/// many strings costs one allocation per distinct string.
struct Builder {
    cui: String,
    /// Distinct kept strings in file order, with the kind each row gave them.
    strings: Vec<(String, SynonymKind)>,
    /// Index into `strings` of the preferred string, and whether it is English.
    preferred: Option<(usize, bool)>,
    xrefs: Vec<String>,
    types: Vec<String>,
}

/// Loads a UMLS subset from a META directory, or from the path of `MRCONSO.RRF` itself.
///
/// `MRSTY.RRF` is read from the same directory when present; its absence is a warning, not an
/// error, because many subsets ship MRCONSO alone.
pub fn load_dir(path: &Path, opts: &LoadOptions) -> Result<Loaded> {
    let (conso_path, sty_path) = locate(path);
    let mut loaded = Loaded {
        version: release_version(&conso_path),
        ..Loaded::default()
    };

    let mut builders: Vec<Builder> = Vec::new();
    let mut by_cui: HashMap<String, usize> = HashMap::new();
    let mut rows_kept = 0usize;
    read_mrconso(
        &conso_path,
        opts,
        &mut builders,
        &mut by_cui,
        &mut rows_kept,
    )?;
    loaded.files.push(conso_path.clone());
    tracing::debug!(rows_kept, concepts = builders.len(), "read MRCONSO");

    match sty_path {
        Some(sty) => {
            read_mrsty(&sty, &mut builders, &by_cui)?;
            loaded.files.push(sty);
        }
        None => loaded.warnings.push(format!(
            "no {MRSTY} beside {}; concepts have no semantic types",
            conso_path.display()
        )),
    }
    drop(by_cui);

    loaded.concepts = builders.into_iter().map(Builder::finish).collect();
    Ok(loaded)
}

/// Resolves the MRCONSO path (a directory gets `MRCONSO.RRF`, or `MRCONSO.RRF.gz` when only
/// that exists) and the MRSTY path beside it, if that file exists.
fn locate(path: &Path) -> (PathBuf, Option<PathBuf>) {
    let (dir, conso) = if path.is_dir() {
        let plain = path.join(MRCONSO);
        let gz = path.join(format!("{MRCONSO}.gz"));
        let conso = if !plain.exists() && gz.exists() {
            gz
        } else {
            // When neither exists, opening the plain name reports the missing file.
            plain
        };
        (path.to_path_buf(), conso)
    } else {
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        (dir, path.to_path_buf())
    };
    let sty = [dir.join(MRSTY), dir.join(format!("{MRSTY}.gz"))]
        .into_iter()
        .find(|p| p.is_file());
    (conso, sty)
}

/// The release (`2024AA`) when a path component names one, as in `2024AA/META/MRCONSO.RRF`.
fn release_version(conso: &Path) -> Option<String> {
    conso.ancestors().skip(1).find_map(|dir| {
        let name = dir.file_name()?.to_str()?;
        let b = name.as_bytes();
        let is_release = b.len() == 6
            && b[..4].iter().all(u8::is_ascii_digit)
            && b[4] == b'A'
            && b[5].is_ascii_uppercase();
        is_release.then(|| name.to_string())
    })
}

/// Splits one RRF row, accepting it with or without the trailing `|` that real files carry.
fn split_rrf<'a>(
    line: &'a str,
    fields: usize,
    path: &Path,
    line_no: usize,
) -> Result<Vec<&'a str>> {
    let mut cols = lines::split_columns(line, '|', fields..=fields + 1, path, line_no)?;
    if cols.len() == fields + 1 {
        if cols[fields].is_empty() {
            cols.pop();
        } else {
            return Err(Error::parse(
                path,
                line_no,
                None,
                format!(
                    "expected {fields} columns separated by '|', found {}",
                    fields + 1
                ),
            ));
        }
    }
    Ok(cols)
}

fn read_mrconso(
    path: &Path,
    opts: &LoadOptions,
    builders: &mut Vec<Builder>,
    by_cui: &mut HashMap<String, usize>,
    rows_kept: &mut usize,
) -> Result<()> {
    let mut lines = Lines::new(lines::open(path)?, path);
    while let Some((line_no, line)) = lines.next_line()? {
        if line.is_empty() {
            continue;
        }
        let cols = split_rrf(line, CONSO_FIELDS, path, line_no)?;
        let cui = cols[C_CUI];
        if cui.is_empty() {
            return Err(Error::parse(path, line_no, Some("CUI"), "empty concept id"));
        }
        let suppress = cols[C_SUPPRESS];
        if !matches!(suppress, "N" | "O" | "E" | "Y") {
            return Err(Error::parse(
                path,
                line_no,
                Some("SUPPRESS"),
                format!("`{suppress}` is not one of N, O, E, Y"),
            ));
        }
        let lat = cols[C_LAT];
        let sab = cols[C_SAB];
        if !opts.keeps_language(lat)
            || !(opts.umls_sources.is_empty()
                || opts
                    .umls_sources
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(sab)))
            || (suppress != "N" && !opts.include_suppressed)
        {
            continue;
        }
        let text = cols[C_STR].trim();
        if text.is_empty() {
            return Err(Error::parse(path, line_no, Some("STR"), "empty string"));
        }
        *rows_kept += 1;

        let idx = match by_cui.get(cui) {
            Some(&idx) => idx,
            None => {
                by_cui.insert(cui.to_string(), builders.len());
                builders.push(Builder {
                    cui: cui.to_string(),
                    strings: Vec::new(),
                    preferred: None,
                    xrefs: Vec::new(),
                    types: Vec::new(),
                });
                builders.len() - 1
            }
        };
        let b = &mut builders[idx];

        let kind = if ABBREVIATION_TTYS.contains(&cols[C_TTY]) {
            SynonymKind::Abbreviation
        } else {
            SynonymKind::Unspecified
        };
        let pos = match b.strings.iter().position(|(s, _)| s == text) {
            Some(pos) => pos,
            None => {
                b.strings.push((text.to_string(), kind));
                b.strings.len() - 1
            }
        };
        if cols[C_TS] == "P" && cols[C_STT] == "PF" && cols[C_ISPREF] == "Y" {
            // Each language has its own preferred string; when several languages are kept the
            // English one names the concept, as in the UMLS browser.
            let english = lat.eq_ignore_ascii_case("ENG");
            match b.preferred {
                None => b.preferred = Some((pos, english)),
                Some((_, false)) if english => b.preferred = Some((pos, true)),
                Some(_) => {}
            }
        }

        let code = cols[C_CODE].trim();
        if let Some((_, prefix)) = XREF_SABS.iter().find(|(s, _)| *s == sab) {
            if !code.is_empty() && code != "NOCODE" {
                let xref = xref_id(prefix, code);
                if !b.xrefs.contains(&xref) {
                    b.xrefs.push(xref);
                }
            }
        }
    }
    Ok(())
}

/// `MESH:D009203` from prefix `MESH` and code `D009203`; HPO codes already carry their prefix
/// (`HP:0000822`), so a code that starts with the prefix is not prefixed twice.
fn xref_id(prefix: &str, code: &str) -> String {
    if code.contains(':') {
        let normalized = ids::normalize_id(code);
        if ids::prefix(&normalized) == prefix {
            return normalized;
        }
    }
    ids::normalize_id(&format!("{prefix}:{code}"))
}

fn read_mrsty(
    path: &Path,
    builders: &mut [Builder],
    by_cui: &HashMap<String, usize>,
) -> Result<()> {
    let mut lines = Lines::new(lines::open(path)?, path);
    while let Some((line_no, line)) = lines.next_line()? {
        if line.is_empty() {
            continue;
        }
        let cols = split_rrf(line, STY_FIELDS, path, line_no)?;
        let cui = cols[S_CUI];
        if cui.is_empty() {
            return Err(Error::parse(path, line_no, Some("CUI"), "empty concept id"));
        }
        let sty = cols[S_STY].trim();
        if sty.is_empty() {
            return Err(Error::parse(
                path,
                line_no,
                Some("STY"),
                "empty semantic type name",
            ));
        }
        // Types of CUIs filtered out of MRCONSO are expected and ignored.
        if let Some(&idx) = by_cui.get(cui) {
            let types = &mut builders[idx].types;
            if !types.iter().any(|t| t == sty) {
                types.push(sty.to_string());
            }
        }
    }
    Ok(())
}

impl Builder {
    fn finish(self) -> Concept {
        let Builder {
            cui,
            mut strings,
            preferred,
            xrefs,
            types,
        } = self;
        // Every builder has at least one string: it is created by a kept row.
        let name_pos = preferred.map_or(0, |(pos, _)| pos);
        let name = if name_pos < strings.len() {
            strings.remove(name_pos).0
        } else {
            String::new()
        };
        let mut concept = Concept::new(format!("UMLS:{cui}"), name);
        for (text, kind) in strings {
            concept.push_synonym(text, kind);
        }
        concept.xrefs = xrefs;
        concept.types = types;
        concept
    }
}
