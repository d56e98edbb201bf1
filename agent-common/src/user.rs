//! Userspace-only helpers: aya `Pod` impls are in the agent (orphan rules); here, safe decoding.

use crate::event::{CloseRecord, DataRecord, ExecRecord, ExitRecord, RecordHeader, SocketRecord};

/// Marker for record structs made only of integers and byte arrays: every bit pattern is valid.
///
/// # Safety
/// Implementors must be `#[repr(C)]`, contain no padding the compiler may rely on, no references,
/// bools, enums or floats.
pub unsafe trait PlainRecord: Copy {}
unsafe impl PlainRecord for RecordHeader {}
unsafe impl PlainRecord for DataRecord {}
unsafe impl PlainRecord for SocketRecord {}
unsafe impl PlainRecord for CloseRecord {}
unsafe impl PlainRecord for ExecRecord {}
unsafe impl PlainRecord for ExitRecord {}
unsafe impl PlainRecord for crate::enforce::VerdictRecord {}

/// Reads a `T` from the start of `bytes`, or `None` when too short. Never panics.
pub fn read_record<T: PlainRecord>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < core::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: length checked above; T is plain data (PlainRecord) so any bytes form a valid T;
    // read_unaligned copes with the ring buffer's 8-byte alignment.
    Some(unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

// SAFETY: plain repr(C) integers, no implicit padding (asserted in event.rs).
unsafe impl aya::Pod for crate::event::KernelOffsets {}
// SAFETY: as above.
unsafe impl aya::Pod for crate::event::LibCheck {}
// SAFETY: as above (sizes asserted in enforce.rs).
unsafe impl aya::Pod for crate::enforce::EnforceSettings {}
// SAFETY: as above.
unsafe impl aya::Pod for crate::enforce::ActorEntry {}
// SAFETY: as above.
unsafe impl aya::Pod for crate::enforce::RouteEntry {}
// SAFETY: as above.
unsafe impl aya::Pod for crate::enforce::GateKey {}
// SAFETY: repr(C), integers and byte arrays only, padding named.
unsafe impl aya::Pod for crate::enforce::ClientKey {}
// SAFETY: as above.
unsafe impl aya::Pod for crate::enforce::GateEntry {}
