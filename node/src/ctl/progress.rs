//! A progress bar on stderr for long `ctl` operations. On a terminal it redraws one line; in a
//! log (no terminal) it prints a line every 10% so CI logs stay short.

use std::io::{IsTerminal, Write};
use std::time::Instant;

pub struct Progress {
    what: String,
    total: u64,
    done: u64,
    started: Instant,
    tty: bool,
    last_decile: u64,
    /// Shown after the bar (bytes and files of a backup, say).
    detail: String,
}

impl Progress {
    pub fn new(what: &str, total: u64) -> Self {
        Self {
            what: what.to_string(),
            total: total.max(1),
            done: 0,
            started: Instant::now(),
            tty: std::io::stderr().is_terminal(),
            last_decile: 0,
            detail: String::new(),
        }
    }

    /// Sets what is shown after the bar from now on.
    pub fn detail(&mut self, detail: String) {
        self.detail = detail;
    }

    pub fn advance(&mut self, n: u64) {
        self.done = (self.done + n).min(self.total);
        let percent = self.done * 100 / self.total;
        let rate = self.done as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        let width = 30;
        let filled = (percent * width / 100) as usize;
        let eta = if self.done > 0 && self.done < self.total {
            format!(
                " ETA {:.0} s",
                (self.total - self.done) as f64 / rate.max(1e-9)
            )
        } else {
            String::new()
        };
        let detail = if self.detail.is_empty() {
            String::new()
        } else {
            format!(" {}", self.detail)
        };
        let line = format!(
            "{} [{}{}] {}/{} ({percent}%) {rate:.0}/s{eta}{detail}",
            self.what,
            "#".repeat(filled),
            ".".repeat(width as usize - filled),
            self.done,
            self.total,
        );
        let mut err = std::io::stderr();
        if self.tty {
            let _ = write!(err, "\r{line}");
            let _ = err.flush();
        } else if percent / 10 > self.last_decile || self.done == self.total {
            self.last_decile = percent / 10;
            let _ = writeln!(err, "{line}");
        }
    }

    /// Ends the bar; returns the elapsed seconds.
    pub fn finish(self) -> f64 {
        if self.tty {
            eprintln!();
        }
        self.started.elapsed().as_secs_f64()
    }
}
