//! The integration tests, as one test binary (as ripgrep's `tests/tests.rs` does): every file
//! here is a module of it, so the candle-heavy library is linked into one executable instead
//! of one per file. `common` holds what the modules share. Run one module with
//! `cargo test --test it engine_tiny::`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

mod architecture;
mod batch_decode;
mod cli;
mod cli_analysis;
mod cli_fork;
mod cli_store;
mod cli_usability;
mod compare;
mod dynamics;
mod engine_tiny;
mod experiment;
mod export;
mod fuzz;
mod import_formats;
mod moe_info;
mod moe_reference;
mod moe_routing;
mod reference_smollm2;
mod remote_llama;
mod score;
mod store;
mod store_salvage;
mod tokenizer_reference;
mod tui;
mod tui_data;
mod tui_e2e;
mod tui_experiment;
mod tui_import;
mod tui_invisible;
mod tui_lens;
mod tui_loop;
mod tui_remote;
mod tui_remote_llama;
mod tui_usability;
