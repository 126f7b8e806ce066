//! An HNSW graph (Malkov & Yashunin, 2018) over a [`VectorStore`], stored as flat arrays of
//! `u32` links and searched in place, memory-mapped.
//!
//! The graph holds no vectors: distances read the store, so each vector exists once. Links
//! follow qdrant's compact layout rather than a pointer per neighbour: every node has a
//! fixed slot of `1 + M0` words on layer 0 (a count, then neighbour ids), and every node that
//! reaches layer 1 has a slot of `1 + M` words on each upper layer. With M = 16 that is 132
//! bytes per name on layer 0 and ~22 above it.
//!
//! Construction is the paper's algorithm with its neighbour-selection heuristic (as hnswlib),
//! except that on layer 0 the slots the heuristic leaves empty take the best pruned candidates
//! (the paper's `keepPrunedConnections`): the heuristic left 6% of nodes with fewer than four
//! links on clustered names (variants of one name), and filling the fixed slots costs no
//! memory. On 300,000 synthetic names recall@25 rose from 0.982 / 0.987 to 0.989 / 0.994 at
//! ef 64 / 128, for ~30% more time per search at the same ef. After insertion, every node no
//! layer-0 path from the entry reaches is linked from its nearest reachable node
//! ([`Builder::connect_unreachable`]).
//!
//! Search differs from the paper in one place: the upper layers are crossed with a beam of
//! [`UPPER_EF`] nodes rather than one greedy path, and layer 0 starts from all of them (see
//! [`Graph::search`]).
//!
//! The build runs on several threads: link slots are atomics written under one of a set of
//! striped locks and read without locking (a reader may see a slot mid-update, which only ever
//! holds valid node ids). Levels are drawn from a seeded generator, so a one-thread build is
//! reproducible.
//!
//! `graph.bin` layout (little-endian, 48-byte header): magic `MLHNSW\0\0`, `u32` version,
//! `u32` M, `u32` M0, `u32` top layer, `u32` entry node, `u32` 0, `u64` nodes, `u64` upper
//! nodes; then the sorted ids of the upper nodes (`u32` each), layer 0's slots, and each upper
//! layer's slots, lowest first.

use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::Mutex;

use super::vectors::VectorStore;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::progress::Progress;
use crate::rng::SplitMix64;

const GRAPH_MAGIC: &[u8; 8] = b"MLHNSW\0\0";
const GRAPH_FORMAT_VERSION: u32 = 1;
const HEADER_BYTES: usize = 48;
/// Layers above 0 are capped: 16 layers of M = 16 hold 16^16 nodes.
const MAX_LEVEL: usize = 15;
/// Striped locks guarding link slots during construction.
const LOCK_STRIPES: usize = 4096;
/// Seed of the level draws.
/// Breadth of a search on the layers above 0 (see [`Graph::search`]).
const UPPER_EF: usize = 8;
const LEVEL_SEED: u64 = 0x004d_4544_4c49_4e4b;

/// A node and its similarity to the query (higher is closer), ordered by similarity, then by
/// lower id first.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Scored {
    sim: f32,
    id: u32,
}

impl Eq for Scored {}

impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        self.sim
            .total_cmp(&other.sim)
            .then_with(|| other.id.cmp(&self.id))
    }
}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Which nodes a search has seen: an epoch per node, so clearing is one increment.
struct Visited {
    marks: Vec<u32>,
    epoch: u32,
}

impl Visited {
    fn new() -> Self {
        Visited {
            marks: Vec::new(),
            epoch: 0,
        }
    }

    fn reset(&mut self, n: usize) {
        if self.marks.len() < n {
            self.marks.resize(n, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.iter_mut().for_each(|m| *m = 0);
            self.epoch = 1;
        }
    }

    /// True the first time `id` is seen since the last reset.
    #[inline]
    fn insert(&mut self, id: u32) -> bool {
        let mark = &mut self.marks[id as usize];
        let new = *mark != self.epoch;
        *mark = self.epoch;
        new
    }
}

thread_local! {
    static VISITED: RefCell<Visited> = RefCell::new(Visited::new());
}

/// Where each node's link slot lies in the flat link array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    nodes: usize,
    upper_nodes: usize,
    m: usize,
    m0: usize,
    top_layer: usize,
}

impl Layout {
    fn slot0(&self) -> usize {
        1 + self.m0
    }

    fn slot_upper(&self) -> usize {
        1 + self.m
    }

    fn capacity(&self, layer: usize) -> usize {
        if layer == 0 {
            self.m0
        } else {
            self.m
        }
    }

    /// Words of link data in all layers.
    fn words(&self) -> usize {
        self.nodes * self.slot0() + self.top_layer * self.upper_nodes * self.slot_upper()
    }

    /// Start of the slot of the node with upper rank `rank` on `layer` >= 1.
    fn upper_slot(&self, layer: usize, rank: usize) -> usize {
        self.nodes * self.slot0()
            + (layer - 1) * self.upper_nodes * self.slot_upper()
            + rank * self.slot_upper()
    }
}

/// Link words: built in the heap or mapped from `graph.bin`.
enum Words {
    Owned {
        upper_ids: Vec<u32>,
        links: Vec<u32>,
    },
    Mapped(memmap2::Mmap),
}

/// A searchable HNSW graph.
pub struct Graph {
    layout: Layout,
    entry: u32,
    words: Words,
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graph")
            .field("layout", &self.layout)
            .field("entry", &self.entry)
            .finish()
    }
}

/// Read access to links, shared by construction (atomics) and search (plain words).
trait Links {
    fn layout(&self) -> &Layout;
    /// Neighbours of `node` on `layer` into `out` (cleared first).
    fn neighbours(&self, node: u32, layer: usize, out: &mut Vec<u32>);
}

impl Graph {
    fn upper_ids(&self) -> &[u32] {
        match &self.words {
            Words::Owned { upper_ids, .. } => upper_ids,
            Words::Mapped(map) => {
                let n = self.layout.upper_nodes;
                // SAFETY: `load` checked the file holds the header, `n` upper ids and every
                // link word, and that the mapping (page-aligned) puts them at 4-byte offsets.
                unsafe { std::slice::from_raw_parts(map.as_ptr().add(HEADER_BYTES).cast(), n) }
            }
        }
    }

    fn links(&self) -> &[u32] {
        match &self.words {
            Words::Owned { links, .. } => links,
            Words::Mapped(map) => {
                let start = HEADER_BYTES + 4 * self.layout.upper_nodes;
                // SAFETY: as in `upper_ids`.
                unsafe {
                    std::slice::from_raw_parts(map.as_ptr().add(start).cast(), self.layout.words())
                }
            }
        }
    }

    /// Nodes that no path from the entry reaches on layer 0, so no search can return them
    /// (0 for a graph built by [`Graph::build`]; a diagnostic for older files).
    pub fn unreachable_nodes(&self) -> usize {
        let n = self.layout.nodes;
        if n == 0 {
            return 0;
        }
        let mut reached = vec![false; n];
        n - flood_layer0(self, self.entry, &mut reached)
    }

    pub fn len(&self) -> usize {
        self.layout.nodes
    }

    pub fn is_empty(&self) -> bool {
        self.layout.nodes == 0
    }

    /// Links per node above layer 0 (M).
    pub fn m(&self) -> usize {
        self.layout.m
    }

    /// Bytes of link data (in the heap or mapped).
    pub fn data_bytes(&self) -> usize {
        4 * (self.layout.upper_nodes + self.layout.words())
    }

    /// The `k` rows of `store` most similar to `query`, searching `ef >= k` candidates on
    /// layer 0; `(row, cosine)` best first.
    pub fn search(
        &self,
        store: &VectorStore,
        query: &[f32],
        k: usize,
        ef: usize,
    ) -> Vec<(u32, f32)> {
        if self.is_empty() || k == 0 {
            return Vec::new();
        }
        VISITED.with(|visited| {
            let mut visited = visited.borrow_mut();
            let mut buf = Vec::with_capacity(self.layout.m0);
            let mut entries = vec![Scored {
                sim: store.dot(self.entry as usize, query),
                id: self.entry,
            }];
            // A beam of UPPER_EF rather than one greedy path through the upper layers: in
            // clusters of near-copies the single best node of a layer can lead into the wrong
            // cluster, and layer 0's search rarely climbs out (1 M synthetic names: recall@25
            // 0.984 at ef 64 and 128 with a greedy descent, 0.998 with this beam).
            for layer in (1..=self.layout.top_layer).rev() {
                entries = search_layer(
                    self,
                    store,
                    query,
                    &entries,
                    UPPER_EF,
                    layer,
                    &mut visited,
                    &mut buf,
                );
            }
            let found = search_layer(
                self,
                store,
                query,
                &entries,
                ef.max(k),
                0,
                &mut visited,
                &mut buf,
            );
            found.into_iter().take(k).map(|s| (s.id, s.sim)).collect()
        })
    }

    /// Builds the graph over every row of `store` on `threads` threads (1: reproducible).
    pub fn build(
        store: &VectorStore,
        m: usize,
        ef_construction: usize,
        threads: usize,
        progress: &dyn Progress,
    ) -> Result<Graph> {
        if !(2..=256).contains(&m) {
            return Err(Error::InvalidInput(format!(
                "HNSW M must be between 2 and 256, got {m}"
            )));
        }
        if store.len() >= u32::MAX as usize {
            return Err(Error::InvalidInput(format!(
                "{} vectors: an HNSW graph holds fewer than 2^32",
                store.len()
            )));
        }
        let builder = Builder::new(store, m, ef_construction);
        builder.insert_all(threads, progress);
        builder.connect_unreachable();
        Ok(builder.finish())
    }

    /// Writes `graph.bin` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let l = &self.layout;
        fsutil::write_atomic(path, |w| {
            w.write_all(GRAPH_MAGIC)?;
            for word in [
                GRAPH_FORMAT_VERSION,
                l.m as u32,
                l.m0 as u32,
                l.top_layer as u32,
                self.entry,
                0,
            ] {
                w.write_all(&word.to_le_bytes())?;
            }
            w.write_all(&(l.nodes as u64).to_le_bytes())?;
            w.write_all(&(l.upper_nodes as u64).to_le_bytes())?;
            let mut buf = Vec::with_capacity(1 << 16);
            for chunk in self
                .upper_ids()
                .chunks(1 << 14)
                .chain(self.links().chunks(1 << 14))
            {
                buf.clear();
                buf.extend(chunk.iter().flat_map(|x| x.to_le_bytes()));
                w.write_all(&buf)?;
            }
            Ok(())
        })
    }

    /// Maps `graph.bin` after checking its header, its size and every link.
    pub fn load(path: &Path) -> Result<Graph> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: index files are never modified in place (see `VectorStore::load`).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let corrupt = |comment: String| Error::DataCorruption {
            path: path.to_path_buf(),
            comment,
        };
        if map.len() < HEADER_BYTES {
            return Err(corrupt("shorter than the graph file header".into()));
        }
        if &map[..8] != GRAPH_MAGIC {
            return Err(Error::FileFormat {
                path: path.to_path_buf(),
                expected: "HNSW graph".into(),
                found: "another file type (bad magic bytes)".into(),
            });
        }
        let u32_at = |at: usize| u32::from_le_bytes(map[at..at + 4].try_into().expect("4 bytes"));
        let u64_at = |at: usize| u64::from_le_bytes(map[at..at + 8].try_into().expect("8 bytes"));
        let version = u32_at(8);
        if version != GRAPH_FORMAT_VERSION {
            return Err(Error::FileFormat {
                path: path.to_path_buf(),
                expected: format!("graph format version {GRAPH_FORMAT_VERSION}"),
                found: format!("version {version}"),
            });
        }
        let layout = Layout {
            m: u32_at(12) as usize,
            m0: u32_at(16) as usize,
            top_layer: u32_at(20) as usize,
            nodes: u64_at(32) as usize,
            upper_nodes: u64_at(40) as usize,
        };
        let entry = u32_at(24);
        if layout.m == 0
            || layout.m0 < layout.m
            || layout.top_layer > MAX_LEVEL
            || layout.upper_nodes > layout.nodes
            || layout.nodes >= u32::MAX as usize
            || (layout.nodes > 0 && entry as usize >= layout.nodes)
            || (layout.top_layer > 0 && layout.upper_nodes == 0)
        {
            return Err(corrupt(format!("impossible graph header {layout:?}")));
        }
        let expected = 4 * (layout.upper_nodes + layout.words());
        if map.len() - HEADER_BYTES != expected {
            return Err(corrupt(format!(
                "expected {expected} bytes of links, found {}",
                map.len() - HEADER_BYTES
            )));
        }
        let graph = Graph {
            layout,
            entry,
            words: Words::Mapped(map),
        };
        graph.validate().map_err(corrupt)?;
        Ok(graph)
    }

    /// Every count within its slot and every id a node of its layer: search then never
    /// indexes out of bounds, whatever the file held.
    fn validate(&self) -> std::result::Result<(), String> {
        let l = &self.layout;
        let ids = self.upper_ids();
        if ids.windows(2).any(|w| w[0] >= w[1])
            || ids.last().is_some_and(|&x| x as usize >= l.nodes)
        {
            return Err("upper-layer node ids are not sorted node ids".into());
        }
        if l.top_layer > 0 && ids.binary_search(&self.entry).is_err() {
            return Err("the entry node is missing from the upper layers".into());
        }
        let links = self.links();
        let check = |slot: &[u32], cap: usize, upper: bool| -> std::result::Result<(), String> {
            let count = slot[0] as usize;
            if count > cap {
                return Err(format!("a node has {count} links, more than {cap}"));
            }
            for &id in &slot[1..=count] {
                if id as usize >= l.nodes || (upper && ids.binary_search(&id).is_err()) {
                    return Err(format!("link to node {id}, which its layer does not hold"));
                }
            }
            Ok(())
        };
        for slot in links[..l.nodes * l.slot0()].chunks_exact(l.slot0()) {
            check(slot, l.m0, false)?;
        }
        for slot in links[l.nodes * l.slot0()..].chunks_exact(l.slot_upper()) {
            check(slot, l.m, true)?;
        }
        Ok(())
    }
}

impl Links for Graph {
    fn layout(&self) -> &Layout {
        &self.layout
    }

    #[inline]
    fn neighbours(&self, node: u32, layer: usize, out: &mut Vec<u32>) {
        out.clear();
        let start = if layer == 0 {
            node as usize * self.layout.slot0()
        } else {
            match self.upper_ids().binary_search(&node) {
                Ok(rank) => self.layout.upper_slot(layer, rank),
                Err(_) => return,
            }
        };
        let links = self.links();
        let count = links[start] as usize;
        out.extend_from_slice(&links[start + 1..start + 1 + count]);
    }
}

/// Marks `from` and every node its layer-0 links lead to (directly or not) in `reached`;
/// returns how many nodes it newly marked. Marked nodes are not followed again.
fn flood_layer0(links: &impl Links, from: u32, reached: &mut [bool]) -> usize {
    if std::mem::replace(&mut reached[from as usize], true) {
        return 0;
    }
    let mut marked = 1;
    let mut stack = vec![from];
    let mut buf = Vec::new();
    while let Some(node) = stack.pop() {
        links.neighbours(node, 0, &mut buf);
        for &next in &buf {
            if !std::mem::replace(&mut reached[next as usize], true) {
                marked += 1;
                stack.push(next);
            }
        }
    }
    marked
}

/// The closest node reachable by greedy steps on `layer`.
fn greedy(
    links: &impl Links,
    store: &VectorStore,
    query: &[f32],
    mut best: Scored,
    layer: usize,
    buf: &mut Vec<u32>,
) -> Scored {
    loop {
        let mut moved = false;
        links.neighbours(best.id, layer, buf);
        for &id in buf.iter() {
            let candidate = Scored {
                sim: store.dot(id as usize, query),
                id,
            };
            if candidate > best {
                best = candidate;
                moved = true;
            }
        }
        if !moved {
            return best;
        }
    }
}

/// The paper's SEARCH-LAYER: the `ef` nodes closest to `query` on `layer` reachable from
/// `entries`, best first.
#[allow(clippy::too_many_arguments)]
fn search_layer(
    links: &impl Links,
    store: &VectorStore,
    query: &[f32],
    entries: &[Scored],
    ef: usize,
    layer: usize,
    visited: &mut Visited,
    buf: &mut Vec<u32>,
) -> Vec<Scored> {
    visited.reset(links.layout().nodes);
    let mut candidates: BinaryHeap<Scored> = BinaryHeap::with_capacity(ef * 2);
    let mut found: BinaryHeap<Reverse<Scored>> = BinaryHeap::with_capacity(ef + 1);
    for &e in entries {
        if visited.insert(e.id) {
            candidates.push(e);
            found.push(Reverse(e));
        }
    }
    while found.len() > ef {
        found.pop();
    }
    while let Some(current) = candidates.pop() {
        let worst = found.peek().map(|r| r.0).expect("entries are not empty");
        if current < worst && found.len() >= ef {
            break;
        }
        links.neighbours(current.id, layer, buf);
        buf.retain(|&id| visited.insert(id));
        for &id in buf.iter() {
            store.prefetch(id as usize);
        }
        for &id in buf.iter() {
            let next = Scored {
                sim: store.dot(id as usize, query),
                id,
            };
            if found.len() < ef || next > found.peek().expect("not empty").0 {
                candidates.push(next);
                found.push(Reverse(next));
                if found.len() > ef {
                    found.pop();
                }
            }
        }
    }
    let mut out: Vec<Scored> = found.into_iter().map(|r| r.0).collect();
    out.sort_by(|a, b| b.cmp(a));
    out
}

/// The paper's heuristic neighbour selection: take candidates best first, keeping one unless
/// a neighbour kept so far is closer to it than the base is (spreads links across
/// directions, which keeps clustered names reachable). With `fill`, the slots the heuristic
/// left empty take the best pruned candidates (the paper's `keepPrunedConnections`).
fn select_neighbours(
    store: &VectorStore,
    candidates: &[Scored],
    max: usize,
    fill: bool,
    scratch: &mut Vec<f32>,
) -> Vec<Scored> {
    let mut kept: Vec<Scored> = Vec::with_capacity(max);
    let mut pruned: Vec<Scored> = Vec::new();
    for &c in candidates {
        if kept.len() >= max {
            break;
        }
        let row = store.row_into(c.id as usize, scratch);
        // Only a neighbour strictly closer to the candidate than the base prunes it: with `<=`
        // a name repeated across vocabularies (identical vectors) would prune every other
        // link of its twin and cut both off the graph.
        if kept.iter().all(|k| store.dot(k.id as usize, row) <= c.sim) {
            kept.push(c);
        } else if fill {
            pruned.push(c);
        }
    }
    let room = max - kept.len();
    kept.extend(pruned.into_iter().take(room));
    kept
}

/// Graph construction state shared by the inserting threads.
struct Builder<'a> {
    store: &'a VectorStore,
    layout: Layout,
    ef_construction: usize,
    levels: Vec<u8>,
    /// A node's position among the upper nodes (`u32::MAX` for layer-0-only nodes).
    upper_rank: Vec<u32>,
    upper_ids: Vec<u32>,
    links: Vec<AtomicU32>,
    locks: Vec<Mutex<()>>,
    /// Entry node and its level.
    entry: Mutex<(u32, usize)>,
}

impl Links for Builder<'_> {
    fn layout(&self) -> &Layout {
        &self.layout
    }

    #[inline]
    fn neighbours(&self, node: u32, layer: usize, out: &mut Vec<u32>) {
        out.clear();
        let start = self.slot(node, layer);
        let count = (self.links[start].load(AtomicOrdering::Acquire) as usize)
            .min(self.layout.capacity(layer));
        out.extend(
            self.links[start + 1..start + 1 + count]
                .iter()
                .map(|w| w.load(AtomicOrdering::Relaxed)),
        );
    }
}

impl<'a> Builder<'a> {
    fn new(store: &'a VectorStore, m: usize, ef_construction: usize) -> Self {
        let n = store.len();
        // Level l holds a 1/M^l fraction of the nodes (mL = 1 / ln M).
        let ml = 1.0 / (m as f64).ln();
        let mut rng = SplitMix64::new(LEVEL_SEED);
        let levels: Vec<u8> = (0..n)
            .map(|_| {
                let u = 1.0 - f64::from(rng.next_f32()); // (0, 1]
                ((-u.ln() * ml).floor() as usize).min(MAX_LEVEL) as u8
            })
            .collect();
        let mut upper_rank = vec![u32::MAX; n];
        let mut upper_ids = Vec::new();
        for (i, &level) in levels.iter().enumerate() {
            if level > 0 {
                upper_rank[i] = upper_ids.len() as u32;
                upper_ids.push(i as u32);
            }
        }
        let layout = Layout {
            nodes: n,
            upper_nodes: upper_ids.len(),
            m,
            m0: 2 * m,
            top_layer: levels.iter().copied().max().unwrap_or(0) as usize,
        };
        let links = (0..layout.words()).map(|_| AtomicU32::new(0)).collect();
        Builder {
            store,
            layout,
            ef_construction,
            levels,
            upper_rank,
            upper_ids,
            links,
            locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            entry: Mutex::new((0, 0)),
        }
    }

    /// Inserts every node, `threads` at a time (1: the same graph every time).
    fn insert_all(&self, threads: usize, progress: &dyn Progress) {
        let n = self.store.len();
        progress.stage("building HNSW graph", n as u64);
        if n > 0 {
            self.insert(0, &mut Visited::new());
            let next = AtomicUsize::new(1);
            let work = || {
                let mut visited = Visited::new();
                loop {
                    let start = next.fetch_add(256, AtomicOrdering::Relaxed);
                    if start >= n {
                        break;
                    }
                    let end = (start + 256).min(n);
                    for node in start..end {
                        self.insert(node as u32, &mut visited);
                    }
                    progress.advance((end - start) as u64);
                }
            };
            if threads <= 1 {
                work();
            } else {
                std::thread::scope(|scope| {
                    for _ in 0..threads {
                        scope.spawn(work);
                    }
                });
            }
        }
        progress.finish_stage();
    }

    fn slot(&self, node: u32, layer: usize) -> usize {
        if layer == 0 {
            node as usize * self.layout.slot0()
        } else {
            self.layout
                .upper_slot(layer, self.upper_rank[node as usize] as usize)
        }
    }

    fn write_links(&self, node: u32, layer: usize, ids: &[u32]) {
        let start = self.slot(node, layer);
        for (w, &id) in self.links[start + 1..].iter().zip(ids) {
            w.store(id, AtomicOrdering::Relaxed);
        }
        self.links[start].store(ids.len() as u32, AtomicOrdering::Release);
    }

    fn lock(&self, node: u32) -> std::sync::MutexGuard<'_, ()> {
        self.locks[node as usize % LOCK_STRIPES]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn insert(&self, node: u32, visited: &mut Visited) {
        let level = self.levels[node as usize] as usize;
        let (entry, top) = *self.entry.lock().unwrap_or_else(|p| p.into_inner());
        if node == 0 {
            *self.entry.lock().unwrap_or_else(|p| p.into_inner()) = (0, level);
            return;
        }
        let mut scratch = Vec::new();
        let query = self.store.row_into(node as usize, &mut scratch).to_vec();
        let mut buf = Vec::with_capacity(self.layout.m0);
        let mut best = Scored {
            sim: self.store.dot(entry as usize, &query),
            id: entry,
        };
        for layer in (level + 1..=top).rev() {
            best = greedy(self, self.store, &query, best, layer, &mut buf);
        }
        let mut entries = vec![best];
        for layer in (0..=level.min(top)).rev() {
            let found = search_layer(
                self,
                self.store,
                &query,
                &entries,
                self.ef_construction,
                layer,
                visited,
                &mut buf,
            );
            let cap = self.layout.capacity(layer);
            // Layer 0 keeps M links at insertion like the paper (M0 = 2M is the room for
            // links added back by later nodes).
            let chosen =
                select_neighbours(self.store, &found, self.layout.m, layer == 0, &mut scratch);
            {
                let _guard = self.lock(node);
                self.write_own_links(node, layer, &chosen, cap, &mut scratch, &mut buf);
            }
            for s in &chosen {
                self.link_back(s.id, node, s.sim, layer, cap, &mut scratch, &mut buf);
            }
            entries = found;
        }
        if level > top {
            let mut e = self.entry.lock().unwrap_or_else(|p| p.into_inner());
            if level > e.1 {
                *e = (node, level);
            }
        }
    }

    /// Writes the links `node` chose on `layer` (the caller holds its lock). Another thread
    /// may already have linked back to it there: having found `node` on a layer above, it can
    /// choose it before `node` reaches this layer. Those links are kept beside the chosen ones
    /// (pruned with the heuristic past `cap`) rather than overwritten, which would leave that
    /// thread's node with one link fewer pointing at it.
    fn write_own_links(
        &self,
        node: u32,
        layer: usize,
        chosen: &[Scored],
        cap: usize,
        scratch: &mut Vec<f32>,
        buf: &mut Vec<u32>,
    ) {
        self.neighbours(node, layer, buf);
        let mut ids: Vec<u32> = chosen.iter().map(|s| s.id).collect();
        let early: Vec<u32> = buf.iter().copied().filter(|id| !ids.contains(id)).collect();
        if early.is_empty() {
            self.write_links(node, layer, &ids);
            return;
        }
        if ids.len() + early.len() <= cap {
            ids.extend(early);
            self.write_links(node, layer, &ids);
            return;
        }
        let base = self.store.row_into(node as usize, scratch).to_vec();
        let mut candidates: Vec<Scored> = chosen.to_vec();
        candidates.extend(early.into_iter().map(|id| Scored {
            sim: self.store.dot(id as usize, &base),
            id,
        }));
        candidates.sort_by(|a, b| b.cmp(a));
        let kept = select_neighbours(self.store, &candidates, cap, layer == 0, scratch);
        let ids: Vec<u32> = kept.iter().map(|s| s.id).collect();
        self.write_links(node, layer, &ids);
    }

    /// Links every node that no path from the entry reaches on layer 0 (a search can never
    /// return it) from the nearest node that one does, then follows that node's own links; returns
    /// how many were linked. Concurrent insertion leaves a few (about 0.1% of 280 k names:
    /// back-links pruned away by later, closer nodes); they would otherwise be missing from
    /// every answer. Runs on one thread, in node order, so it repeats.
    fn connect_unreachable(&self) -> usize {
        let n = self.layout.nodes;
        if n == 0 {
            return 0;
        }
        let (entry, top) = *self.entry.lock().unwrap_or_else(|p| p.into_inner());
        let mut reached = vec![false; n];
        flood_layer0(self, entry, &mut reached);
        let mut buf = Vec::new();
        let mut visited = Visited::new();
        let mut scratch = Vec::new();
        let mut linked = 0;
        for node in 0..n as u32 {
            if reached[node as usize] {
                continue;
            }
            let query = self.store.row_into(node as usize, &mut scratch).to_vec();
            let mut best = Scored {
                sim: self.store.dot(entry as usize, &query),
                id: entry,
            };
            for layer in (1..=top).rev() {
                best = greedy(self, self.store, &query, best, layer, &mut buf);
            }
            let found = search_layer(
                self,
                self.store,
                &query,
                &[best],
                self.ef_construction,
                0,
                &mut visited,
                &mut buf,
            );
            // The nearest reached node with a free slot. Tight clusters fill every slot, so
            // failing that, the reached node nearest in the graph to the best one found that
            // has room: dropping a link instead could cut off another island.
            let nearest = found
                .iter()
                .map(|s| s.id)
                .find(|&id| id != node && reached[id as usize])
                .unwrap_or(entry);
            let Some(from) = found
                .iter()
                .map(|s| s.id)
                .filter(|&id| id != node && reached[id as usize])
                .chain(self.reached_breadth_first(nearest, &reached))
                .find(|&id| self.has_room(id))
            else {
                // Every reached node's layer-0 slot is full: nothing to link from.
                continue;
            };
            self.neighbours(from, 0, &mut buf);
            buf.push(node);
            self.write_links(from, 0, &buf);
            linked += 1;
            flood_layer0(self, node, &mut reached);
        }
        linked
    }

    fn has_room(&self, node: u32) -> bool {
        (self.links[self.slot(node, 0)].load(AtomicOrdering::Relaxed) as usize) < self.layout.m0
    }

    /// Reached nodes in breadth-first order from `start` over layer-0 links.
    fn reached_breadth_first<'b>(
        &'b self,
        start: u32,
        reached: &'b [bool],
    ) -> impl Iterator<Item = u32> + 'b {
        let mut queue = std::collections::VecDeque::from([start]);
        let mut seen = std::collections::HashSet::from([start]);
        let mut buf = Vec::new();
        std::iter::from_fn(move || {
            let node = queue.pop_front()?;
            self.neighbours(node, 0, &mut buf);
            for &next in &buf {
                if reached[next as usize] && seen.insert(next) {
                    queue.push_back(next);
                }
            }
            Some(node)
        })
    }

    /// Adds `new` to `node`'s links on `layer`, pruning with the heuristic when full.
    #[allow(clippy::too_many_arguments)]
    fn link_back(
        &self,
        node: u32,
        new: u32,
        sim: f32,
        layer: usize,
        cap: usize,
        scratch: &mut Vec<f32>,
        buf: &mut Vec<u32>,
    ) {
        let _guard = self.lock(node);
        self.neighbours(node, layer, buf);
        if buf.contains(&new) {
            return;
        }
        if buf.len() < cap {
            buf.push(new);
            self.write_links(node, layer, buf);
            return;
        }
        let base = self.store.row_into(node as usize, scratch).to_vec();
        let mut candidates: Vec<Scored> = buf
            .iter()
            .map(|&id| Scored {
                sim: self.store.dot(id as usize, &base),
                id,
            })
            .collect();
        candidates.push(Scored { sim, id: new });
        candidates.sort_by(|a, b| b.cmp(a));
        let kept = select_neighbours(self.store, &candidates, cap, layer == 0, scratch);
        let ids: Vec<u32> = kept.iter().map(|s| s.id).collect();
        self.write_links(node, layer, &ids);
    }

    fn finish(self) -> Graph {
        let entry = self.entry.into_inner().unwrap_or_else(|p| p.into_inner());
        Graph {
            layout: self.layout,
            entry: entry.0,
            words: Words::Owned {
                upper_ids: self.upper_ids,
                links: self.links.into_iter().map(AtomicU32::into_inner).collect(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::NoProgress;

    /// Tight clusters (40 of 50 near-copies) strand whole clusters: every link into them
    /// pruned by closer twins. The repair must leave no node a search cannot reach, and no
    /// fewer nodes found by a search for their own vector.
    #[test]
    fn repair_links_every_node_a_search_could_not_reach() {
        let mut rng = SplitMix64::new(5);
        let mut uniform = || rng.next_f32() - 0.5;
        let centres: Vec<Vec<f32>> = (0..40)
            .map(|_| (0..8).map(|_| uniform()).collect())
            .collect();
        let rows: Vec<Vec<f32>> = (0..2000)
            .map(|i| {
                let row: Vec<f32> = centres[i % 40]
                    .iter()
                    .map(|c| c + 0.01 * uniform())
                    .collect();
                let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
                row.into_iter().map(|x| x / norm).collect()
            })
            .collect();
        let store = VectorStore::from_rows(8, &rows).unwrap();
        // One thread: the same graph every time, so the counts below are fixed.
        let built = |repair: bool| {
            let builder = Builder::new(&store, 8, 16);
            builder.insert_all(1, &NoProgress);
            let linked = if repair {
                builder.connect_unreachable()
            } else {
                0
            };
            (linked, builder.finish())
        };
        let found_by_own_vector = |graph: &Graph| {
            rows.iter()
                .enumerate()
                .filter(|(i, row)| {
                    let hits = graph.search(&store, row, 10, 64);
                    hits.iter().any(|&(id, _)| id == *i as u32)
                })
                .count()
        };
        let (_, plain) = built(false);
        let stranded = plain.unreachable_nodes();
        assert!(stranded > 100, "the fixture strands {stranded} nodes");
        let (linked, repaired) = built(true);
        assert_eq!(repaired.unreachable_nodes(), 0);
        assert!(
            (1..=stranded).contains(&linked),
            "{linked} links for {stranded} nodes"
        );
        let (before, after) = (found_by_own_vector(&plain), found_by_own_vector(&repaired));
        // The upper layers' beam already reaches most stranded nodes; linking them must not
        // cost any other node its place.
        assert!(
            after >= before,
            "found by their own vector: {before} -> {after}"
        );
    }
}
