//! The `.npy` format, read from bytes with every declared size checked against the bytes
//! present before anything is allocated: a header that promises a 10^18-element array in a
//! 300-byte file is an error, not an abort. Float64 and float32 (either byte order, C or
//! Fortran order) are read as f64.
//!
//! The header is a Python dict literal; only the subset NumPy writes is accepted
//! (`{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }`), parsed without recursion.

use ndarray::{ArrayD, IxDyn, ShapeBuilder};

use crate::guard::memory::{host_available, MemoryPlan};

const MAGIC: &[u8] = b"\x93NUMPY";
/// NumPy itself refuses headers over 10,000 bytes unless told otherwise.
const MAX_HEADER_BYTES: usize = 65_536;
/// More dimensions than NumPy allows (64) is not an array we can use.
const MAX_DIMENSIONS: usize = 64;

/// A float element type and byte order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Dtype {
    bytes: usize,
    big_endian: bool,
}

/// The parsed header: dtype, layout, shape, and where the data starts.
#[derive(Debug)]
struct Header {
    dtype: Dtype,
    fortran_order: bool,
    shape: Vec<usize>,
    data_start: usize,
}

/// Decodes a whole `.npy` file. The error is a sentence about the file's contents; the caller
/// adds the file and array name.
pub fn parse(bytes: &[u8]) -> Result<ArrayD<f64>, String> {
    let header = parse_header(bytes)?;
    let count = header
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("the header's shape {:?} overflows", header.shape))?;
    let needed = count
        .checked_mul(header.dtype.bytes)
        .ok_or_else(|| format!("the header's shape {:?} overflows", header.shape))?;
    let data = &bytes[header.data_start..];
    if data.len() < needed {
        return Err(format!(
            "the header declares shape {:?} of float{} ({needed} bytes of data) but the file holds only {} bytes after it",
            header.shape,
            header.dtype.bytes * 8,
            data.len()
        ));
    }
    if data.len() > needed {
        return Err(format!(
            "{} unexpected bytes follow the {needed} bytes of shape {:?}",
            data.len() - needed,
            header.shape
        ));
    }
    // The bytes are present; decoding them takes `count` f64s more (twice the file for float32).
    let mut plan = MemoryPlan::new();
    plan.add_bytes(
        format!("the decoded {:?} array", header.shape),
        (count as u64).saturating_mul(8),
    );
    plan.check(
        "host memory",
        host_available().map_err(|e| e.to_string())?.as_ref(),
    )
    .map_err(|e| e.to_string())?;
    let values: Vec<f64> = match (header.dtype.bytes, header.dtype.big_endian) {
        (8, false) => data
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap_or_default()))
            .collect(),
        (8, true) => data
            .chunks_exact(8)
            .map(|b| f64::from_be_bytes(b.try_into().unwrap_or_default()))
            .collect(),
        (_, false) => data
            .chunks_exact(4)
            .map(|b| f64::from(f32::from_le_bytes(b.try_into().unwrap_or_default())))
            .collect(),
        (_, true) => data
            .chunks_exact(4)
            .map(|b| f64::from(f32::from_be_bytes(b.try_into().unwrap_or_default())))
            .collect(),
    };
    let shape = IxDyn(&header.shape).set_f(header.fortran_order);
    ArrayD::from_shape_vec(shape, values).map_err(|e| e.to_string())
}

fn parse_header(bytes: &[u8]) -> Result<Header, String> {
    if bytes.len() < MAGIC.len() + 2 || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a .npy file (no \\x93NUMPY magic)".into());
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (len_bytes, utf8) = match (major, minor) {
        (1, 0) => (2, false),
        (2, 0) => (4, false),
        (3, 0) => (4, true),
        _ => {
            return Err(format!(
                ".npy format version {major}.{minor} is not supported"
            ))
        }
    };
    let len_end = 8 + len_bytes;
    let len_field = bytes
        .get(8..len_end)
        .ok_or("the file ends inside its header length")?;
    let header_len = len_field
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    if header_len > MAX_HEADER_BYTES {
        return Err(format!(
            "the header claims {header_len} bytes (NumPy writes a few hundred; over {MAX_HEADER_BYTES} is refused)"
        ));
    }
    let data_start = len_end + header_len;
    let text = bytes.get(len_end..data_start).ok_or_else(|| {
        format!(
            "the header claims {header_len} bytes but the file holds {}",
            bytes.len() - len_end
        )
    })?;
    if !utf8 && !text.is_ascii() {
        return Err("the header is not ASCII".into());
    }
    let text = std::str::from_utf8(text).map_err(|_| "the header is not UTF-8".to_string())?;
    let dict = Dict::parse(text.trim_end())?;
    let descr = dict.string("descr")?;
    let dtype = parse_descr(descr)?;
    let fortran_order = dict.boolean("fortran_order")?;
    let shape = dict.tuple("shape")?;
    Ok(Header {
        dtype,
        fortran_order,
        shape,
        data_start,
    })
}

fn parse_descr(descr: &str) -> Result<Dtype, String> {
    let unsupported = || format!("dtype {descr} is not supported: use float64 or float32");
    let (order, kind) = match descr.chars().next() {
        Some(c @ ('<' | '>' | '=' | '|')) => (c, &descr[1..]),
        _ => ('=', descr),
    };
    let bytes = match kind {
        "f8" => 8,
        "f4" => 4,
        _ => return Err(unsupported()),
    };
    let big_endian = match order {
        '>' => true,
        '<' => false,
        _ => cfg!(target_endian = "big"),
    };
    Ok(Dtype { bytes, big_endian })
}

/// The values a NumPy header dict holds.
#[derive(Debug, PartialEq)]
enum Value {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
}

struct Dict(Vec<(String, Value)>);

impl Dict {
    fn get(&self, key: &str) -> Result<&Value, String> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .ok_or_else(|| format!("the header has no '{key}'"))
    }

    fn string(&self, key: &str) -> Result<&str, String> {
        match self.get(key)? {
            Value::Str(s) => Ok(s),
            _ => Err(format!(
                "the header's '{key}' is not a simple dtype string: use float64 or float32"
            )),
        }
    }

    fn boolean(&self, key: &str) -> Result<bool, String> {
        match self.get(key)? {
            Value::Bool(b) => Ok(*b),
            _ => Err(format!("the header's '{key}' is not True or False")),
        }
    }

    fn tuple(&self, key: &str) -> Result<Vec<usize>, String> {
        match self.get(key)? {
            Value::Tuple(t) => Ok(t.clone()),
            _ => Err(format!("the header's '{key}' is not a tuple of integers")),
        }
    }

    /// `{'key': value, ...}` with string, True/False and integer-tuple values.
    fn parse(text: &str) -> Result<Self, String> {
        let mut p = Parser {
            rest: text.trim_start(),
        };
        p.expect('{')?;
        let mut entries = Vec::new();
        loop {
            if p.eat('}') {
                break;
            }
            let key = p.string()?;
            p.expect(':')?;
            let value = p.value()?;
            entries.push((key, value));
            if !p.eat(',') {
                p.expect('}')?;
                break;
            }
        }
        if !p.rest.trim().is_empty() {
            return Err("the header has text after its dict".into());
        }
        Ok(Dict(entries))
    }
}

struct Parser<'a> {
    rest: &'a str,
}

impl Parser<'_> {
    fn eat(&mut self, c: char) -> bool {
        match self.rest.trim_start().strip_prefix(c) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("the header is not a NumPy dict (expected `{c}`)"))
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let rest = self.rest.trim_start();
        let quote = rest
            .chars()
            .next()
            .filter(|c| *c == '\'' || *c == '"')
            .ok_or("the header is not a NumPy dict (expected a quoted string)")?;
        let body = &rest[1..];
        let end = body
            .find(quote)
            .ok_or("the header has an unterminated string")?;
        self.rest = &body[end + 1..];
        Ok(body[..end].to_string())
    }

    fn value(&mut self) -> Result<Value, String> {
        let rest = self.rest.trim_start();
        for (word, b) in [("True", true), ("False", false)] {
            if let Some(after) = rest.strip_prefix(word) {
                self.rest = after;
                return Ok(Value::Bool(b));
            }
        }
        if rest.starts_with('(') {
            self.rest = rest;
            self.expect('(')?;
            let mut dims = Vec::new();
            loop {
                if self.eat(')') {
                    break;
                }
                let digits_end = self
                    .rest
                    .trim_start()
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(self.rest.trim_start().len());
                let trimmed = self.rest.trim_start();
                let dim: usize = trimmed[..digits_end]
                    .parse()
                    .map_err(|_| "the header's shape holds something other than sizes")?;
                dims.push(dim);
                if dims.len() > MAX_DIMENSIONS {
                    return Err(format!(
                        "the header's shape has over {MAX_DIMENSIONS} dimensions"
                    ));
                }
                self.rest = &trimmed[digits_end..];
                if !self.eat(',') {
                    self.expect(')')?;
                    break;
                }
            }
            return Ok(Value::Tuple(dims));
        }
        if rest.starts_with('\'') || rest.starts_with('"') {
            self.rest = rest;
            return self.string().map(Value::Str);
        }
        Err("the header holds a value other than a string, True/False or a shape (a structured dtype?): use float64 or float32".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A .npy file as NumPy 1.x writes it.
    pub fn npy(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
        let dict = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
            if fortran { "True" } else { "False" }
        );
        let mut header = dict.into_bytes();
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(b' ');
        }
        header.push(b'\n');
        let mut out = MAGIC.to_vec();
        out.extend([1, 0]);
        out.extend((header.len() as u16).to_le_bytes());
        out.extend(header);
        out.extend(data);
        out
    }

    fn f64s(values: &[f64]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn float64_float32_byte_orders_and_fortran_order_read_back() {
        let a = parse(&npy(
            "<f8",
            false,
            "(2, 3)",
            &f64s(&[1., 2., 3., 4., 5., 6.]),
        ))
        .unwrap();
        assert_eq!(a.shape(), [2, 3]);
        assert_eq!(a[[1, 0]], 4.0);
        let f = parse(&npy(
            "<f8",
            true,
            "(2, 3)",
            &f64s(&[1., 2., 3., 4., 5., 6.]),
        ))
        .unwrap();
        assert_eq!(f[[1, 0]], 2.0);
        let be: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        let b = parse(&npy(">f4", false, "(2,)", &be)).unwrap();
        assert_eq!(b.as_slice().unwrap(), [1.5, -2.0]);
        let scalar = parse(&npy("<f8", false, "()", &f64s(&[7.0]))).unwrap();
        assert_eq!(scalar.ndim(), 0);
        let empty = parse(&npy("<f8", false, "(0, 3)", &[])).unwrap();
        assert_eq!(empty.shape(), [0, 3]);
    }

    #[test]
    fn a_huge_declared_shape_is_an_error_before_any_allocation() {
        let err = parse(&npy(
            "<f8",
            false,
            "(1000000000, 1000000000)",
            &f64s(&[1.0]),
        ))
        .unwrap_err();
        assert!(err.contains("holds only 8 bytes"), "{err}");
        let err = parse(&npy("<f8", false, "(18446744073709551615, 3)", &[])).unwrap_err();
        assert!(err.contains("overflows"), "{err}");
        let mut long = MAGIC.to_vec();
        long.extend([2, 0]);
        long.extend(u32::MAX.to_le_bytes());
        assert!(parse(&long).unwrap_err().contains("claims"));
    }

    #[test]
    fn other_dtypes_and_malformed_headers_are_named() {
        let err = parse(&npy("<i8", false, "(1,)", &[0; 8])).unwrap_err();
        assert!(err.contains("dtype <i8 is not supported"), "{err}");
        let err = parse(&npy("<f8", false, "(2,)", &f64s(&[1.0, 2.0, 3.0]))).unwrap_err();
        assert!(err.contains("8 unexpected bytes"), "{err}");
        assert!(parse(b"PK\x03\x04").unwrap_err().contains("magic"));
        let nested = format!("{}{}", "(".repeat(5000), ")".repeat(5000));
        assert!(parse(&npy("<f8", false, &nested, &[])).is_err());
    }
}
