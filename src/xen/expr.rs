//! Address expressions over the hypervisor's symbols and structures, the way a Xen
//! developer writes them in gdb or crash:
//!
//! ```text
//! idle_pg_table            stack_base+0x8          head.o#l3_xenmap
//! idle_vcpu[1]             idle_vcpu[1]->arch.cr3  *idle_vcpu[1]->arch.cr3
//! domain_list->vcpu[0]->arch.guest_table           ((struct vcpu *)0xffff83003fdd1000)->processor
//! ```
//!
//! An expression denotes an object in hypervisor memory; the CLI takes its address
//! (`--va idle_vcpu[1]->arch.cr3` walks to the `cr3` field) unless a leading `*`
//! asks for the value stored there (`--cr3 '*idle_vcpu[1]->arch.cr3'`). `->` reads a
//! pointer from the dump. Types and offsets come from DWARF when `xen-syms` has it;
//! otherwise from VMCOREINFO_XEN and the built-in table (see [`super::offsets`]) plus
//! the types of the well-known variables listed in [`known_var`].

use super::dwarf::{self, DwarfError, Type};
use super::offsets::{OffsetError, Offsets};
use super::{VaReadError, Xen};
use crate::addr::{Maddr, Vaddr};
use crate::mem::PhysMem;
use crate::parse::ParseError;

/// Why an expression cannot be evaluated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExprError {
    /// A number in the expression is malformed.
    #[error(transparent)]
    Number(#[from] ParseError),
    #[error("unexpected '{ch}' in '{expr}'")]
    UnexpectedChar { ch: char, expr: String },
    /// A fixed part of the syntax is missing: `what` says which ("a struct name", …).
    #[error("expected {what}")]
    Expected { what: &'static str },
    #[error("expected {expected:?}, found {found:?}")]
    ExpectedToken { expected: Tok, found: Option<Tok> },
    #[error("expected a number, a symbol or '(', found {found:?}")]
    ExpectedOperand { found: Option<Tok> },
    /// The expression ends before its last token.
    #[error("'{expr}': unexpected {found:?}")]
    Trailing { expr: String, found: Option<Tok> },
    /// A symbol is used but no symbols are loaded (CLI: pass `--xen-syms`).
    #[error("symbols need --xen-syms")]
    NoSymbols,
    #[error("unknown symbol '{name}'")]
    UnknownSymbol { name: String },
    /// Reading the object at `addr` fails.
    #[error("reading {addr:#x}: {error}")]
    Read { addr: Vaddr, error: VaReadError },
    #[error("cannot index {value:?}")]
    CannotIndex { value: Box<Val> },
    /// A member access (`.path` or `->path`) on something of no known struct type.
    #[error("'.{path}' needs a struct; cast with (struct NAME *) when the type is unknown")]
    NotAStruct { path: String },
    #[error("sizeof(struct {name}) unknown")]
    UnknownStructSize { name: String },
    #[error("element size unknown")]
    UnknownElementSize,
    /// More than `max` operators and parentheses nested.
    #[error("nested more than {max} deep")]
    TooDeep { max: u32 },
    #[error(transparent)]
    Dwarf(#[from] DwarfError),
    #[error(transparent)]
    Offset(#[from] OffsetError),
}

/// A C type, as far as expressions need one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ty {
    /// A struct by name, with its DWARF type when there is one.
    Struct(String, Option<Type>),
    Ptr(Box<Ty>),
    Array(Box<Ty>),
    /// A scalar of this many bytes.
    Scalar(u64),
    Unknown,
}

impl Ty {
    fn from_dwarf(t: &Type) -> Ty {
        match t {
            Type::Struct { name, .. } => Ty::Struct(name.clone().unwrap_or_default(), Some(t.clone())),
            Type::Pointer(to) => Ty::Ptr(Box::new(Ty::from_dwarf(to))),
            Type::Array { elem, .. } => Ty::Array(Box::new(Ty::from_dwarf(elem))),
            Type::Base { size, .. } => Ty::Scalar(*size),
            Type::Other { size } => size.map_or(Ty::Unknown, Ty::Scalar),
        }
    }
    fn strukt(name: &str) -> Ty {
        Ty::Struct(name.into(), None)
    }
    fn ptr(t: Ty) -> Ty {
        Ty::Ptr(Box::new(t))
    }
}

/// Types of well-known hypervisor variables, for builds without DWARF
/// (declarations in `X:xen/include/xen/sched.h@4.17.0`, `X:xen/arch/x86/include/asm/*.h@4.17.0`).
pub fn known_var(name: &str) -> Option<Ty> {
    let vcpu = || Ty::ptr(Ty::strukt("vcpu"));
    let domain = || Ty::ptr(Ty::strukt("domain"));
    Some(match name {
        "idle_vcpu" => Ty::Array(Box::new(vcpu())),
        "domain_list" | "hardware_domain" | "dom_xen" | "dom_io" | "dom_cow" => domain(),
        "per_cpu__curr_vcpu" | "per_cpu__pgtable_vcpu" => vcpu(),
        "per_cpu__root_pgt" => Ty::ptr(Ty::Scalar(8)),
        "__per_cpu_offset" | "stack_base" => Ty::Array(Box::new(Ty::Scalar(8))),
        "max_page" | "total_pages" | "max_pdx" | "xen_phys_start" => Ty::Scalar(8),
        _ => return None,
    })
}

/// Types of struct members that are pointers, for builds without DWARF.
fn known_member(strukt: &str, path: &str) -> Ty {
    let vcpu = || Ty::ptr(Ty::strukt("vcpu"));
    let domain = || Ty::ptr(Ty::strukt("domain"));
    match (strukt, path) {
        ("domain", "vcpu") => Ty::ptr(vcpu()),
        ("domain", "next_in_list") | ("vcpu", "domain") | ("p2m_domain", "domain") => domain(),
        ("vcpu", "next_in_list") | ("cpu_info", "current_vcpu") => vcpu(),
        ("domain", "arch.p2m") => Ty::ptr(Ty::strukt("p2m_domain")),
        ("domain", "domain_id") => Ty::Scalar(2),
        ("vcpu", "vcpu_id") | ("vcpu", "processor") | ("domain", "max_vcpus") => Ty::Scalar(4),
        _ => Ty::Scalar(8),
    }
}

/// What an expression evaluates to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Val {
    /// An object at this hypervisor VA.
    Object { addr: u64, ty: Ty },
    /// A value (a number, or something read from memory).
    Value { v: u64, ty: Ty },
}

/// Evaluation context: the hypervisor, its memory, a root to walk for VAs that are
/// not linear.
pub struct Ctx<'a> {
    pub xen: &'a Xen,
    pub mem: &'a dyn PhysMem,
    pub root: Option<Maddr>,
}

impl Ctx<'_> {
    fn offsets(&self, dump_vmcoreinfo: Option<&str>) -> Offsets<'_> {
        self.xen.offsets_in(dump_vmcoreinfo, self.mem)
    }

    fn read(&self, addr: u64, size: u64) -> Result<u64, ExprError> {
        let addr = Vaddr(addr);
        let v = self.xen.read_va_u64(self.mem, self.root, addr).map_err(|error| ExprError::Read { addr, error })?;
        Ok(match size {
            1 => v & 0xff,
            2 => v & 0xffff,
            4 => v & 0xffff_ffff,
            _ => v,
        })
    }
}

/// A token of an expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tok {
    Num(u64),
    Ident(String),
    Arrow,
    Dot,
    LBr,
    RBr,
    LPar,
    RPar,
    Star,
    Plus,
    Minus,
}

fn lex(s: &str) -> Result<Vec<Tok>, ExprError> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i] as char;
        match c {
            ' ' | '\t' => i += 1,
            '-' if b.get(i + 1) == Some(&b'>') => {
                out.push(Tok::Arrow);
                i += 2;
            }
            '.' => {
                out.push(Tok::Dot);
                i += 1;
            }
            '[' | ']' | '(' | ')' | '*' | '+' | '-' => {
                out.push(match c {
                    '[' => Tok::LBr,
                    ']' => Tok::RBr,
                    '(' => Tok::LPar,
                    ')' => Tok::RPar,
                    '*' => Tok::Star,
                    '+' => Tok::Plus,
                    _ => Tok::Minus,
                });
                i += 1;
            }
            _ if c.is_ascii_alphanumeric() || "_#$`".contains(c) => {
                let start = i;
                // A token runs until an operator; `file.c#sym` keeps its dots when a
                // '#' follows in the same run.
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b"_#$`".contains(&b[i])) {
                    i += 1;
                }
                let mut word = s[start..i].to_string();
                // System.map locals: `arch/x86/acpi/boot.c#name`, `head.o#name`.
                if let Some(h) = s[i..].find('#') {
                    let between = &s[i..i + h];
                    if !between.is_empty() && between.chars().all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c)) {
                        let rest = &s[i + h + 1..];
                        let n = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
                        word = format!("{}{}#{}", word, between, &rest[..n]);
                        i += h + 1 + n;
                    }
                }
                let w = word.replace(['_', '`'], "");
                let after_member_op = matches!(out.last(), Some(Tok::Dot | Tok::Arrow));
                let is_num = !after_member_op
                    && (w.chars().all(|c| c.is_ascii_hexdigit())
                        || w.strip_prefix("0x")
                            .or_else(|| w.strip_prefix("0X"))
                            .is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit())));
                if is_num && !word.contains('#') {
                    out.push(Tok::Num(crate::parse::hex_u64(&word)?));
                } else {
                    out.push(Tok::Ident(word));
                }
            }
            _ => return Err(ExprError::UnexpectedChar { ch: c, expr: s.to_string() }),
        }
    }
    Ok(out)
}

/// How deep `*`, casts and parentheses may nest.
const MAX_NESTING: u32 = 256;

struct Parser<'c, 'a> {
    toks: Vec<Tok>,
    pos: usize,
    /// Operators and parentheses open around the current token (see [`MAX_NESTING`]).
    depth: u32,
    ctx: &'c Ctx<'a>,
    vmcoreinfo: Option<&'c str>,
}

impl Parser<'_, '_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn expect(&mut self, t: Tok) -> Result<(), ExprError> {
        match self.next() {
            Some(x) if x == t => Ok(()),
            found => Err(ExprError::ExpectedToken { expected: t, found }),
        }
    }

    fn expr(&mut self) -> Result<Val, ExprError> {
        let mut v = self.unary()?;
        while let Some(op @ (Tok::Plus | Tok::Minus)) = self.peek().cloned() {
            self.pos += 1;
            let Some(Tok::Num(n)) = self.next() else {
                return Err(ExprError::Expected { what: "a hex number after + or -" });
            };
            let add = |x: u64| if op == Tok::Plus { x.wrapping_add(n) } else { x.wrapping_sub(n) };
            v = match v {
                Val::Object { addr, .. } => Val::Object { addr: add(addr), ty: Ty::Unknown },
                Val::Value { v, ty } => Val::Value { v: add(v), ty },
            };
        }
        Ok(v)
    }

    /// Every nesting (`*`, a cast, parentheses) goes through here: deeper than
    /// [`MAX_NESTING`] is an error, not a stack overflow (a `--va-file` line of 64 Ki
    /// `(` overflowed the stack).
    fn unary(&mut self) -> Result<Val, ExprError> {
        if self.depth >= MAX_NESTING {
            return Err(ExprError::TooDeep { max: MAX_NESTING });
        }
        self.depth += 1;
        let v = self.unary_inner();
        self.depth -= 1;
        v
    }

    fn unary_inner(&mut self) -> Result<Val, ExprError> {
        match self.peek() {
            Some(Tok::Star) => {
                self.pos += 1;
                let v = self.unary()?;
                self.deref(v)
            }
            Some(Tok::LPar) if matches!(self.toks.get(self.pos + 1), Some(Tok::Ident(w)) if w == "struct") => {
                self.pos += 2;
                let Some(Tok::Ident(name)) = self.next() else {
                    return Err(ExprError::Expected { what: "a struct name" });
                };
                self.expect(Tok::Star)?;
                self.expect(Tok::RPar)?;
                let v = self.unary()?;
                let p = self.value_of(v)?;
                let ty = self.struct_ty(&name);
                self.postfix(Val::Value { v: p, ty: Ty::ptr(ty) })
            }
            _ => {
                let p = self.primary()?;
                self.postfix(p)
            }
        }
    }

    fn primary(&mut self) -> Result<Val, ExprError> {
        match self.next() {
            Some(Tok::Num(n)) => Ok(Val::Value { v: n, ty: Ty::Unknown }),
            Some(Tok::Ident(name)) => {
                let syms = self.ctx.xen.syms.as_ref().ok_or(ExprError::NoSymbols)?;
                let Some(addr) = syms.addr(&name) else { return Err(ExprError::UnknownSymbol { name }) };
                let ty = syms
                    .dwarf()
                    .ok()
                    .and_then(|d| d.var_type(syms, name.split('#').next_back().unwrap_or(&name)).ok())
                    .map(|t| Ty::from_dwarf(&t))
                    .or_else(|| known_var(&name))
                    .unwrap_or(Ty::Unknown);
                Ok(Val::Object { addr, ty })
            }
            Some(Tok::LPar) => {
                let v = self.expr()?;
                self.expect(Tok::RPar)?;
                Ok(v)
            }
            found => Err(ExprError::ExpectedOperand { found }),
        }
    }

    fn postfix(&mut self, mut v: Val) -> Result<Val, ExprError> {
        loop {
            match self.peek() {
                Some(Tok::LBr) => {
                    self.pos += 1;
                    let Some(Tok::Num(n)) = self.next() else { return Err(ExprError::Expected { what: "an index" }) };
                    self.expect(Tok::RBr)?;
                    v = self.index(v, n)?;
                }
                Some(Tok::Arrow) => {
                    self.pos += 1;
                    let path = self.member_path()?;
                    let obj = self.deref(v)?;
                    v = self.member(obj, &path)?;
                }
                Some(Tok::Dot) => {
                    self.pos += 1;
                    let path = self.member_path()?;
                    v = self.member(v, &path)?;
                }
                _ => return Ok(v),
            }
        }
    }

    /// `a.b.c` after `->` or `.`: taken whole, so built-in keys like `arch.cr3` work.
    fn member_path(&mut self) -> Result<String, ExprError> {
        let mut path = String::new();
        loop {
            let Some(Tok::Ident(w)) = self.next() else { return Err(ExprError::Expected { what: "a member name" }) };
            path.push_str(&w);
            if self.peek() == Some(&Tok::Dot) && matches!(self.toks.get(self.pos + 1), Some(Tok::Ident(_))) {
                self.pos += 1;
                path.push('.');
            } else {
                return Ok(path);
            }
        }
    }

    fn struct_ty(&self, name: &str) -> Ty {
        let syms = self.ctx.xen.syms.as_ref();
        match syms.and_then(|s| s.dwarf().ok().and_then(|d| d.struct_type(s, name).ok())) {
            Some(t) => Ty::Struct(name.into(), Some(t)),
            None => Ty::strukt(name),
        }
    }

    fn value_of(&self, v: Val) -> Result<u64, ExprError> {
        match v {
            Val::Value { v, .. } => Ok(v),
            Val::Object { addr, ty } => self.ctx.read(addr, scalar_size(&ty)),
        }
    }

    /// `*v`: the object a pointer points to, or the value stored in an object.
    fn deref(&self, v: Val) -> Result<Val, ExprError> {
        match v {
            Val::Value { v, ty: Ty::Ptr(to) } => Ok(Val::Object { addr: v, ty: *to }),
            Val::Value { v, .. } => Ok(Val::Object { addr: v, ty: Ty::Unknown }),
            Val::Object { addr, ty: Ty::Ptr(to) } => Ok(Val::Object { addr: self.ctx.read(addr, 8)?, ty: *to }),
            Val::Object { addr, ty } => {
                let n = self.ctx.read(addr, scalar_size(&ty))?;
                Ok(Val::Value { v: n, ty })
            }
        }
    }

    fn index(&self, v: Val, n: u64) -> Result<Val, ExprError> {
        match v {
            Val::Object { addr, ty: Ty::Array(elem) } => {
                let size = ty_size(self, &elem)?;
                Ok(Val::Object { addr: addr.wrapping_add(n.wrapping_mul(size)), ty: *elem })
            }
            Val::Object { addr, ty: Ty::Ptr(to) } => {
                let base = self.ctx.read(addr, 8)?;
                let size = ty_size(self, &to)?;
                Ok(Val::Object { addr: base.wrapping_add(n.wrapping_mul(size)), ty: *to })
            }
            Val::Value { v, ty: Ty::Ptr(to) } => {
                let size = ty_size(self, &to)?;
                Ok(Val::Object { addr: v.wrapping_add(n.wrapping_mul(size)), ty: *to })
            }
            Val::Object { addr, ty: Ty::Unknown } => {
                Ok(Val::Object { addr: addr.wrapping_add(n.wrapping_mul(8)), ty: Ty::Unknown })
            }
            other => Err(ExprError::CannotIndex { value: Box::new(other) }),
        }
    }

    fn member(&self, v: Val, path: &str) -> Result<Val, ExprError> {
        let Val::Object { addr, ty: Ty::Struct(name, dty) } = v else {
            return Err(ExprError::NotAStruct { path: path.to_string() });
        };
        if let (Some(t), Some(syms)) = (&dty, self.ctx.xen.syms.as_ref()) {
            let m = dwarf::member_of(syms, t, path)?;
            return Ok(Val::Object { addr: addr.wrapping_add(m.offset), ty: Ty::from_dwarf(&m.ty) });
        }
        let o = self.ctx.offsets(self.vmcoreinfo).offset(&format!("{name}.{path}"))?;
        Ok(Val::Object { addr: addr.wrapping_add(o.value), ty: known_member(&name, path) })
    }
}

fn scalar_size(ty: &Ty) -> u64 {
    match ty {
        Ty::Scalar(n) if [1, 2, 4, 8].contains(n) => *n,
        _ => 8,
    }
}

fn ty_size(p: &Parser<'_, '_>, ty: &Ty) -> Result<u64, ExprError> {
    match ty {
        Ty::Ptr(_) => Ok(8),
        Ty::Scalar(n) => Ok(*n),
        Ty::Struct(name, Some(t)) => t.size().ok_or_else(|| ExprError::UnknownStructSize { name: name.clone() }),
        Ty::Struct(name, None) => Ok(p.ctx.offsets(p.vmcoreinfo).size(name)?.value),
        Ty::Array(_) | Ty::Unknown => Err(ExprError::UnknownElementSize),
    }
}

/// Evaluate `s`: the address of the object it names, or with a leading `*` the value
/// stored there.
pub fn eval(s: &str, ctx: &Ctx<'_>, vmcoreinfo: Option<&str>) -> Result<u64, ExprError> {
    let toks = lex(s)?;
    let mut p = Parser { toks, pos: 0, depth: 0, ctx, vmcoreinfo };
    let v = p.expr()?;
    if p.pos != p.toks.len() {
        return Err(ExprError::Trailing { expr: s.to_string(), found: p.toks.get(p.pos).cloned() });
    }
    Ok(match v {
        Val::Object { addr, .. } => addr,
        Val::Value { v, .. } => v,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexing() {
        assert_eq!(
            lex("idle_vcpu[1]->arch.cr3").unwrap(),
            vec![
                Tok::Ident("idle_vcpu".into()),
                Tok::LBr,
                Tok::Num(1),
                Tok::RBr,
                Tok::Arrow,
                Tok::Ident("arch".into()),
                Tok::Dot,
                Tok::Ident("cr3".into()),
            ]
        );
        assert_eq!(
            lex("head.o#l3_xenmap+0x10").unwrap(),
            vec![Tok::Ident("head.o#l3_xenmap".into()), Tok::Plus, Tok::Num(0x10)]
        );
        assert_eq!(lex("arch/x86/acpi/boot.c#x").unwrap(), vec![Tok::Ident("arch/x86/acpi/boot.c#x".into())]);
        assert_eq!(lex("*(struct vcpu *)ffff8300").unwrap().len(), 7);
        assert!(lex("a ! b").is_err());
    }
}
