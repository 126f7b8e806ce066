//! `manifest.json`: what an index directory holds and how it was made.
//!
//! The manifest is a promise about the on-disk format: `format_version` changes whenever a file
//! of the index changes shape, and an index is opened only by a medlink that knows its version.
//! It records the model (name, pooling, dimension, max length, weights checksum) so that an
//! index is never queried with vectors from another model.
//!
//! Versions: 1, then 2 (sources may have the format `corpus`: names added from an annotated
//! corpus's mentions), then 3 (medlink's own memory-mapped `graph.bin` replaces the hnsw_rs
//! dump; `vectors.bin` version 2 may hold f16). Versions 1 and 2 still open.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::dense::HnswParams;
use crate::encoder::ModelIdentity;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::ontology::SourceInfo;

pub const INDEX_FORMAT_VERSION: u32 = 3;
/// The oldest index format this build still opens.
pub const OLDEST_READABLE_INDEX_VERSION: u32 = 1;
pub const MANIFEST_FILE: &str = "manifest.json";

/// Serialized as `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    /// medlink version that built the index.
    pub medlink_version: String,
    /// Unix seconds.
    pub created_unix: u64,
    pub model: ModelIdentity,
    /// Where the model was loaded from at build time: a hint used when no `--model` is given.
    pub model_path: String,
    pub sources: Vec<SourceInfo>,
    pub counts: Counts,
    pub hnsw: HnswParams,
    pub files: Files,
    /// The hybrid weight chosen for this index on a development corpus (`medlink index
    /// tune`); absent until tuned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fusion: Option<Fusion>,
}

/// A tuned hybrid weight and the evidence for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fusion {
    /// Weight of the dense score (`alpha * dense + (1 - alpha) * lexical`).
    pub alpha: f32,
    /// The corpus it was chosen on (a spec, as `eval link --corpus` takes it).
    pub tuned_on: String,
    /// Mentions evaluated.
    pub mentions: usize,
    /// acc@1 there with this alpha, and with the untuned default.
    pub acc_at_1: f64,
    pub default_acc_at_1: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub concepts: usize,
    pub active_concepts: usize,
    pub names: usize,
}

/// File names inside the index directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Files {
    pub dictionary: String,
    pub vectors: String,
    /// The HNSW graph (format 3 on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<String>,
    /// Basename of the hnsw_rs dump of formats 1 and 2 (no longer read: the graph is rebuilt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hnsw_basename: Option<String>,
    /// Directory of the tantivy index.
    pub lexical: String,
    /// The re-ranker trained for this index (`medlink train reranker`); absent until trained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reranker: Option<String>,
}

impl Manifest {
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(MANIFEST_FILE);
        fsutil::write_atomic(&path, |w| {
            serde_json::to_writer_pretty(&mut *w, self).map_err(std::io::Error::other)?;
            std::io::Write::write_all(w, b"\n")
        })
    }

    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST_FILE);
        if !dir.is_dir() {
            return Err(Error::io(
                dir,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "index directory not found (build one with `medlink index build`)",
                ),
            ));
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::parse(&path, e.line(), None, e.to_string()))?;
        let version = value.get("format_version").and_then(|v| v.as_u64());
        let readable = u64::from(OLDEST_READABLE_INDEX_VERSION)..=u64::from(INDEX_FORMAT_VERSION);
        if !version.is_some_and(|v| readable.contains(&v)) {
            return Err(Error::FileFormat {
                path: path.clone(),
                expected: format!(
                    "index format version {OLDEST_READABLE_INDEX_VERSION} to {INDEX_FORMAT_VERSION}"
                ),
                found: version.map_or("no format_version".into(), |v| format!("version {v}")),
            });
        }
        serde_json::from_value(value).map_err(|e| Error::parse(&path, 1, None, e.to_string()))
    }
}
