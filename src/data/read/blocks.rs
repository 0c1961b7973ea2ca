//! A CSV cut into blocks of whole records, read in order, so that the blocks can be parsed on
//! every core: each block ends after a newline that lies outside any quoted field.

use std::borrow::Cow;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use memchr::{memchr, memrchr};

use crate::error::{Error, Result};

/// The bytes read at a time: large enough that a block is worth a thread, small enough that a
/// few in flight cost little memory.
pub const BLOCK_BYTES: usize = 4 << 20;

/// Whole records and where they sit in the file.
pub struct Block<'a> {
    pub bytes: Cow<'a, [u8]>,
    /// The byte offset of `bytes[0]` in the file.
    pub offset: u64,
    /// The line `bytes[0]` is on (1-based).
    pub line: u64,
    /// The newlines in `bytes`: at least the records there are, less one.
    pub newlines: usize,
}

enum Input<'a> {
    File(File),
    Memory(&'a [u8]),
}

/// Blocks of a file or of bytes in memory, in order.
pub struct Blocks<'a> {
    input: Input<'a>,
    /// Bytes read but not yet handed out: the start of a record cut by the last read.
    carry: Vec<u8>,
    /// Where the next block starts: byte offset and line.
    offset: u64,
    line: u64,
    /// Read from `Memory` so far.
    memory_at: usize,
    done: bool,
    path: &'a Path,
    /// Buffers of parsed blocks, to read into again.
    spare: Vec<Vec<u8>>,
    block_bytes: usize,
}

impl<'a> Blocks<'a> {
    /// Blocks of about `block_bytes` (at least 1) of `file`.
    pub fn file(path: &'a Path, file: File, block_bytes: usize) -> Self {
        Self::new(path, Input::File(file), block_bytes)
    }

    pub fn memory(path: &'a Path, bytes: &'a [u8], block_bytes: usize) -> Self {
        Self::new(path, Input::Memory(bytes), block_bytes)
    }

    fn new(path: &'a Path, input: Input<'a>, block_bytes: usize) -> Self {
        Blocks {
            block_bytes: block_bytes.max(1),
            input,
            carry: Vec::new(),
            offset: 0,
            line: 1,
            memory_at: 0,
            done: false,
            path,
            spare: Vec::new(),
        }
    }

    /// The input's size, when it is known.
    pub fn total(&self) -> Option<u64> {
        match &self.input {
            Input::File(file) => file.metadata().ok().map(|m| m.len()),
            Input::Memory(bytes) => Some(bytes.len() as u64),
        }
    }

    /// Takes back blocks already parsed: their buffers are read into again.
    pub fn recycle(&mut self, blocks: Vec<Block<'a>>) {
        self.spare
            .extend(blocks.into_iter().filter_map(|b| match b.bytes {
                Cow::Owned(v) => Some(v),
                Cow::Borrowed(_) => None,
            }));
    }

    /// The bytes handed out so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next block of whole records; `None` at the end.
    pub fn next_block(&mut self) -> Result<Option<Block<'a>>> {
        if self.done {
            return Ok(None);
        }
        match self.input {
            Input::Memory(bytes) => {
                let rest = &bytes[self.memory_at..];
                let want = self.block_bytes.min(rest.len());
                let end = if want == rest.len() {
                    Some(rest.len())
                } else {
                    // A record longer than a block: look further, doubling.
                    let mut look = want;
                    loop {
                        if let Some(end) = last_record_end(&rest[..look]) {
                            break Some(end);
                        }
                        if look == rest.len() {
                            break Some(look);
                        }
                        look = (look * 2).min(rest.len());
                    }
                };
                let end = end.unwrap_or(rest.len());
                let block = &rest[..end];
                self.memory_at += end;
                self.done = self.memory_at == bytes.len();
                Ok(Some(self.hand_out(Cow::Borrowed(block))))
            }
            Input::File(ref mut file) => {
                let mut buf = self.spare.pop().unwrap_or_default();
                buf.clear();
                buf.append(&mut self.carry);
                loop {
                    buf.reserve(self.block_bytes);
                    let read = file
                        .by_ref()
                        .take(self.block_bytes as u64)
                        .read_to_end(&mut buf)
                        .map_err(|e| Error::io(self.path, e))?;
                    if read == 0 {
                        self.done = true;
                        if buf.is_empty() {
                            return Ok(None);
                        }
                        return Ok(Some(self.hand_out(Cow::Owned(buf))));
                    }
                    if let Some(end) = last_record_end(&buf) {
                        self.carry.extend_from_slice(&buf[end..]);
                        buf.truncate(end);
                        return Ok(Some(self.hand_out(Cow::Owned(buf))));
                    }
                }
            }
        }
    }

    fn hand_out(&mut self, bytes: Cow<'a, [u8]>) -> Block<'a> {
        let newlines = memchr::memchr_iter(b'\n', &bytes).count();
        let block = Block {
            offset: self.offset,
            line: self.line,
            newlines,
            bytes,
        };
        self.offset += block.bytes.len() as u64;
        self.line += newlines as u64;
        block
    }
}

/// The end (just past a newline) of the last whole record in `bytes`, which starts at a record
/// start; `None` when no record ends in it. A quote opens a quoted field only as a field's first
/// byte (elsewhere it is text); in a quoted field `""` is a quote.
pub fn last_record_end(bytes: &[u8]) -> Option<usize> {
    let mut end = None;
    let mut outside_from = 0;
    let mut at = 0;
    while let Some(k) = memchr(b'"', &bytes[at..]) {
        let quote = at + k;
        let opens = quote == 0 || matches!(bytes[quote - 1], b',' | b'\n');
        if !opens {
            at = quote + 1;
            continue;
        }
        if let Some(n) = memrchr(b'\n', &bytes[outside_from..quote]) {
            end = Some(outside_from + n + 1);
        }
        // The closing quote: one not followed by another.
        let mut search = quote + 1;
        loop {
            match memchr(b'"', &bytes[search..]) {
                None => return end,
                Some(k) if bytes.get(search + k + 1) == Some(&b'"') => search += k + 2,
                Some(k) => {
                    search += k + 1;
                    break;
                }
            }
        }
        outside_from = search;
        at = search;
    }
    if let Some(n) = memrchr(b'\n', &bytes[outside_from..]) {
        end = Some(outside_from + n + 1);
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_end_at_newlines_outside_quotes() {
        assert_eq!(last_record_end(b"a,b\n1,2\n3,"), Some(8));
        assert_eq!(last_record_end(b"a,b\n1,\"x\ny\"\n3,\"4\n"), Some(12));
        assert_eq!(last_record_end(b"a,\"b\n"), None);
        assert_eq!(last_record_end(b"a,\"b\"\"\nc\"\n"), Some(10));
        // A quote inside an unquoted field is text: the newline after it ends the record.
        assert_eq!(last_record_end(b"5\" screen,1\n2,3"), Some(12));
    }

    #[test]
    fn blocks_cover_the_bytes_in_order_with_their_lines() {
        let text: Vec<u8> = (0..200_000)
            .flat_map(|i| format!("{i},\"a,\n{i}\"\n").into_bytes())
            .collect();
        let path = Path::new("t.csv");
        let mut blocks = Blocks::memory(path, &text, 1 << 16);
        let mut joined = Vec::new();
        let mut line = 1;
        while let Some(block) = blocks.next_block().unwrap() {
            assert_eq!(block.offset as usize, joined.len());
            assert_eq!(block.line, line);
            line += block.bytes.iter().filter(|&&b| b == b'\n').count() as u64;
            assert!(block.bytes.ends_with(b"\"\n"));
            joined.extend_from_slice(&block.bytes);
        }
        assert_eq!(joined, text);
    }
}
