//! An LZO1X decompressor for single pages (makedumpfile's `-l`, descriptor flag 0x2),
//! written for hostile input: it writes only into the caller's buffer, checks every
//! read, length and look-behind distance, and never allocates.
//!
//! Why not a crate: `lzo1x` is GPL-2.0 (xenwalk is MIT OR Apache-2.0), and
//! `lzokay-native` 0.1.0 grows an unbounded `Vec` and underflows/indexes out of bounds
//! (a panic) on crafted input. The tests compress with `lzokay-native`, an independent
//! implementation, and check the round trip (the fixture's own encoder,
//! `fixture::kdump::lzo_compress`, is checked against `lzokay-native`'s decoder).
//!
//! The stream format is taken from Linux `Documentation/staging/lzo.rst` ("LZO stream
//! format as understood by Linux's LZO decompressor"), version 0 (no LZO-RLE, which
//! makedumpfile never writes). One correction to that text, from its subject
//! `lib/lzo/lzo1x_decompress_safe.c` (`if (*ip > 17) { t = *ip++ - 17; if (t < 4) ...`):
//! a first byte b > 17 copies b − 17 literals and sets state = b − 17 when that is
//! below 4, else 4 — so 18..20 copy 1..3 literals, not "0..3" as the document says.

// Parser of untrusted input: no unchecked indexing, no unwrap (STYLE.md §8).
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used))]

/// Why a stream does not decompress.
pub type LzoError = &'static str;

struct Input<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Input<'_> {
    fn byte(&mut self) -> Result<usize, LzoError> {
        let v = *self.b.get(self.pos).ok_or("LZO data ends in the middle of an instruction")?;
        self.pos += 1;
        Ok(usize::from(v))
    }

    fn le16(&mut self) -> Result<usize, LzoError> {
        let lo = self.byte()?;
        let hi = self.byte()?;
        Ok(lo | hi << 8)
    }

    /// A length whose `mask` bits in the instruction were zero: `mask` + 255 per zero
    /// byte + the first non-zero byte (reference "variable length encoding").
    fn long_len(&mut self, mask: usize, limit: usize) -> Result<usize, LzoError> {
        let mut len = mask;
        loop {
            let b = self.byte()?;
            if b != 0 {
                return Ok(len + b);
            }
            len += 255;
            if len > limit {
                return Err("LZO length runs past the end of the page");
            }
        }
    }
}

struct Output<'a> {
    b: &'a mut [u8],
    pos: usize,
}

impl Output<'_> {
    fn literals(&mut self, inp: &mut Input<'_>, n: usize) -> Result<(), LzoError> {
        let src = inp
            .pos
            .checked_add(n)
            .and_then(|e| inp.b.get(inp.pos..e))
            .ok_or("LZO literal run ends past the compressed data")?;
        let dst = self
            .pos
            .checked_add(n)
            .and_then(|e| self.b.get_mut(self.pos..e))
            .ok_or("LZO literal run writes past the end of the page")?;
        dst.copy_from_slice(src);
        inp.pos += n;
        self.pos += n;
        Ok(())
    }

    /// Copy `len` bytes from `dist` bytes back (the ranges may overlap: byte by byte).
    fn back_copy(&mut self, dist: usize, len: usize) -> Result<(), LzoError> {
        if dist == 0 || dist > self.pos {
            return Err("LZO match refers to data before the start of the page");
        }
        if self.pos.checked_add(len).is_none_or(|e| e > self.b.len()) {
            return Err("LZO match writes past the end of the page");
        }
        for _ in 0..len {
            let v = *self.b.get(self.pos - dist).ok_or("LZO match out of range")?;
            *self.b.get_mut(self.pos).ok_or("LZO match out of range")? = v;
            self.pos += 1;
        }
        Ok(())
    }
}

/// Decompress the LZO1X stream `src` into `dst`; returns the bytes written. The whole
/// input must be consumed by the end-of-stream marker.
pub fn decompress(src: &[u8], dst: &mut [u8]) -> Result<usize, LzoError> {
    let limit = dst.len();
    let mut inp = Input { b: src, pos: 0 };
    let mut out = Output { b: dst, pos: 0 };
    // `state`: literals copied by the previous instruction (0..3), or 4 after a run of
    // four or more; it changes the meaning of instructions 0..15.
    let mut state = 0usize;
    let first = usize::from(*src.first().ok_or("empty LZO data")?);
    if first > 17 {
        inp.pos = 1;
        let n = first - 17;
        out.literals(&mut inp, n)?;
        state = n.min(4);
    }
    loop {
        let inst = inp.byte()?;
        let (dist, len, next);
        if inst >= 64 {
            // 1 L L D D D S S: 5..8 bytes; 0 1 L D D D S S: 3..4 bytes; within 2 KiB.
            let h = inp.byte()?;
            len = if inst >= 128 { 5 + (inst >> 5 & 3) } else { 3 + (inst >> 5 & 1) };
            dist = (h << 3) + (inst >> 2 & 7) + 1;
            next = inst & 3;
        } else if inst >= 32 {
            // 0 0 1 L L L L L, then LE16 D..D S S: within 16 KiB.
            let l = inst & 31;
            len = 2 + if l == 0 { inp.long_len(31, limit)? } else { l };
            let d = inp.le16()?;
            dist = (d >> 2) + 1;
            next = d & 3;
        } else if inst >= 16 {
            // 0 0 0 1 H L L L, then LE16: 16..48 KiB; distance 16384 ends the stream.
            let l = inst & 7;
            len = 2 + if l == 0 { inp.long_len(7, limit)? } else { l };
            let d = inp.le16()?;
            let far = ((inst & 8) << 11) + (d >> 2);
            if far == 0 {
                // The marker is 0x11 0x00 0x00: any other length is an error (Linux
                // `eof_found`: `t != 3 ? LZO_E_ERROR`).
                if len != 3 {
                    return Err("LZO end-of-stream marker has the wrong length");
                }
                break;
            }
            dist = far + 16384;
            next = d & 3;
        } else if state == 0 {
            // 0 0 0 0 L L L L after no literals: a run of 4 or more literals.
            let l = inst & 15;
            let n = 3 + if l == 0 { inp.long_len(15, limit)? } else { l };
            out.literals(&mut inp, n)?;
            state = 4;
            continue;
        } else {
            // 0 0 0 0 D D S S, then H: 2 bytes within 1 KiB after 1..3 literals, or
            // 3 bytes at 2..3 KiB after a longer run.
            let h = inp.byte()?;
            let base = (h << 2) + (inst >> 2 & 3);
            (dist, len) = if state == 4 { (base + 2049, 3) } else { (base + 1, 2) };
            next = inst & 3;
        }
        out.back_copy(dist, len)?;
        out.literals(&mut inp, next)?;
        state = next;
    }
    if inp.pos != src.len() {
        return Err("LZO data continues after its end-of-stream marker");
    }
    Ok(out.pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(seed: u64) -> Vec<u8> {
        // Compressible but not trivial: repeated words with variations.
        let mut x = seed | 1;
        (0..4096)
            .map(|i| {
                if i % 64 < 40 {
                    (i / 64) as u8
                } else {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                }
            })
            .collect()
    }

    #[test]
    fn round_trip_with_an_independent_compressor() {
        for seed in 1..20u64 {
            let data = page(seed);
            let c = lzokay_native::compress(&data).unwrap();
            assert!(c.len() < data.len());
            let mut out = [0u8; 4096];
            assert_eq!(decompress(&c, &mut out), Ok(4096), "seed {seed}");
            assert_eq!(&out[..], &data[..]);
        }
        // Zeros (long matches) and noise (long literal runs).
        for data in [vec![0u8; 4096], page(0).iter().map(|b| b ^ 0x5a).collect()] {
            let c = lzokay_native::compress(&data).unwrap();
            let mut out = [0u8; 4096];
            assert_eq!(decompress(&c, &mut out), Ok(4096));
            assert_eq!(&out[..], &data[..]);
        }
    }

    #[test]
    fn hostile_input_is_an_error_not_a_panic() {
        let good = lzokay_native::compress(&page(3)).unwrap();
        let mut out = [0u8; 4096];
        // Every truncation, every single-byte corruption.
        for cut in 0..good.len() {
            let _ = decompress(&good[..cut], &mut out);
        }
        for i in 0..good.len() {
            for v in [0u8, 1, 0x11, 0x20, 0x40, 0xff] {
                let mut bad = good.clone();
                bad[i] = v;
                let _ = decompress(&bad, &mut out);
            }
        }
        // Output larger than the buffer.
        let big = lzokay_native::compress(&vec![7u8; 8192]).unwrap();
        assert!(decompress(&big, &mut out).is_err());
        // A match before the start; a huge length of zero bytes; trailing bytes.
        assert!(decompress(&[0x40, 0x00], &mut out).is_err());
        let mut zeros = vec![0x20u8];
        zeros.extend(std::iter::repeat_n(0u8, 10_000));
        assert!(decompress(&zeros, &mut out).is_err());
        assert!(decompress(&[0x12, 0, 0], &mut out).is_err(), "end marker of length 4");
        let mut trailing = crate::fixture::kdump::lzo_compress(&[1, 2, 3]);
        trailing.push(0);
        assert!(decompress(&trailing, &mut out).is_err());
        assert!(decompress(&[], &mut out).is_err());
    }
}
