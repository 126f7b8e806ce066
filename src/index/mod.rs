//! An index directory: the dictionary, one vector per name, an HNSW graph over the vectors and
//! a tantivy lexical index over the normalised names, described by `manifest.json`.
//!
//! ```text
//! indexes/<name>/
//!   manifest.json          format version, model identity, sources + checksums, counts, HNSW parameters
//!   dictionary.bin         concepts (ontology::store format)
//!   vectors.bin            unit vectors (f16 or f32), row i = name i of the dictionary's name table
//!   graph.bin              HNSW links over the vectors (memory-mapped, holds no vectors)
//!   lexical/               tantivy index
//! ```
//! [`Index::build`] writes everything into a temporary sibling directory and renames it into
//! place, so a crash never leaves half an index. [`Index::open`] checks the format version and
//! that every part agrees on the number of names. Vectors and graph are memory-mapped.
//!
//! Indexes of format 1 and 2 kept an hnsw_rs dump instead of `graph.bin`: they still open,
//! with their graph rebuilt in memory from `vectors.bin` (a warning says to rebuild them).

pub mod dense;
pub mod export;
pub mod hnsw;
pub mod kernels;
pub mod lexical;
pub mod manifest;
pub mod vectors;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use dense::{HnswIndex, HnswParams, VectorStore, VectorType};
use lexical::LexicalIndex;
use manifest::{Counts, Files, Manifest, INDEX_FORMAT_VERSION};

use crate::encoder::{Encoder, ModelIdentity};
use crate::error::{Error, Result};
use crate::fsutil::StagingDir;
use crate::ontology::{store, Dictionary};
use crate::progress::Progress;
use crate::rerank::Reranker;

const DICTIONARY_FILE: &str = "dictionary.bin";
const VECTORS_FILE: &str = "vectors.bin";
const GRAPH_FILE: &str = "graph.bin";
const LEXICAL_DIR: &str = "lexical";
/// Names per encoder call while building: small enough for smooth progress, large enough that
/// length-sorted batches stay full.
const ENCODE_CHUNK: usize = 2048;

/// An opened index, ready for search.
pub struct Index {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub dictionary: Dictionary,
    /// Shared with `dense`, whose graph holds no copy.
    pub vectors: Arc<VectorStore>,
    pub dense: HnswIndex,
    pub lexical: LexicalIndex,
    /// Re-orders hybrid linking's top concepts (`medlink train reranker`); absent until trained.
    pub reranker: Option<Reranker>,
}

impl Index {
    /// Embeds every name of `dictionary` with `encoder` and writes an index directory at `out`
    /// (replacing an existing one only once the new one is complete).
    pub fn build(
        dictionary: &Dictionary,
        encoder: &dyn Encoder,
        model_path: &Path,
        out: &Path,
        hnsw: HnswParams,
        progress: &dyn Progress,
    ) -> Result<Manifest> {
        // Before the minutes of embedding; `write` checks again, for every path.
        hnsw.validate()?;
        check_target(out)?;
        let _span = tracing::info_span!("build_index", out = %out.display()).entered();
        let stage = std::time::Instant::now();
        let vectors = embed_names(dictionary, encoder, hnsw.vector_type, progress)?;
        tracing::info!(
            names = vectors.len(),
            seconds = stage.elapsed().as_secs_f64(),
            "embedded names"
        );
        Self::write(
            dictionary,
            Vectors::Owned(vectors),
            encoder.identity(),
            model_path,
            out,
            hnsw,
            progress,
        )
    }

    /// Writes an index directory from vectors computed elsewhere (another machine's GPU, a
    /// benchmark's synthetic names): row i of `vectors` must be `model`'s unit vector for name
    /// i of the dictionary's name table.
    pub fn build_from_vectors(
        dictionary: &Dictionary,
        vectors: VectorStore,
        model: &ModelIdentity,
        model_path: &Path,
        out: &Path,
        hnsw: HnswParams,
        progress: &dyn Progress,
    ) -> Result<Manifest> {
        if vectors.kind() != hnsw.vector_type {
            return Self::build_from_store(
                dictionary, &vectors, model, model_path, out, hnsw, progress,
            );
        }
        let vectors = Vectors::Owned(vectors);
        Self::write(dictionary, vectors, model, model_path, out, hnsw, progress)
    }

    /// [`Index::build_from_vectors`] reading `vectors` (another index's, mapped) as they are
    /// written out as `hnsw.vector_type`: no converted copy is held in memory, and the graph
    /// is built over the written file, mapped.
    pub fn build_from_store(
        dictionary: &Dictionary,
        vectors: &VectorStore,
        model: &ModelIdentity,
        model_path: &Path,
        out: &Path,
        hnsw: HnswParams,
        progress: &dyn Progress,
    ) -> Result<Manifest> {
        let vectors = Vectors::Converted(vectors, hnsw.vector_type);
        Self::write(dictionary, vectors, model, model_path, out, hnsw, progress)
    }

    /// Checks the parameters, the target and the vectors, then writes the index.
    fn write(
        dictionary: &Dictionary,
        vectors: Vectors,
        model: &ModelIdentity,
        model_path: &Path,
        out: &Path,
        hnsw: HnswParams,
        progress: &dyn Progress,
    ) -> Result<Manifest> {
        hnsw.validate()?;
        check_target(out)?;
        check_vectors(dictionary, vectors.store(), model)?;
        let staging = StagingDir::new(out)?;
        let dir = staging.path().to_path_buf();
        store::save(dictionary, &dir.join(DICTIONARY_FILE))?;
        let vectors_path = dir.join(VECTORS_FILE);
        let vectors = match vectors {
            Vectors::Owned(vectors) => {
                vectors.save(&vectors_path)?;
                vectors
            }
            // Mapped from the staging directory: the graph is built (and the mapping dropped)
            // before the directory is renamed into place.
            Vectors::Converted(source, kind) => {
                source.save_as(kind, &vectors_path)?;
                VectorStore::load(&vectors_path)?
            }
        };

        let stage = std::time::Instant::now();
        let graph = HnswIndex::build_with(
            Arc::new(vectors),
            hnsw,
            crate::parallel::threads(0),
            progress,
        )?;
        graph.save(&dir.join(GRAPH_FILE))?;
        drop(graph);
        tracing::info!(seconds = stage.elapsed().as_secs_f64(), "built HNSW graph");

        let stage = std::time::Instant::now();
        progress.stage("building lexical index", 0);
        let names: Vec<(u32, &str)> = dictionary
            .names()
            .iter()
            .enumerate()
            .map(|(i, n)| (i as u32, n.normalized))
            .collect();
        let lexical_dir = dir.join(LEXICAL_DIR);
        std::fs::create_dir_all(&lexical_dir).map_err(|e| Error::io(&lexical_dir, e))?;
        LexicalIndex::build(&lexical_dir, &names)?;
        progress.finish_stage();
        tracing::info!(
            seconds = stage.elapsed().as_secs_f64(),
            "built lexical index"
        );

        let stats = dictionary.stats();
        let manifest = Manifest {
            format_version: INDEX_FORMAT_VERSION,
            medlink_version: env!("CARGO_PKG_VERSION").to_string(),
            created_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            model: model.clone(),
            model_path: model_path
                .canonicalize()
                .unwrap_or_else(|_| model_path.to_path_buf())
                .display()
                .to_string(),
            sources: dictionary.sources().to_vec(),
            counts: Counts {
                concepts: stats.concepts,
                active_concepts: stats.active_concepts,
                names: dictionary.names().len(),
            },
            hnsw,
            files: Files {
                dictionary: DICTIONARY_FILE.into(),
                vectors: VECTORS_FILE.into(),
                graph: Some(GRAPH_FILE.into()),
                hnsw_basename: None,
                lexical: LEXICAL_DIR.into(),
                reranker: None,
            },
            fusion: None,
        };
        manifest.save(&dir)?;
        staging.commit()?;
        Ok(manifest)
    }

    pub fn open(dir: &Path) -> Result<Self> {
        let _span = tracing::info_span!("open_index", dir = %dir.display()).entered();
        let manifest = Manifest::load(dir)?;
        let dictionary = store::load(&dir.join(&manifest.files.dictionary))?;
        let vectors = Arc::new(VectorStore::load(&dir.join(&manifest.files.vectors))?);
        let names = dictionary.names().len();
        if vectors.len() != names || manifest.counts.names != names {
            return Err(Error::DataCorruption {
                path: dir.to_path_buf(),
                comment: format!(
                    "the parts disagree: manifest says {} names, dictionary has {names}, vectors.bin has {}",
                    manifest.counts.names,
                    vectors.len()
                ),
            });
        }
        if vectors.dim() != manifest.model.dim {
            return Err(Error::DataCorruption {
                path: dir.to_path_buf(),
                comment: format!(
                    "vectors have {} dimensions but the manifest's model has {}",
                    vectors.dim(),
                    manifest.model.dim
                ),
            });
        }
        let dense = match &manifest.files.graph {
            Some(graph) => HnswIndex::load(&dir.join(graph), vectors.clone(), manifest.hnsw)?,
            None => {
                tracing::warn!(
                    index = %dir.display(),
                    "index format {} keeps no graph.bin: building its HNSW graph in memory \
                     (rebuild the index with `medlink index build` to skip this)",
                    manifest.format_version
                );
                HnswIndex::build(vectors.clone(), manifest.hnsw)?
            }
        };
        let lexical = LexicalIndex::open(&dir.join(&manifest.files.lexical))?;
        if lexical.len() != names {
            return Err(Error::DataCorruption {
                path: dir.to_path_buf(),
                comment: format!("lexical index has {} names for {names}", lexical.len()),
            });
        }
        // A re-ranker this build cannot read (another format, damaged) must not lock the
        // index: it opens without one, and `train reranker` can write a new one.
        let alpha = fusion_alpha(&manifest);
        let reranker = match &manifest.files.reranker {
            Some(file) => match Reranker::load(&dir.join(file)).and_then(|r| {
                r.check_fits(&manifest.model.weights_sha256, alpha)?;
                Ok(r)
            }) {
                Ok(reranker) => Some(reranker),
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        "opening the index without its re-ranker (train a new one with `medlink train reranker`)"
                    );
                    None
                }
            },
            None => None,
        };
        Ok(Index {
            dir: dir.to_path_buf(),
            manifest,
            dictionary,
            vectors,
            dense,
            lexical,
            reranker,
        })
    }

    /// The hybrid weight linking uses when asked for none: the tuned one (`medlink index tune`),
    /// else [`crate::linker::DEFAULT_ALPHA`].
    pub fn fusion_alpha(&self) -> f32 {
        fusion_alpha(&self.manifest)
    }

    /// Refuses a model other than the one the index was built with.
    pub fn check_model(&self, model: &ModelIdentity) -> Result<()> {
        let built = &self.manifest.model;
        if built.weights_sha256 != model.weights_sha256
            || built.pooling != model.pooling
            || built.dim != model.dim
            || built.max_length != model.max_length
        {
            return Err(Error::ModelMismatch {
                index: format!(
                    "{} ({:?} pooling, {} dims, max length {}, weights {})",
                    built.name,
                    built.pooling,
                    built.dim,
                    built.max_length,
                    built
                        .weights_sha256
                        .get(..12)
                        .unwrap_or(&built.weights_sha256)
                ),
                loaded: format!(
                    "{} ({:?} pooling, {} dims, max length {}, weights {})",
                    model.name,
                    model.pooling,
                    model.dim,
                    model.max_length,
                    model
                        .weights_sha256
                        .get(..12)
                        .unwrap_or(&model.weights_sha256)
                ),
            });
        }
        Ok(())
    }
}

/// The vectors an index is written with: built in memory, or read from a store and
/// converted on the way to the file.
enum Vectors<'a> {
    Owned(VectorStore),
    Converted(&'a VectorStore, VectorType),
}

impl Vectors<'_> {
    /// The rows to write, before any conversion.
    fn store(&self) -> &VectorStore {
        match self {
            Vectors::Owned(store) => store,
            Vectors::Converted(store, _) => store,
        }
    }
}

/// One vector of the model's width per name of the dictionary's name table.
fn check_vectors(
    dictionary: &Dictionary,
    vectors: &VectorStore,
    model: &ModelIdentity,
) -> Result<()> {
    let names = dictionary.names().len();
    if vectors.len() != names {
        return Err(Error::InvalidInput(format!(
            "{} vectors for {names} names",
            vectors.len()
        )));
    }
    if vectors.dim() != model.dim {
        return Err(Error::DimensionMismatch {
            expected: model.dim,
            got: vectors.dim(),
        });
    }
    Ok(())
}

/// The target is replaced: never let that be a directory that is not an index.
fn check_target(out: &Path) -> Result<()> {
    if out.exists() && !out.join(manifest::MANIFEST_FILE).is_file() {
        let empty = std::fs::read_dir(out)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !empty {
            return Err(Error::InvalidInput(format!(
                "{} exists and is not a medlink index: choose another --out",
                out.display()
            )));
        }
    }
    Ok(())
}

/// One vector per name, encoded in length-sorted chunks for full batches and steady progress.
fn embed_names(
    dictionary: &Dictionary,
    encoder: &dyn Encoder,
    vector_type: VectorType,
    progress: &dyn Progress,
) -> Result<VectorStore> {
    let names = dictionary.names();
    let mut order: Vec<usize> = (0..names.len()).collect();
    order.sort_by_key(|&i| names.get(i).text.len());
    // Rows go straight to their final place: only one chunk of vectors exists twice.
    let mut store = VectorStore::zeros(encoder.dim(), names.len(), vector_type);
    progress.stage("embedding names", names.len() as u64);
    for chunk in order.chunks(ENCODE_CHUNK) {
        let texts: Vec<&str> = chunk.iter().map(|&i| names.get(i).text).collect();
        for (&i, v) in chunk.iter().zip(encoder.encode(&texts)?) {
            if v.len() != encoder.dim() {
                return Err(Error::DimensionMismatch {
                    expected: encoder.dim(),
                    got: v.len(),
                });
            }
            store.set_row(i, &v)?;
        }
        progress.advance(chunk.len() as u64);
    }
    progress.finish_stage();
    Ok(store)
}

fn fusion_alpha(manifest: &Manifest) -> f32 {
    manifest
        .fusion
        .as_ref()
        .map_or(crate::linker::DEFAULT_ALPHA, |f| f.alpha)
}
