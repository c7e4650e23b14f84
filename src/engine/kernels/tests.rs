use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::quant::{arrays, Q8Rows, Q8Tiles, BLOCK};
use super::{q4_1, q8_0, Matrix};

fn random(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| (rng.random::<f32>() * 2.0 - 1.0) * scale).collect()
}

fn quantized(w: &[f32], rows: usize, cols: usize, dtype: GgmlDType) -> QTensor {
    let t = Tensor::from_vec(w.to_vec(), (rows, cols), &Device::Cpu).unwrap();
    QTensor::quantize(&t, dtype).unwrap()
}

/// The kernels against a plain f64 dot of the dequantized blocks: exact up to float rounding
/// against the quantized activations, and within the quantization error against the floats.
#[test]
fn kernels_match_a_dequantized_dot_on_random_blocks() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for dtype in [GgmlDType::Q4_1, GgmlDType::Q8_0] {
        for &k in &[32usize, 64, 576, 1536] {
            let w = random(&mut rng, k, 0.3);
            // Activations with an outlier, as real hidden states have.
            let mut x = random(&mut rng, k, 2.0);
            x[k / 3] = 40.0;
            let data = quantized(&w, 1, k, dtype).data().unwrap().to_vec();
            let mut xq = Q8Rows::default();
            xq.quantize(&x, k);
            let (q, d, s) = xq.row(0);
            let (got, wd): (f32, Vec<f32>) = match dtype {
                GgmlDType::Q4_1 => (
                    q4_1::dot(&data, q, d, s),
                    arrays(&data).flat_map(q4_1::dequantize_block).collect(),
                ),
                _ => (
                    q8_0::dot(&data, q, d),
                    arrays(&data).flat_map(q8_0::dequantize_block).collect(),
                ),
            };
            // Exact reference on the quantized activations (Q4_1: the block minimum times the
            // stored block sum `s`, as ggml computes it).
            let mut exact = 0f64;
            let mut magnitude = 0f64;
            let mut bound = 0f64;
            for b in 0..k / BLOCK {
                let ws = &wd[b * BLOCK..(b + 1) * BLOCK];
                let sum_q: f64 = q[b].iter().map(|&v| f64::from(v)).sum();
                for j in 0..BLOCK {
                    let xv = f64::from(d[b]) * f64::from(q[b][j]);
                    exact += f64::from(ws[j]) * xv;
                    magnitude += (f64::from(ws[j]) * xv).abs();
                    bound += f64::from(ws[j]).abs() * f64::from(d[b]) * 0.5;
                }
                if dtype == GgmlDType::Q4_1 {
                    let m =
                        f64::from(half::f16::from_le_bytes([data[b * 20 + 2], data[b * 20 + 3]]));
                    exact += m * (f64::from(s[b]) - f64::from(d[b]) * sum_q);
                }
            }
            let err = (f64::from(got) - exact).abs();
            assert!(err <= 1e-5 * magnitude + 1e-6, "{dtype:?} k={k}: {got} vs {exact}");
            // Against the unquantized activations: within half a step per value.
            let float: f64 = wd.iter().zip(&x).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum();
            let slack = bound + 2e-3 * magnitude + 1e-4;
            assert!((f64::from(got) - float).abs() <= slack, "{dtype:?} k={k}: {got} vs {float}");
            // And a wrong activation row must not pass.
            let mut other = Q8Rows::default();
            other.quantize(&random(&mut rng, k, 2.0), k);
            let (q2, d2, s2) = other.row(0);
            let wrong = match dtype {
                GgmlDType::Q4_1 => q4_1::dot(&data, q2, d2, s2),
                _ => q8_0::dot(&data, q2, d2),
            };
            assert!((f64::from(wrong) - exact).abs() > 1e-5 * magnitude);
        }
    }
}

/// `Matrix` against candle's `QMatMul` (the same quantization scheme) for one row and a batch.
#[test]
fn matrix_matches_candle_for_decode_and_prefill() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for dtype in [GgmlDType::Q4_1, GgmlDType::Q8_0] {
        let (n, k) = (203, 576);
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
                assert!((x - y).abs() <= 1e-4 * scale, "{dtype:?} m={m} [{i}]: {x} vs {y}");
            }
        }
    }
}

/// Several matrices on one input (one pass over the pool) give what each gives alone, also
/// when one of them has a type the kernels leave to candle.
#[test]
fn forward_many_matches_single_forwards() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let k = 64;
    let make = |rng: &mut ChaCha8Rng, n: usize, dtype: GgmlDType| {
        let w = random(rng, n * k, 0.2);
        Matrix::new(QMatMul::from_qtensor(quantized(&w, n, k, dtype)).unwrap(), true)
    };
    let a = make(&mut rng, 40, GgmlDType::Q4_1);
    let b = make(&mut rng, 17, GgmlDType::Q8_0);
    let c = make(&mut rng, 9, GgmlDType::Q4_0);
    assert!(!c.uses_kernel());
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
    }
}

/// The dot products the CPU runs (AVX2 where there is AVX2) and the portable ones agree up to
/// float rounding, so the portable path (other CPUs) stays checked on this one too.
#[test]
fn simd_and_portable_dots_agree() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for dtype in [GgmlDType::Q4_1, GgmlDType::Q8_0] {
        for &k in &[32usize, 96, 576, 1536] {
            let w = random(&mut rng, k, 0.3);
            let x = random(&mut rng, k, 2.0);
            let mut data = quantized(&w, 1, k, dtype).data().unwrap().to_vec();
            if dtype == GgmlDType::Q8_0 {
                // -128, which ggml's quantizer never writes but a file may hold: its magnitude
                // only fits the kernels' unsigned bytes.
                data[2] = 0x80;
            }
            let mut xq = Q8Rows::default();
            xq.quantize(&x, k);
            let (q, d, s) = xq.row(0);
            let (fast, portable) = match dtype {
                GgmlDType::Q4_1 => (q4_1::dot(&data, q, d, s), q4_1::dot_portable(&data, q, d, s)),
                _ => (q8_0::dot(&data, q, d), q8_0::dot_portable(&data, q, d)),
            };
            let magnitude: f32 = w.iter().zip(&x).map(|(a, b)| (a * b).abs()).sum();
            assert!(
                (fast - portable).abs() <= 1e-5 * magnitude.max(1.0),
                "{dtype:?} k={k}: {fast} vs {portable}"
            );
        }
    }
}

/// The multi-row kernels (a batched decode: one weight row against N activation rows) give,
/// for every row, exactly the single-row kernel's value (bit for bit, so a sequence decoded
/// in a batch sees the logits it sees alone), for every batch size up to past one group of
/// four; and `Matrix` over N rows equals N one-row calls.
#[test]
fn multi_row_kernels_equal_the_single_row_kernel_bit_for_bit() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    for dtype in [GgmlDType::Q4_1, GgmlDType::Q8_0] {
        let k = 576;
        let w = random(&mut rng, k, 0.3);
        let data = quantized(&w, 1, k, dtype).data().unwrap().to_vec();
        for m in 1..=17usize {
            let mut x = random(&mut rng, m * k, 2.0);
            x[m * k / 2] = 30.0;
            let mut xq = Q8Rows::default();
            xq.quantize(&x, k);
            let mut tiles = Q8Tiles::default();
            tiles.regroup(&xq);
            let mut got = vec![f32::NAN; m];
            match dtype {
                GgmlDType::Q4_1 => q4_1::dot_rows(&data, &xq, &tiles, &mut got),
                _ => q8_0::dot_rows(&data, &xq, &tiles, &mut got),
            }
            for (r, &g) in got.iter().enumerate() {
                let (q, d, s) = xq.row(r);
                let want = match dtype {
                    GgmlDType::Q4_1 => q4_1::dot(&data, q, d, s),
                    _ => q8_0::dot(&data, q, d),
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
