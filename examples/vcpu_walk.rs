//! The library alone doing what `xenwalk DUMP --xen-syms XEN-SYMS --domain D --vcpu 0
//! --va VA --json` does: open the dump with its hypervisor, take the vCPU's address
//! space (for an HVM/PVH guest its own tables, read through Xen's p2m), walk, say
//! what the walk means to Xen, and print the JSON Lines the CLI prints.
//!
//! `cargo run --example vcpu_walk -- DUMP XEN-SYMS DOMAIN VA`
use xenwalk::session::{DomainSel, RootSpec, Session, SessionOptions, SpaceKind};
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
    let va = Vaddr(s.resolve(&Expr::parse(va)?)?);
    let (root_line, walk_line) = match &space.kind {
        // A PV guest's tables (or Xen's): machine memory, annotated as Xen sees it.
        SpaceKind::Machine { root, xen } => {
            let t = diagnose::translate(s.mem(), root, va, opts);
            let a = annotate::AnnotateOptions { maxphyaddr: opts.maxphyaddr, pitfalls_always: false };
            let notes = annotate::walk(*xen, s.mem(), root, &t, a);
            (json::RootLine::new(root), json::WalkLine::annotated(&t, root, opts.maxphyaddr, &notes))
        }
        // An HVM/PVH guest's own tables: guest-physical, machine addresses via the p2m.
        SpaceKind::Guest { root, mem } => {
            let t = diagnose::translate(mem, root, va, opts);
            let g = annotate::guest_walk(mem, root, &t, opts.maxphyaddr);
            (json::RootLine::guest(root, mem), json::WalkLine::guest(&t, root, opts.maxphyaddr, &g))
        }
    };
    println!("{}", serde_json::to_string(&root_line)?);
    println!("{}", serde_json::to_string(&walk_line)?);
    Ok(())
}
