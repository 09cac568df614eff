//! Stack unwinding of a stopped (waiting) process from outside: its memory through
//! process_vm_readv, each module's call frame information from `.eh_frame` (gimli), and
//! function names from `.symtab` (or `.dynsym` when stripped) through `object`.

use std::collections::HashMap;
use std::io::IoSliceMut;

use gimli::{
    BaseAddresses, CfaRule, EhFrame, EndianSlice, NativeEndian, Register, RegisterRule,
    UnwindContext, UnwindSection, X86_64,
};
use nix::sys::uio::{process_vm_readv, RemoteIoVec};
use nix::unistd::Pid;
use object::{Object, ObjectSection, ObjectSegment};

use crate::message::{reg, NGREG};

/// The most frames a backtrace shows.
pub const MAX_FRAMES: usize = 64;
/// The largest module file read for symbols and unwind tables.
const MAX_MODULE_BYTES: u64 = 256 * 1024 * 1024;

/// One line of /proc/PID/maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub perms: String,
    pub offset: u64,
    pub path: String,
}

/// Parses /proc/PID/maps; lines that do not parse are skipped.
pub fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (range, perms, offset) = (f.next()?, f.next()?, f.next()?);
            let (_dev, _inode) = (f.next()?, f.next()?);
            let path = f.collect::<Vec<_>>().join(" ");
            let (s, e) = range.split_once('-')?;
            Some(Mapping {
                start: u64::from_str_radix(s, 16).ok()?,
                end: u64::from_str_radix(e, 16).ok()?,
                perms: perms.to_owned(),
                offset: u64::from_str_radix(offset, 16).ok()?,
                path,
            })
        })
        .collect()
}

/// Reads another process's memory.
pub trait Memory {
    fn read_u64(&self, addr: u64) -> Option<u64>;
}

/// A live process's memory (needs ptrace-level access: the dumper runs as root).
#[derive(Debug)]
pub struct ProcessMemory(pub i32);

impl Memory for ProcessMemory {
    fn read_u64(&self, addr: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        let remote = [RemoteIoVec {
            base: usize::try_from(addr).ok()?,
            len: 8,
        }];
        let n = process_vm_readv(
            Pid::from_raw(self.0),
            &mut [IoSliceMut::new(&mut b)],
            &remote,
        )
        .ok()?;
        (n == 8).then(|| u64::from_le_bytes(b))
    }
}

/// One frame of a backtrace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub pc: u64,
    /// The pc in the module's own addresses (what objdump and addr2line take).
    pub rel_pc: u64,
    pub module: Option<String>,
    /// The function and the pc's offset into it.
    pub function: Option<(String, u64)>,
    pub build_id: Option<String>,
}

struct Module {
    data: Vec<u8>,
    /// Runtime address minus the module's own address.
    bias: u64,
}

impl Module {
    fn load(path: &str, maps: &[Mapping]) -> Option<Module> {
        let meta = std::fs::metadata(path).ok()?;
        if meta.len() > MAX_MODULE_BYTES {
            return None;
        }
        let data = std::fs::read(path).ok()?;
        let base = maps
            .iter()
            .filter(|m| m.path == path && m.offset == 0)
            .map(|m| m.start)
            .min()?;
        let file = object::File::parse(&*data).ok()?;
        let first_vaddr = file.segments().map(|s| s.address()).min().unwrap_or(0) & !0xfff;
        let bias = base.checked_sub(first_vaddr)?;
        Some(Module { data, bias })
    }

    fn symbolize(&self, svma: u64) -> (Option<(String, u64)>, Option<String>) {
        let Ok(file) = object::File::parse(&*self.data) else {
            return (None, None);
        };
        let function = file.symbol_map().get(svma).map(|s| {
            (
                format!("{:#}", rustc_demangle::demangle(s.name())),
                svma - s.address(),
            )
        });
        let build_id = file
            .build_id()
            .ok()
            .flatten()
            .map(|id| id.iter().map(|b| format!("{b:02x}")).collect());
        (function, build_id)
    }

    /// The caller's registers, from this module's CFI for `svma`.
    fn step(&self, svma: u64, regs: &mut Regs, mem: &dyn Memory) -> Option<()> {
        let file = object::File::parse(&*self.data).ok()?;
        let eh = file.section_by_name(".eh_frame")?;
        let eh_data = eh.data().ok()?;
        let mut bases = BaseAddresses::default().set_eh_frame(eh.address());
        if let Some(text) = file.section_by_name(".text") {
            bases = bases.set_text(text.address());
        }
        let eh_frame = EhFrame::new(eh_data, NativeEndian);
        let mut ctx: Box<UnwindContext<usize>> = Box::new(UnwindContext::new());
        let row = eh_frame
            .unwind_info_for_address(
                &bases,
                &mut ctx,
                svma,
                EhFrame::<EndianSlice<NativeEndian>>::cie_from_offset,
            )
            .ok()?;
        let cfa = match row.cfa() {
            CfaRule::RegisterAndOffset { register, offset } => (*register, *offset),
            CfaRule::Expression(_) => return None,
        };
        let rules = FrameRules {
            cfa,
            ra: row.register(X86_64::RA),
            saved: CALLEE_SAVED.map(|r| (r, row.register(r))),
        };
        *regs = rules.caller(regs, mem)?;
        Some(())
    }
}

/// The registers a callee preserves (System V x86-64), which the unwinder carries up.
const CALLEE_SAVED: [Register; 6] = [
    X86_64::RBX,
    X86_64::RBP,
    X86_64::R12,
    X86_64::R13,
    X86_64::R14,
    X86_64::R15,
];

/// What one CFI row says about the caller's frame, as far as the unwinder uses it.
struct FrameRules {
    /// The canonical frame address: this register's value plus the offset.
    cfa: (Register, i64),
    /// Where the return address is.
    ra: RegisterRule<usize>,
    /// Where each callee-saved register's caller value is.
    saved: [(Register, RegisterRule<usize>); 6],
}

impl FrameRules {
    /// The caller's registers: pc from the return address, RSP the CFA, callee-saved registers
    /// by their rules (a register without a rule keeps its value; one whose rule this unwinder
    /// cannot follow becomes unknown). `None` when the CFA or the return address is unknown:
    /// the end of the backtrace.
    fn caller(&self, regs: &Regs, mem: &dyn Memory) -> Option<Regs> {
        let (cfa_register, cfa_offset) = self.cfa;
        let cfa = regs.get(cfa_register)?.checked_add_signed(cfa_offset)?;
        let rule_value = |rule: &RegisterRule<usize>, old: Option<u64>| -> Option<u64> {
            // Undefined (no value: for the return address, the end of the stack) and the rules
            // this unwinder does not follow (expressions, other registers) give no value.
            match rule {
                RegisterRule::SameValue => old,
                RegisterRule::Offset(o) => mem.read_u64(cfa.checked_add_signed(*o)?),
                RegisterRule::ValOffset(o) => cfa.checked_add_signed(*o),
                _ => None,
            }
        };
        let ra = rule_value(&self.ra, None)?;
        let mut next = regs.clone();
        for (r, rule) in &self.saved {
            next.set(
                *r,
                if matches!(rule, RegisterRule::Undefined) {
                    regs.get(*r)
                } else {
                    rule_value(rule, regs.get(*r))
                },
            );
        }
        next.set(X86_64::RSP, Some(cfa));
        next.pc = ra;
        Some(next)
    }
}

/// The registers the unwinder tracks (DWARF numbering), `None` where unknown.
#[derive(Debug, Clone)]
struct Regs {
    values: HashMap<u16, u64>,
    pc: u64,
}

impl Regs {
    fn get(&self, r: Register) -> Option<u64> {
        self.values.get(&r.0).copied()
    }
    fn set(&mut self, r: Register, v: Option<u64>) {
        match v {
            Some(v) => {
                self.values.insert(r.0, v);
            }
            None => {
                self.values.remove(&r.0);
            }
        }
    }
}

/// Unwinds from the faulting context's registers.
pub fn unwind(gregs: &[u64; NGREG], maps: &[Mapping], mem: &dyn Memory) -> Vec<Frame> {
    let dwarf = [
        (X86_64::RAX, reg::RAX),
        (X86_64::RDX, reg::RDX),
        (X86_64::RCX, reg::RCX),
        (X86_64::RBX, reg::RBX),
        (X86_64::RSI, reg::RSI),
        (X86_64::RDI, reg::RDI),
        (X86_64::RBP, reg::RBP),
        (X86_64::RSP, reg::RSP),
        (X86_64::R8, reg::R8),
        (X86_64::R9, reg::R9),
        (X86_64::R10, reg::R10),
        (X86_64::R11, reg::R11),
        (X86_64::R12, reg::R12),
        (X86_64::R13, reg::R13),
        (X86_64::R14, reg::R14),
        (X86_64::R15, reg::R15),
    ];
    let mut regs = Regs {
        values: dwarf.iter().map(|(d, g)| (d.0, gregs[*g])).collect(),
        pc: gregs[reg::RIP],
    };
    let mut modules: HashMap<String, Option<Module>> = HashMap::new();
    let mut frames = Vec::new();
    for depth in 0..MAX_FRAMES {
        let pc = regs.pc;
        if pc == 0 {
            break;
        }
        // A return address points after the call: look up the call itself.
        let lookup = if depth == 0 { pc } else { pc - 1 };
        let mapping = maps.iter().find(|m| m.start <= lookup && lookup < m.end);
        let path = mapping
            .map(|m| m.path.clone())
            .filter(|p| p.starts_with('/'));
        let module = path.as_ref().and_then(|p| {
            modules
                .entry(p.clone())
                .or_insert_with(|| Module::load(p, maps))
                .as_ref()
        });
        let (rel_pc, function, build_id) = match (module, mapping) {
            (Some(m), _) => {
                let (f, b) = m.symbolize(lookup.wrapping_sub(m.bias));
                (pc.wrapping_sub(m.bias), f, b)
            }
            (None, Some(map)) => (pc - map.start + map.offset, None, None),
            (None, None) => (pc, None, None),
        };
        frames.push(Frame {
            pc,
            rel_pc,
            module: mapping.map(|m| {
                if m.path.is_empty() {
                    "<anonymous>".to_owned()
                } else {
                    m.path.clone()
                }
            }),
            function,
            build_id,
        });
        let Some(m) = module else { break };
        let before = (regs.pc, regs.get(X86_64::RSP));
        if m.step(lookup.wrapping_sub(m.bias), &mut regs, mem)
            .is_none()
        {
            break;
        }
        // No progress means a loop in the CFI or the stack: stop.
        if (regs.pc, regs.get(X86_64::RSP)) == before {
            break;
        }
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines() {
        let maps = parse_maps(
            "5555d000-5555e000 r-xp 00001000 fe:01 123   /system/bin/x\n\
             7ffd0000-7ffd2000 rw-p 00000000 00:00 0      [stack]\n\
             7f000000-7f001000 rw-p 00000000 00:00 0\n\
             garbage\n",
        );
        assert_eq!(maps.len(), 3);
        assert_eq!(maps[0].path, "/system/bin/x");
        assert_eq!((maps[0].start, maps[0].offset), (0x5555_d000, 0x1000));
        assert_eq!(maps[1].path, "[stack]");
        assert_eq!(maps[2].path, "");
    }

    struct NoMemory;
    impl Memory for NoMemory {
        fn read_u64(&self, _: u64) -> Option<u64> {
            None
        }
    }

    /// A stack as a map from address to the u64 stored there.
    struct Stack(HashMap<u64, u64>);
    impl Memory for Stack {
        fn read_u64(&self, addr: u64) -> Option<u64> {
            self.0.get(&addr).copied()
        }
    }

    fn regs(values: &[(Register, u64)]) -> Regs {
        Regs {
            values: values.iter().map(|(r, v)| (r.0, *v)).collect(),
            pc: 0x1000,
        }
    }

    /// The rules of a function that pushed RBP after its call: CFA = RSP + 16, the return
    /// address at CFA - 8, RBP at CFA - 16; the others as `others`.
    fn rules(others: RegisterRule<usize>) -> FrameRules {
        let mut saved = CALLEE_SAVED.map(|r| (r, others.clone()));
        saved[1] = (X86_64::RBP, RegisterRule::Offset(-16));
        FrameRules {
            cfa: (X86_64::RSP, 16),
            ra: RegisterRule::Offset(-8),
            saved,
        }
    }

    /// The callee's stack for [`rules`] with RSP at 0x6ff8: the return address 0x4242 at
    /// 0x7000 (CFA 0x7008 − 8), the saved RBP 0x9999 below it.
    fn callee_stack() -> Stack {
        Stack(HashMap::from([(0x7000, 0x4242), (0x6ff8, 0x9999)]))
    }

    #[test]
    fn caller_frame_from_offset_rules() {
        let stack = callee_stack();
        let callee = regs(&[(X86_64::RSP, 0x6ff8), (X86_64::RBX, 7), (X86_64::RBP, 1)]);
        let caller = rules(RegisterRule::Undefined)
            .caller(&callee, &stack)
            .unwrap();
        assert_eq!(caller.pc, 0x4242);
        assert_eq!(caller.get(X86_64::RSP), Some(0x7008));
        assert_eq!(caller.get(X86_64::RBP), Some(0x9999));
        // No rule: the callee did not touch it.
        assert_eq!(caller.get(X86_64::RBX), Some(7));
        assert_eq!(caller.get(X86_64::R12), None);
    }

    #[test]
    fn same_value_and_val_offset_rules() {
        let stack = callee_stack();
        let callee = regs(&[(X86_64::RSP, 0x6ff8), (X86_64::RBX, 7), (X86_64::R12, 12)]);
        let same = rules(RegisterRule::SameValue)
            .caller(&callee, &stack)
            .unwrap();
        assert_eq!(same.get(X86_64::RBX), Some(7));
        assert_eq!(same.get(X86_64::R12), Some(12));
        assert_eq!(same.get(X86_64::R13), None);
        let val = rules(RegisterRule::ValOffset(-24))
            .caller(&callee, &stack)
            .unwrap();
        assert_eq!(val.get(X86_64::RBX), Some(0x7008 - 24));
        assert_eq!(val.get(X86_64::R15), Some(0x7008 - 24));
        // A rule this unwinder does not follow makes the register unknown.
        let other = rules(RegisterRule::Register(X86_64::RAX))
            .caller(&callee, &stack)
            .unwrap();
        assert_eq!(other.get(X86_64::RBX), None);
    }

    #[test]
    fn unknown_cfa_or_return_address_ends_the_backtrace() {
        let stack = Stack(HashMap::from([(0x7000, 0x4242)]));
        let no_rsp = regs(&[(X86_64::RBX, 7)]);
        assert!(rules(RegisterRule::Undefined)
            .caller(&no_rsp, &stack)
            .is_none());
        let callee = regs(&[(X86_64::RSP, 0x6ff8)]);
        let mut end = rules(RegisterRule::Undefined);
        end.ra = RegisterRule::Undefined;
        assert!(end.caller(&callee, &stack).is_none());
        // The return address unreadable: the end too.
        assert!(rules(RegisterRule::Undefined)
            .caller(&callee, &Stack(HashMap::new()))
            .is_none());
        // An offset past the address space is not a frame.
        let top = regs(&[(X86_64::RSP, u64::MAX - 8)]);
        assert!(rules(RegisterRule::Undefined)
            .caller(&top, &stack)
            .is_none());
        // A saved register unreadable becomes unknown; the frame is still found.
        let caller = rules(RegisterRule::Undefined)
            .caller(&callee, &stack)
            .unwrap();
        assert_eq!(caller.get(X86_64::RBP), None);
    }

    /// A mapping holds [start, end); a pc in a mapping without a file is one frame, named by
    /// the mapping, at its offset into it.
    #[test]
    fn pc_in_a_mapping_without_a_file() {
        let maps = parse_maps(
            "1000-2000 rw-p 00000000 00:00 0\n\
             2000-3000 rw-p 00000010 00:00 0      [stack]\n",
        );
        let frame = |pc: u64| {
            let mut gregs = [0u64; NGREG];
            gregs[reg::RIP] = pc;
            let frames = unwind(&gregs, &maps, &NoMemory);
            assert_eq!(frames.len(), 1);
            (frames[0].module.clone(), frames[0].rel_pc)
        };
        assert_eq!(frame(0x1000), (Some("<anonymous>".into()), 0));
        assert_eq!(frame(0x1fff), (Some("<anonymous>".into()), 0xfff));
        assert_eq!(frame(0x2000), (Some("[stack]".into()), 0x10));
        assert_eq!(frame(0x3000), (None, 0x3000));
        assert_eq!(frame(0xfff), (None, 0xfff));
    }

    #[inline(never)]
    #[no_mangle]
    extern "C" fn tombstone_unwind_test_marker() -> u32 {
        std::hint::black_box(7)
    }

    /// A pc in this very test binary: the module is found by its path in the maps (only its
    /// offset-0 mapping gives the load address, whatever else is mapped lower), and the
    /// function and the pc's offset into it come from its symbol table.
    #[test]
    fn symbolizes_a_function_of_this_process() {
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let exe = exe.to_str().unwrap();
        let mut maps = vec![Mapping {
            start: 0x1000,
            end: 0x2000,
            perms: "r--p".into(),
            offset: 0,
            path: "/nonexistent/lower".into(),
        }];
        maps.extend(parse_maps(
            &std::fs::read_to_string("/proc/self/maps").unwrap(),
        ));
        let marker = tombstone_unwind_test_marker as *const () as u64;
        let mut gregs = [0u64; NGREG];
        gregs[reg::RIP] = marker + 3;
        let frames = unwind(&gregs, &maps, &NoMemory);
        assert_eq!(frames[0].module.as_deref(), Some(exe));
        assert_eq!(
            frames[0].function,
            Some(("tombstone_unwind_test_marker".to_owned(), 3))
        );
        let base = maps
            .iter()
            .filter(|m| m.path == exe && m.offset == 0)
            .map(|m| m.start)
            .min()
            .unwrap();
        // A position-independent executable's own addresses start at 0.
        assert_eq!(frames[0].rel_pc, marker + 3 - base);
    }

    /// Memory in which every word is `0`: every return address and saved register a frame's
    /// rules read is that value.
    struct Filled(u64);
    impl Memory for Filled {
        fn read_u64(&self, _: u64) -> Option<u64> {
            Some(self.0)
        }
    }

    /// A return address points just past its call. When the call is the last instruction of a
    /// function (a call to a `noreturn` function), that is the first byte of the next
    /// function: the caller's frame is looked up one byte earlier, in the function that made
    /// the call. The first frame's pc is where the fault was, and is looked up as it is.
    #[test]
    fn a_return_address_is_looked_up_one_byte_back() {
        let maps = parse_maps(&std::fs::read_to_string("/proc/self/maps").unwrap());
        let marker = tombstone_unwind_test_marker as *const () as u64;
        let mut gregs = [0u64; NGREG];
        gregs[reg::RIP] = marker + 3;
        gregs[reg::RSP] = 0x7000_0000;
        gregs[reg::RBP] = 0x7000_0000;
        // The caller's return address is the marker's own first byte.
        let frames = unwind(&gregs, &maps, &Filled(marker));
        assert!(frames.len() >= 2, "{frames:?}");
        assert_eq!(
            frames[0].function,
            Some(("tombstone_unwind_test_marker".to_owned(), 3))
        );
        assert_eq!(frames[1].pc, marker);
        assert_eq!(frames[1].rel_pc, frames[0].rel_pc - 3);
        let (caller, _) = frames[1].function.clone().unwrap();
        assert_ne!(caller, "tombstone_unwind_test_marker", "{frames:?}");
    }

    /// A minimal ELF executable that is not position-independent: two PT_LOAD segments at
    /// 0x400000 and 0x401000 (headers only, no sections).
    fn non_pie_elf() -> Vec<u8> {
        let mut elf = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        elf.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        elf.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
        elf.extend_from_slice(&1u32.to_le_bytes());
        elf.extend_from_slice(&0x401000u64.to_le_bytes()); // entry
        elf.extend_from_slice(&64u64.to_le_bytes()); // program headers
        elf.extend_from_slice(&0u64.to_le_bytes()); // no section headers
        elf.extend_from_slice(&0u32.to_le_bytes());
        for v in [64u16, 56, 2, 64, 0, 0] {
            elf.extend_from_slice(&v.to_le_bytes());
        }
        for (flags, vaddr) in [(4u32, 0x400000u64), (5, 0x401000)] {
            elf.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
            elf.extend_from_slice(&flags.to_le_bytes());
            for v in [0, vaddr, vaddr, 176, 176, 0x1000] {
                elf.extend_from_slice(&v.to_le_bytes());
            }
        }
        assert_eq!(elf.len(), 176);
        elf
    }

    /// The load bias is the module's lowest offset-0 mapping minus its first segment's page:
    /// 0 for an executable at its own addresses (not position-independent), the mapping's
    /// start for one linked at 0; no module when it is mapped below its own addresses.
    #[test]
    fn the_load_bias_of_a_module_at_its_own_addresses_is_zero() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exec");
        std::fs::write(&path, non_pie_elf()).unwrap();
        let path = path.to_str().unwrap();
        let map = |start: u64| Mapping {
            start,
            end: start + 0x1000,
            perms: "r-xp".into(),
            offset: 0,
            path: path.into(),
        };
        assert_eq!(Module::load(path, &[map(0x400000)]).unwrap().bias, 0);
        assert_eq!(
            Module::load(path, &[map(0x7f00_0040_0000)]).unwrap().bias,
            0x7f00_0000_0000
        );
        assert!(Module::load(path, &[map(0x3ff000)]).is_none());
        assert!(Module::load(path, &[]).is_none());
    }

    #[test]
    fn pc_outside_any_module_is_one_frame() {
        let mut gregs = [0u64; NGREG];
        gregs[reg::RIP] = 0x1234;
        let frames = unwind(&gregs, &[], &NoMemory);
        assert_eq!(frames.len(), 1);
        assert_eq!((frames[0].pc, frames[0].module.clone()), (0x1234, None));
    }
}
