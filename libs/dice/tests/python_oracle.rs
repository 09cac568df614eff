//! Oracle: `tests/verify_chain.py`, an independent verifier in Python (cbor2 + cryptography,
//! installed by `make setup`), checks the chain and handover our writers make from fixed
//! inputs, and recomputes the CDIs from those inputs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{build, hex, stages, NAMES};
use dice::Config;
use serde_json::Value;

fn python_ready() {
    let out = Command::new("python3")
        .args(["-c", "import cbor2, cryptography"])
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "python3 cannot import cbor2 and cryptography ({}): run `make setup`",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!("cannot run python3 ({e}): run `make setup`"),
    }
}

fn inputs_json() -> String {
    let stages: Vec<String> = stages()
        .iter()
        .map(|s| {
            let config = match &s.config {
                Config::Descriptor(d) => format!("\"config_descriptor\": \"{}\"", hex(d)),
                Config::Inline(v) => format!("\"inline_config\": \"{}\"", hex(v)),
            };
            format!(
                "{{\"code_hash\": \"{}\", {config}, \"authority_hash\": \"{}\", \"mode\": {}, \
                 \"hidden\": \"{}\"}}",
                hex(&s.code_hash),
                hex(&s.authority_hash),
                s.mode as u8,
                hex(&s.hidden)
            )
        })
        .collect();
    format!(
        "{{\"uds\": \"{}\", \"stages\": [{}]}}",
        hex(&common::uds()),
        stages.join(", ")
    )
}

fn run_oracle(args: &[&Path]) -> Result<Value, String> {
    let script = common::crate_dir().join("tests/verify_chain.py");
    let out = Command::new("python3")
        .arg(&script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}): run `make setup`"));
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&out.stdout).unwrap())
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("dice-oracle-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn python_verifies_our_chain_and_recomputes_the_cdis() {
    python_ready();
    let b = build();
    let dir = temp_dir("good");
    let chain_path = dir.join("chain.cbor");
    let inputs_path = dir.join("inputs.json");
    let handover_path = dir.join("handover.cbor");
    std::fs::write(&chain_path, &b.chains[2]).unwrap();
    std::fs::write(&inputs_path, inputs_json()).unwrap();
    std::fs::write(&handover_path, b.handover.to_bytes()).unwrap();

    let v = run_oracle(&[&chain_path, &inputs_path, &handover_path])
        .unwrap_or_else(|e| panic!("the oracle rejected our chain: {e}"));
    std::fs::remove_dir_all(&dir).ok();

    let root = dice::keypair_from_cdi(&common::uds()).verifying_key();
    assert_eq!(v["root_public_key"], hex(root.as_bytes()));
    assert_eq!(v["handover_ok"], true);

    // CDIs: Python's from the inputs against ours.
    let cdis = v["cdis"].as_array().unwrap();
    assert_eq!(cdis.len(), 3);
    for (theirs, ours) in cdis.iter().zip(&b.cdis) {
        assert_eq!(theirs["cdi_attest"], hex(&ours.cdi_attest));
        assert_eq!(theirs["cdi_seal"], hex(&ours.cdi_seal));
    }

    // Claims as Python reads them against the inputs and our verifier.
    let ours = dice::verify_chain(&b.chains[2]).unwrap();
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    let s = stages();
    let opt_hex = |v: &[u8]| {
        if v.is_empty() {
            Value::Null
        } else {
            Value::String(hex(v))
        }
    };
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e["issuer"], ours[i].issuer.as_str());
        assert_eq!(e["subject"], ours[i].subject.as_str());
        assert_eq!(e["code_hash"], hex(&s[i].code_hash));
        assert_eq!(e["authority_hash"], hex(&s[i].authority_hash));
        assert_eq!(e["mode"], s[i].mode as u8);
        assert_eq!(e["component_name"], NAMES[i]);
        assert_eq!(e["profile_name"], dice::PROFILE_NAME);
        assert_eq!(e["code_descriptor"], opt_hex(&s[i].code_descriptor));
        assert_eq!(
            e["authority_descriptor"],
            opt_hex(&s[i].authority_descriptor)
        );
        let Config::Descriptor(d) = &s[i].config else {
            panic!()
        };
        assert_eq!(e["configuration_hash"], hex(&dice::hash(d)));
        assert_eq!(e["subject_public_key"], hex(&ours[i].subject_public_key));
        // open-dice's claim order: configurationHash after configurationDescriptor.
        let keys: Vec<i64> = e["claim_keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_i64().unwrap())
            .collect();
        let mut want = vec![1, 2, -4670545];
        if !s[i].code_descriptor.is_empty() {
            want.push(-4670546);
        }
        want.extend([-4670548, -4670547, -4670549]);
        if !s[i].authority_descriptor.is_empty() {
            want.push(-4670550);
        }
        want.extend([-4670551, -4670552, -4670553, -4670554]);
        assert_eq!(keys, want, "entry {}", i + 1);
    }
}

/// The oracle is not a rubber stamp: it rejects what our verifier rejects.
#[test]
fn python_rejects_tampered_chains() {
    python_ready();
    let dir = temp_dir("bad");
    for name in [
        "chain-bad-signature.cbor",
        "chain-issuer-mismatch.cbor",
        "chain-wrong-signer.cbor",
        "chain-subject-mismatch.cbor",
        "chain-config-hash-mismatch.cbor",
        "chain-es256-alg.cbor",
    ] {
        let path = common::crate_dir().join("testdata/bad").join(name);
        let err = run_oracle(&[&path]).expect_err(name);
        assert!(err.contains("FAILED"), "{name}: {err}");
    }
    // Right chain, wrong inputs: the recomputed CDIs give other keys.
    let b = build();
    let chain_path = dir.join("chain.cbor");
    let inputs_path = dir.join("inputs.json");
    std::fs::write(&chain_path, &b.chains[2]).unwrap();
    let wrong = inputs_json().replacen("\"mode\": 2", "\"mode\": 1", 1);
    std::fs::write(&inputs_path, wrong).unwrap();
    let err = run_oracle(&[&chain_path, &inputs_path]).unwrap_err();
    assert!(err.contains("recomputed CDI_Attest"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
