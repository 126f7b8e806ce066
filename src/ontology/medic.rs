//! CTD MEDIC disease vocabulary loaders: the 2012 pipe format and the official CTD TSV.
//!
//! - Pipe format (as shipped with the NCBI-disease tooling): `ID[|ID...]||Name[|Synonym...]`,
//!   bare MeSH ids (`D003920`, `C535484`) and bare OMIM numbers. The first id is the concept id,
//!   the others are secondary ids that also resolve to it; the first name is the preferred name.
//! - CTD TSV (`CTD_diseases.tsv[.gz]`): `#` comment lines, nine tab-separated columns
//!   `DiseaseName DiseaseID AltDiseaseIDs Definition ParentIDs TreeNumbers ParentTreeNumbers
//!   Synonyms SlimMappings`. Alternative MeSH / OMIM ids become secondary ids; `DO:DOID:` ids
//!   become cross-references; slim mappings become types.
//!
//! Every id goes through [`normalize_id`], exactly like the gold ids of the PubTator corpora,
//! so that `D003920`, `MESH:D003920` and `OMIM:601462` meet.

use std::io::BufRead;
use std::path::Path;

use super::concept::{Concept, Synonym, SynonymKind};
use super::ids::{normalize_id, prefix};
use super::lines::{split_columns, Lines};
use super::Loaded;
use crate::error::{Error, Result};

/// Parses the MEDIC pipe format.
pub fn read_pipe(reader: impl BufRead, path: &Path) -> Result<Loaded> {
    let mut lines = Lines::new(reader, path);
    let mut loaded = Loaded::default();
    while let Some((line_no, line)) = lines.next_line()? {
        if line.trim().is_empty() {
            continue;
        }
        let (ids, names) = line.split_once("||").ok_or_else(|| {
            Error::parse(
                path,
                line_no,
                None,
                "expected `ID[|ID...]||Name[|Synonym...]` (no `||` separator)",
            )
        })?;
        let mut ids = ids.split('|').map(str::trim);
        let id = ids.next().unwrap_or("");
        if id.is_empty() {
            return Err(Error::parse(path, line_no, Some("id"), "empty concept id"));
        }
        let mut names = names.split('|').map(str::trim);
        let name = names.next().unwrap_or("");
        if name.is_empty() {
            return Err(Error::parse(
                path,
                line_no,
                Some("name"),
                "empty preferred name",
            ));
        }
        let mut concept = Concept::new(normalize_id(id), name);
        concept.alt_ids = ids.filter(|i| !i.is_empty()).map(normalize_id).collect();
        concept.synonyms = names
            .filter(|n| !n.is_empty())
            .map(|n| Synonym::new(n, SynonymKind::Unspecified))
            .collect();
        loaded.concepts.push(concept);
    }
    Ok(loaded)
}

/// Parses the CTD diseases TSV (plain or gzip, see [`super::lines::open`]).
pub fn read_ctd_tsv(reader: impl BufRead, path: &Path) -> Result<Loaded> {
    let mut lines = Lines::new(reader, path);
    let mut loaded = Loaded::default();
    while let Some((line_no, line)) = lines.next_line()? {
        if let Some(comment) = line.strip_prefix('#') {
            if let Some(date) = comment.trim().strip_prefix("Report created:") {
                loaded.version = Some(date.trim().to_string());
            }
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let cols = split_columns(line, '\t', 9..=9, path, line_no)?;
        let (name, id) = (cols[0].trim(), cols[1].trim());
        if id.is_empty() {
            return Err(Error::parse(
                path,
                line_no,
                Some("DiseaseID"),
                "empty disease id",
            ));
        }
        if name.is_empty() {
            return Err(Error::parse(
                path,
                line_no,
                Some("DiseaseName"),
                "empty disease name",
            ));
        }
        let mut concept = Concept::new(normalize_id(id), name);
        for alt in split_list(cols[2]) {
            let alt = normalize_id(alt);
            if matches!(prefix(&alt), "MESH" | "OMIM") {
                concept.alt_ids.push(alt);
            } else {
                concept.xrefs.push(alt);
            }
        }
        let definition = cols[3].trim();
        if !definition.is_empty() {
            concept.definition = Some(definition.to_string());
        }
        concept.parents = split_list(cols[4]).map(normalize_id).collect();
        concept.synonyms = split_list(cols[7])
            .map(|s| Synonym::new(s, SynonymKind::Unspecified))
            .collect();
        concept.types = split_list(cols[8]).map(str::to_string).collect();
        loaded.concepts.push(concept);
    }
    Ok(loaded)
}

fn split_list(field: &str) -> impl Iterator<Item = &str> {
    field.split('|').map(str::trim).filter(|s| !s.is_empty())
}
