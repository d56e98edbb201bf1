//! Writing to the ring buffer: counters, wakeup batching, and bounded payload chunking.

use agent_common::event::{
    DATA_CHUNK_BYTES, DATA_NOT_CAPTURED, DataRecord, KIND_DATA, MAX_CHUNKS_PER_CALL, RecordHeader,
    counter,
};
use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_CONS_POS, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns,
        generated::bpf_get_current_cgroup_id, generated::bpf_probe_read_user,
    },
};

use crate::maps::{
    COUNTERS, DATA_SCRATCH, EVENTS, WAKEUP_AT_CONSUMER, capture_max_bytes, wakeup_bytes,
};

#[inline(always)]
pub fn bump(index: u32, by: u64) {
    if let Some(slot) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU while we run.
        unsafe { *slot += by };
    }
}

#[inline(always)]
pub fn header(kind: u32) -> RecordHeader {
    RecordHeader {
        kind,
        _pad: 0,
        // SAFETY: helper without preconditions.
        timestamp_ns: unsafe { bpf_ktime_get_ns() },
        pid_tgid: bpf_get_current_pid_tgid(),
    }
}

/// Submit without waking the consumer (it polls on a short interval) unless enough data is
/// pending that it should start draining now: a wakeup per record would cost ~4.6 µs each.
/// One forced wakeup per CPU per consumer position: until the consumer has moved, another
/// wakeup would only repeat the first.
#[inline(always)]
fn submit_flags() -> u64 {
    if EVENTS.query(BPF_RB_AVAIL_DATA as u64) < wakeup_bytes() {
        return BPF_RB_NO_WAKEUP as u64;
    }
    let consumer = EVENTS.query(BPF_RB_CONS_POS as u64);
    if let Some(last) = WAKEUP_AT_CONSUMER.get_ptr_mut(0) {
        // SAFETY: per-CPU slot.
        unsafe {
            if *last == consumer + 1 {
                return BPF_RB_NO_WAKEUP as u64;
            }
            // +1 so that a consumer position of 0 differs from the initial slot value.
            *last = consumer + 1;
        }
    }
    bump(counter::WAKEUPS, 1);
    BPF_RB_FORCE_WAKEUP as u64
}

/// Emits a small fixed-size control record, counting it if the ring is full.
#[inline(always)]
pub fn emit_control<T>(record: &T) {
    if EVENTS.output::<T>(record, submit_flags()).is_err() {
        bump(counter::RINGBUF_FULL_CONTROL, 1);
    }
}

pub struct Payload {
    pub stream: u64,
    pub buf: u64,
    pub len: u64,
    pub stream_offset: u64,
    pub direction: u32,
    pub fd: i32,
    pub library_id: u32,
    /// DATA_* bits.
    pub flags: u32,
}

/// Copies up to the capture cap of a call's payload into as many records as it needs. Each
/// record carries its offset in the stream; bytes that are not captured only advance offsets.
#[inline(always)]
pub fn emit_payload(payload: &Payload) {
    if !prepare(payload) {
        return;
    }
    let captured = capped(payload.len);
    emit_buffer_global(payload.buf, captured, payload.stream_offset);
    if captured < payload.len {
        emit_uncaptured_tail(payload.stream_offset + captured, payload.len - captured);
    }
}

/// The part of a call beyond the capture cap, as a record without payload: the stream learns
/// at once that these bytes exist and are missing (a body ends where it should), rather than
/// at the next record — which for a connection's last response never comes.
#[inline(always)]
fn emit_uncaptured_tail(stream_offset: u64, len: u64) {
    let Some(scratch) = DATA_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's scratch slot, prepared by `prepare`.
    let record = unsafe { &mut (*scratch).record };
    record.stream_offset = stream_offset;
    record.call_len = if len > u32::MAX as u64 {
        u32::MAX
    } else {
        len as u32
    };
    record.payload_len = 0;
    record.flags |= DATA_NOT_CAPTURED;
    if EVENTS.output::<DataRecord>(record, submit_flags()).is_err() {
        bump(counter::RINGBUF_FULL_CONTROL, 1);
    }
}

/// `len` bytes at `src`, chunk by chunk, as records of the prepared scratch record. Global (see
/// agent-ebpf/build.rs) so its loop is verified once, not at every caller's state.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn emit_buffer_global(src: u64, len: u64, stream_offset: u64) -> u64 {
    let mut done = 0u64;
    for _ in 0..MAX_CHUNKS_PER_CALL {
        if done >= len {
            break;
        }
        done += emit_chunk(src + done, len - done, stream_offset + done);
    }
    done
}

/// The call length limited to the capture cap; the excess is counted as truncated.
#[inline(always)]
pub fn capped(len: u64) -> u64 {
    let max = capture_max_bytes();
    if len > max {
        bump(counter::TRUNCATED_BYTES, len - max);
        max
    } else {
        len
    }
}

/// Fills this CPU's scratch record with everything but the chunk's offset and length.
#[inline(always)]
pub fn prepare(payload: &Payload) -> bool {
    let Some(scratch) = DATA_SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: scratch points to this CPU's DataScratch slot; nothing else runs on this CPU.
    let scratch = unsafe { &mut *scratch };
    scratch.record = DataRecord {
        header: header(KIND_DATA),
        stream: payload.stream,
        stream_offset: payload.stream_offset,
        call_len: if payload.len > u32::MAX as u64 {
            u32::MAX
        } else {
            payload.len as u32
        },
        payload_len: 0,
        direction: payload.direction,
        fd: payload.fd,
        library_id: payload.library_id,
        flags: payload.flags,
        comm: bpf_get_current_comm().unwrap_or([0u8; 16]),
        // SAFETY: helper without preconditions.
        cgroup_id: unsafe { bpf_get_current_cgroup_id() },
    };
    true
}

/// Copies at most one chunk (min(`remaining`, DATA_CHUNK_BYTES) bytes at `src`) into a record
/// at `stream_offset`, using the record `prepare` left in this CPU's scratch slot; returns the
/// bytes it covered (copied, or counted as lost).
#[inline(always)]
pub fn emit_chunk(src: u64, remaining: u64, stream_offset: u64) -> u64 {
    emit_chunk_global(src, remaining, stream_offset)
}

/// A global BPF function (see agent-ebpf/build.rs): verified once, on its own, for any
/// arguments, so its callers' loops stay cheap to verify. Takes scalars only, as global
/// functions must.
///
/// The payload is read from user memory straight into a ring-buffer reservation of the
/// smallest size class that holds it: one copy. (It was read into a per-CPU scratch buffer
/// and copied again by `bpf_ringbuf_output`; a reservation needs a size the verifier knows,
/// hence the classes. A record carries up to twice its payload in unused class bytes, which
/// `payload_len` tells the agent to ignore.)
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn emit_chunk_global(src: u64, remaining: u64, stream_offset: u64) -> u64 {
    if remaining == 0 {
        return 0;
    }
    let len = if remaining > DATA_CHUNK_BYTES as u64 {
        DATA_CHUNK_BYTES as u64
    } else {
        remaining
    };
    if len <= 128 {
        emit_128_global(src, len, stream_offset)
    } else if len <= 512 {
        emit_512_global(src, len, stream_offset)
    } else if len <= 2048 {
        emit_2k_global(src, len, stream_offset)
    } else if len <= 4096 {
        emit_4k_global(src, len, stream_offset)
    } else if len <= 8192 {
        emit_8k_global(src, len, stream_offset)
    } else {
        emit_16k_global(src, len, stream_offset)
    }
}

/// One global function per size class (exported in agent-ebpf/build.rs): each is verified on
/// its own, its reservation and its read bounded by the same constant. Inlined into one
/// function, the compiler merged the classes' tails and Debian 6.1's verifier could no longer
/// tell which reservation a read went to.
macro_rules! size_classes {
    ($($name:ident = $n:expr),* $(,)?) => {$(
        #[unsafe(no_mangle)]
        #[inline(never)]
        pub extern "C" fn $name(src: u64, len: u64, stream_offset: u64) -> u64 {
            emit_sized::<{ $n }>(src, len, stream_offset)
        }
    )*};
}

size_classes!(
    emit_128_global = 128,
    emit_512_global = 512,
    emit_2k_global = 2048,
    emit_4k_global = 4096,
    emit_8k_global = 8192,
    emit_16k_global = DATA_CHUNK_BYTES,
);

/// One data record with room for `N` payload bytes, as reserved in the ring buffer.
#[repr(C)]
struct SizedChunk<const N: usize> {
    record: DataRecord,
    payload: [u8; N],
}

/// Reserves a record of class `N` (a power of two ≥ `len`), fills it from the record template
/// in this CPU's scratch slot and reads `len` bytes at `src` into it; returns `len` (copied, or
/// counted as lost).
#[inline(always)]
fn emit_sized<const N: usize>(src: u64, len: u64, stream_offset: u64) -> u64 {
    if len == 0 {
        return 0;
    }
    let Some(scratch) = DATA_SCRATCH.get_ptr(0) else {
        return len;
    };
    let Some(mut entry) = EVENTS.reserve::<SizedChunk<N>>(0) else {
        bump(counter::RINGBUF_FULL_RECORDS, 1);
        bump(counter::RINGBUF_FULL_BYTES, len);
        return len;
    };
    // Keep the length provably within [1, N] for the verifier (the caller chose N ≥ len).
    let len = ((len.wrapping_sub(1)) & (N as u64 - 1)) + 1;
    let chunk = entry.as_mut_ptr();
    // SAFETY: `chunk` is the reservation, sized for a SizedChunk<N>; len ≤ N.
    let read = unsafe {
        (*chunk).record = (*scratch).record;
        (*chunk).record.stream_offset = stream_offset;
        (*chunk).record.payload_len = len as u32;
        bpf_probe_read_user(
            (*chunk).payload.as_mut_ptr().cast(),
            len as u32,
            src as *const _,
        )
    };
    if read != 0 {
        entry.discard(BPF_RB_NO_WAKEUP as u64);
        bump(counter::READ_FAULT_BYTES, len);
        return len;
    }
    entry.submit(submit_flags());
    bump(counter::DATA_RECORDS, 1);
    len
}
