//! Property tests of every reader of user files: random bytes and mutations of valid files
//! (bytes flipped, cut, inserted) fed to the .npy, .npz, safetensors and CSV readers must give
//! an `Err` or a correct value, never a panic or an abort; unmutated files must read back
//! exactly. 1,000 cases each (proptest catches a panic as a failure and shrinks it).

use std::io::Write;
use std::path::Path;

use backprop::data::csv::parse_csv;
use backprop::data::{self, Encoder, PipelineOptions, SeparateSets, SplitKind, SplitOptions};
use backprop::io::{npy, NpzFile};
use backprop::model_file::{self, SavedModel};
use backprop::{Activation, Network};
use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;
use rand::SeedableRng;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 1000,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A mutation of a byte string: flip bytes, cut it, insert or overwrite runs.
#[derive(Clone, Debug)]
enum Mutation {
    Flip {
        at: usize,
        value: u8,
    },
    Truncate {
        at: usize,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    /// Overwrite with a little-endian u64 (a size field turned absurd).
    Number {
        at: usize,
        value: u64,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::Flip { at, value }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (
            any::<usize>(),
            prop_oneof![any::<u64>(), Just(u64::MAX), Just(1 << 40), Just(0)]
        )
            .prop_map(|(at, value)| Mutation::Number { at, value }),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len().max(1);
        match m {
            Mutation::Flip { at, value } => {
                if !bytes.is_empty() {
                    let i = at % len;
                    bytes[i] = *value;
                }
            }
            Mutation::Truncate { at } => bytes.truncate(at % len),
            Mutation::Insert { at, bytes: b } => {
                let i = at % (bytes.len() + 1);
                bytes.splice(i..i, b.iter().copied());
            }
            Mutation::Number { at, value } => {
                if bytes.len() >= 8 {
                    let i = at % (bytes.len() - 7);
                    bytes[i..i + 8].copy_from_slice(&value.to_le_bytes());
                }
            }
        }
    }
    bytes
}

/// A .npy file of `values` in `shape`, float64 or float32, C or Fortran order, with NumPy's
/// header layout.
fn npy_file(shape: &[usize], values: &[f64], f32s: bool, fortran: bool) -> Vec<u8> {
    let shape_text = match shape.len() {
        0 => "()".to_string(),
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let descr = if f32s { "<f4" } else { "<f8" };
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape_text}, }}",
        if fortran { "True" } else { "False" }
    )
    .into_bytes();
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(b' ');
    }
    header.push(b'\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header);
    // Values in memory order: C order is the logical order; Fortran order is its transpose.
    let a = ArrayD::from_shape_vec(IxDyn(shape), values.to_vec()).unwrap();
    let ordered: Vec<f64> = if fortran {
        a.t().iter().copied().collect()
    } else {
        a.iter().copied().collect()
    };
    for v in ordered {
        if f32s {
            out.extend((v as f32).to_le_bytes());
        } else {
            out.extend(v.to_le_bytes());
        }
    }
    out
}

/// A random array: shape of 0-3 dimensions of 0-4 each, values exactly representable in f32.
fn array() -> impl Strategy<Value = ArrayD<f64>> {
    prop::collection::vec(0usize..5, 0..4).prop_flat_map(|shape| {
        let n: usize = shape.iter().product();
        prop::collection::vec(-1000i32..1000, n).prop_map(move |v| {
            let values: Vec<f64> = v.iter().map(|&i| f64::from(i) / 8.0).collect();
            ArrayD::from_shape_vec(IxDyn(&shape), values).unwrap()
        })
    })
}

fn npz_file(arrays: &[(String, Vec<u8>)], compressed: bool) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let method = if compressed {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    };
    let options = zip::write::SimpleFileOptions::default().compression_method(method);
    for (name, bytes) in arrays {
        zip.start_file(format!("{name}.npy"), options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn npy_reads_valid_files_exactly(a in array(), f32s: bool, fortran: bool) {
        let bytes = npy_file(a.shape(), a.as_slice().unwrap(), f32s, fortran);
        let read = npy::parse(&bytes).unwrap();
        prop_assert_eq!(read, a);
    }

    #[test]
    fn npy_never_panics_on_mutated_files(
        a in array(),
        f32s: bool,
        fortran: bool,
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let bytes = mutate(npy_file(a.shape(), a.as_slice().unwrap(), f32s, fortran), &mutations);
        if let Ok(read) = npy::parse(&bytes) {
            // Whatever parses is self-consistent: its header's shape holds its values.
            prop_assert_eq!(read.len(), read.shape().iter().product::<usize>());
        }
    }

    #[test]
    fn npy_never_panics_on_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut with_magic = b"\x93NUMPY\x01\x00".to_vec();
        with_magic.extend(&bytes);
        let _ = npy::parse(&bytes);
        let _ = npy::parse(&with_magic);
    }

    #[test]
    fn npz_reads_valid_archives_and_never_panics_on_mutated_ones(
        a in array(),
        b in array(),
        compressed: bool,
        mutations in prop::collection::vec(mutation(), 0..4),
    ) {
        let members = vec![
            ("first".to_string(), npy_file(a.shape(), a.as_slice().unwrap(), false, false)),
            ("second".to_string(), npy_file(b.shape(), b.as_slice().unwrap(), true, false)),
        ];
        let bytes = mutate(npz_file(&members, compressed), &mutations);
        let path = Path::new("p.npz");
        match NpzFile::from_bytes(path, bytes) {
            Ok(mut npz) => {
                let first = npz.array("first");
                let second = npz.array("second");
                if mutations.is_empty() {
                    prop_assert_eq!(first.unwrap(), a);
                    prop_assert_eq!(second.unwrap(), b);
                }
            }
            Err(e) => prop_assert!(!mutations.is_empty(), "{e}"),
        }
    }
}

/// A small model file as `backprop train --save` writes it.
fn model_bytes() -> (Vec<u8>, Network<f64>, Encoder) {
    let text = "a,b,kind,y\n1,2,x,0.5\n3,4,y,0.25\n5,6,x,0.75\n7,8,z,1\n9,10,y,0\n11,12,x,0.5\n";
    let table = parse_csv("t.csv".into(), text.as_bytes()).unwrap();
    let options = PipelineOptions {
        targets: vec!["y".into()],
        standardize_targets: true,
        ..Default::default()
    };
    let (encoder, _) = data::prepare_table(
        &table,
        &options,
        &SplitOptions::new(SplitKind::Random, 0),
        &SeparateSets::default(),
    )
    .unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let network = Network::random(
        &[encoder.n_features(), 3, 1],
        Activation::Identity,
        &mut rng,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    model_file::save(&path, &SavedModel::model(network.clone(), encoder.clone())).unwrap();
    (std::fs::read(&path).unwrap(), network, encoder)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn safetensors_models_read_back_and_never_panic_when_mutated(
        mutations in prop::collection::vec(mutation(), 0..4),
    ) {
        let (bytes, network, encoder) = model_bytes();
        let bytes = mutate(bytes, &mutations);
        match model_file::from_bytes(Path::new("m.safetensors"), &bytes) {
            Ok(model) if mutations.is_empty() => {
                prop_assert_eq!(model.network, network);
                prop_assert_eq!(model.encoder, encoder);
            }
            Ok(model) => {
                // A mutation that still loads gives a consistent model.
                prop_assert_eq!(model.network.n_inputs(), model.encoder.n_features());
            }
            Err(e) => prop_assert!(!mutations.is_empty(), "{e}"),
        }
    }

    #[test]
    fn safetensors_never_panics_on_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = model_file::from_bytes(Path::new("m.safetensors"), &bytes);
    }
}

/// CSV text from a small alphabet that makes every kind of cell: numbers, words, dates,
/// empty cells, quotes, ragged lines, overflowing exponents.
fn csv_text() -> impl Strategy<Value = String> {
    let cell = prop_oneof![
        (-1000i32..1000).prop_map(|i| i.to_string()),
        "[a-c]{1,3}",
        Just(String::new()),
        Just("1e400".to_string()),
        Just("nan".to_string()),
        Just("\"q,\"\"x\"".to_string()),
        Just("2012-0[1-9]-1[0-9]".to_string()),
        (1u32..13).prop_map(|h| format!("{h}am")),
    ];
    let row = prop::collection::vec(cell, 1..5).prop_map(|cells| cells.join(","));
    (
        prop::collection::vec(row, 0..12),
        prop_oneof![Just("\n"), Just("\r\n")],
    )
        .prop_map(|(rows, eol)| format!("a,b,c,d\n{}", rows.join(eol)))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn csv_reading_and_encoding_never_panic(
        text in csv_text(),
        mutations in prop::collection::vec(mutation(), 0..3),
        random: bool,
    ) {
        let bytes = mutate(text.into_bytes(), &mutations);
        if let Ok(table) = parse_csv("t.csv".into(), &bytes) {
            prop_assert!(!table.rows.is_empty());
            prop_assert!(table.rows.iter().all(|r| r.len() == table.columns.len()));
            let options = PipelineOptions {
                targets: vec![table.columns[table.columns.len() - 1].clone()],
                date: (!random).then(|| table.columns[0].clone()),
                standardize_targets: true,
                ..Default::default()
            };
            let kind = if random { SplitKind::Random } else { SplitKind::Time };
            if let Ok((encoder, splits)) = data::prepare_table(&table, &options, &SplitOptions::new(kind, 1), &SeparateSets::default()) {
                for part in [&splits.train, &splits.validation, &splits.test] {
                    prop_assert_eq!(part.x.ncols(), encoder.n_features());
                    prop_assert!(part.x.iter().all(|v| v.is_finite()));
                    prop_assert!(part.target.iter().all(|v| v.is_finite()));
                }
            }
        }
    }

    #[test]
    fn csv_numbers_read_back_exactly(values in prop::collection::vec(-1e6f64..1e6, 6..40)) {
        let mut text = String::from("x,y\n");
        for (i, v) in values.iter().enumerate() {
            text.push_str(&format!("{v},{i}\n"));
        }
        let table = parse_csv("t.csv".into(), text.as_bytes()).unwrap();
        let read: Vec<f64> = table.rows.iter().map(|r| r[0].parse().unwrap()).collect();
        prop_assert_eq!(read, values.clone());
        let options = PipelineOptions {
            targets: vec!["y".into()],
            standardize_targets: true,
            ..Default::default()
        };
        let (encoder, splits) = data::prepare_table(&table, &options, &SplitOptions::new(SplitKind::Random, 3), &SeparateSets::default()).unwrap();
        // Standardised with the training split's statistics: undoing them gives the numbers.
        let backprop::data::encode::Feature::Numeric { mean, std, .. } = &encoder.features[0] else {
            panic!("x is numeric");
        };
        let x = &splits.train.x;
        for (i, &line) in splits.train.lines.iter().enumerate() {
            let original = values[(line - 2) as usize];
            let back = x[[i, 0]] * std + mean;
            prop_assert!((back - original).abs() <= 1e-9 * original.abs().max(1.0));
        }
    }
}
