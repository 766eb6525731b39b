//! The live rollout display on a terminal: the [`Board`] updated from the
//! runner's hooks, and the block [`render`] makes redrawn in place a few
//! times a second with plain ANSI escapes (cursor up, erase down; line wrap
//! off while drawing, so a line wider than the terminal is cut rather than
//! wrapped, and the count of lines to go back up stays exact). Permanent
//! lines (a wave started, a tenant failed, a halt) are printed above it and
//! scroll away normally. Never used when stdout is not a terminal.

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use chrono::Utc;

use crate::apply::Progress;
use crate::rollout::display::{Board, render};
use crate::store::RolloutEvent;

/// How often the block is redrawn (elapsed times tick).
const REDRAW: Duration = Duration::from_millis(250);

/// A board shared by the runner's hooks and the drawing loop.
#[derive(Debug)]
pub struct Live {
    board: Mutex<Board>,
    /// Lines of the block drawn last (to go back up over).
    drawn: Mutex<usize>,
}

impl Live {
    pub fn new(board: Board) -> Self {
        Live {
            board: Mutex::new(board),
            drawn: Mutex::new(0),
        }
    }

    fn board(&self) -> std::sync::MutexGuard<'_, Board> {
        self.board.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The runner's `on_event`.
    pub fn event(&self, e: &RolloutEvent) {
        self.board().apply_event(e);
    }

    /// The runner's `progress`.
    pub fn progress(&self, p: Progress<'_>) {
        self.board().apply_progress(&p);
    }

    /// Names the rollout, and drops the permanent lines of a replayed log.
    pub fn seeded(&self, rollout: i64) {
        let mut b = self.board();
        b.set_rollout(rollout);
        b.take_log();
    }

    /// Erases the block, prints new permanent lines, draws the block again.
    pub fn draw(&self) {
        let (log, frame) = {
            let mut b = self.board();
            (b.take_log(), render(&b, Utc::now()))
        };
        let mut drawn = self.drawn.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        if *drawn > 0 {
            out.push_str(&format!("\x1b[{}A\r", *drawn));
        }
        out.push_str("\x1b[J");
        for line in log {
            out.push_str(&line);
            out.push('\n');
        }
        out.push_str("\x1b[?7l");
        out.push_str(&frame);
        out.push_str("\x1b[?7h");
        *drawn = frame.lines().count();
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(out.as_bytes());
        let _ = stdout.flush();
    }

    /// Redraws until `done` resolves, then once more.
    pub async fn run(&self, done: impl Future<Output = ()>) {
        let ticking = async {
            let mut tick = tokio::time::interval(REDRAW);
            loop {
                tick.tick().await;
                self.draw();
            }
        };
        tokio::select! {
            () = done => {}
            () = ticking => {}
        }
        self.draw();
    }
}
