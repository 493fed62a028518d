//! How a page is stored ([`Compression`], from a descriptor's flags) and decoding one
//! page of each kind ([`decompress`]): zlib, LZO, snappy and zstd, with the zstd
//! window bounded before decoding. Every failure is an error, never a panic.

use super::PAGE;
use super::header::{
    DUMP_DH_COMPRESSED_LZO, DUMP_DH_COMPRESSED_SNAPPY, DUMP_DH_COMPRESSED_ZLIB, DUMP_DH_COMPRESSED_ZSTD,
};
use crate::mem::lzo;

/// How one page is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Zlib,
    Lzo,
    Snappy,
    Zstd,
}

impl Compression {
    /// The kind a descriptor's `flags` name; `None` for unknown or several bits.
    pub fn from_flags(flags: u32) -> Option<Compression> {
        Some(match flags {
            0 => Compression::None,
            DUMP_DH_COMPRESSED_ZLIB => Compression::Zlib,
            DUMP_DH_COMPRESSED_LZO => Compression::Lzo,
            DUMP_DH_COMPRESSED_SNAPPY => Compression::Snappy,
            DUMP_DH_COMPRESSED_ZSTD => Compression::Zstd,
            _ => return None,
        })
    }

    /// The descriptor flag for this kind.
    pub fn flag(self) -> u32 {
        match self {
            Compression::None => 0,
            Compression::Zlib => DUMP_DH_COMPRESSED_ZLIB,
            Compression::Lzo => DUMP_DH_COMPRESSED_LZO,
            Compression::Snappy => DUMP_DH_COMPRESSED_SNAPPY,
            Compression::Zstd => DUMP_DH_COMPRESSED_ZSTD,
        }
    }
}

/// zstd frames for one page: a window above this is refused before decoding, so a
/// crafted frame cannot make the decoder hold more than this (plus one 128 KiB block).
const ZSTD_MAX_WINDOW: u64 = 1 << 20;

/// Window size a zstd frame header asks for (RFC 8878 §3.1.1.1), or an error.
fn zstd_window(src: &[u8]) -> Result<u64, &'static str> {
    const BAD: &str = "zstd frame header is truncated or invalid";
    if src.get(..4) != Some(&[0x28, 0xb5, 0x2f, 0xfd][..]) {
        return Err("zstd data lacks the frame magic");
    }
    let fhd = *src.get(4).ok_or(BAD)?;
    let single = fhd & 0x20 != 0;
    if !single {
        let wd = *src.get(5).ok_or(BAD)?;
        let log = 10 + u64::from(wd >> 3);
        let base = 1u64 << log;
        return Ok(base + (base / 8) * u64::from(wd & 7));
    }
    // Single segment: the window is the content size.
    let dict = match fhd & 3 {
        0 => 0,
        1 => 1,
        2 => 2,
        _ => 4,
    };
    let at = 5 + dict;
    let fcs = match fhd >> 6 {
        0 => u64::from(*src.get(at).ok_or(BAD)?),
        1 => {
            let b = src.get(at..at + 2).ok_or(BAD)?;
            u64::from(u16::from_le_bytes(b.try_into().map_err(|_| BAD)?)) + 256
        }
        2 => u64::from(u32::from_le_bytes(src.get(at..at + 4).ok_or(BAD)?.try_into().map_err(|_| BAD)?)),
        _ => u64::from_le_bytes(src.get(at..at + 8).ok_or(BAD)?.try_into().map_err(|_| BAD)?),
    };
    Ok(fcs)
}

fn zstd_page(src: &[u8], out: &mut [u8; PAGE]) -> Result<(), &'static str> {
    use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};
    use std::io::Read;
    if zstd_window(src)? > ZSTD_MAX_WINDOW {
        return Err("zstd frame asks for a window larger than 1 MiB: not a single page");
    }
    let mut input = src;
    let mut dec = FrameDecoder::new();
    dec.init(&mut input).map_err(|_| "zstd frame header is invalid")?;
    let mut done = 0usize;
    loop {
        let finished = dec
            .decode_blocks(&mut input, BlockDecodingStrategy::UptoBlocks(1))
            .map_err(|_| "zstd data is corrupt or truncated")?;
        // Drain what the decoder may hand out; more than a page is an error.
        let dst = out.get_mut(done..).unwrap_or(&mut []);
        done += dec.read(dst).map_err(|_| "zstd data is corrupt")?;
        if dec.can_collect() > 0 {
            return Err("zstd data decompresses past the end of the page");
        }
        if finished {
            break;
        }
    }
    if !input.is_empty() {
        return Err("zstd data continues after its frame");
    }
    if let (Some(want), Some(got)) = (dec.get_checksum_from_data(), dec.get_calculated_checksum()) {
        if want != got {
            return Err("zstd content checksum does not match");
        }
    }
    if done != PAGE {
        return Err("zstd data does not decompress to exactly one 4 KiB page");
    }
    Ok(())
}

/// Decode one page stored as `kind` into `out`. Every way of failing is an error
/// (never a panic, never output past the page).
pub fn decompress(kind: Compression, src: &[u8], out: &mut [u8; PAGE]) -> Result<(), &'static str> {
    match kind {
        Compression::None => {
            let p: &[u8; PAGE] = src.try_into().map_err(|_| "uncompressed page data is not 4096 bytes")?;
            out.copy_from_slice(p);
            Ok(())
        }
        Compression::Zlib => {
            // makedumpfile `compress2`, crash `uncompress`: a zlib stream (RFC 1950).
            // zlib-rs's one-shot `uncompress` (zlib's, ported): the whole page in one
            // call, Z_BUF_ERROR when the data would inflate past the page and
            // Z_DATA_ERROR when it is corrupt or ends early (zlib.h, uncompress()).
            let (got, code) = zlib_rs::decompress_slice(out, src, zlib_rs::InflateConfig::default());
            match code {
                zlib_rs::ReturnCode::Ok if got.len() == PAGE => Ok(()),
                zlib_rs::ReturnCode::Ok => Err("zlib data does not inflate to exactly one 4 KiB page"),
                zlib_rs::ReturnCode::BufError => Err("zlib data inflates past the end of the page"),
                _ => Err("zlib data is corrupt or truncated"),
            }
        }
        Compression::Lzo => match lzo::decompress(src, out) {
            Ok(PAGE) => Ok(()),
            Ok(_) => Err("LZO data does not decompress to exactly one 4 KiB page"),
            Err(e) => Err(e),
        },
        Compression::Snappy => {
            // makedumpfile `snappy_compress`: the raw (unframed) snappy format.
            match snap::raw::decompress_len(src) {
                Ok(PAGE) => {}
                Ok(_) => return Err("snappy data does not claim exactly one 4 KiB page"),
                Err(_) => return Err("snappy data is corrupt"),
            }
            match snap::raw::Decoder::new().decompress(src, out) {
                Ok(PAGE) => Ok(()),
                Ok(_) => Err("snappy data does not decompress to exactly one 4 KiB page"),
                Err(_) => Err("snappy data is corrupt or truncated"),
            }
        }
        Compression::Zstd => zstd_page(src, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(seed: u64) -> Box<[u8; PAGE]> {
        let mut p = Box::new([0u8; PAGE]);
        let mut x = seed | 1;
        for (i, b) in p.iter_mut().enumerate() {
            *b = if i % 128 < 96 {
                (i / 128) as u8
            } else {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            };
        }
        p
    }

    fn round_trip(kind: Compression, data: &[u8]) {
        let mut out = [0u8; PAGE];
        decompress(kind, data, &mut out).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        assert_eq!(&out[..], &page(7)[..], "{kind:?}");
    }

    #[test]
    fn every_compression_round_trips() {
        let p = page(7);
        round_trip(Compression::None, &p[..]);
        round_trip(Compression::Zlib, &miniz_oxide::deflate::compress_to_vec_zlib(&p[..], 6));
        round_trip(Compression::Lzo, &lzokay_native::compress(&p[..]).unwrap());
        round_trip(Compression::Lzo, &crate::fixture::kdump::lzo_compress(&p[..]));
        round_trip(Compression::Snappy, &snap::raw::Encoder::new().compress_vec(&p[..]).unwrap());
        round_trip(
            Compression::Zstd,
            &ruzstd::encoding::compress_to_vec(&p[..], ruzstd::encoding::CompressionLevel::Fastest),
        );
    }

    #[test]
    fn corrupt_pages_are_errors() {
        let p = page(7);
        let big = [0x5au8; 2 * PAGE];
        let small = [0x5au8; 100];
        let mut out = [0u8; PAGE];
        let cases: Vec<(Compression, Vec<u8>)> = vec![
            (Compression::None, p[..100].to_vec()),
            (Compression::Zlib, miniz_oxide::deflate::compress_to_vec_zlib(&big, 6)),
            (Compression::Zlib, miniz_oxide::deflate::compress_to_vec_zlib(&small, 6)),
            (Compression::Zlib, vec![0x78, 0x9c, 0xff, 0xff]),
            (Compression::Lzo, lzokay_native::compress(&big).unwrap()),
            (Compression::Snappy, snap::raw::Encoder::new().compress_vec(&big).unwrap()),
            (Compression::Snappy, snap::raw::Encoder::new().compress_vec(&small).unwrap()),
            (
                Compression::Zstd,
                ruzstd::encoding::compress_to_vec(&big[..], ruzstd::encoding::CompressionLevel::Fastest),
            ),
            (
                Compression::Zstd,
                ruzstd::encoding::compress_to_vec(&small[..], ruzstd::encoding::CompressionLevel::Fastest),
            ),
            (Compression::Zstd, vec![0x28, 0xb5, 0x2f, 0xfd, 0x00]),
            (Compression::Zstd, vec![1, 2, 3]),
        ];
        for (kind, data) in &cases {
            assert!(decompress(*kind, data, &mut out).is_err(), "{kind:?} of {} bytes was accepted", data.len());
        }
        // Every truncation and many corruptions of each kind: errors, no panic.
        let good: Vec<(Compression, Vec<u8>)> = vec![
            (Compression::Zlib, miniz_oxide::deflate::compress_to_vec_zlib(&p[..], 6)),
            (Compression::Snappy, snap::raw::Encoder::new().compress_vec(&p[..]).unwrap()),
            (Compression::Zstd, ruzstd::encoding::compress_to_vec(&p[..], ruzstd::encoding::CompressionLevel::Fastest)),
        ];
        for (kind, data) in &good {
            for cut in 0..data.len() {
                assert!(decompress(*kind, &data[..cut], &mut out).is_err(), "{kind:?} cut {cut}");
            }
            for i in 0..data.len() {
                let mut bad = data.clone();
                bad[i] ^= 0xa5;
                let _ = decompress(*kind, &bad, &mut out);
            }
        }
    }

    #[test]
    fn zstd_windows_are_bounded() {
        // Frame header with a 2 GiB window (not single segment).
        let frame = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xa8, 0x01, 0x00, 0x00];
        assert_eq!(zstd_window(&frame), Ok(1 << 31));
        let mut out = [0u8; PAGE];
        assert!(decompress(Compression::Zstd, &frame, &mut out).is_err());
        // A real frame of one page asks for a small window.
        let p = page(7);
        let c = ruzstd::encoding::compress_to_vec(&p[..], ruzstd::encoding::CompressionLevel::Fastest);
        assert!(zstd_window(&c).unwrap() <= ZSTD_MAX_WINDOW);
    }
}
