//! Which workload a captured process belongs to: its container (from the cgroup id the kernel
//! records) and, on a Kubernetes node, its pod (from the API, watched for this node only).
//! Without containers or Kubernetes the answers are simply absent.

pub mod api;
pub mod cgroup;
pub mod pods;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

pub use cgroup::Container;
use pods::PodIndex;
pub use pods::PodMeta;

/// cgroups remembered at most; a busy node creates and removes a few per second.
const MAX_CGROUPS: usize = 16_384;
/// A cgroup walk (the fallback for processes already gone) runs at most this often.
const WALK_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WorkloadStats {
    /// cgroups whose path was found (containers or not).
    pub cgroups_resolved: u64,
    /// cgroups whose path could not be found (process gone and the cgroup removed).
    pub cgroups_unresolved: u64,
    pub cgroup_cache_resets: u64,
    pub pods_known: u64,
    pub pods_dropped: u64,
    pub api_synced: bool,
    pub api_errors: u64,
    pub api_relists: u64,
    pub api_unusable: u64,
}

/// The Kubernetes half: the watched index and what the watcher reports.
struct Kubernetes {
    node: String,
    index: Arc<RwLock<PodIndex>>,
    status: Arc<api::ApiStatus>,
}

pub struct Workloads {
    /// cgroup id → the container in it (None: resolved, not a container).
    containers: HashMap<u64, Option<Arc<Container>>>,
    cgroup_root: Option<PathBuf>,
    last_walk: Option<Instant>,
    /// The last walk's cgroups by id: misses within WALK_INTERVAL are answered from it.
    walked: HashMap<u64, String>,
    kubernetes: Option<Kubernetes>,
    stop: Arc<AtomicBool>,
    stats: WorkloadStats,
}

/// The workload of one event.
#[derive(Debug, Default, Clone)]
pub struct Workload {
    pub container: Option<Arc<Container>>,
    pub pod: Option<Arc<PodMeta>>,
}

impl Workloads {
    /// Container resolution only (no Kubernetes). The cgroup v2 mount is read from
    /// /proc/self/mountinfo for the fallback walk.
    pub fn new() -> Self {
        let cgroup_root = std::fs::read_to_string("/proc/self/mountinfo")
            .ok()
            .and_then(|m| cgroup::cgroup2_mount(&m));
        Self {
            containers: HashMap::new(),
            cgroup_root,
            last_walk: None,
            walked: HashMap::new(),
            kubernetes: None,
            stop: Arc::new(AtomicBool::new(false)),
            stats: WorkloadStats::default(),
        }
    }

    /// Adds pod resolution: starts the watcher for `config.node`.
    pub fn watch_pods(&mut self, config: api::ApiConfig) -> Result<(), api::ApiError> {
        let index = Arc::new(RwLock::new(PodIndex::default()));
        let status = Arc::new(api::ApiStatus::default());
        log::info!(
            "kubernetes: watching pods of node {} at {}",
            config.node,
            config.url
        );
        let node = config.node.clone();
        api::spawn(config, index.clone(), status.clone(), self.stop.clone())?;
        self.kubernetes = Some(Kubernetes {
            node,
            index,
            status,
        });
        Ok(())
    }

    pub fn node(&self) -> Option<&str> {
        self.kubernetes.as_ref().map(|k| k.node.as_str())
    }

    /// Resolves `cgroup_id` while `pid` (a process in it) is alive: /proc/PID/cgroup names the
    /// path. Cheap on a hit; call at a stream's first record.
    pub fn learn(&mut self, pid: u32, cgroup_id: u64) {
        if cgroup_id == 0 || self.containers.contains_key(&cgroup_id) {
            return;
        }
        // A process already gone is left to the walk at flush time; a readable file without a
        // cgroup v2 line (a v1-only host) is remembered as "no container", so the file is not
        // read again for every record of that cgroup.
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
            return;
        };
        let path = cgroup::unified_path(&text).unwrap_or("/").to_owned();
        self.remember(cgroup_id, &path);
    }

    fn remember(&mut self, cgroup_id: u64, path: &str) {
        if self.containers.len() >= MAX_CGROUPS {
            // Everything is re-learnable from /proc; a reset is simpler than an LRU here.
            self.containers.clear();
            self.stats.cgroup_cache_resets += 1;
        }
        self.stats.cgroups_resolved += 1;
        self.containers
            .insert(cgroup_id, cgroup::container_of_path(path).map(Arc::new));
    }

    /// The workload of an event's cgroup. A cgroup not learned while its process lived is
    /// looked up by inode in the cgroup v2 tree (rate-limited).
    pub fn resolve(&mut self, cgroup_id: u64) -> Workload {
        if cgroup_id != 0 && !self.containers.contains_key(&cgroup_id) {
            self.walk_for(cgroup_id);
        }
        let container = self.containers.get(&cgroup_id).cloned().flatten();
        let pod = match (&container, &self.kubernetes) {
            (Some(c), Some(k)) => k.index.read().ok().and_then(|index| {
                index
                    .by_container(&c.id)
                    .or_else(|| c.pod_uid.as_deref().and_then(|uid| index.by_pod_uid(uid)))
            }),
            _ => None,
        };
        Workload { container, pod }
    }

    fn walk_for(&mut self, cgroup_id: u64) {
        let Some(root) = self.cgroup_root.clone() else {
            self.stats.cgroups_unresolved += 1;
            return;
        };
        let fresh = self.last_walk.is_some_and(|t| t.elapsed() < WALK_INTERVAL);
        if !fresh && !self.walked.contains_key(&cgroup_id) {
            self.last_walk = Some(Instant::now());
            self.walked = cgroup::walk(&root);
        }
        match self.walked.get(&cgroup_id).cloned() {
            Some(path) => self.remember(cgroup_id, &path),
            None => self.stats.cgroups_unresolved += 1,
        }
    }

    pub fn stats(&self) -> WorkloadStats {
        let mut s = self.stats;
        if let Some(k) = &self.kubernetes {
            if let Ok(index) = k.index.read() {
                s.pods_known = index.len() as u64;
                s.pods_dropped = index.dropped;
            }
            s.api_synced = k.status.synced.load(Ordering::Relaxed);
            s.api_errors = k.status.errors.load(Ordering::Relaxed);
            s.api_relists = k.status.relists.load(Ordering::Relaxed);
            s.api_unusable = k.status.unusable.load(Ordering::Relaxed);
        }
        s
    }
}

impl Default for Workloads {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Workloads {
    fn drop(&mut self) {
        // The watcher ends at its next line or timeout; it is not joined (a watch may be idle
        // for minutes) and holds nothing that needs flushing.
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cgroup_is_learned_and_is_not_a_container_here() {
        let mut w = Workloads::new();
        let me = std::process::id();
        let own = std::fs::read_to_string("/proc/self/cgroup").expect("test precondition");
        let path = cgroup::unified_path(&own)
            .expect("test precondition")
            .to_owned();
        w.learn(me, 4242);
        assert_eq!(w.stats().cgroups_resolved, 1);
        let expected = cgroup::container_of_path(&path).map(Arc::new);
        assert_eq!(w.resolve(4242).container, expected);
        // Unknown ids are counted, not guessed.
        w.last_walk = Some(Instant::now());
        assert!(w.resolve(4243).container.is_none());
        assert_eq!(w.stats().cgroups_unresolved, 1);
    }
}
