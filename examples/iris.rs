//! An iris classifier through the facade: the measurements of `data/iris.csv` as an array, the
//! species as text labels, 120 flowers to train on and 30 to test, on the GPU when there is one
//! (the CPU otherwise), saved and loaded back.
//!
//! ```sh
//! cargo run --example iris
//! ```

use backprop::data::{read_text, Source};
use backprop::mlp::{Activation, Method, Mlp, Model, Targets};
use ndarray::{Array2, Axis};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    backprop::device::quiet_mesa();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/iris.csv");
    let frame = read_text(&Source::File(path))?;
    let features = frame.names.len() - 1;
    let x = Array2::from_shape_fn((frame.n_rows(), features), |(r, c)| {
        frame.cell(r, c).number().map_or(f32::NAN, |v| v as f32)
    });
    let species: Vec<String> = (0..frame.n_rows())
        .map(|r| frame.cell(r, features).to_text())
        .collect();
    // Every fifth flower is held out for testing.
    let (test, train): (Vec<usize>, Vec<usize>) = (0..x.nrows()).partition(|i| i % 5 == 0);
    let pick = |rows: &[usize]| x.select(Axis(0), rows);
    let labels = |rows: &[usize]| {
        rows.iter()
            .map(|&i| species[i].as_str())
            .collect::<Vec<_>>()
    };

    let model = Mlp::classifier()
        .hidden(&[16])
        .activation(Activation::Relu)
        .optimizer(Method::Adam)
        .learning_rate(0.01)
        .epochs(200)
        .batch(16)
        .seed(7)
        .fit(&pick(&train), &Targets::labels(&labels(&train)))?;
    let classes = model.classes().unwrap_or_default();
    let predicted = model.predict_classes(&pick(&test))?;
    let truth = labels(&test);
    let right = predicted
        .iter()
        .zip(&truth)
        .filter(|(&k, &t)| classes[k] == t)
        .count();
    let accuracy = right as f64 / test.len() as f64;
    let last = model.history().last().map_or(f64::NAN, |r| r.train_loss);
    println!(
        "{} epochs, training cross-entropy {last:.4}; test accuracy {:.1}% ({right} of {})",
        model.history().len(),
        accuracy * 100.0,
        test.len()
    );
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("iris.safetensors");
    model.save(&file)?;
    let loaded = Model::load(&file)?;
    assert_eq!(loaded.predict_classes(&pick(&test))?, predicted);
    println!("saved, loaded and predicted the same: {}", file.display());
    assert!(accuracy >= 0.9, "test accuracy {accuracy}");
    Ok(())
}
