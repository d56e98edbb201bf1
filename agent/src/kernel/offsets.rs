//! Resolves the kernel struct member offsets the eBPF side needs to read a socket's addresses
//! from an fd. Rust eBPF has no CO-RE, so userspace reads them from the running kernel's BTF and
//! hands them over as a global; without BTF the addresses are reported as unknown.

use agent_common::event::KernelOffsets;
use btf_rs::{Btf, Struct, Type};

#[derive(Debug, thiserror::Error)]
pub enum OffsetsError {
    #[error("cannot read kernel BTF at {path}: {source}")]
    Btf {
        path: String,
        #[source]
        source: btf_rs::Error,
    },
    #[error("kernel BTF has no struct {0}")]
    NoStruct(String),
    #[error("kernel BTF: struct {strukt} has no member {member}")]
    NoMember { strukt: String, member: String },
    #[error("kernel BTF: {strukt}.{member} is a bitfield or not byte aligned")]
    Unaligned { strukt: String, member: String },
}

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

pub fn resolve(path: &str) -> Result<KernelOffsets, OffsetsError> {
    // Mmap backend: fifteen lookups do not justify parsing all of vmlinux's BTF into the heap
    // (the cached backend left ~20 MiB of heap behind). Kernels before 6.12 cannot mmap
    // /sys/kernel/btf/vmlinux (ENODEV); there the file is parsed into memory, which start-up
    // gives back (malloc_trim) once the offsets are known.
    let btf = Btf::from_file_with_backend(path, btf_rs::Backend::Mmap)
        .or_else(|_| Btf::from_file_with_backend(path, btf_rs::Backend::Cache))
        .map_err(|source| OffsetsError::Btf {
            path: path.to_owned(),
            source,
        })?;
    let at = |s: &str, m: &str| member_offset(&btf, s, m);
    Ok(KernelOffsets {
        valid: 1,
        task_files: at("task_struct", "files")?,
        files_fdt: at("files_struct", "fdt")?,
        fdtable_max_fds: at("fdtable", "max_fds")?,
        fdtable_fd: at("fdtable", "fd")?,
        file_private_data: at("file", "private_data")?,
        socket_file: at("socket", "file")?,
        socket_sk: at("socket", "sk")?,
        skc_family: at("sock_common", "skc_family")?,
        skc_daddr: at("sock_common", "skc_daddr")?,
        skc_rcv_saddr: at("sock_common", "skc_rcv_saddr")?,
        skc_dport: at("sock_common", "skc_dport")?,
        skc_num: at("sock_common", "skc_num")?,
        skc_v6_daddr: at("sock_common", "skc_v6_daddr")?,
        skc_v6_rcv_saddr: at("sock_common", "skc_v6_rcv_saddr")?,
        _pad: 0,
    })
}

fn member_offset(btf: &Btf, strukt: &str, member: &str) -> Result<u32, OffsetsError> {
    let candidates = btf
        .resolve_types_by_name(strukt)
        .map_err(|_| OffsetsError::NoStruct(strukt.to_owned()))?;
    let Some(definition) = candidates.into_iter().find_map(|t| match t {
        Type::Struct(s) if !s.members.is_empty() => Some(s),
        _ => None,
    }) else {
        return Err(OffsetsError::NoStruct(strukt.to_owned()));
    };
    let bits =
        find_member_bits(btf, &definition, member).ok_or_else(|| OffsetsError::NoMember {
            strukt: strukt.to_owned(),
            member: member.to_owned(),
        })?;
    if bits % 8 != 0 {
        return Err(OffsetsError::Unaligned {
            strukt: strukt.to_owned(),
            member: member.to_owned(),
        });
    }
    Ok(bits / 8)
}

/// Depth-first through anonymous struct/union members (sock_common nests its fields in them).
fn find_member_bits(btf: &Btf, strukt: &Struct, name: &str) -> Option<u32> {
    for m in &strukt.members {
        let member_name = btf.resolve_name(m).unwrap_or_default();
        if member_name == name {
            return Some(m.bit_offset());
        }
        if member_name.is_empty()
            && let Ok(Type::Struct(inner) | Type::Union(inner)) = btf.resolve_chained_type(m)
            && let Some(bits) = find_member_bits(btf, &inner, name)
        {
            return Some(m.bit_offset() + bits);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_offsets_from_running_kernel() {
        if !std::path::Path::new(VMLINUX_BTF).exists() {
            eprintln!("skipped: {VMLINUX_BTF} absent (kernel without BTF)");
            return;
        }
        let off = resolve(VMLINUX_BTF).expect("offsets");
        assert_eq!(off.valid, 1);
        // skc_daddr and skc_rcv_saddr share the first 8 bytes of sock_common on every kernel.
        assert_eq!(off.skc_daddr, 0);
        assert_eq!(off.skc_rcv_saddr, 4);
        assert!(off.task_files > 0 && off.socket_sk > 0);
    }
}
