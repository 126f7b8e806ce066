//! medlink integration tests: one binary, one module per area.

mod accuracy;
mod annotate;
mod architectures;
mod cli;
mod common;
mod encoder;
mod eval_abbrev;
mod eval_biosyn;
mod eval_mentions;
mod eval_metrics;
mod eval_ner_corpora;
mod eval_readers;
mod index_dense;
mod index_lexical;
mod linker;
mod ner_dictionary;
mod ontology_custom;
mod ontology_icd10cm;
mod ontology_medic;
mod ontology_obo;
mod ontology_snomed;
mod ontology_umls;
mod parity;
mod server;
mod tagger;
mod train;
