//! Shared helpers for ballast's end-to-end tests.
