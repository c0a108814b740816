use super::*;
use proptest::prelude::*;

/// Decodes `wire` fed in pieces of the given sizes (cycled); returns the data, the
/// trailers and whether the body ended, or the first error.
fn decode_split(wire: &[u8], splits: &[usize]) -> Result<(Vec<u8>, Option<HeaderMap>, bool), ChunkError> {
    let mut dec = ChunkedDecoder::default();
    let mut buf = BytesMut::new();
    let (mut data, mut trailers) = (Vec::new(), None);
    let mut fed = 0;
    let mut i = 0;
    loop {
        match dec.decode(&mut buf)? {
            Decoded::Frame(f) => match f.into_data() {
                Ok(d) => data.extend_from_slice(&d),
                Err(f) => trailers = f.into_trailers().ok(),
            },
            Decoded::End => return Ok((data, trailers, true)),
            Decoded::NeedMore => {
                if fed == wire.len() {
                    return Ok((data, trailers, false));
                }
                let n = splits.get(i % splits.len().max(1)).copied().unwrap_or(1).clamp(1, wire.len() - fed);
                i += 1;
                buf.extend_from_slice(&wire[fed..fed + n]);
                fed += n;
            }
        }
    }
}

fn encode(body: &[u8], chunks: &[usize], ext: bool, trailers: &HeaderMap) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    let mut i = 0;
    while !rest.is_empty() {
        let n = chunks.get(i % chunks.len().max(1)).copied().unwrap_or(rest.len()).clamp(1, rest.len());
        i += 1;
        let head = chunk_head(n);
        if ext {
            // The size line with an extension: `a;name=value\r\n`.
            out.extend_from_slice(&head[..head.len() - 2]);
            out.extend_from_slice(b" ;ext=\"x\"\r\n");
        } else {
            out.extend_from_slice(&head);
        }
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(CHUNK_END);
        rest = &rest[n..];
    }
    if trailers.is_empty() {
        out.extend_from_slice(LAST_CHUNK);
    } else {
        out.extend_from_slice(&last_chunk_with(trailers));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn any_chunking_and_any_read_split_decodes_to_the_input(
        body in proptest::collection::vec(any::<u8>(), 0..3000),
        chunks in proptest::collection::vec(1usize..700, 1..8),
        splits in proptest::collection::vec(1usize..40, 1..8),
        ext in any::<bool>(),
        with_trailers in any::<bool>(),
    ) {
        let mut trailers = HeaderMap::new();
        if with_trailers {
            trailers.insert("x-checksum", HeaderValue::from_static("abc123"));
            trailers.append("x-more", HeaderValue::from_static("1"));
        }
        let wire = encode(&body, &chunks, ext, &trailers);
        let (data, got_trailers, ended) = decode_split(&wire, &splits).expect("valid chunked body");
        prop_assert!(ended);
        prop_assert_eq!(data, body);
        prop_assert_eq!(got_trailers.unwrap_or_default(), trailers);
    }

    #[test]
    fn bytes_after_the_last_chunk_stay_in_the_buffer(next in proptest::collection::vec(any::<u8>(), 0..50)) {
        let mut buf = BytesMut::from(&b"3\r\nabc\r\n0\r\n\r\n"[..]);
        buf.extend_from_slice(&next);
        let (data, _, ended) = {
            let mut dec = ChunkedDecoder::default();
            let mut data = Vec::new();
            loop {
                match dec.decode(&mut buf).expect("valid") {
                    Decoded::Frame(f) => data.extend_from_slice(&f.into_data().unwrap_or_default()),
                    Decoded::End => break (data, (), true),
                    Decoded::NeedMore => break (data, (), false),
                }
            }
        };
        prop_assert!(ended);
        prop_assert_eq!(data, b"abc".to_vec());
        prop_assert_eq!(&buf[..], &next[..]);
    }
}

fn decode_all(wire: &[u8]) -> Result<(Vec<u8>, bool), ChunkError> {
    decode_split(wire, &[wire.len().max(1)]).map(|(d, _, ended)| (d, ended))
}

#[test]
fn malformed_chunked_bodies_are_refused_with_the_reason() {
    let cases: &[(&[u8], ChunkError)] = &[
        (b"zz\r\nab\r\n0\r\n\r\n", ChunkError::BadSize),
        (b"\r\n", ChunkError::BadSize),
        (b"-1\r\n", ChunkError::BadSize),
        (b"3x\r\nabc\r\n", ChunkError::BadSize),
        (b"10000000000000000\r\n", ChunkError::SizeOverflow),
        (b"3\nabc\r\n", ChunkError::MissingCrlf),
        (b"3\r\nabcXY0\r\n\r\n", ChunkError::MissingCrlf),
        (b"3\r\nabc\rX", ChunkError::MissingCrlf),
        (b"0\r\n: no-name\r\n\r\n", ChunkError::BadTrailers),
        (b"0\r\n\n\n", ChunkError::BadTrailers),
        (b"0\r\nbad name: v\r\n\r\n", ChunkError::BadTrailers),
    ];
    for (wire, want) in cases {
        assert_eq!(decode_all(wire).err(), Some(*want), "{:?}", String::from_utf8_lossy(wire));
        // Byte by byte, the same verdict.
        assert_eq!(decode_split(wire, &[1]).err(), Some(*want), "split: {:?}", String::from_utf8_lossy(wire));
    }
}

#[test]
fn an_endless_size_line_or_trailer_section_is_refused() {
    let mut line = b"1".to_vec();
    line.extend(std::iter::repeat_n(b'0', MAX_SIZE_LINE));
    assert_eq!(decode_all(&line).err(), Some(ChunkError::LineTooLong));
    let mut trailer = b"0\r\nx-a: ".to_vec();
    trailer.extend(std::iter::repeat_n(b'a', MAX_TRAILERS));
    assert_eq!(decode_all(&trailer).err(), Some(ChunkError::BadTrailers));
}

#[test]
fn a_truncated_body_needs_more_and_sixteen_hex_digits_fit() {
    assert_eq!(decode_all(b"5\r\nab").expect("partial"), (b"ab".to_vec(), false));
    assert_eq!(decode_all(b"0000000000000000000003\r\nabc\r\n0\r\n\r\n").expect("leading zeros"), (b"abc".to_vec(), true));
    let mut dec = ChunkedDecoder::default();
    let mut buf = BytesMut::from(&b"ffffffffffffffff\r\nab"[..]);
    assert!(matches!(dec.decode(&mut buf), Ok(Decoded::Frame(_))));
    assert!(!dec.is_done());
}

#[test]
fn the_encoding_pieces_are_what_the_decoder_reads() {
    assert_eq!(&chunk_head(255)[..], b"ff\r\n");
    let mut t = HeaderMap::new();
    t.insert("x-sum", HeaderValue::from_static("1"));
    assert_eq!(&last_chunk_with(&t)[..], b"0\r\nx-sum: 1\r\n\r\n");
}
