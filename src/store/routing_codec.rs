//! Compact encoding of one step's MoE routing (value version 2 of the `routing` tree).
//!
//! A DeepSeek-R1 step routes through 58 layers × 8 of 256 experts; stored naively that is
//! ~1.4 KB per token. Here the set of experts of a layer is one number of the combinatorial
//! number system (⌈log2 C(n,k)⌉ bits: 49 instead of 64 for 8 of 256), the f16 gate weights
//! follow in increasing-id order with the always-zero sign bit dropped (and the exponent as a
//! 4-bit offset from the step's smallest when they span at most 16 binades), and the layer list is
//! stored as `first, count` when contiguous. Decoding gives the canonical order of
//! `trace::LayerRoute::canonical` (decreasing weight, ties by id). A routing this format cannot
//! hold exactly (uneven expert counts, out-of-order input, weights that are not f16 values)
//! falls back to version 1 (postcard), or version 3 when it carries router distributions, so
//! encoding is always lossless. Depends on `trace`.

use half::f16;

use super::codec::{decode, encode};
use super::error::{Error, Result};
use crate::trace::{LayerRoute, Routing};

/// Version byte of the compact format.
pub const ROUTING_VERSION: u8 = 2;

const EXPLICIT_LAYERS: u8 = 1;
const HAS_WEIGHTS: u8 = 2;
const SIGNED_WEIGHTS: u8 = 4;
/// All f16 exponents of the step lie within 16 of a stored minimum: 14-bit weights.
const NARROW_EXPONENTS: u8 = 8;
/// Every layer carries the full router distribution (`--routing full`): its length follows
/// the header and each layer's values follow all the layers' sets and weights, as f16.
const HAS_ROUTER: u8 = 16;

/// Version byte of the postcard fallback for routings with router distributions (version 1
/// is the postcard fallback without them, the shape every store before them wrote).
pub const ROUTING_FULL_FALLBACK_VERSION: u8 = 3;

/// The postcard shape of version 1, kept apart from `trace::LayerRoute` so that fields added
/// there (which postcard cannot skip) never change what old stores hold.
#[derive(serde::Serialize, serde::Deserialize)]
struct RoutingV1 {
    layers: Vec<RouteV1>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct RouteV1 {
    layer: u16,
    experts: Vec<u16>,
    weights: Option<Vec<f32>>,
}

/// The postcard shape of version 3: version 1 plus the router distribution.
#[derive(serde::Serialize, serde::Deserialize)]
struct RouteV3 {
    layer: u16,
    experts: Vec<u16>,
    weights: Option<Vec<f32>>,
    router: Option<Vec<f32>>,
}

/// Encodes a step's routing, compactly when it can be round-tripped exactly.
pub fn encode_routing(r: &Routing) -> Result<Vec<u8>> {
    if let Some(bytes) = compact(r) {
        if decode_compact(&bytes).ok().as_ref() == Some(r) {
            return Ok(bytes);
        }
    }
    if r.layers.iter().any(|l| l.router.is_some()) {
        let layers: Vec<RouteV3> = r
            .layers
            .iter()
            .map(|l| RouteV3 {
                layer: l.layer,
                experts: l.experts.clone(),
                weights: l.weights.clone(),
                router: l.router.clone(),
            })
            .collect();
        let mut out = vec![ROUTING_FULL_FALLBACK_VERSION];
        out.extend(postcard::to_stdvec(&layers).map_err(|e| Error::Corrupt {
            tree: "routing",
            place: "encoding".into(),
            message: e.to_string(),
        })?);
        return Ok(out);
    }
    encode(&RoutingV1 {
        layers: r
            .layers
            .iter()
            .map(|l| RouteV1 {
                layer: l.layer,
                experts: l.experts.clone(),
                weights: l.weights.clone(),
            })
            .collect(),
    })
}

/// Decodes a value written by `encode_routing` (either version).
pub fn decode_routing(
    bytes: &[u8],
    tree: &'static str,
    place: impl FnOnce() -> String,
) -> Result<Routing> {
    match bytes.first() {
        Some(&ROUTING_VERSION) => decode_compact(bytes).map_err(|message| Error::Corrupt {
            tree,
            place: place(),
            message,
        }),
        Some(&ROUTING_FULL_FALLBACK_VERSION) => {
            let layers: Vec<RouteV3> = postcard::from_bytes(&bytes[1..])
                .map_err(|e| Error::Corrupt { tree, place: place(), message: e.to_string() })?;
            Ok(Routing {
                layers: layers
                    .into_iter()
                    .map(|l| LayerRoute {
                        layer: l.layer,
                        experts: l.experts,
                        weights: l.weights,
                        router: l.router,
                    })
                    .collect(),
            })
        }
        _ => {
            let v1: RoutingV1 = decode(bytes, tree, place)?;
            Ok(Routing {
                layers: v1
                    .layers
                    .into_iter()
                    .map(|l| LayerRoute {
                        layer: l.layer,
                        experts: l.experts,
                        weights: l.weights,
                        router: None,
                    })
                    .collect(),
            })
        }
    }
}

/// C(n, k), or `None` when it does not fit in 64 bits.
fn binom(n: u64, k: u64) -> Option<u64> {
    if k > n {
        return Some(0);
    }
    let mut r: u128 = 1;
    for j in 0..k {
        r = r.checked_mul((n - j) as u128)? / (j as u128 + 1);
    }
    u64::try_from(r).ok()
}

/// Bits needed for numbers below `count`.
fn bits_below(count: u64) -> u32 {
    if count <= 1 {
        0
    } else {
        64 - (count - 1).leading_zeros()
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(b: &[u8], at: &mut usize) -> std::result::Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at).ok_or("truncated header")?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("overlong varint".into())
}

struct Bits {
    out: Vec<u8>,
    acc: u128,
    n: u32,
}

impl Bits {
    fn put(&mut self, v: u64, bits: u32) {
        if bits == 0 {
            return;
        }
        self.acc |= u128::from(v) << self.n;
        self.n += bits;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }
    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
    acc: u128,
    n: u32,
}

impl Reader<'_> {
    fn get(&mut self, bits: u32) -> std::result::Result<u64, String> {
        if bits == 0 {
            return Ok(0);
        }
        while self.n < bits {
            let byte = *self.b.get(self.at).ok_or("truncated routing data")?;
            self.acc |= u128::from(byte) << self.n;
            self.at += 1;
            self.n += 8;
        }
        let v = (self.acc & ((1u128 << bits) - 1)) as u64;
        self.acc >>= bits;
        self.n -= bits;
        Ok(v)
    }
}

fn compact(r: &Routing) -> Option<Vec<u8>> {
    let first = r.layers.first()?;
    let k = first.experts.len();
    let with_weights = first.weights.is_some();
    let n = r.layers.iter().flat_map(|l| l.experts.iter()).max().map_or(0, |&m| u64::from(m) + 1);
    let set_bits = bits_below(binom(n, k as u64)?);
    let contiguous = r.layers.windows(2).all(|w| w[1].layer == w[0].layer.wrapping_add(1));
    let increasing = r.layers.windows(2).all(|w| w[1].layer > w[0].layer);
    if !increasing {
        return None;
    }
    let mut signed = false;
    let (mut min_exp, mut max_exp) = (u16::MAX, 0u16);
    for l in &r.layers {
        if l.experts.len() != k || l.weights.is_some() != with_weights {
            return None;
        }
        if let Some(w) = &l.weights {
            if w.len() != k {
                return None;
            }
            for x in w {
                let b = f16::from_f32(*x).to_bits();
                signed |= b & 0x8000 != 0;
                min_exp = min_exp.min((b >> 10) & 0x1f);
                max_exp = max_exp.max((b >> 10) & 0x1f);
            }
        }
    }
    let router_len = match first.router.as_ref().map(Vec::len) {
        Some(len) if r.layers.iter().all(|l| l.router.as_ref().map(Vec::len) == Some(len)) => {
            Some(len)
        }
        None if r.layers.iter().all(|l| l.router.is_none()) => None,
        _ => return None,
    };
    let mut flags = 0;
    if router_len.is_some() {
        flags |= HAS_ROUTER;
    }
    if !contiguous {
        flags |= EXPLICIT_LAYERS;
    }
    if with_weights {
        flags |= HAS_WEIGHTS;
    }
    if signed {
        flags |= SIGNED_WEIGHTS;
    }
    let narrow = with_weights && !signed && max_exp.checked_sub(min_exp).is_some_and(|d| d <= 15);
    if narrow {
        flags |= NARROW_EXPONENTS;
    }
    let mut out = vec![ROUTING_VERSION, flags];
    put_varint(&mut out, n);
    put_varint(&mut out, k as u64);
    put_varint(&mut out, r.layers.len() as u64);
    put_varint(&mut out, u64::from(first.layer));
    if let Some(len) = router_len {
        put_varint(&mut out, len as u64);
    }
    if narrow {
        out.push(min_exp as u8);
    }
    if !contiguous {
        for w in r.layers.windows(2) {
            put_varint(&mut out, u64::from(w[1].layer - w[0].layer));
        }
    }
    let wbits = if signed { 16 } else { 15 };
    let mut bits = Bits { out, acc: 0, n: 0 };
    for l in &r.layers {
        let mut pairs: Vec<(u16, f32)> = l
            .experts
            .iter()
            .enumerate()
            .map(|(i, &e)| (e, l.weights.as_ref().map_or(0.0, |w| w[i])))
            .collect();
        pairs.sort_by_key(|p| p.0);
        if pairs.windows(2).any(|w| w[0].0 == w[1].0) {
            return None;
        }
        let index: u64 = pairs
            .iter()
            .enumerate()
            .map(|(i, p)| binom(u64::from(p.0), i as u64 + 1).unwrap_or(0))
            .sum();
        bits.put(index, set_bits);
        if with_weights {
            for p in &pairs {
                let b = f16::from_f32(p.1).to_bits();
                if narrow {
                    let exp = ((b >> 10) & 0x1f) - min_exp;
                    bits.put(u64::from((exp << 10) | (b & 0x3ff)), 14);
                } else {
                    bits.put(u64::from(b), wbits);
                }
            }
        }
    }
    for l in &r.layers {
        for &p in l.router.iter().flatten() {
            bits.put(u64::from(f16::from_f32(p).to_bits()), 16);
        }
    }
    Some(bits.finish())
}

fn decode_compact(b: &[u8]) -> std::result::Result<Routing, String> {
    let flags = *b.get(1).ok_or("truncated header")?;
    let mut at = 2;
    let n = get_varint(b, &mut at)?;
    let k = get_varint(b, &mut at)?;
    let count = get_varint(b, &mut at)? as usize;
    let first = get_varint(b, &mut at)?;
    if k > 64 || count > 1 << 16 || n > 1 << 16 || first >= 1 << 16 {
        return Err(format!("implausible header: {n} experts, {k} per layer, {count} layers"));
    }
    let router_len = if flags & HAS_ROUTER != 0 {
        let len = get_varint(b, &mut at)?;
        if len > 1 << 16 {
            return Err(format!("implausible router length {len}"));
        }
        Some(len as usize)
    } else {
        None
    };
    let min_exp = if flags & NARROW_EXPONENTS != 0 {
        let e = *b.get(at).ok_or("truncated header")?;
        at += 1;
        u16::from(e)
    } else {
        0
    };
    let mut layers = vec![first as u16];
    for i in 1..count {
        let step = if flags & EXPLICIT_LAYERS != 0 { get_varint(b, &mut at)? } else { 1 };
        let next = u64::from(layers[i - 1]) + step;
        layers.push(u16::try_from(next).map_err(|_| "layer index overflow")?);
    }
    let set_bits = bits_below(binom(n, k).ok_or("expert count too large")?);
    let narrow = flags & NARROW_EXPONENTS != 0;
    let wbits = if narrow {
        14
    } else if flags & SIGNED_WEIGHTS != 0 {
        16
    } else {
        15
    };
    let mut rd = Reader { b, at, acc: 0, n: 0 };
    let mut out = Vec::with_capacity(count);
    for layer in layers {
        let mut index = rd.get(set_bits)?;
        let mut ids = vec![0u16; k as usize];
        let mut hi = n;
        for i in (1..=k).rev() {
            // The largest c < hi with C(c, i) <= index.
            let (mut lo, mut top) = (i - 1, hi - 1);
            while lo < top {
                let mid = (lo + top).div_ceil(2);
                if binom(mid, i).ok_or("overflow")? <= index {
                    lo = mid;
                } else {
                    top = mid - 1;
                }
            }
            index -= binom(lo, i).ok_or("overflow")?;
            ids[(i - 1) as usize] = lo as u16;
            hi = lo;
        }
        if flags & HAS_WEIGHTS != 0 {
            let mut pairs = Vec::with_capacity(ids.len());
            for &e in &ids {
                let mut v = rd.get(wbits)? as u16;
                if narrow {
                    let exp = (v >> 10) + min_exp;
                    if exp > 0x1f {
                        return Err("weight exponent out of range".into());
                    }
                    v = (exp << 10) | (v & 0x3ff);
                }
                pairs.push((e, f16::from_bits(v).to_f32()));
            }
            out.push(LayerRoute::canonical(layer, &pairs));
        } else {
            out.push(LayerRoute { layer, experts: ids, weights: None, router: None });
        }
    }
    if let Some(len) = router_len {
        for l in &mut out {
            let mut probs = Vec::with_capacity(len);
            for _ in 0..len {
                probs.push(f16::from_bits(rd.get(16)? as u16).to_f32());
            }
            l.router = Some(probs);
        }
    }
    Ok(Routing { layers: out })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A DeepSeek-R1-shaped routing: layers 3..61, 8 of 256 experts, weights summing to 2.5.
    fn r1_step(rng: &mut rand_chacha::ChaCha8Rng) -> Routing {
        let layers = (3u16..61)
            .map(|layer| {
                let mut ids: Vec<u16> = Vec::new();
                while ids.len() < 8 {
                    let e = rng.random_range(0..256u16);
                    if !ids.contains(&e) {
                        ids.push(e);
                    }
                }
                let raw: Vec<f32> = (0..8).map(|_| rng.random_range(0.01f32..1.0)).collect();
                let s: f32 = raw.iter().sum();
                let pairs: Vec<(u16, f32)> =
                    ids.iter().zip(&raw).map(|(&e, w)| (e, w / s * 2.5)).collect();
                LayerRoute::canonical(layer, &pairs)
            })
            .collect();
        Routing { layers }
    }

    #[test]
    fn r1_shaped_routing_round_trips_and_16k_tokens_fit_in_20_mb() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut total = 0usize;
        for i in 0..16_384 {
            let r = r1_step(&mut rng);
            let bytes = encode_routing(&r).unwrap();
            assert_eq!(bytes[0], ROUTING_VERSION);
            total += bytes.len();
            if i % 1000 == 0 {
                assert_eq!(decode_routing(&bytes, "routing", String::new).unwrap(), r);
            }
        }
        eprintln!(
            "R1-shaped routing: {total} bytes for 16384 tokens, {} per token",
            total / 16_384
        );
        // 16k tokens under 20 MB (decimal, so also under 20 MiB).
        assert!(total < 20_000_000, "{total} bytes");
        assert!(total / 16_384 < 1200, "{} bytes per token", total / 16_384);
    }

    #[test]
    fn version_1_values_written_before_router_distributions_still_decode() {
        // Version 1, postcard: one layer, layer 2, experts [9, 1000], no weights.
        let old = [1u8, 1, 2, 2, 9, 0xe8, 0x07, 0];
        let r = decode_routing(&old, "routing", String::new).unwrap();
        let want = LayerRoute { layer: 2, experts: vec![9, 1000], weights: None, router: None };
        assert_eq!(r, Routing { layers: vec![want] });
        let again = encode_routing(&r).unwrap();
        assert_eq!(decode_routing(&again, "routing", String::new).unwrap(), r);
    }

    #[test]
    fn full_router_distributions_round_trip_compactly() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut r = r1_step(&mut rng);
        for l in &mut r.layers {
            let raw: Vec<f32> = (0..256).map(|_| rng.random_range(0.0f32..1.0)).collect();
            let s: f32 = raw.iter().sum();
            let probs: Vec<f32> = raw.iter().map(|x| x / s).collect();
            *l = l.clone().with_router(&probs);
        }
        let bytes = encode_routing(&r).unwrap();
        assert_eq!(bytes[0], ROUTING_VERSION, "stays in the compact format");
        assert_eq!(decode_routing(&bytes, "routing", String::new).unwrap(), r);
        // 58 layers x 256 f16 values on top of the selection.
        assert!(bytes.len() < 1200 + 58 * 256 * 2, "{} bytes", bytes.len());
        // A routing where only some layers carry a distribution is kept losslessly too.
        r.layers[3].router = None;
        let bytes = encode_routing(&r).unwrap();
        assert_eq!(decode_routing(&bytes, "routing", String::new).unwrap(), r);
        // A truncated distribution is an error, not a panic.
        let mut full = r1_step(&mut rng);
        full.layers.iter_mut().for_each(|l| *l = l.clone().with_router(&[0.5; 256]));
        let bytes = encode_routing(&full).unwrap();
        assert!(decode_routing(&bytes[..bytes.len() - 3], "routing", String::new).is_err());
    }

    #[test]
    fn irregular_routing_falls_back_losslessly() {
        let cases = vec![
            // Uneven k, non-f16 weights, non-canonical order, ids only, gaps in layers.
            Routing {
                layers: vec![
                    LayerRoute {
                        layer: 0,
                        experts: vec![3, 1],
                        weights: Some(vec![0.1, 0.9]),
                        router: None,
                    },
                    LayerRoute {
                        layer: 1,
                        experts: vec![2],
                        weights: Some(vec![1.0]),
                        router: None,
                    },
                ],
            },
            Routing {
                layers: vec![LayerRoute {
                    layer: 4,
                    experts: vec![1, 7],
                    weights: Some(vec![0.123_456_7, 0.1]),
                    router: None,
                }],
            },
            Routing {
                layers: vec![
                    LayerRoute { layer: 2, experts: vec![9, 1000], weights: None, router: None },
                    LayerRoute { layer: 9, experts: vec![0, 5], weights: None, router: None },
                ],
            },
            // Weights present but no experts (nothing to take exponents from).
            Routing {
                layers: vec![LayerRoute {
                    layer: 0,
                    experts: vec![],
                    weights: Some(vec![]),
                    router: None,
                }],
            },
            // Exponents spanning more than 16 binades (15-bit weights).
            Routing {
                layers: vec![
                    LayerRoute::canonical(0, &[(1, 60_000.0), (2, 1e-7)]),
                    LayerRoute::canonical(1, &[(1, 0.5), (2, 0.25)]),
                ],
            },
            Routing {
                layers: vec![
                    LayerRoute::canonical(1, &[(5, -0.5), (6, 0.25)]),
                    LayerRoute::canonical(30, &[(0, 0.5), (65_535, 0.25)]),
                ],
            },
            Routing::default(),
        ];
        for r in cases {
            let bytes = encode_routing(&r).unwrap();
            assert_eq!(decode_routing(&bytes, "routing", String::new).unwrap(), r, "{r:?}");
        }
    }

    #[test]
    fn binomials_and_bit_widths() {
        assert_eq!(binom(256, 8), Some(409_663_695_276_000));
        assert_eq!(bits_below(binom(256, 8).unwrap()), 49);
        assert_eq!(binom(3, 5), Some(0));
        assert_eq!(bits_below(1), 0);
        assert_eq!(binom(65_536, 64), None);
    }
}
