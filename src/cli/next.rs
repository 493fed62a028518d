//! The next command a diagnosis points to, spelled against the user's own
//! invocation: their dump path, their `--xen-syms` and other options, with only the
//! root or the VA changed — so it can be pasted as it is.

use super::root::RootArgs;
use crate::addr::Vaddr;
use crate::diagnose::Next;

/// What the command line's own definitions (clap's) say about its options: which
/// take a value, which choose the root (replaced by a `Next`), which choose the VAs.
struct Flags {
    /// Long names (`--cr3`) of the options that take a value.
    takes_value: Vec<String>,
    /// Those of [`RootArgs`].
    root: Vec<String>,
}

fn longs(cmd: &clap::Command, pick: impl Fn(&clap::Arg) -> bool) -> Vec<String> {
    cmd.get_arguments().filter(|a| pick(a)).filter_map(|a| a.get_long()).map(|l| format!("--{l}")).collect()
}

impl Flags {
    /// For `cmd` (the walk, or the subcommand the invocation names).
    fn of(cmd: &clap::Command) -> Flags {
        let root_cmd = <RootArgs as clap::Args>::augment_args(clap::Command::new("root"));
        Flags { takes_value: longs(cmd, |a| a.get_action().takes_values()), root: longs(&root_cmd, |_| true) }
    }
    fn is_root(&self, name: &str) -> bool {
        self.root.iter().any(|r| r == name)
    }
    fn takes_value(&self, name: &str) -> bool {
        self.takes_value.iter().any(|r| r == name)
    }
}

/// Options of a walk that choose its VAs (dropped or replaced by a `Next`).
const VA_OPTS: [&str; 2] = ["--va", "--va-file"];

/// The command line for `next`, when the walk of `va` (or the listing, `None`) stopped, from this process's
/// own arguments (`std::env::args`).
pub fn command(next: &Next, va: Option<Vaddr>) -> String {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    command_from(&argv, next, va)
}

fn command_from(argv: &[String], next: &Next, va: Option<Vaddr>) -> String {
    let mut cli = <super::Cli as clap::CommandFactory>::command();
    cli.build();
    // A subcommand's name comes before the dump.
    let (cmd, argv) = match argv.first().and_then(|first| cli.find_subcommand(first)) {
        Some(sub) => (sub, &argv[1..]),
        None => (&cli, argv),
    };
    let flags = Flags::of(cmd);
    // Split the invocation into the dump, kept options and the dropped ones.
    let mut dump: Option<&str> = None;
    let mut kept: Vec<&str> = Vec::new();
    // The kept options as (long name, its tokens), for commands with other options.
    let mut kept_opts: Vec<(&str, &[String])> = Vec::new();
    let mut i = 0;
    while i < argv.len() {
        let a = argv[i].as_str();
        let name = a.split_once('=').map_or(a, |(n, _)| n);
        let inline = a.contains('=');
        let takes_value = flags.takes_value(name);
        let drop = flags.is_root(name) || VA_OPTS.contains(&name) || name == "--json";
        let n = if takes_value && !inline { 2 } else { 1 };
        let part = &argv[i..(i + n).min(argv.len())];
        if !a.starts_with('-') && dump.is_none() {
            dump = Some(a);
        } else if !drop {
            kept.extend(part.iter().map(String::as_str));
            kept_opts.push((name, part));
        }
        i += n;
    }
    let dump = quote(dump.unwrap_or("DUMP"));
    let keep = kept.iter().map(|s| quote(s)).collect::<Vec<_>>().join(" ");
    let roots: Vec<String> = {
        let mut v = Vec::new();
        let mut i = 0;
        while i < argv.len() {
            let a = argv[i].as_str();
            let name = a.split_once('=').map_or(a, |(n, _)| n);
            if flags.is_root(name) {
                if a.contains('=') {
                    v.push(quote(a));
                    i += 1;
                } else {
                    v.push(a.to_string());
                    if let Some(val) = argv.get(i + 1) {
                        v.push(quote(val));
                    }
                    i += 2;
                }
                continue;
            }
            i += 1;
        }
        v
    };
    let root = roots.join(" ");
    let join = |parts: &[&str]| parts.iter().filter(|p| !p.is_empty()).copied().collect::<Vec<_>>().join(" ");
    let va_arg = va.map(|v| format!("--va {:#x}", v.0)).unwrap_or_default();
    match next {
        Next::Root(r) => join(&["xenwalk", &dump, &keep, r, &va_arg]),
        Next::Va(v) => join(&["xenwalk", &dump, &keep, &root, &format!("--va {:#x}", v.0)]),
        Next::Listing => join(&["xenwalk", &dump, &keep, &root]),
        Next::Info => {
            // The options `info` has too (--xen-syms, --offsets-from, --xen-phys-start,
            // --format, …), as clap defines it; the others are the walk's own.
            let info = cli.find_subcommand("info").map(|c| longs(c, |_| true)).unwrap_or_default();
            let opts: Vec<String> = kept_opts
                .iter()
                .filter(|(name, _)| info.iter().any(|l| l == name))
                .flat_map(|(_, part)| part.iter().map(|t| quote(t)))
                .collect();
            join(&["xenwalk info", &dump, &opts.join(" ")])
        }
        Next::Explain { entry, level } => format!("xenwalk explain {entry:#018x} --level {}", level.number()),
    }
}

/// Quote for a POSIX shell when needed.
fn quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paging::Level;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn root_replaced_va_kept_other_options_kept() {
        let a = argv("d.core --xen-syms x.syms --cr3 0x3fc6e --va ffff82d040200000 --va 1234 --json --long");
        let c = command_from(&a, &Next::Root("--cr3-mfn 0x3fc6e".into()), Some(Vaddr(0xffff_82d0_4020_0000)));
        assert_eq!(c, "xenwalk d.core --xen-syms x.syms --long --cr3-mfn 0x3fc6e --va 0xffff82d040200000");
        let c = command_from(&a, &Next::Root("--cr3-mfn 0x3fc6e".into()), None);
        assert_eq!(c, "xenwalk d.core --xen-syms x.syms --long --cr3-mfn 0x3fc6e");
    }

    #[test]
    fn va_replaced_root_kept_and_quoted() {
        let a: Vec<String> = ["my dump.core", "--cr3=*domain_list->vcpu[0]->arch.cr3", "--va", "ffff000000400000"]
            .map(String::from)
            .into();
        let c = command_from(&a, &Next::Va(Vaddr(0x400000)), Some(Vaddr(0xffff_0000_0040_0000)));
        assert_eq!(c, "xenwalk 'my dump.core' '--cr3=*domain_list->vcpu[0]->arch.cr3' --va 0x400000");
    }

    #[test]
    fn a_subcommand_name_is_not_the_dump() {
        let a = argv("diff d.raw --cpu 0 --cpu 1");
        assert_eq!(command_from(&a, &Next::Info, None), "xenwalk info d.raw");
    }

    #[test]
    fn info_listing_and_explain() {
        let a = argv("d.core --xen-syms x --cpu 1 --va 0x1000");
        assert_eq!(command_from(&a, &Next::Info, Some(Vaddr(0x1000))), "xenwalk info d.core --xen-syms x");
        // What `info` takes too stays (the offsets' source and the image's base change
        // what it says); the walk's own options go.
        let b =
            argv("d.raw --xen-syms x --offsets-from infer --xen-phys-start 3f800000 --maxphyaddr 46 --domain 1 --va 1");
        assert_eq!(
            command_from(&b, &Next::Info, None),
            "xenwalk info d.raw --xen-syms x --offsets-from infer --xen-phys-start 3f800000"
        );
        assert_eq!(command_from(&a, &Next::Listing, Some(Vaddr(0x1000))), "xenwalk d.core --xen-syms x --cpu 1");
        assert_eq!(
            command_from(&a, &Next::Explain { entry: 0x8000_0000_0000_0080, level: Level::L4 }, None),
            "xenwalk explain 0x8000000000000080 --level 4"
        );
    }

    #[test]
    fn every_value_option_keeps_its_value_from_clap_definitions() {
        // Values that look like dumps (no leading '-') must stay with their option.
        let a = argv(
            "--color never d.raw --format raw --base 1000 --maxphyaddr 46 --xen-version 4.17 \
             --xen-phys-start 3f800000 --cpu 1 --va 1 --va-file list.txt",
        );
        assert_eq!(
            command_from(&a, &Next::Listing, Some(Vaddr(1))),
            "xenwalk d.raw --color never --format raw --base 1000 --maxphyaddr 46 --xen-version 4.17 \
             --xen-phys-start 3f800000 --cpu 1"
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        );
        // A subcommand's own options: `map`'s --svg takes a file.
        let a = argv("map d.raw --svg out.svg --domain 1 --vcpu 2");
        assert_eq!(command_from(&a, &Next::Info, None), "xenwalk info d.raw");
    }
}
