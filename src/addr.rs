//! Address and frame newtypes.
//!
//! A Xen dump mixes four kinds of numbers that are all `u64` to the machine: machine
//! addresses, virtual addresses, machine frame numbers and guest frame numbers. Mixing
//! them up is the most common reason a hand-rolled walk "hits zeros" (reference
//! `xen-x86-64.md` §9, pitfall 3), so each kind is its own `Copy` type and conversions
//! are named methods; there is deliberately no `From` between kinds.

use std::fmt;

/// Size of a base page on x86-64.
pub const PAGE_SIZE: u64 = 4096;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;

macro_rules! hex_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        #[repr(transparent)]
        pub struct $name(pub u64);

        impl $name {
            /// The raw value.
            #[inline]
            pub const fn get(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:#x})"), self.0)
            }
        }

        impl fmt::LowerHex for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::LowerHex::fmt(&self.0, f)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                // 64-bit values do not survive JSON numbers in most consumers.
                s.collect_str(self)
            }
        }
    };
}

/// Serialize a raw `u64` (an entry value, a CR3, a mask) as a `"0x…"` string, as
/// the newtypes below serialize themselves: the one hex rule of every JSON record.
pub fn hex<S: serde::Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{v:#x}"))
}

/// [`hex`] for an optional value (`null` when absent).
pub fn hex_opt<S: serde::Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => hex(v, s),
        None => s.serialize_none(),
    }
}

hex_newtype!(
    /// A machine (host-physical) address: what the dump is indexed by.
    Maddr
);
hex_newtype!(
    /// A virtual address in some address space (the root decides which).
    Vaddr
);
hex_newtype!(
    /// A machine frame number: `Maddr >> 12`.
    Mfn
);
hex_newtype!(
    /// A PV guest's pseudo-physical frame number. Never an index into the dump.
    Pfn
);
hex_newtype!(
    /// An HVM/PVH guest-physical frame number. Never an index into the dump.
    Gfn
);
hex_newtype!(
    /// An HVM/PVH guest-physical address: what a guest's own tables hold. Never an
    /// index into the dump (the host p2m turns its frame into a machine frame).
    Gpa
);

impl Maddr {
    /// The frame containing this address.
    #[inline]
    pub const fn mfn(self) -> Mfn {
        Mfn(self.0 >> PAGE_SHIFT)
    }
    /// Offset inside its 4 KiB page.
    #[inline]
    pub const fn page_offset(self) -> u64 {
        self.0 & (PAGE_SIZE - 1)
    }
    /// This address plus `n` bytes, or `None` on overflow.
    #[inline]
    pub const fn checked_add(self, n: u64) -> Option<Maddr> {
        match self.0.checked_add(n) {
            Some(v) => Some(Maddr(v)),
            None => None,
        }
    }
    /// This address plus `n` bytes, wrapping (for arithmetic on values already bounded).
    #[inline]
    pub const fn wrapping_add(self, n: u64) -> Maddr {
        Maddr(self.0.wrapping_add(n))
    }
}

impl Gpa {
    /// The guest frame containing this address.
    #[inline]
    pub const fn gfn(self) -> Gfn {
        Gfn(self.0 >> PAGE_SHIFT)
    }
    /// Offset inside its 4 KiB page.
    #[inline]
    pub const fn page_offset(self) -> u64 {
        self.0 & (PAGE_SIZE - 1)
    }
    /// This address plus `n` bytes, wrapping.
    #[inline]
    pub const fn wrapping_add(self, n: u64) -> Gpa {
        Gpa(self.0.wrapping_add(n))
    }
}

impl Gfn {
    /// First guest-physical address of the frame.
    #[inline]
    pub const fn gpa(self) -> Gpa {
        Gpa(self.0 << PAGE_SHIFT)
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Maddr {}
    impl Sealed for super::Gpa {}
}

/// The kind of physical address a page table holds: [`Maddr`] in the tables the
/// machine walks (Xen's own, a PV guest's), [`Gpa`] in an HVM/PVH guest's own tables,
/// whose entries name guest frames that only the host p2m turns into machine frames
/// (reference §5.3: the two-dimensional walk). The walker, the root check, the
/// diagnosis and the enumeration are generic over it, so a walk of a guest's own
/// tables is a `Walk<Gpa>` and can never hand a guest-physical address to code that
/// expects a machine one. Sealed: there are exactly these two kinds. Code generic
/// over it is monomorphised, so a walk of machine memory compiles to what it was
/// before the parameter existed.
pub trait PhysAddr:
    sealed::Sealed
    + Copy
    + Eq
    + Ord
    + std::hash::Hash
    + fmt::Debug
    + fmt::Display
    + fmt::LowerHex
    + serde::Serialize
    + Send
    + Sync
    + 'static
{
    /// What the addresses are called in messages: `maddr` or `gpa`.
    const NAME: &'static str;
    /// What the frames are called: `mfn` or `gfn`.
    const FRAME: &'static str;
    /// The address of this kind with the raw value `v` (an entry's frame bits).
    fn at(v: u64) -> Self;
    /// The raw value.
    fn raw(self) -> u64;
    /// This address plus `n` bytes, wrapping.
    #[inline]
    fn plus(self, n: u64) -> Self {
        Self::at(self.raw().wrapping_add(n))
    }
    /// The frame number (`>> 12`).
    #[inline]
    fn frame(self) -> u64 {
        self.raw() >> PAGE_SHIFT
    }
}

impl PhysAddr for Maddr {
    const NAME: &'static str = "maddr";
    const FRAME: &'static str = "mfn";
    #[inline]
    fn at(v: u64) -> Maddr {
        Maddr(v)
    }
    #[inline]
    fn raw(self) -> u64 {
        self.0
    }
}

impl PhysAddr for Gpa {
    const NAME: &'static str = "gpa";
    const FRAME: &'static str = "gfn";
    #[inline]
    fn at(v: u64) -> Gpa {
        Gpa(v)
    }
    #[inline]
    fn raw(self) -> u64 {
        self.0
    }
}

impl Mfn {
    /// First machine address of the frame.
    #[inline]
    pub const fn maddr(self) -> Maddr {
        Maddr(self.0 << PAGE_SHIFT)
    }
}

impl Vaddr {
    /// Whether the address is canonical for 4-level paging: bits 63:47 all equal
    /// (SDM Vol. 3A §4.5; reference §1.1).
    #[inline]
    pub const fn is_canonical(self) -> bool {
        let top = self.0 >> 47;
        top == 0 || top == 0x1ffff
    }
    /// Sign-extend bit 47, the way hardware forms the upper half.
    #[inline]
    pub const fn canonicalize(raw: u64) -> Vaddr {
        Vaddr((((raw << 16) as i64) >> 16) as u64)
    }
    /// The 9-bit table index this address uses at a level whose index starts at bit
    /// `shift` (39 for L4, 30 for L3, 21 for L2, 12 for L1).
    #[inline]
    pub const fn index_at(self, shift: u32) -> usize {
        ((self.0 >> shift) & 0x1ff) as usize
    }
}

/// "4 KiB", "2 MiB", "1 GiB", "1.5 GiB", "12 KiB"... for sizes and page sizes.
pub fn size_name(bytes: u64) -> String {
    const UNITS: [(&str, u64); 5] =
        [("PiB", 1 << 50), ("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (name, unit) in UNITS {
        if bytes >= unit {
            return if bytes % unit == 0 {
                format!("{} {name}", bytes / unit)
            } else {
                format!("{:.1} {name}", bytes as f64 / unit as f64)
            };
        }
    }
    format!("{bytes} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_boundaries() {
        assert!(Vaddr(0).is_canonical());
        assert!(Vaddr(0x0000_7fff_ffff_ffff).is_canonical());
        assert!(!Vaddr(0x0000_8000_0000_0000).is_canonical());
        assert!(!Vaddr(0xffff_7fff_ffff_ffff).is_canonical());
        assert!(Vaddr(0xffff_8000_0000_0000).is_canonical());
        assert!(!Vaddr(0xffff_0000_0000_1000).is_canonical());
        assert_eq!(Vaddr::canonicalize(0x0000_8000_0000_0000), Vaddr(0xffff_8000_0000_0000));
        assert_eq!(Vaddr::canonicalize(0x0000_7000_0000_0000), Vaddr(0x0000_7000_0000_0000));
    }

    #[test]
    fn worked_example_indices() {
        // reference §3.7: idle_pg_table 0xffff82d04046e000 splits into 261/321/2/110.
        let va = Vaddr(0xffff_82d0_4046_e000);
        assert_eq!([va.index_at(39), va.index_at(30), va.index_at(21), va.index_at(12)], [261, 321, 2, 110]);
    }

    #[test]
    fn frame_conversions() {
        assert_eq!(Maddr(0x3fc6_e123).mfn(), Mfn(0x3fc6e));
        assert_eq!(Mfn(0x3fc6e).maddr(), Maddr(0x3fc6_e000));
        assert_eq!(Maddr(0x3fc6_e123).page_offset(), 0x123);
        assert_eq!(format!("{}", Maddr(0x10)), "0x10");
        assert_eq!(serde_json::to_string(&Vaddr(u64::MAX)).unwrap(), "\"0xffffffffffffffff\"");
    }
}
