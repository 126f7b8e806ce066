//! medlink integration tests: one binary, one module per area.

mod common;
mod ontology_custom;
mod ontology_icd10cm;
mod ontology_medic;
mod ontology_obo;
mod ontology_snomed;
mod ontology_umls;
