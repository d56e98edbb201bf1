//! Loads the embedded eBPF object with its globals set, and attaches the tracepoints.

use agent_common::{
    event::KernelOffsets,
    names::{
        GLOBAL_CAPTURE_MAX_BYTES, GLOBAL_FILTER_FLAGS, GLOBAL_KERNEL_OFFSETS,
        GLOBAL_PLAINTEXT_ENABLED, GLOBAL_WAKEUP_BYTES, LIFETIME_TRACEPOINTS, MAP_EVENTS,
        SOCKET_IO_SYSCALLS, SOCKET_KPROBES,
    },
};
use aya::{
    Ebpf, EbpfLoader,
    programs::{KProbe, TracePoint},
};

/// The object agent/build.rs produced. Empty when built with AYA_BUILD_SKIP=1.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/agent-ebpf"));

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "this binary was built without its eBPF programs (AYA_BUILD_SKIP); rebuild with `cargo xtask setup` done"
    )]
    NotBuilt,
    #[error(
        "loading the eBPF object into the kernel failed: {0} (are you root, with tracefs and BTF available?)"
    )]
    Load(#[source] aya::EbpfError),
    #[error("program {0} missing from the eBPF object")]
    MissingProgram(&'static str),
    #[error(
        "kprobe on {function}: {source} (use --socket-hooks tracepoint on kernels without kprobes)"
    )]
    KProbe {
        function: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("tracepoint {category}:{name}: {source}")]
    TracePoint {
        category: &'static str,
        name: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
}

pub struct LoadOptions {
    pub capture_max_bytes: u32,
    pub filter_flags: u32,
    pub wakeup_bytes: u64,
    pub ring_buffer_bytes: u32,
    pub offsets: KernelOffsets,
    pub plaintext: bool,
}

pub fn load(options: &LoadOptions) -> Result<Ebpf, LoadError> {
    if EBPF_OBJECT.is_empty() {
        return Err(LoadError::NotBuilt);
    }
    EbpfLoader::new()
        .override_global(GLOBAL_CAPTURE_MAX_BYTES, &options.capture_max_bytes, true)
        .override_global(GLOBAL_WAKEUP_BYTES, &options.wakeup_bytes, true)
        .override_global(GLOBAL_KERNEL_OFFSETS, &options.offsets, true)
        .override_global(GLOBAL_FILTER_FLAGS, &options.filter_flags, true)
        .override_global(GLOBAL_PLAINTEXT_ENABLED, &(options.plaintext as u32), true)
        .map_max_entries(MAP_EVENTS, options.ring_buffer_bytes)
        .load(EBPF_OBJECT)
        .map_err(LoadError::Load)
}

/// Attaches every tracepoint; all are required (they exist on every kernel since 4.x).
pub fn attach_tracepoints(ebpf: &mut Ebpf) -> Result<usize, LoadError> {
    let all = SOCKET_IO_SYSCALLS
        .iter()
        .map(|tp| (*tp, "syscalls", *tp))
        .chain(LIFETIME_TRACEPOINTS.iter().copied());
    let mut count = 0;
    for (program, category, name) in all {
        let tp: &mut TracePoint = ebpf
            .program_mut(program)
            .and_then(|p| p.try_into().ok())
            .ok_or(LoadError::MissingProgram(program))?;
        let err = |source| LoadError::TracePoint {
            category,
            name,
            source,
        };
        tp.load().map_err(err)?;
        tp.attach(category, name).map_err(err)?;
        count += 1;
    }
    Ok(count)
}

/// Whether this kernel can attach kprobes: the kprobe perf PMU exists only with CONFIG_KPROBES.
pub fn kernel_has_kprobes() -> bool {
    std::path::Path::new("/sys/bus/event_source/devices/kprobe/type").exists()
}

/// Attaches the kprobe socket hooks (tcp_sendmsg, tcp_recvmsg).
pub fn attach_socket_kprobes(ebpf: &mut Ebpf) -> Result<usize, LoadError> {
    for (program, function) in SOCKET_KPROBES {
        let probe: &mut KProbe = ebpf
            .program_mut(program)
            .and_then(|p| p.try_into().ok())
            .ok_or(LoadError::MissingProgram(program))?;
        let err = |source| LoadError::KProbe { function, source };
        probe.load().map_err(err)?;
        probe.attach(function, 0).map_err(err)?;
    }
    Ok(SOCKET_KPROBES.len())
}
