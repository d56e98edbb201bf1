//! Go binaries: recognised by their build information (`.go.buildinfo`) and function table
//! (`.gopclntab`), both of which survive `-ldflags="-s -w"`; found by their magic numbers when
//! section headers are gone. crypto/tls's `(*Conn).Read` and `(*Conn).Write` are located in the
//! function table (no symbols or DWARF needed) and decoded to find every return instruction:
//! Go must never get a uretprobe (see agent-ebpf/src/gotls.rs).
//!
//! Entries in the function table are offsets from the start of Go's text, which is read from
//! the runtime's `moduledata` (the pcHeader stopped carrying it in Go 1.26, and external
//! linking puts C code before it). Position-independent files built by an external linker hold
//! that structure's pointers as relocations, which are followed too.

use std::collections::HashMap;

use iced_x86::{
    Decoder, DecoderOptions, FlowControl, InstructionInfoFactory, Mnemonic, OpAccess, Register,
};
use memchr::memmem;

use super::elf::Elf;

pub const READ_FUNCTION: &str = "crypto/tls.(*Conn).Read";
pub const WRITE_FUNCTION: &str = "crypto/tls.(*Conn).Write";

/// Go 1.17 moved amd64 to the register calling convention the probes read.
const MIN_MINOR: u32 = 17;
/// A function larger than this is not believed (crypto/tls's are a few hundred bytes).
const MAX_FUNCTION_BYTES: u64 = 64 * 1024;
const MAX_RETURNS: usize = 64;

const BUILDINFO_MAGIC: &[u8] = b"\xff Go buildinf:";
const PCLNTAB_MAGIC_116: u32 = 0xffff_fffa;
const PCLNTAB_MAGIC_118: u32 = 0xffff_fff0;
const PCLNTAB_MAGIC_120: u32 = 0xffff_fff1;
const PCLNTAB_MAGIC_12: u32 = 0xffff_fffb;
/// Word offsets in moduledata (Go 1.16 and later): pcHeader, then funcnametab's slice header
/// (pointer first), ...; `text` is word 22.
const MODULEDATA_FUNCNAMETAB: usize = 8;
const MODULEDATA_TEXT: usize = 22 * 8;

/// One probed function: file offsets of its entry and of every `ret` in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoFunction {
    pub name: &'static str,
    pub entry: u64,
    pub returns: Vec<u64>,
}

/// What a Go binary with crypto/tls needs probed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoTls {
    /// The toolchain that built it ("go1.21.13").
    pub version: String,
    pub read: GoFunction,
    pub write: GoFunction,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GoError {
    #[error(
        "built with {version}, older than go1.{MIN_MINOR}: its stack-based calling convention is not supported"
    )]
    TooOld { version: String },
    #[error("no Go function table (.gopclntab) found")]
    NoFunctionTable,
    #[error("Go function table is malformed: {0}")]
    Malformed(&'static str),
    #[error("start of Go text not found (no runtime moduledata, no runtime.text symbol)")]
    NoTextStart,
    #[error("{0} not found: the program does not use crypto/tls")]
    MissingFunction(&'static str),
    #[error("{function}: {detail}")]
    Code {
        function: &'static str,
        detail: String,
    },
}

/// The Go version recorded in the build information, if this is a Go binary.
pub fn build_version(elf: &Elf<'_>) -> Option<String> {
    let blob = match elf.section(".go.buildinfo") {
        Some((_, data)) => data,
        None if elf.has_sections() => return None,
        None => find_buildinfo(elf)?,
    };
    parse_buildinfo(blob, |addr, len| elf.code(addr, len).map(|(_, b)| b))
}

fn find_buildinfo<'a>(elf: &Elf<'a>) -> Option<&'a [u8]> {
    elf.segments().into_iter().find_map(|(_, data, writable)| {
        if !writable {
            return None;
        }
        memmem::find_iter(data, BUILDINFO_MAGIC)
            .find(|at| at % 16 == 0)
            .and_then(|at| data.get(at..))
    })
}

/// Parses a `.go.buildinfo` blob: the version is inline (Go ≥ 1.18) or behind a pointer to a
/// string header (older), read with `read_at(address, len)`.
pub fn parse_buildinfo<'a>(
    blob: &'a [u8],
    read_at: impl Fn(u64, usize) -> Option<&'a [u8]>,
) -> Option<String> {
    if !blob.starts_with(BUILDINFO_MAGIC) {
        return None;
    }
    let pointer_size = *blob.get(14)? as usize;
    let flags = *blob.get(15)?;
    let version = if flags & 2 != 0 {
        let (len, used) = uvarint(blob.get(32..)?)?;
        let start = 32usize.checked_add(used)?;
        blob.get(start..start.checked_add(usize::try_from(len).ok()?)?)?
    } else {
        if pointer_size != 8 || flags & 1 != 0 {
            return None;
        }
        let header = u64_at(blob, 16)?;
        let string = read_at(header, 16)?;
        let (data, len) = (u64_at(string, 0)?, u64_at(string, 8)?);
        if len > 256 {
            return None;
        }
        read_at(data, len as usize)?
    };
    let version = std::str::from_utf8(version).ok()?;
    (!version.is_empty()).then(|| version.to_owned())
}

fn uvarint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// The minor version of "go1.N[.P]" (also "devel go1.N-…"); None when it cannot be told.
pub fn minor_version(version: &str) -> Option<u32> {
    let rest = version.get(version.find("go1.")? + 4..)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    let bytes = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

fn u64_at(data: &[u8], at: usize) -> Option<u64> {
    let bytes = data.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// A function table and where it is in memory.
struct Pclntab<'a> {
    address: u64,
    data: &'a [u8],
}

fn find_pclntab<'a>(elf: &Elf<'a>) -> Option<Pclntab<'a>> {
    for name in [".gopclntab", ".data.rel.ro.gopclntab"] {
        if let Some((address, data)) = elf.section(name) {
            return Some(Pclntab { address, data });
        }
    }
    if elf.has_sections() {
        return None;
    }
    // Section headers gone: the header's magic, pad bytes, minLC 1 and pointer size 8.
    for (address, data, _) in elf.segments() {
        for magic in [PCLNTAB_MAGIC_120, PCLNTAB_MAGIC_118, PCLNTAB_MAGIC_116] {
            let mut needle = magic.to_le_bytes().to_vec();
            needle.extend_from_slice(&[0, 0, 1, 8]);
            if let Some(at) = memmem::find_iter(data, &needle).find(|at| at % 8 == 0) {
                return Some(Pclntab {
                    address: address.wrapping_add(at as u64),
                    data: data.get(at..)?,
                });
            }
        }
    }
    None
}

/// Reads pointer-sized words of the file as the loader would leave them: the stored value,
/// or a RELATIVE relocation's addend where the file holds a placeholder.
struct Words<'e, 'a> {
    elf: &'e Elf<'a>,
    relocations: Option<HashMap<u64, u64>>,
}

impl Words<'_, '_> {
    fn at(&mut self, address: u64) -> Option<u64> {
        let stored = self
            .elf
            .code(address, 8)
            .and_then(|(_, b)| u64_at(b, 0))
            .unwrap_or(0);
        if stored != 0 {
            return Some(stored);
        }
        let elf = self.elf;
        self.relocations
            .get_or_insert_with(|| elf.relative_relocations())
            .get(&address)
            .copied()
    }
}

/// Where Go's text starts, from the moduledata that points at this function table.
fn text_start(elf: &Elf<'_>, table: &Pclntab<'_>, funcname_offset: u64) -> Option<u64> {
    let names = table.address.checked_add(funcname_offset)?;
    // Addresses come from the file: wrapping arithmetic, a wrapped one simply finds nothing.
    let mut words = Words {
        elf,
        relocations: None,
    };
    let pattern = table.address.to_le_bytes();
    for (address, data, writable) in elf.segments() {
        if !writable {
            continue;
        }
        for at in memmem::find_iter(data, &pattern).filter(|at| at % 8 == 0) {
            let base = address.wrapping_add(at as u64);
            if u64_at(data, at + MODULEDATA_FUNCNAMETAB) == Some(names)
                && let Some(text) = words.at(base.wrapping_add(MODULEDATA_TEXT as u64))
            {
                return Some(text);
            }
        }
    }
    // A position-independent file from an external linker: the pointers are relocations.
    let relocations = elf.relative_relocations();
    let base = relocations
        .iter()
        .filter(|&(_, &addend)| addend == table.address)
        .map(|(&at, _)| at)
        .find(|at| {
            relocations.get(&at.wrapping_add(MODULEDATA_FUNCNAMETAB as u64)) == Some(&names)
        })?;
    relocations
        .get(&base.wrapping_add(MODULEDATA_TEXT as u64))
        .copied()
}

/// Looks a Go binary over: Ok(None) when it is not one.
pub fn inspect(elf: &Elf<'_>) -> Result<Option<GoTls>, GoError> {
    let version = build_version(elf);
    let Some(table) = find_pclntab(elf) else {
        return match version {
            Some(_) => Err(GoError::NoFunctionTable),
            None => Ok(None),
        };
    };
    let version = version.unwrap_or_else(|| "an unknown Go version".to_owned());
    let magic = u32_at(table.data, 0).ok_or(GoError::Malformed("short header"))?;
    supported(&version, magic)?;
    let text = |funcnames: u64, header_text: u64| {
        text_start(elf, &table, funcnames)
            .or((header_text != 0).then_some(header_text))
            .or_else(|| elf.symbol("runtime.text"))
    };
    let mut words = Words {
        elf,
        relocations: None,
    };
    let absolute = |at: usize| words.at(table.address.wrapping_add(at as u64)).unwrap_or(0);
    let functions = FunctionTable::parse(table.data, magic, text, absolute)?;
    let find = |name: &'static str| -> Result<GoFunction, GoError> {
        let (start, end) = functions
            .find(name)?
            .ok_or(GoError::MissingFunction(name))?;
        returns(elf, name, start, end)
    };
    let read = find(READ_FUNCTION)?;
    let write = find(WRITE_FUNCTION)?;
    Ok(Some(GoTls {
        version,
        read,
        write,
    }))
}

/// Refuses toolchains older than go1.17 (by the build information, or by a table format only
/// older ones wrote).
pub fn supported(version: &str, magic: u32) -> Result<(), GoError> {
    let too_old = match minor_version(version) {
        Some(minor) => minor < MIN_MINOR,
        // Go 1.16 and 1.17 share a table format; only the build information tells them apart.
        None => magic == PCLNTAB_MAGIC_116,
    };
    if too_old || magic == PCLNTAB_MAGIC_12 {
        return Err(GoError::TooOld {
            version: version.to_owned(),
        });
    }
    Ok(())
}

/// The function table's index: each function's entry and the next one's (its end).
struct FunctionTable<'a> {
    data: &'a [u8],
    count: usize,
    funcnames: usize,
    functab: usize,
    /// Go ≥ 1.18: 32-bit offsets from text; 1.16/1.17: absolute 64-bit addresses.
    offsets: Option<u64>,
    absolute: Vec<u64>,
}

impl<'a> FunctionTable<'a> {
    /// Indexes a table whose header has `magic`. `text` is the start of Go's text (tables of
    /// Go ≥ 1.18 hold offsets from it); `absolute(address)` reads an absolute entry of an
    /// older table as the loader would leave it.
    fn parse(
        data: &'a [u8],
        magic: u32,
        text: impl FnOnce(u64, u64) -> Option<u64>,
        mut absolute: impl FnMut(usize) -> u64,
    ) -> Result<Self, GoError> {
        let word = |i: usize| u64_at(data, 8 + 8 * i).ok_or(GoError::Malformed("short header"));
        if data.get(6..8) != Some(&[1, 8]) {
            return Err(GoError::Malformed("not an amd64 table"));
        }
        let count = usize::try_from(word(0)?).map_err(|_| GoError::Malformed("count"))?;
        let (funcnames, functab, offsets) = match magic {
            PCLNTAB_MAGIC_118 | PCLNTAB_MAGIC_120 => {
                let funcnames = word(3)?;
                let text = text(funcnames, word(2)?).ok_or(GoError::NoTextStart)?;
                (funcnames, word(7)?, Some(text))
            }
            PCLNTAB_MAGIC_116 => (word(2)?, word(6)?, None),
            _ => return Err(GoError::Malformed("unknown magic")),
        };
        let to_usize = |v: u64| usize::try_from(v).map_err(|_| GoError::Malformed("offset"));
        let mut parsed = Self {
            data,
            count,
            funcnames: to_usize(funcnames)?,
            functab: to_usize(functab)?,
            offsets,
            absolute: Vec::new(),
        };
        let entry_bytes = if offsets.is_some() { 8 } else { 16 };
        let table_end = count
            .checked_add(1)
            .and_then(|n| n.checked_mul(entry_bytes))
            .and_then(|n| n.checked_add(parsed.functab))
            .ok_or(GoError::Malformed("count"))?;
        if table_end > data.len() {
            return Err(GoError::Malformed("function index past the table"));
        }
        if offsets.is_none() {
            parsed.absolute = (0..=count)
                .map(|i| absolute(parsed.functab + 16 * i))
                .collect();
        }
        Ok(parsed)
    }

    /// (entry, end) addresses of the function `i`.
    fn bounds(&self, i: usize) -> Option<(u64, u64)> {
        match self.offsets {
            Some(text) => {
                let at = |i: usize| u32_at(self.data, self.functab + 8 * i).map(u64::from);
                Some((text.wrapping_add(at(i)?), text.wrapping_add(at(i + 1)?)))
            }
            None => Some((*self.absolute.get(i)?, *self.absolute.get(i + 1)?)),
        }
    }

    fn name(&self, i: usize) -> Option<&'a [u8]> {
        let (funcoff, name_at) = match self.offsets {
            Some(_) => (u32_at(self.data, self.functab + 8 * i + 4)? as usize, 4),
            None => (
                usize::try_from(u64_at(self.data, self.functab + 16 * i + 8)?).ok()?,
                8,
            ),
        };
        let func = self.functab.checked_add(funcoff)?;
        let name_offset = u32_at(self.data, func.checked_add(name_at)?)? as usize;
        let start = self.funcnames.checked_add(name_offset)?;
        let rest = self.data.get(start..)?;
        let len = memchr::memchr(0, rest)?;
        rest.get(..len)
    }

    fn find(&self, name: &str) -> Result<Option<(u64, u64)>, GoError> {
        for i in 0..self.count {
            if self.name(i) == Some(name.as_bytes()) {
                return self
                    .bounds(i)
                    .map(Some)
                    .ok_or(GoError::Malformed("function bounds"));
            }
        }
        Ok(None)
    }
}

/// File offsets of the entry and of every `ret` of the function at [start, end).
fn returns(elf: &Elf<'_>, name: &'static str, start: u64, end: u64) -> Result<GoFunction, GoError> {
    let code_error = |detail: String| GoError::Code {
        function: name,
        detail,
    };
    let size = end
        .checked_sub(start)
        .filter(|&s| s > 0 && s <= MAX_FUNCTION_BYTES)
        .ok_or_else(|| code_error(format!("implausible size ({start:#x}..{end:#x})")))?;
    let (entry, bytes) = elf
        .code(start, size as usize)
        .ok_or_else(|| code_error(format!("{start:#x} is outside the file's segments")))?;
    let found = return_offsets(bytes, start)
        .map_err(code_error)?
        .into_iter()
        .map(|offset| entry + offset)
        .collect();
    Ok(GoFunction {
        name,
        entry: entry + entry_probe_offset(bytes, start),
        returns: found,
    })
}

/// Where the entry probe goes, as an offset from the function's start. A uprobe on Go's first
/// instruction (the stack-bound check: `cmp rsp,[r14+0x10]`, or `lea r12,[rsp-N]` before it)
/// is single-stepped out of line, a few µs per hit; the conditional jump to `morestack` that
/// follows is emulated by the kernel. The instructions before it only write R12 and flags, so
/// the arguments are still in their registers there; when morestack runs, the function starts
/// over and the probe fires again with the same arguments (the entry is simply replaced). Any
/// other prologue keeps the probe on the first instruction.
pub fn entry_probe_offset(bytes: &[u8], start: u64) -> u64 {
    let mut decoder = Decoder::with_ip(64, bytes, start, DecoderOptions::NONE);
    let mut info = InstructionInfoFactory::new();
    let writes = |access: OpAccess| {
        !matches!(
            access,
            OpAccess::Read | OpAccess::CondRead | OpAccess::NoMemAccess | OpAccess::None
        )
    };
    for _ in 0..3 {
        if !decoder.can_decode() {
            break;
        }
        let instruction = decoder.decode();
        if instruction.is_invalid() {
            break;
        }
        if instruction.flow_control() == FlowControl::ConditionalBranch {
            return instruction.ip().wrapping_sub(start);
        }
        if instruction.flow_control() != FlowControl::Next {
            break;
        }
        let used = info.info(&instruction);
        let harmless = used
            .used_registers()
            .iter()
            .all(|r| !writes(r.access()) || r.register() == Register::R12)
            && used.used_memory().iter().all(|m| !writes(m.access()));
        if !harmless {
            break;
        }
    }
    0
}

/// Offsets (from `start`) of every `ret` in the machine code `bytes` that starts at `start`.
pub fn return_offsets(bytes: &[u8], start: u64) -> Result<Vec<u64>, String> {
    let mut decoder = Decoder::with_ip(64, bytes, start, DecoderOptions::NONE);
    let mut found = Vec::new();
    while decoder.can_decode() {
        let instruction = decoder.decode();
        if instruction.is_invalid() {
            return Err(format!(
                "undecodable instruction at {:#x}",
                instruction.ip()
            ));
        }
        if instruction.mnemonic() == Mnemonic::Ret {
            found.push(instruction.ip().wrapping_sub(start));
        }
    }
    if found.is_empty() || found.len() > MAX_RETURNS {
        return Err(format!(
            "{} return instructions (expected 1..={MAX_RETURNS})",
            found.len()
        ));
    }
    Ok(found)
}

/// (entry, end) of function `name` in a function table of Go ≥ 1.18 (`magic` in its header)
/// or 1.16 whose text starts at `text`: the table reader on its own, for tests and fuzzing.
pub fn function_bounds(table: &[u8], text: u64, name: &str) -> Result<Option<(u64, u64)>, GoError> {
    let magic = u32_at(table, 0).ok_or(GoError::Malformed("short header"))?;
    let absolute = |at: usize| u64_at(table, at).unwrap_or(0);
    FunctionTable::parse(table, magic, |_, _| Some(text), absolute)?.find(name)
}

#[cfg(test)]
#[path = "golang_tests.rs"]
mod tests;
