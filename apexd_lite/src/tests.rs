#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use super::*;

fn key(bits: u32) -> avb::SigningKey {
    avb::SigningKey::from_pem_file(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../libs/avb/testkeys/testkey_rsa{bits}.pem")),
    )
    .unwrap()
}

/// A by-name directory with `microdroid-apex-<i>` files holding APEXes named `names`.
fn by_name_with(dir: &Path, names: &[&str]) -> (PathBuf, Vec<ApexPayload>) {
    let by_name = dir.join("by-name");
    let tree = dir.join("tree");
    fs::create_dir_all(tree.join("bin")).unwrap();
    fs::create_dir_all(&by_name).unwrap();
    fs::write(tree.join("bin/hello"), b"hello").unwrap();
    let key = key(2048);
    let mut entries = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let partition = format!("microdroid-apex-{i}");
        apex::write::build_apex(&tree, name, 3, &key, &by_name.join(&partition)).unwrap();
        entries.push(ApexPayload {
            name: (*name).to_owned(),
            partition_name: partition,
            last_update_seconds: 1234,
            ..ApexPayload::default()
        });
    }
    (by_name, entries)
}

#[test]
fn verifies_every_apex_of_the_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let (by_name, entries) = by_name_with(dir.path(), &["com.example.a", "com.example.b"]);
    let verified = verify_all(&by_name, &entries).unwrap();
    assert_eq!(verified.len(), 2);
    assert_eq!(verified[1].apex.manifest.package_id(), "com.example.b@3");
    let xml = info_list_xml(&verified.iter().collect::<Vec<_>>());
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<apex-info-list>\n"));
    let expected = format!(
        "    <apex-info moduleName=\"com.example.a\" modulePath=\"{}\" versionCode=\"3\" versionName=\"3\" isFactory=\"false\" isActive=\"true\" lastUpdateMillis=\"1234\" provideSharedApexLibs=\"false\"/>\n",
        by_name.join("microdroid-apex-0").display()
    );
    assert!(xml.contains(&expected), "{xml}");
    assert!(xml.ends_with("</apex-info-list>\n"));
    // apexd itself takes only pinned APEXes.
    let text = verify_all_checked(&by_name, &entries, true)
        .unwrap_err()
        .to_string();
    assert!(
        text.ends_with(
            "checking the metadata: its key and root digest are not pinned by microdroid_manager"
        ),
        "{text}"
    );
    let mut pinned = entries.clone();
    for (entry, apex) in pinned.iter_mut().zip(&verified) {
        entry.public_key = apex.apex.public_key.clone();
        entry.root_digest = apex.verified.hashtree.root_digest.clone();
    }
    assert_eq!(
        verify_all_checked(&by_name, &pinned, true).unwrap().len(),
        2
    );
}

#[test]
fn pinned_values_must_match() {
    let dir = tempfile::tempdir().unwrap();
    let (by_name, mut entries) = by_name_with(dir.path(), &["com.example.a"]);
    entries[0].public_key = key(4096).public_key().unwrap().to_avb_bytes();
    let err = verify_all(&by_name, &entries).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("APEX com.example.a (partition microdroid-apex-0): verifying the APEX: public key doesn't match"),
        "{text}"
    );
    entries[0].public_key.clear();
    entries[0].root_digest = vec![0; 32];
    let text = verify_all(&by_name, &entries).unwrap_err().to_string();
    assert!(text.contains("root digest ("), "{text}");
    entries[0].root_digest.clear();
    entries[0].manifest_version = 4;
    let text = verify_all(&by_name, &entries).unwrap_err().to_string();
    assert!(
        text.contains("manifest version 3 doesn't match 4"),
        "{text}"
    );
    // Fault matrix row 19: the APEX's manifest names another APEX than the metadata does.
    entries[0].manifest_version = 3;
    entries[0].manifest_name = "com.example.other".into();
    let text = verify_all(&by_name, &entries).unwrap_err().to_string();
    assert!(
        text.contains(
            "manifest name \"com.example.a\" doesn't match \"com.example.other\" in the payload metadata"
        ),
        "{text}"
    );
}

#[test]
fn partitions_must_follow_the_metadata_order_and_names_be_unique() {
    let dir = tempfile::tempdir().unwrap();
    let (by_name, mut entries) = by_name_with(dir.path(), &["com.example.a", "com.example.a"]);
    let text = verify_all(&by_name, &entries).unwrap_err().to_string();
    assert!(text.contains("another APEX has the same name"), "{text}");
    entries[1].partition_name = "microdroid-apex-0".into();
    let text = verify_all(&by_name, &entries).unwrap_err().to_string();
    assert!(
        text.contains("must be on partition microdroid-apex-1"),
        "{text}"
    );
    entries.truncate(1);
    entries[0].partition_name = "microdroid-apex-0".into();
    fs::write(by_name.join("microdroid-apex-0"), b"not an apex").unwrap();
    let text = verify_all(&by_name, &entries).unwrap_err().to_string();
    assert!(
        text.contains("reading the APEX: invalid zip: not a zip archive"),
        "{text}"
    );
}

#[test]
fn no_apexes_writes_an_empty_list_and_missing_metadata_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let metadata = dir.path().join("payload-metadata");
    let md = payload_metadata::Metadata::for_app(
        &[],
        payload_metadata::Payload::ConfigPath("/mnt/apk/assets/vm_config.json".into()),
    );
    fs::write(
        &metadata,
        payload_metadata::to_bytes_padded(&md, 4096).unwrap(),
    )
    .unwrap();
    let config = Config {
        metadata: metadata.clone(),
        require_pins: true,
        by_name: dir.path().join("by-name"),
        apex_root: dir.path().join("apex"),
    };
    assert!(run(&config).unwrap().is_empty());
    let list = config.apex_root.join(INFO_LIST);
    assert_eq!(
        fs::read_to_string(&list).unwrap(),
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<apex-info-list>\n</apex-info-list>\n"
    );
    assert_eq!(
        fs::metadata(&list).unwrap().permissions().mode() & 0o777,
        0o644
    );
    let missing = Config {
        metadata: dir.path().join("missing"),
        ..config
    };
    assert!(matches!(run(&missing), Err(Error::Metadata { .. })));
}

#[test]
fn xml_attributes_are_escaped() {
    assert_eq!(xml_escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&apos;");
}
