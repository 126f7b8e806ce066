//! The stored name vectors: one unit vector per name of the dictionary's name table, as f32,
//! f16 or i8 (with a scale per row), held in the heap while an index is built and
//! memory-mapped when it is opened.
//!
//! Mapping rather than reading keeps one copy of the vectors in memory (the page cache's),
//! shared between processes serving the same index, paged in as searches touch them. Index
//! files are never modified in place (a rebuild renames a new directory over the old one), so
//! a mapping stays valid for the life of the process.
//!
//! `vectors.bin` layout (little-endian):
//! - version 1: magic `MLVEC\0\0\0`, `u32` 1, `u64` count, `u64` dimension, then f32 rows;
//! - version 2: magic, `u32` 2, `u32` element type (0 f32, 1 f16, 2 i8), `u64` count, `u64`
//!   dimension, then from byte 32 the rows; for i8, first one f32 scale per row, then the rows.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::kernels::{
    dot_f16, dot_f32, dot_i8, f16_bits_to_f32_slice, f32_to_f16_bits, quantize_i8,
};
use crate::error::{Error, Result};
use crate::fsutil;

#[cfg(target_endian = "big")]
compile_error!("medlink memory-maps little-endian index files");

const VECTOR_MAGIC: &[u8; 8] = b"MLVEC\0\0\0";
const VECTOR_FORMAT_VERSION: u32 = 2;
const V1_HEADER: usize = 28;
const V2_HEADER: usize = 32;

/// How each vector component is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum VectorType {
    /// 4 bytes per component.
    F32,
    /// 2 bytes per component (IEEE half): half the memory; cosines within ~1e-4 of f32.
    #[default]
    F16,
    /// 1 byte per component and a 4-byte scale per row: a quarter of the memory; cosines
    /// within ~2e-3 of f32.
    I8,
}

impl VectorType {
    /// Indexes written before the element type was recorded hold f32.
    pub fn legacy() -> Self {
        VectorType::F32
    }

    /// The name used on the command line and in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            VectorType::F32 => "f32",
            VectorType::F16 => "f16",
            VectorType::I8 => "i8",
        }
    }

    /// Bytes per component.
    pub fn bytes(self) -> usize {
        match self {
            VectorType::F32 => 4,
            VectorType::F16 => 2,
            VectorType::I8 => 1,
        }
    }

    /// Bytes of a row of `dim` components (with its scale).
    pub fn row_bytes(self, dim: usize) -> usize {
        dim * self.bytes() + if self == VectorType::I8 { 4 } else { 0 }
    }

    fn code(self) -> u32 {
        match self {
            VectorType::F32 => 0,
            VectorType::F16 => 1,
            VectorType::I8 => 2,
        }
    }
}

enum Data {
    F32(Vec<f32>),
    F16(Vec<u16>),
    I8 {
        scales: Vec<f32>,
        rows: Vec<i8>,
    },
    /// Rows of `kind` starting `offset` bytes into a read-only mapping of `vectors.bin`.
    Mapped {
        map: memmap2::Mmap,
        offset: usize,
        kind: VectorType,
    },
}

/// A borrowed view of every row at once.
enum Rows<'a> {
    F32(&'a [f32]),
    F16(&'a [u16]),
    I8 { scales: &'a [f32], rows: &'a [i8] },
}

/// Row-major unit vectors.
pub struct VectorStore {
    dim: usize,
    len: usize,
    data: Data,
}

impl std::fmt::Debug for VectorStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorStore")
            .field("dim", &self.dim)
            .field("len", &self.len)
            .field("kind", &self.kind())
            .field("mapped", &matches!(self.data, Data::Mapped { .. }))
            .finish()
    }
}

/// Two stores are equal when they hold the same type and the same values.
impl PartialEq for VectorStore {
    fn eq(&self, other: &Self) -> bool {
        if self.dim != other.dim || self.len != other.len || self.kind() != other.kind() {
            return false;
        }
        match (self.rows(), other.rows()) {
            (Rows::F32(a), Rows::F32(b)) => a == b,
            (Rows::F16(a), Rows::F16(b)) => a == b,
            (
                Rows::I8 {
                    scales: sa,
                    rows: ra,
                },
                Rows::I8 {
                    scales: sb,
                    rows: rb,
                },
            ) => sa == sb && ra == rb,
            _ => false,
        }
    }
}

impl VectorStore {
    /// An empty in-memory store.
    pub fn new(dim: usize, kind: VectorType) -> Self {
        VectorStore::zeros(dim, 0, kind)
    }

    /// `count` zero rows, to be filled with [`VectorStore::set_row`].
    pub fn zeros(dim: usize, count: usize, kind: VectorType) -> Self {
        let data = match kind {
            VectorType::F32 => Data::F32(vec![0.0; dim * count]),
            VectorType::F16 => Data::F16(vec![0; dim * count]),
            VectorType::I8 => Data::I8 {
                scales: vec![0.0; count],
                rows: vec![0; dim * count],
            },
        };
        VectorStore {
            dim,
            len: count,
            data,
        }
    }

    /// An f32 store of `rows`.
    pub fn from_rows(dim: usize, rows: &[Vec<f32>]) -> Result<Self> {
        let mut store = VectorStore::new(dim, VectorType::F32);
        for row in rows {
            store.push(row)?;
        }
        Ok(store)
    }

    /// Appends a row (in-memory stores only).
    pub fn push(&mut self, row: &[f32]) -> Result<()> {
        self.check_row(row)?;
        match &mut self.data {
            Data::F32(v) => v.extend_from_slice(row),
            Data::F16(v) => v.extend(row.iter().map(|&x| f32_to_f16_bits(x))),
            Data::I8 { scales, rows } => {
                let start = rows.len();
                rows.resize(start + row.len(), 0);
                scales.push(quantize_i8(row, &mut rows[start..]));
            }
            Data::Mapped { .. } => {
                return Err(Error::InvalidInput(
                    "a memory-mapped vector store is read-only".into(),
                ))
            }
        }
        self.len += 1;
        Ok(())
    }

    /// Overwrites row `i` (in-memory stores only).
    pub fn set_row(&mut self, i: usize, row: &[f32]) -> Result<()> {
        self.check_row(row)?;
        let range = i * self.dim..(i + 1) * self.dim;
        match &mut self.data {
            Data::F32(v) => v[range].copy_from_slice(row),
            Data::F16(v) => {
                for (out, &x) in v[range].iter_mut().zip(row) {
                    *out = f32_to_f16_bits(x);
                }
            }
            Data::I8 { scales, rows } => scales[i] = quantize_i8(row, &mut rows[range]),
            Data::Mapped { .. } => {
                return Err(Error::InvalidInput(
                    "a memory-mapped vector store is read-only".into(),
                ))
            }
        }
        Ok(())
    }

    fn check_row(&self, row: &[f32]) -> Result<()> {
        if row.len() != self.dim {
            return Err(Error::DimensionMismatch {
                expected: self.dim,
                got: row.len(),
            });
        }
        Ok(())
    }

    /// The same vectors stored as `kind` (in memory).
    pub fn converted(&self, kind: VectorType) -> VectorStore {
        let mut out = VectorStore::zeros(self.dim, self.len, kind);
        let mut row = Vec::new();
        for i in 0..self.len {
            out.set_row(i, self.row_into(i, &mut row))
                .expect("same dimension");
        }
        out
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn kind(&self) -> VectorType {
        match &self.data {
            Data::F32(_) => VectorType::F32,
            Data::F16(_) => VectorType::F16,
            Data::I8 { .. } => VectorType::I8,
            Data::Mapped { kind, .. } => *kind,
        }
    }

    /// Whether the rows live in a file mapping rather than the heap.
    pub fn is_mapped(&self) -> bool {
        matches!(self.data, Data::Mapped { .. })
    }

    /// Bytes of vector data (in the heap or mapped).
    pub fn data_bytes(&self) -> usize {
        self.len * self.kind().row_bytes(self.dim)
    }

    fn rows(&self) -> Rows<'_> {
        let n = self.len * self.dim;
        match &self.data {
            Data::F32(v) => Rows::F32(v),
            Data::F16(v) => Rows::F16(v),
            Data::I8 { scales, rows } => Rows::I8 { scales, rows },
            // SAFETY: `load` checked that the mapping holds `n` elements of `kind` from
            // `offset` (after `len` scales for i8) and that this address is aligned for the
            // element type; the mapping is read-only and lives as long as `self`.
            Data::Mapped { map, offset, kind } => unsafe {
                let ptr = map.as_ptr().add(*offset);
                match kind {
                    VectorType::F32 => Rows::F32(std::slice::from_raw_parts(ptr.cast(), n)),
                    VectorType::F16 => Rows::F16(std::slice::from_raw_parts(ptr.cast(), n)),
                    VectorType::I8 => Rows::I8 {
                        scales: std::slice::from_raw_parts(ptr.cast(), self.len),
                        rows: std::slice::from_raw_parts(ptr.add(4 * self.len).cast(), n),
                    },
                }
            },
        }
    }

    /// Cosine of `query` with row `i` (both unit vectors).
    #[inline]
    pub fn dot(&self, i: usize, query: &[f32]) -> f32 {
        let range = i * self.dim..(i + 1) * self.dim;
        match self.rows() {
            Rows::F32(v) => dot_f32(query, &v[range]),
            Rows::F16(v) => dot_f16(query, &v[range]),
            Rows::I8 { scales, rows } => scales[i] * dot_i8(query, &rows[range]),
        }
    }

    /// Starts loading row `i` into the cache, a hint with no effect on results. A graph search
    /// meets a node's neighbours as a list: fetching all their rows before scoring any lets the
    /// memory system serve the misses side by side rather than one after the other.
    #[inline]
    pub fn prefetch(&self, i: usize) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let range = i * self.dim..(i + 1) * self.dim;
            let (start, bytes): (*const i8, usize) = match self.rows() {
                Rows::F32(v) => (v[range].as_ptr().cast(), self.dim * 4),
                Rows::F16(v) => (v[range].as_ptr().cast(), self.dim * 2),
                Rows::I8 { scales, rows } => {
                    // SAFETY: `scales[i]` exists (checked by the index); a hint reads nothing.
                    unsafe { _mm_prefetch::<_MM_HINT_T0>((&scales[i] as *const f32).cast()) };
                    (rows[range].as_ptr().cast(), self.dim)
                }
            };
            for offset in (0..bytes).step_by(64) {
                // SAFETY: `start + offset` lies inside row `i`, which the slice above checked;
                // a prefetch reads nothing into the program either way.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(start.add(offset)) };
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = i;
    }

    /// Row `i` as f32: the stored slice itself, or its widening into `scratch`.
    pub fn row_into<'a>(&'a self, i: usize, scratch: &'a mut Vec<f32>) -> &'a [f32] {
        let range = i * self.dim..(i + 1) * self.dim;
        match self.rows() {
            Rows::F32(v) => &v[range],
            Rows::F16(v) => {
                // Every value is overwritten: only a shorter scratch is extended.
                scratch.resize(self.dim, 0.0);
                f16_bits_to_f32_slice(&v[range], scratch);
                scratch
            }
            Rows::I8 { scales, rows } => {
                scratch.clear();
                scratch.extend(rows[range].iter().map(|&q| scales[i] * f32::from(q)));
                scratch
            }
        }
    }

    /// Row `i` as a new f32 vector.
    pub fn row_vec(&self, i: usize) -> Vec<f32> {
        let mut scratch = Vec::new();
        self.row_into(i, &mut scratch).to_vec()
    }

    /// Writes the store in its own element type (atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        fsutil::write_atomic(path, |w| {
            self.write_header(w, self.kind())?;
            // Through a buffer of bytes: one write per 64 KB, not per component.
            let mut buf = Vec::with_capacity(1 << 16);
            match self.rows() {
                Rows::F32(v) => {
                    for chunk in v.chunks(1 << 14) {
                        buf.clear();
                        buf.extend(chunk.iter().flat_map(|x| x.to_le_bytes()));
                        w.write_all(&buf)?;
                    }
                }
                Rows::F16(v) => {
                    for chunk in v.chunks(1 << 15) {
                        buf.clear();
                        buf.extend(chunk.iter().flat_map(|x| x.to_le_bytes()));
                        w.write_all(&buf)?;
                    }
                }
                Rows::I8 { scales, rows } => {
                    for chunk in scales.chunks(1 << 14) {
                        buf.clear();
                        buf.extend(chunk.iter().flat_map(|x| x.to_le_bytes()));
                        w.write_all(&buf)?;
                    }
                    for chunk in rows.chunks(1 << 16) {
                        buf.clear();
                        buf.extend(chunk.iter().map(|&q| q as u8));
                        w.write_all(&buf)?;
                    }
                }
            }
            Ok(())
        })
    }

    /// The version 2 header of this store's rows written as `kind`.
    fn write_header(&self, w: &mut impl Write, kind: VectorType) -> std::io::Result<()> {
        w.write_all(VECTOR_MAGIC)?;
        w.write_all(&VECTOR_FORMAT_VERSION.to_le_bytes())?;
        w.write_all(&kind.code().to_le_bytes())?;
        w.write_all(&(self.len as u64).to_le_bytes())?;
        w.write_all(&(self.dim as u64).to_le_bytes())
    }

    /// Writes the store converted to `kind` (atomically) a row at a time, so a converted copy
    /// never sits in memory beside the source (`medlink index convert` of a mapped index);
    /// the same bytes as `self.converted(kind).save(path)`.
    pub fn save_as(&self, kind: VectorType, path: &Path) -> Result<()> {
        if kind == self.kind() {
            return self.save(path);
        }
        fsutil::write_atomic(path, |w| {
            self.write_header(w, kind)?;
            let mut row = Vec::with_capacity(self.dim);
            let mut codes = vec![0i8; self.dim];
            let mut buf = Vec::with_capacity(1 << 16);
            let mut each_row = |bytes: &mut dyn FnMut(&[f32], &mut Vec<u8>)| {
                buf.clear();
                for i in 0..self.len {
                    bytes(self.row_into(i, &mut row), &mut buf);
                    if buf.len() >= 1 << 16 {
                        w.write_all(&buf)?;
                        buf.clear();
                    }
                }
                w.write_all(&buf)
            };
            match kind {
                VectorType::F32 => {
                    each_row(&mut |r, buf| buf.extend(r.iter().flat_map(|x| x.to_le_bytes())))
                }
                VectorType::F16 => each_row(&mut |r, buf| {
                    buf.extend(r.iter().flat_map(|&x| f32_to_f16_bits(x).to_le_bytes()))
                }),
                // The layout puts every scale before the codes: two passes over the rows.
                VectorType::I8 => {
                    each_row(&mut |r, buf| {
                        buf.extend(quantize_i8(r, &mut codes).to_le_bytes());
                    })?;
                    each_row(&mut |r, buf| {
                        quantize_i8(r, &mut codes);
                        buf.extend(codes.iter().map(|&q| q as u8));
                    })
                }
            }
        })
    }

    /// Maps `vectors.bin` (version 1 or 2) after checking its header and size.
    pub fn load(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: index files are read-only once written and replaced only by renaming a new
        // directory into place, so the mapped bytes do not change under the mapping.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let corrupt = |comment: String| Error::DataCorruption {
            path: path.to_path_buf(),
            comment,
        };
        if map.len() < V1_HEADER {
            return Err(corrupt("shorter than the vector file header".into()));
        }
        if &map[..8] != VECTOR_MAGIC {
            return Err(Error::FileFormat {
                path: path.to_path_buf(),
                expected: "vector".into(),
                found: "another file type (bad magic bytes)".into(),
            });
        }
        let u32_at = |at: usize| u32::from_le_bytes(map[at..at + 4].try_into().expect("4 bytes"));
        let u64_at = |at: usize| u64::from_le_bytes(map[at..at + 8].try_into().expect("8 bytes"));
        let (kind, count, dim, offset) = match u32_at(8) {
            1 => (VectorType::F32, u64_at(12), u64_at(20), V1_HEADER),
            2 => {
                if map.len() < V2_HEADER {
                    return Err(corrupt("shorter than the vector file header".into()));
                }
                let kind = match u32_at(12) {
                    0 => VectorType::F32,
                    1 => VectorType::F16,
                    2 => VectorType::I8,
                    other => return Err(corrupt(format!("unknown element type {other}"))),
                };
                (kind, u64_at(16), u64_at(24), V2_HEADER)
            }
            version => {
                return Err(Error::FileFormat {
                    path: path.to_path_buf(),
                    expected: format!("vector format version 1 to {VECTOR_FORMAT_VERSION}"),
                    found: format!("version {version}"),
                })
            }
        };
        let (count, dim) = (count as usize, dim as usize);
        let expected = dim
            .checked_mul(kind.bytes())
            .and_then(|row| row.checked_add(kind.row_bytes(0)))
            .and_then(|row| row.checked_mul(count))
            .ok_or_else(|| corrupt(format!("impossible size {count} x {dim}")))?;
        let on_disk = map.len() - offset;
        if on_disk != expected {
            return Err(corrupt(format!(
                "expected {count} vectors of {dim} {kind:?} components ({expected} bytes), found {on_disk} bytes"
            )));
        }
        let align = if kind == VectorType::I8 {
            4
        } else {
            kind.bytes()
        };
        if !(map.as_ptr() as usize + offset).is_multiple_of(align) {
            return Err(corrupt("vector data is not aligned".into()));
        }
        Ok(VectorStore {
            dim,
            len: count,
            data: Data::Mapped { map, offset, kind },
        })
    }
}
