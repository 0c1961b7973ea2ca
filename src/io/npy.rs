//! The `.npy` format, read from bytes with every declared size checked against the bytes
//! present before anything is allocated: a header that promises a 10^18-element array in a
//! 300-byte file is an error, not an abort. Floats (float64, float32), integers, booleans
//! (either byte order, C or Fortran order) are read as f64; fixed-width text (`<U`, `|S`, the
//! labels NumPy users keep) is read as strings.
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

/// What an element is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Float,
    Int,
    Uint,
    Bool,
    /// UTF-32 code points (`<U8`).
    Unicode,
    /// Bytes, read as UTF-8 (`|S8`).
    Bytes,
}

/// An element type: kind, size and byte order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Dtype {
    kind: Kind,
    bytes: usize,
    big_endian: bool,
}

impl Dtype {
    fn is_text(self) -> bool {
        matches!(self.kind, Kind::Unicode | Kind::Bytes)
    }
}

/// The parsed header: dtype, layout, shape, and where the data starts.
#[derive(Debug)]
struct Header {
    dtype: Dtype,
    fortran_order: bool,
    shape: Vec<usize>,
    data_start: usize,
}

/// An `.npy` file whose header has been checked against the bytes present; its elements are
/// decoded one at a time, in storage order (C or Fortran, as [`Npy::fortran_order`] says).
#[derive(Debug)]
pub struct Npy<'a> {
    pub shape: Vec<usize>,
    pub fortran_order: bool,
    dtype: Dtype,
    data: &'a [u8],
}

impl<'a> Npy<'a> {
    /// Checks the header and that the data is exactly the size it declares. The error is a
    /// sentence about the file's contents; the caller adds the file and array name.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, String> {
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
                "the header declares shape {:?} of {} ({needed} bytes of data) but the file holds only {} bytes after it",
                header.shape,
                describe(header.dtype),
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
        Ok(Npy {
            shape: header.shape,
            fortran_order: header.fortran_order,
            dtype: header.dtype,
            data,
        })
    }

    pub fn len(&self) -> usize {
        self.data.len() / self.dtype.bytes.max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the elements are booleans.
    pub fn is_bool(&self) -> bool {
        self.dtype.kind == Kind::Bool
    }

    /// Whether the elements are text (`<U`, `|S`) rather than numbers.
    pub fn is_text(&self) -> bool {
        self.dtype.is_text()
    }

    /// The element type as NumPy names it (`float32`, `int64`, `<U7`).
    pub fn dtype(&self) -> String {
        describe(self.dtype)
    }

    fn element(&self, i: usize) -> &'a [u8] {
        &self.data[i * self.dtype.bytes..(i + 1) * self.dtype.bytes]
    }

    /// Element `i` (in storage order) as f64: integers beyond 2^53 round, booleans are 0 and 1;
    /// a text element is NaN.
    pub fn number(&self, i: usize) -> f64 {
        decode(self.dtype, self.element(i))
    }

    /// Where the numbers lie in the file's bytes, to read them later from bytes the caller
    /// keeps (a memory map) without parsing the header again; `None` for text.
    pub fn numbers_in_place(&self, file: &[u8]) -> Option<NumbersInPlace> {
        let data_start = (self.data.as_ptr() as usize).checked_sub(file.as_ptr() as usize)?;
        (!self.is_text() && data_start + self.data.len() == file.len()).then_some(NumbersInPlace {
            dtype: self.dtype,
            data_start,
        })
    }

    /// Element `i` (in storage order) as text, without the NUL padding NumPy adds; invalid
    /// code points and bytes become U+FFFD. A number is empty.
    pub fn text(&self, i: usize) -> String {
        let bytes = self.element(i);
        match self.dtype.kind {
            Kind::Unicode => bytes
                .chunks_exact(4)
                .map(|c| {
                    let c = [c[0], c[1], c[2], c[3]];
                    match self.dtype.big_endian {
                        true => u32::from_be_bytes(c),
                        false => u32::from_le_bytes(c),
                    }
                })
                .take_while(|&c| c != 0)
                .map(|c| char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect(),
            Kind::Bytes => {
                let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
                String::from_utf8_lossy(&bytes[..end]).into_owned()
            }
            _ => String::new(),
        }
    }
}

/// The numeric elements of an `.npy` whose header was checked ([`Npy::numbers_in_place`]),
/// read from the file's bytes one at a time.
#[derive(Clone, Copy, Debug)]
pub struct NumbersInPlace {
    dtype: Dtype,
    data_start: usize,
}

impl NumbersInPlace {
    /// The bytes of one element.
    pub fn element_bytes(&self) -> usize {
        self.dtype.bytes
    }

    /// Elements `first + k` for each `k` of `offsets` (ascending, within `span` elements of
    /// `first`), into `out`: a record's chosen columns, read from one slice of the file with
    /// the element type decided once.
    pub fn read(
        &self,
        file: &[u8],
        (first, span): (usize, usize),
        offsets: &[usize],
        out: &mut [f64],
    ) {
        let size = self.dtype.bytes;
        let start = self.data_start + first * size;
        let elements = &file[start..start + span * size];
        let each = offsets.iter().zip(out.iter_mut());
        match (self.dtype.kind, size, self.dtype.big_endian) {
            (Kind::Float, 4, false) => each.for_each(|(&k, o)| {
                let b = &elements[k * 4..k * 4 + 4];
                *o = f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            }),
            (Kind::Float, 8, false) => each.for_each(|(&k, o)| {
                let mut word = [0u8; 8];
                word.copy_from_slice(&elements[k * 8..k * 8 + 8]);
                *o = f64::from_le_bytes(word);
            }),
            _ => each
                .for_each(|(&k, o)| *o = decode(self.dtype, &elements[k * size..(k + 1) * size])),
        }
    }
}

/// One element's bytes as f64 (see [`Npy::number`]).
fn decode(d: Dtype, bytes: &[u8]) -> f64 {
    if d.is_text() {
        return f64::NAN;
    }
    // The common case first: little-endian float32 and float64, as NumPy writes them here.
    match (d.kind, d.bytes, d.big_endian) {
        (Kind::Float, 4, false) => {
            return f64::from(f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
        }
        (Kind::Float, 8, false) => {
            let mut word = [0u8; 8];
            word.copy_from_slice(bytes);
            return f64::from_le_bytes(word);
        }
        _ => {}
    }
    let mut word = [0u8; 8];
    // Widen to 8 bytes in little-endian order (sign-extended for signed integers).
    if d.big_endian {
        bytes
            .iter()
            .rev()
            .enumerate()
            .for_each(|(k, &b)| word[k] = b);
    } else {
        word[..d.bytes].copy_from_slice(bytes);
    }
    let negative = word[d.bytes - 1] & 0x80 != 0;
    match (d.kind, d.bytes) {
        (Kind::Float, 8) => f64::from_le_bytes(word),
        (Kind::Float, 4) => f64::from(f32::from_le_bytes([word[0], word[1], word[2], word[3]])),
        (Kind::Float, _) => half_to_f64(u16::from_le_bytes([word[0], word[1]])),
        (Kind::Bool, _) => f64::from(u8::from(word[0] != 0)),
        (Kind::Int, n) => {
            if negative {
                word[n..].fill(0xff);
            }
            i64::from_le_bytes(word) as f64
        }
        _ => u64::from_le_bytes(word) as f64,
    }
}

/// An IEEE half (float16) widened exactly.
pub fn half_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((h >> 10) & 0x1f);
    let mantissa = f64::from(h & 0x3ff);
    sign * match exponent {
        0 => mantissa * 2f64.powi(-24),
        31 if mantissa == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + mantissa / 1024.0) * 2f64.powi(e - 15),
    }
}

/// A dtype as NumPy names it.
fn describe(d: Dtype) -> String {
    match d.kind {
        Kind::Float => format!("float{}", d.bytes * 8),
        Kind::Int => format!("int{}", d.bytes * 8),
        Kind::Uint => format!("uint{}", d.bytes * 8),
        Kind::Bool => "bool".into(),
        Kind::Unicode => format!("<U{}", d.bytes / 4),
        Kind::Bytes => format!("|S{}", d.bytes),
    }
}

/// The header of a version 1.0 `.npy` file of `descr` (`<f8`, `<U7`) in C order, padded so
/// the data starts on a 64-byte boundary, as NumPy writes it.
pub fn header(descr: &str, shape: &[usize]) -> Vec<u8> {
    header_in_order(descr, false, &shape_text(shape))
}

/// A shape as Python writes a tuple: `(3,)`, `(3, 2)`.
fn shape_text(shape: &[usize]) -> String {
    match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn header_in_order(descr: &str, fortran: bool, shape: &str) -> Vec<u8> {
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
    out
}

/// Decodes a whole numeric `.npy` file as f64. The error is a sentence about the file's
/// contents; the caller adds the file and array name.
pub fn parse(bytes: &[u8]) -> Result<ArrayD<f64>, String> {
    let npy = Npy::parse(bytes)?;
    if npy.is_text() {
        return Err(format!(
            "holds text ({}) where numbers are needed",
            npy.dtype()
        ));
    }
    // The bytes are present; decoding them takes `count` f64s more (twice the file for float32).
    let mut plan = MemoryPlan::new();
    plan.add_bytes(
        format!("the decoded {:?} array", npy.shape),
        (npy.len() as u64).saturating_mul(8),
    );
    plan.check(
        "host memory",
        host_available().map_err(|e| e.to_string())?.as_ref(),
    )
    .map_err(|e| e.to_string())?;
    let values: Vec<f64> = (0..npy.len()).map(|i| npy.number(i)).collect();
    let shape = IxDyn(&npy.shape).set_f(npy.fortran_order);
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
    let unsupported = || {
        format!(
            "dtype {descr} is not supported: use floats, integers, booleans or fixed-width text"
        )
    };
    let (order, code) = match descr.chars().next() {
        Some(c @ ('<' | '>' | '=' | '|')) => (c, &descr[1..]),
        _ => ('=', descr),
    };
    let mut chars = code.chars();
    let kind = match chars.next() {
        Some('f') => Kind::Float,
        Some('i') => Kind::Int,
        Some('u') => Kind::Uint,
        Some('b') => Kind::Bool,
        Some('U') => Kind::Unicode,
        Some('S') => Kind::Bytes,
        _ => return Err(unsupported()),
    };
    let size: usize = chars.as_str().parse().map_err(|_| unsupported())?;
    let valid = match kind {
        Kind::Float => [2, 4, 8].contains(&size),
        Kind::Int | Kind::Uint => [1, 2, 4, 8].contains(&size),
        Kind::Bool => size == 1,
        Kind::Unicode | Kind::Bytes => (1..=MAX_TEXT_CHARS).contains(&size),
    };
    if !valid {
        return Err(unsupported());
    }
    let bytes = if kind == Kind::Unicode {
        size * 4
    } else {
        size
    };
    let big_endian = match order {
        '>' => true,
        '<' => false,
        _ => cfg!(target_endian = "big"),
    };
    Ok(Dtype {
        kind,
        bytes,
        big_endian,
    })
}

/// The longest fixed-width text element accepted (a label, not a document).
const MAX_TEXT_CHARS: usize = 1 << 20;

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
                "the header's '{key}' is not a simple dtype string (a structured dtype?): use one array per kind of value"
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
        Err("the header holds a value other than a string, True/False or a shape (a structured dtype?): use one array per kind of value".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A .npy file as NumPy 1.x writes it.
    pub fn npy(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut out = header_in_order(descr, fortran, shape);
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
    fn integers_booleans_halves_and_text_decode() {
        let ints: Vec<u8> = [-3i64, 7].iter().flat_map(|v| v.to_le_bytes()).collect();
        let a = parse(&npy("<i8", false, "(2,)", &ints)).unwrap();
        assert_eq!(a.as_slice().unwrap(), [-3.0, 7.0]);
        let be: Vec<u8> = [-2i16, 300].iter().flat_map(|v| v.to_be_bytes()).collect();
        assert_eq!(
            parse(&npy(">i2", false, "(2,)", &be))
                .unwrap()
                .as_slice()
                .unwrap(),
            [-2.0, 300.0]
        );
        let bytes = parse(&npy("|u1", false, "(2,)", &[255, 0])).unwrap();
        assert_eq!(bytes.as_slice().unwrap(), [255.0, 0.0]);
        let flags = parse(&npy("|b1", false, "(3,)", &[1, 0, 1])).unwrap();
        assert_eq!(flags.as_slice().unwrap(), [1.0, 0.0, 1.0]);
        let halves: Vec<u8> = [0x3c00u16, 0xc000, 0x0001]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let h = parse(&npy("<f2", false, "(3,)", &halves)).unwrap();
        assert_eq!(h.as_slice().unwrap(), [1.0, -2.0, 2f64.powi(-24)]);
        let words: Vec<u8> = "ab\0cde"
            .chars()
            .flat_map(|c| (c as u32).to_le_bytes())
            .collect();
        let text = npy("<U3", false, "(2,)", &words);
        let labels = Npy::parse(&text).unwrap();
        assert!(labels.is_text());
        assert_eq!(
            (labels.text(0), labels.text(1)),
            ("ab".into(), "cde".into())
        );
        let s = npy("|S2", false, "(2,)", b"x\0yz");
        let s = Npy::parse(&s).unwrap();
        assert_eq!((s.text(0), s.text(1)), ("x".into(), "yz".into()));
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
        let err = parse(&npy("<c16", false, "(1,)", &[0; 16])).unwrap_err();
        assert!(err.contains("dtype <c16 is not supported"), "{err}");
        let err = parse(&npy("<U3", false, "(1,)", &[0; 12])).unwrap_err();
        assert!(err.contains("holds text (<U3)"), "{err}");
        let err = parse(&npy("<f8", false, "(2,)", &f64s(&[1.0, 2.0, 3.0]))).unwrap_err();
        assert!(err.contains("8 unexpected bytes"), "{err}");
        assert!(parse(b"PK\x03\x04").unwrap_err().contains("magic"));
        let nested = format!("{}{}", "(".repeat(5000), ")".repeat(5000));
        assert!(parse(&npy("<f8", false, &nested, &[])).is_err());
    }
}
