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
pub fn va_line(line: &str) -> Option<Result<u64, String>> {
    let line = line.split('#').next().unwrap_or("");
    let tok = line.split_whitespace().next()?;
    let tok = tok.strip_suffix(':').unwrap_or(tok);
    Some(hex_u64(tok))
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
        assert_eq!(va_line("ffff808000000000: 00000000b0000000 XGPDACT-W"), Some(Ok(0xffff_8080_0000_0000)));
        assert_eq!(va_line("   # comment"), None);
        assert_eq!(va_line(""), None);
        assert_eq!(va_line("0x1000 # trailing"), Some(Ok(0x1000)));
        assert!(va_line("nope").unwrap().is_err());
    }
}
