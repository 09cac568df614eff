//! The bad-input corpus in `testdata/bad/` (see its README): one test per file asserting the
//! specific error. `handover-*` files go through `Handover::parse`, `chain-*` files through
//! `verify_chain`. Regenerate the corpus and the fuzz seeds with
//! `cargo test -p dice --test corpus -- --ignored regenerate`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;

use dice::Error;

fn bad_dir() -> PathBuf {
    common::crate_dir().join("testdata/bad")
}

fn seed_dir() -> PathBuf {
    common::crate_dir().join("fuzz/seeds/dice")
}

fn read(name: &str) -> Vec<u8> {
    let bytes = std::fs::read(bad_dir().join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}; run the regenerate test"));
    assert!(dice::fuzz_entry(&bytes), "fuzz_entry false on {name}");
    bytes
}

fn handover(name: &str) -> Error {
    match dice::Handover::parse(&read(name)) {
        Err(e) => e,
        Ok(h) => panic!("{name}: parsed: {h:?}"),
    }
}

fn chain(name: &str) -> Error {
    match dice::verify_chain(&read(name)) {
        Err(e) => e,
        Ok(e) => panic!("{name}: verified {} entries", e.len()),
    }
}

macro_rules! bad {
    ($test:ident, $via:ident, $file:expr, $pat:pat) => {
        #[test]
        fn $test() {
            let err = $via($file);
            assert!(matches!(err, $pat), "{}: unexpected {err:?}", $file);
        }
    };
}

bad!(
    handover_truncated,
    handover,
    "handover-truncated.cbor",
    Error::Truncated
);
bad!(
    handover_wrong_first_key,
    handover,
    "handover-wrong-first-key.cbor",
    Error::UnexpectedKey {
        expected: 1,
        actual: 2
    }
);
bad!(
    handover_short_cdi,
    handover,
    "handover-short-cdi.cbor",
    Error::BadLength {
        field: "CDI_Attest",
        expected: 32,
        actual: 31
    }
);
bad!(
    handover_not_a_map,
    handover,
    "handover-not-a-map.cbor",
    Error::NotAMap
);
bad!(
    handover_one_pair,
    handover,
    "handover-one-pair.cbor",
    Error::BadLength {
        field: "handover map",
        expected: 2,
        actual: 1
    }
);
bad!(
    handover_cdi_not_bstr,
    handover,
    "handover-cdi-not-bstr.cbor",
    Error::WrongType {
        field: "CDI_Seal",
        expected: "bstr"
    }
);
bad!(
    handover_huge_length,
    handover,
    "handover-huge-length.cbor",
    Error::Truncated
);
bad!(
    handover_chain_truncated,
    handover,
    "handover-chain-truncated.cbor",
    Error::Truncated
);
bad!(
    handover_deep_chain,
    handover,
    "handover-deep-chain.cbor",
    Error::NestingTooDeep
);

bad!(
    chain_one_item,
    chain,
    "chain-one-item.cbor",
    Error::ChainTooShort(1)
);
bad!(
    chain_not_an_array,
    chain,
    "chain-not-an-array.cbor",
    Error::NotAnArray
);
bad!(
    chain_bad_signature,
    chain,
    "chain-bad-signature.cbor",
    Error::BadSignature { entry: 2 }
);
bad!(
    chain_issuer_mismatch,
    chain,
    "chain-issuer-mismatch.cbor",
    Error::IssuerMismatch { entry: 2 }
);
bad!(
    chain_wrong_signer,
    chain,
    "chain-wrong-signer.cbor",
    Error::BadSignature { entry: 2 }
);
bad!(
    chain_duplicate_claim,
    chain,
    "chain-duplicate-claim.cbor",
    Error::DuplicateKey(-4670545)
);
bad!(
    chain_es256_alg,
    chain,
    "chain-es256-alg.cbor",
    Error::UnsupportedAlgorithm(-7)
);
bad!(
    chain_root_ec2_key,
    chain,
    "chain-root-ec2-key.cbor",
    Error::UnsupportedAlgorithm(-7)
);
bad!(
    chain_huge_length,
    chain,
    "chain-huge-length.cbor",
    Error::Truncated
);
bad!(
    chain_huge_count,
    chain,
    "chain-huge-count.cbor",
    Error::Truncated
);
bad!(
    chain_deep_nesting,
    chain,
    "chain-deep-nesting.cbor",
    Error::NestingTooDeep
);
bad!(
    chain_trailing_data,
    chain,
    "chain-trailing-data.cbor",
    Error::TrailingData
);
bad!(
    chain_short_code_hash,
    chain,
    "chain-short-code-hash.cbor",
    Error::BadLength {
        field: "codeHash",
        expected: 64,
        actual: 32
    }
);
bad!(
    chain_missing_subject_key,
    chain,
    "chain-missing-subject-key.cbor",
    Error::MissingField("subjectPublicKey")
);
bad!(
    chain_indefinite_array,
    chain,
    "chain-indefinite-array.cbor",
    Error::Cbor(_)
);
bad!(
    chain_short_root_key,
    chain,
    "chain-short-root-key.cbor",
    Error::BadLength {
        field: "COSE_Key x",
        expected: 32,
        actual: 31
    }
);
bad!(
    chain_config_hash_mismatch,
    chain,
    "chain-config-hash-mismatch.cbor",
    Error::ConfigHashMismatch { entry: 1 }
);
bad!(
    chain_subject_mismatch,
    chain,
    "chain-subject-mismatch.cbor",
    Error::SubjectMismatch { entry: 1 }
);
bad!(
    chain_sign1_three_items,
    chain,
    "chain-sign1-three-items.cbor",
    Error::BadLength {
        field: "COSE_Sign1",
        expected: 4,
        actual: 3
    }
);
bad!(
    chain_two_byte_mode,
    chain,
    "chain-two-byte-mode.cbor",
    Error::BadLength {
        field: "mode",
        expected: 1,
        actual: 2
    }
);

/// The chain files are well-formed handovers or not handovers at all, and the other way round:
/// the main flow refuses what the verifier refuses for structural reasons.
#[test]
fn main_flow_refuses_structurally_bad_chains() {
    let cdis = common::build().cdis[0].clone();
    let input = dice::InputValues::default();
    for (name, want) in [
        ("chain-one-item.cbor", "ChainTooShort"),
        ("chain-trailing-data.cbor", "TrailingData"),
        ("chain-huge-count.cbor", "Truncated"),
        ("chain-huge-length.cbor", "Truncated"),
        ("chain-indefinite-array.cbor", "Cbor"),
    ] {
        let err = dice::android_main_flow(&cdis, &read(name), &input).unwrap_err();
        assert!(format!("{err:?}").starts_with(want), "{name}: {err:?}");
    }
}

#[test]
#[ignore]
fn regenerate() {
    for (dir, files) in [
        (bad_dir(), common::bad_inputs()),
        (seed_dir(), common::seeds()),
    ] {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in files {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}

#[test]
fn corpus_is_up_to_date_and_complete() {
    let here = include_str!("corpus.rs");
    let readme = std::fs::read_to_string(common::crate_dir().join("testdata/README.md")).unwrap();
    for (dir, files) in [
        (bad_dir(), common::bad_inputs()),
        (seed_dir(), common::seeds()),
    ] {
        for (name, bytes) in &files {
            let on_disk = std::fs::read(dir.join(name))
                .unwrap_or_else(|e| panic!("{name}: {e}; run the regenerate test"));
            assert!(
                &on_disk == bytes,
                "{name} differs from its generator; run the regenerate test"
            );
        }
        for e in std::fs::read_dir(&dir).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            assert!(
                files.iter().any(|(n, _)| *n == name),
                "{name} in {} has no generator",
                dir.display()
            );
        }
    }
    for (name, _) in common::bad_inputs() {
        assert!(
            here.contains(&format!("\"{name}\"")),
            "no test for bad/{name}"
        );
        assert!(
            readme.contains(&format!("`{name}`")),
            "README misses {name}"
        );
    }
}

/// The seeds are valid: handovers parse and carry a chain that verifies (or none), chains
/// verify; fuzz_entry holds.
#[test]
fn seeds_are_valid() {
    for (name, bytes) in common::seeds() {
        assert!(dice::fuzz_entry(&bytes), "{name}");
        if name.starts_with("handover-") {
            let h = dice::Handover::parse(&bytes).unwrap();
            if let Some(c) = h.chain {
                dice::verify_chain(&c).unwrap();
            }
        } else {
            dice::verify_chain(&bytes).unwrap();
        }
    }
}
