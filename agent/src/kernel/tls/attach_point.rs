//! Chooses cheap uprobe attach points from the library's machine code.
//!
//! A uprobe on an instruction the kernel must single-step out of line (Debian's SSL_read starts
//! with `sub $imm,%rsp`) costs ~9 µs per hit; on one it emulates (`push`, `nop`, jumps) ~0.5 µs.
//! In OpenSSL 1.1/3.x the exported SSL_read/SSL_read_ex (SSL_write/_ex) are thin wrappers that
//! call one internal function `(ssl, buf, num, size_t *processed)` which begins with `push`.
//! This module recognises that shape (decoded with iced-x86) and returns the internal functions'
//! file offsets; anything unrecognised yields a reason, and the caller keeps the plain probes.

use iced_x86::{
    Code, Decoder, DecoderOptions, FlowControl, Instruction, InstructionInfoFactory, Mnemonic,
    OpAccess, Register,
};

use super::elf::{Elf, ElfError};

/// Bytes of a wrapper decoded while looking for its call.
const WRAPPER_WINDOW: usize = 96;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalTargets {
    /// File offset of the internal read function (ssl_read_internal).
    pub read_offset: u64,
    /// File offset of the internal write function (ssl_write_internal).
    pub write_offset: u64,
    /// Exported wrappers proven to call them, for the runtime check.
    pub read_wrappers: Vec<Wrapper>,
    pub write_wrappers: Vec<Wrapper>,
}

/// An exported wrapper: (symbol, file offset).
pub type Wrapper = (&'static str, u64);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShapeError {
    #[error(transparent)]
    Elf(#[from] ElfError),
    #[error("symbol {0} not found")]
    NoSymbol(&'static str),
    #[error("{0}: address outside any loadable segment")]
    Unmapped(String),
    #[error("{0}: no direct call to a local function in its first {WRAPPER_WINDOW} bytes")]
    NoCall(&'static str),
    #[error("{symbol}: {detail} before its call")]
    ArgumentsChanged {
        symbol: &'static str,
        detail: String,
    },
    #[error("{first} and {second} call different functions (0x{a:x} vs 0x{b:x})")]
    Disagree {
        first: &'static str,
        second: &'static str,
        a: u64,
        b: u64,
    },
    #[error("internal function at 0x{0:x} starts with `{1}`, which the kernel would single-step")]
    NotEmulated(u64, String),
    #[error("{0} already starts with an emulated instruction; probing it directly is as cheap")]
    AlreadyCheap(&'static str),
}

/// Which argument registers a wrapper may legitimately rewrite before calling the internal
/// function: SSL_read(ssl, buf, int num) widens num into rdx and passes &local in rcx.
#[derive(Clone, Copy, PartialEq, Eq)]
enum WrapperKind {
    IntNum,
    Ex,
}

fn symbol_address(elf: &Elf<'_>, name: &'static str) -> Result<u64, ShapeError> {
    elf.symbol(name).ok_or(ShapeError::NoSymbol(name))
}

fn code<'a>(
    elf: &Elf<'a>,
    addr: u64,
    len: usize,
    what: &str,
) -> Result<(u64, &'a [u8]), ShapeError> {
    elf.code(addr, len)
        .ok_or_else(|| ShapeError::Unmapped(what.to_owned()))
}

fn decode_all(addr: u64, bytes: &[u8]) -> Vec<Instruction> {
    let mut decoder = Decoder::with_ip(64, bytes, addr, DecoderOptions::NONE);
    let mut out = Vec::new();
    while decoder.can_decode() {
        let instr = decoder.decode();
        if instr.is_invalid() {
            break;
        }
        out.push(instr);
        if instr.flow_control() == FlowControl::Return {
            break;
        }
    }
    out
}

/// The internal function a wrapper calls, after checking that ssl (rdi) and buf (rsi) reach it
/// untouched and num/processed (rdx/rcx) are passed through or set in the known way.
fn wrapper_callee(
    elf: &Elf<'_>,
    symbol: &'static str,
    kind: WrapperKind,
) -> Result<(u64, u64), ShapeError> {
    let addr = symbol_address(elf, symbol)?;
    let (offset, bytes) = code(elf, addr, WRAPPER_WINDOW, symbol)?;
    Ok((offset, callee_in(symbol, addr, bytes, kind)?))
}

/// The call target in a wrapper's code at `addr`, if the shape is the one described above.
fn callee_in(
    symbol: &'static str,
    addr: u64,
    bytes: &[u8],
    kind: WrapperKind,
) -> Result<u64, ShapeError> {
    let mut info = InstructionInfoFactory::new();
    for instr in decode_all(addr, bytes) {
        if instr.flow_control() == FlowControl::Call {
            if instr.code() != Code::Call_rel32_64 {
                return Err(ShapeError::NoCall(symbol));
            }
            return Ok(instr.near_branch_target());
        }
        if matches!(
            instr.flow_control(),
            FlowControl::UnconditionalBranch | FlowControl::Return | FlowControl::IndirectBranch
        ) {
            return Err(ShapeError::NoCall(symbol));
        }
        for used in info.info(&instr).used_registers() {
            let writes = matches!(
                used.access(),
                OpAccess::Write
                    | OpAccess::ReadWrite
                    | OpAccess::CondWrite
                    | OpAccess::ReadCondWrite
            );
            if !writes {
                continue;
            }
            let reg = used.register().full_register();
            let allowed = match (kind, reg) {
                (_, Register::RDI | Register::RSI) => false,
                (WrapperKind::Ex, Register::RDX | Register::RCX) => false,
                // `movsxd rdx, edx`: the int num widened to size_t.
                (WrapperKind::IntNum, Register::RDX) => {
                    instr.mnemonic() == Mnemonic::Movsxd && instr.op1_register() == Register::EDX
                }
                // `mov rcx, rsp` / `lea rcx, [rsp+n]`: &processed on the wrapper's stack.
                (WrapperKind::IntNum, Register::RCX) => {
                    matches!(instr.mnemonic(), Mnemonic::Mov | Mnemonic::Lea)
                        && (instr.op1_register() == Register::RSP
                            || instr.memory_base() == Register::RSP)
                }
                _ => true,
            };
            if !allowed {
                return Err(ShapeError::ArgumentsChanged {
                    symbol,
                    detail: format!("`{:?}` writes {reg:?}", instr.code()),
                });
            }
        }
    }
    Err(ShapeError::NoCall(symbol))
}

/// The kernel emulates these instead of single-stepping them (x86 uprobes emulate register
/// pushes, NOPs and relative jumps/calls).
fn is_emulated(instr: &Instruction) -> bool {
    match instr.mnemonic() {
        Mnemonic::Push => instr.op0_kind() == iced_x86::OpKind::Register,
        Mnemonic::Nop | Mnemonic::Jmp | Mnemonic::Call => true,
        _ => false,
    }
}

fn check_emulated(elf: &Elf<'_>, addr: u64) -> Result<u64, ShapeError> {
    let (offset, bytes) = code(elf, addr, 16, "internal function")?;
    first_is_emulated(addr, bytes)?;
    Ok(offset)
}

fn first_is_emulated(addr: u64, bytes: &[u8]) -> Result<(), ShapeError> {
    let first = decode_all(addr, bytes)
        .into_iter()
        .next()
        .ok_or_else(|| ShapeError::NotEmulated(addr, "undecodable".into()))?;
    if !is_emulated(&first) {
        return Err(ShapeError::NotEmulated(addr, format!("{:?}", first.code())));
    }
    Ok(())
}

fn common_callee(
    elf: &Elf<'_>,
    plain: &'static str,
    ex: &'static str,
) -> Result<(u64, Vec<Wrapper>), ShapeError> {
    // Builds that start the wrapper with `push` (node's bundled OpenSSL) are cheap already, and
    // their inlined bodies call other things first.
    let start = symbol_address(elf, plain)?;
    if let Some((_, bytes)) = elf.code(start, 16)
        && first_is_emulated(start, bytes).is_ok()
    {
        return Err(ShapeError::AlreadyCheap(plain));
    }
    let (plain_off, a) = wrapper_callee(elf, plain, WrapperKind::IntNum)?;
    let mut wrappers = vec![(plain, plain_off)];
    // OpenSSL 1.0 has no _ex functions; the int wrapper alone then defines the callee.
    match wrapper_callee(elf, ex, WrapperKind::Ex) {
        Ok((ex_off, b)) if a == b => wrappers.push((ex, ex_off)),
        Ok((_, b)) => {
            return Err(ShapeError::Disagree {
                first: plain,
                second: ex,
                a,
                b,
            });
        }
        Err(ShapeError::NoSymbol(_)) => {}
        Err(e) => return Err(e),
    }
    Ok((check_emulated(elf, a)?, wrappers))
}

/// Finds the internal read/write functions of an OpenSSL libssl (or an executable carrying it).
pub fn find_internal_targets(bytes: &[u8]) -> Result<InternalTargets, ShapeError> {
    internal_targets(&Elf::parse(bytes)?)
}

pub fn internal_targets(elf: &Elf<'_>) -> Result<InternalTargets, ShapeError> {
    let (read_offset, read_wrappers) = common_callee(elf, "SSL_read", "SSL_read_ex")?;
    let (write_offset, write_wrappers) = common_callee(elf, "SSL_write", "SSL_write_ex")?;
    Ok(InternalTargets {
        read_offset,
        write_offset,
        read_wrappers,
        write_wrappers,
    })
}

#[cfg(test)]
#[path = "attach_point_tests.rs"]
mod tests;
