//! A small deterministic fuzzer inside `cargo test`: every truncation and single-byte change of
//! the worked example, and random multi-byte mutations of the fuzz seeds and the bad corpus,
//! through `fuzz_entry` (no panic, no hang, write → parse stable).
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

/// xorshift64*: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn check(bytes: &[u8], what: &str) {
    assert!(axml::fuzz_entry(bytes), "write → parse mismatch: {what}");
}

#[test]
fn every_truncation_and_byte_change_of_the_worked_example() {
    let ex = common::worked_example();
    for n in 0..ex.len() {
        check(&ex[..n], &format!("first {n} bytes"));
    }
    for i in 0..ex.len() {
        for v in [0x00, 0x01, 0x03, 0x7f, 0x80, 0xfe, 0xff] {
            let mut b = ex.clone();
            b[i] = v;
            check(&b, &format!("byte {i:#x} = {v:#x}"));
        }
    }
}

#[test]
fn random_mutations_of_seeds_and_corpus() {
    let mut inputs: Vec<Vec<u8>> = Vec::new();
    for dir in ["fuzz/seeds/axml", "testdata/bad"] {
        for e in std::fs::read_dir(common::manifest_dir().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "axml") {
                let b = std::fs::read(&p).unwrap();
                if b.len() < 4096 {
                    inputs.push(b);
                }
            }
        }
    }
    assert!(inputs.len() > 20);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let interesting: [u32; 8] = [0, 1, 4, 8, 0x7fff, 0x8000, 0xffff, 0xffff_ffff];
    for round in 0..100_000 {
        let mut b = inputs[rng.below(inputs.len())].clone();
        for _ in 0..1 + rng.below(4) {
            if b.is_empty() {
                break;
            }
            let at = rng.below(b.len());
            match rng.below(5) {
                0 => b[at] = rng.next() as u8,
                1 => b[at] ^= 1 << rng.below(8),
                2 if at + 4 <= b.len() => {
                    let v = interesting[rng.below(interesting.len())];
                    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
                }
                3 => b.truncate(at),
                _ if at + 2 <= b.len() => {
                    let v = interesting[rng.below(interesting.len())] as u16;
                    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
                }
                _ => {}
            }
        }
        check(&b, &format!("round {round}"));
    }
}
