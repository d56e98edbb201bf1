//! Containment of bugs in per-exchange work. Every byte the agent parses is attacker-chosen;
//! the code is written not to panic (clippy denies the panicking constructs), but should a
//! panic still happen while one record or exchange is handled, that one item is dropped and
//! counted per stage (`internal_errors{stage}`), the first panic of each stage is logged, and
//! capture goes on. A panic anywhere else still aborts the agent loudly.

use std::{
    cell::{Cell, RefCell},
    panic::{AssertUnwindSafe, catch_unwind},
    sync::Once,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Record decoding, the connection table and the protocol parsers.
    Conn,
    /// Building the typed, redacted exchange.
    Event,
    /// The detection rules.
    Detect,
    /// Rendering and offering to the sinks.
    Output,
}

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::Conn, Stage::Event, Stage::Detect, Stage::Output];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Conn => "conn",
            Stage::Event => "event",
            Stage::Detect => "detect",
            Stage::Output => "output",
        }
    }
}

/// Panics contained, per stage (indexed by `Stage as usize`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct InternalErrors {
    pub counts: [u64; 4],
}

impl InternalErrors {
    pub fn get(&self, stage: Stage) -> u64 {
        self.counts.get(stage as usize).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

thread_local! {
    static CONTAINED: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Wraps the panic hook once: inside [`contained`] the message is kept for the one log line
/// instead of being printed for every occurrence; elsewhere the previous hook runs as before.
fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CONTAINED.with(Cell::get) {
                let at = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                let message = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".to_owned());
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{message}{at}")));
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `f`; if it panics, counts it against `stage`, logs the first one of the stage, and
/// returns None.
pub fn contained<R>(stage: Stage, errors: &mut InternalErrors, f: impl FnOnce() -> R) -> Option<R> {
    install_hook();
    let was = CONTAINED.with(|c| c.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    CONTAINED.with(|c| c.set(was));
    match result {
        Ok(r) => Some(r),
        Err(_) => {
            let message = LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_else(|| "panic".to_owned());
            if let Some(count) = errors.counts.get_mut(stage as usize) {
                *count += 1;
                if *count == 1 {
                    log::error!(
                        "internal error in stage {} (item dropped, counted as internal_errors{{stage=\"{}\"}}; further ones are only counted): {message}",
                        stage.as_str(),
                        stage.as_str()
                    );
                }
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::panic)] // the point of the test
    fn a_panic_is_counted_once_per_item_and_work_goes_on() {
        let mut errors = InternalErrors::default();
        assert_eq!(contained(Stage::Detect, &mut errors, || 7), Some(7));
        for _ in 0..3 {
            let r: Option<()> = contained(Stage::Detect, &mut errors, || panic!("boom"));
            assert!(r.is_none());
        }
        assert_eq!(errors.get(Stage::Detect), 3);
        assert_eq!(errors.get(Stage::Conn), 0);
        assert_eq!(errors.total(), 3);
    }
}
