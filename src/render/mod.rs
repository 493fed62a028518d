//! Output: the library computes walks, enumerations and diagnoses as data; these
//! modules print them, for people ([`human`]) and for scripts ([`json`]).

#[cfg(feature = "cli")]
pub mod human;
pub mod json;
pub mod map;
pub mod xen_style;

pub use crate::addr::size_name;

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
/// `NO_COLOR` set in auto mode. A value passed to the renderers, not a process-wide
/// switch.
pub mod color {
    /// When to colour.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub enum When {
        #[default]
        Auto,
        Always,
        Never,
    }

    /// Whether to colour, decided once (for stdout).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Paint {
        pub on: bool,
    }

    impl Paint {
        /// No colour.
        pub const PLAIN: Paint = Paint { on: false };

        /// Decide for stdout: `Auto` colours a terminal unless `NO_COLOR` is set.
        pub fn new(when: When) -> Paint {
            use std::io::IsTerminal;
            let on = match when {
                When::Always => true,
                When::Never => false,
                When::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
            };
            Paint { on }
        }

        fn paint(self, code: &str, s: &str) -> String {
            if self.on { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_string() }
        }
        /// A result that translated.
        pub fn good(self, s: &str) -> String {
            self.paint("32", s)
        }
        /// A stop.
        pub fn bad(self, s: &str) -> String {
            self.paint("1;31", s)
        }
        /// A hint.
        pub fn hint(self, s: &str) -> String {
            self.paint("36", s)
        }
        /// A warning or an event in a listing.
        pub fn warn(self, s: &str) -> String {
            self.paint("33", s)
        }
    }
}
