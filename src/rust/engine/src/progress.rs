//! Keras 3's progress bar (keras/src/utils/progbar.py) as text: the glue decides where
//! the text goes (R's console), this module decides what it says.

use std::time::{Duration, Instant};

/// How progress is shown: keras3's `verbose` plus whether the console can redraw a line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Display {
    /// 0 silent, 1 progress bar, 2 one line per epoch.
    pub verbose: u8,
    /// An interactive console: the bar is redrawn in place while it runs.
    pub live: bool,
}

pub struct Progbar {
    target: usize,
    display: Display,
    start: Instant,
    after_first_step: Option<Instant>,
    last_draw: Option<Instant>,
    prev_width: usize,
}

const BAR_WIDTH: usize = 20;
const REDRAW_INTERVAL: Duration = Duration::from_millis(50);

impl Progbar {
    pub fn new(target: usize, display: Display) -> Progbar {
        Progbar {
            target,
            display,
            start: Instant::now(),
            after_first_step: None,
            last_draw: None,
            prev_width: 0,
        }
    }

    /// The text to write after step `current` (None: nothing to write now). `finalize`
    /// marks the last update of the bar, with the complete logs.
    pub fn update(
        &mut self,
        current: usize,
        logs: &[(String, f64)],
        finalize: bool,
    ) -> Option<String> {
        let now = Instant::now();
        if current == 1 && self.after_first_step.is_none() {
            self.after_first_step = Some(now);
        }
        let elapsed = now.duration_since(self.start).as_secs_f64();
        let per_step = match self.after_first_step {
            Some(t) if current > 1 => now.duration_since(t).as_secs_f64() / (current - 1) as f64,
            _ => elapsed / current.max(1) as f64,
        };
        match self.display.verbose {
            1 if self.display.live => {
                let due = self
                    .last_draw
                    .is_none_or(|t| now.duration_since(t) >= REDRAW_INTERVAL);
                if !finalize && !due {
                    return None;
                }
                self.last_draw = Some(now);
                let time = if finalize {
                    format!("{}s", elapsed.round() as u64)
                } else {
                    format_eta(per_step * (self.target.saturating_sub(current)) as f64)
                };
                let line = bar_line(current, self.target, &time, per_step, logs);
                let width = line.chars().count();
                let pad = " ".repeat(self.prev_width.saturating_sub(width));
                self.prev_width = width;
                Some(format!("\r{line}{pad}{}", if finalize { "\n" } else { "" }))
            }
            1 if finalize => {
                let time = format!("{}s", elapsed.round() as u64);
                Some(format!(
                    "{}\n",
                    bar_line(current, self.target, &time, per_step, logs)
                ))
            }
            2 if finalize => {
                let mut s = format!(
                    "{}/{} - {}s - {}",
                    current,
                    self.target,
                    elapsed.round() as u64,
                    format_time_per_step(per_step)
                );
                for (k, v) in logs {
                    s.push_str(&format!(" - {k}: {}", format_value(*v)));
                }
                s.push('\n');
                Some(s)
            }
            _ => None,
        }
    }
}

/// ` 1/40 ━━━━━━━━━━━━━━━━━━━━ 42s 1s/step - accuracy: 0.0312 - loss: 2.4975`
pub fn bar_line(
    current: usize,
    target: usize,
    time: &str,
    per_step: f64,
    logs: &[(String, f64)],
) -> String {
    let width = target.to_string().len();
    // Keras colours the done part green; R's console gets the 20 characters uncoloured.
    let mut s = format!(
        "{current:>width$}/{target} {} {time} {}",
        "\u{2501}".repeat(BAR_WIDTH),
        format_time_per_step(per_step)
    );
    for (k, v) in logs {
        s.push_str(&format!(" - {k}: {}", format_value(*v)));
    }
    s
}

/// `3ms/step`, `1s/step`, `850us/step`, as Keras's `_format_time`.
pub fn format_time_per_step(secs: f64) -> String {
    if secs >= 1.0 || secs == 0.0 {
        format!("{:.0}s/step", secs)
    } else if secs >= 1e-3 {
        format!("{:.0}ms/step", secs * 1e3)
    } else {
        format!("{:.0}us/step", secs * 1e6)
    }
}

/// `{:.4f}`, or `{:.4e}` for magnitudes at or below 1e-3, as Keras prints metrics.
pub fn format_value(v: f64) -> String {
    if v.abs() > 1e-3 || v == 0.0 {
        format!("{v:.4}")
    } else {
        // Python's %e writes a signed two-digit exponent: 5.0000e-04.
        let s = format!("{v:.4e}");
        match s.split_once('e') {
            Some((m, e)) => {
                let (sign, digits) = if let Some(d) = e.strip_prefix('-') {
                    ('-', d)
                } else {
                    ('+', e)
                };
                format!("{m}e{sign}{digits:0>2}")
            }
            None => s,
        }
    }
}

fn format_eta(secs: f64) -> String {
    let s = secs.round() as u64;
    if s > 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
    } else if s > 60 {
        format!("{}:{:02}", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logs() -> Vec<(String, f64)> {
        vec![
            ("accuracy".into(), 0.78312),
            ("loss".into(), 0.69701),
            ("val_loss".into(), 0.0004),
        ]
    }

    #[test]
    fn line_matches_keras() {
        let line = bar_line(375, 375, "1s", 0.0031, &logs());
        assert_eq!(line, "375/375 ━━━━━━━━━━━━━━━━━━━━ 1s 3ms/step - accuracy: 0.7831 - loss: 0.6970 - val_loss: 4.0000e-04");
        assert!(bar_line(1, 40, "42s", 1.2, &[]).starts_with(" 1/40 "));
    }

    #[test]
    fn time_formats() {
        assert_eq!(format_time_per_step(1.2), "1s/step");
        assert_eq!(format_time_per_step(0.0114), "11ms/step");
        assert_eq!(format_time_per_step(0.00085), "850us/step");
        assert_eq!(format_eta(42.0), "42s");
        assert_eq!(format_eta(125.0), "2:05");
    }

    #[test]
    fn verbose_modes() {
        let mut quiet = Progbar::new(
            10,
            Display {
                verbose: 0,
                live: false,
            },
        );
        assert_eq!(quiet.update(10, &logs(), true), None);
        let mut log = Progbar::new(
            10,
            Display {
                verbose: 1,
                live: false,
            },
        );
        assert_eq!(log.update(5, &logs(), false), None);
        let line = log.update(10, &logs(), true).unwrap();
        assert!(
            line.starts_with("10/10 ━━━━━━━━━━━━━━━━━━━━ 0s ")
                && line.ends_with("val_loss: 4.0000e-04\n"),
            "{line}"
        );
        let mut two = Progbar::new(
            10,
            Display {
                verbose: 2,
                live: false,
            },
        );
        let line = two.update(10, &logs(), true).unwrap();
        assert!(
            line.starts_with("10/10 - 0s - ")
                && line.contains("/step - accuracy: 0.7831 - loss: 0.6970"),
            "{line}"
        );
        let mut live = Progbar::new(
            10,
            Display {
                verbose: 1,
                live: true,
            },
        );
        assert!(live
            .update(1, &logs(), false)
            .unwrap()
            .starts_with("\r 1/10 "));
        assert!(live.update(10, &logs(), true).unwrap().ends_with('\n'));
    }
}
