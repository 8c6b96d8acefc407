use candle_core::{Device, Tensor};
use rten_gemm::{GemmExecutor, GemmInputA, GemmInputB, GemmOptions};
use rten_tensor::NdTensorView;
use std::time::Instant;

fn main() {
    let t = 8192usize;
    for (k, n) in [(384usize, 1152usize), (384, 384), (384, 1536), (1536, 384)] {
        let a: Vec<f32> = (0..t * k)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 104729) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let flops = 2.0 * (t * k * n) as f64;
        let at = Tensor::from_vec(a.clone(), (t, k), &Device::Cpu).unwrap();
        let bt = Tensor::from_vec(b.clone(), (n, k), &Device::Cpu).unwrap(); // weight (out,in)
        let mut best_c = f64::MAX;
        for _ in 0..5 {
            let s = Instant::now();
            let y = at.matmul(&bt.t().unwrap()).unwrap();
            std::hint::black_box(&y);
            best_c = best_c.min(s.elapsed().as_secs_f64());
        }
        let g = GemmExecutor::<f32, f32, f32>::default();
        let bv = NdTensorView::from_data([k, n], &b[..]);
        let packed = g.prepack_b(bv);
        let av = NdTensorView::from_data([t, k], &a[..]);
        let mut best_r = f64::MAX;
        let mut best_rp = f64::MAX;
        for _ in 0..5 {
            let s = Instant::now();
            let mut y = vec![0f32; t * n];
            g.gemm(
                &mut y,
                GemmInputA::Unpacked(av),
                GemmInputB::Unpacked(bv),
                GemmOptions::default(),
            )
            .unwrap();
            std::hint::black_box(&y);
            best_r = best_r.min(s.elapsed().as_secs_f64());
            let s = Instant::now();
            let mut y = vec![0f32; t * n];
            g.gemm(
                &mut y,
                GemmInputA::Unpacked(av),
                GemmInputB::Packed(&packed),
                GemmOptions::default(),
            )
            .unwrap();
            std::hint::black_box(&y);
            best_rp = best_rp.min(s.elapsed().as_secs_f64());
        }
        let gi = GemmExecutor::<u8, i8, i32>::default();
        let ai: Vec<u8> = (0..t * k).map(|i| ((i * 7919) % 251) as u8).collect();
        let bi: Vec<i8> = (0..k * n)
            .map(|i| (((i * 104729) % 127) as i32 - 63) as i8)
            .collect();
        let pi = gi.prepack_b(NdTensorView::from_data([k, n], &bi[..]));
        let mut best_i = f64::MAX;
        for _ in 0..5 {
            let s = Instant::now();
            let mut y = vec![0i32; t * n];
            gi.gemm(
                &mut y,
                GemmInputA::Unpacked(NdTensorView::from_data([t, k], &ai[..])),
                GemmInputB::Packed(&pi),
                GemmOptions::default(),
            )
            .unwrap();
            std::hint::black_box(&y);
            best_i = best_i.min(s.elapsed().as_secs_f64());
        }
        println!(
            "  int8 {:.1} GOP/s ({})",
            flops / best_i / 1e9,
            gi.kernel_name()
        );
        println!(
            "{t}x{k}x{n}: candle {:.1} GFLOP/s, rten {:.1}, rten packed {:.1} ({})",
            flops / best_c / 1e9,
            flops / best_r / 1e9,
            flops / best_rp / 1e9,
            g.kernel_name()
        );
    }
}
