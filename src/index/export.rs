//! `medlink index export`: an index's name vectors and payloads as files an external vector
//! engine loads with plain HTTP requests, for deployments past one machine (ARCHITECTURE.md,
//! "Past one machine").
//!
//! Every point's id is its row in the index's name table, so hits from the engine are the ids
//! [`crate::index::dense::VectorIndex`] returns and the linker fuses them with the index's
//! own lexical search and scores. Vectors are written as f32 (the stored f16 / i8 widened);
//! the engine scores by dot product, which is cosine for these unit vectors.
//!
//! - `qdrant`: `collection.json` (body of `PUT /collections/{name}`) and `points-NNNNN.json`
//!   (bodies of `PUT /collections/{name}/points`, `batch` points each);
//! - `opensearch`: `mapping.json` (body of `PUT /{index}`, a k-NN HNSW field) and
//!   `bulk-NNNNN.ndjson` (bodies of `POST /{index}/_bulk`).
//!
//! `LOAD.txt` in the output lists the requests. Each file is written atomically.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::Index;
use crate::error::{Error, Result};
use crate::fsutil;

/// The engines whose bulk-load format is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Qdrant,
    Opensearch,
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    pub points: usize,
    pub files: Vec<PathBuf>,
}

/// Writes `index`'s points into `out` (created if missing; existing files of the same names
/// are replaced), `batch` points per file.
pub fn export(
    index: &Index,
    format: ExportFormat,
    out: &Path,
    batch: usize,
) -> Result<ExportSummary> {
    if batch == 0 {
        return Err(Error::InvalidInput("--batch must be at least 1".into()));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let dim = index.vectors.dim();
    let hnsw = index.manifest.hnsw;
    let mut files = Vec::new();
    let (settings_file, settings) = match format {
        ExportFormat::Qdrant => (
            "collection.json",
            json!({
                "vectors": {"size": dim, "distance": "Dot"},
                "hnsw_config": {"m": hnsw.m, "ef_construct": hnsw.ef_construction},
            }),
        ),
        ExportFormat::Opensearch => (
            "mapping.json",
            json!({
                "settings": {"index": {"knn": true, "knn.algo_param.ef_search": hnsw.ef_search}},
                "mappings": {"properties": {
                    "vector": {
                        "type": "knn_vector",
                        "dimension": dim,
                        "method": {
                            "name": "hnsw",
                            "engine": "faiss",
                            "space_type": "innerproduct",
                            "parameters": {"m": hnsw.m, "ef_construction": hnsw.ef_construction},
                        },
                    },
                    "row": {"type": "integer"},
                    "concept_id": {"type": "keyword"},
                    "name": {"type": "text"},
                    "preferred": {"type": "boolean"},
                    "source": {"type": "keyword"},
                    "types": {"type": "keyword"},
                }},
            }),
        ),
    };
    let path = out.join(settings_file);
    fsutil::write_atomic(&path, |w| {
        serde_json::to_writer_pretty(&mut *w, &settings).map_err(std::io::Error::other)?;
        w.write_all(b"\n")
    })?;
    files.push(path);

    let names = index.dictionary.names();
    let mut scratch = Vec::new();
    for (chunk, start) in (0..names.len()).step_by(batch).enumerate() {
        let rows = start..(start + batch).min(names.len());
        let payload = |row: usize| {
            let name = names.get(row);
            let dict = &index.dictionary;
            json!({
                "row": row,
                "concept_id": dict.concept_id(name.concept),
                "name": name.text,
                "preferred": name.kind.is_none(),
                "source": dict.concept_source(name.concept).map(|s| s.name.as_str()),
                "types": dict.concept_types(name.concept).collect::<Vec<_>>(),
            })
        };
        let path = match format {
            ExportFormat::Qdrant => out.join(format!("points-{chunk:05}.json")),
            ExportFormat::Opensearch => out.join(format!("bulk-{chunk:05}.ndjson")),
        };
        fsutil::write_atomic(&path, |w| {
            match format {
                ExportFormat::Qdrant => {
                    let points: Vec<serde_json::Value> = rows
                        .clone()
                        .map(|row| {
                            json!({
                                "id": row,
                                "vector": index.vectors.row_into(row, &mut scratch),
                                "payload": payload(row),
                            })
                        })
                        .collect();
                    serde_json::to_writer(&mut *w, &json!({ "points": points }))
                        .map_err(std::io::Error::other)?;
                    w.write_all(b"\n")?;
                }
                ExportFormat::Opensearch => {
                    for row in rows.clone() {
                        let mut doc = payload(row);
                        doc["vector"] = json!(index.vectors.row_into(row, &mut scratch));
                        serde_json::to_writer(&mut *w, &json!({"index": {"_id": row.to_string()}}))
                            .map_err(std::io::Error::other)?;
                        w.write_all(b"\n")?;
                        serde_json::to_writer(&mut *w, &doc).map_err(std::io::Error::other)?;
                        w.write_all(b"\n")?;
                    }
                }
            }
            Ok(())
        })?;
        files.push(path);
    }

    let load = out.join("LOAD.txt");
    let text = match format {
        ExportFormat::Qdrant => format!(
            "# {} points of {} dimensions (ids = name rows of {}).\n\
             curl -X PUT \"$QDRANT/collections/medlink\" -H 'Content-Type: application/json' --data-binary @collection.json\n\
             for f in points-*.json; do curl -X PUT \"$QDRANT/collections/medlink/points?wait=true\" -H 'Content-Type: application/json' --data-binary @\"$f\"; done\n",
            names.len(),
            dim,
            index.dir.display()
        ),
        ExportFormat::Opensearch => format!(
            "# {} documents of {} dimensions (_id = name rows of {}).\n\
             curl -X PUT \"$OPENSEARCH/medlink\" -H 'Content-Type: application/json' --data-binary @mapping.json\n\
             for f in bulk-*.ndjson; do curl -X POST \"$OPENSEARCH/medlink/_bulk\" -H 'Content-Type: application/x-ndjson' --data-binary @\"$f\"; done\n",
            names.len(),
            dim,
            index.dir.display()
        ),
    };
    fsutil::write_atomic(&load, |w| w.write_all(text.as_bytes()))?;
    files.push(load);
    Ok(ExportSummary {
        points: names.len(),
        files,
    })
}
