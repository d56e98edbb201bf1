//! The one owner of runtime writes to the kernel's verdict maps: enforcement settings (mode,
//! verdict points, credential key), the listed actors and routes, and the egress gate.
//! Everything else only reads kernel maps.

use agent_common::{
    enforce::{
        ActorEntry, ClientKey, EnforceSettings, GateEntry, GateKey, RouteEntry,
        counter as enforce_counter,
    },
    names::{
        LSM_HOOK_SOCKET_SENDMSG, MAP_ENFORCE_ACTORS, MAP_ENFORCE_CLIENTS, MAP_ENFORCE_COUNTERS,
        MAP_ENFORCE_GATE, MAP_ENFORCE_JUMP, MAP_ENFORCE_ROUTES, MAP_ENFORCE_SETTINGS,
        PROG_ENFORCE_EGRESS_GATE, PROG_ENFORCE_LSM_SENDMSG, PROG_ENFORCE_PLAIN_JUDGE,
    },
};
use aya::{
    Ebpf,
    maps::{Array, HashMap, MapData, MapError, PerCpuArray, ProgramArray},
    programs::{CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, Lsm, TracePoint},
};

/// Where a cgroup v2 hierarchy is mounted when the host has none (a v1-only host): the gate is
/// attached at its root, which every process belongs to.
const PRIVATE_CGROUP2_MOUNT: &str = "/run/cleartap/cgroup2";

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("map {0} missing from the eBPF object")]
    MissingMap(&'static str),
    #[error("program {0} missing from the eBPF object")]
    MissingProgram(&'static str),
    #[error("map {map}: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: MapError,
    },
    #[error("plain-HTTP verdicts ({PROG_ENFORCE_PLAIN_JUDGE}): {0}")]
    PlainJudge(String),
    #[error("BPF-LSM gate ({LSM_HOOK_SOCKET_SENDMSG}): {reason}")]
    Lsm { reason: String },
    #[error("egress gate (cgroup_skb) on the cgroup v2 root {root}: {source}")]
    Gate {
        root: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The verdict maps as the enforcement stage uses them (a trait so the stage is testable
/// without a kernel).
pub trait VerdictMaps {
    fn set_settings(&mut self, settings: &EnforceSettings) -> Result<(), ControlError>;
    fn put_actor(&mut self, key: u64, entry: &ActorEntry) -> Result<(), ControlError>;
    fn remove_actor(&mut self, key: u64) -> Result<(), ControlError>;
    fn put_route(&mut self, key: u64, entry: &RouteEntry) -> Result<(), ControlError>;
    fn remove_route(&mut self, key: u64) -> Result<(), ControlError>;
    fn put_client(&mut self, key: &ClientKey, entry: &ActorEntry) -> Result<(), ControlError>;
    fn remove_client(&mut self, key: &ClientKey) -> Result<(), ControlError>;
    fn remove_gate(&mut self, key: &GateKey) -> Result<(), ControlError>;
    /// ENFORCE_COUNTERS summed over CPUs.
    fn counters(&self) -> [u64; enforce_counter::COUNT as usize];
}

pub struct EnforceMaps {
    settings: Array<MapData, EnforceSettings>,
    actors: HashMap<MapData, u64, ActorEntry>,
    routes: HashMap<MapData, u64, RouteEntry>,
    clients: HashMap<MapData, ClientKey, ActorEntry>,
    gate: HashMap<MapData, GateKey, GateEntry>,
    counters: PerCpuArray<MapData, u64>,
}

fn take<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, ControlError>
where
    T: TryFrom<aya::maps::Map, Error = MapError>,
{
    let map = ebpf.take_map(name).ok_or(ControlError::MissingMap(name))?;
    T::try_from(map).map_err(|source| ControlError::Map { map: name, source })
}

fn map_err(map: &'static str) -> impl FnOnce(MapError) -> ControlError {
    move |source| ControlError::Map { map, source }
}

/// A missing key is not an error when removing.
fn removed(result: Result<(), MapError>, map: &'static str) -> Result<(), ControlError> {
    match result {
        Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
        Err(source) => Err(ControlError::Map { map, source }),
    }
}

impl EnforceMaps {
    pub fn take(ebpf: &mut Ebpf) -> Result<Self, ControlError> {
        Ok(Self {
            settings: take(ebpf, MAP_ENFORCE_SETTINGS)?,
            actors: take(ebpf, MAP_ENFORCE_ACTORS)?,
            routes: take(ebpf, MAP_ENFORCE_ROUTES)?,
            clients: take(ebpf, MAP_ENFORCE_CLIENTS)?,
            gate: take(ebpf, MAP_ENFORCE_GATE)?,
            counters: take(ebpf, MAP_ENFORCE_COUNTERS)?,
        })
    }
}

impl VerdictMaps for EnforceMaps {
    fn set_settings(&mut self, settings: &EnforceSettings) -> Result<(), ControlError> {
        self.settings
            .set(0, settings, 0)
            .map_err(map_err(MAP_ENFORCE_SETTINGS))
    }

    fn put_actor(&mut self, key: u64, entry: &ActorEntry) -> Result<(), ControlError> {
        self.actors
            .insert(key, entry, 0)
            .map_err(map_err(MAP_ENFORCE_ACTORS))
    }

    fn remove_actor(&mut self, key: u64) -> Result<(), ControlError> {
        removed(self.actors.remove(&key), MAP_ENFORCE_ACTORS)
    }

    fn put_route(&mut self, key: u64, entry: &RouteEntry) -> Result<(), ControlError> {
        self.routes
            .insert(key, entry, 0)
            .map_err(map_err(MAP_ENFORCE_ROUTES))
    }

    fn remove_route(&mut self, key: u64) -> Result<(), ControlError> {
        removed(self.routes.remove(&key), MAP_ENFORCE_ROUTES)
    }

    fn put_client(&mut self, key: &ClientKey, entry: &ActorEntry) -> Result<(), ControlError> {
        self.clients
            .insert(key, entry, 0)
            .map_err(map_err(MAP_ENFORCE_CLIENTS))
    }

    fn remove_client(&mut self, key: &ClientKey) -> Result<(), ControlError> {
        removed(self.clients.remove(key), MAP_ENFORCE_CLIENTS)
    }

    fn remove_gate(&mut self, key: &GateKey) -> Result<(), ControlError> {
        removed(self.gate.remove(key), MAP_ENFORCE_GATE)
    }

    fn counters(&self) -> [u64; enforce_counter::COUNT as usize] {
        std::array::from_fn(|i| {
            self.counters
                .get(&(i as u32), 0)
                .map_or(0, |per_cpu| per_cpu.iter().sum())
        })
    }
}

/// The mount point of the cgroup v2 hierarchy: `/sys/fs/cgroup` on unified hosts,
/// `/sys/fs/cgroup/unified` on hybrid ones; on a v1-only host one is mounted for the agent.
pub fn cgroup2_root() -> Result<String, std::io::Error> {
    let mounts = std::fs::read_to_string("/proc/self/mounts")?;
    let mut found: Vec<&str> = mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, point, kind) = (f.next(), f.next()?, f.next()?);
            (kind == "cgroup2").then_some(point)
        })
        .collect();
    // The host's own hierarchy first, then any other mount of it (they share one root).
    found.sort_by_key(|p| !p.starts_with("/sys/fs/cgroup"));
    if let Some(point) = found.first() {
        return Ok((*point).to_owned());
    }
    std::fs::create_dir_all(PRIVATE_CGROUP2_MOUNT)?;
    let status = std::process::Command::new("mount")
        .args(["-t", "cgroup2", "none", PRIVATE_CGROUP2_MOUNT])
        .status()?;
    if !status.success() {
        return Err(std::io::Error::other(format!(
            "no cgroup2 mount, and `mount -t cgroup2 none {PRIVATE_CGROUP2_MOUNT}` failed"
        )));
    }
    Ok(PRIVATE_CGROUP2_MOUNT.to_owned())
}

/// Loads the egress gate and attaches it to the cgroup v2 root; returns the root. The link
/// lives as long as the `Ebpf` object: when the agent exits or dies, the gate goes with it
/// (nothing is pinned).
pub fn attach_egress_gate(ebpf: &mut Ebpf) -> Result<String, ControlError> {
    let root = cgroup2_root().map_err(|e| ControlError::Gate {
        root: "(none)".into(),
        source: Box::new(e),
    })?;
    let gate = |source: Box<dyn std::error::Error + Send + Sync>| ControlError::Gate {
        root: root.clone(),
        source,
    };
    let program: &mut CgroupSkb = ebpf
        .program_mut(PROG_ENFORCE_EGRESS_GATE)
        .and_then(|p| p.try_into().ok())
        .ok_or(ControlError::MissingProgram(PROG_ENFORCE_EGRESS_GATE))?;
    program.load().map_err(|e| gate(Box::new(e)))?;
    let cgroup = std::fs::File::open(&root).map_err(|e| gate(Box::new(e)))?;
    // `Single` means flags 0, which bpf_link_create requires for cgroups (a link attaches
    // alongside other programs anyway; ALLOW_MULTI there is EINVAL).
    program
        .attach(
            cgroup,
            CgroupSkbAttachType::Egress,
            CgroupAttachMode::Single,
        )
        .map_err(|e| gate(Box::new(e)))?;
    Ok(root)
}

/// Loads the plain-HTTP verdict program and puts it where the syscall programs jump to it:
/// from then on plain HTTP requests are judged as TLS ones are. Nothing is attached; the slot
/// empties when the agent's maps go.
pub fn load_plain_judge(ebpf: &mut Ebpf) -> Result<(), ControlError> {
    let judge = |e: &dyn std::error::Error| ControlError::PlainJudge(anyhow_like(e));
    let program: &mut TracePoint = ebpf
        .program_mut(PROG_ENFORCE_PLAIN_JUDGE)
        .and_then(|p| p.try_into().ok())
        .ok_or(ControlError::MissingProgram(PROG_ENFORCE_PLAIN_JUDGE))?;
    program.load().map_err(|e| judge(&e))?;
    let fd = program
        .fd()
        .map_err(|e| judge(&e))?
        .try_clone()
        .map_err(|e| judge(&e))?;
    let map = ebpf
        .map_mut(MAP_ENFORCE_JUMP)
        .ok_or(ControlError::MissingMap(MAP_ENFORCE_JUMP))?;
    let mut jump: ProgramArray<&mut MapData> =
        ProgramArray::try_from(map).map_err(|e| judge(&e))?;
    jump.set(0, &fd, 0).map_err(|e| judge(&e))?;
    Ok(())
}

/// Whether the running kernel has the BPF LSM enabled (`bpf` in the active LSM list).
fn bpf_lsm_active() -> Result<bool, String> {
    const LSM_LIST: &str = "/sys/kernel/security/lsm";
    if !std::path::Path::new(LSM_LIST).exists() {
        let _ = std::process::Command::new("mount")
            .args(["-t", "securityfs", "securityfs", "/sys/kernel/security"])
            .status();
    }
    std::fs::read_to_string(LSM_LIST)
        .map(|list| list.trim().split(',').any(|l| l == "bpf"))
        .map_err(|e| format!("{LSM_LIST}: {e}"))
}

/// Loads and attaches the BPF-LSM gate (a send on a gated connection fails with ECONNRESET).
/// Where the kernel has no BPF LSM, or cannot attach LSM programs (no BPF trampolines), the
/// error says so and the cgroup_skb gate acts alone.
pub fn attach_lsm_gate(ebpf: &mut Ebpf) -> Result<(), ControlError> {
    let lsm = |reason: String| ControlError::Lsm { reason };
    if !bpf_lsm_active().map_err(lsm)? {
        return Err(lsm(
            "the kernel's active LSMs do not include bpf (boot with lsm=…,bpf)".into(),
        ));
    }
    let btf = aya::Btf::from_sys_fs().map_err(|e| lsm(format!("kernel BTF: {e}")))?;
    let program: &mut Lsm = ebpf
        .program_mut(PROG_ENFORCE_LSM_SENDMSG)
        .and_then(|p| p.try_into().ok())
        .ok_or(ControlError::MissingProgram(PROG_ENFORCE_LSM_SENDMSG))?;
    program.load(LSM_HOOK_SOCKET_SENDMSG, &btf).map_err(|e| {
        lsm(format!(
            "{} (this kernel refuses LSM programs: lockdown, or no BPF trampolines)",
            anyhow_like(&e)
        ))
    })?;
    program.attach().map_err(|e| {
        lsm(format!(
            "{} (this kernel cannot attach LSM programs)",
            anyhow_like(&e)
        ))
    })?;
    Ok(())
}

/// An error with its sources, on one line.
fn anyhow_like(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
