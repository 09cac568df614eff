//! Oracle: `protoc` (Debian `protobuf-compiler`) with the checked-in `proto/metadata.proto`.
//! Fails, not skips, when protoc is missing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::process::{Command, Stdio};

use payload_metadata::{Metadata, Payload, PayloadConfig};

fn protoc(mode: &str, input: &[u8]) -> Vec<u8> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/proto");
    let mut child = Command::new("protoc")
        .args([
            &format!("--{mode}=android.microdroid.Metadata"),
            "-I",
            dir,
            "metadata.proto",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run protoc ({e}): install `protobuf-compiler`"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "protoc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn body(m: &Metadata) -> Vec<u8> {
    payload_metadata::to_bytes(m).unwrap()[4..].to_vec()
}

#[test]
fn protoc_decodes_our_config_path_metadata() {
    let mut m = Metadata::for_app(
        &[("com.android.art", 1_700_000_000, true)],
        Payload::ConfigPath("/mnt/apk/assets/vm_config.json".into()),
    );
    m.apexes[0].public_key = vec![1, 2];
    m.apexes[0].root_digest = vec![0xab];
    m.apexes[0].manifest_version = -7;
    m.apexes[0].manifest_name = "art".into();
    let text = String::from_utf8(protoc("decode", &body(&m))).unwrap();
    let expected = r#"version: 1
apexes {
  name: "com.android.art"
  partition_name: "microdroid-apex-0"
  public_key: "\001\002"
  root_digest: "\253"
  last_update_seconds: 1700000000
  is_factory: true
  manifest_version: -7
  manifest_name: "art"
}
apk {
  name: "apk"
  payload_partition_name: "microdroid-apk"
  idsig_partition_name: "microdroid-apk-idsig"
}
config_path: "/mnt/apk/assets/vm_config.json"
"#;
    assert_eq!(text, expected);
}

#[test]
fn protoc_decodes_our_payload_config_metadata() {
    let m = Metadata::for_app(
        &[],
        Payload::Config(PayloadConfig {
            payload_binary_name: "libpayload.so".into(),
            extra_apk_count: 2,
        }),
    );
    let text = String::from_utf8(protoc("decode", &body(&m))).unwrap();
    assert!(
        text.contains(
            "config {\n  payload_binary_name: \"libpayload.so\"\n  extra_apk_count: 2\n}"
        ),
        "{text}"
    );
}

#[test]
fn we_decode_protoc_encoded_metadata_identically() {
    let text = br#"version: 1
apexes { name: "a" partition_name: "microdroid-apex-0" last_update_seconds: 5 is_factory: true }
apexes { name: "b" partition_name: "microdroid-apex-1" manifest_version: 3 }
apk { name: "apk" payload_partition_name: "microdroid-apk" idsig_partition_name: "microdroid-apk-idsig" }
config { payload_binary_name: "p.so" extra_apk_count: 1 }
"#;
    let encoded = protoc("encode", text);
    let mut framed = (encoded.len() as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(&encoded);
    let m = payload_metadata::from_bytes(&framed).unwrap();
    assert_eq!(m.apexes.len(), 2);
    assert_eq!(m.apexes[1].manifest_version, 3);
    assert_eq!(
        m.payload,
        Some(Payload::Config(PayloadConfig {
            payload_binary_name: "p.so".into(),
            extra_apk_count: 1
        }))
    );
    // Canonical encoding: our bytes equal protoc's (fields in tag order).
    assert_eq!(payload_metadata::to_bytes(&m).unwrap(), framed);
}
