//! Parsing addresses and values the way they appear in Xen and Linux console logs,
//! crash and gdb sessions: hexadecimal, with or without `0x`, with optional `_` or
//! `` ` `` digit separators (`ffff82d0_40200000`, WinDbg's `fffff800`00000000`).

/// Parse a hexadecimal u64. Addresses in this field are always hex (crash's `vtop`
/// and Xen's messages print them without `0x`), so a bare `100` is 0x100.
pub fn hex_u64(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let body = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t);
    let digits: String = body.chars().filter(|&c| c != '_' && c != '`').collect();
    if digits.is_empty() {
        return Err(format!("'{s}' is not a hexadecimal value"));
    }
    if digits.len() > 16 && digits.trim_start_matches('0').len() > 16 {
        return Err(format!("'{s}' does not fit in 64 bits"));
    }
    u64::from_str_radix(&digits, 16).map_err(|_| format!("'{s}' is not a hexadecimal value"))
}

/// The VA on one line of a VA list: the first whitespace-separated token, with a
/// trailing `:` removed (so QEMU's `info tlb` lines and similar listings can be fed
/// back in). Blank lines and `#` comments give `None`.
pub fn va_line(line: &str) -> Option<Result<Expr, String>> {
    let line = line.split(" #").next().unwrap_or("");
    let tok = line.split_whitespace().next()?;
    if tok.starts_with('#') {
        return None;
    }
    let tok = tok.strip_suffix(':').unwrap_or(tok);
    Some(Expr::parse(tok))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_forms() {
        assert_eq!(hex_u64("0xffff82d040200000"), Ok(0xffff_82d0_4020_0000));
        assert_eq!(hex_u64("ffff82d0_40200000"), Ok(0xffff_82d0_4020_0000));
        assert_eq!(hex_u64("fffff800`00000000"), Ok(0xffff_f800_0000_0000));
        assert_eq!(hex_u64(" 100 "), Ok(0x100));
        assert_eq!(hex_u64("0x00000000ffff82d040200000"), Ok(0xffff_82d0_4020_0000));
        assert!(hex_u64("0x1_0000_0000_0000_0000").is_err());
        assert!(hex_u64("0x").is_err());
        assert!(hex_u64("xyz").is_err());
        assert!(hex_u64("-1").is_err());
    }

    #[test]
    fn va_lines() {
        assert_eq!(
            va_line("ffff808000000000: 00000000b0000000 XGPDACT-W"),
            Some(Ok(Expr::Value(0xffff_8080_0000_0000)))
        );
        assert_eq!(va_line("   # comment"), None);
        assert_eq!(va_line(""), None);
        assert_eq!(va_line("0x1000 # trailing"), Some(Ok(Expr::Value(0x1000))));
        assert_eq!(va_line("head.o#l3_xenmap"), Some(Ok(Expr::Symbol { name: "head.o#l3_xenmap".into(), offset: 0 })));
        assert!(va_line("no/pe").unwrap().is_err());
        assert_eq!(va_line("nope"), Some(Ok(Expr::Symbol { name: "nope".into(), offset: 0 })));
    }
}

/// An address as the CLI takes it: a hex number, a symbol, or `symbol+off` /
/// `symbol-off` (offset hex). Hex wins when a string is both (`add` is 0xadd).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    Value(u64),
    Symbol { name: String, offset: i128 },
}

impl Expr {
    /// Parse without resolving.
    pub fn parse(s: &str) -> Result<Expr, String> {
        let t = s.trim();
        if let Ok(v) = hex_u64(t) {
            return Ok(Expr::Value(v));
        }
        let (name, offset) = match t.rfind(['+', '-']) {
            Some(i) if i > 0 => {
                let off = hex_u64(&t[i + 1..]).map_err(|_| format!("'{s}': bad offset after the symbol"))?;
                let off = i128::from(off);
                (&t[..i], if t.as_bytes()[i] == b'-' { -off } else { off })
            }
            _ => (t, 0),
        };
        let ok = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.#$".contains(c))
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !ok {
            return Err(format!("'{s}' is neither a hexadecimal value nor a symbol"));
        }
        Ok(Expr::Symbol { name: name.to_string(), offset })
    }

    /// Resolve with a symbol lookup.
    pub fn resolve(&self, lookup: impl Fn(&str) -> Option<u64>) -> Result<u64, String> {
        match self {
            Expr::Value(v) => Ok(*v),
            Expr::Symbol { name, offset } => {
                let base = lookup(name).ok_or_else(|| format!("unknown symbol '{name}'"))?;
                u64::try_from(i128::from(base) + offset).map_err(|_| format!("'{name}{offset:+#x}' overflows"))
            }
        }
    }
}

#[cfg(test)]
mod expr_tests {
    use super::*;

    #[test]
    fn expressions() {
        assert_eq!(Expr::parse("0x10"), Ok(Expr::Value(0x10)));
        assert_eq!(Expr::parse("add"), Ok(Expr::Value(0xadd)));
        assert_eq!(Expr::parse("idle_pg_table"), Ok(Expr::Symbol { name: "idle_pg_table".into(), offset: 0 }));
        assert_eq!(Expr::parse("stack_base+0x8"), Ok(Expr::Symbol { name: "stack_base".into(), offset: 8 }));
        assert_eq!(
            Expr::parse("head.o#l3_xenmap-10"),
            Ok(Expr::Symbol { name: "head.o#l3_xenmap".into(), offset: -16 })
        );
        assert!(Expr::parse("a b").is_err());
        assert!(Expr::parse("x+zz").is_err());
        let look = |n: &str| (n == "s").then_some(0x1000u64);
        assert_eq!(Expr::parse("s+0x20").unwrap().resolve(look), Ok(0x1020));
        assert!(Expr::parse("t").unwrap().resolve(look).is_err());
        assert!(Expr::parse("s-0x2000").unwrap().resolve(look).is_err());
    }
}
