//! Dense vector search: the exact brute-force index (the oracle) and the HNSW index the linker
//! queries, both over the stored name vectors ([`VectorStore`]).
//!
//! Vectors are unit-norm, so cosine similarity is the dot product. The linker reaches dense
//! search only through [`VectorIndex`], the seam where another engine (a vector database
//! holding exported vectors) can stand in for the in-process graph.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::hnsw::Graph;
pub use super::vectors::{VectorStore, VectorType};
use crate::error::{Error, Result};
use crate::progress::{NoProgress, Progress};

/// One search result: a row of the vector store and its cosine similarity to the query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub id: u32,
    pub score: f32,
}

/// Nearest-neighbour search over unit vectors: what the linker asks of dense retrieval. The
/// in-process HNSW graph implements it; so can a client of an external engine holding the
/// vectors `medlink index export` wrote (ids are name rows), set with
/// [`crate::linker::Linker::with_vector_index`].
pub trait VectorIndex: Send + Sync {
    /// The `k` most similar rows, best first.
    fn search(&self, query: &[f32], k: usize) -> Result<Vec<Hit>>;

    /// Like [`VectorIndex::search`], exploring at least `breadth` candidates where the engine
    /// has such a knob (HNSW's ef).
    fn search_ef(&self, query: &[f32], k: usize, breadth: usize) -> Result<Vec<Hit>> {
        let _ = breadth;
        self.search(query, k)
    }
}

/// Brute-force search over every vector: exact, and the oracle HNSW is tested against.
pub struct ExactIndex<'a> {
    store: &'a VectorStore,
}

impl<'a> ExactIndex<'a> {
    pub fn new(store: &'a VectorStore) -> Self {
        ExactIndex { store }
    }
}

impl VectorIndex for ExactIndex<'_> {
    fn search(&self, query: &[f32], k: usize) -> Result<Vec<Hit>> {
        check_dim(self.store.dim(), query)?;
        let mut hits: Vec<Hit> = (0..self.store.len())
            .map(|i| Hit {
                id: i as u32,
                score: self.store.dot(i, query),
            })
            .collect();
        let k = k.min(hits.len());
        if k == 0 {
            return Ok(Vec::new());
        }
        let order = |a: &Hit, b: &Hit| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id));
        hits.select_nth_unstable_by(k - 1, order);
        hits.truncate(k);
        hits.sort_by(order);
        Ok(hits)
    }
}

/// Dense index parameters: HNSW construction and search, and the stored vector type.
/// Serialized (index manifest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HnswParams {
    /// Links per node above layer 0 (layer 0 keeps up to 2M); 2 to 256.
    pub m: usize,
    pub ef_construction: usize,
    /// Default search breadth; a query uses `max(ef_search, k)`.
    pub ef_search: usize,
    /// How `vectors.bin` stores components (indexes from before it was recorded hold f32).
    #[serde(default = "VectorType::legacy")]
    pub vector_type: VectorType,
}

/// Names past which an index searches wider by default ([`default_ef_search`]).
const WIDE_SEARCH_NAMES: usize = 1_500_000;

/// The search breadth an index of `names` names gets unless its builder names one: the
/// default's 64, and 128 past 1.5 million names, where 64 loses recall (recall@25 against an
/// exact scan at 3 million names: 0.984 at 64, 0.997 at 128, for 0.06 ms more per query;
/// BENCHMARKS.md "Scale").
pub fn default_ef_search(names: usize) -> usize {
    let ef = HnswParams::default().ef_search;
    if names > WIDE_SEARCH_NAMES {
        2 * ef
    } else {
        ef
    }
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: 16,
            ef_construction: 200,
            // The linker searches max(ef_search, its candidate pool of 64): at 64 rather than
            // 128, `link` runs 13% faster with the same hybrid acc@1/5 on NCBI-disease dev and
            // GSC+ dev (dense acc@1 on NCBI dev 0.7649 vs 0.7662).
            ef_search: 64,
            vector_type: VectorType::F16,
        }
    }
}

impl HnswParams {
    pub fn validate(&self) -> Result<()> {
        if self.m < 2 || self.m > 256 {
            return Err(Error::InvalidInput(format!(
                "HNSW M must be between 2 and 256, got {}",
                self.m
            )));
        }
        if self.ef_construction == 0 || self.ef_search == 0 {
            return Err(Error::InvalidInput(
                "HNSW ef_construction and ef_search must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// Approximate nearest-neighbour index: an HNSW [`Graph`] over shared stored vectors.
pub struct HnswIndex {
    graph: Graph,
    vectors: Arc<VectorStore>,
    params: HnswParams,
}

impl HnswIndex {
    /// Builds the graph over every row of `vectors` on all cores.
    pub fn build(vectors: Arc<VectorStore>, params: HnswParams) -> Result<Self> {
        Self::build_with(vectors, params, crate::parallel::threads(0), &NoProgress)
    }

    /// Builds on `threads` threads (1: the same graph every time), reporting progress.
    pub fn build_with(
        vectors: Arc<VectorStore>,
        params: HnswParams,
        threads: usize,
        progress: &dyn Progress,
    ) -> Result<Self> {
        params.validate()?;
        let graph = Graph::build(
            &vectors,
            params.m,
            params.ef_construction,
            threads,
            progress,
        )?;
        Ok(HnswIndex {
            graph,
            vectors,
            params,
        })
    }

    /// Writes the graph (`graph.bin`); the vectors are saved by their store.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.graph.save(path)
    }

    /// Maps a saved graph over `vectors`, which must be the rows it was built on.
    pub fn load(path: &Path, vectors: Arc<VectorStore>, params: HnswParams) -> Result<Self> {
        let graph = Graph::load(path)?;
        if graph.len() != vectors.len() {
            return Err(Error::DataCorruption {
                path: path.to_path_buf(),
                comment: format!(
                    "HNSW graph has {} nodes for {} vectors",
                    graph.len(),
                    vectors.len()
                ),
            });
        }
        Ok(HnswIndex {
            graph,
            vectors,
            params,
        })
    }

    pub fn len(&self) -> usize {
        self.graph.len()
    }

    pub fn is_empty(&self) -> bool {
        self.graph.is_empty()
    }

    pub fn params(&self) -> HnswParams {
        self.params
    }

    /// Names no search can return (see [`Graph::unreachable_nodes`]).
    pub fn unreachable_nodes(&self) -> usize {
        self.graph.unreachable_nodes()
    }

    /// Bytes of graph links (in the heap or mapped).
    pub fn graph_bytes(&self) -> usize {
        self.graph.data_bytes()
    }

    /// Search with an explicit breadth.
    pub fn search_ef(&self, query: &[f32], k: usize, ef: usize) -> Result<Vec<Hit>> {
        check_dim(self.vectors.dim(), query)?;
        Ok(self
            .graph
            .search(&self.vectors, query, k, ef)
            .into_iter()
            .map(|(id, score)| Hit { id, score })
            .collect())
    }
}

impl VectorIndex for HnswIndex {
    fn search(&self, query: &[f32], k: usize) -> Result<Vec<Hit>> {
        HnswIndex::search_ef(self, query, k, self.params.ef_search)
    }

    fn search_ef(&self, query: &[f32], k: usize, breadth: usize) -> Result<Vec<Hit>> {
        HnswIndex::search_ef(self, query, k, breadth)
    }
}

fn check_dim(dim: usize, query: &[f32]) -> Result<()> {
    if query.len() != dim {
        return Err(Error::DimensionMismatch {
            expected: dim,
            got: query.len(),
        });
    }
    Ok(())
}
