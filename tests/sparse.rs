//! Opening costs O(segments), not O(bytes): a 64 GiB sparse raw image (a few pages
//! of data, the rest holes) is mapped, walked and listed without being read.

mod common;

use std::os::unix::fs::MetadataExt;
use xenwalk::fixture::{Machine, PageTables, XEN_TABLE};
use xenwalk::paging::Level;
use xenwalk::paging::entry::bits;
use xenwalk::{Maddr, Vaddr};

#[test]
fn a_64_gib_sparse_image_is_not_read() {
    const GIB: u64 = 1 << 30;
    let dir = common::tempdir("sparse");
    let path = dir.join("big.raw");
    // Tables at the top of 64 GiB (Machine allocates from the top), mappings far apart.
    let mut m = Machine::new(64 * GIB);
    let pt = PageTables::new(&mut m);
    let leaf = bits::P | bits::RW | bits::A | bits::D | bits::NX;
    pt.map(&mut m, Vaddr(0xffff_8300_0000_0000 + 60 * GIB), Maddr(60 * GIB), Level::L3, leaf, XEN_TABLE);
    pt.map(&mut m, Vaddr(0xffff_82d0_4020_0000), Maddr(63 * GIB + 0x1000), Level::L1, leaf, XEN_TABLE);
    m.write_raw(&path).unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.len(), 64 * GIB);
    assert!(meta.blocks() * 512 < 16 << 20, "the test image itself should be sparse");

    let p = path.to_str().unwrap();
    let root = format!("{}", pt.root);
    let r = common::run(&[p, "--cr3", &root, "--va", "ffff830f00000123", "--va", "ffff82d040200008", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let walks = r.json_of("walk");
    assert_eq!(walks[0]["maddr"], format!("{:#x}", 60 * GIB + 0x123));
    assert_eq!(walks[1]["maddr"], format!("{:#x}", 63 * GIB + 0x1008));
    let r = common::run(&[p, "--cr3", &root, "--json"]);
    assert_eq!(r.json_of("summary")[0]["leaves"]["l3"], 1);
    let r = common::run(&["info", p]);
    assert!(r.stdout.contains("64 GiB"), "{}", r.stdout);

    // Had any of these runs read the image, its pages would have been resident.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) }, 0);
    let max_rss_kib = ru.ru_maxrss as u64;
    assert!(max_rss_kib < 256 * 1024, "a child's peak RSS was {max_rss_kib} KiB: the image was read");
    let _ = std::fs::remove_dir_all(&dir);
}
