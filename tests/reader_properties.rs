//! Property tests of every reader of user files: random bytes and mutations of valid files
//! (bytes flipped, cut, inserted) fed to the .npy, .npz, Parquet, safetensors and CSV readers
//! must give an `Err` or a correct value, never a panic or an abort; unmutated files must read
//! back exactly. 1,000 cases each (proptest catches a panic as a failure and shrinks it).

use std::io::Write;
use std::path::Path;

use backprop::data::read::csv::read_in_blocks;
use backprop::data::{
    self, parse_csv, Cell, Encoder, PipelineOptions, ReadPlan, SeparateSets, SplitKind,
    SplitOptions,
};
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

proptest! {
    #![proptest_config(config())]

    /// A Parquet file written by pyarrow (tests/data/mixed.parquet: row groups, zstd,
    /// dictionaries, nulls), mutated: an error or a frame of the declared rows, never a panic.
    #[test]
    fn parquet_never_panics_on_mutated_files(
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let original = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mixed.parquet");
        let bytes = mutate(std::fs::read(original).unwrap(), &mutations);
        let mut file = tempfile::Builder::new().suffix(".parquet").tempfile().unwrap();
        file.write_all(&bytes).unwrap();
        let mut plan = ReadPlan::infer_all();
        plan.roles.insert("tags".into(), data::Role::Skip);
        let source = data::Source::File(file.path().into());
        if let Ok(frame) = data::read(&source, &plan, &|_, _| {}) {
            prop_assert!(frame.columns.iter().all(|c| c.is_skipped() || c.len() == frame.n_rows()));
        }
    }
}

/// A small model file as `backprop train --save` writes it.
fn model_bytes() -> (Vec<u8>, Network<f64>, Encoder) {
    let text = "a,b,kind,y\n1,2,x,0.5\n3,4,y,0.25\n5,6,x,0.75\n7,8,z,1\n9,10,y,0\n11,12,x,0.5\n";
    let options = PipelineOptions {
        targets: vec!["y".into()],
        standardize_targets: true,
        ..Default::default()
    };
    let frame = parse_csv("t.csv".into(), text.as_bytes(), &options.read_plan()).unwrap();
    let (encoder, _) = data::prepare_frame(
        frame,
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
        if let Ok(text_frame) = parse_csv("t.csv".into(), &bytes, &ReadPlan::text_all()) {
            prop_assert!(text_frame.n_rows() > 0);
            prop_assert!((0..text_frame.n_rows()).all(|r| text_frame.record(r).len() == text_frame.names.len()));
            let names = &text_frame.names;
            let options = PipelineOptions {
                targets: vec![names[names.len() - 1].clone()],
                date: (!random).then(|| names[0].clone()),
                standardize_targets: true,
                ..Default::default()
            };
            // Read again as the pipeline reads it: the same records, typed by the plan.
            let frame = parse_csv("t.csv".into(), &bytes, &options.read_plan()).unwrap();
            prop_assert_eq!(frame.n_rows(), text_frame.n_rows());
            prop_assert_eq!(&frame.lines, &text_frame.lines);
            let kind = if random { SplitKind::Random } else { SplitKind::Time };
            if let Ok((encoder, splits)) = data::prepare_frame(frame.clone(), &options, &SplitOptions::new(kind, 1), &SeparateSets::default()) {
                for part in [&splits.train, &splits.validation, &splits.test] {
                    prop_assert_eq!(part.x.ncols(), encoder.n_features());
                    prop_assert!(part.x.iter_f64().all(|v| v.is_finite()));
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
        let text_frame = parse_csv("t.csv".into(), text.as_bytes(), &ReadPlan::text_all()).unwrap();
        let read: Vec<f64> = (0..text_frame.n_rows()).map(|r| text_frame.record(r)[0].parse().unwrap()).collect();
        prop_assert_eq!(read, values.clone());
        let options = PipelineOptions {
            targets: vec!["y".into()],
            standardize_targets: true,
            ..Default::default()
        };
        let frame = parse_csv("t.csv".into(), text.as_bytes(), &options.read_plan()).unwrap();
        // Numbers are parsed where they are read: exactly the values written.
        let x = frame.column("x", "--target").unwrap();
        let cells: Vec<Cell> = (0..frame.n_rows()).map(|r| frame.cell(r, x)).collect();
        prop_assert_eq!(cells, values.iter().map(|&v| Cell::Number(v)).collect::<Vec<_>>());
        let (encoder, splits) = data::prepare_frame(frame.clone(), &options, &SplitOptions::new(SplitKind::Random, 3), &SeparateSets::default()).unwrap();
        // Standardised with the training split's statistics: undoing them gives the numbers.
        let backprop::data::encode::Feature::Numeric { mean, std, .. } = &encoder.features[0] else {
            panic!("x is numeric");
        };
        let x = splits.train.x.to_f64();
        for (i, line) in splits.train.lines.to_vec().into_iter().enumerate() {
            let original = values[(line - 2) as usize];
            let back = x[[i, 0]] * std + mean;
            prop_assert!((back - original).abs() <= 1e-9 * original.abs().max(1.0));
        }
    }
}

/// A number as a file may write it: integers, decimals with and without digits on either
/// side of the point, signs, exponents (subnormal ones too), digits beyond u64, and Rust's
/// own shortest and scientific forms of any finite f64.
fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (-1000i64..1000).prop_map(|i| i.to_string()),
        any::<f64>()
            .prop_filter("finite", |v| v.is_finite())
            .prop_map(|v| v.to_string()),
        any::<f64>()
            .prop_filter("finite", |v| v.is_finite())
            .prop_map(|v| format!("{v:e}")),
        "[+-]?[0-9]{0,3}\\.[0-9]{1,3}",
        "[+-]?[0-9]{1,3}\\.",
        "[+-]?[0-9]{1,3}[eE][+-]?[0-9]{1,2}",
        "[1-9]e-3[0-9]{2}",
        "[0-9]{20,30}",
    ]
}

/// One cell as written in a file: numbers, words, empty cells, quoted cells with separators,
/// `""` escapes and line breaks (`\n` and `\r\n`), cells padded with spaces and tabs, a quote
/// inside an unquoted cell (text) and text after a closing quote (appended).
fn parity_cell() -> impl Strategy<Value = String> {
    prop_oneof![
        number_text(),
        "[a-c]{1,3}",
        Just(String::new()),
        Just("\"q,\"\"x\"".to_string()),
        "[a-c0-9 ,\n\"]{0,6}".prop_map(|s| format!("\"{}\"", s.replace('"', "\"\""))),
        "[a-c ,\n\"]{0,6}"
            .prop_map(|s| format!("\"{}\"", s.replace('"', "\"\"").replace('\n', "\r\n"))),
        ("[ \t]{0,2}", "[a-c0-9]{1,3}", "[ \t]{0,2}").prop_map(|(a, b, c)| format!("{a}{b}{c}")),
        Just("5\" x".to_string()),
        Just("\"ab\"cd".to_string()),
        Just("\"ab\" ".to_string()),
    ]
}

/// A CSV whose records all have the header's width: records end in `\n` or `\r\n`, blank
/// lines come before the header, between records and at the end, and the last record may
/// lack its line ending.
fn parity_csv() -> impl Strategy<Value = String> {
    let eol = || prop_oneof![Just("\n"), Just("\r\n")];
    let blank = move || prop::collection::vec(eol(), 0..3).prop_map(|v| v.concat());
    (1usize..5).prop_flat_map(move |width| {
        let record = (prop::collection::vec(parity_cell(), width), eol(), blank())
            .prop_map(|(cells, eol, blank)| format!("{}{eol}{blank}", cells.join(",")));
        (
            blank(),
            prop::collection::vec(any::<bool>(), width),
            eol(),
            prop::collection::vec(record, 1..12),
            any::<bool>(),
        )
            .prop_map(move |(leading, quote_names, eol, records, cut_end)| {
                let names: Vec<String> = (0..width)
                    .zip(quote_names)
                    .map(|(i, quoted)| {
                        let name = ["a", "b", "c", "d"][i];
                        if quoted {
                            format!("\" {name}\"")
                        } else {
                            name.to_string()
                        }
                    })
                    .collect();
                let mut text = format!("{leading}{}{eol}{}", names.join(","), records.concat());
                if cut_end {
                    let kept = text.trim_end_matches(['\r', '\n']).len();
                    text.truncate(kept);
                }
                text
            })
    })
}

/// The header, records and record lines the `csv` crate reads (cells trimmed, as the old
/// reader trimmed them). The crate's `position()` is where it began reading a record: before
/// the blank lines it skips and the `\n` of a `\r\n` that ended the record before (its
/// `line()` is 2 for the record on line 3 of `a\n0\r\n1\n`), so a record's line is counted
/// from the first byte after those.
#[allow(clippy::type_complexity)]
fn csv_crate_read(bytes: &[u8]) -> (Vec<String>, Vec<Vec<String>>, Vec<u64>) {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(bytes);
    let names = reader
        .headers()
        .unwrap()
        .iter()
        .map(|n| n.trim().to_string())
        .collect();
    let (mut records, mut lines) = (Vec::new(), Vec::new());
    for record in reader.records() {
        let record = record.unwrap();
        let mut start = record.position().unwrap().byte() as usize;
        while matches!(bytes.get(start), Some(b'\r' | b'\n')) {
            start += 1;
        }
        lines.push(1 + bytes[..start].iter().filter(|&&b| b == b'\n').count() as u64);
        records.push(record.iter().map(|c| c.trim().to_string()).collect());
    }
    (names, records, lines)
}

/// The block sizes the parity tests cut a file into: a block per record (and per byte of a
/// long one), a few records per block, and the whole file in one.
const BLOCK_SIZES: [usize; 4] = [1, 7, 64, 1 << 20];

/// A finite number as the readers see it: what `str::parse` makes of the text.
fn std_number(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn csv_reader_agrees_with_the_csv_crate_in_any_blocks(text in parity_csv()) {
        let bytes = text.as_bytes();
        let (names, records, lines) = csv_crate_read(bytes);
        for block_bytes in BLOCK_SIZES {
            let read = read_in_blocks(Path::new("t.csv"), Some(bytes), &ReadPlan::text_all(), &|_| {}, block_bytes);
            if records.is_empty() {
                prop_assert!(read.is_err(), "block_bytes {}: no records, yet read", block_bytes);
                continue;
            }
            let frame = match read {
                Ok(frame) => frame,
                Err(e) => return Err(TestCaseError::fail(format!("block_bytes {block_bytes}: {e}"))),
            };
            prop_assert_eq!(&frame.names, &names, "block_bytes {}", block_bytes);
            let read: Vec<Vec<String>> = (0..frame.n_rows()).map(|r| frame.record(r)).collect();
            prop_assert_eq!(&read, &records, "block_bytes {}", block_bytes);
            prop_assert_eq!(&frame.lines.to_vec(), &lines, "block_bytes {}", block_bytes);

            // Inferred: a cell that is a finite number reads as that number, bit for bit
            // (as `Cell::Number` when its column holds nothing else); any other cell as its
            // text; an empty cell as empty.
            let frame = read_in_blocks(Path::new("t.csv"), Some(bytes), &ReadPlan::infer_all(), &|_| {}, block_bytes)
                .map_err(|e| TestCaseError::fail(format!("block_bytes {block_bytes}, inferred: {e}")))?;
            prop_assert_eq!(&frame.lines.to_vec(), &lines, "block_bytes {}", block_bytes);
            for c in 0..names.len() {
                let all_numbers = records.iter().all(|r| r[c].is_empty() || std_number(&r[c]).is_some());
                for (r, record) in records.iter().enumerate() {
                    let cell = frame.cell(r, c);
                    let written = &record[c];
                    let context = format!("block_bytes {block_bytes}, record {r}, column {c}: {written:?} read as {cell:?}");
                    match std_number(written) {
                        _ if written.is_empty() => prop_assert_eq!(cell, Cell::Empty, "{}", context),
                        Some(v) => {
                            prop_assert_eq!(cell.number().map(f64::to_bits), Some(v.to_bits()), "{}", context);
                            if all_numbers {
                                prop_assert!(matches!(cell, Cell::Number(_)), "{}", context);
                            }
                        }
                        None => prop_assert_eq!(cell, Cell::Text(written), "{}", context),
                    }
                }
            }
        }
    }

    #[test]
    fn csv_numbers_read_as_written_even_when_a_later_block_turns_the_column_to_text(
        numbers in prop::collection::vec(number_text(), 1..40),
        word in "[g-z]{1,5}",
        crlf: bool,
    ) {
        let eol = if crlf { "\r\n" } else { "\n" };
        let mut text = format!("x,n{eol}");
        for (i, v) in numbers.iter().enumerate() {
            text.push_str(&format!("{v},{i}{eol}"));
        }
        let numbers_only = text.clone();
        text.push_str(&format!("{word},{}{eol}", numbers.len()));
        for block_bytes in BLOCK_SIZES {
            let read = |text: &str| {
                read_in_blocks(Path::new("t.csv"), Some(text.as_bytes()), &ReadPlan::infer_all(), &|_| {}, block_bytes)
                    .map_err(|e| TestCaseError::fail(format!("block_bytes {block_bytes}: {e}")))
            };
            // A column of numbers: each as `Cell::Number`, exactly what `str::parse` reads.
            let frame = read(&numbers_only)?;
            prop_assert_eq!(frame.n_rows(), numbers.len());
            for (r, v) in numbers.iter().enumerate() {
                let want: f64 = v.parse().unwrap();
                let cell = frame.cell(r, 0);
                prop_assert!(
                    matches!(cell, Cell::Number(got) if got.to_bits() == want.to_bits()),
                    "block_bytes {}: {:?} read as {:?}, parses as {:?}", block_bytes, v, cell, want
                );
                prop_assert_eq!(frame.cell(r, 1), Cell::Number(r as f64));
            }
            // A word in the last record turns the column to text, in whichever block it lies:
            // the word is text and every number still reads as written.
            let frame = read(&text)?;
            prop_assert_eq!(frame.n_rows(), numbers.len() + 1);
            prop_assert_eq!(frame.cell(numbers.len(), 0), Cell::Text(&word), "block_bytes {}", block_bytes);
            for (r, v) in numbers.iter().enumerate() {
                let want: f64 = v.parse().unwrap();
                let cell = frame.cell(r, 0);
                prop_assert_eq!(
                    cell.number().map(f64::to_bits), Some(want.to_bits()),
                    "block_bytes {}: {:?} read as {:?}", block_bytes, v, cell
                );
                prop_assert_eq!(frame.cell(r, 1), Cell::Number(r as f64));
            }
            let want_lines: Vec<u64> = (2..=numbers.len() as u64 + 2).collect();
            prop_assert_eq!(&frame.lines.to_vec(), &want_lines);
        }
    }
}
