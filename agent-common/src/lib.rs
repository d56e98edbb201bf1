//! Types shared by the eBPF programs and the userspace agent.
//!
//! Everything that crosses the kernel/user boundary is `#[repr(C)]`, made only of fixed-width
//! integers and byte arrays, with explicit padding, so any bit pattern is a valid value and the
//! layout is identical on both sides. Sizes are asserted at compile time.
#![no_std]

pub mod enforce;
pub mod event;
pub mod names;

#[cfg(feature = "user")]
pub mod user;
