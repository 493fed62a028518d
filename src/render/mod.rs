//! Output: the library computes walks, enumerations and diagnoses as data; these
//! modules print them, for people ([`human`]) and for scripts ([`json`]).

pub mod human;
pub mod json;

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
