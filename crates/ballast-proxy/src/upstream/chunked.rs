//! The chunked transfer coding (RFC 9112 §7.1): a decoder for response bodies that
//! accepts any split of its input, and the pieces to encode a request body.
//!
//! The decoder is strict: a chunk size that is not hex, overflows 64 bits or is not
//! followed by CRLF, chunk data not followed by CRLF, or a malformed trailer section is
//! an error, never a guess.

use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http_body::Frame;

/// A chunk-size line (with its extensions) longer than this is refused.
const MAX_SIZE_LINE: usize = 4096;
/// A trailer section larger than this is refused.
const MAX_TRAILERS: usize = super::codec::MAX_HEAD_BYTES;

/// What is wrong with a chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// The chunk size is not a hex number (optionally followed by extensions).
    #[error("invalid chunk size")]
    BadSize,
    /// The chunk size does not fit in 64 bits.
    #[error("chunk size overflows")]
    SizeOverflow,
    /// A chunk-size line or chunk data is not followed by CRLF.
    #[error("missing CRLF in chunked body")]
    MissingCrlf,
    /// A chunk-size line longer than 4 KiB.
    #[error("chunk-size line too long")]
    LineTooLong,
    /// The trailer section is malformed or larger than 64 KiB.
    #[error("invalid chunked trailer section")]
    BadTrailers,
}

/// One step of decoding.
#[derive(Debug)]
pub enum Decoded {
    /// A data frame, or the trailers (the last frame).
    Frame(Frame<Bytes>),
    /// The input ends before the next frame: read more.
    NeedMore,
    /// The body has ended (the last chunk and trailers are consumed).
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

/// A chunked-body decoder, fed from a buffer that grows between calls.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder { state: State::Size }
    }
}

impl ChunkedDecoder {
    /// Whether the whole body has been decoded.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Takes the next frame out of `buf` (data frames are split off it, no copy).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, ChunkError> {
        loop {
            match self.state {
                State::Size => {
                    let Some(size) = size_line(buf)? else { return Ok(Decoded::NeedMore) };
                    self.state = if size == 0 { State::Trailers } else { State::Data(size) };
                }
                State::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let left = left - take as u64;
                    self.state = if left == 0 { State::DataEnd } else { State::Data(left) };
                    return Ok(Decoded::Frame(Frame::data(buf.split_to(take).freeze())));
                }
                State::DataEnd => {
                    if buf.len() < 2 {
                        if buf.first().is_some_and(|&b| b != b'\r') {
                            return Err(ChunkError::MissingCrlf);
                        }
                        return Ok(Decoded::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(ChunkError::MissingCrlf);
                    }
                    buf.advance(2);
                    self.state = State::Size;
                }
                State::Trailers => return self.trailers(buf),
                State::Done => return Ok(Decoded::End),
            }
        }
    }

    fn trailers(&mut self, buf: &mut BytesMut) -> Result<Decoded, ChunkError> {
        if buf.starts_with(b"\r\n") {
            buf.advance(2);
            self.state = State::Done;
            return Ok(Decoded::End);
        }
        match buf.first() {
            None => return Ok(Decoded::NeedMore),
            Some(b'\r') if buf.len() == 1 => return Ok(Decoded::NeedMore),
            Some(&b) if is_token(b) => {}
            Some(_) => return Err(ChunkError::BadTrailers),
        }
        let window = &buf[..buf.len().min(MAX_TRAILERS)];
        let Some(end) = window.windows(4).position(|w| w == b"\r\n\r\n") else {
            return if buf.len() >= MAX_TRAILERS { Err(ChunkError::BadTrailers) } else { Ok(Decoded::NeedMore) };
        };
        let section = buf.split_to(end + 4);
        let mut fields = [httparse::EMPTY_HEADER; super::codec::MAX_HEADERS];
        let parsed = match httparse::parse_headers(&section, &mut fields) {
            Ok(httparse::Status::Complete((_, parsed))) => parsed,
            _ => return Err(ChunkError::BadTrailers),
        };
        let mut map = HeaderMap::with_capacity(parsed.len());
        for f in parsed {
            let name = HeaderName::from_bytes(f.name.as_bytes()).map_err(|_| ChunkError::BadTrailers)?;
            let value = HeaderValue::from_bytes(f.value).map_err(|_| ChunkError::BadTrailers)?;
            map.append(name, value);
        }
        self.state = State::Done;
        Ok(Decoded::Frame(Frame::trailers(map)))
    }
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parses and consumes a complete `chunk-size [ext] CRLF` line; `None` when incomplete.
fn size_line(buf: &mut BytesMut) -> Result<Option<u64>, ChunkError> {
    let window = &buf[..buf.len().min(MAX_SIZE_LINE)];
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        return if buf.len() >= MAX_SIZE_LINE { Err(ChunkError::LineTooLong) } else { Ok(None) };
    };
    if lf == 0 || buf[lf - 1] != b'\r' {
        return Err(ChunkError::MissingCrlf);
    }
    let line = &buf[..lf - 1];
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(ChunkError::BadSize);
    }
    let rest = line[digits..].trim_ascii_start();
    if !(rest.is_empty() || rest[0] == b';') {
        return Err(ChunkError::BadSize);
    }
    let mut size: u64 = 0;
    for &b in &line[..digits] {
        let d = (b as char).to_digit(16).ok_or(ChunkError::BadSize)?;
        size = size.checked_mul(16).and_then(|s| s.checked_add(u64::from(d))).ok_or(ChunkError::SizeOverflow)?;
    }
    buf.advance(lf + 1);
    Ok(Some(size))
}

/// The `chunk-size CRLF` line announcing `len` bytes of data.
pub fn chunk_head(len: usize) -> Bytes {
    Bytes::from(format!("{len:x}\r\n"))
}

/// The CRLF after a chunk's data.
pub const CHUNK_END: &[u8] = b"\r\n";
/// The last chunk with no trailers.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// The last chunk followed by `trailers`.
pub fn last_chunk_with(trailers: &HeaderMap) -> Bytes {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(b"0\r\n");
    for (name, value) in trailers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Bytes::from(out)
}

#[cfg(test)]
#[path = "chunked_tests.rs"]
mod tests;
