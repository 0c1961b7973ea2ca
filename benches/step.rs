//! Criterion benchmarks of one training step (forward, error terms, updates, weights resident)
//! on the CPU backend and on the GPU backend, at sizes small enough for lavapipe.
//! `cargo bench --bench step`; `backprop bench` times the large sizes.

use std::hint::black_box;

use backprop::bench::{parse_sizes, problem};
use backprop::gpu::context::GpuContext;
use backprop::gpu::{GpuBackend, GpuDevice, GpuOptions};
use backprop::{Backend, CpuBackend};
use criterion::{criterion_group, criterion_main, Criterion};

/// Records x inputs x hidden x outputs: a tile-sized step and a step with awkward sizes.
const SIZES: &str = "64x64x64x8,100x31x67x3";

fn cpu_step(c: &mut Criterion) {
    for size in parse_sizes(SIZES).expect("valid sizes") {
        let (network, x, target) = problem(&size).expect("a problem");
        let mut backend = CpuBackend::<f32>::new(&network);
        c.bench_function(&format!("cpu step {}", size.label), |b| {
            b.iter(|| {
                backend
                    .train_steps(black_box(x.view()), target.view(), 0.01, 1)
                    .expect("a step")
            })
        });
    }
}

fn gpu_step(c: &mut Criterion) {
    let Some(ctx) = GpuContext::for_tests() else {
        return;
    };
    let device = GpuDevice::new(ctx).expect("the device opens");
    for size in parse_sizes(SIZES).expect("valid sizes") {
        let (network, x, target) = problem(&size).expect("a problem");
        let options = GpuOptions {
            max_records: size.records,
            ..GpuOptions::default()
        };
        let mut backend = GpuBackend::new(device.clone(), &network, options).expect("fits");
        c.bench_function(
            &format!("gpu step {} ({})", size.label, device.ctx.info.name),
            |b| {
                b.iter(|| {
                    backend
                        .train_steps(black_box(x.view()), target.view(), 0.01, 1)
                        .expect("a step");
                    backend.synchronize().expect("the GPU finishes")
                })
            },
        );
    }
}

criterion_group! {
    name = steps;
    config = Criterion::default().sample_size(20);
    targets = cpu_step, gpu_step
}
criterion_main!(steps);
