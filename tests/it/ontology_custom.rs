//! Tests for the custom loader.
