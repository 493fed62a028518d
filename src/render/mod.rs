//! Output: the library computes walks, enumerations and diagnoses as data; these
//! modules print them, for people ([`human`]) and for scripts ([`json`]).

#[cfg(feature = "cli")]
pub mod human;
pub mod json;
pub mod map;

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

/// Short page-size label: "4K", "2M", "1G".
pub fn page_label(size: u64) -> &'static str {
    match size {
        0x1000 => "4K",
        0x20_0000 => "2M",
        0x4000_0000 => "1G",
        _ => "?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(size_name(4096), "4 KiB");
        assert_eq!(size_name(3 << 20), "3 MiB");
        assert_eq!(size_name(0x600), "1.5 KiB");
        assert_eq!(size_name(100), "100 B");
        assert_eq!(page_label(0x20_0000), "2M");
    }
}

/// Colour in human output: only on a terminal unless asked (`--color`), never with
/// `NO_COLOR` set in auto mode.
pub mod color {
    use std::sync::atomic::{AtomicBool, Ordering};

    static ON: AtomicBool = AtomicBool::new(false);

    /// When to colour.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub enum When {
        #[default]
        Auto,
        Always,
        Never,
    }

    /// Decide once, for stdout.
    pub fn init(when: When) {
        use std::io::IsTerminal;
        let on = match when {
            When::Always => true,
            When::Never => false,
            When::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        };
        ON.store(on, Ordering::Relaxed);
    }

    pub fn enabled() -> bool {
        ON.load(Ordering::Relaxed)
    }

    fn paint(code: &str, s: &str) -> String {
        if enabled() { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_string() }
    }
    /// A result that translated.
    pub fn good(s: &str) -> String {
        paint("32", s)
    }
    /// A stop.
    pub fn bad(s: &str) -> String {
        paint("1;31", s)
    }
    /// A hint.
    pub fn hint(s: &str) -> String {
        paint("36", s)
    }
    /// A warning or an event in a listing.
    pub fn warn(s: &str) -> String {
        paint("33", s)
    }
}
