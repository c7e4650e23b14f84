//! Routed experts returned by serving engines, decoded into `trace::Routing` (expert ids only,
//! weights unknown):
//! - SGLang (`return_routed_experts: true`): base64 of flattened little-endian int32 with logical
//!   shape `[tokens, layers, top_k]`, in a choice's `sgl_ext` or in `meta_info`. The shape is
//!   not sent: `tokens` comes from the token counts, `top_k` from the caller.
//! - vLLM (`--enable-return-routed-experts`): `routed_experts` on a choice, base64 of a `.npy`
//!   array `(tokens, layers, top_k)`, uint8 for up to 256 experts and uint16 above.
//!
//! Rows are positions of processed tokens; a step's routing is how its own token was routed.
//! Depends only on `trace`.

use base64::Engine as _;
use serde_json::Value;

use super::error::{Error, Result};
use crate::trace::{LayerRoute, Routing};

/// Expert ids of every processed position: `ids[(row * layers + layer) * top_k + k]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Experts {
    pub format: String,
    pub rows: usize,
    pub layers: usize,
    pub top_k: usize,
    pub ids: Vec<u16>,
}

/// A routed-experts payload found in a chunk, not yet decoded (SGLang's needs the token count).
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    Sglang(String),
    Vllm(String),
}

/// Looks for routed experts in a chunk and in its first choice.
pub fn find(chunk: &Value) -> Option<Found> {
    let choice = chunk.get("choices").and_then(|c| c.get(0));
    for place in [choice, Some(chunk)].into_iter().flatten() {
        if let Some(Value::String(s)) = place.get("routed_experts") {
            // vLLM puts a .npy here; an SGLang build may too, so sniff the bytes later.
            return Some(Found::Vllm(s.clone()));
        }
        for ext in ["sgl_ext", "meta_info"] {
            if let Some(Value::String(s)) = place.get(ext).and_then(|e| e.get("routed_experts")) {
                return Some(Found::Sglang(s.clone()));
            }
        }
    }
    None
}

fn b64(s: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| Error::Routing(format!("not base64: {e}")))
}

/// Decodes a payload. `tokens` is the number of positions SGLang covers (prompt + generated
/// - 1); `top_k` the experts per token (SGLang does not send it).
pub fn decode(found: &Found, tokens: Option<usize>, top_k: usize) -> Result<Experts> {
    match found {
        Found::Vllm(s) => {
            let bytes = b64(s)?;
            if bytes.starts_with(b"\x93NUMPY") {
                parse_npy(&bytes, "vllm")
            } else {
                sglang_ints(&bytes, tokens, top_k)
            }
        }
        Found::Sglang(s) => {
            let bytes = b64(s)?;
            if bytes.starts_with(b"\x93NUMPY") {
                parse_npy(&bytes, "sglang")
            } else {
                sglang_ints(&bytes, tokens, top_k)
            }
        }
    }
}

fn sglang_ints(bytes: &[u8], tokens: Option<usize>, top_k: usize) -> Result<Experts> {
    if bytes.len() % 4 != 0 {
        return Err(Error::Routing(format!(
            "{} bytes is not a whole number of int32",
            bytes.len()
        )));
    }
    let tokens = tokens.ok_or_else(|| {
        Error::Routing("SGLang sends no shape and the server gave no token counts (usage)".into())
    })?;
    let n = bytes.len() / 4;
    if tokens == 0 || top_k == 0 || n % (tokens * top_k) != 0 {
        return Err(Error::Routing(format!(
            "{n} int32 values do not split into {tokens} tokens x layers x {top_k} experts (--routing-top-k)"
        )));
    }
    let mut ids = Vec::with_capacity(n);
    for (i, c) in bytes.chunks_exact(4).enumerate() {
        let v = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        ids.push(
            u16::try_from(v).map_err(|_| {
                Error::Routing(format!("expert id {v} at value {i} is out of range"))
            })?,
        );
    }
    Ok(Experts {
        format: "sglang base64 int32".into(),
        rows: tokens,
        layers: n / (tokens * top_k),
        top_k,
        ids,
    })
}

/// Parses a C-order `.npy` of shape `(rows, layers, top_k)`, uint8 or uint16 (also int16/int32).
pub fn parse_npy(bytes: &[u8], who: &str) -> Result<Experts> {
    let bad = |m: String| Error::Routing(format!(".npy: {m}"));
    if bytes.len() < 12 {
        return Err(bad("truncated header".into()));
    }
    let major = bytes[6];
    let (hlen, start) = match major {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => {
            (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
        }
        v => return Err(bad(format!("unsupported version {v}"))),
    };
    let header = bytes
        .get(start..start + hlen)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("truncated or non-UTF-8 header".into()))?;
    let dict_str = |key: &str| -> Option<&str> {
        let rest = &header[header.find(&format!("'{key}'"))? + key.len() + 2..];
        let rest = rest.trim_start().strip_prefix(':')?.trim_start();
        Some(rest)
    };
    let descr = dict_str("descr")
        .and_then(|r| r.strip_prefix('\'')?.split('\'').next())
        .ok_or_else(|| bad(format!("no 'descr' in header '{}'", header.trim())))?;
    if dict_str("fortran_order").is_some_and(|r| r.starts_with("True")) {
        return Err(bad("Fortran order is not supported".into()));
    }
    let shape: Vec<usize> = dict_str("shape")
        .and_then(|r| r.strip_prefix('(')?.split(')').next())
        .map(|s| s.split(',').filter_map(|d| d.trim().parse().ok()).collect())
        .ok_or_else(|| bad(format!("no 'shape' in header '{}'", header.trim())))?;
    let [rows, layers, top_k] = shape[..] else {
        return Err(bad(format!("shape {shape:?} is not (tokens, layers, top_k)")));
    };
    let data = &bytes[start + hlen..];
    let n = rows * layers * top_k;
    let (width, kind) = match descr {
        "|u1" | "u1" => (1, "u8"),
        "<u2" => (2, "u16"),
        "<i2" => (2, "i16"),
        "<i4" => (4, "i32"),
        d => return Err(bad(format!("dtype '{d}' is not uint8, uint16, int16 or int32"))),
    };
    if data.len() < n * width {
        return Err(bad(format!("{} data bytes, shape {shape:?} needs {}", data.len(), n * width)));
    }
    let mut ids = Vec::with_capacity(n);
    for c in data.chunks_exact(width).take(n) {
        let v: i64 = match width {
            1 => i64::from(c[0]),
            2 if kind == "u16" => i64::from(u16::from_le_bytes([c[0], c[1]])),
            2 => i64::from(i16::from_le_bytes([c[0], c[1]])),
            _ => i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        };
        ids.push(u16::try_from(v).map_err(|_| bad(format!("expert id {v} is out of range")))?);
    }
    Ok(Experts { format: format!("{who} npy {kind}"), rows, layers, top_k, ids })
}

/// Routing per step index: step `k` is the token at position `prompt + k`. When the rows cover
/// only the generated tokens, row `k` is step `k`. Returns a note when the rows fit neither.
pub fn per_step(
    e: &Experts,
    prompt_tokens: Option<usize>,
    steps: usize,
) -> (Vec<(u32, Routing)>, Option<String>) {
    let (offset, note) = match prompt_tokens {
        Some(p) if e.rows + 1 == p + steps || e.rows == p + steps => (p, None),
        _ if e.rows == steps || e.rows + 1 == steps => (0, None),
        _ => {
            let off = (e.rows + 1).saturating_sub(steps);
            let note = format!(
                "routed experts have {} rows for {steps} steps and {prompt_tokens:?} prompt tokens; aligned to the last rows",
                e.rows
            );
            (off, Some(note))
        }
    };
    let mut out = Vec::new();
    for k in 0..steps {
        let row = offset + k;
        if row >= e.rows {
            break;
        }
        let layers = (0..e.layers)
            .map(|l| {
                let at = (row * e.layers + l) * e.top_k;
                LayerRoute {
                    layer: l as u16,
                    experts: e.ids[at..at + e.top_k].to_vec(),
                    weights: None,
                    router: None,
                }
            })
            .collect();
        out.push((k as u32, Routing { layers }));
    }
    (out, note)
}
