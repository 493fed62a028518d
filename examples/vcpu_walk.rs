//! The library alone doing what `xenwalk DUMP --xen-syms XEN-SYMS --domain D --vcpu 0
//! --va VA --json` does: open the dump with its hypervisor, take the vCPU's address
//! space (for an HVM/PVH guest its own tables, read through Xen's p2m), walk, say
//! what the walk means to Xen, and print the JSON Lines the CLI prints.
//!
//! `cargo run --example vcpu_walk -- DUMP XEN-SYMS DOMAIN VA`
use xenwalk::session::{DomainSel, RootSpec, Session, SessionOptions};
use xenwalk::xen::{annotate, domains::TableKind};
use xenwalk::{Vaddr, diagnose, paging::WalkOptions, parse::Expr, render::json};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dump, syms, domain, va] = &args[..] else {
        return Err("usage: vcpu_walk DUMP XEN-SYMS DOMAIN VA".into());
    };
    let s = Session::open(dump.as_ref(), &SessionOptions { xen_syms: Some(syms.into()), ..Default::default() })?;
    let spec = RootSpec::Domain { domain: DomainSel::Id(domain.parse()?), vcpu: 0, table: TableKind::Guest };
    let opts = WalkOptions::default();
    let space = s.space(&spec, opts)?;
    let (mem, root) = (space.mem(&s), &space.root);
    let va = Vaddr(s.resolve(&Expr::parse(va)?)?);
    let t = diagnose::translate(mem, root, va, opts);
    let a = annotate::AnnotateOptions { maxphyaddr: opts.maxphyaddr, pitfalls_always: false };
    let notes = annotate::walk(space.xen, mem, root, &t, space.p2m().as_ref(), a);
    println!("{}", serde_json::to_string(&json::RootLine::new(root))?);
    println!("{}", serde_json::to_string(&json::WalkLine::annotated(&t, root, opts.maxphyaddr, &notes))?);
    Ok(())
}
