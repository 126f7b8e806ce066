//! medlink: biomedical entity linking.
//!
//! Data flows ontology -> index -> linker: [`ontology`] loaders turn OBO, CTD MEDIC, UMLS RRF,
//! SNOMED CT RF2, ICD-10-CM XML, MeSH and custom TSV/JSONL files into one [`ontology::Dictionary`].

pub mod assets;
pub mod cache;
pub mod cli;
pub mod encoder;
pub mod error;
pub mod eval;
pub mod fsutil;
pub mod index;
pub mod linker;
pub mod model;
pub mod ner;
pub mod ontology;
pub mod parallel;
pub mod progress;
pub mod rerank;
pub mod rng;
pub mod server;
pub mod text;
pub mod train;

pub use error::{Error, ErrorKind, Result};
