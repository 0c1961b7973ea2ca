//! The same network trained on the CPU and on the GPU from the same first weights: the loss
//! curves agree to fp32 rounding, and the time of each is printed. With no GPU the example says
//! so and trains on the CPU alone. `BACKPROP_ADAPTER` (e.g. `llvmpipe`) names the adapter.
//!
//! ```sh
//! cargo run --release --example cpu_vs_gpu
//! ```

use std::time::Instant;

use backprop::mlp::{Device, Method, Mlp, Model, Targets};
use backprop::Error;
use ndarray::{Array2, Axis};

fn main() -> Result<(), Error> {
    backprop::device::quiet_mesa();
    // A smooth regression problem: 4,000 records of 32 features.
    let x = Array2::from_shape_fn((4000, 32), |(i, j)| {
        (((i * 31 + j * 17) % 97) as f32 / 48.5) - 1.0
    });
    let y = x.map_axis(Axis(1), |r| {
        r.iter()
            .enumerate()
            .map(|(j, v)| (j as f32 * 0.1).sin() * v)
            .sum::<f32>()
            .tanh()
    });
    let y = y.insert_axis(Axis(1));
    let mlp = Mlp::regressor()
        .hidden(&[256])
        .optimizer(Method::Adam)
        .epochs(10)
        .batch(128)
        .seed(1);
    let fit = |device: Device| -> Result<(Model, f64), Error> {
        let started = Instant::now();
        let model = mlp.clone().device(device).fit(&x, &Targets::values(&y))?;
        Ok((model, started.elapsed().as_secs_f64()))
    };
    let (cpu, cpu_seconds) = fit(Device::cpu())?;
    println!(
        "cpu: {cpu_seconds:.2} s, final training loss {:.6}",
        cpu.history()[9].train_loss
    );
    let adapter = std::env::var("BACKPROP_ADAPTER").ok();
    match fit(Device::gpu(adapter.as_deref())) {
        Ok((gpu, gpu_seconds)) => {
            println!(
                "gpu: {gpu_seconds:.2} s, final training loss {:.6}",
                gpu.history()[9].train_loss
            );
            for (c, g) in cpu.history().iter().zip(gpu.history()) {
                let relative = (c.train_loss - g.train_loss).abs() / c.train_loss;
                // fp32 on both sides, sums in another order: far below 1e-4 after 10 epochs.
                assert!(
                    relative < 1e-4,
                    "epoch {}: cpu {} gpu {}",
                    c.epoch,
                    c.train_loss,
                    g.train_loss
                );
            }
            println!("the curves agree within 1e-4 relative at every epoch");
        }
        Err(Error::NoAdapter(why)) => {
            if std::env::var("BACKPROP_REQUIRE_GPU").as_deref() == Ok("1") {
                return Err(Error::NoAdapter(why));
            }
            println!("no GPU to compare with: {why}");
        }
        Err(e) => return Err(e),
    }
    Ok(())
}
