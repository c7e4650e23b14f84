use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::quant::{arrays, Q8KRows, Q8KTiles, Q8Rows, Q8Tiles, BLOCK, SUPER};
use super::{q4_1, q4_k, q5_0, q6_k, q8_0, Matrix};

fn random(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| (rng.random::<f32>() * 2.0 - 1.0) * scale).collect()
}

fn quantized(w: &[f32], rows: usize, cols: usize, dtype: GgmlDType) -> QTensor {
    let t = Tensor::from_vec(w.to_vec(), (rows, cols), &Device::Cpu).unwrap();
    QTensor::quantize(&t, dtype).unwrap()
}

/// Every type the kernels take.
const TYPES: [GgmlDType; 5] =
    [GgmlDType::Q4_1, GgmlDType::Q5_0, GgmlDType::Q8_0, GgmlDType::Q4K, GgmlDType::Q6K];

/// One weight row's blocks dequantized by this module (`dequantize_block` of its type).
fn dequantized(dtype: GgmlDType, data: &[u8]) -> Vec<f32> {
    match dtype {
        GgmlDType::Q4_1 => arrays(data).flat_map(q4_1::dequantize_block).collect(),
        GgmlDType::Q5_0 => arrays(data).flat_map(q5_0::dequantize_block).collect(),
        GgmlDType::Q8_0 => arrays(data).flat_map(q8_0::dequantize_block).collect(),
        GgmlDType::Q4K => arrays(data).flat_map(q4_k::dequantize_block).collect(),
        GgmlDType::Q6K => arrays(data).flat_map(q6_k::dequantize_block).collect(),
        other => panic!("no kernel for {other:?}"),
    }
}

/// A row's activations quantized for one type's kernels.
enum Acts {
    Blocks(Q8Rows),
    Super(Q8KRows),
}

impl Acts {
    fn of(dtype: GgmlDType, x: &[f32], k: usize) -> Acts {
        if matches!(dtype, GgmlDType::Q4K | GgmlDType::Q6K) {
            let mut xk = Q8KRows::default();
            xk.quantize(x, k);
            Acts::Super(xk)
        } else {
            let mut xq = Q8Rows::default();
            xq.quantize(x, k);
            Acts::Blocks(xq)
        }
    }

    /// Activation value `j` of row 0 as the kernels see it (scale times quantized value).
    fn value(&self, j: usize) -> f64 {
        match self {
            Acts::Blocks(xq) => f64::from(xq.d[j / BLOCK]) * f64::from(xq.q[j / BLOCK][j % BLOCK]),
            Acts::Super(xk) => f64::from(xk.d[j / SUPER]) * f64::from(xk.q[j / SUPER][j % SUPER]),
        }
    }

    /// The kernel's dot product of weight row `data` with row 0: the one the CPU runs, or
    /// the portable one.
    fn dot(&self, dtype: GgmlDType, data: &[u8], portable: bool) -> f32 {
        match (self, dtype) {
            (Acts::Blocks(xq), _) => {
                let (q, d, s) = xq.row(0);
                match (dtype, portable) {
                    (GgmlDType::Q4_1, false) => q4_1::dot(data, q, d, s),
                    (GgmlDType::Q4_1, true) => q4_1::dot_portable(data, q, d, s),
                    (GgmlDType::Q5_0, false) => q5_0::dot(data, q, d, xq.sums(0)),
                    (GgmlDType::Q5_0, true) => q5_0::dot_portable(data, q, d),
                    (_, false) => q8_0::dot(data, q, d),
                    (_, true) => q8_0::dot_portable(data, q, d),
                }
            }
            (Acts::Super(xk), GgmlDType::Q4K) if portable => q4_k::dot_portable(data, xk, 0),
            (Acts::Super(xk), GgmlDType::Q4K) => q4_k::dot(data, xk, 0),
            (Acts::Super(xk), _) if portable => q6_k::dot_portable(data, xk, 0),
            (Acts::Super(xk), _) => q6_k::dot(data, xk, 0),
        }
    }
}

/// Each type's `dequantize_block` is candle's dequantization bit for bit, and the kernels
/// equal a plain f64 dot of candle's dequantized weights with the quantized activations (up
/// to float rounding), and the unquantized dot within the activations' quantization error.
#[test]
fn kernels_match_candles_dequantized_weights_on_random_blocks() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for dtype in TYPES {
        for &k in &[256usize, 512, 1536] {
            let mut w = random(&mut rng, k, 0.3);
            // An outlier weight, so block scales differ.
            w[k / 5] = 1.7;
            // Activations with an outlier, as real hidden states have.
            let mut x = random(&mut rng, k, 2.0);
            x[k / 3] = 40.0;
            let q = quantized(&w, 1, k, dtype);
            let data = q.data().unwrap().to_vec();
            let theirs = q.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap();
            let theirs = theirs.to_vec1::<f32>().unwrap();
            let wd = dequantized(dtype, &data);
            assert_eq!(wd.len(), k);
            for (j, (a, b)) in wd.iter().zip(&theirs).enumerate() {
                assert_eq!(a.to_bits(), b.to_bits(), "{dtype:?} k={k} weight {j}: {a} vs {b}");
            }
            let acts = Acts::of(dtype, &x, k);
            let got = acts.dot(dtype, &data, false);
            let mut exact = 0f64;
            let mut magnitude = 0f64;
            for (j, &wj) in theirs.iter().enumerate() {
                exact += f64::from(wj) * acts.value(j);
                magnitude += (f64::from(wj) * acts.value(j)).abs();
            }
            if let Acts::Blocks(xq) = &acts {
                if dtype == GgmlDType::Q4_1 {
                    // ggml's Q4_1 kernel takes the block minimum times the stored, f16-rounded
                    // block sum `s`, not the sum of the values.
                    for b in 0..k / BLOCK {
                        let sum_q: f64 = xq.q[b].iter().map(|&v| f64::from(v)).sum();
                        let m = f64::from(half::f16::from_le_bytes([
                            data[b * 20 + 2],
                            data[b * 20 + 3],
                        ]));
                        exact += m * (f64::from(xq.s[b]) - f64::from(xq.d[b]) * sum_q);
                    }
                }
            }
            let err = (f64::from(got) - exact).abs();
            assert!(err <= 1e-5 * magnitude + 1e-6, "{dtype:?} k={k}: {got} vs {exact}");
            // Against the unquantized activations: within the activations' rounding.
            let float: f64 =
                theirs.iter().zip(&x).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum();
            let step: f64 = (0..k)
                .map(|j| f64::from(theirs[j].abs()) * (x[j] - acts.value(j) as f32).abs() as f64)
                .sum();
            assert!(
                (f64::from(got) - float).abs() <= step + 2e-3 * magnitude + 1e-4,
                "{dtype:?} k={k}: {got} vs {float}"
            );
            // And a wrong activation row must not pass.
            let other = Acts::of(dtype, &random(&mut rng, k, 2.0), k);
            let wrong = other.dot(dtype, &data, false);
            assert!((f64::from(wrong) - exact).abs() > 1e-5 * magnitude, "{dtype:?} k={k}");
        }
    }
}

/// Activations are quantized to blocks of 32 as ggml's x86 `quantize_row_q8_1` does (what
/// llama.cpp runs on these CPUs): values times 127 / amax, halves rounded to even, `d` and
/// `s = d * sum` (with `d` unrounded) stored as f16. Candle's rounds halves away from zero and
/// forms `s` from f16 operands; against llama.cpp that last bit shows (the reference test).
#[test]
fn activations_quantize_as_ggml_on_x86() {
    // amax 127: the multiplier is exactly 1, so 2.5 and -0.5 are ties.
    let mut x = [0f32; BLOCK];
    x[0] = 127.0;
    x[1] = 2.5;
    x[2] = -0.5;
    x[3] = 3.5;
    x[4] = 1000.0 / 127.0; // 7.874...: rounds to 8
    let mut xq = Q8Rows::default();
    xq.quantize(&x, BLOCK);
    let (q, d, s) = xq.row(0);
    assert_eq!(&q[0][..6], &[127, 2, 0, 4, 8, 0]);
    assert_eq!(d[0], 1.0);
    let sum = 127 + 2 + 4 + 8;
    assert_eq!(s[0], half::f16::from_f32(sum as f32).to_f32());
    // `s` from the unrounded `d`: amax 100 gives d = 100/127, not representable in f16.
    let x: Vec<f32> =
        (0..BLOCK).map(|k| if k == 0 { 100.0 } else { 1.0 + 4.0 * 0.37 * k as f32 }).collect();
    xq.quantize(&x, BLOCK);
    let (q, d, s) = xq.row(0);
    let scale = 100f32 / 127.0;
    let sum: i32 = q[0].iter().map(|&v| i32::from(v)).sum();
    assert_eq!(d[0], half::f16::from_f32(scale).to_f32());
    assert_eq!(s[0], half::f16::from_f32(scale * sum as f32).to_f32());
    assert_ne!(s[0], (half::f16::from_f32(sum as f32) * half::f16::from_f32(scale)).to_f32());
}

/// `Matrix` against candle's `QMatMul` for one row and a batch. The activations are quantized
/// as ggml's x86 code does, candle's in the last bit otherwise (the test above), so the two
/// agree to the activations' quantization step, not bit for bit; a wrong row, block or offset
/// is off by the size of the values.
#[test]
fn matrix_matches_candle_for_decode_and_prefill() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for dtype in TYPES {
        let k_quant = matches!(dtype, GgmlDType::Q4K | GgmlDType::Q6K);
        let (n, k) = (203, if k_quant { 512 } else { 576 });
        let w = random(&mut rng, n * k, 0.2);
        let q = std::sync::Arc::new(quantized(&w, n, k, dtype));
        let ours = Matrix::new(QMatMul::from_arc(q.clone()).unwrap(), true);
        assert!(ours.uses_kernel());
        let theirs = QMatMul::from_arc(q).unwrap();
        for m in [1usize, 7] {
            let x =
                Tensor::from_vec(random(&mut rng, m * k, 1.5), (1, m, k), &Device::Cpu).unwrap();
            let a = ours.forward(&x).unwrap();
            let b = theirs.forward(&x).unwrap();
            assert_eq!(a.dims(), b.dims());
            let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let scale = b.iter().fold(0f32, |s, v| s.max(v.abs()));
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                assert!((x - y).abs() <= 1e-2 * scale, "{dtype:?} m={m} [{i}]: {x} vs {y}");
            }
        }
    }
}

/// Several matrices on one input (one pass over the pool) give what each gives alone, also
/// when one of them has a type the kernels leave to candle, and when k-quants (`Q8_K`
/// activations) and blocks of 32 (`Q8_0` activations) share the call, as a `Q4_K_M` file's
/// q/k/v do.
#[test]
fn forward_many_matches_single_forwards() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let k = 256;
    let make = |rng: &mut ChaCha8Rng, n: usize, dtype: GgmlDType| {
        let w = random(rng, n * k, 0.2);
        Matrix::new(QMatMul::from_qtensor(quantized(&w, n, k, dtype)).unwrap(), true)
    };
    let a = make(&mut rng, 40, GgmlDType::Q4_1);
    let b = make(&mut rng, 17, GgmlDType::Q8_0);
    let c = make(&mut rng, 9, GgmlDType::Q4_0);
    assert!(!c.uses_kernel());
    let d = make(&mut rng, 24, GgmlDType::Q4K);
    let e = make(&mut rng, 19, GgmlDType::Q5_0);
    let f = make(&mut rng, 8, GgmlDType::Q6K);
    for m in [1usize, 3] {
        let x = Tensor::from_vec(random(&mut rng, m * k, 1.0), (1, m, k), &Device::Cpu).unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let [ya, yb] = Matrix::forward_many([&a, &b], &x).unwrap();
        assert_eq!(ya.dims(), &[1, m, 40]);
        assert_eq!(flat(&ya), flat(&a.forward(&x).unwrap()));
        assert_eq!(flat(&yb), flat(&b.forward(&x).unwrap()));
        let [ya2, yc] = Matrix::forward_many([&a, &c], &x).unwrap();
        assert_eq!(flat(&ya2), flat(&ya));
        assert_eq!(flat(&yc), flat(&c.forward(&x).unwrap()));
        let [yd, ye, yf] = Matrix::forward_many([&d, &e, &f], &x).unwrap();
        assert_eq!(flat(&yd), flat(&d.forward(&x).unwrap()));
        assert_eq!(flat(&ye), flat(&e.forward(&x).unwrap()));
        assert_eq!(flat(&yf), flat(&f.forward(&x).unwrap()));
    }
}

/// The dot products the CPU runs (AVX2 where there is AVX2) and the portable ones agree up to
/// float rounding, so the portable path (other CPUs) stays checked on this one too.
#[test]
fn simd_and_portable_dots_agree() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for dtype in TYPES {
        let k_quant = matches!(dtype, GgmlDType::Q4K | GgmlDType::Q6K);
        let widths: &[usize] = if k_quant { &[256, 768, 1536] } else { &[32, 96, 576, 1536] };
        for &k in widths {
            let w = random(&mut rng, k, 0.3);
            let x = random(&mut rng, k, 2.0);
            let mut data = quantized(&w, 1, k, dtype).data().unwrap().to_vec();
            match dtype {
                // -128, which ggml's quantizer never writes but a file may hold: its magnitude
                // only fits the kernels' unsigned bytes.
                GgmlDType::Q8_0 => data[2] = 0x80,
                // The largest six-bit scales and value bits, and a scale of -128 (Q6_K).
                GgmlDType::Q4K => data[4..16].fill(0xFF),
                GgmlDType::Q6K => {
                    data[128..192].fill(0xFF);
                    data[192] = 0x80;
                }
                _ => {}
            }
            let acts = Acts::of(dtype, &x, k);
            let (fast, portable) = (acts.dot(dtype, &data, false), acts.dot(dtype, &data, true));
            let wd = dequantized(dtype, &data);
            let magnitude: f64 = (0..k).map(|j| (f64::from(wd[j]) * acts.value(j)).abs()).sum();
            assert!(
                f64::from((fast - portable).abs()) <= 1e-5 * magnitude.max(1.0),
                "{dtype:?} k={k}: {fast} vs {portable}"
            );
        }
    }
}

/// The multi-row kernels (a batched decode: one weight row against N activation rows) give,
/// for every row, exactly the single-row kernel's value (bit for bit, so a sequence decoded
/// in a batch sees the logits it sees alone), for every batch size up to past two tiles of
/// eight; and `Matrix` over N rows equals N one-row calls.
#[test]
fn multi_row_kernels_equal_the_single_row_kernel_bit_for_bit() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    for dtype in TYPES {
        let k = 768;
        let w = random(&mut rng, k, 0.3);
        let data = quantized(&w, 1, k, dtype).data().unwrap().to_vec();
        for m in 1..=17usize {
            let mut x = random(&mut rng, m * k, 2.0);
            x[m * k / 2] = 30.0;
            let mut xq = Q8Rows::default();
            xq.quantize(&x, k);
            let mut tiles = Q8Tiles::default();
            tiles.regroup(&xq);
            let mut xk = Q8KRows::default();
            xk.quantize(&x, k);
            let mut ktiles = Q8KTiles::default();
            ktiles.regroup(&xk);
            let mut got = vec![f32::NAN; m];
            match dtype {
                GgmlDType::Q4_1 => q4_1::dot_rows(&data, &xq, &tiles, 0, &mut got),
                GgmlDType::Q5_0 => q5_0::dot_rows(&data, &xq, &tiles, 0, &mut got),
                GgmlDType::Q8_0 => q8_0::dot_rows(&data, &xq, &tiles, 0, &mut got),
                GgmlDType::Q4K => q4_k::dot_rows(&data, &xk, &ktiles, 0, &mut got),
                _ => q6_k::dot_rows(&data, &xk, &ktiles, 0, &mut got),
            }
            // Tile by tile from a later first row, as `matvec` calls them: the same values.
            let mut by_tile = vec![f32::NAN; m];
            for (t, out) in by_tile.chunks_mut(8).enumerate() {
                match dtype {
                    GgmlDType::Q4_1 => q4_1::dot_rows(&data, &xq, &tiles, 8 * t, out),
                    GgmlDType::Q5_0 => q5_0::dot_rows(&data, &xq, &tiles, 8 * t, out),
                    GgmlDType::Q8_0 => q8_0::dot_rows(&data, &xq, &tiles, 8 * t, out),
                    GgmlDType::Q4K => q4_k::dot_rows(&data, &xk, &ktiles, 8 * t, out),
                    _ => q6_k::dot_rows(&data, &xk, &ktiles, 8 * t, out),
                }
            }
            assert_eq!(
                by_tile.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{dtype:?} m={m}"
            );
            for (r, &g) in got.iter().enumerate() {
                let (q, d, s) = xq.row(r);
                let want = match dtype {
                    GgmlDType::Q4_1 => q4_1::dot(&data, q, d, s),
                    GgmlDType::Q5_0 => q5_0::dot(&data, q, d, xq.sums(r)),
                    GgmlDType::Q8_0 => q8_0::dot(&data, q, d),
                    GgmlDType::Q4K => q4_k::dot(&data, &xk, r),
                    _ => q6_k::dot(&data, &xk, r),
                };
                assert_eq!(g.to_bits(), want.to_bits(), "{dtype:?} m={m} row {r}: {g} vs {want}");
            }
        }
        let n = 37;
        let wm = random(&mut rng, n * k, 0.2);
        let matrix = Matrix::new(QMatMul::from_qtensor(quantized(&wm, n, k, dtype)).unwrap(), true);
        let m = 8;
        let xs = random(&mut rng, m * k, 1.5);
        let all = matrix
            .forward(&Tensor::from_vec(xs.clone(), (1, m, k), &Device::Cpu).unwrap())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for r in 0..m {
            let one =
                Tensor::from_vec(xs[r * k..(r + 1) * k].to_vec(), (1, 1, k), &Device::Cpu).unwrap();
            let y = matrix.forward(&one).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(&all[r * n..(r + 1) * n], &y[..], "{dtype:?} row {r}");
        }
    }
}

/// `lane_sums` adds each accumulator's lanes in ggml's order, the same bits whether four are
/// transposed together or one is summed alone (what keeps `dot_rows` equal to `dot`).
#[cfg(target_arch = "x86_64")]
#[test]
fn lane_sums_transposed_equal_one_by_one() {
    let Some(simd) = pulp::x86::V3::try_new() else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    for _ in 0..100 {
        let lanes: Vec<[f32; 8]> = (0..8)
            .map(|_| {
                let v = random(&mut rng, 8, 1e4);
                std::array::from_fn(|i| v[i] * if i % 3 == 0 { 1e-4 } else { 1.0 })
            })
            .collect();
        let acc: [std::arch::x86_64::__m256; 8] = std::array::from_fn(|r| pulp::cast(lanes[r]));
        let want: Vec<u32> = lanes.iter().map(|&l| super::lane_sum(l).to_bits()).collect();
        let all = simd.vectorize(|| super::lane_sums(simd, acc));
        assert_eq!(all.map(f32::to_bits).to_vec(), want);
        let two = simd.vectorize(|| super::lane_sums(simd, [acc[0], acc[1]]));
        assert_eq!(two[..2].iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want[..2]);
    }
}

/// Past `BATCH_ROWS` rows the default policy leaves a `Q8_0`, `Q4_K` or `Q6_K` matrix to
/// candle only where candle tiles it: a `Q8_0` matrix of 576 columns (the demo model's
/// `attn_v`), or one whose rows do not fill candle's tiles of 16, stays on this module's
/// kernels at every size; `Q4_1`/`Q5_0` always do.
#[test]
fn prefills_leave_to_candle_only_the_matrices_it_tiles() {
    use super::{Kind, Policy, BATCH_ROWS};
    let m = |dtype, n, k| {
        let q = quantized(&vec![0.5; n * k], n, k, dtype);
        Matrix::with(QMatMul::from_arc(std::sync::Arc::new(q)).unwrap(), Policy::Default)
    };
    let many = BATCH_ROWS + 1;
    for (dtype, n, k) in [
        (GgmlDType::Q8_0, 192, 576),
        (GgmlDType::Q8_0, 200, 512),
        (GgmlDType::Q4K, 200, 512),
        (GgmlDType::Q5_0, 192, 576),
        (GgmlDType::Q4_1, 192, 512),
    ] {
        let w = m(dtype, n, k);
        assert!(w.kernel_for(1) && w.kernel_for(BATCH_ROWS), "{dtype:?} {n}x{k}");
        assert!(w.kernel_for(many), "{dtype:?} {n}x{k} past {BATCH_ROWS} rows");
    }
    // A k-quant matrix in whole tiles goes to candle's tiled matmul where candle has one
    // (x86 with AVX2 and FMA).
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        let w = m(GgmlDType::Q6K, 192, 512);
        assert!(w.kernel_for(BATCH_ROWS) && !w.kernel_for(many));
        assert!(super::candle_tiles(Kind::Q4K, 192, 512));
    }
}
