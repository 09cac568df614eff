//! Oracles from outside: androguard reads our manifests; Debian aapt2 compiles text manifests
//! (UTF-16 pools) that we parse, and aapt2 / aapt dump ours; apksigner reads minSdkVersion from
//! our manifest. A missing tool fails the test with a `make setup` hint.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use apksig::sign::SigningConfig;
use axml::{parse_document, parse_manifest, write_document, write_manifest};
use axml::{ManifestInfo, ManifestSpec, PoolEncoding};
use common::{run, sorted, temp_dir, worked_example_spec};
use ziparchive::write::{build_zip, ZipEntry};

const AAPT: &str = "Debian package `aapt` (aapt and aapt2)";

/// The manifest most oracles read: every field the writer knows.
fn full_spec(package: &str, version_name: &str, min_sdk: u32) -> ManifestSpec {
    let mut spec = worked_example_spec();
    spec.package = package.into();
    spec.version_name = Some(version_name.into());
    spec.min_sdk_version = Some(min_sdk);
    spec.target_sdk_version = Some(34);
    spec.has_code = Some(false);
    spec
}

// ---- androguard -------------------------------------------------------------------------------

fn androguard(dir: &Path, name: &str, bytes: &[u8]) -> serde_json::Value {
    let (ok, text) = run(
        Command::new("python3").args(["-c", "import androguard"]),
        "python3",
    );
    assert!(
        ok,
        "androguard is not installed: run `make setup` (PyPI androguard, \
         scripts/setup/pip-packages.txt)\n{text}"
    );
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let script = common::manifest_dir().join("tests/androguard_manifest.py");
    let (ok, text) = run(Command::new("python3").arg(script).arg(&path), "python3");
    assert!(ok, "androguard failed on {name}:\n{text}");
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn androguard_reads_our_manifests() {
    let dir = temp_dir("androguard");
    let cases = [
        ("ascii", full_spec("com.example.vm", "1.0", 33)),
        ("non-ascii", full_spec("com.exämple.日本", "1.0-β 🚀", 24)),
    ];
    for (name, spec) in cases {
        for (enc_name, enc) in [("utf8", PoolEncoding::Utf8), ("utf16", PoolEncoding::Utf16)] {
            let bytes = write_document(&spec.to_element(), enc);
            let v = androguard(&dir, &format!("{name}-{enc_name}.bin"), &bytes);
            let s = |k: &str| v[k].as_str().map(str::to_owned);
            assert_eq!(v["valid"], true, "{name} {enc_name}: {v}");
            assert_eq!(s("root").as_deref(), Some("manifest"));
            assert_eq!(s("package").as_deref(), Some(spec.package.as_str()), "{v}");
            assert_eq!(s("versionCode"), Some(spec.version_code.to_string()), "{v}");
            assert_eq!(
                s("versionCodeMajor"),
                spec.version_code_major.map(|m| m.to_string())
            );
            assert_eq!(s("versionName"), spec.version_name, "{v}");
            assert_eq!(
                s("minSdkVersion"),
                spec.min_sdk_version.map(|m| m.to_string())
            );
            assert_eq!(s("targetSdkVersion").as_deref(), Some("34"));
            assert_eq!(s("hasCode").as_deref(), Some("false"));
        }
    }
    // The worked example as assembled from the format page.
    let v = androguard(&dir, "worked.bin", &common::worked_example());
    assert_eq!(v["package"], "com.example.vm");
    assert_eq!(v["versionCode"], "7");
    assert_eq!(v["versionCodeMajor"], "1");
    assert_eq!(v["versionName"], "1.0");
    std::fs::remove_dir_all(dir).ok();
}

// ---- aapt2 ------------------------------------------------------------------------------------

/// A stand-in for the framework's `android.jar` / `framework-res.apk`: package `android` (ID
/// 0x01) with just the attributes manifests use, made public at their real IDs, so that
/// `aapt2 link -I` resolves `android:` attributes without an SDK.
fn framework_stub(dir: &Path) -> PathBuf {
    let fw = dir.join("framework");
    std::fs::create_dir_all(fw.join("res/values")).unwrap();
    std::fs::write(
        fw.join("AndroidManifest.xml"),
        r#"<manifest xmlns:android="http://schemas.android.com/apk/res/android" package="android"/>"#,
    )
    .unwrap();
    let attrs = [
        ("name", "string", axml::attr::NAME),
        ("hasCode", "boolean", axml::attr::HAS_CODE),
        (
            "minSdkVersion",
            "integer|string",
            axml::attr::MIN_SDK_VERSION,
        ),
        ("versionCode", "integer", axml::attr::VERSION_CODE),
        ("versionName", "string", axml::attr::VERSION_NAME),
        (
            "targetSdkVersion",
            "integer|string",
            axml::attr::TARGET_SDK_VERSION,
        ),
        (
            "versionCodeMajor",
            "integer",
            axml::attr::VERSION_CODE_MAJOR,
        ),
    ];
    let mut xml = String::from("<resources>\n");
    for (name, format, id) in attrs {
        xml += &format!("  <attr name=\"{name}\" format=\"{format}\"/>\n");
        xml += &format!("  <public type=\"attr\" name=\"{name}\" id=\"{id:#010x}\"/>\n");
    }
    xml += "</resources>\n";
    std::fs::write(fw.join("res/values/public.xml"), xml).unwrap();
    let (ok, text) = run(
        Command::new("aapt2")
            .arg("compile")
            .arg(fw.join("res/values/public.xml"))
            .arg("-o")
            .arg(&fw),
        AAPT,
    );
    assert!(ok, "aapt2 compile: {text}");
    let apk = fw.join("android.apk");
    let (ok, text) = run(
        Command::new("aapt2")
            .arg("link")
            .arg("--manifest")
            .arg(fw.join("AndroidManifest.xml"))
            .arg("-o")
            .arg(&apk)
            .arg(fw.join("values_public.arsc.flat")),
        AAPT,
    );
    assert!(ok, "aapt2 link (framework stub): {text}");
    apk
}

/// `aapt2 link` of a text manifest against the stand-in framework: the binary manifest.
fn aapt2_compile(dir: &Path, framework: &Path, name: &str, manifest: &str) -> Vec<u8> {
    let src = dir.join(format!("{name}.xml"));
    std::fs::write(&src, manifest).unwrap();
    let out = dir.join(format!("{name}.apk"));
    let (ok, text) = run(
        Command::new("aapt2")
            .arg("link")
            .arg("--manifest")
            .arg(&src)
            .arg("-I")
            .arg(framework)
            .arg("-o")
            .arg(&out),
        AAPT,
    );
    assert!(ok, "aapt2 link {name}: {text}");
    let mut apk = zip::ZipArchive::new(std::fs::File::open(&out).unwrap()).unwrap();
    let mut manifest = Vec::new();
    std::io::Read::read_to_end(
        &mut apk.by_name("AndroidManifest.xml").unwrap(),
        &mut manifest,
    )
    .unwrap();
    manifest
}

fn text_manifest(spec: &ManifestSpec) -> String {
    let mut s = format!(
        "<manifest xmlns:android=\"http://schemas.android.com/apk/res/android\"\n    \
         package=\"{}\"\n    android:versionCode=\"{}\"",
        spec.package, spec.version_code
    );
    if let Some(m) = spec.version_code_major {
        s += &format!("\n    android:versionCodeMajor=\"{m}\"");
    }
    if let Some(n) = &spec.version_name {
        s += &format!("\n    android:versionName=\"{n}\"");
    }
    s += ">\n";
    if let (Some(min), Some(target)) = (spec.min_sdk_version, spec.target_sdk_version) {
        s += &format!(
            "  <uses-sdk android:minSdkVersion=\"{min}\" android:targetSdkVersion=\"{target}\"/>\n"
        );
    }
    if let Some(h) = spec.has_code {
        s += &format!("  <application android:hasCode=\"{h}\"/>\n");
    }
    s + "</manifest>\n"
}

#[test]
fn aapt2_manifests_parse_to_the_tree_we_write() {
    let dir = temp_dir("aapt2-link");
    let fw = framework_stub(&dir);
    let cases = [
        ("worked", worked_example_spec()),
        ("full", full_spec("com.example.vm", "1.0", 33)),
        (
            "non-ascii",
            full_spec("com.example.nonascii", "1.0-β 日本 🚀", 24),
        ),
        ("max", {
            let mut s = full_spec("com.example.max", "x", 33);
            // aapt2 parses integers as int32.
            s.version_code = i32::MAX as u32;
            s.version_code_major = Some(i32::MAX as u32);
            s.has_code = Some(true);
            s
        }),
    ];
    for (name, spec) in cases {
        let theirs = aapt2_compile(&dir, &fw, name, &text_manifest(&spec));
        // Debian aapt2 writes UTF-16 pools.
        assert_eq!(
            theirs[8 + 17] & 1,
            0,
            "{name}: expected a UTF-16 pool from aapt2"
        );
        assert_eq!(
            parse_manifest(&theirs).unwrap(),
            ManifestInfo {
                package: spec.package.clone(),
                version_code: spec.long_version_code(),
            },
            "{name}"
        );
        // Same tree as ours (attributes in aapt2's order, the one our writer uses).
        let tree = parse_document(&theirs).unwrap();
        assert_eq!(
            tree,
            spec.to_element().clone().sorted_like_aapt2(),
            "{name}"
        );
        assert_eq!(
            tree,
            parse_document(&write_manifest(&spec)).unwrap(),
            "{name}"
        );
        // Same strings and chunks: aapt2 differs only in the order of the strings that carry no
        // resource ID (it sorts them) and in line numbers (from its text source).
        let ours16 = write_document(&spec.to_element(), PoolEncoding::Utf16);
        assert_eq!(theirs.len(), ours16.len(), "{name}");
        assert!(axml::fuzz_entry(&theirs));
    }
    // A hexadecimal versionCode becomes TYPE_INT_HEX, which the manifest reader accepts.
    let hex = aapt2_compile(
        &dir,
        &fw,
        "hex",
        "<manifest xmlns:android=\"http://schemas.android.com/apk/res/android\" \
         package=\"com.example.hex\" android:versionCode=\"0x10\" \
         android:versionCodeMajor=\"0x2\"/>\n",
    );
    let tree = parse_document(&hex).unwrap();
    assert_eq!(
        tree.attribute(Some(axml::ANDROID_NS), "versionCode")
            .unwrap()
            .value,
        axml::Value::IntHex(0x10)
    );
    assert_eq!(parse_manifest(&hex).unwrap().version_code, 0x2_0000_0010);
    std::fs::remove_dir_all(dir).ok();
}

/// Sorting helper as a method, for readability above.
trait SortedLikeAapt2 {
    fn sorted_like_aapt2(self) -> Self;
}
impl SortedLikeAapt2 for axml::Element {
    fn sorted_like_aapt2(self) -> Self {
        sorted(self)
    }
}

fn zip_with_manifest(dir: &Path, name: &str, manifest: Vec<u8>) -> PathBuf {
    let zip = build_zip(&[ZipEntry::new("AndroidManifest.xml", manifest)]).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, zip).unwrap();
    path
}

#[test]
fn aapt2_and_aapt_dump_our_manifests() {
    let dir = temp_dir("aapt2-dump");
    let spec = full_spec("com.example.vm", "1.0-β", 33);
    for (name, bytes) in [
        ("utf8.zip", write_manifest(&spec)),
        (
            "utf16.zip",
            write_document(&spec.to_element(), PoolEncoding::Utf16),
        ),
        ("worked.zip", common::worked_example()),
    ] {
        let zip = zip_with_manifest(&dir, name, bytes);
        let (ok, text) = run(
            Command::new("aapt2")
                .args(["dump", "xmltree", "--file", "AndroidManifest.xml"])
                .arg(&zip),
            AAPT,
        );
        assert!(ok, "aapt2 dump xmltree {name}: {text}");
        for line in [
            "E: manifest (line=1)",
            "A: http://schemas.android.com/apk/res/android:versionCode(0x0101021b)=7",
            "A: http://schemas.android.com/apk/res/android:versionCodeMajor(0x01010576)=1",
            "A: package=\"com.example.vm\" (Raw: \"com.example.vm\")",
        ] {
            assert!(text.contains(line), "{name}: no {line:?} in\n{text}");
        }
        if name != "worked.zip" {
            for line in [
                "A: http://schemas.android.com/apk/res/android:versionName(0x0101021c)=\"1.0-β\" (Raw: \"1.0-β\")",
                "A: http://schemas.android.com/apk/res/android:minSdkVersion(0x0101020c)=33",
                "A: http://schemas.android.com/apk/res/android:hasCode(0x0101000c)=false",
            ] {
                assert!(text.contains(line), "{name}: no {line:?} in\n{text}");
            }
        }
        // aapt (libandroidfw's ResXMLTree, the parser AOSP's guest links).
        let (ok, text) = run(
            Command::new("aapt")
                .args(["dump", "xmltree"])
                .arg(&zip)
                .arg("AndroidManifest.xml"),
            AAPT,
        );
        assert!(ok, "aapt dump xmltree {name}: {text}");
        for line in [
            "A: android:versionCode(0x0101021b)=(type 0x10)0x7",
            "A: android:versionCodeMajor(0x01010576)=(type 0x10)0x1",
            "A: package=\"com.example.vm\" (Raw: \"com.example.vm\")",
        ] {
            assert!(text.contains(line), "{name}: no {line:?} in\n{text}");
        }
        // `aapt dump badging` looks attributes up by resource ID (resource map, sorted
        // attributes), as the framework's package parser does.
        let (ok, text) = run(
            Command::new("aapt").args(["dump", "badging"]).arg(&zip),
            AAPT,
        );
        assert!(ok, "aapt dump badging {name}: {text}");
        let version_name = if name == "worked.zip" {
            "1.0"
        } else {
            "1.0-β"
        };
        let package_line =
            format!("package: name='com.example.vm' versionCode='7' versionName='{version_name}'");
        assert!(
            text.contains(&package_line),
            "{name}: no {package_line:?} in\n{text}"
        );
        if name != "worked.zip" {
            assert!(text.contains("sdkVersion:'33'"), "{name}:\n{text}");
            assert!(text.contains("targetSdkVersion:'34'"), "{name}:\n{text}");
        }
    }
    std::fs::remove_dir_all(dir).ok();
}

/// libandroidfw (through Debian `aapt`) rejects the structurally bad corpus files for the same
/// reason we do: its warning for each (it may crash afterwards; only the warning is checked).
#[test]
fn libandroidfw_rejects_the_bad_corpus_files_we_reject() {
    let dir = temp_dir("aapt-bad");
    for (file, warning) in [
        ("truncated-header.axml", "is larger than data size"),
        ("size-past-end.axml", "is larger than data size"),
        (
            "size-not-multiple-of-4.axml",
            "is not on an integer boundary",
        ),
        (
            "pool-header-too-small.axml",
            "header size 0x0018 is too small",
        ),
        (
            "pool-last-unit-not-zero.axml",
            "last string is not 0-terminated",
        ),
        (
            "pool-offset-out-of-range.axml",
            "string #7 entry is at 8192, past end at 296",
        ),
        (
            "string-without-nul.axml",
            "string #7 is not null-terminated",
        ),
        (
            "utf8-u16len-wrong.axml",
            "string #7 decoded length is not correct 14 vs 13",
        ),
        ("bad-utf8.axml", "string #7 decoded length is not correct"),
        (
            "attribute-start-past-node.axml",
            "node attributes use 0x80 bytes, only have 0x64 bytes",
        ),
        ("node-smaller-than-extension.axml", "has size 0, need 8"),
        (
            "unknown-root-node.axml",
            "Unknown XML block: header type 336",
        ),
        ("no-nodes.axml", "no root element node found"),
    ] {
        let bytes = std::fs::read(common::manifest_dir().join("testdata/bad").join(file)).unwrap();
        let zip = zip_with_manifest(&dir, "bad.zip", bytes);
        let (_, text) = run(
            Command::new("aapt")
                .args(["dump", "xmltree"])
                .arg(&zip)
                .arg("AndroidManifest.xml"),
            AAPT,
        );
        assert!(text.contains(warning), "{file}: no {warning:?} in\n{text}");
    }
    std::fs::remove_dir_all(dir).ok();
}

// ---- apksigner --------------------------------------------------------------------------------

fn signed_apk(dir: &Path, name: &str, manifest: Vec<u8>) -> PathBuf {
    let zip = build_zip(&[ZipEntry::new("AndroidManifest.xml", manifest)]).unwrap();
    let keys = common::manifest_dir().join("../apksig/testkeys");
    let config =
        SigningConfig::from_files(&keys.join("testkey.pk8"), &keys.join("testkey.x509.pem"))
            .unwrap();
    assert!(config.v2 && config.v3);
    let apk = apksig::sign::sign(&zip, &config).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, apk).unwrap();
    path
}

fn apksigner_verify(apk: &Path) -> (bool, String) {
    run(
        Command::new("apksigner").args(["verify", "-v"]).arg(apk),
        "Debian package `apksigner`",
    )
}

/// apksigner takes the minimum SDK from the manifest's `<uses-sdk android:minSdkVersion>`
/// (found through the resource map). At 33 a v2+v3-only APK verifies; at 21 apksigner also
/// wants a v1 JAR signature, which the APK does not have.
#[test]
fn apksigner_reads_min_sdk_version_from_our_manifest() {
    let dir = temp_dir("apksigner");
    for enc in [PoolEncoding::Utf8, PoolEncoding::Utf16] {
        let modern = signed_apk(
            &dir,
            "min33.apk",
            write_document(&full_spec("com.example.vm", "1.0", 33).to_element(), enc),
        );
        let (ok, text) = apksigner_verify(&modern);
        assert!(ok, "minSdkVersion 33, {enc:?}:\n{text}");
        // From Android P (28) on, apksigner needs (and checks) only the v3 signature.
        assert!(
            text.contains("Verified using v2 scheme (APK Signature Scheme v2): false"),
            "{text}"
        );
        assert!(
            text.contains("Verified using v3 scheme (APK Signature Scheme v3): true"),
            "{text}"
        );

        let n = signed_apk(
            &dir,
            "min24.apk",
            write_document(&full_spec("com.example.vm", "1.0", 24).to_element(), enc),
        );
        let (ok, text) = apksigner_verify(&n);
        assert!(ok, "minSdkVersion 24, {enc:?}:\n{text}");
        // Android N..O: v2 is checked too.
        assert!(
            text.contains("Verified using v2 scheme (APK Signature Scheme v2): true"),
            "{text}"
        );
        assert!(
            text.contains("Verified using v3 scheme (APK Signature Scheme v3): true"),
            "{text}"
        );

        let old = signed_apk(
            &dir,
            "min21.apk",
            write_document(&full_spec("com.example.vm", "1.0", 21).to_element(), enc),
        );
        let (ok, text) = apksigner_verify(&old);
        assert!(
            !ok,
            "minSdkVersion 21 must need a v1 signature, {enc:?}:\n{text}"
        );
        assert!(
            text.contains("JAR signature") || text.contains("MANIFEST.MF"),
            "{enc:?}: unexpected failure:\n{text}"
        );
    }
    std::fs::remove_dir_all(dir).ok();
}

// ---- fuzz seeds -------------------------------------------------------------------------------

/// Writes `fuzz/seeds/axml/`: our manifests (UTF-8 and UTF-16) and aapt2's for the same text:
/// `cargo test -p axml --test oracle -- --ignored regenerate`.
#[test]
#[ignore]
fn regenerate_fuzz_seeds() {
    let seeds = common::manifest_dir().join("fuzz/seeds/axml");
    std::fs::create_dir_all(&seeds).unwrap();
    let spec = full_spec("com.example.vm", "1.0-β", 33);
    let dir = temp_dir("seeds");
    let fw = framework_stub(&dir);
    for (name, bytes) in [
        ("worked-example.axml", common::worked_example()),
        ("ours-utf8.axml", write_manifest(&spec)),
        (
            "ours-utf16.axml",
            write_document(&spec.to_element(), PoolEncoding::Utf16),
        ),
        (
            "aapt2.axml",
            aapt2_compile(&dir, &fw, "seed", &text_manifest(&spec)),
        ),
    ] {
        std::fs::write(seeds.join(name), bytes).unwrap();
        println!("wrote fuzz/seeds/axml/{name}");
    }
    std::fs::remove_dir_all(dir).ok();
}
