//! Parse errors.
