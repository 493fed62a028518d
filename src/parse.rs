//! Parsing addresses and values the way they appear in Xen and Linux console logs,
//! crash and gdb sessions: hexadecimal, with or without `0x`, with optional `_` or
//! `` ` `` digit separators (`ffff82d0_40200000`, WinDbg's `fffff800`00000000`).

/// Why a string is not a value or an address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    #[error("'{text}' is not a hexadecimal value")]
    NotHex { text: String },
    #[error("'{text}' does not fit in 64 bits")]
    TooWide { text: String },
    /// Neither hex nor anything an expression over symbols could be.
    #[error("'{text}' is neither a hexadecimal value nor a symbol expression")]
    NotAnAddress { text: String },
}

/// The message, for callers that still collect errors as text.
impl From<ParseError> for String {
    fn from(e: ParseError) -> String {
        e.to_string()
    }
}

/// Parse a hexadecimal u64. Addresses in this field are always hex (crash's `vtop`
/// and Xen's messages print them without `0x`), so a bare `100` is 0x100.
pub fn hex_u64(s: &str) -> Result<u64, ParseError> {
    let t = s.trim();
    let body = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t);
    let digits: String = body.chars().filter(|&c| c != '_' && c != '`').collect();
    let not_hex = || ParseError::NotHex { text: s.to_string() };
    if digits.is_empty() {
        return Err(not_hex());
    }
    if digits.len() > 16 && digits.trim_start_matches('0').len() > 16 {
        return Err(ParseError::TooWide { text: s.to_string() });
    }
    u64::from_str_radix(&digits, 16).map_err(|_| not_hex())
}

/// The VA on one line of a VA list: the first whitespace-separated token, with a
/// trailing `:` removed (so QEMU's `info tlb` lines and similar listings can be fed
/// back in). Blank lines and `#` comments give `None`. The error is text because the
/// CLI goes on to evaluate the expression with its own (text) errors.
pub fn va_line(line: &str) -> Option<Result<Expr, String>> {
    let line = line.split(" #").next().unwrap_or("");
    let tok = line.split_whitespace().next()?;
    if tok.starts_with('#') {
        return None;
    }
    let tok = tok.strip_suffix(':').unwrap_or(tok);
    Some(Expr::parse(tok).map_err(String::from))
}

/// A line of a VA list, read without allocating (see [`va_line_bytes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VaLine {
    /// Blank or a comment.
    Skip,
    /// A hexadecimal VA.
    Value(u64),
    /// Anything else (a symbol expression, a malformed value, non-ASCII text): take
    /// the line through [`va_line`].
    Slow,
}

/// [`va_line`] for the common case, on raw bytes and without allocating: the first
/// token, its trailing `:` dropped, as hexadecimal (`0x` optional, `_` and `` ` ``
/// separators). Whatever this does not decide is [`VaLine::Slow`], so the two always
/// agree (a test checks them against each other).
#[inline]
pub fn va_line_bytes(line: &[u8]) -> VaLine {
    let mut i = 0;
    while let Some(&b) = line.get(i) {
        match b {
            b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c => i += 1,
            b'#' => return VaLine::Skip,
            0x80.. => return VaLine::Slow,
            _ => break,
        }
    }
    let start = i;
    while let Some(&b) = line.get(i) {
        match b {
            b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c => break,
            0x80.. => return VaLine::Slow,
            _ => i += 1,
        }
    }
    // Unicode whitespace after the token would end it for `va_line` too, but any
    // non-ASCII byte later on is left to it.
    if line.get(i..).is_some_and(|rest| !rest.is_ascii()) {
        return VaLine::Slow;
    }
    let Some(mut tok) = line.get(start..i) else { return VaLine::Slow };
    if tok.is_empty() {
        return VaLine::Skip;
    }
    if let Some(t) = tok.strip_suffix(b":") {
        tok = t;
    }
    if let Some(t) = tok.strip_prefix(b"0x").or_else(|| tok.strip_prefix(b"0X")) {
        tok = t;
    }
    let (mut v, mut digits, mut significant) = (0u64, 0u32, 0u32);
    for &b in tok {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            b'_' | b'`' => continue,
            _ => return VaLine::Slow,
        };
        digits += 1;
        if significant > 0 || d != 0 {
            significant += 1;
        }
        if significant > 16 {
            return VaLine::Slow;
        }
        v = v << 4 | u64::from(d);
    }
    if digits == 0 { VaLine::Slow } else { VaLine::Value(v) }
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
        assert_eq!(va_line("head.o#l3_xenmap"), Some(Ok(Expr::Symbolic("head.o#l3_xenmap".into()))));
        assert!(va_line("no;pe").unwrap().is_err());
        assert_eq!(va_line("nope"), Some(Ok(Expr::Symbolic("nope".into()))));
    }

    /// The byte fast path agrees with `va_line` wherever it decides.
    #[test]
    fn byte_lines_agree_with_va_line() {
        let cases = [
            "ffff808000000000: 00000000b0000000 XGPDACT-W",
            "0xffff82d040200000",
            "0XABC",
            "  ffff82d0_40200000  # the image",
            "fffff800`00000000",
            "0x00000000ffff82d040200000",
            "0x1_0000_0000_0000_0000",
            "#",
            "   # comment",
            "\t#x",
            "",
            "   ",
            "0x",
            ":",
            "0x10:",
            "0x10::",
            "0x10#x",
            "+10",
            "-1",
            "add",
            "idle_pg_table",
            "head.o#l3_xenmap",
            "no;pe",
            "ffff\u{a0}0000",
            "\u{2003}10",
            "10\u{2003}",
            "10 \u{e9}",
            "0x10\r",
            "1 2 3",
        ];
        for c in cases {
            let fast = va_line_bytes(c.as_bytes());
            let slow = va_line(c);
            match fast {
                VaLine::Skip => assert_eq!(slow, None, "{c:?}"),
                VaLine::Value(v) => assert_eq!(slow, Some(Ok(Expr::Value(v))), "{c:?}"),
                // Undecided: va_line decides.
                VaLine::Slow => {}
            }
        }
        assert_eq!(va_line_bytes(b"ffff82d040200000\n"), VaLine::Value(0xffff_82d0_4020_0000));
        assert_eq!(va_line_bytes(b"\xff"), VaLine::Slow);
        // Symbols and oddities are left to va_line; plain hex never is.
        for c in ["idle_pg_table", "+10", "0x", "0x1_0000_0000_0000_0000", "10 \u{e9}"] {
            assert_eq!(va_line_bytes(c.as_bytes()), VaLine::Slow, "{c:?}");
        }
        assert_eq!(va_line_bytes(b"  0x10: x"), VaLine::Value(0x10));
    }
}

/// An address as the CLI takes it: a hex number, or an expression over the
/// hypervisor's symbols (`idle_pg_table`, `stack_base+0x8`, `idle_vcpu[1]->arch.cr3`),
/// evaluated later against a dump (see `xen::expr`). Hex wins when a string is both
/// (`add` is 0xadd).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    Value(u64),
    Symbolic(String),
}

impl Expr {
    /// Parse without evaluating: hex, or anything that looks like an expression.
    pub fn parse(s: &str) -> Result<Expr, ParseError> {
        let t = s.trim();
        if let Ok(v) = hex_u64(t) {
            return Ok(Expr::Value(v));
        }
        let ok = !t.is_empty()
            && t.chars().all(|c| c.is_ascii_alphanumeric() || "_.#$`+-*>[]()/ ".contains(c))
            && t.chars().any(|c| c.is_ascii_alphabetic() || c == '_');
        if !ok {
            return Err(ParseError::NotAnAddress { text: s.to_string() });
        }
        Ok(Expr::Symbolic(t.to_string()))
    }
}

#[cfg(test)]
mod expr_tests {
    use super::*;

    #[test]
    fn expressions() {
        assert_eq!(Expr::parse("0x10"), Ok(Expr::Value(0x10)));
        assert_eq!(Expr::parse("add"), Ok(Expr::Value(0xadd)));
        assert_eq!(Expr::parse("idle_pg_table"), Ok(Expr::Symbolic("idle_pg_table".into())));
        assert_eq!(Expr::parse("idle_vcpu[1]->arch.cr3"), Ok(Expr::Symbolic("idle_vcpu[1]->arch.cr3".into())));
        assert!(Expr::parse("a;b").is_err());
        assert!(Expr::parse("").is_err());
        assert!(Expr::parse("+-").is_err());
    }
}
