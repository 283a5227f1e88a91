//! Progress on R's console and interrupts, between batches, on R's main thread.

use engine::progress::{Display, Progbar};
use engine::train::Observer;
use extendr_api::prelude::*;

use crate::interrupt::interrupt_pending;

pub struct Console {
    display: Display,
    /// Print `Epoch e/E` headers (fit with more than one epoch).
    epoch_headers: bool,
    bar: Option<(Progbar, usize)>,
    pub interrupted: bool,
    /// The `E` of `Epoch e/E` when the fit runs one epoch per call (callbacks in R).
    pub total_epochs: Option<usize>,
}

impl Console {
    pub fn new(verbose: u8, live: bool, epoch_headers: bool) -> Console {
        Console {
            display: Display { verbose, live },
            epoch_headers,
            bar: None,
            interrupted: false,
            total_epochs: None,
        }
    }

    /// Draws the bar's last line with the final logs.
    pub fn finish(&mut self, logs: &[(String, f64)]) {
        if let Some((bar, steps)) = self.bar.as_mut() {
            if let Some(text) = bar.update(*steps, logs, true) {
                write(&text);
            }
        }
        self.bar = None;
    }
}

fn write(text: &str) {
    rprint!("{}", text);
}

impl Observer for Console {
    fn on_epoch_begin(&mut self, epoch: usize, epochs: usize, steps: usize) {
        let epochs = self.total_epochs.unwrap_or(epochs);
        if self.display.verbose > 0 && self.epoch_headers && epochs > 1 {
            write(&format!("Epoch {}/{}\n", epoch + 1, epochs));
        }
        self.bar = Some((Progbar::new(steps, self.display), steps));
    }

    fn on_batch_end(&mut self, step: usize, logs: &[(String, f64)]) {
        if let Some((bar, _)) = self.bar.as_mut() {
            if let Some(text) = bar.update(step, logs, false) {
                write(&text);
            }
        }
    }

    fn on_epoch_end(&mut self, _epoch: usize, logs: &[(String, f64)]) {
        self.finish(logs);
    }

    fn should_stop(&mut self) -> bool {
        if interrupt_pending() {
            self.interrupted = true;
            if self.display.verbose == 1 && self.display.live {
                write("\n");
            }
        }
        self.interrupted
    }
}
