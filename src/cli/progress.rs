//! A progress bar for long listings: on stderr when it is a terminal and stdout is
//! not (the listing goes to a file or a pipe), never with `--quiet`, and only once a
//! listing has run for half a second.

use crate::paging::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::cell::RefCell;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

const DELAY: Duration = Duration::from_millis(500);

pub(crate) struct Bar {
    enabled: bool,
    start: Instant,
    bar: RefCell<Option<ProgressBar>>,
}

impl Bar {
    pub fn new(quiet: bool) -> Bar {
        let enabled = !quiet && std::io::stderr().is_terminal() && !std::io::stdout().is_terminal();
        Bar { enabled, start: Instant::now(), bar: RefCell::new(None) }
    }

    /// Whether a bar may be drawn at all.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn update(&self, p: Progress) {
        if !self.enabled {
            return;
        }
        let mut slot = self.bar.borrow_mut();
        if slot.is_none() {
            if self.start.elapsed() < DELAY {
                return;
            }
            let bar = ProgressBar::with_draw_target(Some(p.total), ProgressDrawTarget::stderr())
                .with_elapsed(self.start.elapsed());
            let style =
                ProgressStyle::with_template("{spinner} {elapsed_precise} [{wide_bar}] {pos}/{len} L2 tables, {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            *slot = Some(bar);
        }
        if let Some(bar) = slot.as_ref() {
            bar.set_length(p.total);
            bar.set_position(p.done);
            bar.set_message(format!("{} leaves", p.leaves));
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = self.bar.borrow_mut().take() {
            bar.finish_and_clear();
        }
    }
}
