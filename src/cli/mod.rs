//! Command-line interface (filled in below).
