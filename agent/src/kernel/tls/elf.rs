//! Just enough ELF for attaching uprobes: symbol → virtual address → file offset, and the code
//! bytes at an address. Files are memory-mapped: executables that carry their own TLS (node is
//! ~100 MB) are inspected without being read into the heap.

use std::collections::HashMap;

use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ElfError {
    #[error("not a 64-bit x86 ELF file: {0}")]
    NotX86Elf(String),
}

pub struct Elf<'a> {
    file: object::File<'a>,
}

impl<'a> Elf<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ElfError> {
        let file = object::File::parse(bytes).map_err(|e| ElfError::NotX86Elf(e.to_string()))?;
        if file.architecture() != object::Architecture::X86_64 {
            return Err(ElfError::NotX86Elf(format!("{:?}", file.architecture())));
        }
        Ok(Self { file })
    }

    /// Virtual address of a defined function symbol, from the dynamic or the static table.
    pub fn symbol(&self, name: &str) -> Option<u64> {
        self.file
            .dynamic_symbols()
            .chain(self.file.symbols())
            .find(|s| s.name() == Ok(name) && s.address() != 0 && s.is_definition())
            .map(|s| s.address())
    }

    pub fn has_symbol(&self, name: &str) -> bool {
        self.symbol(name).is_some()
    }

    /// (file offset, up to `len` bytes) at virtual address `addr`, if a loadable segment has it.
    pub fn code(&self, addr: u64, len: usize) -> Option<(u64, &'a [u8])> {
        for seg in self.file.segments() {
            let (start, size) = (seg.address(), seg.size());
            if addr < start || addr >= start.saturating_add(size) {
                continue;
            }
            let (file_start, file_size) = seg.file_range();
            let delta = addr - start;
            if delta >= file_size {
                return None;
            }
            let want = (len as u64).min(file_size - delta);
            return match seg.data_range(addr, want) {
                Ok(Some(bytes)) => Some((file_start + delta, bytes)),
                _ => None,
            };
        }
        None
    }

    /// (virtual address, contents) of a section, when section headers exist.
    pub fn section(&self, name: &str) -> Option<(u64, &'a [u8])> {
        let section = self.file.section_by_name(name)?;
        Some((section.address(), section.data().ok()?))
    }

    /// Whether the file still has section headers (a fully stripped one may not).
    pub fn has_sections(&self) -> bool {
        self.file.sections().any(|s| s.size() > 0)
    }

    /// (virtual address, file contents, writable) of each loadable segment.
    pub fn segments(&self) -> Vec<(u64, &'a [u8], bool)> {
        self.file
            .segments()
            .filter_map(|seg| {
                let writable = match seg.flags() {
                    object::SegmentFlags::Elf { p_flags } => p_flags & object::elf::PF_W != 0,
                    _ => false,
                };
                Some((seg.address(), seg.data().ok()?, writable))
            })
            .collect()
    }

    /// Addends of the R_X86_64_RELATIVE relocations by the address they patch: what a
    /// position-independent file holds in place of a pointer the loader fills in.
    pub fn relative_relocations(&self) -> HashMap<u64, u64> {
        let Some(relocations) = self.file.dynamic_relocations() else {
            return HashMap::new();
        };
        relocations
            .filter(|(_, r)| {
                matches!(r.flags(), object::RelocationFlags::Elf { r_type } if r_type == object::elf::R_X86_64_RELATIVE)
            })
            .map(|(at, r)| (at, r.addend() as u64))
            .collect()
    }

    /// File offset of a function symbol: what a uprobe is attached at.
    pub fn symbol_offset(&self, name: &str) -> Option<u64> {
        self.code(self.symbol(name)?, 1).map(|(offset, _)| offset)
    }
}

/// Maps a file read-only.
pub fn map(path: &std::path::Path) -> std::io::Result<memmap2::Mmap> {
    let file = std::fs::File::open(path)?;
    // SAFETY: read-only private mapping of a library or executable. If another process
    // truncates the file while it is mapped, reads may fault; the agent only maps files it is
    // about to probe, which running programs are using and package managers replace by rename.
    unsafe { memmap2::Mmap::map(&file) }
}
