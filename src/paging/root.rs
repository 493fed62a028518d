//! Turning a CR3 value (or a frame number) into the L4 table to walk, and checking
//! that what it points at looks like an L4.
//!
//! CR3 facts (SDM Vol. 3A §4.5, §4.10.1; reference §1.2): bits 11:0 are PCID (with
//! CR4.PCIDE) or PWT/PCD and ignored bits; bits M-1:12 address the L4; bit 63 of a
//! MOV-to-CR3 operand is the no-flush hint and appears in software copies (Xen's
//! `v->arch.cr3`, `cpu_info->pv_cr3`, with `X86_CR3_NOFLUSH`); bits 61/62 are LAM
//! controls on CPUs with LAM. Everything else above M is reserved.

use super::entry::{Entry, Level, addr_mask};
use super::walk::WalkOptions;
use crate::addr::{Maddr, Mfn, PhysAddr};
use crate::mem::{Absent, PhysMem, ReadError, TableMem};
use serde::Serialize;

/// What the user (or a note) handed us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootInput {
    /// A CR3 value: an address, possibly with PCID and other bits.
    Cr3(u64),
    /// A frame number (`--cr3-mfn`).
    Mfn(crate::addr::Mfn),
}

/// A bit group removed from a CR3 value before use, reported to the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Stripped {
    /// Which bits: `pcid`, `noflush` or `lam`.
    pub what: &'static str,
    #[serde(serialize_with = "crate::addr::hex")]
    pub bits: u64,
    pub explanation: &'static str,
}

/// What a page looks like when read as an L4 table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct L4Check {
    /// Present entries.
    pub present: u16,
    /// Present entries with reserved bits set (PS, or bits above MAXPHYADDR).
    pub reserved: u16,
    /// Present entries whose L3 table the dump holds.
    pub readable: u16,
    /// Non-zero entries that are not present.
    pub not_present_nonzero: u16,
    /// Slot whose entry points back at this table (Xen's linear page-table slot is 258).
    pub self_map: Option<u16>,
}

impl L4Check {
    /// Whether the page is believable as an L4: at least one present entry leads to a
    /// table the dump holds, and at most a quarter of the present entries have
    /// reserved bits (one corrupt entry does not disqualify a real L4; a page of
    /// random data has reserved bits in about half of its "present" entries).
    pub fn plausible(&self) -> bool {
        self.readable > 0 && u32::from(self.reserved) * 4 <= u32::from(self.present)
    }

    /// Why it is not plausible, in words.
    pub fn why_not(&self) -> String {
        if self.present == 0 && self.not_present_nonzero == 0 {
            "all 512 entries are zero".into()
        } else if self.present == 0 {
            format!("no entry is present ({} non-zero entries have P=0)", self.not_present_nonzero)
        } else if u32::from(self.reserved) * 4 > u32::from(self.present) {
            format!(
                "{} of its {} present entries have reserved bits set (PS, or address bits above \
                 MAXPHYADDR), which no real L4 has",
                self.reserved, self.present
            )
        } else {
            format!("none of its {} present entries points to a page the dump holds", self.present)
        }
    }
}

/// Read the page at `table` as an L4 and summarise it.
pub fn check_l4(mem: &dyn PhysMem, table: Maddr, opts: WalkOptions) -> Result<L4Check, ReadError> {
    check_l4_in(mem, table, opts)
}

/// [`check_l4`] in memory of any address kind (a guest's own L4 at a gpa).
pub fn check_l4_in<A: PhysAddr>(
    mem: &(impl TableMem<A> + ?Sized),
    table: A,
    opts: WalkOptions,
) -> Result<L4Check, ReadError> {
    let page = mem.page_at(table)?;
    let mut c = L4Check { present: 0, reserved: 0, readable: 0, not_present_nonzero: 0, self_map: None };
    for i in 0..512 {
        let e = Entry(page.entry(i));
        if !e.present() {
            if e.0 != 0 {
                c.not_present_nonzero += 1;
            }
            continue;
        }
        c.present += 1;
        if e.reserved_bits(Level::L4, opts.maxphyaddr, opts.nxe) != 0 {
            c.reserved += 1;
            continue;
        }
        let next = A::at(e.addr(Level::L4, opts.maxphyaddr));
        if next == table {
            c.self_map = Some(i as u16);
        }
        if mem.locate_at(next).is_ok() {
            c.readable += 1;
        }
    }
    Ok(c)
}

/// Something wrong with the root itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootProblem<A: PhysAddr = Maddr> {
    /// Bits 52–60 are set: the value looks like a page-table entry whose NX/software
    /// bits were not masked. `masked` is the address it would give.
    UnmaskedBits { bits: u64, masked: A },
    /// Bits M–51 are set, above the physical-address width.
    AboveMaxPhys { bits: u64 },
    /// The value is a frame number: the page at CR3 is absent or not an L4, but the
    /// page at CR3 << 12 is one.
    LooksLikeFrame { as_maddr: A, check: L4Check },
    /// The L4 page is not in the dump.
    Absent(Absent),
    /// The L4 page exists but cannot be decoded.
    Unreadable(ReadError),
    /// The L4 page is present but does not look like an L4 (walks still run).
    Implausible(L4Check),
}

impl<A: PhysAddr> RootProblem<A> {
    /// Whether walks cannot start at all.
    pub fn blocks_walks(&self) -> bool {
        !matches!(self, RootProblem::Implausible(_))
    }
}

/// A root ready to walk, with everything learnt about it: a `Root` (= `Root<Maddr>`)
/// in machine memory, a `Root<Gpa>` for an HVM/PVH guest's own CR3, whose L4 is a
/// guest-physical address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Root<A: PhysAddr = Maddr> {
    pub input: RootInput,
    /// Where the value came from, for messages: "--cr3", "CPU 1 (QEMU note)".
    pub source: String,
    /// Address of the L4 table (machine, or guest-physical for a guest's own CR3).
    pub maddr: A,
    pub stripped: Vec<Stripped>,
    pub check: Option<L4Check>,
    pub problem: Option<RootProblem<A>>,
}

/// CR3 bits that are never part of the address and are removed silently but
/// reported: PCID (or PWT/PCD) in 11:0, LAM in 62:61, no-flush in 63.
fn strip(value: u64, pcide: Option<bool>) -> (u64, Vec<Stripped>) {
    let mut v = value;
    let mut out = Vec::new();
    if v & 0xfff != 0 {
        let explanation = match pcide {
            Some(true) => "PCID (bits 11:0, CR4.PCIDE=1): not part of the table address",
            Some(false) => "PWT/PCD and ignored bits 11:0 (CR4.PCIDE=0): not part of the table address",
            None => "bits 11:0 (PCID, or PWT/PCD without CR4.PCIDE): not part of the table address",
        };
        out.push(Stripped { what: "pcid", bits: v & 0xfff, explanation });
        v &= !0xfff;
    }
    if v & (1 << 63) != 0 {
        out.push(Stripped {
            what: "noflush",
            bits: 1 << 63,
            explanation: "bit 63 (no-flush hint of MOV to CR3; kept in Xen's software copies as X86_CR3_NOFLUSH)",
        });
        v &= !(1 << 63);
    }
    if v & (3 << 61) != 0 {
        out.push(Stripped {
            what: "lam",
            bits: v & (3 << 61),
            explanation: "bits 62:61 (LAM_U48/LAM_U57 controls on CPUs with linear-address masking)",
        });
        v &= !(3 << 61);
    }
    (v, out)
}

/// Resolve `input` against `mem`. Never fails: problems are recorded in the result.
pub fn resolve(mem: &dyn PhysMem, input: RootInput, source: String, pcide: Option<bool>, opts: WalkOptions) -> Root {
    resolve_in(mem, input, source, pcide, opts)
}

/// [`resolve`] in memory of any address kind: a guest's own CR3 is resolved in its
/// guest-physical memory and gives a `Root<Gpa>`.
pub fn resolve_in<A: PhysAddr>(
    mem: &(impl TableMem<A> + ?Sized),
    input: RootInput,
    source: String,
    pcide: Option<bool>,
    opts: WalkOptions,
) -> Root<A> {
    let (value, stripped) = match input {
        RootInput::Cr3(v) => strip(v, pcide),
        RootInput::Mfn(f) => (f.0.checked_shl(12).filter(|_| f.0 >> 52 == 0).unwrap_or(u64::MAX), Vec::new()),
    };
    let mut root =
        Root { input, source, maddr: A::at(value & 0x000f_ffff_ffff_f000), stripped, check: None, problem: None };
    if let RootInput::Mfn(f) = input {
        if value == u64::MAX {
            root.maddr = A::at(0);
            root.problem = Some(RootProblem::AboveMaxPhys { bits: f.0 });
            return root;
        }
    }
    let unmasked = value & (0x1ff << 52);
    if unmasked != 0 {
        root.problem = Some(RootProblem::UnmaskedBits { bits: unmasked, masked: root.maddr });
        return root;
    }
    let above = value & !addr_mask(opts.maxphyaddr) & 0x000f_ffff_ffff_f000;
    if above != 0 {
        root.problem = Some(RootProblem::AboveMaxPhys { bits: above });
        return root;
    }
    root.maddr = A::at(value & addr_mask(opts.maxphyaddr));
    let check = check_l4_in(mem, root.maddr, opts);
    root.check = check.as_ref().ok().copied();
    let plausible = matches!(&check, Ok(c) if c.plausible());
    if !plausible {
        // A frame number given as CR3? Then CR3 << 12 is the L4 (the raw value, before
        // PCID stripping, since a frame number has no flag bits).
        if let RootInput::Cr3(raw) = input {
            if let Some(shifted) = raw.checked_shl(12).filter(|s| raw >> 40 == 0 && *s != 0) {
                let cand = A::at(shifted);
                if let Ok(c) = check_l4_in(mem, cand, opts) {
                    if c.plausible() {
                        root.problem = Some(RootProblem::LooksLikeFrame { as_maddr: cand, check: c });
                        return root;
                    }
                }
            }
        }
        root.problem = Some(match check {
            Ok(c) => RootProblem::Implausible(c),
            Err(ReadError::Absent { why, .. } | ReadError::GuestAbsent { why, .. }) => RootProblem::Absent(why),
            Err(e) => RootProblem::Unreadable(e),
        });
    }
    root
}

impl Root {
    /// The L4 frame.
    pub fn mfn(&self) -> Mfn {
        self.maddr.mfn()
    }
}
