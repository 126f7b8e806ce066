//! Tests for the icd10cm loader.
