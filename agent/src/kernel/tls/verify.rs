//! Runtime check of internal attach points: while a library is `Verifying`, count-only probes on
//! its exported wrappers record (ssl, buf) per thread and the internal entry probe compares. The
//! static shape check (attach_point.rs) says the wrappers *should* pass their arguments through;
//! this says they *do*, on the traffic of this host, before the wrapper probes are dropped.

use agent_common::{event::LibCheck, names::MAP_LIB_CHECKS};
use aya::{Ebpf, maps::PerCpuArray};

use super::{Attacher, Mode, Target, attach_exported, detach, detach_all, display_path};

/// Matching calls needed before the internal attach point is trusted.
const MIN_MATCHES: u64 = 8;
/// Wrapper calls after which too few matches reject the attach point.
const GIVE_UP_HITS: u64 = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pending,
    Confirmed,
    Rejected(String),
}

pub fn judge(check: &LibCheck) -> Verdict {
    if check.mismatches > 0 {
        return Verdict::Rejected(format!(
            "{} of {} wrapper calls reached it with other arguments",
            check.mismatches, check.wrapper_hits
        ));
    }
    // Calls in flight while the counters are read, and wrappers that fail before calling
    // (negative length), leave a few hits unmatched.
    let slack = check.matches / 8 + 4;
    if check.matches >= MIN_MATCHES && check.wrapper_hits <= check.matches + slack {
        return Verdict::Confirmed;
    }
    if check.wrapper_hits >= GIVE_UP_HITS && check.matches * 2 < check.wrapper_hits {
        return Verdict::Rejected(format!(
            "only {} of {} wrapper calls reached it",
            check.matches, check.wrapper_hits
        ));
    }
    Verdict::Pending
}

fn read_checks(ebpf: &Ebpf, ids: &[u32]) -> Vec<(u32, LibCheck)> {
    let Some(map) = ebpf.map(MAP_LIB_CHECKS) else {
        return Vec::new();
    };
    let Ok(array) = PerCpuArray::<_, LibCheck>::try_from(map) else {
        return Vec::new();
    };
    ids.iter()
        .filter_map(|&id| {
            let values = array.get(&id, 0).ok()?;
            let sum = values.iter().fold(LibCheck::default(), |a, v| LibCheck {
                wrapper_hits: a.wrapper_hits + v.wrapper_hits,
                matches: a.matches + v.matches,
                mismatches: a.mismatches + v.mismatches,
            });
            Some((id, sum))
        })
        .collect()
}

/// The summed counters of `id` now (zero when unreadable).
pub fn current_check(ebpf: &Ebpf, id: u32) -> LibCheck {
    read_checks(ebpf, &[id])
        .pop()
        .map(|(_, c)| c)
        .unwrap_or_default()
}

impl Attacher {
    /// Settles libraries whose runtime check has a verdict. Cheap when none is verifying.
    pub fn verify(&mut self, ebpf: &mut Ebpf) {
        let ids: Vec<u32> = self
            .libraries
            .iter()
            .enumerate()
            .filter(|(_, l)| l.mode == Mode::Verifying && !l.released)
            .map(|(i, _)| i as u32 + 1)
            .collect();
        if ids.is_empty() {
            return;
        }
        for (id, check) in read_checks(ebpf, &ids) {
            let Some(library) = self.libraries.get_mut(id as usize - 1) else {
                continue;
            };
            let shown = display_path(&library.path);
            let base = library.check_baseline;
            let check = LibCheck {
                wrapper_hits: check.wrapper_hits.saturating_sub(base.wrapper_hits),
                matches: check.matches.saturating_sub(base.matches),
                mismatches: check.mismatches.saturating_sub(base.mismatches),
            };
            match judge(&check) {
                Verdict::Pending => {}
                Verdict::Confirmed => {
                    detach(ebpf, &mut library.check_links);
                    library.mode = Mode::Internal;
                    log::info!(
                        "{shown}: internal attach points verified ({} of {} wrapper calls matched); wrapper probes removed",
                        check.matches,
                        check.wrapper_hits
                    );
                }
                Verdict::Rejected(reason) => {
                    log::warn!(
                        "{shown}: internal attach points rejected ({reason}); probing the exported functions"
                    );
                    detach_all(ebpf, library);
                    let pid_note = library.pid_note.clone();
                    let path = library.path.clone();
                    let mut target = Target {
                        ebpf,
                        path: &path,
                        id,
                        pid_note: &pid_note,
                        count_only: false,
                    };
                    if let Err(e) = attach_exported(&mut target, library) {
                        self.attach_failures += 1;
                        log::warn!("{e}");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(wrapper_hits: u64, matches: u64, mismatches: u64) -> LibCheck {
        LibCheck {
            wrapper_hits,
            matches,
            mismatches,
        }
    }

    #[test]
    fn verdicts() {
        assert_eq!(judge(&check(0, 0, 0)), Verdict::Pending);
        assert_eq!(judge(&check(7, 7, 0)), Verdict::Pending);
        assert_eq!(judge(&check(9, 8, 0)), Verdict::Confirmed);
        assert_eq!(judge(&check(1000, 990, 0)), Verdict::Confirmed);
        assert!(matches!(judge(&check(10, 9, 1)), Verdict::Rejected(_)));
        assert!(matches!(judge(&check(64, 10, 0)), Verdict::Rejected(_)));
        assert_eq!(judge(&check(40, 10, 0)), Verdict::Pending);
    }
}
